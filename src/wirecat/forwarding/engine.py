"""The relay's byte engine: two directions per connection, spliced on the event loop.

See :mod:`wirecat.forwarding` for what a relay does; this is how the bytes
move once both sockets are open.

A TLS endpoint (:class:`wirecat.tls_endpoint.TLSEndpoint`) is one more
endpoint here, not a second engine: it offers no descriptors to splice, so a
direction with a TLS side copies through its reused buffer (the other
direction, plain on both ends, may still splice), and three things differ,
all found by duck typing so that a plain relay never imports ``ssl``:

* **bytes decrypted but not yet read** (``pending``) wait inside OpenSSL, and
  the descriptor's readiness will not fire for them: the reader reads again
  before it waits;
* **ciphertext queued** (``pending_output``) after a ``send`` or a
  ``shutdown_write`` (close_notify) is pushed with ``flush()`` on write
  readiness, and a direction is done only once its close_notify has left;
* **one descriptor, two directions**: the direction reading from a TLS side
  owns the descriptor's reader, the one writing to it its writer; ciphertext
  a read queues (a TLS 1.3 key update's answer) is flushed by the writer.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol, cast

from wirecat import trace
from wirecat.endpoint import Endpoint, SocketEndpoint
from wirecat.errors import PeerReset, WirecatError
from wirecat.sockets import (
    RESET_ERRNOS,
)
from wirecat.splice import HAS_SPLICE, SPLICE_FLAGS, open_pipe, read_past_urgent_mark, refused

__all__ = ["Direction", "RelayResult", "RelayedPair"]

#: Most bytes one splice() or recv() moves: ≥ 128 KiB measured fastest here for bulk.
_CHUNK = 1024 * 1024
#: Most bytes one readiness callback reads before it lets other connections run.
_READ_BUDGET = 4 * _CHUNK


class RelayResult:
    """How one relayed connection went (for the ``-v`` line and for tests)."""

    __slots__ = ("down", "ending", "up")

    def __init__(self) -> None:
        #: Bytes from the client to the target.
        self.up = 0
        #: Bytes from the target to the client.
        self.down = 0
        #: How it ended, in words.
        self.ending = ""


def _no_pending_error() -> int:
    return 0


class _Buffering(Protocol):
    """What an endpoint that holds bytes of its own (TLS) adds to :class:`Endpoint`."""

    @property
    def pending(self) -> int: ...
    @property
    def pending_output(self) -> bool: ...
    @property
    def wants_write(self) -> bool: ...
    def flush(self) -> bool: ...


def _buffering(endpoint: Endpoint) -> _Buffering | None:
    """The endpoint as a :class:`_Buffering` one (TLS), or None.

    Duck typing, not ``isinstance``: importing the TLS endpoint imports ``ssl``.
    """
    if hasattr(endpoint, "pending_output") and hasattr(endpoint, "flush"):
        return cast(_Buffering, endpoint)
    return None


class Direction:
    """Bytes from endpoint ``src`` to endpoint ``dst``, by splice through a private
    pipe when both offer descriptors the kernel may splice, else through a buffer."""

    __slots__ = (
        "_buffer",
        "_capacity",
        "_dst",
        "_dst_fd",
        "_dst_tls",
        "_dst_traced",
        "_finishing",
        "_loop",
        "_on_done",
        "_pending",
        "_pending_error",
        "_pipe_r",
        "_pipe_w",
        "_reading",
        "_soon",
        "_src",
        "_src_closed",
        "_src_fd",
        "_src_tls",
        "_src_traced",
        "_stalled_on_write",
        "_tcp_source",
        "_tracer",
        "_view",
        "_writing",
        "count",
        "done",
        "eof",
        "last_active",
        "name",
        "sibling",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        src: Endpoint,
        dst: Endpoint,
        name: str,
        on_done: RelayedPair,
    ) -> None:
        self._loop = loop
        self._src, self._dst = src, dst
        self._src_fd, self._dst_fd = src.read_fd, dst.write_fd
        # Where splice() stops at TCP's urgent mark (wirecat.splice), and where
        # an error can be left pending after a short read (libuv: see below).
        self._tcp_source = isinstance(src, SocketEndpoint) and src.is_tcp
        self._pending_error = src.pending_error if isinstance(src, SocketEndpoint) else _no_pending_error
        # TLS on either end (see the module docstring).
        self._src_tls = _buffering(src)
        self._dst_tls = _buffering(dst)
        #: The other direction of the pair: it writes to our source (TLS
        #: ciphertext a read queued goes out through its writer).
        self.sibling: Direction | None = None
        self._finishing = False  # our end of stream is passed on; its close_notify may still be queued
        self._stalled_on_write = False  # our TLS source wants its queued ciphertext out first
        self._soon: asyncio.Handle | None = None  # a read scheduled for bytes OpenSSL holds
        # The TLS source's close_notify was read behind data (_read_more): its
        # end is said by the next read, which no readiness will prompt.
        self._src_closed = False
        self.name = name
        self._on_done = on_done
        self._pending = 0  # bytes in our pipe (or buffer), read but not yet written
        self._reading = self._writing = False
        self.count = 0
        #: Loop time of the last read that brought bytes, or of the destination
        #: taking some (for the idle timeout: a slow reader is not idle).
        self.last_active = loop.time()
        self.eof = False
        self.done = False
        self._tracer = trace.current()
        # Whether each end reports its own calls (a traced socket does): then
        # the copying path must not report them a second time.
        self._src_traced = isinstance(src, SocketEndpoint) and isinstance(src.socket, trace.TracedSocket)
        self._dst_traced = isinstance(dst, SocketEndpoint) and isinstance(dst.socket, trace.TracedSocket)
        self._pipe_r = self._pipe_w = -1
        self._buffer: bytearray | None = None
        self._view: memoryview | None = None
        self._capacity = 0  # bytes our pipe holds; 0 in the copying fallback
        zero_copy = src.zero_copy_fds is not None and dst.zero_copy_fds is not None
        if HAS_SPLICE and zero_copy and not (self._tracer is not None and self._tracer.shows_bytes):
            self._pipe_r, self._pipe_w, self._capacity = open_pipe(nonblocking=True)
        else:
            self._buffer = bytearray(256 * 1024)
            self._view = memoryview(self._buffer)

    def start(self) -> None:
        """Begin: first what was already read from the source (its pushback), then the rest."""
        first = self._src.take_pushback()
        if first:
            self._copy_first(first)
            self._flush()  # sends it, then starts reading (or waits for the destination)
        else:
            self._want_read()

    def _copy_first(self, data: bytes) -> None:
        # Rare (a PROXY header came with data, or a step over an urgent mark):
        # send it as it is, blocking-free, through the fallback's pending path.
        if self._buffer is None:
            self._buffer = bytearray(max(len(data), 256 * 1024))
            self._view = memoryview(self._buffer)
        assert self._view is not None
        self._view[: len(data)] = data
        self._pending = -len(data)  # negative: pending bytes live in the buffer, not the pipe
        self.count += len(data)

    # -- readiness ------------------------------------------------------------------------------

    def _want_read(self) -> None:
        if not self._reading and not self.eof and not self._on_done.ended:
            self._reading = True
            self._loop.add_reader(self._src_fd, self._on_readable)
            if (
                self._src_tls is not None
                and self._soon is None
                and (self._src_tls.pending or self._src_closed)
            ):
                # Decrypted bytes wait inside OpenSSL: the descriptor may
                # never be readable for them, so read them now (soon).
                self._soon = self._loop.call_soon(self._read_soon)

    def _read_soon(self) -> None:
        self._soon = None
        if self._reading:
            self._on_readable()

    def _stop_read(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._src_fd)

    def _want_write(self) -> None:
        if not self._writing and not self._on_done.ended:
            self._writing = True
            self._loop.add_writer(self._dst_fd, self._on_writable)

    def _stop_write(self) -> None:
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._dst_fd)

    def stop(self) -> None:
        """Stop watching both sockets (the connection is ending)."""
        self._stop_read()
        self._stop_write()
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        for fd in (self._pipe_r, self._pipe_w):
            if fd >= 0:
                os.close(fd)
        self._pipe_r = self._pipe_w = -1

    # -- moving bytes ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        # Reads go on while the pipe has room and the source has bytes, up to a
        # budget that keeps one busy connection from starving the others.
        budget = _READ_BUDGET
        first = True
        while True:
            if self._pending < 0:
                room = 0  # bytes wait in the copy buffer: they go first
            elif self._pipe_w >= 0:
                room = self._capacity - self._pending
            else:
                room = 0 if self._pending else 1
            if room <= 0:
                # Reading goes on while the pipe has room, so the source is read
                # while the destination still takes the last chunk; a full pipe
                # (or pending bytes in the copying fallback) stops it: backpressure.
                self._stop_read()
                return
            try:
                if self._pipe_w >= 0:
                    want = min(room, _CHUNK)
                    n = os.splice(self._src_fd, self._pipe_w, want, flags=SPLICE_FLAGS)
                else:
                    assert self._view is not None
                    want = len(self._view)
                    n = self._src.recv_into(self._view)
                    if n and self._src_tls is not None:
                        n = self._read_more(n)
                    if n:
                        self._pending = -n
            except BlockingIOError:
                if self._src_tls is not None and self._src_tls.wants_write:
                    # The TLS source must send before it can read on: its
                    # ciphertext goes out through the other direction's writer.
                    self._stop_read()
                    self._stalled_on_write = True
                    if self.sibling is not None:
                        self.sibling.flush_for_sibling()
                elif self._pending > 0:
                    # Our pipe is full (its slots hold pages, so it can fill before
                    # `capacity` bytes): wait until the destination takes some.
                    self._stop_read()
                elif first and self._pipe_w >= 0:
                    # The loop said readable, yet splice() says EAGAIN: it stops
                    # at TCP's urgent mark (a MSG_OOB byte) and would say so on
                    # every call, spinning. One recv() steps over the mark.
                    self._step_over_urgent_mark()
                return
            except OSError as exc:
                if self._pipe_w >= 0 and refused(exc, moved_any=self.count > 0):
                    self._fall_back()  # the kernel refuses splice here: copy instead
                    continue
                self._on_done.failed(self, exc, "read")
                return
            except WirecatError as exc:
                # A TLS source: the stream ended without close_notify
                # (TLSTruncated), or a record failed: never a clean end.
                self._on_done.failed(self, exc, "read")
                return
            if self._tracer is not None and (self._pipe_w >= 0 or not self._src_traced):
                # A traced socket reports its own recv_into(); the splice, and
                # a read from a descriptor, only we can report.
                if self._pipe_w >= 0:
                    call, where = "splice", f"fd {self._src_fd} -> pipe, {want}"
                else:
                    call, where = "readv", f"fd {self._src_fd}, {want}"
                data = self._view[:n] if self._view is not None and self._pipe_w < 0 else None
                self._tracer.call(call, where, _count_text(n), fd=self._src_fd, data=data)
            if n == 0:
                if self._pipe_w >= 0 and self._tcp_source:
                    # splice() also says 0 at TCP's urgent mark once the FIN
                    # is in: recv() tells the end from the mark (once a
                    # stream), after our pipe is empty, so bytes keep order.
                    if self._pending:
                        self._stop_read()  # _flush() reads again once it is empty
                    else:
                        self._step_over_urgent_mark()
                    return
                self.eof = True
                self._stop_read()
                if not self._pending:
                    self._finish()
                return
            first = False
            self.count += n
            self.last_active = self._loop.time()
            if self._pipe_w >= 0:
                self._pending += n
            if not self._writing:
                self._flush()
            if self._src_tls is not None and self._src_tls.pending_output and self.sibling is not None:
                self.sibling.flush_for_sibling()  # the read queued ciphertext (a key update's answer)
            if not self._reading or self._on_done.ended:
                return
            if self._src_tls is not None and (self._src_tls.pending or self._src_closed):
                # OpenSSL holds more, decrypted or not, or its end: read on
                # (the descriptor may not fire for it), within the budget.
                budget -= n
                if budget <= 0:
                    self._stop_read()
                    self._want_read()  # (schedules the read of what OpenSSL holds)
                    return
                continue
            if n < want:
                # A short read: the source has nothing more for now. uvloop
                # (libuv) silently stops watching a socket whose error is left
                # pending after a callback, so a reset that came right behind
                # these bytes is taken now, or it would never be passed on.
                # (One getsockopt: cheaper than another read that says EAGAIN.)
                error = self._pending_error()
                if error:
                    self._on_done.failed(self, OSError(error, os.strerror(error)), "read")
                return
            budget -= n
            if budget <= 0:
                # Still more to read: let the other connections run, and
                # re-arm, so that the next callback comes from a fresh watch.
                self._stop_read()
                self._want_read()
                return

    def _read_more(self, n: int) -> int:
        """Fill the buffer from what a TLS source holds already (``n`` bytes are in).

        A TLS source may hold more than the first read took (ciphertext
        past the buffer, or a record half in): reading it now makes one large
        send to the destination instead of several small ones.
        """
        assert self._view is not None
        assert self._src_tls is not None
        view, size = self._view, len(self._view)
        while n < size and self._src_tls.pending:
            try:
                m = self._src.recv_into(view[n:])
            except BlockingIOError:
                break  # a partial record: the rest comes with readiness
            if not m:
                self._src_closed = True  # close_notify: the next read says 0 again
                break
            n += m
        return n

    def _step_over_urgent_mark(self) -> None:
        """Move one chunk by recv(), which passes TCP's urgent mark where
        splice() stops (the urgent byte itself is dropped, as recv() drops it)."""
        try:
            data = read_past_urgent_mark(self._src_fd)
        except BlockingIOError:
            return  # a wake-up with nothing after all
        except OSError as exc:
            self._on_done.failed(self, exc, "read")
            return
        if not data:
            self.eof = True
            self._stop_read()
            if not self._pending:
                self._finish()
            return
        self.last_active = self._loop.time()
        self._copy_first(data)
        self._flush()

    def _on_writable(self) -> None:
        self.last_active = self._loop.time()  # the destination took bytes: not idle
        if self._dst_tls is not None and self._dst_tls.pending_output:
            # TLS ciphertext queued: it goes first, and nothing more is
            # encrypted until it has (bounded memory: one buffer's worth).
            try:
                flushed = self._dst_tls.flush()
            except (OSError, WirecatError) as exc:
                self._on_done.failed(self, exc, "write")
                return
            if not flushed:
                return  # still queued: stay armed
            sibling = self.sibling
            if sibling is not None and sibling._stalled_on_write:
                sibling._stalled_on_write = False
                sibling._want_read()
        if self.done:
            self._stop_write()  # (armed for the sibling's sake only)
        elif self._finishing:
            self._finish()
        else:
            self._flush()

    def flush_for_sibling(self) -> None:
        """Our destination (the sibling's TLS source) has ciphertext queued: push it out."""
        if self._dst_tls is not None and not self._on_done.ended:
            self._want_write()

    def _fall_back(self) -> None:
        for fd in (self._pipe_r, self._pipe_w):
            os.close(fd)
        self._pipe_r = self._pipe_w = -1
        self._buffer = bytearray(256 * 1024)
        self._view = memoryview(self._buffer)

    def _flush(self) -> None:
        """Write what is pending to the destination; then read more, or finish."""
        while self._pending:
            try:
                if self._pending > 0:
                    m = os.splice(self._pipe_r, self._dst_fd, self._pending, flags=SPLICE_FLAGS)
                    self._pending -= m
                else:
                    assert self._view is not None
                    size = -self._pending
                    m = self._dst.send(self._view[:size])
                    if m < size:
                        self._view[: size - m] = self._view[m:size]
                    self._pending += m
            except BlockingIOError:
                self._want_write()  # the destination is full: wait for it
                if self._pending < 0 or self._pending >= self._capacity:
                    self._stop_read()  # and read nothing more until there is room
                else:
                    self._want_read()
                return
            except (OSError, WirecatError) as exc:
                self._on_done.failed(self, exc, "write")
                return
            if self._tracer is not None and (self._pipe_r >= 0 or not self._dst_traced):
                if self._pipe_r >= 0:
                    # splice(pipe, dst): strace's first argument is the pipe, ours is
                    # the socket the bytes went to, which is what a reader follows.
                    self._tracer.call("splice", f"pipe -> fd {self._dst_fd}", f"{m} bytes", fd=self._dst_fd)
                else:
                    self._tracer.call("write", f"fd {self._dst_fd}, {m}", f"{m} bytes", fd=self._dst_fd)
        if self._dst_tls is not None and self._dst_tls.pending_output:
            # A TLS destination took the bytes, and holds some of their
            # ciphertext: it goes out on write readiness, while we read on
            # into the emptied buffer (its next send waits for the flush).
            self._want_write()
        else:
            self._stop_write()
        if self.eof:
            self._finish()
        else:
            self._want_read()

    def _finish(self) -> None:
        """End of stream from the source, all of it written: pass the FIN on.

        To a TLS destination the end is a close_notify, queued: the direction
        is done once it has left (a close before would lose the tail).
        """
        if self.done:
            return
        if not self._finishing:
            self._finishing = True
            self._stop_read()
            self._dst.shutdown_write()  # (a destination already gone: the other direction will tell)
        if self._dst_tls is not None and self._dst_tls.pending_output:
            try:
                flushed = self._dst_tls.flush()
            except (OSError, WirecatError) as exc:
                self._on_done.failed(self, exc, "write")
                return
            if not flushed:
                self._want_write()
                return
        self.done = True
        self._stop_read()
        self._stop_write()
        self._on_done.direction_done(self)


def _count_text(n: int) -> str:
    return f"{n} bytes" if n else "0 bytes (end of stream)"


class RelayedPair:
    """One client ↔ target pair of endpoints: two directions, and how the pair ends."""

    __slots__ = ("_loop", "client", "cut", "done", "down", "ended", "result", "target", "up")

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Endpoint, target: Endpoint) -> None:
        self._loop = loop
        self.client, self.target = client, target
        self.result = RelayResult()
        self.done: asyncio.Future[None] = loop.create_future()
        #: True once both sockets are closed (a plain attribute: read per chunk).
        self.ended = False
        #: True if we cut it off (reset both sides) before its natural end.
        self.cut = False
        self.up = Direction(loop, client, target, "client→target", self)
        try:
            self.down = Direction(loop, target, client, "target→client", self)
        except BaseException:
            self.up.stop()  # its pipe, made already (EMFILE here must not leak it)
            raise
        self.up.sibling, self.down.sibling = self.down, self.up

    def start(self) -> None:
        """Begin both directions (the client's pushback, a PROXY header's leftovers, first)."""
        self.up.start()
        if not self.ended:  # sending the pushback may have failed and ended it all
            self.down.start()
        # A TLS handshake may leave ciphertext queued (a TLS 1.3 server's
        # session tickets): the direction writing to that side sends it.
        for direction in (self.up, self.down):
            if not self.ended and direction._dst_tls is not None and direction._dst_tls.pending_output:
                direction.flush_for_sibling()

    def direction_done(self, direction: Direction) -> None:
        if self.up.done and self.down.done:
            self.result.ending += "; both sides closed" if self.result.ending else "both sides closed"
            self._end()
        elif not self.result.ending:
            self.result.ending = (
                "the client closed first" if direction is self.up else "the target closed first"
            )

    def failed(self, direction: Direction, exc: OSError | WirecatError, action: str) -> None:
        """A read or write failed on one side: reset the other side, and say why.

        A TLS side's stream that ends without close_notify
        (:class:`~wirecat.errors.TLSTruncated`) fails here too: the other side
        is reset, as a truncation must never look like a clean end.
        """
        # Reading fails on the direction's source, writing on its destination.
        broken_is_client = (direction is self.up) == (action == "read")
        side, other_side = ("client", "target") if broken_is_client else ("target", "client")
        other = self.target if broken_is_client else self.client
        if isinstance(exc, PeerReset) or (isinstance(exc, OSError) and exc.errno in RESET_ERRNOS):
            self.result.ending = f"the {side} reset the connection; the {other_side} was reset too"
        elif isinstance(exc, WirecatError):
            self.result.ending = f"{action} failed on the {side}: {exc.message}; the {other_side} was reset"
        else:
            self.result.ending = f"{action} failed on the {side}: {os.strerror(exc.errno or 0).lower()}"
        self._end(reset=(other,))

    def _end(self, *, reset: tuple[Endpoint, ...] = ()) -> None:
        if self.ended:
            return
        self.ended = True
        self.result.up, self.result.down = self.up.count, self.down.count
        self.up.stop()
        self.down.stop()
        for endpoint in (self.client, self.target):
            if endpoint in reset:
                endpoint.abort()  # a reset: the other side's reset deserves one, and a cut does
            endpoint.close()
        if not self.done.done():
            self.done.set_result(None)

    def abort(self, reason: str) -> None:
        """Cut the connection now (shutdown, idle timeout): reset both sides. No-op once ended.

        Reset, not closed: a FIN would tell each side that the other had sent
        everything, and a client would take part of a download for all of it.
        """
        if not self.ended:
            self.cut = True
            self.result.ending = f"{self.result.ending}; {reason}" if self.result.ending else reason
            self._end(reset=(self.client, self.target))
