"""The server: :func:`serve` and :class:`Server`.

The six steps of a TCP server (socket, bind, listen, accept, communicate,
close), done once and done right, so a handler only has to talk to one
client::

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

What happens is emitted as events (:mod:`wirecat.events`, origin
``server``): Listening, Accepted, Refused, one Closed per connection (peer,
duration, bytes each way, why), a warning Note for a client that broke the
framing or was too slow, an error Note for a handler that raised. Without
other subscribers they go to the ``wirecat.server`` logger.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Literal, final

from wirecat.address import Address
from wirecat.admission import Admission
from wirecat.bind import Bound, bind, check_backlog, listen_address
from wirecat.errors import (
    FrameError,
    FrameTimeout,
    HandshakeTimeout,
    IdleTimeout,
    NetworkError,
    PeerReset,
    Timeout,
    UsageError,
    WirecatError,
)
from wirecat.events import Closed, Listening, Note, emit
from wirecat.framing import Framer, Raw, check_framer
from wirecat.limits import (
    DEFAULT_BACKLOG,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_RECEIVE_QUEUE,
    check_seconds,
)
from wirecat.listener import DrainResult, Listener
from wirecat.report import format_bytes
from wirecat.sockets import Op, close_with_reset, translate_os_error
from wirecat.stream import Connection, new_connection

if TYPE_CHECKING:
    import ssl

    from wirecat.tls import ServerTLS

__all__ = ["DrainResult", "Handler", "Server", "serve"]

#: What a server runs for each connection.
Handler = Callable[[Connection], Awaitable[None]]


#: Connections taken per wake-up of the accept loop; asyncio takes up to its backlog.
_ACCEPT_BATCH = 64
#: Descriptors kept in reserve above max_connections (listeners, logs, stdio).
_SPARE_DESCRIPTORS = 64


@final
class Server(Listener):
    """A running server; made by :func:`serve`.

    A :class:`~wirecat.listener.Listener` whose connections each run the
    handler on a :class:`Connection`. ``async with server:`` shuts it down
    gracefully at the end of the block; :meth:`serve_forever` waits until it
    is shut down.
    """

    def __init__(
        self,
        handler: Handler,
        bound: Bound,
        admission: Admission,
        *,
        drain_timeout: float,
        framing: Framer | None = None,
        tls: ssl.SSLContext | None = None,
        idle_timeout: float | None = None,
        frame_timeout: float | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(bound, admission, self._run, drain_timeout=drain_timeout)
        self._handler = handler
        self._framing = framing if framing is not None else Raw()
        self._tls = tls
        self._idle_timeout = idle_timeout
        self._frame_timeout = frame_timeout
        self._handshake_timeout = handshake_timeout if tls is not None else None
        self._connection_kind = type(new_connection())
        self._connections: set[Connection] = set()

    @property
    def connections(self) -> frozenset[Connection]:
        """The connections open now."""
        return frozenset(self._connections)

    def _before_drain(self) -> None:
        # Handlers waiting between frames get end of stream at once.
        for conn in list(self._connections):
            conn._stop()

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
        conn = self._new_connection()
        try:
            # The protocol is the one we made, not what the call returns:
            # uvloop returns its own SSLProtocol there when ssl is given.
            # The loop does the TLS handshake (uvloop's in C), bounded by
            # ssl_handshake_timeout, and this task holds the connection's
            # slot until it ends: a client that sends nothing, or drips its
            # ClientHello, is cut at the bound and frees the slot.
            await self._loop.connect_accepted_socket(
                lambda: conn, sock, ssl=self._tls, ssl_handshake_timeout=self._handshake_timeout
            )
        except (OSError, ValueError) as exc:
            # A TLS handshake that failed or timed out, or a peer already gone:
            # one line, never asyncio's traceback, and the server goes on.
            self._handshake_failed(exc, peer, sock)
            return
        except asyncio.CancelledError:
            close_with_reset(sock)
            raise
        if self._tls is not None and conn.peer_certificate is not None:
            self._say_peer_certificate(conn)
        self._connections.add(conn)
        if self._closed:
            conn._stop()
        # Cut off (reset, see Connection.abort) rather than closed: a shutdown
        # that gave up waiting, and a timeout (the server ended the stream,
        # its peer did not). Broken framing and a failed handler end it too:
        # what was sent is flushed first (a goodbye), then a reset, so the
        # peer cannot take the end for an orderly one.
        cut = False
        reset_after_flush = False
        cancelled_in_close: asyncio.CancelledError | None = None
        try:
            assert self._handler is not None
            await self._handler(conn)
            if not conn.end_reason:
                conn.end_reason = "the handler finished"
        except (FrameError, IdleTimeout, NetworkError) as exc:
            conn.end_reason = str(exc)
            cut = isinstance(exc, Timeout)
            reset_after_flush = isinstance(exc, FrameError)
            if cut or reset_after_flush:
                conn.end_reason += "; cut off (reset)"
            # Broken framing and a frame too slow (slowloris) are worth an
            # operator's look; a peer that reset or went idle is everyday.
            level = "warning" if isinstance(exc, (FrameError, FrameTimeout)) else "info"
            emit(Note(f"{conn.peer}: {conn.end_reason}", level, "server"))
        except asyncio.CancelledError:
            cut = True
            conn.end_reason = "cut off (reset) by the server's shutdown while busy"
        except Exception as exc:
            conn.end_reason = f"the handler failed: {exc!r}; cut off (reset)"
            reset_after_flush = True
            emit(Note(f"handler failed for {conn.peer} ({type(exc).__name__}: {exc})", "error", "server"))
        finally:
            self._connections.discard(conn)
            if cut:
                conn.abort()
            else:
                try:
                    await self._close(conn, reset=reset_after_flush)
                except asyncio.CancelledError as exc:
                    # shutdown()'s deadline cancelled us while the reply was
                    # still flushing: the socket must not outlive the server.
                    conn.abort()
                    conn.end_reason += "; cut off (reset) by the server's shutdown while flushing"
                    cancelled_in_close = exc
            emit(
                Closed(
                    conn.peer,
                    conn.bytes_sent,
                    conn.bytes_received,
                    time.monotonic() - started,
                    conn.end_reason,
                    cut=cut or reset_after_flush or cancelled_in_close is not None,
                    origin="server",
                )
            )
            if cancelled_in_close is not None:
                raise cancelled_in_close

    def _handshake_failed(self, exc: Exception, peer: str, sock: socket.socket) -> None:
        """Say in one line why a connection could not start, and close its socket."""
        error = _start_error(exc, peer, self._handshake_timeout)
        timed_out = isinstance(error, HandshakeTimeout)
        if sock.fileno() >= 0:  # (the transport closed it already, where it got that far)
            if timed_out:
                close_with_reset(sock)  # a client that is too slow is cut off
            else:
                sock.close()  # a FIN behind the alert OpenSSL queued, so that the client reads it
        # A client that closed before saying anything (a port probe, a
        # health check) is everyday; a failed or stalled handshake is worth
        # an operator's look: a misconfigured client, or someone probing.
        quiet = isinstance(error, PeerReset)
        emit(Note(str(error), "info" if quiet else "warning", "server"))

    def _say_peer_certificate(self, conn: Connection) -> None:
        """Under -v: who the client's certificate says it is (mutual TLS)."""
        der = conn.peer_certificate
        assert der is not None
        from wirecat.tls import describe_certificate

        try:
            info = describe_certificate(der)
        except Exception:  # (a certificate OpenSSL accepted but cryptography cannot read)
            from wirecat.tls import fingerprint

            text = f"{conn.peer}: client certificate {fingerprint(der)} (unreadable)"
        else:
            text = f"{conn.peer}: client certificate {info.subject}, issued by {info.issuer}"
        emit(Note(f"{text} ({conn.tls_version})", "info", "server"))

    async def _close(self, conn: Connection, *, reset: bool = False) -> None:
        """Close, flushing what the handler sent; abort a peer that will not take it."""
        conn.close(reset=reset)
        try:
            async with asyncio.timeout(self._drain_timeout):
                await conn.wait_closed()
        except TimeoutError:
            unsent = conn.write_buffer_size
            conn.abort()
            conn.end_reason += f"; unsent data dropped after {self._drain_timeout:g} s, reset"
            # -v or not: what the handler sent never arrived, and the peer
            # (reset) cannot say why.
            emit(
                Note(
                    f"{conn.peer}: {format_bytes(unsent)} the peer did not take within"
                    f" {self._drain_timeout:g} s of closing were dropped; the connection was reset",
                    "warning",
                    "server",
                )
            )


def _server_context(tls: object) -> ssl.SSLContext | None:
    """The ``tls`` argument of serve() checked: its server-side context, or None.

    ``ssl`` is imported only when TLS is given: a plain server never pays for it.
    """
    if tls is None:
        return None
    import ssl

    from wirecat.tls import ClientTLS, ServerTLS

    context = tls.context if isinstance(tls, ServerTLS) else tls
    if isinstance(tls, ClientTLS) or (
        isinstance(context, ssl.SSLContext) and context.protocol == ssl.PROTOCOL_TLS_CLIENT
    ):
        raise UsageError(
            "serve() got a client's TLS settings", "give ServerTLS or a context from tls.server_context()"
        )
    if not isinstance(context, ssl.SSLContext):
        raise UsageError(
            f"bad tls {tls!r}", "give tls.ServerTLS, a server-side ssl.SSLContext, or None for plain TCP"
        )
    return context


def _check_handshake_timeout(value: object) -> float:
    seconds = check_seconds(value, "handshake_timeout", none_ok=False)
    if not seconds:  # (the loops refuse 0: a handshake takes a round trip at the least)
        raise UsageError(f"bad handshake_timeout {value!r}: give a number of seconds above 0")
    return seconds


def _start_error(exc: Exception, peer: str, handshake_timeout: float | None) -> WirecatError:
    """What went wrong before a connection started: its TLS handshake, mostly."""
    ssl = sys.modules.get("ssl")  # loaded only where TLS is used
    if ssl is not None and isinstance(exc, ssl.SSLError):
        from wirecat.tls import translate_ssl_error

        return translate_ssl_error(exc, peer, server_side=True)
    if isinstance(exc, ConnectionAbortedError) and exc.errno is None and handshake_timeout is not None:
        # The loop's ssl_handshake_timeout: it raises ConnectionAbortedError
        # with a message and no errno (a kernel's ECONNABORTED has one).
        return HandshakeTimeout(
            f"{peer} did not finish the TLS handshake within {handshake_timeout:g} s; cut off",
            "a client that sends nothing, or too slowly, is not let in",
        )
    if isinstance(exc, ConnectionResetError) and handshake_timeout is not None:
        # The end of stream (no errno: the loop's own words) or a reset before
        # the handshake finished.
        return PeerReset(
            f"{peer} closed the connection before the TLS handshake finished",
            "a client that does not trust the server's certificate may do so",
        )
    if isinstance(exc, OSError):
        return translate_os_error(exc, Op.TALK, peer)
    return NetworkError(f"{peer}: could not start the connection: {exc}")


async def serve(
    handler: Handler,
    address: str | int | Address = 0,
    *,
    framing: Framer | None = None,
    tls: ServerTLS | ssl.SSLContext | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
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
        tls: TLS settings: a :class:`~wirecat.tls.ServerTLS` (from
            :func:`wirecat.tls.server_context` and friends) or a server-side
            ``ssl.SSLContext``; None for plain TCP. Each connection's
            handshake is done before the handler runs; one that fails (a
            plain-TCP client, a client certificate refused under mutual TLS,
            a TLS version in common with none) is one warning
            :class:`~wirecat.events.Note` and never reaches the handler.
        handshake_timeout: seconds a client has to finish its TLS handshake,
            from the accept; it holds a connection slot until then.
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
    if not callable(handler):
        raise UsageError(f"bad handler {handler!r}", "give an async function: async def handler(conn)")
    framing = check_framer(framing)
    context = _server_context(tls)
    handshake_timeout = _check_handshake_timeout(handshake_timeout)
    idle_timeout = check_seconds(idle_timeout, "idle_timeout")
    frame_timeout = check_seconds(frame_timeout, "frame_timeout")
    drain_timeout = check_seconds(drain_timeout, "drain_timeout", none_ok=False) or 0.0
    check_backlog(backlog)
    admission = Admission.make(
        allow=allow, deny=deny, max_connections=max_connections, when_full=when_full, unix=target.is_unix
    )
    bound = bind(target, family=family, backlog=backlog, blocking=False)
    from wirecat.runtime import raise_open_file_limit

    raise_open_file_limit(max_connections + _SPARE_DESCRIPTORS)
    emit(Listening(tuple(bound.names), "server"))
    server = Server(
        handler,
        bound,
        admission,
        framing=framing,
        tls=context,
        idle_timeout=idle_timeout,
        frame_timeout=frame_timeout,
        drain_timeout=drain_timeout,
        handshake_timeout=handshake_timeout,
    )
    server._start_accepting()
    return server
