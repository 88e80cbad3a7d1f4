"""``wirecat echo``, ``chat`` and ``broker`` with ``--tls``, through the installed command.

The clients are Python's ``ssl`` sockets and wirecat's library client (the
``connect --tls`` command is built elsewhere); certificates from ``trustme``;
loopback only. Each test reads every line the server writes on stderr and
checks that they are the expected ones: a failed handshake is one line,
never a traceback or the event loop's own complaints.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import warnings
from pathlib import Path

import pytest
import trustme

import wirecat
from tests.conftest import WIRECAT, random_payload, run_wirecat, sha256
from wirecat import tls
from wirecat.errors import CertificateError
from wirecat.testing import read_line_matching

TIMEOUT = 10.0

pytestmark = pytest.mark.timeout(90)

#: What neither loop may ever print: tracebacks and asyncio's own handshake logging.
NOISE = re.compile(r"Traceback|Exception in callback|SSL handshake failed|Fatal error|Task exception")


class Certs:
    """A CA, a server certificate for 127.0.0.1, a client certificate, one from another CA."""

    def __init__(self, directory: Path) -> None:
        ca, other = trustme.CA(), trustme.CA()
        self.ca_file = str(directory / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        server = ca.issue_cert("127.0.0.1", "localhost")
        self.server_cert, self.server_key = str(directory / "server.pem"), str(directory / "server.key")
        server.cert_chain_pems[0].write_to_path(self.server_cert)
        server.private_key_pem.write_to_path(self.server_key)
        self.client_cert = str(directory / "client.pem")
        ca.issue_cert(
            "client@example.com", common_name="test client"
        ).private_key_and_cert_chain_pem.write_to_path(self.client_cert)
        self.stranger_cert = str(directory / "stranger.pem")
        other.issue_cert(
            "x@example.com", common_name="stranger"
        ).private_key_and_cert_chain_pem.write_to_path(self.stranger_cert)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


class Server:
    """A wirecat server started by the test, with every stderr line it wrote kept."""

    def __init__(self, spawn, *args: str, loop: str = "uvloop") -> None:
        env_loop = os.environ.get("WIRECAT_LOOP")
        os.environ["WIRECAT_LOOP"] = loop
        try:
            self.proc = spawn(WIRECAT, *args)
        finally:
            if env_loop is None:
                del os.environ["WIRECAT_LOOP"]
            else:
                os.environ["WIRECAT_LOOP"] = env_loop
        self.lines: list[str] = []
        self.port = int(self.until(r"listening on .*:(\d+)$").group(1))

    def until(self, pattern: str) -> re.Match[str]:
        """Read stderr lines (keeping them all) up to one that matches ``pattern``."""
        regex = re.compile(pattern)
        while True:
            line = read_line_matching(self.proc.popen.stderr, r"^.*$", timeout=TIMEOUT).group(0)
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match

    def stop(self) -> int:
        """SIGTERM, wait, keep the rest of stderr; the exit code."""
        self.proc.popen.send_signal(signal.SIGTERM)
        code, _, err = self.proc.finish(timeout=TIMEOUT * 2)
        self.lines += err.decode(errors="replace").splitlines()
        return code

    def assert_quiet_except(self, *patterns: str) -> None:
        """Every stderr line is one of the usual ones or matches one of ``patterns``, each once."""
        usual = re.compile(
            r"^wirecat: (listening on |TLS certificate made for this run: |trust it with: |event loop: "
            r"|signal \d+: shutting down|shut down|accepted |closed |.*closed after )"
        )
        text = "\n".join(self.lines)
        assert not NOISE.search(text), text
        unexpected = [line for line in self.lines if not usual.search(line)]
        for pattern in patterns:
            matching = [line for line in unexpected if re.search(pattern, line)]
            assert len(matching) == 1, (pattern, self.lines)
            unexpected.remove(matching[0])
        assert unexpected == [], self.lines


def tls_client(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def verifying(certs: Certs, cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certs.ca_file)
    if cert is not None:
        context.load_cert_chain(cert)
    return context


def refused(port: int, context: ssl.SSLContext) -> bool:
    """Whether a client is turned away: in the handshake, or (TLS 1.3) at its first read."""
    try:
        with tls_client(port, context) as sock:
            sock.sendall(b"hello?")
            return read_to_end(sock) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def echo_over(sock: ssl.SSLSocket, payload: bytes) -> bytes:
    """Send ``payload``, end with close_notify after reading it all back."""
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload) and (chunk := sock.recv(1 << 20)):
        got += chunk
    return got


def read_to_end(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return data


# -- echo -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_echo_tls_ephemeral_certificate_and_the_pin_it_prints(spawn, loop: str) -> None:
    server = Server(spawn, "echo", "--tls", "127.0.0.1", "0", loop=loop)
    made = re.search(r"TLS certificate made for this run: (sha256:[0-9a-f]{64})$", server.lines[0])
    assert made, server.lines
    trust = server.until(
        r"trust it with: wirecat connect --tls --pin (sha256:[0-9a-f]{64}) 127\.0\.0\.1 (\d+)$"
    )
    assert trust.group(1) == made.group(1)
    assert int(trust.group(2)) == server.port

    async def clients() -> bytes | None:
        address = f"127.0.0.1:{server.port}"
        # Verification is on by default: a certificate made at start is trusted by its pin only.
        with pytest.raises(CertificateError, match=re.escape(made.group(1))):
            async with wirecat.connect(address, tls=True):
                pass
        async with wirecat.connect(address, tls=True, pin=made.group(1)) as conn:
            payload = random_payload(300_000, seed=3)
            await conn.send(payload)
            got = b""
            while len(got) < len(payload):
                frame = await conn.recv()
                assert frame is not None
                got += frame
            assert sha256(got) == sha256(payload)
            assert tls.fingerprint(conn.peer_certificate or b"") == made.group(1)
            info = tls.describe_certificate(conn.peer_certificate or b"")
            assert "127.0.0.1" in info.names
            assert "localhost" in info.names
            assert info.key == "EC P-256"
            return conn.peer_certificate

    asyncio.run(clients())
    assert server.stop() == 0
    server.assert_quiet_except()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_echo_tls_bad_clients_are_one_line_each_and_it_keeps_serving(spawn, certs: Certs, loop: str) -> None:
    server = Server(
        spawn,
        "echo", "--tls", "--cert", certs.server_cert, "--key", certs.server_key,
        "--handshake-timeout", "0.5", "--max-conns", "1", "127.0.0.1", "0",
        loop=loop,
    )  # fmt: skip
    # A plain HTTP client.
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_to_end(plain) == b""
    server.until(r"plain HTTP request on a TLS port from 127\.0\.0\.1:\d+")
    # A client that says nothing holds the only slot for 0.5 s, no longer.
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as silent:
        with tls_client(server.port, verifying(certs)) as good:
            assert echo_over(good, b"after the silent one") == b"after the silent one"
        server.until(r"did not finish the TLS handshake within 0\.5 s")
        assert read_to_end(silent) == b""
    # A client that offers only TLS 1.1.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(certs.ca_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_client(server.port, old).close()
    server.until(r"no TLS version in common")
    # And a good one still gets its echo.
    with tls_client(server.port, verifying(certs)) as good:
        assert echo_over(good, b"still here") == b"still here"
        good.unwrap().close()
    assert server.stop() == 0
    server.assert_quiet_except(
        r"^wirecat: plain HTTP request on a TLS port from 127\.0\.0\.1:\d+: the client must speak TLS",
        r"^wirecat: 127\.0\.0\.1:\d+ did not finish the TLS handshake within 0\.5 s; cut off",
        r"^wirecat: 127\.0\.0\.1:\d+ offers no TLS version in common with us",
    )


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_echo_mutual_tls(spawn, certs: Certs, loop: str) -> None:
    server = Server(
        spawn,
        "echo", "-v", "--tls", "--cert", certs.server_cert, "--key", certs.server_key,
        "--client-ca", certs.ca_file, "127.0.0.1", "0",
        loop=loop,
    )  # fmt: skip
    # No client certificate: refused (under TLS 1.3 the client learns it at its first read).
    with tls_client(server.port, verifying(certs)) as anonymous:
        anonymous.sendall(b"hello?")
        assert read_to_end(anonymous) == b""
    server.until(r"presented no client certificate")
    # A certificate from a CA the server does not trust: refused.
    assert refused(server.port, verifying(certs, certs.stranger_cert))
    server.until(r"client certificate of 127\.0\.0\.1:\d+ is not trusted")
    # The right one: served, and -v says who it is.
    with tls_client(server.port, verifying(certs, certs.client_cert)) as friend:
        assert echo_over(friend, b"it is me") == b"it is me"
        friend.unwrap().close()
    server.until(r"client certificate CN=test client.*, issued by .*\(TLSv1\.3\)")
    server.until(r"closed after .*received 8 B, sent 8 B")
    assert server.stop() == 0
    server.assert_quiet_except(
        r"presented no client certificate, and one is required",
        r"client certificate of 127\.0\.0\.1:\d+ is not trusted",
        r"^wirecat: 127\.0\.0\.1:\d+: client certificate CN=test client",
    )


def test_a_tls_client_that_ends_without_close_notify_is_said_under_v(spawn, certs: Certs) -> None:
    server = Server(spawn, "echo", "-v", "--tls", "--cert", certs.server_cert, "--key", certs.server_key, "0")
    with tls_client(server.port, verifying(certs)) as sock:
        assert echo_over(sock, b"cut") == b"cut"
        raw = socket.socket(fileno=os.dup(sock.fileno()))
        raw.shutdown(socket.SHUT_WR)  # a FIN with no close_notify before it
        raw.close()
        read_to_end(sock)
    server.until(r"ended the stream without TLS close_notify")
    assert server.stop() == 0
    assert not NOISE.search("\n".join(server.lines))


# -- chat and broker ------------------------------------------------------------------------------


class Lines:
    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock, self.pending = sock, b""

    def line(self) -> bytes:
        while b"\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.pending)
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line


def test_chat_over_tls_with_two_clients(spawn, certs: Certs) -> None:
    server = Server(spawn, "chat", "--tls", "--cert", certs.server_cert, "--key", certs.server_key, "0")
    with (
        tls_client(server.port, verifying(certs)) as a_sock,
        tls_client(server.port, verifying(certs)) as b_sock,
    ):
        a, b = Lines(a_sock), Lines(b_sock)
        assert a.line().startswith(b"* welcome, user1")
        assert a.line() == b"* user2 joined"
        assert b.line().startswith(b"* welcome, user2")
        a_sock.sendall(b"hello over TLS\r\n")
        assert b.line() == b"<user1> hello over TLS"
        b_sock.sendall(b"/quit\n")
        assert b.line() == b"* bye"
        assert a.line() == b"* user2 left"
    assert server.stop() == 0
    server.assert_quiet_except()


def test_broker_over_tls_with_two_clients(spawn, certs: Certs) -> None:
    server = Server(spawn, "broker", "--tls", "--cert", certs.server_cert, "--key", certs.server_key, "0")
    with tls_client(server.port, verifying(certs)) as a, tls_client(server.port, verifying(certs)) as b:
        # Wait until the broker has both: a message from b reaches a.
        b.sendall(b"ready")
        assert a.recv(5) == b"ready"
        payload = random_payload(200_000, seed=8)
        a.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += b.recv(1 << 20)
        assert sha256(got) == sha256(payload)
    assert server.stop() == 0
    server.assert_quiet_except()


# -- flags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["echo", "--cert", "server.pem", "0"], 2, "--cert is for TLS: add --tls"),
        (["chat", "--client-ca", "ca.pem", "0"], 2, "--client-ca is for TLS: add --tls"),
        (["broker", "--tls", "--key", "k.pem", "0"], 2, "--key without --cert"),
        (
            ["echo", "--tls", "--cert", "/nonexistent/server.pem", "0"],
            9,
            "cannot read /nonexistent/server.pem",
        ),
        (["echo", "--tls", "--handshake-timeout", "0", "0"], 2, "handshake-timeout"),
    ],
)
def test_bad_tls_flags_are_one_line(args: list[str], code: int, message: str) -> None:
    result = run_wirecat(*args)
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert message in err
    assert len(err.splitlines()) == 1, err
