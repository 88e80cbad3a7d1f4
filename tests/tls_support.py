"""A TLS server on loopback in a thread, and certificates from ``trustme``, for the TLS tests.

:class:`ServerThread` accepts connections one at a time on 127.0.0.1 (or
``::1``), handshakes with the context given (none: plain TCP), sends a
greeting, and records what went wrong on its side (an ``ssl.SSLError`` for
the server-side error wording). It is stopped by shutting its listening
socket down, which wakes ``accept()`` on Linux: no polling, no sleeps.
"""

from __future__ import annotations

import datetime
import queue
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trustme

__all__ = ["ServerThread", "issue", "serving", "write_pair"]

#: Bound on any one connection's handshake and I/O on the server's side.
IO_TIMEOUT = 10.0


class ServerThread:
    """A one-connection-at-a-time TLS (or plain) server on loopback.

    Args:
        context: the server's context; None for plain TCP.
        greeting: sent after the handshake (a plain server sends it at once).
        host: ``127.0.0.1`` or ``::1``.
        read_first: read what the client sends (up to its end or 64 KiB)
            before answering: a plain server that waits for the client.
    """

    def __init__(
        self,
        context: ssl.SSLContext | None,
        *,
        greeting: bytes = b"hello\n",
        host: str = "127.0.0.1",
        read_first: bool = False,
    ) -> None:
        self.context = context
        self.greeting = greeting
        self.read_first = read_first
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(8)
        self.host = host
        self.port: int = self.listener.getsockname()[1]
        #: Server-side failures, in order (``ssl.SSLError`` or ``OSError``).
        self.errors: queue.Queue[OSError] = queue.Queue()
        #: What each handshake's client sent as its certificate (DER), or None.
        self.client_certs: queue.Queue[bytes | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="tls-test-server", daemon=True)

    def start(self) -> ServerThread:
        """Start accepting."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting (wakes the blocked accept) and wait for the thread."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(timeout=IO_TIMEOUT + 5)
        self.listener.close()

    def server_error(self, timeout: float = IO_TIMEOUT) -> OSError:
        """The next server-side failure, waiting up to ``timeout``."""
        return self.errors.get(timeout=timeout)

    def _serve(self) -> None:
        # Bounded by the test: stop() ends it; each connection is bounded by IO_TIMEOUT.
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # stop(): the listening socket was shut down
            with conn:
                conn.settimeout(IO_TIMEOUT)
                try:
                    self._one(conn)
                except OSError as exc:
                    self.errors.put(exc)

    def _one(self, conn: socket.socket) -> None:
        if self.context is None:
            if self.read_first:
                conn.recv(65536)
            conn.sendall(self.greeting)
            return
        with self.context.wrap_socket(conn, server_side=True) as tls_conn:
            self.client_certs.put(tls_conn.getpeercert(binary_form=True))
            tls_conn.sendall(self.greeting)
            try:
                tls_conn.unwrap()  # close_notify, and wait (bounded) for the client's
            except (OSError, ValueError):
                pass


@contextmanager
def serving(context: ssl.SSLContext | None, **kwargs: object) -> Iterator[ServerThread]:
    """A started :class:`ServerThread`, stopped at the end."""
    server = ServerThread(context, **kwargs).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def issue(
    ca: trustme.CA,
    *names: str,
    days_from: float = -1,
    days_to: float = 30,
) -> trustme.LeafCert:
    """A leaf for ``names`` valid from ``days_from`` to ``days_to`` days from now."""
    now = datetime.datetime.now(datetime.UTC)
    return ca.issue_cert(
        *names,
        not_before=now + datetime.timedelta(days=days_from),
        not_after=now + datetime.timedelta(days=days_to),
    )


def write_pair(leaf: trustme.LeafCert, directory: Path, stem: str = "server") -> tuple[str, str]:
    """Write a leaf's chain and key as PEM files; return (cert path, key path)."""
    cert = directory / f"{stem}.pem"
    key = directory / f"{stem}.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return str(cert), str(key)
