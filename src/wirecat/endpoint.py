"""Endpoints: anything bytes come from or go to, behind one small interface.

A socket, stdin and stdout, a program's pipes, a file: the byte engines (the
stdio session's pumps, the relay) move bytes between two endpoints and need
only this of each:

* ``recv_into(buffer)`` and ``send(data)``: the bytes (``recv_into`` giving 0
  at the end of the stream; either raising ``BlockingIOError`` when a
  non-blocking endpoint has nothing to give or no room);
* ``shutdown_write()``: **the one half-close**: ``shutdown(SHUT_WR)`` for a
  socket (a FIN), closing the write end for a pipe (the program sees the end
  of its input); a TLS endpoint queues close_notify and goes on reading
  (TLS 1.3's half-close);
* ``abort()``: cut off, now: a reset (``SO_LINGER`` 0) for a TCP socket, and
  every thread waiting on it woken (:func:`wirecat.sockets.abort`);
* ``close()``; ``peer`` and ``local``, for messages;
* ``read_fd``/``write_fd``: what to wait on for readiness;
* ``zero_copy_fds``: ``(read fd, write fd)`` the kernel may ``splice``, or
  None when the bytes must pass through Python (a TLS endpoint says None:
  the relay's plain side still splices);
* ``take_pushback()``: bytes already read past a header (a PROXY header read
  with the first data) that must be handed on first.

**TLS** (:class:`wirecat.tls_endpoint.TLSEndpoint`, over ``ssl.SSLObject``
and memory BIOs) is an endpoint too, with three extras an engine must honour,
found with ``getattr`` or ``isinstance`` (plain endpoints lack them):

* ``pending`` (int): plaintext OpenSSL has decrypted but not handed out; read
  again before waiting on the descriptor, whose readiness will not fire for it;
* ``pending_output`` (bool) and ``flush()``: ciphertext queued (a close_notify,
  the tail of a send); wait for write readiness and call ``flush()`` until it
  returns True;
* ``wants_write``: after ``BlockingIOError``, True when the wait is for write
  readiness (TLS may need to send before it can read), False for read.

And one rule: a TLS endpoint has one owner thread. OpenSSL forbids two
threads on one connection, so the two-thread pumps cannot carry TLS; the
single-owner driver of :mod:`wirecat.session` (``run_tls_session``) moves
both directions from one selector loop.
"""

from __future__ import annotations

import os
import socket
from typing import Protocol, runtime_checkable

from wirecat.address import format_sockaddr
from wirecat.sockets import abort as abort_socket

__all__ = ["Endpoint", "FdEndpoint", "SocketBacked", "SocketEndpoint", "socket_names"]

#: What bytes are read into, and sent from (``collections.abc.Buffer`` is 3.12+).
Buffer = bytearray | memoryview
Data = bytes | bytearray | memoryview


@runtime_checkable
class Endpoint(Protocol):
    """Anything bytes come from or go to (see the module docstring)."""

    @property
    def peer(self) -> str:
        """The other end, for messages (``127.0.0.1:5000``, ``stdio``)."""
        ...

    @property
    def local(self) -> str:
        """Our end, for messages."""
        ...

    @property
    def read_fd(self) -> int:
        """The descriptor to wait on until bytes can be read."""
        ...

    @property
    def write_fd(self) -> int:
        """The descriptor to wait on until bytes can be written."""
        ...

    @property
    def zero_copy_fds(self) -> tuple[int, int] | None:
        """(read fd, write fd) the kernel may splice, or None (bytes pass through Python)."""
        ...

    def recv_into(self, buffer: Buffer) -> int:
        """Read into ``buffer``; 0 at the end of the stream."""
        ...

    def send(self, data: Data) -> int:
        """Write some of ``data``; how much was taken."""
        ...

    def shutdown_write(self) -> None:
        """The one half-close: no more bytes from us; reading goes on."""
        ...

    def abort(self) -> None:
        """Cut off now (a reset where there is one); the descriptors stay until close()."""
        ...

    def close(self) -> None:
        """Let go of the endpoint's descriptors. Idempotent."""
        ...

    def take_pushback(self) -> bytes:
        """Bytes read past a header, to hand on before anything else (once; then ``b""``)."""
        ...


def socket_names(sock: socket.socket, peer: str = "") -> tuple[str, str]:
    """(peer, local) of a socket for messages; ``peer`` given wins; a socket
    already disconnected says so rather than fail."""
    try:
        peer = peer or format_sockaddr(sock.getpeername())
    except OSError:
        peer = peer or "(disconnected)"
    try:
        local = format_sockaddr(sock.getsockname())
    except OSError:
        local = ""
    return peer, local


class SocketBacked:
    """What every endpoint over one stream socket has the same way: the socket,
    its descriptor for readiness both ways, TCP or not, a reset, a close.
    Subclasses set ``_sock``."""

    __slots__ = ()
    _sock: socket.socket

    @property
    def socket(self) -> socket.socket:
        """The socket (for options and readiness)."""
        return self._sock

    @property
    def read_fd(self) -> int:
        """The socket's descriptor."""
        return self._sock.fileno()

    @property
    def write_fd(self) -> int:
        """The socket's descriptor."""
        return self._sock.fileno()

    @property
    def is_tcp(self) -> bool:
        """TCP (not a Unix socket): where splice() stops at the urgent mark (wirecat.splice)."""
        return self._sock.family in (socket.AF_INET, socket.AF_INET6)

    def abort(self) -> None:
        """A reset, now (:func:`wirecat.sockets.abort`)."""
        abort_socket(self._sock)

    def close(self) -> None:
        """Close the socket (a reset if :meth:`abort` came first). Idempotent."""
        self._sock.close()


class SocketEndpoint(SocketBacked):
    """A connected stream socket (TCP or Unix) as an endpoint.

    Args:
        sock: the socket; the endpoint owns it from now on.
        pushback: bytes already read from it that belong to the stream (they
            come first, from :meth:`take_pushback` or :meth:`recv_into`).
    """

    __slots__ = ("_pushback", "_sock", "local", "peer")

    def __init__(self, sock: socket.socket, *, pushback: bytes = b"", peer: str = "") -> None:
        self._sock = sock
        self._pushback = pushback
        self.peer, self.local = socket_names(sock, peer)

    @property
    def zero_copy_fds(self) -> tuple[int, int] | None:
        """The socket's descriptor both ways: the kernel splices sockets."""
        fd = self._sock.fileno()
        return (fd, fd)

    def recv_into(self, buffer: Buffer) -> int:
        """Pushback first, then the socket."""
        if self._pushback:
            view = memoryview(buffer)
            n = min(len(view), len(self._pushback))
            view[:n] = self._pushback[:n]
            self._pushback = self._pushback[n:]
            return n
        return self._sock.recv_into(buffer)

    def send(self, data: Data) -> int:
        """``socket.send``: may take only part."""
        return self._sock.send(data)

    def pending_error(self) -> int:
        """The socket's pending error (``SO_ERROR``), 0 for none; reading it clears it."""
        return self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def shutdown_write(self) -> None:
        """``shutdown(SHUT_WR)``: a FIN after what was sent. A socket already gone is left alone."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the other direction will say how it ended

    def take_pushback(self) -> bytes:
        """The bytes read past a header, once."""
        data, self._pushback = self._pushback, b""
        return data


class FdEndpoint:
    """Two descriptors as an endpoint: stdin and stdout, a program's pipes, a file.

    Args:
        read_fd: where bytes come from (-1 for none).
        write_fd: where bytes go (-1 for none).
        owns_write: :meth:`shutdown_write` closes ``write_fd`` (a program's
            stdin: closing it is how the program sees the end of its input);
            otherwise it is left open (our own stdout).
        peer: its name, for messages.
    """

    __slots__ = ("_owns_write", "_read_fd", "_write_fd", "peer")

    local = ""

    def __init__(self, read_fd: int, write_fd: int, *, owns_write: bool = False, peer: str = "stdio") -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._owns_write = owns_write
        self.peer = peer

    @property
    def read_fd(self) -> int:
        """Where bytes come from."""
        return self._read_fd

    @property
    def write_fd(self) -> int:
        """Where bytes go."""
        return self._write_fd

    @property
    def zero_copy_fds(self) -> tuple[int, int] | None:
        """Both descriptors: pipes and files splice (a terminal is copied by the pump)."""
        return (self._read_fd, self._write_fd)

    def recv_into(self, buffer: Buffer) -> int:
        """One ``readv``."""
        return os.readv(self._read_fd, [buffer])

    def send(self, data: Data) -> int:
        """One ``write``."""
        return os.write(self._write_fd, data)

    def shutdown_write(self) -> None:
        """Close the write end if it is ours to close (see ``owns_write``)."""
        if self._owns_write and self._write_fd >= 0:
            fd, self._write_fd = self._write_fd, -1
            os.close(fd)

    def abort(self) -> None:
        """The same as :meth:`shutdown_write`: a pipe has no reset."""
        self.shutdown_write()

    def close(self) -> None:
        """Close what is ours (the write end, with ``owns_write``)."""
        self.shutdown_write()

    def take_pushback(self) -> bytes:
        """Nothing: no header is read from descriptors."""
        return b""
