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
from typing import Any, final

from wirecat import sockets
from wirecat.address import Address, as_address, format_sockaddr
from wirecat.dial import adial
from wirecat.errors import (
    ConnectionClosed,
    ConnectTimeout,
    FrameError,
    FrameTimeout,
    IdleTimeout,
    PeerReset,
)
from wirecat.framing import BytesLike, Framer, Raw, check_framer
from wirecat.lifetime import IdleClock
from wirecat.limits import DEFAULT_RECEIVE_QUEUE, check_seconds
from wirecat.sockets import Op, check_tls, translate_os_error

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
        "_stopping",
        "_tls",
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
        self._tls = False
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
        self._tls = transport.get_extra_info("sslcontext") is not None
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
        """
        self._eof = True
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
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport is closed: end every wait, remember a reset."""
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
    tls: Any = None,
    server_hostname: str | None = None,
    timeout: float | None = None,
    idle_timeout: float | None = None,
) -> _Connecting:
    """Connect to ``address`` and return a :class:`Connection`.

    Use ``async with wirecat.connect("127.0.0.1:8000") as conn:`` (closed at
    the end) or ``conn = await wirecat.connect(...)``. Addresses take the
    CLI's forms: ``host:port``, ``[::1]:port``, ``unix:/path``. A host with
    several addresses is connected with Happy Eyeballs (RFC 8305).

    Args:
        framing: a framer (Raw when None); this connection gets a clone.
        tls: an ``ssl.SSLContext`` to speak TLS, or None for plain TCP.
        server_hostname: the name to verify the certificate against (the
            host by default).
        timeout: seconds allowed for connecting (and the TLS handshake).
        idle_timeout: end the connection after this many idle seconds.

    Raises:
        ResolveError, ConnectError, ConnectTimeout, UsageError.
    """
    target = as_address(address)
    framer = check_framer(framing).clone()
    check_tls(tls, server=False)
    timeout = check_seconds(timeout, "timeout")
    idle_timeout = check_seconds(idle_timeout, "idle_timeout")

    async def open_() -> Connection:
        loop = asyncio.get_running_loop()

        def factory() -> Connection:
            return new_connection(framer, idle_timeout=idle_timeout)

        try:
            async with asyncio.timeout(timeout):
                # The one dialer: Happy Eyeballs on the loop (uvloop's
                # create_connection has none), every attempt closed on a timeout.
                sock = await adial(target, timeout=timeout)
                try:
                    if target.is_unix:
                        _, conn = await loop.create_unix_connection(
                            factory, sock=sock, ssl=tls, server_hostname=server_hostname
                        )
                    else:
                        _, conn = await loop.create_connection(
                            factory,
                            sock=sock,
                            ssl=tls,
                            server_hostname=(server_hostname or target.host) if tls is not None else None,
                        )
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError:
            raise ConnectTimeout(f"connecting to {target} timed out after {timeout:g} s") from None
        except OSError as exc:
            raise translate_os_error(exc, Op.CONNECT, str(target)) from exc
        return conn

    return _Connecting(open_)
