"""The error table: every failure is one ``wirecat: …`` line and a documented exit code.

Exit codes (README and ``wirecat --help``): 2 usage, 3 unknown host, 4 refused
or unreachable, 5 cannot listen, 6 timeout, 7 reset by peer, 8 cut off by -q,
9 bad local file or program. Tracebacks appear only with ``--debug``.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess

import pytest

from tests.conftest import WIRECAT, run_wirecat
from tests.integration.test_connect import TIMEOUT, Peer, assert_one_error_line, hold_open, wait_exit
from wirecat.testing import free_port


def closed_port() -> int:
    """A loopback port with nothing listening on it (free a moment ago)."""
    return free_port()


# -- usage errors (exit 2) ---------------------------------------------------------------------

USAGE_CASES = [
    pytest.param(["connect", "127.0.0.1", "99999"], "port", id="port-too-big"),
    pytest.param(["connect", "127.0.0.1", "65536"], "port", id="port-65536"),
    pytest.param(["connect", "127.0.0.1", "nosuchservice"], "port", id="port-not-a-number-nor-a-service"),
    pytest.param(["connect", "127.0.0.1:"], "", id="port-missing-after-colon"),
    pytest.param(["listen", "70000"], "port", id="listen-port-too-big"),
    pytest.param(["connect", "127.0.0.1"], "", id="no-port"),
    pytest.param(["connect", "--send-only", "--recv-only", "127.0.0.1", "9"], "--send-only", id="send+recv"),
    pytest.param(["connect", "-4", "-6", "127.0.0.1", "9"], "-4", id="4+6"),
    pytest.param(["listen", "-4", "-6", "0"], "-4", id="listen-4+6"),
    pytest.param(["connect", "-N", "--no-shutdown", "127.0.0.1", "9"], "--no-shutdown", id="N+no-shutdown"),
    pytest.param(["connect", "--wait-reply", "1", "127.0.0.1", "9"], "--wait-reply", id="wait-reply-tcp"),
    pytest.param(["connect", "-n", "localhost", "9"], "-n", id="numeric-with-name"),
    pytest.param(["connect", "--frobnicate", "127.0.0.1", "9"], "--frobnicate", id="unknown-flag"),
    pytest.param(["connect", "-q", "soon", "127.0.0.1", "9"], "", id="bad-seconds"),
    pytest.param(["connect", "--idle-timeout=-5", "127.0.0.1", "9"], "", id="negative-seconds"),
    pytest.param(["connect", "-U", "/tmp/x.sock", "80"], "-U", id="unix-with-port"),
    pytest.param(["listen", "--max-conns", "0", "0"], "--max-conns", id="max-conns-0"),
]


@pytest.mark.parametrize(("argv", "named"), USAGE_CASES)
def test_usage_errors(argv: list[str], named: str) -> None:
    result = run_wirecat(*argv)
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr)
    assert named in line, line
    assert result.stdout == b""


# -- network errors ------------------------------------------------------------------------------


def test_refused() -> None:
    port = closed_port()
    result = run_wirecat("connect", "127.0.0.1", str(port))
    assert result.returncode == 4, result.stderr
    line = assert_one_error_line(result.stderr)
    assert f"127.0.0.1:{port}" in line, line
    assert "refused" in line, line


def test_refused_netcat_spelling_is_not_silent() -> None:
    # OpenBSD nc exits 1 with no message here; wirecat always says why.
    result = run_wirecat("127.0.0.1", str(closed_port()))
    assert result.returncode == 4
    assert "refused" in assert_one_error_line(result.stderr)


def test_refused_ipv6() -> None:
    port = free_port("::1")
    result = run_wirecat("connect", "::1", str(port))
    assert result.returncode == 4, result.stderr
    assert f"[::1]:{port}" in assert_one_error_line(result.stderr)


def test_unknown_host() -> None:
    result = run_wirecat("connect", "nosuch.invalid", "80")
    assert result.returncode == 3, result.stderr
    line = assert_one_error_line(result.stderr)
    assert "nosuch.invalid" in line, line


def test_unknown_host_for_listen() -> None:
    result = run_wirecat("listen", "nosuch.invalid", "0")
    assert result.returncode == 3, result.stderr
    assert_one_error_line(result.stderr)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_address_in_use(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as busy:
        port = busy.getsockname()[1]
        result = run_wirecat("listen", host, str(port))
    assert result.returncode == 5, result.stderr
    line = assert_one_error_line(result.stderr)
    assert "in use" in line, line
    assert str(port) in line, line


def test_permission_denied_below_1024() -> None:
    """Needs a process without CAP_NET_BIND_SERVICE.

    The test machine runs as root, so the capability is dropped for the child
    with ``setpriv`` (util-linux); where that is not possible, the test skips.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot drop CAP_NET_BIND_SERVICE")
    drop = [setpriv, "--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service"]
    # The control: can this child bind port 1 anyway (unprivileged_port_start=0, no userns)?
    probe = subprocess.run(
        [*drop, "python3", "-c", "import socket; socket.socket().bind(('127.0.0.1', 1))"],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    if probe.returncode == 0 or b"Permission" not in probe.stderr:
        pytest.skip(f"cannot make a process that is refused port 1 here: {probe.stderr[-200:]!r}")
    result = subprocess.run(
        [*drop, WIRECAT, "listen", "1"], capture_output=True, timeout=TIMEOUT, check=False, input=b""
    )
    assert result.returncode == 5, result.stderr
    line = assert_one_error_line(result.stderr)
    assert "permission denied" in line, line
    assert "1024" in line, line  # the hint says what to do


def test_reset_by_peer(spawn) -> None:
    def reset_after_hello(conn: socket.socket, peer: Peer) -> None:
        assert conn.recv(6) == b"hello\n"
        # SO_LINGER 0: close() sends RST instead of FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with Peer(reset_after_hello) as peer:
        client = spawn(WIRECAT, "connect", "127.0.0.1", str(peer.port))
        assert client.popen.stdin is not None
        client.popen.stdin.write(b"hello\n")
        client.popen.stdin.flush()  # stdin stays open: only the reset can end the session
        peer.result()
        code, _, err = wait_exit(client)
    assert code == 7, err
    line = assert_one_error_line(err)
    assert "reset" in line, line


def test_listen_accept_timeout_is_exit_6() -> None:
    result = run_wirecat("listen", "-w", "0.5", "0")
    assert result.returncode == 6, result.stderr
    lines = result.stderr.decode().splitlines()
    # The listening line comes first (scripts parse it), then exactly one error line.
    assert lines[0].startswith("wirecat: listening on 127.0.0.1:"), lines
    assert_one_error_line("\n".join(lines[1:]).encode())


def test_quit_timer_cut_off_is_exit_8() -> None:
    with Peer(hold_open(b"some")) as peer:
        result = run_wirecat("connect", "-q", "0.5", "127.0.0.1", str(peer.port))
    assert result.returncode == 8, result.stderr
    assert_one_error_line(result.stderr)


def test_regular_file_as_unix_socket_is_exit_9(tmp_path) -> None:
    path = tmp_path / "f"
    path.write_text("keep me")
    result = run_wirecat("listen", "-U", str(path))
    assert result.returncode == 9, result.stderr
    assert_one_error_line(result.stderr)
    assert path.read_text() == "keep me"


# -- --debug -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "error_class"),
    [
        (["connect", "--debug", "127.0.0.1", "{port}"], "ConnectError"),
        (["connect", "--debug", "nosuch.invalid", "80"], "ResolveError"),
        (["connect", "--debug", "--send-only", "--recv-only", "127.0.0.1", "9"], "UsageError"),
    ],
)
def test_debug_shows_a_traceback(argv: list[str], error_class: str) -> None:
    result = run_wirecat(*(a.format(port=closed_port()) for a in argv))
    assert result.returncode != 0
    err = result.stderr.decode()
    assert "Traceback (most recent call last)" in err, err
    assert error_class in err, err


def test_no_traceback_without_debug_for_a_broken_argument() -> None:
    # Even argparse's own complaints come as one wirecat line.
    result = run_wirecat("connect")
    assert result.returncode == 2
    assert_one_error_line(result.stderr)
