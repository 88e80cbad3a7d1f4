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
  the real client, and/or one read from the client (``accept_proxy_protocol``);
* optionally TLS on either side or both: ``tls`` terminates it (the clients
  speak TLS to us), ``target_tls`` (or a ``tls:`` target) originates it,
  verified by default. A TLS side is one more endpoint
  (:class:`wirecat.tls_endpoint.TLSEndpoint`) on the same engine; the
  handshakes run in each connection's task, within ``handshake_timeout``.

UDP relays (``udp:`` on both sides) keep one upstream socket per client
address, forgotten after ``udp_idle`` seconds of silence: see :class:`UdpRelay`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from wirecat.address import Address, as_address, is_ip_address
from wirecat.admission import Admission
from wirecat.bind import bind, listen_address
from wirecat.dial import source_family
from wirecat.errors import UsageError
from wirecat.events import Listening, emit
from wirecat.forwarding.engine import RelayResult
from wirecat.forwarding.stream import StreamRelay
from wirecat.forwarding.udp import UdpRelay
from wirecat.limits import (
    DEFAULT_BACKLOG,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_UDP_IDLE,
    check_seconds,
)
from wirecat.listener import Listener

if TYPE_CHECKING:
    import ssl

    from wirecat.tls import ClientTLS, ServerTLS

__all__ = ["RelayResult", "UdpRelay", "relay"]

#: Descriptors per relayed connection: two sockets and two pipes (two ends each).
_FDS_PER_CONNECTION = 6


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
    tls: ServerTLS | ssl.SSLContext | None = None,
    target_tls: ClientTLS | ssl.SSLContext | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> Listener | UdpRelay:
    """Listen on ``listen`` and relay every client to ``target``.

    Returns a running server object, like :func:`wirecat.serve`: ``.address``,
    ``close()``, graceful ``shutdown()``, ``async with``, ``serve_forever()``.

    Args:
        listen: where clients connect: ``8080`` (on 127.0.0.1), ``host:port``,
            ``[::1]:port``, ``unix:/path``, ``udp:host:port``.
        target: where each client is relayed to (same forms); ``tls:HOST:PORT``
            speaks TLS to it, verified against the system's CAs and HOST
            (as ``target_tls=wirecat.tls.ClientTLS(wirecat.tls.client_context())``).
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
        tls: terminate TLS: the clients speak TLS to the relay, and the
            target gets the plain bytes. A :class:`wirecat.tls.ServerTLS`
            (:func:`wirecat.tls.server_context`; ``mutual`` for client
            certificates) or a server-side ``ssl.SSLContext``. A client whose
            handshake fails (a plain client, a refused certificate, a stall)
            is closed, with one warning line; the relay serves on.
        target_tls: originate TLS: the relay speaks TLS to the target. A
            :class:`wirecat.tls.ClientTLS` (its ``pin`` is checked;
            ``server_hostname`` overrides the target's host as SNI and the
            name verified) or a client-side ``ssl.SSLContext``. A handshake
            that fails (an untrusted certificate) resets the client, and the
            warning names the cause. A PROXY header goes before it, in the clear.
        handshake_timeout: how long each TLS handshake may take (None: no
            bound); a client that stalls holds its slot that long at most.

    Raises:
        UsageError, BindError, ResolveError, ProgramError.
    """
    listen_at = listen_address(listen, family=family)
    destination = as_address(target)  # `tls:host:port` sets destination.tls (wirecat.address)
    if destination.tls and target_tls is None:
        from wirecat.tls import ClientTLS, client_context

        target_tls = ClientTLS(client_context())
    handshake_timeout = check_seconds(handshake_timeout, "handshake_timeout")
    idle_timeout = check_seconds(idle_timeout, "idle_timeout")
    connect_timeout = check_seconds(connect_timeout, "connect_timeout")
    frame_timeout = check_seconds(frame_timeout, "frame_timeout")
    drain_timeout = check_seconds(drain_timeout, "drain_timeout", none_ok=False) or 0.0
    if not (check_seconds(udp_idle, "udp_idle", none_ok=False) or 0.0) > 0:
        raise UsageError(f"bad udp_idle {udp_idle!r}", "give a number of seconds > 0")
    # An IP address target says its own family; -4/-6 choose among a name's addresses.
    target_family = socket.AF_UNSPEC if is_ip_address(destination.host) else family
    # What would fail every client's connection to the target fails the start
    # instead: each client would be reset, with the reason in a warning only.
    if source is not None and (destination.is_unix or destination.datagram):
        # Refused, not ignored: a source that changes nothing would be a silent surprise.
        raise UsageError(
            "a source address applies to TCP targets only, and the target is "
            + ("UDP" if destination.datagram else "a Unix socket"),
            "drop the source address",
        )
    if not destination.is_unix:
        if not destination.host:  # `relay 8080 80`: a port alone is where to listen, not where to go
            raise UsageError(
                f"the target {destination} has no host", f"write HOST:PORT, e.g. 127.0.0.1:{destination.port}"
            )
        if destination.port == 0:
            raise UsageError(
                f"the target {destination} has port 0, which cannot be connected to",
                "0 asks a listener for any free port; give the port the target listens on",
            )
        if source is not None and source[0]:
            source_family(source[0], target_family, destination.host)
    if listen_at.datagram != destination.datagram:
        raise UsageError(
            f"cannot relay between {listen_at} ({_kind(listen_at)}) and {destination} ({_kind(destination)})",
            "use udp: on both sides, or on neither",
        )
    if (tls is not None or target_tls is not None) and destination.datagram:
        raise UsageError("TLS is for stream relays, not UDP", "drop the TLS settings (DTLS is not spoken)")
    target_hostname = None if destination.is_unix else destination.host
    if target_tls is not None and target_hostname is None and _checks_hostname(target_tls):
        raise UsageError(
            f"a TLS target on a Unix socket ({destination}) has no host name to verify",
            "give the name to verify as server_hostname, or a pin",
        ).with_cli_hint("give the name with --target-servername NAME, or --target-pin")
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
    runner = StreamRelay(
        destination,
        family=target_family,
        connect_timeout=connect_timeout,
        idle_timeout=idle_timeout,
        frame_timeout=frame_timeout,
        proxy_protocol=proxy_protocol,
        accept_proxy_protocol=accept_proxy_protocol,
        source=source,
        tls=tls,
        target_tls=target_tls,
        target_hostname=target_hostname,
        handshake_timeout=handshake_timeout,
    )
    bound = bind(listen_at, family=family, backlog=backlog, blocking=False)
    # The accept loop of serve(), with no Connection: the runner takes each socket as it is.
    emit(Listening(tuple(bound.names), "relay"))
    listener = Listener(
        bound,
        admission,
        runner.run,
        drain_timeout=drain_timeout,
        origin="relay",
        on_finish=runner.flush,
    )
    listener._start_accepting()
    return listener


def _checks_hostname(target_tls: ClientTLS | ssl.SSLContext) -> bool:
    """Whether the settings verify a host name (so they need one)."""
    from wirecat.tls import ClientTLS  # (loaded already: there are TLS settings)

    if isinstance(target_tls, ClientTLS):
        return not target_tls.server_hostname and target_tls.context.check_hostname
    return target_tls.check_hostname


def _kind(address: Address) -> str:
    return "UDP" if address.datagram else ("a Unix stream" if address.is_unix else "TCP")
