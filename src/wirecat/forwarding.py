"""Port forwarding: ``wirecat.relay(listen, target)`` and its byte engine (``wirecat relay``).

Each client accepted on ``listen`` gets its own connection to ``target``, and
bytes flow both ways until both directions are done:

* **zero-copy**: on Linux each direction moves bytes with ``splice()`` from
  the source socket into a private pipe and from the pipe into the destination
  socket: the bytes never enter Python, and no Python object is made per
  chunk. Elsewhere (or where the kernel refuses splice), ``recv_into`` one
  buffer per direction and ``send``;
* **event-driven, one thread**: every socket is non-blocking and the event
  loop (uvloop where installed) says when one is readable or writable
  (``add_reader``/``add_writer``); a direction reads only when its pipe is
  empty, so a slow destination stops the reading of its source (backpressure)
  and nothing queues in memory;
* **half-close carried across**: end of stream from one side becomes
  ``shutdown(SHUT_WR)`` on the other once the pipe is drained; the
  connection ends when both directions have; a reset on one side resets the
  other (``SO_LINGER`` 0, then close), and is logged;
* the same accept loop, limits, allow/deny lists and graceful drain as
  :func:`wirecat.serve`; a target that is down closes the client at once (or
  after ``connect_timeout``), logged, and the relay goes on;
* optionally a PROXY protocol header (v1 or v2) to the target, so it learns
  the real client, and/or one read from the client (``accept_proxy_protocol``).

UDP relays (``udp:`` on both sides) keep one upstream socket per client
address, forgotten after ``udp_idle`` seconds of silence: see :class:`UdpRelay`.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterable
from typing import Literal

from wirecat import trace
from wirecat.address import Address, as_address, format_sockaddr, is_ip_address
from wirecat.admission import Admission, peer_host
from wirecat.bind import bind, listen_address
from wirecat.dial import adial
from wirecat.errors import ConnectTimeout, FrameTimeout, IdleTimeout, UsageError, WirecatError
from wirecat.events import Closed, Listening, Note, Refused, emit
from wirecat.limits import (
    DEFAULT_BACKLOG,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PIPE_SIZE,
    DEFAULT_UDP_IDLE,
    check_seconds,
)
from wirecat.listener import DrainResult, Listener
from wirecat.protocol.proxy import ProxyHeader, ProxyHeaderReader, encode_v1, encode_v2
from wirecat.resolve import resolve
from wirecat.sockets import (
    RESET_ERRNOS,
    Op,
    close_with_reset,
    configure_stream,
    translate_os_error,
)

__all__ = ["RelayResult", "UdpRelay", "relay"]


_HAS_SPLICE = hasattr(os, "splice")
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
#: Most bytes one splice() or recv() moves: ≥ 128 KiB measured fastest here for bulk.
_CHUNK = 1024 * 1024
#: Most bytes one readiness callback reads before it lets other connections run.
_READ_BUDGET = 4 * _CHUNK
#: Bytes one recv() takes to step over TCP's urgent mark, where splice() stops.
_URGENT_STEP = 64 * 1024
#: Descriptors per relayed connection: two sockets and two pipes (two ends each).
_FDS_PER_CONNECTION = 6
#: Holds any UDP payload whole: IPv6 carries up to 65,527 bytes, more than IPv4's 65,507.
_UDP_BUFFER = 65536


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


class _Direction:
    """Bytes from ``src`` to ``dst``, by splice through a private pipe (or a buffer)."""

    __slots__ = (
        "_buffer",
        "_capacity",
        "_dst",
        "_dst_fd",
        "_loop",
        "_on_done",
        "_pending",
        "_pipe_r",
        "_pipe_w",
        "_reading",
        "_src",
        "_src_fd",
        "_tracer",
        "_view",
        "_writing",
        "count",
        "done",
        "eof",
        "last_active",
        "name",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        src: socket.socket,
        dst: socket.socket,
        name: str,
        on_done: _Connection,
    ) -> None:
        self._loop = loop
        self._src, self._dst = src, dst
        self._src_fd, self._dst_fd = src.fileno(), dst.fileno()
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
        self._pipe_r = self._pipe_w = -1
        self._buffer: bytearray | None = None
        self._view: memoryview | None = None
        self._capacity = 0  # bytes our pipe holds; 0 in the copying fallback
        if _HAS_SPLICE and not (self._tracer is not None and self._tracer.shows_bytes):
            self._pipe_r, self._pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                self._capacity = fcntl.fcntl(self._pipe_w, fcntl.F_SETPIPE_SZ, DEFAULT_PIPE_SIZE)
            except OSError:
                self._capacity = fcntl.fcntl(self._pipe_w, fcntl.F_GETPIPE_SZ)  # 64 KiB: more splices
        else:
            self._buffer = bytearray(256 * 1024)
            self._view = memoryview(self._buffer)

    def start(self, first: bytes = b"") -> None:
        """Begin; ``first`` is what was already read from the source (after a PROXY header)."""
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
                    n = os.splice(self._src_fd, self._pipe_w, want, flags=_SPLICE_FLAGS)
                else:
                    assert self._view is not None
                    want = len(self._view)
                    n = self._src.recv_into(self._view)
                    if n:
                        self._pending = -n
            except BlockingIOError:
                if self._pending > 0:
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
                if exc.errno == errno.EINVAL and self._pipe_w >= 0 and self.count == 0:
                    self._fall_back()  # the kernel refuses splice here: copy instead
                    continue
                self._on_done.failed(self, exc, "read")
                return
            if self._tracer is not None:
                call = "splice" if self._pipe_w >= 0 else "recv_into"
                where = f"fd {self._src_fd} -> pipe, {want}"
                self._tracer.call(call, where, _count_text(n), fd=self._src_fd)
            if n == 0:
                if self._pipe_w >= 0 and self._src.family != socket.AF_UNIX:
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
            if not self._reading or self._on_done.ended:
                return
            if n < want:
                # A short read: the source has nothing more for now. uvloop
                # (libuv) silently stops watching a socket whose error is left
                # pending after a callback, so a reset that came right behind
                # these bytes is taken now, or it would never be passed on.
                # (One getsockopt: cheaper than another read that says EAGAIN.)
                error = self._src.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
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

    def _step_over_urgent_mark(self) -> None:
        """Move one chunk by recv(), which passes TCP's urgent mark where
        splice() stops (the urgent byte itself is dropped, as recv() drops it)."""
        try:
            data = self._src.recv(_URGENT_STEP)
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
        self._flush()

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
                    m = os.splice(self._pipe_r, self._dst_fd, self._pending, flags=_SPLICE_FLAGS)
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
            except OSError as exc:
                self._on_done.failed(self, exc, "write")
                return
            if self._tracer is not None:
                call = "splice" if self._pipe_r >= 0 else "send"
                self._tracer.call(call, f"pipe -> fd {self._dst_fd}", f"{m} bytes", fd=self._dst_fd)
        self._stop_write()
        if self.eof:
            self._finish()
        else:
            self._want_read()

    def _finish(self) -> None:
        """End of stream from the source, all of it written: pass the FIN on."""
        if self.done:
            return
        self.done = True
        self._stop_read()
        self._stop_write()
        try:
            self._dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the destination is gone; the other direction will tell
        self._on_done.direction_done(self)


def _count_text(n: int) -> str:
    return f"{n} bytes" if n else "0 bytes (end of stream)"


class _Connection:
    """One client ↔ target pair: two directions, and how the pair ends."""

    __slots__ = ("_loop", "client", "cut", "done", "down", "ended", "result", "target", "up")

    def __init__(self, loop: asyncio.AbstractEventLoop, client: socket.socket, target: socket.socket) -> None:
        self._loop = loop
        self.client, self.target = client, target
        self.result = RelayResult()
        self.done: asyncio.Future[None] = loop.create_future()
        #: True once both sockets are closed (a plain attribute: read per chunk).
        self.ended = False
        #: True if we cut it off (reset both sides) before its natural end.
        self.cut = False
        self.up = _Direction(loop, client, target, "client→target", self)
        try:
            self.down = _Direction(loop, target, client, "target→client", self)
        except BaseException:
            self.up.stop()  # its pipe, made already (EMFILE here must not leak it)
            raise

    def start(self, first_up: bytes = b"") -> None:
        self.up.start(first_up)
        if not self.ended:  # sending first_up may have failed and ended it all
            self.down.start()

    def direction_done(self, direction: _Direction) -> None:
        if self.up.done and self.down.done:
            self.result.ending += "; both sides closed" if self.result.ending else "both sides closed"
            self._end()
        elif not self.result.ending:
            self.result.ending = (
                "the client closed first" if direction is self.up else "the target closed first"
            )

    def failed(self, direction: _Direction, exc: OSError, action: str) -> None:
        """A read or write failed on one side: reset the other side, and say why."""
        # Reading fails on the direction's source, writing on its destination.
        broken_is_client = (direction is self.up) == (action == "read")
        side, other_side = ("client", "target") if broken_is_client else ("target", "client")
        other = self.target if broken_is_client else self.client
        if exc.errno in RESET_ERRNOS:
            self.result.ending = f"the {side} reset the connection; the {other_side} was reset too"
        else:
            self.result.ending = f"{action} failed on the {side}: {os.strerror(exc.errno or 0).lower()}"
        self._end(reset=(other,))

    def _end(self, *, reset: tuple[socket.socket, ...] = ()) -> None:
        if self.ended:
            return
        self.ended = True
        self.result.up, self.result.down = self.up.count, self.down.count
        self.up.stop()
        self.down.stop()
        for sock in (self.client, self.target):
            if sock in reset:
                close_with_reset(sock)
            else:
                sock.close()
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


class _StreamRelay:
    """What the server runs for each accepted client of a stream relay."""

    def __init__(
        self,
        target: Address,
        *,
        family: socket.AddressFamily,
        connect_timeout: float | None,
        idle_timeout: float | None,
        frame_timeout: float | None,
        proxy_protocol: int | None,
        accept_proxy_protocol: bool,
        source: tuple[str, int] | None = None,
    ) -> None:
        self.target = target
        self.source = source
        self.family = family
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.proxy_protocol = proxy_protocol
        self.accept_proxy_protocol = accept_proxy_protocol
        self.relayed = 0

    async def run(self, client: socket.socket, peer: str) -> None:
        """Relay one client until both directions are done; log how it went."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        conn: _Connection | None = None
        upstream: socket.socket | None = None
        where = str(self.target)
        first = b""
        try:
            header: ProxyHeader | None = None
            if self.accept_proxy_protocol:
                header, first = await self._read_proxy_header(loop, client, peer)
            upstream = await self._connect()
            if self.proxy_protocol is not None:
                await loop.sock_sendall(upstream, self._proxy_header(client, header))
            conn = _Connection(loop, client, upstream)
            upstream = None  # the connection owns it now
            conn.start(first)
            self.relayed += 1
            if self.idle_timeout is None:
                await conn.done
            else:
                await self._wait_with_idle(conn)
        except asyncio.CancelledError:
            # The relay's shutdown gave up waiting: cut it off, with resets.
            if conn is not None:
                conn.abort("cut off (reset) by the relay's shutdown while busy")
            else:
                close_with_reset(client)
            raise
        except WirecatError as exc:
            # No target (down, timed out, reset at once), or a bad PROXY
            # header: the client never gets a stream, and a reset says so (a
            # FIN would be an empty reply, a success to most clients).
            emit(Note(f"{peer}: {exc}; the client was reset", "warning", "relay"))
            close_with_reset(client)
            return
        except OSError as exc:  # e.g. the target went away while we sent the PROXY header
            error = translate_os_error(exc, Op.RELAY, where)
            emit(Note(f"{peer}: {error}; the client was reset", "warning", "relay"))
            close_with_reset(client)
            return
        finally:
            if upstream is not None:
                upstream.close()
            if conn is not None:
                conn.abort("cut off (reset) after an error")
                result = conn.result
                emit(
                    Closed(
                        peer,
                        result.up,
                        result.down,
                        time.monotonic() - started,
                        result.ending,
                        cut=conn.cut,
                        target=where,
                        origin="relay",
                    )
                )

    async def _wait_with_idle(self, conn: _Connection) -> None:
        """Wait for the end of ``conn``; close it once no bytes moved either way for idle_timeout."""
        timeout = self.idle_timeout
        assert timeout is not None
        loop = asyncio.get_running_loop()
        wait = timeout
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(conn.done), wait)
                return
            except TimeoutError:
                idle_for = loop.time() - max(conn.up.last_active, conn.down.last_active)
                if idle_for >= timeout:
                    conn.abort(f"idle for {timeout:g} s: cut off (reset)")
                    return
                wait = timeout - idle_for

    async def _connect(self) -> socket.socket:
        """Connect to the target with the one dialer: Happy Eyeballs, the source
        address, within connect_timeout in all."""
        try:
            sock = await adial(
                self.target, family=self.family, timeout=self.connect_timeout, source=self.source
            )
        except ConnectTimeout as exc:
            raise ConnectTimeout(f"cannot connect to the target {self.target}: {exc.message}") from None
        configure_stream(sock, interactive=True)
        return sock

    async def _read_proxy_header(
        self, loop: asyncio.AbstractEventLoop, client: socket.socket, peer: str
    ) -> tuple[ProxyHeader, bytes]:
        reader = ProxyHeaderReader()
        try:
            # A header is a frame: it must be whole within frame_timeout, from
            # the accept (the client speaks first), however slowly it drips;
            # and the idle clock runs from the accept too, as it does once
            # the relaying starts, so a client that sends nothing is idle.
            async with asyncio.timeout(self.frame_timeout):
                while True:
                    try:
                        data = await asyncio.wait_for(loop.sock_recv(client, 4096), self.idle_timeout)
                    except TimeoutError:
                        raise IdleTimeout(
                            f"{peer} sent no byte of its PROXY header for {self.idle_timeout:g} s"
                        ) from None
                    header = reader.feed(data)
                    if header is not None:
                        return header, reader.rest
        except TimeoutError:
            raise FrameTimeout(f"no whole PROXY header from {peer} within {self.frame_timeout:g} s") from None
        except OSError as exc:
            raise translate_os_error(exc, Op.RECEIVE, peer) from exc

    def _proxy_header(self, client: socket.socket, header: ProxyHeader | None) -> bytes:
        encode = encode_v1 if self.proxy_protocol == 1 else encode_v2
        if header is not None:  # pass on what our own client's relay said
            return encode(header.source, header.source_port, header.destination, header.destination_port)
        if client.family not in (socket.AF_INET, socket.AF_INET6):
            return encode()  # a Unix client: no address to tell
        source, destination = client.getpeername(), client.getsockname()
        src_host, dst_host = _plain_ip(source[0]), _plain_ip(destination[0])
        return encode(src_host, source[1], dst_host, destination[1])


def _plain_ip(host: str) -> str:
    """``::ffff:127.0.0.1`` → ``127.0.0.1``, so v4 clients of a v6 socket say TCP4."""
    return host[7:] if host.startswith("::ffff:") and "." in host else host.split("%", 1)[0]


async def relay(
    listen: str | int | Address,
    target: str | Address,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    allow: Iterable[str] = (),
    deny: Iterable[str] = (),
    when_full: Literal["wait", "refuse"] = "wait",
    proxy_protocol: int | None = None,
    accept_proxy_protocol: bool = False,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    source: tuple[str, int] | None = None,
    udp_idle: float = DEFAULT_UDP_IDLE,
    backlog: int = DEFAULT_BACKLOG,
) -> Listener | UdpRelay:
    """Listen on ``listen`` and relay every client to ``target``.

    Returns a running server object, like :func:`wirecat.serve`: ``.address``,
    ``close()``, graceful ``shutdown()``, ``async with``, ``serve_forever()``.

    Args:
        listen: where clients connect: ``8080`` (on 127.0.0.1), ``host:port``,
            ``[::1]:port``, ``unix:/path``, ``udp:host:port``.
        target: where each client is relayed to (same forms).
        max_connections: clients relayed at once (UDP: client addresses).
        idle_timeout: close a connection with no bytes either way for this long.
        connect_timeout: how long a connection to the target may take.
        frame_timeout: with ``accept_proxy_protocol``, how long a client
            may take to send its whole PROXY header (from the accept).
        drain_timeout: on shutdown, how long open connections may go on.
        allow, deny: who may connect (addresses, CIDR ranges).
        when_full: at max_connections, ``"wait"`` (backlog) or ``"refuse"``.
        proxy_protocol: 1 or 2 to send a PROXY header to the target first.
        accept_proxy_protocol: read a PROXY header (v1 or v2) from each client
            first; a client without a valid one is closed, logged.
        family: ``socket.AF_INET``/``AF_INET6``: one family for the listening
            side (and its default host: ``::1`` for AF_INET6), and for the
            target when it is a name; a target given as an IP address is
            taken as it is.
        source: the local (host, port) the connections to the target come
            from (``""``/0 for any); TCP targets only.
        udp_idle: UDP: seconds before a silent client's session is forgotten.

    Raises:
        UsageError, BindError, ResolveError, ProgramError.
    """
    listen_at = listen_address(listen, family=family)
    destination = as_address(target)
    idle_timeout = check_seconds(idle_timeout, "idle_timeout")
    connect_timeout = check_seconds(connect_timeout, "connect_timeout")
    frame_timeout = check_seconds(frame_timeout, "frame_timeout")
    drain_timeout = check_seconds(drain_timeout, "drain_timeout", none_ok=False) or 0.0
    if not (check_seconds(udp_idle, "udp_idle", none_ok=False) or 0.0) > 0:
        raise UsageError(f"bad udp_idle {udp_idle!r}", "give a number of seconds > 0")
    # An IP address target says its own family; -4/-6 choose among a name's addresses.
    target_family = socket.AF_UNSPEC if is_ip_address(destination.host) else family
    if listen_at.datagram != destination.datagram:
        raise UsageError(
            f"cannot relay between {listen_at} ({_kind(listen_at)}) and {destination} ({_kind(destination)})",
            "use udp: on both sides, or on neither",
        )
    if proxy_protocol not in (None, 1, 2):
        raise UsageError(f"bad PROXY protocol version {proxy_protocol!r}", "use 1 or 2")
    admission = Admission.make(
        allow=allow, deny=deny, max_connections=max_connections, when_full=when_full, unix=listen_at.is_unix
    )
    from wirecat.runtime import raise_open_file_limit

    raise_open_file_limit(max_connections * _FDS_PER_CONNECTION + 64)
    if listen_at.datagram:
        if proxy_protocol is not None or accept_proxy_protocol:
            raise UsageError("the PROXY protocol is for stream relays, not UDP")
        return await UdpRelay.start(
            listen_at, destination, admission, idle=udp_idle, family=family, target_family=target_family
        )
    runner = _StreamRelay(
        destination,
        family=target_family,
        connect_timeout=connect_timeout,
        idle_timeout=idle_timeout,
        frame_timeout=frame_timeout,
        proxy_protocol=proxy_protocol,
        accept_proxy_protocol=accept_proxy_protocol,
        source=source,
    )
    bound = bind(listen_at, family=family, backlog=backlog, blocking=False)
    # The accept loop of serve(), with no Connection: the runner takes each socket as it is.
    emit(Listening(tuple(bound.names), "relay"))
    listener = Listener(bound, admission, runner.run, drain_timeout=drain_timeout, origin="relay")
    listener._start_accepting()
    return listener


def _kind(address: Address) -> str:
    return "UDP" if address.datagram else ("a Unix stream" if address.is_unix else "TCP")


class _UdpSession:
    __slots__ = ("client", "last", "sock")

    def __init__(self, sock: socket.socket, client: tuple[str, int], now: float) -> None:
        self.sock = sock
        self.client = client
        self.last = now


class UdpRelay:
    """A UDP relay: one upstream socket per client address, forgotten when idle.

    Datagrams from a client go out of its own upstream socket (connected to
    the target), so the target's replies come back to that socket and are sent
    to that client alone. A session is forgotten after ``idle`` seconds with
    no datagram either way. Made by :func:`relay` with ``udp:`` addresses.
    """

    def __init__(
        self,
        listener: socket.socket,
        target: Address,
        endpoint_family: socket.AddressFamily,
        target_sockaddr: tuple[str, int] | tuple[str, int, int, int],
        admission: Admission,
        *,
        idle: float,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._listener = listener
        self._target = target
        self._family = endpoint_family
        self._target_sockaddr = target_sockaddr
        self._admission = admission
        self._idle = idle
        self._sessions: dict[tuple[str, int], _UdpSession] = {}
        self._buffer = bytearray(_UDP_BUFFER)
        self._view = memoryview(self._buffer)
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._closed = False
        self.addresses = [format_sockaddr(listener.getsockname())]
        emit(Listening(tuple(self.addresses), "relay"))
        self._loop.add_reader(listener.fileno(), self._from_client)
        self._sweeper = self._loop.call_later(max(idle / 4, 0.05), self._sweep)

    @classmethod
    async def start(
        cls,
        listen: Address,
        target: Address,
        admission: Admission,
        *,
        idle: float,
        family: socket.AddressFamily = socket.AF_UNSPEC,
        target_family: socket.AddressFamily = socket.AF_UNSPEC,
    ) -> UdpRelay:
        """Bind ``listen`` (in ``family``) and resolve ``target`` (in ``target_family``); return the relay."""
        if listen.is_unix or target.is_unix:
            raise UsageError("UDP relays take host:port addresses", "Unix datagram relays are not supported")
        loop = asyncio.get_running_loop()
        endpoints = await loop.run_in_executor(
            None, lambda: resolve(target.host, target.port, family=target_family, datagram=True)
        )
        bound = bind(listen, family=family, blocking=False)
        for extra in bound.sockets[1:]:
            extra.close()  # one socket: replies must leave from the address clients used
        listener = bound.sockets[0]
        return cls(
            listener,
            target,
            endpoints[0].family,
            endpoints[0].sockaddr,
            admission,
            idle=idle,
        )

    @property
    def address(self) -> str:
        """The address listened on, with the real port."""
        return self.addresses[0]

    @property
    def sessions(self) -> int:
        """Client addresses with a live session."""
        return len(self._sessions)

    def _from_client(self) -> None:
        for _ in range(64):  # a batch per wake-up
            try:
                n, client = self._listener.recvfrom_into(self._view)
            except BlockingIOError:
                return
            except OSError as exc:
                emit(Note(f"UDP receive failed: {exc.strerror}", origin="relay"))
                return
            session = self._sessions.get(client)
            if session is None:
                session = self._new_session(client)
                if session is None:
                    continue
            session.last = self._loop.time()
            try:
                session.sock.send(self._view[:n])
            except OSError as exc:
                self._forget(client, f"the target refused: {exc.strerror}")

    def _new_session(self, client: tuple[str, int]) -> _UdpSession | None:
        name = format_sockaddr(client)
        refusal = self._admission.decide(peer_host(client), name, len(self._sessions), unit="UDP session")
        if refusal is not None:
            emit(Refused(name, refusal.reason, refusal.why, "relay"))
            return None
        try:
            sock = trace.new_socket(self._family, socket.SOCK_DGRAM)
        except OSError as exc:  # out of descriptors: drop this datagram, keep serving
            emit(Note(f"{name}: cannot open a socket to the target: {exc.strerror}", "warning", "relay"))
            return None
        try:
            sock.setblocking(False)
            sock.connect(self._target_sockaddr)  # a datagram connect: only sets the default peer
        except OSError as exc:
            sock.close()
            emit(Note(f"{name}: cannot reach the target {self._target}: {exc.strerror}", "warning", "relay"))
            return None
        session = _UdpSession(sock, client, self._loop.time())
        self._sessions[client] = session
        self._loop.add_reader(sock.fileno(), self._from_target, session)
        emit(Note(f"new UDP session for {name}", origin="relay"))
        return session

    def _from_target(self, session: _UdpSession) -> None:
        for _ in range(64):
            try:
                n = session.sock.recv_into(self._view)
            except BlockingIOError:
                return
            except OSError as exc:  # ICMP port unreachable from the target
                self._forget(session.client, f"the target refused: {exc.strerror}")
                return
            session.last = self._loop.time()
            try:
                self._listener.sendto(self._view[:n], session.client)
            except OSError as exc:
                emit(
                    Note(f"cannot send to {format_sockaddr(session.client)}: {exc.strerror}", origin="relay")
                )

    def _forget(self, client: tuple[str, int], why: str) -> None:
        session = self._sessions.pop(client, None)
        if session is not None:
            self._loop.remove_reader(session.sock.fileno())
            session.sock.close()
            emit(Note(f"UDP session for {format_sockaddr(client)} ended: {why}", origin="relay"))

    def _sweep(self) -> None:
        now = self._loop.time()
        for client, session in list(self._sessions.items()):
            if now - session.last >= self._idle:
                self._forget(client, f"idle for {self._idle:g} s")
        if not self._closed:
            self._sweeper = self._loop.call_later(max(self._idle / 4, 0.05), self._sweep)

    def close(self) -> None:
        """Stop relaying: close the listening socket and every session."""
        if self._closed:
            return
        self._closed = True
        self._sweeper.cancel()
        self._loop.remove_reader(self._listener.fileno())
        self._listener.close()
        for client in list(self._sessions):
            self._forget(client, "the relay stopped")
        if not self._done.done():
            self._done.set_result(None)

    async def shutdown(self, drain_timeout: float | None = None) -> DrainResult:
        """Datagrams have nothing to drain: the same as :meth:`close`; nothing is cut."""
        self.close()
        return DrainResult(finished=0, cut=0)

    async def abort(self) -> int:
        """The same as :meth:`close`: no connection to cut. Returns 0."""
        self.close()
        return 0

    async def serve_forever(self) -> None:
        """Wait until the relay is closed."""
        await asyncio.shield(self._done)

    async def __aenter__(self) -> UdpRelay:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
