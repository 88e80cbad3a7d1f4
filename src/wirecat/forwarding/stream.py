"""One relayed connection from accept to end: PROXY headers, TLS handshakes, the target
dialled, the idle clock.

The order, for a client of a relay with every option on (HAProxy's): the
client's PROXY header (in the clear), the client's TLS handshake, the
connection to the target, our PROXY header to the target (in the clear), the
target's TLS handshake; then the bytes. Each handshake runs here, in the
connection's own task, on the event loop (``handshake_step()`` driven by
readiness), bounded by ``handshake_timeout``: a client that stalls holds its
slot that long at most and blocks no other. No target is dialled for a
client whose handshake failed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING

from wirecat.address import Address
from wirecat.dial import adial
from wirecat.endpoint import Endpoint, SocketEndpoint
from wirecat.errors import ConnectTimeout, FrameTimeout, IdleTimeout, WirecatError
from wirecat.events import Closed, Note, emit
from wirecat.forwarding.engine import RelayedPair
from wirecat.lifetime import IdleClock
from wirecat.protocol.proxy import ProxyHeader, ProxyHeaderReader, encode_v1, encode_v2
from wirecat.sockets import (
    Op,
    close_with_reset,
    configure_stream,
    translate_os_error,
)

if TYPE_CHECKING:
    import ssl

    from wirecat.tls import ClientTLS, ServerTLS
    from wirecat.tls_endpoint import TLSEndpoint

__all__ = ["StreamRelay"]

#: How often, at most, the relay says that clients were reset because the
#: target failed (or their PROXY header did). One line per client is right
#: for the odd failure, and unbounded under a flood: a dead target with a
#: health checker, a retry loop or a scan behind it would write a line per
#: connection attempt, burying everything else in the log (nginx and HAProxy
#: log each one; a terminal tool should not). So the first failure after a
#: quiet interval is said at once, with its reason; those that follow within
#: the interval are counted (and said one by one under -v only) and said as
#: one line per reason when it ends.
_WARNING_INTERVAL = 1.0
#: Distinct reasons counted in one interval; more are counted together. The
#: target's failures read the same for every client, but a bad PROXY header's
#: names the client, and memory must not grow with a flood either.
_MAX_REASONS = 8


class _ResetLog:
    """The warnings for clients reset because their connection to the target
    could not be made: at most one line per reason per interval (see above)."""

    def __init__(self, interval: float = _WARNING_INTERVAL, verb: str = "reset") -> None:
        self.interval = interval
        #: What happened to the clients, in the summary line ("reset", "closed").
        self.verb = verb
        self._quiet_until = 0.0  # (loop time) failures before this are held, not said
        self._held: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def is_quiet(self) -> bool:
        """The next failure would be said at once (worth the cost of a better message)."""
        return asyncio.get_running_loop().time() >= self._quiet_until and not self._held

    def reset(
        self, peer: str, reason: str, outcome: str = "the client was reset", *, names_peer: bool = False
    ) -> None:
        """Client ``peer`` was reset for ``reason``: say it now, or count it for later.

        ``names_peer``: the reason names the client already (a TLS error:
        "plain HTTP request on a TLS port from …"), so the line does not
        begin with it again.
        """
        loop = asyncio.get_running_loop()
        line = f"{reason}; {outcome}" if names_peer else f"{peer}: {reason}; {outcome}"
        if loop.time() >= self._quiet_until and not self._held:
            emit(Note(line, "warning", "relay"))
            self._quiet_until = loop.time() + self.interval
            return
        emit(Note(line, "info", "relay"))  # each one under -v
        key = reason if reason in self._held or len(self._held) < _MAX_REASONS else ""
        self._held[key] = self._held.get(key, 0) + 1
        if self._timer is None:
            self._timer = loop.call_at(self._quiet_until, self.flush)

    def flush(self) -> None:
        """Say what is held (at the end of an interval, and when the relay stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, {}
        for reason, count in held.items():
            clients = f"{count} more client{'s were' if count > 1 else ' was'} {self.verb}"
            emit(
                Note(f"{clients}: {reason}" if reason else f"{clients} for other reasons", "warning", "relay")
            )
        if held:  # a flood goes on: the next interval's failures are held too
            self._quiet_until = asyncio.get_running_loop().time() + self.interval


class StreamRelay:
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
        tls: ServerTLS | ssl.SSLContext | None = None,
        target_tls: ClientTLS | ssl.SSLContext | None = None,
        target_hostname: str | None = None,
        handshake_timeout: float | None = None,
    ) -> None:
        self.target = target
        self.source = source
        self.family = family
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.proxy_protocol = proxy_protocol
        self.accept_proxy_protocol = accept_proxy_protocol
        self.tls = tls
        self.target_tls = target_tls
        self.target_hostname = target_hostname
        self.handshake_timeout = handshake_timeout
        self.relayed = 0
        #: The warnings for clients reset because the target failed, rate-limited.
        self.resets = _ResetLog()
        #: The warnings for clients whose own TLS handshake failed (a plain
        #: client, a refused certificate, a stall), rate-limited the same way.
        self.refusals = _ResetLog(verb="closed")

    def flush(self) -> None:
        """Say the warnings held (when the relay stops)."""
        self.resets.flush()
        self.refusals.flush()

    async def run(self, client: socket.socket, peer: str) -> None:
        """Relay one client until both directions are done; log how it went."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        conn: RelayedPair | None = None
        upstream: socket.socket | None = None
        where = str(self.target)
        first = b""
        try:
            header: ProxyHeader | None = None
            if self.accept_proxy_protocol:
                header, first = await self._read_proxy_header(loop, client, peer)
            client_end: Endpoint
            if self.tls is not None:
                tls_client = await self._accept_tls(client, peer, first)
                if tls_client is None:
                    return  # its handshake failed, said and closed
                client_end = tls_client
            else:
                # What came after the client's PROXY header goes first.
                client_end = SocketEndpoint(client, pushback=first, peer=peer)
            upstream = await self._connect()
            if self.proxy_protocol is not None:
                # In the clear, before any TLS: as HAProxy sends it.
                await loop.sock_sendall(upstream, self._proxy_header(client, header))
            target_end: Endpoint
            if self.target_tls is not None:
                target_end = await self._originate_tls(upstream, where)
            else:
                target_end = SocketEndpoint(upstream, peer=where)
            conn = RelayedPair(loop, client_end, target_end)
            upstream = None  # the connection owns it now
            conn.start()
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
            self.resets.reset(peer, str(exc))
            close_with_reset(client)
            return
        except OSError as exc:  # e.g. the target went away while we sent the PROXY header
            self.resets.reset(peer, str(translate_os_error(exc, Op.RELAY, where)))
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

    async def _accept_tls(self, client: socket.socket, peer: str, first: bytes) -> TLSEndpoint | None:
        """The client's TLS handshake; None (said, and the client closed) when it fails."""
        from wirecat.tls_endpoint import TLSEndpoint

        assert self.tls is not None
        # Bytes read past a PROXY header are the start of the client's handshake.
        endpoint = TLSEndpoint(client, self.tls, server_side=True, peer=peer, pushback=first)
        try:
            await self._handshake(endpoint)
        except WirecatError as exc:
            # One line (rate-limited under a flood); the relay serves on. The
            # alert, if any, has gone: a close, not a reset, follows it.
            self.refusals.reset(peer, str(exc), "the connection was closed", names_peer=True)
            client.close()
            return None
        if endpoint.peer_certificate is not None:  # mutual TLS: who it is, under -v
            emit(
                Note(
                    f"{peer}: {endpoint.tls_version}, client certificate {endpoint.peer_subject}",
                    "info",
                    "relay",
                )
            )
        return endpoint

    async def _originate_tls(self, upstream: socket.socket, where: str) -> TLSEndpoint:
        """TLS to the target, verified (unless told otherwise); raises a WirecatError."""
        from wirecat.tls_endpoint import TLSEndpoint, explain_failed_verification

        assert self.target_tls is not None
        endpoint = TLSEndpoint(
            upstream, self.target_tls, server_side=False, server_hostname=self.target_hostname, peer=where
        )
        try:
            await self._handshake(endpoint)
        except WirecatError as exc:
            if not self.resets.is_quiet():
                raise  # held and counted: no second handshake for a line not said
            # A failed verification leaves no certificate to describe: a second,
            # unverified handshake fetches it (blocking: in a thread), so the
            # line can name the names, the dates, the pin that would trust it.
            loop = asyncio.get_running_loop()
            raise await loop.run_in_executor(None, explain_failed_verification, endpoint, exc, 2.0) from None
        return endpoint

    async def _handshake(self, endpoint: TLSEndpoint) -> None:
        """Drive ``endpoint``'s handshake on the event loop, within handshake_timeout."""
        loop = asyncio.get_running_loop()
        fd = endpoint.read_fd
        try:
            async with asyncio.timeout(self.handshake_timeout):
                while True:
                    try:
                        if endpoint.handshake_step():
                            return
                    except BlockingIOError:
                        pass
                    ready: asyncio.Future[None] = loop.create_future()
                    if endpoint.wants_write:
                        loop.add_writer(fd, _wake, ready)
                        try:
                            await ready
                        finally:
                            loop.remove_writer(fd)
                    else:
                        loop.add_reader(fd, _wake, ready)
                        try:
                            await ready
                        finally:
                            loop.remove_reader(fd)
        except TimeoutError:
            raise endpoint.timeout_error(self.handshake_timeout) from None

    async def _wait_with_idle(self, conn: RelayedPair) -> None:
        """Wait for the end of ``conn``; close it once no bytes moved either way for idle_timeout."""
        loop = asyncio.get_running_loop()
        clock = IdleClock(self.idle_timeout, loop.time())
        while True:
            clock.active(max(conn.up.last_active, conn.down.last_active))  # (stamped where bytes move)
            if clock.is_idle(loop.time()):
                conn.abort(f"idle for {clock.timeout:g} s: cut off (reset)")
                return
            deadline = clock.deadline
            assert deadline is not None
            try:
                await asyncio.wait_for(asyncio.shield(conn.done), max(0.0, deadline - loop.time()))
                return
            except TimeoutError:
                continue

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


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


def _plain_ip(host: str) -> str:
    """``::ffff:127.0.0.1`` → ``127.0.0.1``, so v4 clients of a v6 socket say TCP4."""
    return host[7:] if host.startswith("::ffff:") and "." in host else host.split("%", 1)[0]
