"""TLSEndpoint on real loopback sockets, with trustme certificates.

Each test drives both ends: a server thread and a client thread, each the
single owner of its endpoint (the rule OpenSSL sets), both blocking on
readiness with bounded waits.
"""

from __future__ import annotations

import datetime
import pathlib
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
import trustme

from tests.conftest import random_payload, sha256
from wirecat.errors import CertificateError, HandshakeTimeout, TLSError, TLSTruncated, WirecatError
from wirecat.tls import ClientTLS, ServerTLS, client_context, fingerprint, server_context
from wirecat.tls_endpoint import TLSEndpoint

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def cert_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("certs")
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    paths = {"ca": directory / "ca.pem", "chain": directory / "chain.pem", "key": directory / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    with open(paths["chain"], "wb") as file:
        for blob in leaf.cert_chain_pems:
            file.write(blob.bytes())
    return {name: str(path) for name, path in paths.items()}


def server_tls(cert_files: dict[str, str], **kwargs: object) -> ServerTLS:
    context = server_context(cert=cert_files["chain"], key=cert_files["key"], **kwargs)  # type: ignore[arg-type]
    return ServerTLS(context, fingerprint(pathlib.Path(cert_files["chain"]).read_text()))


def client_tls(cert_files: dict[str, str], **kwargs: object) -> ClientTLS:
    pin = kwargs.get("pin")
    if pin is None and not kwargs.get("insecure"):
        kwargs.setdefault("cafile", cert_files["ca"])
    return ClientTLS(client_context(**kwargs), "127.0.0.1", pin)  # type: ignore[arg-type]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname(), timeout=WAIT)
    server, _ = listener.accept()
    listener.close()
    yield client, server
    client.close()
    server.close()


def wait(endpoint: TLSEndpoint) -> None:
    """Block until the readiness the endpoint asked for (bounded)."""
    events = selectors.EVENT_WRITE if endpoint.wants_write else selectors.EVENT_READ
    with selectors.DefaultSelector() as selector:
        selector.register(endpoint.socket, events)
        assert selector.select(WAIT), "no readiness within the bound"


def send_all(endpoint: TLSEndpoint, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[endpoint.send(view) :]
        except BlockingIOError:
            wait(endpoint)
    flush(endpoint)


def flush(endpoint: TLSEndpoint) -> None:
    while not endpoint.flush():
        endpoint.wants_write = True
        wait(endpoint)


def recv_all(endpoint: TLSEndpoint) -> bytes:
    """Everything until close_notify (0)."""
    buffer = bytearray(256 * 1024)
    data = bytearray()
    while True:
        try:
            n = endpoint.recv_into(buffer)
        except BlockingIOError:
            wait(endpoint)
            continue
        if n == 0:
            return bytes(data)
        data += buffer[:n]


def both(server: Callable[[], object], client: Callable[[], object]) -> tuple[object, object]:
    """Run the two sides at once; re-raise the first failure."""
    results: dict[str, object] = {}

    def run(name: str, job: Callable[[], object]) -> None:
        try:
            results[name] = job()
        except BaseException as exc:  # handed to the test thread
            results[name] = exc

    thread = threading.Thread(target=run, args=("server", server))
    thread.start()
    run("client", client)
    thread.join(WAIT * 3)
    assert not thread.is_alive()
    return results["server"], results["client"]


def handshaken(
    pair: tuple[socket.socket, socket.socket], stls: ServerTLS, ctls: ClientTLS
) -> tuple[TLSEndpoint, TLSEndpoint]:
    client_sock, server_sock = pair
    server = TLSEndpoint(server_sock, stls, server_side=True)
    client = TLSEndpoint(client_sock, ctls, server_side=False)
    s, c = both(lambda: server.handshake(WAIT), lambda: client.handshake(WAIT))
    for result in (s, c):
        if isinstance(result, BaseException):
            raise result
    return server, client


def test_handshake_records_the_session(
    pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]
) -> None:
    server, client = handshaken(pair, server_tls(cert_files), client_tls(cert_files, alpn="wc/1"))
    assert client.tls_version == "TLSv1.3"
    assert server.tls_version == "TLSv1.3"
    assert client.cipher
    assert client.cipher == server.cipher
    assert client.peer_certificate is not None
    assert client.peer_subject is not None
    assert "O=trustme" in client.peer_subject
    assert server.peer_certificate is None  # no client certificate asked
    assert client.zero_copy_fds is None
    assert client.read_fd == client.write_fd == pair[0].fileno()


def test_full_duplex_one_mebibyte(
    pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]
) -> None:
    server, client = handshaken(pair, server_tls(cert_files), client_tls(cert_files))
    up, down = random_payload(1 << 20, seed=1), random_payload(1 << 20, seed=2)

    def side(endpoint: TLSEndpoint, data: bytes) -> bytes:
        # One owner per endpoint: interleave sending and receiving in one loop.
        buffer = bytearray(256 * 1024)
        got = bytearray()
        view = memoryview(data)
        shut = done = False
        with selectors.DefaultSelector() as selector:
            selector.register(endpoint.socket, selectors.EVENT_READ | selectors.EVENT_WRITE)
            for _ in range(100_000):
                progressed = False
                if view:
                    try:
                        view = view[endpoint.send(view[: 64 * 1024]) :]
                        progressed = True
                    except BlockingIOError:
                        pass
                elif not shut and endpoint.flush():
                    endpoint.shutdown_write()
                    shut = True
                if endpoint.pending_output:
                    endpoint.flush()
                if not done:
                    try:
                        n = endpoint.recv_into(buffer)
                        if n == 0:
                            done = True
                        got += buffer[:n]
                        progressed = True
                    except BlockingIOError:
                        pass
                if done and shut and not endpoint.pending_output:
                    return bytes(got)
                if not progressed:
                    selector.select(WAIT)
        raise AssertionError("not done")

    s, c = both(lambda: side(server, down), lambda: side(client, up))
    assert isinstance(s, bytes)
    assert isinstance(c, bytes)
    assert sha256(s) == sha256(up)
    assert sha256(c) == sha256(down)


@pytest.mark.parametrize("first", ["client", "server"])
def test_half_close_either_way(
    first: str, pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]
) -> None:
    """close_notify from one side; the other still sends its reply, which arrives whole."""
    server, client = handshaken(pair, server_tls(cert_files), client_tls(cert_files))
    closer, answerer = (client, server) if first == "client" else (server, client)
    request, reply = b"request" * 1000, random_payload(300_000, seed=3)

    def close_then_read() -> bytes:
        send_all(closer, request)
        closer.shutdown_write()
        flush(closer)
        return recv_all(closer)

    def read_then_answer() -> bytes:
        got = recv_all(answerer)  # ends at close_notify
        send_all(answerer, reply)
        answerer.shutdown_write()
        flush(answerer)
        return got

    got_reply, got_request = both(close_then_read, read_then_answer)
    assert got_request == request
    assert isinstance(got_reply, bytes)
    assert sha256(got_reply) == sha256(reply)


def test_tcp_end_without_close_notify_is_truncation(
    pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]
) -> None:
    server, client = handshaken(pair, server_tls(cert_files), client_tls(cert_files))
    send_all(server, b"partial")
    pair[1].shutdown(socket.SHUT_WR)  # a FIN, no close_notify
    buffer = bytearray(1024)
    got = b""

    def read_on() -> None:
        nonlocal got
        for _ in range(100):
            try:
                n = client.recv_into(buffer)
                got += buffer[:n]
            except BlockingIOError:
                wait(client)

    with pytest.raises(TLSTruncated) as info:
        read_on()
    assert got == b"partial"
    assert info.value.exit_code == 8
    assert "without TLS close_notify" in info.value.message


def test_pin_match(pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]) -> None:
    pin = fingerprint(pathlib.Path(cert_files["chain"]).read_text())
    _server, client = handshaken(pair, server_tls(cert_files), client_tls(cert_files, pin=pin))
    assert client.peer_certificate is not None
    assert fingerprint(client.peer_certificate) == pin


def test_pin_mismatch_fails(pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]) -> None:
    with pytest.raises(CertificateError, match="is not the pinned one"):
        handshaken(pair, server_tls(cert_files), client_tls(cert_files, pin="sha256:" + "ab" * 32))


def test_untrusted_certificate_is_explained(
    pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]
) -> None:
    """Verification against another CA fails; the message names the issuer (a second handshake)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stls = server_tls(cert_files)
    stop = threading.Event()

    def serve() -> None:
        # The real handshake, then the second one that fetches the certificate.
        for _ in range(2):
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            with sock:
                try:
                    TLSEndpoint(sock, stls, server_side=True).handshake(WAIT)
                except WirecatError:
                    pass
            if stop.is_set():
                return

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        other = trustme.CA()
        context = ssl.create_default_context()
        other.configure_trust(context)
        sock = socket.create_connection(listener.getsockname(), timeout=WAIT)
        with sock, pytest.raises(CertificateError) as info:
            TLSEndpoint(sock, ClientTLS(context, "localhost"), server_side=False).handshake(WAIT)
        assert "unknown issuer" in info.value.message
        assert "sha256:" in info.value.hint  # the pin that would trust it: fetched
    finally:
        stop.set()
        listener.close()
        thread.join(WAIT)


def test_name_mismatch(pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]) -> None:
    ctls = ClientTLS(client_context(cafile=cert_files["ca"]), "wrong.example")
    client_sock, server_sock = pair
    server = TLSEndpoint(server_sock, server_tls(cert_files), server_side=True)
    client = TLSEndpoint(client_sock, ctls, server_side=False)
    s, c = both(lambda: server.handshake(WAIT), lambda: client.handshake(WAIT))
    assert isinstance(c, CertificateError)
    assert "does not hold the name 'wrong.example'" in c.message
    assert isinstance(s, WirecatError)


def test_expired_certificate(
    pair: tuple[socket.socket, socket.socket], ca: trustme.CA, tmp_path: object
) -> None:
    old = datetime.datetime(2020, 1, 1)
    leaf = ca.issue_cert("127.0.0.1", not_before=old, not_after=old + datetime.timedelta(days=1))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    client_sock, server_sock = pair
    cctx = ssl.create_default_context()
    ca.configure_trust(cctx)
    server = TLSEndpoint(server_sock, context, server_side=True)
    client = TLSEndpoint(client_sock, ClientTLS(cctx, "127.0.0.1"), server_side=False)
    _, c = both(lambda: server.handshake(WAIT), lambda: client.handshake(WAIT))
    assert isinstance(c, CertificateError)
    # (No second handshake here, so no date: the CLI tests see the date.)
    assert c.message == "the certificate of " + client.peer + " expired"


def test_handshake_timeout(pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]) -> None:
    _, server_sock = pair
    server = TLSEndpoint(server_sock, server_tls(cert_files), server_side=True)
    with pytest.raises(HandshakeTimeout) as info:
        server.handshake(0.2)
    assert info.value.exit_code == 6


def test_plain_client_at_a_tls_server(
    pair: tuple[socket.socket, socket.socket], cert_files: dict[str, str]
) -> None:
    client_sock, server_sock = pair
    client_sock.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"x" * 100)
    server = TLSEndpoint(server_sock, server_tls(cert_files), server_side=True)
    with pytest.raises(TLSError) as info:
        server.handshake(WAIT)
    assert "TLS" in info.value.message


def test_tls_client_at_a_plain_server(pair: tuple[socket.socket, socket.socket]) -> None:
    client_sock, server_sock = pair
    server_sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n" + b"x" * 200)
    client = TLSEndpoint(client_sock, ClientTLS(client_context(insecure=True)), server_side=False)
    with pytest.raises(TLSError) as info:
        client.handshake(WAIT)
    assert "did not answer TLS" in info.value.message


def test_unix_socket(cert_files: dict[str, str]) -> None:
    a, b = socket.socketpair()
    with a, b:
        server = TLSEndpoint(b, server_tls(cert_files), server_side=True, peer="unix")
        client = TLSEndpoint(a, client_tls(cert_files), server_side=False, peer="unix")
        s, c = both(lambda: server.handshake(WAIT), lambda: client.handshake(WAIT))
        assert s is None
        assert c is None
        send_all(client, b"over unix")
        client.shutdown_write()
        flush(client)
        assert recv_all(server) == b"over unix"
