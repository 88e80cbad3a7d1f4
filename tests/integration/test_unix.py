"""Unix stream sockets: ``-U PATH`` and ``unix:PATH``, and the socket file's life cycle."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import WIRECAT, random_payload, run_wirecat, sha256
from tests.integration.test_connect import TIMEOUT, assert_one_error_line, recv_all, run_with_threads
from wirecat.testing import read_line_matching


@pytest.fixture
def sock_path() -> Iterator[Path]:
    """A socket path in a fresh short directory (sun_path holds only 108 bytes)."""
    directory = tempfile.mkdtemp(prefix="wc-")
    try:
        yield Path(directory) / "s.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def start_listener(spawn, *argv: str):
    """Start ``wirecat listen ARGV`` and wait for its ``listening on unix:…`` line."""
    proc = spawn(WIRECAT, "listen", *argv)
    match = read_line_matching(proc.popen.stderr, r"listening on (unix:\S+)$", timeout=TIMEOUT)
    return proc, match.group(1)


def unix_client(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(str(path))
    return sock


def is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("listen_args", "connect_args"),
    [
        (["-U", "{p}"], ["-U", "{p}"]),
        (["unix:{p}"], ["unix:{p}"]),
        (["-U", "{p}"], ["unix:{p}"]),
        (["unix:{p}"], ["-U", "{p}"]),
    ],
)
def test_round_trip(spawn, sock_path: Path, listen_args: list[str], connect_args: list[str]) -> None:
    server, name = start_listener(spawn, *(a.format(p=sock_path) for a in listen_args))
    assert name == f"unix:{sock_path}"
    assert is_socket(sock_path)
    assert server.popen.stdin is not None
    server.popen.stdin.write(b"from server\n")
    server.popen.stdin.close()
    result = run_wirecat("connect", *(a.format(p=sock_path) for a in connect_args), stdin=b"from client\n")
    assert (result.returncode, result.stdout) == (0, b"from server\n"), result.stderr
    code, out, err = server.finish()
    assert (code, out) == (0, b"from client\n"), err
    assert not sock_path.exists(), "the listener left its socket file behind"


def test_binary_both_ways_over_unix(spawn, sock_path: Path) -> None:
    up = random_payload(4 * 1024 * 1024 + 9, seed=41)
    down = random_payload(2 * 1024 * 1024 + 1, seed=42)
    server, _ = start_listener(spawn, "-U", str(sock_path))
    received: list[bytes] = []

    def serve_stdio() -> None:
        assert server.popen.stdin is not None
        server.popen.stdin.write(down)
        server.popen.stdin.close()

    threads = [
        threading.Thread(target=serve_stdio, daemon=True),
        threading.Thread(target=lambda: received.append(server.popen.stdout.read()), daemon=True),
    ]
    for thread in threads:
        thread.start()
    code, out, err = run_with_threads([WIRECAT, "connect", "-U", str(sock_path)], up)
    assert code == 0, err
    assert sha256(out) == sha256(down)
    for thread in threads:
        thread.join(TIMEOUT)
    assert server.popen.wait(TIMEOUT) == 0
    assert sha256(received[0]) == sha256(up)


def test_half_close_over_unix(spawn, sock_path: Path) -> None:
    # A Python server that answers only after the client's EOF.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen()
    listener.settimeout(TIMEOUT)
    try:
        client = spawn(WIRECAT, "connect", f"unix:{sock_path}")
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            assert client.popen.stdin is not None
            client.popen.stdin.write(b"question")
            client.popen.stdin.close()
            assert recv_all(conn) == b"question"
            conn.sendall(b"answer after EOF")
        code, out, err = client.finish()
    finally:
        listener.close()
    assert (code, out) == (0, b"answer after EOF"), err


def test_keep_open_over_unix(spawn, sock_path: Path) -> None:
    server, _ = start_listener(spawn, "-k", "-v", "-U", str(sock_path))
    clients = [unix_client(sock_path) for _ in range(2)]
    try:
        read_line_matching(server.popen.stderr, r"\(2 connected\)", timeout=TIMEOUT)
        assert server.popen.stdin is not None
        server.popen.stdin.write(b"both\n")
        server.popen.stdin.flush()
        for client in clients:
            assert client.recv(5) == b"both\n"
    finally:
        for client in clients:
            client.close()


# -- the socket file -----------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_socket_file_removed_on_signal(spawn, sock_path: Path, signum: int, code: int) -> None:
    server, _ = start_listener(spawn, "-U", str(sock_path))
    assert is_socket(sock_path)
    server.popen.send_signal(signum)
    exit_code, _, err = server.finish(timeout=TIMEOUT)
    assert exit_code == code, err
    assert b"Traceback" not in err, err
    assert not sock_path.exists(), "the socket file outlived the listener"


def test_socket_file_removed_on_signal_during_a_session(spawn, sock_path: Path) -> None:
    server, _ = start_listener(spawn, "-v", "-U", str(sock_path))
    with unix_client(sock_path):
        read_line_matching(server.popen.stderr, r"connection from", timeout=TIMEOUT)
        server.popen.send_signal(signal.SIGTERM)
        exit_code, _, err = server.finish(timeout=TIMEOUT)
    assert exit_code == 143, err
    assert b"Traceback" not in err, err
    assert not sock_path.exists()


def test_keep_open_listener_removes_its_file_on_sigint(spawn, sock_path: Path) -> None:
    server, _ = start_listener(spawn, "-k", "-U", str(sock_path))
    with unix_client(sock_path):
        server.popen.send_signal(signal.SIGINT)
        exit_code, _, err = server.finish(timeout=TIMEOUT)
    assert exit_code == 130, err
    assert not sock_path.exists()


@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["quiet", "verbose"])
def test_stale_socket_file_is_replaced(spawn, sock_path: Path, verbose: list[str]) -> None:
    # A listener that died without unlinking leaves a socket file nobody answers on.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.listen()
    dead.close()
    assert is_socket(sock_path)
    proc = spawn(WIRECAT, "listen", *verbose, "-U", str(sock_path))
    assert proc.popen.stderr is not None
    # Said under -v, before the listening line: a file was removed, and the user may look for it.
    lines = [read_line_matching(proc.popen.stderr, r".*", timeout=TIMEOUT).group(0)]
    if verbose:
        assert lines[0] == f"wirecat: replaced the stale socket file {sock_path} (no listener was using it)"
        lines.append(read_line_matching(proc.popen.stderr, r".*", timeout=TIMEOUT).group(0))
    assert lines[-1] == f"wirecat: listening on unix:{sock_path}", lines
    with unix_client(sock_path) as client:
        client.sendall(b"fresh")
        client.shutdown(socket.SHUT_WR)
        assert proc.popen.stdin is not None
        proc.popen.stdin.close()
        assert recv_all(client) == b""
    code, out, err = proc.finish()
    assert (code, out) == (0, b"fresh"), err
    assert b"stale" not in err


def test_live_socket_is_never_replaced(sock_path: Path) -> None:
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(sock_path))
    live.listen()
    live.settimeout(TIMEOUT)
    try:
        result = run_wirecat("listen", "-U", str(sock_path))
        assert result.returncode == 5, result.stderr
        line = assert_one_error_line(result.stderr)
        assert str(sock_path) in line, line
        # The live listener still owns its path: the probe connection is in its queue.
        assert is_socket(sock_path)
        probe = unix_client(sock_path)
        probe.close()
    finally:
        live.close()


def test_regular_file_is_never_replaced(sock_path: Path) -> None:
    sock_path.write_bytes(b"precious data\n")
    before = os.stat(sock_path)
    result = run_wirecat("listen", "-U", str(sock_path))
    assert result.returncode == 9, result.stderr
    line = assert_one_error_line(result.stderr)
    assert str(sock_path) in line, line
    assert sock_path.read_bytes() == b"precious data\n"
    after = os.stat(sock_path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_directory_is_never_replaced(sock_path: Path) -> None:
    sock_path.mkdir()
    result = run_wirecat("listen", "-U", str(sock_path))
    assert result.returncode == 9, result.stderr
    assert_one_error_line(result.stderr)
    assert sock_path.is_dir()


def test_connect_to_a_missing_socket(sock_path: Path) -> None:
    result = run_wirecat("connect", "-U", str(sock_path))
    assert result.returncode == 4, result.stderr
    line = assert_one_error_line(result.stderr)
    assert str(sock_path) in line, line


def test_connect_to_a_stale_socket_is_refused(sock_path: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()
    result = run_wirecat("connect", "-U", str(sock_path))
    assert result.returncode == 4, result.stderr
    assert_one_error_line(result.stderr)


def test_unix_flag_takes_a_path_only() -> None:
    result = run_wirecat("connect", "-U", "/tmp/x.sock", "80")
    assert result.returncode == 2
    assert_one_error_line(result.stderr)


def test_connect_w_bounds_the_wait_on_a_full_backlog(sock_path: Path) -> None:
    """-w holds for Unix sockets too: a listener that never accepts is exit 6, not a hang."""
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(sock_path))
        listener.listen(0)
        fillers = []
        try:
            for _ in range(3):  # fill the backlog
                filler = socket.socket(socket.AF_UNIX)
                filler.setblocking(False)
                fillers.append(filler)
                try:
                    filler.connect(str(sock_path))
                except BlockingIOError:
                    break  # full
            result = run_wirecat("connect", "-w", "0.5", f"unix:{sock_path}", timeout=TIMEOUT)
        finally:
            for filler in fillers:
                filler.close()
    assert result.returncode == 6, result.stderr
    assert "timed out after 0.5 s" in assert_one_error_line(result.stderr)


def test_unix_path_errors_have_their_own_codes_and_hints(tmp_path: Path) -> None:
    """A missing directory is "cannot listen" (5); a regular file is not a socket (9);
    a socket file with no listener is refused (4), with hints about paths, not ports."""
    listen = run_wirecat("listen", f"unix:{tmp_path}/no/such/dir.sock", timeout=TIMEOUT)
    assert listen.returncode == 5, listen.stderr
    assert "its directory does not exist" in assert_one_error_line(listen.stderr)
    regular = tmp_path / "regular"
    regular.write_bytes(b"not a socket")
    connect = run_wirecat("connect", f"unix:{regular}", timeout=TIMEOUT)
    assert connect.returncode == 9, connect.stderr
    assert "is not a socket" in assert_one_error_line(connect.stderr)
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(stale))  # bound, never listening, then closed: a stale file
    refused = run_wirecat("connect", f"unix:{stale}", timeout=TIMEOUT)
    assert refused.returncode == 4, refused.stderr
    line = assert_one_error_line(refused.stderr)
    assert "nothing is listening there" in line
    assert "port" not in line
