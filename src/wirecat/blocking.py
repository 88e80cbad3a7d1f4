"""A blocking client, for scripts and learners who do not use asyncio.

The same framing and the same guarantees as the asyncio :class:`~wirecat.Connection`,
on a plain blocking socket::

    from wirecat import blocking
    from wirecat.framing import Lines

    with blocking.connect("127.0.0.1:8000", framing=Lines()) as conn:
        conn.send(b"hello")
        print(conn.recv())        # one whole line, however TCP split it

It is the four steps of a TCP client (socket, connect, communicate, close)
done right: ``sendall`` (``send`` may send only part), ``recv_into`` a
reused buffer in a loop until a whole frame is in (TCP keeps no message
boundaries), ``b""`` from the socket read as end of stream, and a ``with``
block that always closes the socket.
"""

from __future__ import annotations

import collections
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Any, final

from wirecat.address import Address, as_address, format_sockaddr
from wirecat.dial import dial
from wirecat.errors import ConnectionClosed, FrameError, IdleTimeout, UsageError
from wirecat.framing import BytesLike, Framer, check_framer
from wirecat.limits import check_seconds
from wirecat.sockets import Op, check_tls, configure_stream, translate_os_error

__all__ = ["BlockingConnection", "connect"]

#: Bytes asked of each recv_into(); 64 KiB covers any message a script sends
#: in one read, and the buffer is reused, so no allocation per read.
_RECEIVE_SIZE = 64 * 1024


@final
class BlockingConnection:
    """A framed connection on a blocking socket: ``send``, ``recv``, ``for``, ``close``.

    Made by :func:`connect`. Not thread-safe: use it from one thread.

    Attributes:
        peer: the server, as ``127.0.0.1:8000`` or ``unix:/path``.
        local: our end, in the same form.
        bytes_sent: bytes sent so far (after framing).
        bytes_received: bytes received so far.
    """

    def __init__(self, sock: socket.socket, framer: Framer, *, timeout: float | None = None) -> None:
        """Wrap a connected socket (:func:`connect` does this for you)."""
        self._sock = sock
        self._framer = framer
        self._frames: collections.deque[bytes] = collections.deque()
        self._buffer = bytearray(_RECEIVE_SIZE)
        self._eof = False
        self._closed = False
        #: A framing error, raised once the good frames before it are read.
        self._error: FrameError | None = None
        self._timeout = timeout
        sock.settimeout(timeout)
        try:
            self.peer = (
                format_sockaddr(sock.getpeername())
                if sock.family != socket.AF_UNIX
                else str(sock.getpeername() or "unix:(unnamed)")
            )
        except OSError:  # reset right after connecting (ENOTCONN): the first recv() will say so
            self.peer = "(disconnected peer)"
        if sock.family == socket.AF_UNIX and not self.peer.startswith("unix:"):
            self.peer = f"unix:{self.peer}"
        self.local = format_sockaddr(sock.getsockname())
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for options; reading it directly breaks framing)."""
        return self._sock

    def send(self, frame: BytesLike) -> None:
        """Send all of ``frame`` (``sendall``), framed.

        Raises:
            ConnectionClosed: after close().
            PeerReset: the server reset the connection.
            FrameError: the frame does not fit the framing.
        """
        if self._closed:
            raise ConnectionClosed(f"cannot send to {self.peer}: the connection is closed")
        data = self._framer.encode(frame)
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise IdleTimeout(f"sending to {self.peer} timed out after {self._timeout:g} s") from None
        except OSError as exc:
            raise translate_os_error(exc, Op.SEND, self.peer) from exc
        self.bytes_sent += len(data)

    def recv(self) -> bytes | None:
        """The next whole frame, or None once the server has closed.

        Raises:
            FrameError: the server broke the framing.
            IdleTimeout: nothing came within the timeout given to connect().
            PeerReset: the server reset the connection.
        """
        while not self._frames:
            if self._error is not None:
                raise self._error  # and again on every later call: the stream is broken
            if self._eof or self._closed:
                return None
            try:
                count = self._sock.recv_into(self._buffer)
            except TimeoutError:
                raise IdleTimeout(f"nothing from {self.peer} for {self._timeout:g} s") from None
            except OSError as exc:
                raise translate_os_error(exc, Op.RECEIVE, self.peer) from exc
            self.bytes_received += count
            if count == 0:  # b"": the server sent FIN
                self._eof = True
            try:
                self._frames.extend(self._framer.feed(memoryview(self._buffer)[:count] if count else b""))
            except FrameError as exc:
                # The whole frames before the bad bytes are the caller's first;
                # nothing after them is parsed (it would be mid-frame garbage).
                self._frames.extend(exc.frames)
                self._error = exc
        return self._frames.popleft()

    def __iter__(self) -> Iterator[bytes]:
        """Frames until the server closes."""
        while (frame := self.recv()) is not None:
            yield frame

    def send_eof(self) -> None:
        """Half-close (``shutdown(SHUT_WR)``): the server sees end of stream; we can still receive."""
        if not self._closed:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                raise translate_os_error(exc, Op.SHUTDOWN, self.peer) from exc

    def close(self) -> None:
        """Close the socket. Idempotent."""
        if not self._closed:
            self._closed = True
            self._sock.close()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<BlockingConnection {self.local} <-> {self.peer} {state} {self._framer!r}>"


def connect(
    address: str | Address,
    *,
    framing: Framer | None = None,
    timeout: float | None = None,
    tls: Any = None,
    server_hostname: str | None = None,
) -> BlockingConnection:
    """Connect to ``address`` (``host:port``, ``[::1]:port``, ``unix:/path``).

    Args:
        framing: a framer (Raw when None); the connection gets a clone.
        timeout: seconds for connecting, and then for each send or receive.
        tls: speak TLS: True (the system's trust store), a
            :class:`wirecat.tls.ClientTLS` (a pin, a CA file...), or an
            ``ssl.SSLContext``. A ``tls:host:port`` address means True.
            Verified as ``wirecat connect --tls`` verifies, with the same
            one-line errors.
        server_hostname: the name to check the certificate against (the host
            by default).

    Raises:
        ResolveError, ConnectError, ConnectTimeout, UsageError;
        CertificateError, TLSError, HandshakeTimeout (the handshake, bounded
        by ``timeout`` or 10 s).
    """
    target = as_address(address)
    framer = check_framer(framing)
    if tls is not None and tls is not True and type(tls).__name__ != "ClientTLS":
        check_tls(tls, server=False)
    timeout = check_seconds(timeout, "timeout")
    sock = dial(target, timeout=timeout)
    configure_stream(sock, interactive=True)
    if tls is not None or target.tls:
        try:
            sock = _start_tls(sock, target, True if tls is None else tls, server_hostname, timeout)
        except BaseException:
            sock.close()
            raise
    return BlockingConnection(sock, framer.clone(), timeout=timeout)


def _start_tls(
    sock: socket.socket, target: Address, tls: Any, server_hostname: str | None, timeout: float | None
) -> socket.socket:
    """The client's handshake over ``sock``, verified, pinned and worded as the CLI's."""
    import ssl

    from wirecat import tls as tls_module
    from wirecat.limits import DEFAULT_HANDSHAKE_TIMEOUT

    if tls is True:
        bundle = tls_module.ClientTLS(tls_module.client_context())
    elif isinstance(tls, ssl.SSLContext):
        bundle = tls_module.ClientTLS(tls)
    elif isinstance(tls, tls_module.ClientTLS):
        bundle = tls
    else:
        raise UsageError(f"bad tls {tls!r}", "give True, a wirecat.tls.ClientTLS or an ssl.SSLContext")
    host = bundle.server_hostname or server_hostname or (None if target.is_unix else target.host or None)
    peer = str(target)
    bound = DEFAULT_HANDSHAKE_TIMEOUT if timeout is None else timeout
    wrapped = bundle.context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    try:
        _handshake(wrapped, bundle, host, peer, bound)
    except BaseException:
        wrapped.close()  # (the plain socket it took is detached: this closes the descriptor)
        raise
    wrapped.settimeout(timeout)
    return wrapped


def _handshake(wrapped: Any, bundle: Any, host: str | None, peer: str, bound: float) -> None:
    import ssl

    from wirecat import tls as tls_module
    from wirecat.errors import HandshakeTimeout
    from wirecat.tls_endpoint import fetch_certificate

    wrapped.settimeout(bound)
    try:
        wrapped.do_handshake()
    except ssl.SSLError as exc:
        der = None
        if isinstance(exc, ssl.SSLCertVerificationError):
            # A failed verification leaves no certificate: fetch it for the words.
            der = fetch_certificate(
                wrapped.getpeername(), wrapped.family, server_hostname=host, timeout=bound
            )
        raise tls_module.translate_ssl_error(exc, peer, server_hostname=host, certificate=der) from None
    except TimeoutError:
        raise HandshakeTimeout(f"no TLS handshake with {peer} within {bound:g} s") from None
    except OSError as exc:
        raise translate_os_error(exc, Op.RECEIVE, peer) from None
    if bundle.pin is not None:
        tls_module.check_pin(wrapped.getpeercert(binary_form=True), bundle.pin, peer)
