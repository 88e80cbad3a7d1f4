"""``wirecat.blocking.connect(tls=...)``: the CLI's verification, pins and error words, from Python."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import trustme

from wirecat import blocking
from wirecat.errors import CertificateError
from wirecat.tls import ClientTLS, client_context, fingerprint

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server() -> Iterator[tuple[int, str, trustme.CA]]:
    """A TLS echo of one line per connection (up to three connections), certificate for 127.0.0.1."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))

    stop = threading.Event()

    def serve() -> None:
        for _ in range(3):
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            if stop.is_set():
                sock.close()
                return
            sock.settimeout(10)
            try:
                with context.wrap_socket(sock, server_side=True) as tls:
                    tls.sendall(tls.recv(100))
                    tls.unwrap()
            except OSError:
                sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    yield port, fingerprint(leaf.cert_chain_pems[0].bytes()), ca
    stop.set()
    if thread.is_alive():
        socket.create_connection(("127.0.0.1", port), timeout=10).close()  # wakes accept()
    thread.join(10)
    listener.close()


def test_verified_with_the_ca(server: tuple[int, str, trustme.CA]) -> None:
    port, _, ca = server
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with blocking.connect(f"127.0.0.1:{port}", tls=context, timeout=10) as conn:
        conn.send(b"ping")
        assert conn.recv() == b"ping"


def test_pinned(server: tuple[int, str, trustme.CA]) -> None:
    port, pin, _ = server
    tls = ClientTLS(client_context(pin=pin), pin=pin)
    with blocking.connect(f"tls:127.0.0.1:{port}", tls=tls, timeout=10) as conn:
        conn.send(b"pong")
        assert conn.recv() == b"pong"


def test_untrusted_is_worded_with_the_pin(server: tuple[int, str, trustme.CA]) -> None:
    port, pin, _ = server
    with pytest.raises(CertificateError) as info:
        blocking.connect(f"tls:127.0.0.1:{port}", timeout=10)  # the system's store: trustme is not in it
    assert "unknown issuer" in info.value.message
    assert pin in info.value.hint
