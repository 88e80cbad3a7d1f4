"""``wirecat relay`` with TLS: termination (--tls), origination (tls: targets), both.

Certificates come from trustme (a real CA and leaves, made per module);
every socket is on loopback. The clients and servers on the far ends are
Python's ``ssl`` module, or wirecat's own TLSEndpoint where a test needs
TLS 1.3's half-close (send close_notify, then read on), which ``SSLSocket``
cannot do.
"""

from __future__ import annotations

import asyncio
import hashlib
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import trustme

from tests.conftest import WIRECAT, random_payload, recv_to_eof, sha256
from tests.integration.test_relay import Target, echo, running_relay
from wirecat.endpoint import SocketEndpoint
from wirecat.testing import StreamEnd, check_stream, read_line_matching
from wirecat.tls import ClientTLS, ServerTLS, client_context, fingerprint, server_context
from wirecat.tls_endpoint import TLSEndpoint

TIMEOUT = 20.0
MiB = 1 << 20

pytestmark = pytest.mark.timeout(120)


# -- certificates ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA; a server leaf for 127.0.0.1 and localhost; a client leaf; another CA's client leaf."""
    root = tmp_path_factory.mktemp("pki")
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.test", common_name="relay-test-client")
    stranger = other_ca.issue_cert("stranger@example.test")
    files = {
        "ca": ca.cert_pem,
        "server": server.cert_chain_pems[0],
        "server_key": server.private_key_pem,
        "client": client.cert_chain_pems[0],
        "client_key": client.private_key_pem,
        "stranger": stranger.cert_chain_pems[0],
        "stranger_key": stranger.private_key_pem,
    }
    paths = {}
    for name, blob in files.items():
        path = root / f"{name}.pem"
        blob.write_to_path(str(path))
        paths[name] = str(path)
    return paths


def client_ssl(pki: dict[str, str], *, cert: str = "", key: str = "") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        context.load_cert_chain(cert, key)
    return context


def server_ssl(pki: dict[str, str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"], pki["server_key"])
    return context


def tls_client(pki: dict[str, str], port: int, **cert: str) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return client_ssl(pki, **cert).wrap_socket(sock, server_hostname="127.0.0.1")


def server_flags(pki: dict[str, str]) -> list[str]:
    return ["--tls", "--cert", pki["server"], "--key", pki["server_key"]]


# -- a blocking driver for TLSEndpoint (half-close: close_notify, then read on) -----------------


class Blocking:
    """TLSEndpoint driven with a selector, one thread: what a test's far end needs."""

    def __init__(self, endpoint: TLSEndpoint) -> None:
        self.endpoint = endpoint

    def _wait(self, write: bool) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.endpoint.read_fd, selectors.EVENT_WRITE if write else selectors.EVENT_READ)
            assert selector.select(TIMEOUT), "a TLS operation hung"

    def flush(self) -> None:
        while not self.endpoint.flush():
            self._wait(True)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.endpoint.send(view) :]
            except BlockingIOError:
                self._wait(self.endpoint.wants_write)
        self.flush()

    def shutdown_write(self) -> None:
        self.endpoint.shutdown_write()
        self.flush()

    def recv_to_eof(self) -> bytes:
        data, buffer = bytearray(), bytearray(1 << 18)
        while True:
            try:
                n = self.endpoint.recv_into(buffer)
            except BlockingIOError:
                self._wait(self.endpoint.wants_write)
                continue
            if not n:
                return bytes(data)
            data += buffer[:n]


def blocking_client(pki: dict[str, str], port: int) -> Blocking:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    endpoint = TLSEndpoint(
        sock, ClientTLS(client_context(cafile=pki["ca"])), server_side=False, server_hostname="127.0.0.1"
    )
    endpoint.handshake(TIMEOUT)
    return Blocking(endpoint)


def tls_target(pki: dict[str, str], handle: Callable[[Blocking], None], *, before: int = 0) -> Target:
    """A TLS server thread: each connection handshaken by TLSEndpoint and given to ``handle``.

    ``before``: bytes read in the clear first (a PROXY header), handed to ``handle``
    as ``endpoint.clear``; what came after them starts the handshake.
    """
    tls = ServerTLS(server_context(cert=pki["server"], key=pki["server_key"]), "")

    def serve(conn: socket.socket) -> None:
        clear = b""
        while before and b"\r\n" not in clear:
            clear += conn.recv(1)
        endpoint = TLSEndpoint(conn, tls, server_side=True)
        endpoint.handshake(TIMEOUT)
        end = Blocking(endpoint)
        end.clear = clear  # type: ignore[attr-defined]
        handle(end)

    return Target(serve)


def _echo_until_eof(end: Blocking) -> None:
    buffer = bytearray(1 << 18)
    endpoint = end.endpoint
    while True:
        try:
            n = endpoint.recv_into(buffer)
        except BlockingIOError:
            end.flush()
            end._wait(endpoint.wants_write)
            continue
        if not n:
            end.shutdown_write()
            return
        end.sendall(bytes(buffer[:n]))


@contextmanager
def via_relay(spawn, *args: str) -> Iterator[tuple[object, socket.socket]]:
    """A relay with ``args``, and a plain client of it."""
    with (
        running_relay(spawn, *args) as (proc, port),
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock,
    ):
        yield proc, sock


def exchange(connect: Callable[[], socket.socket], data: bytes) -> bytes:
    """Connect, send ``data``, and read what comes (b"" at the end); errors raised."""
    with connect() as sock:
        sock.sendall(data)
        return sock.recv(len(data))


def duplex(sock: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` (then end it) while reading to the end; what came back."""

    def send() -> None:
        sock.sendall(payload)
        if isinstance(sock, ssl.SSLSocket):
            return  # SSLSocket has no half-close: the caller ends it
        sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    while len(got) < len(payload) or not isinstance(sock, ssl.SSLSocket):
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    sender.join(TIMEOUT)
    return bytes(got)


# -- termination -------------------------------------------------------------------------------


def test_termination_16_mib_both_ways(spawn, pki: dict[str, str]) -> None:
    """A Python ssl client through `relay --tls` to a plain target: 16 MiB each way, hashed."""
    size = 16 * MiB
    up, down = random_payload(size, seed=71), random_payload(size, seed=72)
    received: list[str] = []

    def target_side(conn: socket.socket) -> None:
        sender = threading.Thread(target=lambda: (conn.sendall(down), conn.shutdown(socket.SHUT_WR)))
        sender.start()
        digest = hashlib.sha256()
        while chunk := conn.recv(1 << 20):
            digest.update(chunk)
        sender.join(TIMEOUT)
        received.append(digest.hexdigest())

    target = Target(target_side)
    with running_relay(spawn, "0", target.address, *server_flags(pki)) as (_, port):
        sock = tls_client(pki, port)
        sender = threading.Thread(target=sock.sendall, args=(up,))
        sender.start()
        digest = hashlib.sha256()
        while chunk := sock.recv(1 << 20):  # b"" at the relay's close_notify (the target's FIN)
            digest.update(chunk)
        sender.join(TIMEOUT)
        sock.unwrap()  # our close_notify: the target's end of stream, cleanly
        sock.close()
        deadline = time.monotonic() + TIMEOUT
        while not received and time.monotonic() < deadline:
            target.threads[0].join(0.1)
    target.close()
    assert digest.hexdigest() == sha256(down)
    assert received == [sha256(up)]
    assert not target.errors


def test_termination_ephemeral_certificate_and_its_pin(spawn) -> None:
    """No --cert: a certificate made at start, its pin printed; a client pinning it gets through."""
    target = Target(echo)
    proc = spawn(WIRECAT, "relay", "--tls", "0", target.address)
    pin = read_line_matching(proc.popen.stderr, r"--pin (sha256:[0-9a-f]+) 127\.0\.0\.1 PORT").group(1)
    port = proc.listening_port()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)) as sock:
        assert fingerprint(sock.getpeercert(binary_form=True)) == pin
        sock.sendall(b"hello")
        assert sock.recv(5) == b"hello"
    proc.popen.terminate()
    proc.finish(timeout=TIMEOUT)
    target.close()


def test_half_close_request_reply_across_termination(spawn, pki: dict[str, str]) -> None:
    """The TLS client sends close_notify after its request; the target answers after its EOF."""

    def answer_after_eof(conn: socket.socket) -> None:
        request = recv_to_eof(conn)
        conn.sendall(b"got %d bytes\n" % len(request) + request.upper())

    target = Target(answer_after_eof)
    with running_relay(spawn, "0", target.address, *server_flags(pki)) as (_, port):
        end = blocking_client(pki, port)
        end.sendall(b"abc" * 100_000)
        end.shutdown_write()  # close_notify: the relay passes it on as a FIN
        assert end.recv_to_eof() == b"got 300000 bytes\n" + b"ABC" * 100_000
        end.endpoint.close()
    target.close()
    assert not target.errors


def test_a_tcp_end_without_close_notify_resets_the_target(spawn, pki: dict[str, str]) -> None:
    """A possible truncation is never passed on as a clean end: the target is reset."""
    outcome: list[str] = []

    def target_side(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
            outcome.append("eof")
        except ConnectionResetError:
            outcome.append("reset")

    target = Target(target_side)
    with running_relay(spawn, "0", target.address, *server_flags(pki), "-v") as (proc, port):
        end = blocking_client(pki, port)
        end.sendall(b"part of a request")
        # A FIN, no close_notify. (Not close(): with the session tickets
        # unread, the kernel would send a reset instead of the FIN.)
        end.endpoint.socket.shutdown(socket.SHUT_WR)
        assert read_line_matching(proc.popen.stderr, r"without TLS close_notify; the target was reset")
        end.endpoint.close()
    target.close()
    assert outcome == ["reset"]


def test_a_plain_fin_from_the_target_is_close_notify_to_the_client(spawn, pki: dict[str, str]) -> None:
    def greet(conn: socket.socket) -> None:
        conn.sendall(b"hello, and goodbye\n")
        conn.shutdown(socket.SHUT_WR)
        recv_to_eof(conn)

    target = Target(greet)
    with running_relay(spawn, "0", target.address, *server_flags(pki)) as (_, port):
        end = blocking_client(pki, port)
        assert (
            end.recv_to_eof() == b"hello, and goodbye\n"
        )  # 0 from recv_into: close_notify, not TLSTruncated
        end.shutdown_write()
        end.endpoint.close()
    target.close()


def test_a_plain_client_at_the_tls_port_is_one_line_and_the_relay_serves_on(
    spawn, pki: dict[str, str]
) -> None:
    target = Target(echo)
    with running_relay(spawn, "0", target.address, *server_flags(pki)) as (proc, port):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            recv_to_eof(plain)  # closed
        line = read_line_matching(
            proc.popen.stderr, r"plain HTTP request on a TLS port from 127\.0\.0\.1:\d+"
        )
        assert "Traceback" not in line.string
        with tls_client(pki, port) as sock:
            sock.sendall(b"still here")
            assert sock.recv(10) == b"still here"
    target.close()
    assert target.accepted == 1  # no target dialled for the plain client


def test_a_stalled_handshake_times_out_and_frees_its_slot(spawn, pki: dict[str, str]) -> None:
    """--max-conns 1: a client that sends nothing holds the one slot for --handshake-timeout only;
    and with a second slot, it blocks no other client meanwhile."""
    target = Target(echo)
    args = (*server_flags(pki), "--handshake-timeout", "1", "--max-conns", "2")
    with running_relay(spawn, "0", target.address, *args) as (proc, port):
        silent = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        started = time.monotonic()
        with tls_client(pki, port) as sock:  # served at once, beside the silent one
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
        assert time.monotonic() - started < 1.0
        assert read_line_matching(proc.popen.stderr, r"no TLS handshake with 127\.0\.0\.1:\d+ within 1 s")
        assert recv_to_eof(silent) == b""  # closed
        silent.close()
    target.close()

    target = Target(echo)
    args = (*server_flags(pki), "--handshake-timeout", "0.5", "--max-conns", "1")
    with running_relay(spawn, "0", target.address, *args) as (proc, port):
        silent = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        started = time.monotonic()
        with tls_client(pki, port) as sock:  # waits in the backlog until the slot is freed
            sock.sendall(b"y")
            assert sock.recv(1) == b"y"
        assert time.monotonic() - started < 5
        silent.close()
    target.close()


def test_mutual_tls_on_the_listening_side(spawn, pki: dict[str, str]) -> None:
    target = Target(echo)
    args = (*server_flags(pki), "--client-ca", pki["ca"], "-v")
    with running_relay(spawn, "0", target.address, *args) as (proc, port):
        # No certificate: refused (TLS 1.3 tells the client at its first read).
        with pytest.raises((ssl.SSLError, ConnectionError)):
            exchange(lambda: tls_client(pki, port), b"no cert")
        read_line_matching(proc.popen.stderr, r"presented no client certificate")
        # A certificate from another CA: refused.
        stranger = {"cert": pki["stranger"], "key": pki["stranger_key"]}
        with pytest.raises((ssl.SSLError, ConnectionError)):
            exchange(lambda: tls_client(pki, port, **stranger), b"stranger")
        read_line_matching(proc.popen.stderr, r"127\.0\.0\.1:\d+.*certificate")
        # The right one: through, and its subject under -v.
        with tls_client(pki, port, cert=pki["client"], key=pki["client_key"]) as sock:
            sock.sendall(b"known")
            assert sock.recv(5) == b"known"
        assert read_line_matching(proc.popen.stderr, r"client certificate .*relay-test-client")
    target.close()
    assert target.accepted == 1


def test_accept_proxy_protocol_then_tls(spawn, pki: dict[str, str]) -> None:
    """--accept-proxy-protocol with --tls: the header comes in the clear, then the client's TLS."""
    args = (*server_flags(pki), "--accept-proxy-protocol", "--proxy-protocol", "v1")
    got: list[bytes] = []
    arrived = threading.Event()

    def target_side(conn: socket.socket) -> None:
        data = b""
        while b"after the header" not in data and (chunk := conn.recv(200)):
            data += chunk
        got.append(data)
        arrived.set()

    target = Target(target_side)
    with running_relay(spawn, "0", target.address, *args) as (_, port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        sock.sendall(b"PROXY TCP4 192.0.2.1 127.0.0.1 5555 443\r\n")
        with client_ssl(pki).wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"after the header")
            assert arrived.wait(TIMEOUT)
    target.close()
    # The client's header, passed on in the clear; then its bytes, decrypted.
    assert got == [b"PROXY TCP4 192.0.2.1 127.0.0.1 5555 443\r\nafter the header"]


# -- origination -------------------------------------------------------------------------------


def test_origination_to_a_tls_target(spawn, pki: dict[str, str]) -> None:
    target = tls_target(pki, _echo_until_eof)
    address = "tls:" + target.address
    with via_relay(spawn, "0", address, "--target-cafile", pki["ca"]) as (_, sock):
        payload = random_payload(16 * MiB, seed=73)
        assert sha256(duplex(sock, payload)) == sha256(payload)
    target.close()
    assert not target.errors


def test_origination_half_close_request_reply(spawn, pki: dict[str, str]) -> None:
    """The plain client's FIN becomes close_notify; the TLS target answers after it; its
    close_notify becomes a FIN."""

    def answer_after_eof(end: Blocking) -> None:
        request = end.recv_to_eof()
        end.sendall(b"got %d bytes\n" % len(request))
        end.shutdown_write()

    target = tls_target(pki, answer_after_eof)
    with via_relay(spawn, "0", "tls:" + target.address, "--target-cafile", pki["ca"]) as (_, sock):
        sock.sendall(b"x" * 1000)
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b"got 1000 bytes\n"
    target.close()
    assert not target.errors


def test_origination_to_an_unknown_ca_resets_the_client_and_names_the_cause(
    spawn, pki: dict[str, str]
) -> None:
    target = tls_target(pki, _echo_until_eof)
    with running_relay(spawn, "0", "tls:" + target.address) as (proc, port):
        with pytest.raises(ConnectionResetError):
            exchange(lambda: socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT), b"hello")
        line = read_line_matching(proc.popen.stderr, r"unknown issuer.*the client was reset")
        assert "sha256:" in line.string  # the pin that would trust it
    target.close()


def test_origination_with_a_pin(spawn, pki: dict[str, str]) -> None:
    with open(pki["server"], "rb") as file:
        pin = fingerprint(file.read())
    target = tls_target(pki, _echo_until_eof)
    with via_relay(spawn, "0", "tls:" + target.address, "--target-pin", pin) as (_, sock):
        sock.sendall(b"pinned")
        assert sock.recv(6) == b"pinned"
    wrong = "sha256:" + "00" * 32
    with via_relay(spawn, "0", "tls:" + target.address, "--target-pin", wrong) as (proc, sock):
        assert recv_to_eof(sock) == b""
        assert read_line_matching(proc.popen.stderr, r"pin.*the client was reset")
    target.close()


def test_proxy_protocol_goes_in_the_clear_before_the_target_handshake(spawn, pki: dict[str, str]) -> None:
    headers: list[bytes] = []

    def handle(end: Blocking) -> None:
        headers.append(end.clear)  # type: ignore[attr-defined]
        _echo_until_eof(end)

    target = tls_target(pki, handle, before=1)
    args = ("--target-cafile", pki["ca"], "--proxy-protocol", "v1")
    with via_relay(spawn, "0", "tls:" + target.address, *args) as (_, sock):
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
    target.close()
    assert len(headers) == 1
    assert headers[0].startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ")


def test_both_sides_tls(spawn, pki: dict[str, str]) -> None:
    target = tls_target(pki, _echo_until_eof)
    args = (*server_flags(pki), "--target-cafile", pki["ca"])
    with running_relay(spawn, "0", "tls:" + target.address, *args) as (_, port):
        end = blocking_client(pki, port)
        payload = random_payload(256 * 1024, seed=74)  # (one thread: within the socket buffers)
        end.sendall(payload)
        end.shutdown_write()
        assert sha256(end.recv_to_eof()) == sha256(payload)
        end.endpoint.close()
    target.close()
    assert not target.errors


def test_target_flags_without_a_tls_target_are_a_usage_error(pki: dict[str, str]) -> None:
    from tests.conftest import run_wirecat

    done = run_wirecat("relay", "0", "127.0.0.1:9", "--target-cafile", pki["ca"])
    assert done.returncode == 2
    assert done.stderr.decode().startswith("wirecat: --target-cafile is for TLS")


# -- the library, and the conformance battery through two relays -------------------------------


@contextmanager
def library_relays(pki: dict[str, str], loop_name: str) -> Iterator[tuple[int, socket.socket]]:
    """plain client → relay 1 (tls: origination) → relay 2 (termination) → plain target."""
    factory = asyncio.new_event_loop
    if loop_name == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    import wirecat

    target = socket.create_server(("127.0.0.1", 0), backlog=64)
    loop = factory()
    ready = threading.Event()
    relays: list[object] = []

    async def start() -> None:
        terminating = await wirecat.relay(
            "127.0.0.1:0",
            f"127.0.0.1:{target.getsockname()[1]}",
            tls=ServerTLS(server_context(cert=pki["server"], key=pki["server_key"]), ""),
        )
        originating = await wirecat.relay(
            "127.0.0.1:0",
            f"tls:{terminating.address}",
            target_tls=ClientTLS(client_context(cafile=pki["ca"])),
        )
        relays.extend([terminating, originating])
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    port = int(str(relays[1].address).rsplit(":", 1)[1])  # type: ignore[attr-defined]
    try:
        yield port, target
    finally:
        for server in relays:
            asyncio.run_coroutine_threadsafe(server.shutdown(0), loop).result(10)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        target.close()


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_the_stream_battery_through_tls_origination_and_termination(
    pki: dict[str, str], loop_name: str
) -> None:
    """check_stream: full duplex, half-close both ways, send after the end, close, reset,
    across two TLS hops (FIN → close_notify → FIN, reset → reset)."""
    with library_relays(pki, loop_name) as (port, target):

        def make() -> tuple[StreamEnd, StreamEnd]:
            a = socket.create_connection(("127.0.0.1", port))
            b, _ = target.accept()
            for sock in (a, b):
                sock.setblocking(False)
            return SocketEndpoint(a), SocketEndpoint(b)

        check_stream(make, resets=True)


def test_library_usage_errors(pki: dict[str, str]) -> None:
    import wirecat
    from wirecat.errors import UsageError

    tls = ServerTLS(server_context(cert=pki["server"], key=pki["server_key"]), "")
    with pytest.raises(UsageError, match="not UDP"):
        asyncio.run(wirecat.relay("udp:127.0.0.1:0", "udp:127.0.0.1:53", tls=tls))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no host name to verify"):
        asyncio.run(wirecat.relay("127.0.0.1:0", "tls:unix:/tmp/nowhere.sock"))  # type: ignore[arg-type]
