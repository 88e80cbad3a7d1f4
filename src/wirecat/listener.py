"""One accept loop for every asyncio server: :class:`Listener`.

:func:`wirecat.serve` and :func:`wirecat.relay` both run on it. It owns:

* the accept loop itself: ``loop.add_reader`` on each listening socket, up to
  64 ``accept()``s per wake-up, instead of ``loop.create_server``, which is
  what lets it stop accepting at the connection limit (clients wait in the
  kernel's backlog), apply allow/deny before a transport exists, and follow
  the accept errno policy (:mod:`wirecat.admission`);
* one task per admitted connection, which runs the ``run`` coroutine it was
  given;
* the lifetime of the whole: ``close()`` (stop accepting), a graceful
  ``shutdown()`` that lets busy connections finish for a drain timeout and
  then cuts the rest off (each task is cancelled and resets its connection),
  ``abort()`` (cut everything now), ``serve_forever()``, ``async with``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, NamedTuple, Self

from wirecat.address import format_sockaddr
from wirecat.admission import (
    ACCEPT_BACKOFF_SECONDS,
    AcceptErrorAction,
    Admission,
    accept_error_action,
    peer_host,
    peer_label,
)
from wirecat.bind import Bound
from wirecat.events import Accepted, Note, Refused, emit
from wirecat.limits import DEFAULT_DRAIN_TIMEOUT
from wirecat.sockets import close_with_reset, configure_stream

__all__ = ["DrainResult", "Listener", "Runner"]

#: Serves one admitted connection: ``await run(sock, peer)``.
Runner = Callable[[socket.socket, str], Coroutine[Any, Any, None]]

#: Connections taken per wake-up of the accept loop; asyncio takes up to its backlog.
_ACCEPT_BATCH = 64


class DrainResult(NamedTuple):
    """How a graceful shutdown went: what :meth:`Listener.shutdown` returns.

    Attributes:
        finished: connections open at the shutdown that ended by themselves
            within the drain timeout.
        cut: connections still busy at the drain timeout, cut off with a
            reset so that their peers can tell (see :meth:`Connection.abort`).
    """

    finished: int
    cut: int


class Listener:
    """One accept loop: bound sockets, an admission policy, a task per admitted connection.

    What :func:`wirecat.serve` (each connection a handler's :class:`Connection`)
    and :func:`wirecat.relay` (each connection relayed) return. ``async with``
    shuts it down gracefully at the end of the block; :meth:`serve_forever`
    waits until it is shut down.

    Args:
        bound: the listening sockets (:func:`wirecat.bind.bind`, non-blocking).
        admission: allow/deny, the connection limit and what to do when full.
        run: ``await run(sock, peer)`` serves one admitted connection (a
            non-blocking socket with the stream options set, and the peer's
            name); the connection counts against the limit until it returns.
        drain_timeout: how long :meth:`shutdown` lets busy connections finish.
        origin: how its events name it (``server``, ``relay``).
        on_finish: called once, when the listener is closed and no
            connection is left (the end of :meth:`serve_forever`): the relay
            says the warnings it was holding.
    """

    def __init__(
        self,
        bound: Bound,
        admission: Admission,
        run: Runner,
        *,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        origin: str = "server",
        on_finish: Callable[[], None] | None = None,
    ) -> None:
        self._bound = bound
        self._on_finish = on_finish
        self._listeners = bound.sockets
        self._admission = admission
        self._run_socket = run
        self._drain_timeout = drain_timeout
        self._origin = origin
        self._loop = asyncio.get_running_loop()
        # Each connection's task, and its socket (for _task_done). A dict, not a
        # set and a partial per done-callback: ~190 bytes less per connection.
        self._tasks: dict[asyncio.Task[None], socket.socket] = {}
        # Tasks cancelled before their first step, and their sockets (see _task_done).
        self._never_ran: dict[asyncio.Task[None], socket.socket] = {}
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
        if not self._tasks:
            self._finish()

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
        self._before_drain()
        timeout = self._drain_timeout if drain_timeout is None else drain_timeout
        tasks = set(self._tasks)
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                n = len(pending)
                emit(
                    Note(f"cutting off {n} connection(s) still busy after {timeout:g} s", origin=self._origin)
                )
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

    def _before_drain(self) -> None:
        """A shutdown begins (the listeners are closed): a subclass's chance to end idle connections."""

    async def _cancel(self, tasks: set[asyncio.Task[None]]) -> None:
        """Cancel ``tasks`` (each resets its connection) and wait until they are done."""
        import inspect

        for task in tasks:
            if inspect.getcoroutinestate(task.get_coro()) == inspect.CORO_CREATED:  # type: ignore[arg-type]
                self._never_ran[task] = self._tasks[task]  # its runner will not clean up: _task_done will
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _finish(self) -> None:
        """Closed, and no connection left: the end (once)."""
        if not self._done.done():
            if self._on_finish is not None:
                self._on_finish()
            self._done.set_result(None)

    async def serve_forever(self) -> None:
        """Wait until the server has been shut down (by :meth:`shutdown` or :meth:`close`)."""
        await asyncio.shield(self._done)

    async def wait_closed(self) -> None:
        """Same as :meth:`serve_forever`: wait for the end of the server."""
        await asyncio.shield(self._done)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {', '.join(self.addresses)} connections={len(self._tasks)}>"

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
        admission = self._admission
        for _ in range(_ACCEPT_BATCH):
            if not admission.should_accept(len(self._tasks)):
                # Full, and waiting: leave the rest in the kernel's backlog;
                # accepting resumes when a connection ends.
                self._pause_accepting()
                return
            try:
                sock, sockaddr = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                action = accept_error_action(exc.errno)
                if action is AcceptErrorAction.SKIP:
                    continue
                if action is AcceptErrorAction.BACK_OFF:
                    text = f"cannot accept: {exc.strerror}; retrying in {ACCEPT_BACKOFF_SECONDS:g} s"
                    emit(Note(text, "warning", self._origin))
                    self._pause_accepting()
                    self._backoff = self._loop.call_later(ACCEPT_BACKOFF_SECONDS, self._resume_after_backoff)
                    return
                where = format_sockaddr(listener.getsockname())
                emit(Note(f"accept() failed on {where}: {exc}; the server stops", "error", self._origin))
                self.close()
                return
            peer = peer_label(sockaddr, self.addresses[0])
            refusal = admission.decide(peer_host(sockaddr), peer, len(self._tasks))
            if refusal is not None:
                emit(Refused(peer, refusal.reason, refusal.why, self._origin))
                sock.close()
                continue
            self.accepted += 1
            sock.setblocking(False)
            configure_stream(sock, interactive=True)
            task = self._loop.create_task(self._run_socket(sock, peer))
            self._tasks[task] = sock
            task.add_done_callback(self._task_done)
            emit(Accepted(peer, self.addresses[0], len(self._tasks), self._origin))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        del self._tasks[task]
        sock = self._never_ran.pop(task, None)
        if sock is not None:
            # Cancelled before its first step, the runner ran none of its
            # cleanup: the socket is still ours, and is cut off here. (Not a
            # wrapper coroutine: a frame per connection costs a few hundred bytes.)
            close_with_reset(sock)
        if self._closed:
            if not self._tasks:
                self._finish()
        elif not self._accepting and self._backoff is None:
            self._start_accepting()
