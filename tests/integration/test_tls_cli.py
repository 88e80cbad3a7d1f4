"""``connect --tls`` and ``listen --tls`` through the installed command: sessions and every error line.

Certificates come from ``trustme`` (a real CA, real certificates); the
servers are wirecat itself or small Python servers in a thread.
"""

from __future__ import annotations

import datetime
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.conftest import WIRECAT, Proc, random_payload, run_wirecat, sha256
from wirecat.testing import read_line_matching

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def write_leaf(ca: trustme.CA, directory: Path, *names: str, **kwargs: object) -> tuple[str, str]:
    leaf = ca.issue_cert(*names, **kwargs)  # type: ignore[arg-type]
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.fixture(scope="module")
def files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = write_leaf(ca, directory, "localhost", "127.0.0.1")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return {"cert": cert, "key": key, "ca": str(ca_file)}


def listen(spawn: Callable[..., Proc], *args: str, stdin: bytes | None = b"") -> tuple[Proc, int]:
    """A wirecat listener; ``stdin`` given is written and closed at once (None: left to the test)."""
    proc = spawn(WIRECAT, "listen", *args, "127.0.0.1", "0")
    if stdin is not None:
        assert proc.popen.stdin is not None
        proc.popen.stdin.write(stdin)
        proc.popen.stdin.close()
    return proc, proc.listening_port(TIMEOUT)


class OneShot:
    """A Python TLS or plain server for one connection, in a thread."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, args=(handler,), daemon=True)
        self.thread.start()

    def _run(self, handler: Callable[[socket.socket], None]) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(TIMEOUT)
            try:
                handler(sock)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(TIMEOUT)


@pytest.fixture
def oneshot() -> Iterator[Callable[[Callable[[socket.socket], None]], OneShot]]:
    made: list[OneShot] = []

    def make(handler: Callable[[socket.socket], None]) -> OneShot:
        made.append(OneShot(handler))
        return made[-1]

    yield make
    for server in made:
        server.close()


def one_line(stderr: bytes) -> str:
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- sessions ----------------------------------------------------------------------------------


def test_connect_listen_both_ways_with_pin(spawn: Callable[..., Proc]) -> None:
    """The printed pin command works; bytes go both ways; both exit 0."""
    payload = random_payload(3 << 20, seed=5)
    proc = spawn(WIRECAT, "listen", "--tls", "127.0.0.1", "0")
    assert proc.popen.stderr is not None
    pin = read_line_matching(proc.popen.stderr, r"made for this run: (sha256:[0-9a-f]{64})$", timeout=TIMEOUT)
    command = read_line_matching(proc.popen.stderr, r"trust it with: (wirecat connect .*)$", timeout=TIMEOUT)
    port = proc.listening_port(TIMEOUT)
    assert f"--pin {pin.group(1)}" in command.group(1)
    assert proc.popen.stdin is not None
    proc.popen.stdin.write(b"from the server\n")
    proc.popen.stdin.close()
    client = run_wirecat("connect", "--tls", "--pin", pin.group(1), "127.0.0.1", str(port), stdin=payload)
    code, out, _ = proc.finish(timeout=TIMEOUT)
    assert client.returncode == 0, client.stderr
    assert client.stdout == b"from the server\n"
    assert code == 0
    assert sha256(out) == sha256(payload)


def test_verified_by_cafile_and_half_close_reply(spawn: Callable[..., Proc], files: dict[str, str]) -> None:
    """A reply that comes only after the client's close_notify (the --exec side answers at its EOF)."""
    proc, port = listen(
        spawn, "--tls", "--cert", files["cert"], "--key", files["key"], "--sh-exec", "wc -c", "-v"
    )
    client = run_wirecat(
        "connect", "--tls", "--cafile", files["ca"], "-v", "localhost", str(port), stdin=b"x" * 100_000
    )
    assert client.returncode == 0, client.stderr
    assert client.stdout.strip() == b"100000"
    assert b"TLS with 127.0.0.1" in client.stderr
    assert b"peer certificate" in client.stderr
    code, _, err = proc.finish(timeout=TIMEOUT)
    assert code == 0, err


@pytest.mark.parametrize("trust", ["cafile", "pin"])
def test_a_tls_client_does_not_load_cryptography(
    spawn: Callable[..., Proc], files: dict[str, str], trust: str
) -> None:
    """cryptography (~30 ms) is for making certificates and describing bad ones, not for connecting."""
    from wirecat.tls import fingerprint

    _proc, port = listen(spawn, "--tls", "--cert", files["cert"], "--key", files["key"])
    pin = fingerprint(Path(files["cert"]).read_bytes())
    flags = ["--cafile", files["ca"]] if trust == "cafile" else ["--pin", pin]
    argv = ["connect", "--tls", *flags, "127.0.0.1", str(port)]
    client = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "wirecat", *argv],
        input=b"hello\n",
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert client.returncode == 0, client.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in client.stderr.decode().splitlines() if "|" in line]
    assert "ssl" in imported
    assert not [name for name in imported if name.startswith("cryptography")]


def test_tls_address_form(spawn: Callable[..., Proc], files: dict[str, str]) -> None:
    proc, port = listen(spawn, "--tls", "--cert", files["cert"], "--key", files["key"])
    client = run_wirecat("connect", "--cafile", files["ca"], f"tls:127.0.0.1:{port}", stdin=b"hi\n")
    code, out, _ = proc.finish(timeout=TIMEOUT)
    assert client.returncode == 0, client.stderr
    assert out == b"hi\n"
    assert code == 0


def test_mutual_tls_exec_environment(
    spawn: Callable[..., Proc], files: dict[str, str], ca: trustme.CA, tmp_path: Path
) -> None:
    client_cert, client_key = write_leaf(ca, tmp_path, "client.example")
    proc, port = listen(
        spawn,
        "--tls",
        "--cert",
        files["cert"],
        "--key",
        files["key"],
        "--client-ca",
        files["ca"],
        "--sh-exec",
        'echo "$WIRECAT_PEER_CERT_SUBJECT $WIRECAT_PEER_CERT_SHA256"',
    )
    client = run_wirecat(
        "connect",
        "--tls",
        "--cafile",
        files["ca"],
        "--cert",
        client_cert,
        "--key",
        client_key,
        "127.0.0.1",
        str(port),
    )
    assert client.returncode == 0, client.stderr
    subject, digest = client.stdout.decode().strip().rsplit(" ", 1)
    assert "O=trustme" in subject
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert proc.finish(timeout=TIMEOUT)[0] == 0


def test_connect_exec_over_tls(spawn: Callable[..., Proc], files: dict[str, str]) -> None:
    proc, port = listen(spawn, "--tls", "--cert", files["cert"], "--key", files["key"])
    client = run_wirecat(
        "connect", "--tls", "--cafile", files["ca"], "127.0.0.1", str(port), "--sh-exec", "echo from-program"
    )
    code, out, _ = proc.finish(timeout=TIMEOUT)
    assert client.returncode == 0, client.stderr
    assert out == b"from-program\n"
    assert code == 0


def test_unix_socket_tls(spawn: Callable[..., Proc], files: dict[str, str], tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    proc = spawn(WIRECAT, "listen", "--tls", "--cert", files["cert"], "--key", files["key"], f"unix:{path}")
    assert proc.popen.stderr is not None
    assert proc.popen.stdin is not None
    proc.popen.stdin.close()
    read_line_matching(proc.popen.stderr, r"listening on", timeout=TIMEOUT)
    client = run_wirecat(
        "connect", "--tls", "--cafile", files["ca"], "--servername", "localhost", f"unix:{path}", stdin=b"u\n"
    )
    code, out, _ = proc.finish(timeout=TIMEOUT)
    assert client.returncode == 0, client.stderr
    assert out == b"u\n"
    assert code == 0


# -- errors, one line each -----------------------------------------------------------------------


def test_self_signed_names_the_pin(spawn: Callable[..., Proc]) -> None:
    proc = spawn(WIRECAT, "listen", "--tls", "-k", "--sh-exec", "cat", "127.0.0.1", "0")
    assert proc.popen.stderr is not None
    pin = read_line_matching(proc.popen.stderr, r"made for this run: (sha256:[0-9a-f]{64})$", timeout=TIMEOUT)
    port = proc.listening_port(TIMEOUT)
    client = run_wirecat("connect", "--tls", "127.0.0.1", str(port))
    assert client.returncode == 13
    assert one_line(client.stderr) == (
        f"wirecat: self-signed certificate for 127.0.0.1:{port}: "
        f"to trust this one: --pin {pin.group(1)}, or --cafile FILE"
    )


def test_self_signed_names_the_pin_of_a_one_client_listen(spawn: Callable[..., Proc]) -> None:
    """A one-client listen is gone after the failed handshake: the pin comes from that very handshake."""
    proc = spawn(WIRECAT, "listen", "--tls", "127.0.0.1", "0")
    assert proc.popen.stderr is not None
    pin = read_line_matching(proc.popen.stderr, r"made for this run: (sha256:[0-9a-f]{64})$", timeout=TIMEOUT)
    port = proc.listening_port(TIMEOUT)
    client = run_wirecat("connect", "--tls", "127.0.0.1", str(port))
    assert client.returncode == 13
    assert one_line(client.stderr) == (
        f"wirecat: self-signed certificate for 127.0.0.1:{port}: "
        f"to trust this one: --pin {pin.group(1)}, or --cafile FILE"
    )
    assert proc.popen.wait(TIMEOUT) != 0  # it served its one client, which failed


def test_name_mismatch(
    spawn: Callable[..., Proc], files: dict[str, str], ca: trustme.CA, tmp_path: Path
) -> None:
    cert, key = write_leaf(ca, tmp_path, "other.example")
    _proc, port = listen(spawn, "--tls", "-k", "--sh-exec", "cat", "--cert", cert, "--key", key)
    client = run_wirecat("connect", "--tls", "--cafile", files["ca"], "127.0.0.1", str(port))
    assert client.returncode == 13
    assert one_line(client.stderr) == (
        f"wirecat: the certificate of 127.0.0.1:{port} does not hold the name '127.0.0.1': it is for"
        " other.example: connect by a name it holds, or --servername NAME"
    )


def test_expired(spawn: Callable[..., Proc], files: dict[str, str], ca: trustme.CA, tmp_path: Path) -> None:
    old = datetime.datetime(2020, 1, 1)
    cert, key = write_leaf(
        ca, tmp_path, "127.0.0.1", not_before=old, not_after=old + datetime.timedelta(days=1)
    )
    _proc, port = listen(spawn, "--tls", "-k", "--sh-exec", "cat", "--cert", cert, "--key", key)
    client = run_wirecat("connect", "--tls", "--cafile", files["ca"], "127.0.0.1", str(port))
    assert client.returncode == 13
    assert one_line(client.stderr) == (
        f"wirecat: the certificate of 127.0.0.1:{port} expired on 2020-01-02 00:00 UTC:"
        " the server must renew it"
    )


def test_plain_tcp_server(oneshot: Callable[[Callable[[socket.socket], None]], OneShot]) -> None:
    def banner(sock: socket.socket) -> None:
        sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n" + b"x" * 100)
        sock.recv(4096)

    server = oneshot(banner)
    client = run_wirecat("connect", "--tls", "--insecure", "127.0.0.1", str(server.port))
    assert client.returncode == 12
    lines = client.stderr.decode().strip().splitlines()
    assert lines[0].startswith("wirecat: warning: --insecure")
    assert lines[1] == (
        f"wirecat: the server 127.0.0.1:{server.port} did not answer TLS: is it plain TCP?: drop --tls"
    )


def test_plain_client_at_tls_listen(spawn: Callable[..., Proc], files: dict[str, str]) -> None:
    proc, port = listen(spawn, "--tls", "--cert", files["cert"], "--key", files["key"])
    client = run_wirecat("connect", "127.0.0.1", str(port), stdin=b"hello, plain\n")
    code, _, err = proc.finish(timeout=TIMEOUT)
    assert code == 12
    assert err.decode().strip().splitlines()[-1].startswith("wirecat: 127.0.0.1:")
    assert "did not speak TLS: is it a plain TCP client?" in err.decode()
    assert client.returncode in (0, 7)  # it may see the server's reset or alert


def test_handshake_timeout_on_the_server(spawn: Callable[..., Proc], files: dict[str, str]) -> None:
    proc, port = listen(
        spawn, "--tls", "--cert", files["cert"], "--key", files["key"], "--handshake-timeout", "0.5"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
        code, _, err = proc.finish(timeout=TIMEOUT)
    assert code == 6
    assert err.decode().strip().splitlines()[-1] == (
        "wirecat: no TLS handshake with 127.0.0.1:"
        + err.decode().split("no TLS handshake with 127.0.0.1:")[1].split(" ")[0]
        + " within 0.5 s: the client connected but did not finish TLS: does it speak TLS?"
    )


def test_truncation_is_exit_8(
    oneshot: Callable[[Callable[[socket.socket], None]], OneShot], files: dict[str, str]
) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files["cert"], files["key"])

    def cut(sock: socket.socket) -> None:
        with context.wrap_socket(sock, server_side=True) as tls:
            tls.sendall(b"the first half")
            tls.shutdown(socket.SHUT_WR)  # a TCP FIN, and no close_notify
            tls.recv(1)

    server = oneshot(cut)
    client = run_wirecat("connect", "--tls", "--cafile", files["ca"], "127.0.0.1", str(server.port))
    assert client.stdout == b"the first half"
    assert client.returncode == 8
    assert one_line(client.stderr) == (
        f"wirecat: 127.0.0.1:{server.port} ended the stream without TLS close_notify:"
        " the peer did not close TLS cleanly; what arrived may be incomplete"
    )


def test_config_errors_exit_9(files: dict[str, str], tmp_path: Path) -> None:
    missing = run_wirecat("listen", "--tls", "--cert", str(tmp_path / "nope.pem"), "127.0.0.1", "0")
    assert missing.returncode == 9, missing.stderr
    assert len(missing.stderr.decode().strip().splitlines()) == 1
    ca = trustme.CA()
    _, other_key = write_leaf(ca, tmp_path, "x.example")
    mismatch = run_wirecat("listen", "--tls", "--cert", files["cert"], "--key", other_key, "127.0.0.1", "0")
    assert mismatch.returncode == 9, mismatch.stderr
    assert len(mismatch.stderr.decode().strip().splitlines()) == 1
    encrypted = tmp_path / "encrypted.pem"
    subprocess.run(
        ["openssl", "pkey", "-in", files["key"], "-aes256", "-passout", "pass:x", "-out", str(encrypted)],
        check=True,
        capture_output=True,
    )
    locked = run_wirecat(
        "listen", "--tls", "--cert", files["cert"], "--key", str(encrypted), "127.0.0.1", "0"
    )
    assert locked.returncode == 9, locked.stderr
    assert len(locked.stderr.decode().strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["connect", "--pin", "sha256:" + "00" * 32, "127.0.0.1", "9"], "wirecat: --pin is for TLS"),
        (["listen", "--cert", "c.pem", "0"], "wirecat: --cert is for TLS"),
        (["connect", "-u", "--tls", "127.0.0.1", "9"], "wirecat: --tls is for streams"),
        (["listen", "-u", "--tls", "0"], "wirecat: --tls is for streams"),
        (["connect", "tls:udp:127.0.0.1:9"], "wirecat: TLS over UDP"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    done = run_wirecat(*args)
    assert done.returncode == 2
    assert one_line(done.stderr).startswith(message)
