"""The server: :func:`serve` and :class:`Server`.

The seed's six server steps, done once and done right, so a handler only
has to talk to one client::

    async def handler(conn):
        async for line in conn:
            await conn.send(line.upper())

    server = await wirecat.serve(handler, "127.0.0.1:8000", framing=Lines())
    await server.serve_forever()

What the server does for every handler (each a place where hand-written
servers go wrong):

* ``socket``, ``bind``, ``listen`` on every address the host names, with
  ``SO_REUSEADDR``; loopback unless another host is given; port 0 reported.
* its own accept loop, with an errno policy (``sockets.ACCEPT_*``): a
  connection that died before we took it is skipped; running out of
  descriptors is logged and retried after 100 ms, never a crash.
* ``max_connections``: at the limit, new clients wait in the listen backlog
  (the loop stops calling ``accept()``) or, with ``when_full="refuse"``, are
  closed at once with a logged reason.
* ``allow``/``deny`` lists, checked before any byte is read.
* ``idle_timeout`` per connection (slowloris), a framer per connection with
  its size limits, and a handler failure ends that connection only, logged
  with the peer.
* graceful shutdown: stop accepting at once; handlers waiting between frames
  get end of stream; busy ones get ``drain_timeout`` to finish; what they
  sent is flushed before each socket closes.

Logging goes to the ``wirecat.server`` logger: one INFO line per connection
when it ends (peer, duration, bytes each way, why), WARNING for refused or
broken clients, ERROR with the traceback for a handler that raised.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Literal, NamedTuple, final

from wirecat.access import AccessList
from wirecat.address import Address
from wirecat.bind import Bound, bind, listen_address
from wirecat.errors import FrameError, FrameTimeout, IdleTimeout, NetworkError, Timeout, UsageError
from wirecat.framing import Framer, Raw
from wirecat.limits import (
    DEFAULT_BACKLOG,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_RECEIVE_QUEUE,
)
from wirecat.report import format_bytes
from wirecat.sockets import (
    ACCEPT_BACKOFF_ERRNOS,
    ACCEPT_BACKOFF_SECONDS,
    ACCEPT_SKIP_ERRNOS,
    close_with_reset,
    configure_stream,
    peer_name,
)
from wirecat.stream import Connection, new_connection

__all__ = ["DrainResult", "Handler", "Server", "serve"]

#: What a server runs for each connection.
Handler = Callable[[Connection], Awaitable[None]]

logger = logging.getLogger("wirecat.server")

#: Connections taken per wake-up of the accept loop; asyncio takes up to its backlog.
_ACCEPT_BATCH = 64
#: Descriptors kept in reserve above max_connections (listeners, logs, stdio).
_SPARE_DESCRIPTORS = 64
#: Seconds a TLS handshake may take; asyncio's own default is 60.
_TLS_HANDSHAKE_TIMEOUT = 10.0


class DrainResult(NamedTuple):
    """How a graceful shutdown went: what :meth:`Server.shutdown` returns.

    Attributes:
        finished: connections open at the shutdown that ended by themselves
            within the drain timeout.
        cut: connections still busy at the drain timeout, cut off with a
            reset so that their peers can tell (see :meth:`Connection.abort`).
    """

    finished: int
    cut: int


@final
class Server:
    """A running server; made by :func:`serve`.

    ``async with server:`` shuts it down gracefully at the end of the block;
    :meth:`serve_forever` waits until it is shut down.
    """

    def __init__(
        self,
        handler: Handler | None,
        bound: Bound,
        *,
        max_connections: int,
        drain_timeout: float,
        access: AccessList,
        when_full: Literal["wait", "refuse"],
        framing: Framer | None = None,
        tls: Any = None,
        idle_timeout: float | None = None,
        frame_timeout: float | None = None,
        run_socket: Callable[[socket.socket, str], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._handler = handler
        # What to do with each accepted socket: by default, run the handler on a
        # Connection; the relay brings its own (it never makes a transport).
        self._run_socket = run_socket or self._run
        self._bound = bound
        self._listeners = bound.sockets
        self._framing = framing if framing is not None else Raw()
        self._tls = tls
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._frame_timeout = frame_timeout
        self._drain_timeout = drain_timeout
        self._access = access
        self._when_full = when_full
        self._loop = asyncio.get_running_loop()
        self._connection_kind = type(new_connection())
        self._tasks: set[asyncio.Task[None]] = set()
        # Accepted sockets whose task has not run its first step: a task
        # cancelled before then never runs, and its socket is ours to reset.
        self._unstarted: dict[asyncio.Task[None], socket.socket] = {}
        self._connections: set[Connection] = set()
        self._accepting = False
        self._closed = False
        self._backoff: asyncio.TimerHandle | None = None
        self._done: asyncio.Future[None] = self._loop.create_future()
        #: Connections accepted since the start.
        self.accepted = 0
        self.addresses = list(bound.names)
        first = self._listeners[0].getsockname() if self._listeners else None
        self._port = int(first[1]) if isinstance(first, tuple) else 0

    # -- public ---------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The first address listened on, with the real port (``127.0.0.1:40123``)."""
        return self.addresses[0]

    @property
    def port(self) -> int:
        """The port listened on (0 for a Unix socket); still known after close()."""
        return self._port

    @property
    def connections(self) -> frozenset[Connection]:
        """The connections open now."""
        return frozenset(self._connections)

    def is_serving(self) -> bool:
        """True while new connections are accepted (or wait in the backlog)."""
        return not self._closed

    def close(self) -> None:
        """Stop accepting and close the listening sockets; open connections go on.

        Idempotent. A Unix socket file is removed.
        """
        if self._closed:
            return
        self._closed = True
        self._pause_accepting()
        if self._backoff is not None:
            self._backoff.cancel()
        self._bound.close()  # (and a Unix socket file is removed)
        if not self._tasks and not self._done.done():
            self._done.set_result(None)

    async def shutdown(self, drain_timeout: float | None = None) -> DrainResult:
        """Graceful shutdown: stop accepting, let handlers finish, close.

        Handlers waiting for a frame with none in progress get end of stream
        at once; the others have ``drain_timeout`` seconds (the server's by
        default) to finish. Those still busy then are cut off: their tasks
        are cancelled and their connections reset, never closed as if they
        had ended. Idempotent (a second call finds nothing left).

        Returns:
            How many connections finished and how many were cut.
        """
        self.close()
        for conn in list(self._connections):
            conn._stop()
        timeout = self._drain_timeout if drain_timeout is None else drain_timeout
        tasks = set(self._tasks)
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                logger.info("cutting off %d connection(s) still busy after %g s", len(pending), timeout)
                await self._cancel(pending)
        self._finish()
        return DrainResult(finished=len(tasks) - len(pending), cut=len(pending))

    async def abort(self) -> int:
        """Stop now: close the listeners and cut off every connection (reset).

        For an impatient second Ctrl-C during :meth:`shutdown`. Returns how
        many connections were cut.
        """
        self.close()
        pending = {task for task in self._tasks if not task.done()}
        await self._cancel(pending)
        self._finish()
        return len(pending)

    async def _cancel(self, tasks: set[asyncio.Task[None]]) -> None:
        """Cancel ``tasks`` (each resets its connection) and wait until they are done."""
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    async def serve_forever(self) -> None:
        """Wait until the server has been shut down (by :meth:`shutdown` or :meth:`close`)."""
        await asyncio.shield(self._done)

    async def wait_closed(self) -> None:
        """Same as :meth:`serve_forever`: wait for the end of the server."""
        await asyncio.shield(self._done)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        return f"<Server {', '.join(self.addresses)} connections={len(self._connections)}>"

    # -- accepting ------------------------------------------------------------------------------

    def _start_accepting(self) -> None:
        if self._accepting or self._closed:
            return
        self._accepting = True
        for sock in self._listeners:
            self._loop.add_reader(sock.fileno(), self._accept_ready, sock)

    def _pause_accepting(self) -> None:
        if not self._accepting:
            return
        self._accepting = False
        for sock in self._listeners:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())

    def _resume_after_backoff(self) -> None:
        self._backoff = None
        self._start_accepting()

    def _accept_ready(self, listener: socket.socket) -> None:
        """The listener is readable: take up to a batch of connections."""
        for _ in range(_ACCEPT_BATCH):
            full = len(self._tasks) >= self._max_connections
            if full and self._when_full == "wait":
                # Leave the rest in the kernel's backlog; resumed when one ends.
                self._pause_accepting()
                return
            try:
                sock, sockaddr = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in ACCEPT_SKIP_ERRNOS:
                    continue
                if exc.errno in ACCEPT_BACKOFF_ERRNOS:
                    logger.warning(
                        "cannot accept: %s; retrying in %g s", exc.strerror, ACCEPT_BACKOFF_SECONDS
                    )
                    self._pause_accepting()
                    self._backoff = self._loop.call_later(ACCEPT_BACKOFF_SECONDS, self._resume_after_backoff)
                    return
                logger.error(
                    "accept() failed on %s: %s; the server stops", peer_name(listener.getsockname()), exc
                )
                self.close()
                return
            host = str(sockaddr[0]) if isinstance(sockaddr, tuple) else ""
            peer = peer_name(sockaddr) if host else "a Unix socket client"
            if not self._access.admits(host):
                logger.info("refused %s: not allowed by the allow/deny rules", peer)
                sock.close()
                continue
            if full:
                logger.warning("refused %s: %d connections already (max_connections)", peer, len(self._tasks))
                sock.close()
                continue
            self.accepted += 1
            sock.setblocking(False)
            configure_stream(sock, interactive=True)
            task = self._loop.create_task(self._start_socket(sock, peer))
            self._tasks.add(task)
            self._unstarted[task] = sock
            task.add_done_callback(self._task_done)

    async def _start_socket(self, sock: socket.socket, peer: str) -> None:
        # The task's first step: from here on the runner owns the socket.
        self._unstarted.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
        await self._run_socket(sock, peer)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        never_ran = self._unstarted.pop(task, None)
        if never_ran is not None:  # cancelled before its first step: cut off here
            close_with_reset(never_ran)
        if self._closed:
            if not self._tasks and not self._done.done():
                self._done.set_result(None)
        elif not self._accepting and self._backoff is None:
            self._start_accepting()

    # -- one connection -------------------------------------------------------------------------

    def _new_connection(self) -> Connection:
        return self._connection_kind(
            self._framing.clone(),
            idle_timeout=self._idle_timeout,
            max_queued=DEFAULT_RECEIVE_QUEUE,
            frame_timeout=self._frame_timeout,
        )

    async def _run(self, sock: socket.socket, peer: str) -> None:
        """Handshake, run the handler, close: one connection's whole life."""
        started = time.monotonic()
        try:
            _, conn = await self._loop.connect_accepted_socket(
                self._new_connection,
                sock,
                ssl=self._tls,
                ssl_handshake_timeout=_TLS_HANDSHAKE_TIMEOUT if self._tls is not None else None,
            )
        except (TimeoutError, OSError, ValueError) as exc:
            # A TLS handshake that failed or timed out, or a peer already gone.
            logger.warning("%s: could not start the connection: %s", peer, exc or type(exc).__name__)
            close_with_reset(sock)
            return
        except asyncio.CancelledError:
            close_with_reset(sock)
            raise
        self._connections.add(conn)
        if self._closed:
            conn._stop()
        # Cut off (reset, see Connection.abort) rather than closed: a shutdown
        # that gave up waiting, and a timeout (the server ended the stream,
        # its peer did not).
        cut = False
        cancelled_in_close: asyncio.CancelledError | None = None
        try:
            assert self._handler is not None
            await self._handler(conn)
            if not conn.end_reason:
                conn.end_reason = "the handler finished"
        except (FrameError, IdleTimeout, NetworkError) as exc:
            conn.end_reason = str(exc)
            cut = isinstance(exc, Timeout)
            if cut:
                conn.end_reason += "; cut off (reset)"
            # Broken framing and a frame too slow (slowloris) are worth an
            # operator's look; a peer that reset or went idle is everyday.
            level = logging.WARNING if isinstance(exc, (FrameError, FrameTimeout)) else logging.INFO
            logger.log(level, "%s: %s", conn.peer, conn.end_reason)
        except asyncio.CancelledError:
            cut = True
            conn.end_reason = "cut off (reset) by the server's shutdown while busy"
        except Exception as exc:
            conn.end_reason = f"the handler failed: {exc!r}"
            logger.error("handler failed for %s", conn.peer, exc_info=exc)
        finally:
            self._connections.discard(conn)
            if cut:
                conn.abort()
            else:
                try:
                    await self._close(conn)
                except asyncio.CancelledError as exc:
                    # shutdown()'s deadline cancelled us while the reply was
                    # still flushing: the socket must not outlive the server.
                    conn.abort()
                    conn.end_reason += "; cut off (reset) by the server's shutdown while flushing"
                    cancelled_in_close = exc
            logger.info(
                "%s: closed after %.2f s; received %s, sent %s; %s",
                conn.peer,
                time.monotonic() - started,
                format_bytes(conn.bytes_received),
                format_bytes(conn.bytes_sent),
                conn.end_reason,
            )
            if cancelled_in_close is not None:
                raise cancelled_in_close

    async def _close(self, conn: Connection) -> None:
        """Close, flushing what the handler sent; abort a peer that will not take it."""
        conn.close()
        try:
            async with asyncio.timeout(self._drain_timeout):
                await conn.wait_closed()
        except TimeoutError:
            conn.abort()
            conn.end_reason += f"; unsent data dropped after {self._drain_timeout:g} s, reset"


async def serve(
    handler: Handler,
    address: str | int | Address = 0,
    *,
    framing: Framer | None = None,
    tls: Any = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    allow: Iterable[str] = (),
    deny: Iterable[str] = (),
    when_full: Literal["wait", "refuse"] = "wait",
    family: socket.AddressFamily = socket.AF_UNSPEC,
    backlog: int = DEFAULT_BACKLOG,
) -> Server:
    """Listen on ``address`` and run ``handler(conn)`` for each client.

    Returns once the server is listening (read the real port from
    ``server.address``); connections are served in the background until
    ``shutdown()``.

    Args:
        handler: ``async def handler(conn)``; the connection is closed
            (gracefully) when it returns, and on any exception it raises.
        address: ``host:port``, ``[::1]:port``, ``unix:/path``, a bare port
            or an :class:`~wirecat.address.Address`. Without a host: loopback,
            in ``family`` (127.0.0.1, or ::1 for AF_INET6). Port 0 picks a
            free port (the default).
        framing: a framer (``Lines()``, ``LengthPrefixed()``...); each
            connection gets a clone. Raw bytes when None.
        tls: a server-side ``ssl.SSLContext``, or None for plain TCP.
        max_connections: connections served at once.
        idle_timeout: seconds of silence (both ways) before a connection is
            cut off (reset); None for never.
        frame_timeout: seconds a frame may take from its first byte to its
            last before the connection is cut off (reset) and logged: each
            byte restarts the idle clock, so this is what stops a client that
            drips a line one byte at a time (slowloris). None for never;
            Raw framing has no frames to bound.
        drain_timeout: seconds a graceful shutdown waits for busy handlers,
            and for a closing connection to flush what it sent.
        allow: addresses or CIDR ranges that may connect (all when empty).
        deny: addresses or CIDR ranges that may not (wins over ``allow``).
        when_full: at ``max_connections``, ``"wait"`` leaves new clients in
            the listen backlog; ``"refuse"`` closes them at once, logged.
        family: ``socket.AF_INET`` or ``AF_INET6`` to use only one family.
        backlog: the ``listen()`` queue length (not a client limit).

    Raises:
        BindError, ResolveError, ProgramError: cannot listen there.
        UsageError: a bad address, rule or limit.
    """
    target = listen_address(address, family=family)
    if target.datagram:
        raise UsageError("serve() takes a stream address, not udp:")
    if max_connections < 1:
        raise UsageError(f"bad max_connections {max_connections}", "give a number ≥ 1")
    if when_full not in ("wait", "refuse"):
        raise UsageError(f"bad when_full {when_full!r}", "use 'wait' or 'refuse'")
    access = AccessList.from_rules(allow, deny)
    access.check_applies(unix=target.is_unix)
    bound = bind(target, family=family, backlog=backlog, blocking=False)
    from wirecat.runtime import raise_open_file_limit

    raise_open_file_limit(max_connections + _SPARE_DESCRIPTORS)
    server = Server(
        handler,
        bound,
        framing=framing,
        tls=tls,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
        frame_timeout=frame_timeout,
        drain_timeout=drain_timeout,
        access=access,
        when_full=when_full,
    )
    server._start_accepting()
    return server
