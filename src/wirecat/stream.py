"""One connection, as a handler sees it: :class:`Connection`, and :func:`connect`.

A :class:`Connection` sends and receives *frames* (see :mod:`wirecat.framing`)
over one TCP, TLS or Unix stream. It does the parts that hand-written socket
code gets wrong: ``send()`` always sends all of it and waits while the peer is
slow (backpressure), ``recv()`` returns whole messages whatever way TCP split
them, ``None`` means the peer closed, and a frame over its size limit is an
error instead of a growing buffer.

Why it is built this way (measured on the development machine, uvloop, 64-byte
echo, 10 connections, a C load client): a plain asyncio ``Protocol`` echo
answers ~150k messages/s, asyncio streams ~37k, uvloop streams ~105k. The
difference is what happens per read: streams wake a task through a future for
every chunk. So a Connection *is* its transport's ``BufferedProtocol``:

* every connection of a loop reads into one shared 256 KiB buffer
  (:func:`_receive_buffer`), and the framer copies out only whole frames, so an
  idle connection holds no receive buffer at all;
* ``recv()`` returns a frame that is already queued without suspending;
* :meth:`Connection.handle_frames` hands frames to a plain callback right in
  the protocol's receive path, with no task switch at all: the echo server
  uses it to run at the raw Protocol's speed.

Reading pauses while frames queue up unread (``max_queued``) or while the
peer does not read what we send (the transport's high-water mark), so memory
stays bounded whatever a peer does.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import socket
import sys
import termios
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, final

from wirecat import sockets
from wirecat.address import Address, as_address, format_sockaddr
from wirecat.dial import adial
from wirecat.errors import (
    ConnectionClosed,
    ConnectTimeout,
    FrameError,
    FrameTimeout,
    HandshakeTimeout,
    IdleTimeout,
    PeerReset,
    TLSError,
    TLSTruncated,
    UsageError,
    WirecatError,
)
from wirecat.framing import BytesLike, Framer, Raw, check_framer
from wirecat.lifetime import IdleClock
from wirecat.limits import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_RECEIVE_QUEUE, check_seconds
from wirecat.sockets import Op, translate_os_error

if TYPE_CHECKING:
    import ssl

    from wirecat.tls import ClientTLS

__all__ = ["Connection", "connect", "new_connection"]

#: Bytes read per recv_into(): the loop-wide receive buffer. ≥128 KiB measured
#: fastest for bulk on this machine; one buffer per loop, so it costs nothing
#: per connection.
_RECEIVE_BUFFER_SIZE = 256 * 1024

_buffers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[bytearray, memoryview]] = (
    weakref.WeakKeyDictionary()
)


def _receive_buffer(loop: asyncio.AbstractEventLoop) -> memoryview:
    """The receive buffer shared by every connection of ``loop``.

    Sharing is safe because the transport calls ``buffer_updated()`` right
    after each read into it, before any other protocol's ``get_buffer()``, and
    the framers copy out what they keep.
    """
    entry = _buffers.get(loop)
    if entry is None:
        buffer = bytearray(_RECEIVE_BUFFER_SIZE)
        entry = _buffers[loop] = (buffer, memoryview(buffer))
    return entry[1]


FrameCallback = Callable[[bytes], object]


class Connection(asyncio.Protocol):
    """A framed connection: ``send``, ``recv``, ``async for``, ``close``.

    Handlers get one from :func:`wirecat.serve`; clients from :func:`connect`.
    It is also the asyncio protocol of its transport: the protocol methods
    (``connection_made``, ``get_buffer``, ...) are called by the event loop,
    not by users.

    Attributes:
        peer: the other end, as ``127.0.0.1:51234`` or ``unix:/path``.
        local: our end, in the same form.
        bytes_received: bytes read from the socket so far.
        bytes_sent: bytes handed to the socket so far (after framing).
        end_reason: why the connection ended or is ending, in words
            (``"the peer closed"``, ``"idle for 30 s"``), or ``""``.
    """

    __slots__ = (
        "_callback",
        "_closed",
        "_closing",
        "_drain_waiter",
        "_eof",
        "_eof_sent",
        "_error",
        "_frame_began",
        "_frame_handle",
        "_frame_timeout",
        "_framer",
        "_frames",
        "_idle_handle",
        "_idle_timeout",
        "_last_active",
        "_loop",
        "_lost",
        "_max_queued",
        "_moved_at_check",
        "_queued",
        "_raw",
        "_read_paused_for_queue",
        "_read_paused_for_write",
        "_ssl",
        "_stopping",
        "_transport",
        "_waiter",
        "_write_paused",
        "bytes_received",
        "bytes_sent",
        "end_reason",
        "local",
        "peer",
        "started",
    )

    def __init__(
        self,
        framer: Framer | None = None,
        *,
        idle_timeout: float | None = None,
        max_queued: int = DEFAULT_RECEIVE_QUEUE,
        frame_timeout: float | None = None,
    ) -> None:
        """Make a connection for a transport to come (done by serve/connect).

        Args:
            framer: how bytes become frames; :class:`~wirecat.framing.Raw`
                (bytes as they come) when None. Not shared: give each
                connection its own (``framer.clone()``).
            idle_timeout: end the connection after this many seconds with no
                bytes moving either way; None for never.
            max_queued: bytes of received frames held while nobody calls
                ``recv()``; reading from the socket pauses above it.
            frame_timeout: a frame that has begun (its first byte came) must
                be complete within this many seconds, or receiving fails with
                :class:`~wirecat.errors.FrameTimeout`; None for no bound. Each
                byte restarts the idle clock, so only this stops a peer that
                drips a line a byte at a time from holding the connection for
                ever (slowloris). Raw framing has no frames to bound.
        """
        self._framer: Framer = framer if framer is not None else Raw()
        # Raw framing skips the framer on the hot path: one Python call less each way.
        self._raw = isinstance(self._framer, Raw)
        self._idle_timeout = idle_timeout
        self._frame_timeout = None if self._raw else frame_timeout
        self._frame_began: float | None = None  # loop time of the first byte of a frame in progress
        self._frame_handle: asyncio.TimerHandle | None = None
        self._max_queued = max_queued
        self._frames: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._callback: FrameCallback | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        # Made by a protocol factory, so always inside the running loop.
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._idle_handle: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self._eof = False  # the peer sent FIN (or the connection is gone)
        self._lost = False  # connection_lost() was called
        self._closing = False  # close() or abort() was called
        self._eof_sent = False  # send_eof() was called: no more writes
        self._stopping = False  # a graceful shutdown asked us to end between frames
        self._write_paused = False
        self._read_paused_for_queue = False
        self._read_paused_for_write = False
        self._ssl: ssl.SSLObject | None = None  # the TLS session, once the handshake is done
        self._last_active = 0.0
        self._moved_at_check = 0
        self.started = 0.0
        self.peer = ""
        self.local = ""
        self.bytes_received = 0
        self.bytes_sent = 0
        self.end_reason = ""

    # -- asyncio protocol callbacks (called by the event loop) ---------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The transport is ready: note the addresses, start the idle clock."""
        # uvloop's transports do not subclass asyncio.Transport, but are one.
        self._transport = transport  # type: ignore[assignment]
        loop = self._loop
        # (Called once the TLS handshake is done, on a TLS transport.)
        self._ssl = transport.get_extra_info("ssl_object")
        self.peer = _address_text(transport.get_extra_info("peername"), transport)
        self.local = _address_text(transport.get_extra_info("sockname"), transport)
        self.started = self._last_active = loop.time()
        if self._idle_timeout is not None:
            self._idle_handle = loop.call_later(self._idle_timeout / 4, self._check_idle)

    def data_received(self, data: bytes) -> None:
        """Bytes arrived (uvloop, which reads into its own loop-wide buffer): frame them."""
        self.bytes_received += len(data)
        self._last_active = self._loop.time()
        if self._raw:
            callback = self._callback
            if callback is not None:
                try:
                    callback(data)
                except Exception as exc:
                    self._fail(exc)
                return
            frames = [data]
        else:
            try:
                frames = self._framer.feed(data)
            except FrameError as exc:  # this connection only; its good frames first
                if exc.frames:
                    self._deliver(exc.frames)
                self._fail(exc)
                return
            if self._frame_timeout is not None:
                self._time_frame(bool(frames))
            if not frames:
                return
        self._deliver(frames)

    def _time_frame(self, completed: bool) -> None:
        """Start or stop the frame clock after a read (frame_timeout only)."""
        if not self._framer.buffered:
            self._frame_began = None  # between frames: nothing to bound
            return
        if completed or self._frame_began is None:
            self._frame_began = self._last_active  # a new frame began in this read
        if self._frame_handle is None:
            assert self._frame_timeout is not None
            self._frame_handle = self._loop.call_later(self._frame_timeout, self._check_frame)

    def _check_frame(self) -> None:
        # Armed when a frame begins, never cancelled on the hot path: when it
        # fires it finds the frame done (and stops), or in progress (and looks
        # again when that one could expire), or too slow.
        self._frame_handle = None
        began, timeout = self._frame_began, self._frame_timeout
        if began is None or timeout is None or self._lost:
            return
        now = self._loop.time()
        if self._read_paused_for_queue or self._read_paused_for_write:
            # We stopped reading (backpressure), not the peer sending: its
            # frame gets a whole timeout again once we read on.
            self._frame_began = began = now
        late = now - began
        if late < timeout:
            self._frame_handle = self._loop.call_later(timeout - late, self._check_frame)
            return
        self._frame_began = None
        buffered = self._framer.buffered
        self._fail(
            FrameTimeout(
                f"{self.peer} took more than {timeout:g} s to send one frame"
                f" ({buffered} byte{'s' if buffered != 1 else ''} of it so far)"
            )
        )

    def eof_received(self) -> bool:
        """The peer half-closed: deliver a last unterminated frame, wake the reader.

        Returns True for plain TCP so our side stays open to send the reply
        (half-close); TLS cannot keep it open, and asyncio warns if asked.
        Over TLS, an end of stream without the peer's close_notify is a
        possible truncation (:class:`~wirecat.errors.TLSTruncated`), never a
        clean end, and a frame it left unfinished is not delivered.
        """
        self._eof = True
        if self._ssl is not None and not self._closing:
            # (After our own close, what the peer does is no truncation of ours.)
            error = self._tls_end_error(self._ssl)
            if error is not None:
                self._fail(error)
                return False
        if not self.end_reason:
            self.end_reason = "the peer closed"
        try:
            frames = self._framer.feed(b"")
        except FrameError as exc:
            self._fail(exc)
            return False
        if frames:
            self._deliver(frames)
        self._wake()
        return self._ssl is None

    def _tls_end_error(self, session: ssl.SSLObject) -> WirecatError | None:
        """What a TLS end of stream means (the stdlib loop's path): None for a clean end.

        The stdlib loop calls ``eof_received`` both for the peer's
        close_notify and for a bare TCP end, after handing over every byte
        decrypted. One more read tells them apart: after close_notify it
        returns ``b""``; after a bare end there is nothing to read and
        OpenSSL asks for more (``SSLWantReadError``): a possible truncation.
        An alert that came with the end (a client certificate refused)
        is raised by that read, and said as itself. (uvloop never calls
        ``eof_received`` for a bare end: see :meth:`connection_lost`.)
        """
        import ssl

        for _ in range(64):  # (bytes left are never seen: the loop hands over all first)
            try:
                rest = session.read(_RECEIVE_BUFFER_SIZE)
            except ssl.SSLWantReadError:
                return TLSTruncated(f"{self.peer} ended the stream without TLS close_notify")
            except ssl.SSLError as exc:
                return translate_os_error(exc, Op.TALK, self.peer)
            if not rest:
                return None
            self.data_received(rest)
        return None

    def _truncated(self) -> None:
        self._fail(TLSTruncated(f"{self.peer} ended the stream without TLS close_notify"))
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport is closed: end every wait, remember a reset (or a TLS truncation)."""
        if exc is None and self._ssl is not None and not self._eof and not self._closing:
            # uvloop's TLS transport ends without eof_received at a TCP end
            # that came without close_notify ("not a graceful shutdown", its
            # sslproto says): a possible truncation, never a clean end.
            self._truncated()
        self._lost = self._eof = True
        if exc is not None and self._error is None:
            if isinstance(exc, OSError):
                self._error = translate_os_error(exc, Op.TALK, self.peer)
            else:
                self._error = PeerReset(f"connection with {self.peer} failed: {exc}").caused_by(exc)
            self.end_reason = str(self._error)
        elif not self.end_reason:
            self.end_reason = "closed"
        for handle in (self._idle_handle, self._frame_handle):
            if handle is not None:
                handle.cancel()
        self._wake()
        self._wake_drain()
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        """The transport's send buffer is over its high-water mark."""
        self._write_paused = True
        # Do not read requests faster than the peer reads our replies.
        self._read_paused_for_write = True
        self._update_reading()

    def resume_writing(self) -> None:
        """The send buffer drained under its low-water mark."""
        self._write_paused = False
        self._read_paused_for_write = False
        self._update_reading()
        self._wake_drain()

    # -- the receive path -----------------------------------------------------------------------

    def _deliver(self, frames: list[bytes]) -> None:
        callback = self._callback
        if callback is not None:  # handle_frames(): no queue, no task switch
            try:
                for frame in frames:
                    callback(frame)
            except Exception as exc:  # the callback's bug ends this connection only
                self._fail(exc)
            if self._stopping and self._framer.buffered == 0:
                self._wake()  # shutting down, and the frame in progress is done
            return
        self._frames.extend(frames)
        self._queued += sum(map(len, frames))
        if self._queued > self._max_queued and not self._read_paused_for_queue:
            self._read_paused_for_queue = True
            self._update_reading()
        self._wake()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._lost or self._closing:
            return
        want_paused = self._read_paused_for_queue or self._read_paused_for_write or self._error is not None
        if want_paused and transport.is_reading():
            transport.pause_reading()
        elif not want_paused and not transport.is_reading():
            transport.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        """End the receive side with ``exc``: the next recv() raises it."""
        if self._error is None:
            self._error = exc
            self.end_reason = str(exc)
        self._update_reading()
        self._wake()

    def _check_idle(self) -> None:
        # Reads stamp _last_active; writes are seen here, by the byte count
        # (stamping them too would cost a clock read per write on the hot path).
        loop, timeout = self._loop, self._idle_timeout
        assert timeout is not None
        now = loop.time()
        # Bytes the peer took since the last look (a slow reader still takes
        # some while send() waits) count as activity, as of now: what we
        # wrote, less what waits in our buffer and, unacknowledged, in the kernel's.
        transport = self._transport
        taken = self.bytes_sent
        if transport is not None:
            taken -= transport.get_write_buffer_size() + _kernel_unsent(transport)
        if taken != self._moved_at_check:
            self._moved_at_check = taken
            self._last_active = now
        clock = IdleClock(timeout, self._last_active)  # the one rule of idleness (wirecat.lifetime)
        if not clock.is_idle(now):
            # Look again when it could expire, and at least every quarter of
            # the timeout, so that a write, seen only here, closes the
            # connection at most 1.25 timeouts after it.
            deadline = clock.deadline
            assert deadline is not None
            self._idle_handle = loop.call_later(min(deadline - now, timeout / 4), self._check_idle)
            return
        self._idle_handle = None
        self._fail(IdleTimeout(f"{self.peer} was idle for {timeout:g} s"))
        if self._write_paused:
            # The handler waits in send() for a peer that takes nothing and
            # sends nothing: only closing the connection ends that wait.
            self.abort()

    def _stop(self) -> None:
        """A graceful shutdown: end ``recv()``/``handle_frames()`` between frames.

        A handler waiting for the next frame, with no part of one received,
        gets end of stream at once, as if the peer had closed. One in the
        middle of a frame gets the frame first.
        """
        self._stopping = True
        if not self.end_reason:
            self.end_reason = "the server shut down"
        if self._framer.buffered == 0:
            self._wake()

    def _is_over(self) -> bool:
        """No more frames will come: EOF, or a shutdown between frames."""
        return self._eof or (self._stopping and self._framer.buffered == 0)

    # -- public API -----------------------------------------------------------------------------

    @property
    def framer(self) -> Framer:
        """The framer of this connection."""
        return self._framer

    @property
    def peer_certificate(self) -> bytes | None:
        """The peer's certificate (DER bytes) over TLS; None on plain TCP or when it sent none.

        A client always gets the server's (verified, pinned, or, with
        verification off, as it came); a server gets a client's only under
        mutual TLS (``client_ca``), where it was verified. Read it with
        :func:`wirecat.tls.describe_certificate`; its pin is
        :func:`wirecat.tls.fingerprint` of it.
        """
        return None if self._ssl is None else self._ssl.getpeercert(binary_form=True)

    @property
    def tls_version(self) -> str | None:
        """The TLS version spoken (``"TLSv1.3"``), or None on plain TCP."""
        return None if self._ssl is None else self._ssl.version()

    @property
    def cipher(self) -> str | None:
        """The cipher suite (``"TLS_AES_256_GCM_SHA384"``), or None on plain TCP."""
        if self._ssl is None:
            return None
        suite = self._ssl.cipher()
        return None if suite is None else suite[0]

    @property
    def alpn(self) -> str | None:
        """The protocol agreed by ALPN (``"h2"``), or None: plain TCP, or none agreed."""
        return None if self._ssl is None else self._ssl.selected_alpn_protocol()

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the kernel (how far the peer is behind)."""
        return 0 if self._transport is None else self._transport.get_write_buffer_size()

    @property
    def is_stopping(self) -> bool:
        """True once the server's graceful shutdown asked this connection to end.

        ``recv()`` then returns end of stream at the next frame boundary, as
        if the peer had closed: a handler that sees this after its loop can
        tell its peer why before returning (``wirecat chat`` does). False on
        a client's connection, which no server shuts down.
        """
        return self._stopping

    @property
    def is_closing(self) -> bool:
        """True once close() or abort() was called, or the connection is gone."""
        return self._closing or self._lost

    def socket(self) -> socket.socket | None:
        """The underlying socket, for options and tracing (do not read or write it)."""
        if self._transport is None:
            return None
        sock: socket.socket | None = self._transport.get_extra_info("socket")
        return sock

    def write(self, frame: BytesLike) -> None:
        """Queue ``frame`` for sending and return at once, without waiting.

        For callbacks (:meth:`handle_frames`) and broadcasts, where waiting is
        not possible; check :attr:`write_buffer_size` to spot a peer that falls
        behind. In a coroutine, prefer :meth:`send`, which waits.

        Raises:
            ConnectionClosed: the connection was closed.
            FrameError: the frame does not fit the framing (too large, a
                newline inside a line).
        """
        transport = self._transport
        if transport is None or self._closing or self._lost or transport.is_closing():
            # (is_closing: a reset the loop saw, before it told us in connection_lost)
            raise ConnectionClosed(f"cannot send to {self.peer or 'a connection'}: it is closed")
        if self._eof_sent:
            raise ConnectionClosed(f"cannot send to {self.peer}: we sent end of stream (send_eof)")
        # Raw: bytes as they are; a mutable buffer is copied, as the transport may keep it.
        data = (frame if type(frame) is bytes else bytes(frame)) if self._raw else self._framer.encode(frame)
        self.bytes_sent += len(data)
        transport.write(data)

    async def send(self, frame: BytesLike) -> None:
        """Send all of ``frame``, waiting while the peer is not reading.

        Unlike ``socket.send()``, which may send only part, this queues all of
        it and returns when the kernel's and our buffers are below their
        high-water marks.

        Raises:
            ConnectionClosed: the connection was closed (or we sent end of stream).
            PeerReset: the peer reset the connection while we waited.
            IdleTimeout: the peer took nothing and sent nothing for
                ``idle_timeout`` seconds while we waited: it was closed.
            FrameError: the frame does not fit the framing.
        """
        self.write(frame)
        if self._write_paused:
            await self.drain()

    async def drain(self) -> None:
        """Wait until what was written is (nearly all) taken by the kernel."""
        while self._write_paused and not self._lost:
            if self._drain_waiter is None:
                self._drain_waiter = self._loop.create_future()
            await self._drain_waiter
        if self._lost and isinstance(self._error, (PeerReset, IdleTimeout)):
            raise self._error

    async def recv(self) -> bytes | None:
        """The next frame (bytes in Raw framing), or None at end of stream.

        End of stream: the peer closed (after its last frame was returned),
        or the server is shutting down and no frame was in progress.

        Raises:
            FrameError: the peer broke the framing (the frames before it
                were returned first).
            IdleTimeout: nothing moved for ``idle_timeout`` seconds.
            PeerReset: the peer reset the connection.
        """
        while True:
            frames = self._frames
            if frames:
                frame = frames.popleft()
                self._queued -= len(frame)
                if self._read_paused_for_queue and self._queued <= self._max_queued // 2:
                    self._read_paused_for_queue = False
                    self._update_reading()
                return frame
            if self._error is not None:
                raise self._error
            if self._is_over():
                return None
            waiter = self._waiter = self._loop.create_future()
            await waiter

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        frame = await self.recv()
        if frame is None:
            raise StopAsyncIteration
        return frame

    async def handle_frames(self, callback: FrameCallback) -> None:
        """Call ``callback(frame)`` for each frame as it arrives, until end of stream.

        The fast path: the callback runs in the receive path itself, with no
        task switch per frame, so it must not block (use :meth:`write`, not
        ``send``). Reading pauses while the peer does not read what the
        callback writes. Frames received before the call are handled first.
        ``await conn.handle_frames(conn.write)`` is a complete echo server.

        Raises:
            whatever the callback raised (the connection is then done), and
            the errors of :meth:`recv`.
        """
        self._callback = callback
        try:
            while self._frames:  # received before we were called
                frame = self._frames.popleft()
                self._queued -= len(frame)
                callback(frame)
            if self._read_paused_for_queue:
                self._read_paused_for_queue = False
                self._update_reading()
            while self._error is None and not self._is_over():
                waiter = self._waiter = self._loop.create_future()
                await waiter
            if self._error is not None:
                raise self._error
        finally:
            self._callback = None

    def send_eof(self) -> None:
        """Half-close: send FIN (``shutdown(SHUT_WR)``); we can still receive.

        The peer's ``recv()`` then returns end of stream while our ``recv()``
        goes on returning what it sends. Not possible over TLS (ignored there).
        """
        transport = self._transport
        if transport is not None and not self._closing and not self._lost and transport.can_write_eof():
            self._eof_sent = True
            transport.write_eof()

    def close(self, *, reset: bool = False) -> None:
        """Close gracefully: what was written is still sent, then the socket closes.

        Idempotent. Use :meth:`wait_closed` to wait until it is done, or
        :meth:`abort` to drop unsent data.

        Args:
            reset: end with a reset instead of a FIN once what was written has
                left our buffer (what the kernel still holds may be lost): for
                a peer that broke the protocol, so that it cannot take the end
                for an orderly one.
        """
        if not self._closing:
            self._closing = True
            transport = self._transport
            if transport is not None:
                if reset:
                    sock = transport.get_extra_info("socket")
                    if sock is not None:
                        sockets.reset_on_close(sock)
                transport.close()

    def abort(self) -> None:
        """Cut the connection off now: drop anything not yet sent and reset it (RST).

        The peer's next receive fails instead of ending cleanly, so it can
        tell that the stream was cut, not finished (over TCP; a Unix socket
        has no reset, and its peer sees end of stream). Idempotent.
        """
        self._closing = True
        transport = self._transport
        if transport is not None:
            sock = transport.get_extra_info("socket")  # (uvloop: a socket-like stand-in)
            if sock is not None:
                sockets.reset_on_close(sock)
            transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the connection is fully closed."""
        await asyncio.shield(self._closed)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        state = "closed" if self.is_closing else "open"
        return f"<Connection {self.local} <-> {self.peer} {state} {self._framer!r}>"


@final
class _BufferedConnection(Connection, asyncio.BufferedProtocol):
    """A Connection that reads into the loop's shared buffer (the stdlib loop).

    asyncio's own ``data_received`` path reads with ``recv(256 KiB)``, which
    allocates 256 KiB per read and ran 3.5× slower here; ``recv_into()`` one
    shared buffer does not. uvloop already reads into one loop-wide buffer and
    hands over exact-size bytes, so there the plain Connection is faster (one
    Python call per read instead of two).
    """

    __slots__ = ("_view",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """As Connection's, and find the loop's receive buffer."""
        super().connection_made(transport)
        self._view = _receive_buffer(asyncio.get_running_loop())

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the transport reads into: the loop's shared buffer."""
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were read into the shared buffer: frame them now."""
        view = self._view[:nbytes]
        # Raw frames outlive the buffer, so they are copied; framers copy what they keep.
        self.data_received(bytes(view) if self._raw else view)  # type: ignore[arg-type]


def new_connection(
    framer: Framer | None = None,
    *,
    idle_timeout: float | None = None,
    max_queued: int = DEFAULT_RECEIVE_QUEUE,
    frame_timeout: float | None = None,
) -> Connection:
    """A Connection of the kind that is fastest on the running loop (see ``_BufferedConnection``)."""
    from wirecat.runtime import loop_name

    kind = Connection if loop_name() == "uvloop" else _BufferedConnection
    return kind(framer, idle_timeout=idle_timeout, max_queued=max_queued, frame_timeout=frame_timeout)


def _kernel_unsent(transport: asyncio.BaseTransport) -> int:
    """Bytes in the socket's kernel send queue that the peer has not taken yet
    (Linux's SIOCOUTQ: unacknowledged on TCP, unread on a Unix socket)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        unsent = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, AttributeError, ValueError):
        return 0  # not Linux, or the socket is gone: the other signs still count
    return int.from_bytes(unsent, sys.byteorder)


def _address_text(sockaddr: object, transport: asyncio.BaseTransport) -> str:
    if sockaddr is None or sockaddr in ("", b""):
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            return "unix:(unnamed)"
        return "?"
    return format_sockaddr(sockaddr)


class _Connecting:
    """What :func:`connect` returns: awaitable, and an async context manager."""

    __slots__ = ("_conn", "_open")

    def __init__(self, open_: Callable[[], Awaitable[Connection]]) -> None:
        self._open = open_
        self._conn: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self._open()
        return self._conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._conn is not None:
            await self._conn.__aexit__(exc_type, exc, tb)


def connect(
    address: str | Address,
    *,
    framing: Framer | None = None,
    tls: bool | ClientTLS | ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    pin: str | None = None,
    timeout: float | None = None,
    idle_timeout: float | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> _Connecting:
    """Connect to ``address`` and return a :class:`Connection`.

    Use ``async with wirecat.connect("127.0.0.1:8000") as conn:`` (closed at
    the end) or ``conn = await wirecat.connect(...)``. Addresses take the
    CLI's forms: ``host:port``, ``[::1]:port``, ``unix:/path``. A host with
    several addresses is connected with Happy Eyeballs (RFC 8305).

    Args:
        framing: a framer (Raw when None); this connection gets a clone.
        tls: speak TLS. ``True``: verify the server against the system's
            trust store and the host name (:func:`wirecat.tls.client_context`);
            a :class:`~wirecat.tls.ClientTLS` or a client ``ssl.SSLContext``
            for anything else (your CA file, a client certificate, ALPN).
            None or False: plain TCP.
        server_hostname: the name sent as SNI and checked against the
            certificate (the host by default; needed over a Unix socket
            when the context checks names).
        pin: ``sha256:<hex>``: trust exactly the server certificate with
            this fingerprint (self-signed included), checked after the
            handshake. With ``tls=True`` the chain is then not verified.
        timeout: seconds allowed for connecting and the TLS handshake together.
        idle_timeout: end the connection after this many idle seconds.
        handshake_timeout: seconds the TLS handshake may take.

    Raises:
        ResolveError, ConnectError, ConnectTimeout, UsageError;
        CertificateError (the certificate is not trusted: its issuer, name,
        dates, or not the pinned one; the message names what it holds),
        TLSError (no TLS in common, a plain-TCP server, a client
        certificate asked for), HandshakeTimeout.
    """
    target = as_address(address)
    framer = check_framer(framing).clone()
    settings = _client_tls(tls, server_hostname, pin, target)
    timeout = check_seconds(timeout, "timeout")
    idle_timeout = check_seconds(idle_timeout, "idle_timeout")
    if settings is not None:
        handshake_timeout = check_seconds(handshake_timeout, "handshake_timeout", none_ok=False) or 0.0
        if not handshake_timeout:
            raise UsageError("bad handshake_timeout 0: give a number of seconds above 0")

    async def open_() -> Connection:
        loop = asyncio.get_running_loop()

        def factory() -> Connection:
            return new_connection(framer, idle_timeout=idle_timeout)

        try:
            async with asyncio.timeout(timeout):
                # The one dialer: Happy Eyeballs on the loop (uvloop's
                # create_connection has none), every attempt closed on a timeout.
                sock = await adial(target, timeout=timeout)
                if settings is not None:
                    # TLS goes on top of the connected socket (its own errors).
                    return await _start_tls(factory, sock, target, settings, handshake_timeout)
                try:
                    if target.is_unix:
                        _, conn = await loop.create_unix_connection(factory, sock=sock)
                    else:
                        _, conn = await loop.create_connection(factory, sock=sock)
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError:
            raise ConnectTimeout(f"connecting to {target} timed out after {timeout:g} s") from None
        except OSError as exc:
            raise translate_os_error(exc, Op.CONNECT, str(target)) from exc
        return conn

    return _Connecting(open_)


class _ClientSettings(NamedTuple):
    """What connect() needs for TLS, settled before any I/O."""

    context: ssl.SSLContext
    #: SNI, and the name the certificate must hold (when the context checks names).
    server_hostname: str
    pin: str | None


def _client_tls(
    tls: object, server_hostname: str | None, pin: str | None, target: Address
) -> _ClientSettings | None:
    """connect()'s TLS arguments, checked: the context, the name, the pin; None for plain TCP.

    ``ssl`` and :mod:`wirecat.tls` are imported only when TLS is asked for.
    """
    if tls is None or tls is False:
        if pin is not None or server_hostname is not None:
            what = "pin" if pin is not None else "server_hostname"
            raise UsageError(f"{what} is for TLS", "give tls=True too")
        return None
    import ssl

    from wirecat import tls as tls_module

    if pin is not None:
        pin = tls_module.parse_pin(pin)
    if tls is True:
        # A pin trusts one certificate in place of the chain: the context must not verify.
        context = tls_module.client_context(pin=pin)
    elif isinstance(tls, tls_module.ClientTLS):
        context = tls.context
        server_hostname = server_hostname or tls.server_hostname
        pin = pin or tls.pin
    elif isinstance(tls, ssl.SSLContext):
        context = tls
    else:
        raise UsageError(
            f"bad tls {tls!r}", "give True, a tls.ClientTLS, a client ssl.SSLContext, or None for plain TCP"
        )
    if isinstance(tls, tls_module.ServerTLS) or context.protocol == ssl.PROTOCOL_TLS_SERVER:
        raise UsageError("connect() got a server's TLS settings", "give True, or tls.client_context()")
    name = server_hostname or ("" if target.is_unix else target.host)
    if not name:
        if context.check_hostname:
            raise UsageError(
                f"TLS over {target} needs the name the server's certificate holds",
                "give server_hostname, or a pin",
            )
        name = "localhost"  # (asyncio needs one; nothing is checked against it)
    return _ClientSettings(context, name, pin)


async def _start_tls(
    factory: Callable[[], Connection],
    sock: socket.socket,
    target: Address,
    settings: _ClientSettings,
    handshake_timeout: float,
) -> Connection:
    """The TLS handshake on a connected socket, the pin checked; a Connection.

    Every failure is one wirecat error naming cause and fix; the socket is
    closed on any of them.
    """
    import ssl

    from wirecat import tls as tls_module

    loop = asyncio.get_running_loop()
    where = str(target)
    conn: Connection | None = None

    def made() -> Connection:
        nonlocal conn
        conn = factory()
        return conn

    try:
        if target.is_unix:
            await loop.create_unix_connection(
                made,
                sock=sock,
                ssl=settings.context,
                server_hostname=settings.server_hostname,
                ssl_handshake_timeout=handshake_timeout,
            )
        else:
            await loop.create_connection(
                made,
                sock=sock,
                ssl=settings.context,
                server_hostname=settings.server_hostname,
                ssl_handshake_timeout=handshake_timeout,
            )
    except ssl.SSLCertVerificationError as exc:
        # A failed verification leaves no certificate to describe: fetch it
        # with a second handshake that verifies nothing, to say what it holds.
        sock.close()
        der = await _fetch_certificate(target, settings.server_hostname, handshake_timeout)
        raise tls_module.translate_ssl_error(
            exc, where, server_hostname=settings.server_hostname, certificate=der
        ) from exc
    except ssl.SSLError as exc:
        sock.close()
        raise tls_module.translate_ssl_error(exc, where, server_hostname=settings.server_hostname) from exc
    except ConnectionAbortedError as exc:
        sock.close()
        if exc.errno is not None:
            raise translate_os_error(exc, Op.CONNECT, where) from exc
        # The loop's ssl_handshake_timeout (no errno: its own words).
        raise HandshakeTimeout(
            f"the TLS handshake with {where} did not finish within {handshake_timeout:g} s",
            "is it a TLS server? a slow one needs a longer handshake_timeout",
        ) from None
    except ConnectionResetError as exc:
        sock.close()
        raise TLSError(
            f"{where} closed the connection during the TLS handshake",
            "is it a TLS server? it may want a client certificate, or a TLS version we do not speak",
        ).caused_by(exc) from exc
    except BaseException:
        sock.close()
        raise
    assert conn is not None
    if settings.pin is not None:
        try:
            tls_module.check_pin(conn.peer_certificate, settings.pin, where)
        except BaseException:
            conn.abort()
            raise
    return conn


async def _fetch_certificate(target: Address, server_hostname: str, handshake_timeout: float) -> bytes | None:
    """The server's certificate (DER) by a handshake that verifies nothing; None if that fails too.

    Only to word an error: nothing is sent over this connection, and it is
    closed at once.
    """
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(handshake_timeout):
            sock = await adial(target, timeout=handshake_timeout)
            try:
                if target.is_unix:
                    transport, _ = await loop.create_unix_connection(
                        asyncio.Protocol, sock=sock, ssl=context, server_hostname=server_hostname
                    )
                else:
                    transport, _ = await loop.create_connection(
                        asyncio.Protocol, sock=sock, ssl=context, server_hostname=server_hostname
                    )
            except BaseException:
                sock.close()
                raise
    except (OSError, TimeoutError, WirecatError):
        return None
    session = transport.get_extra_info("ssl_object")
    der: bytes | None = None if session is None else session.getpeercert(binary_form=True)
    transport.abort()
    return der
