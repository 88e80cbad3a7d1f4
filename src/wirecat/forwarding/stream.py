"""One relayed connection from accept to end: the target dialled, PROXY headers, the idle clock."""

from __future__ import annotations

import asyncio
import socket
import time

from wirecat.address import Address
from wirecat.dial import adial
from wirecat.endpoint import SocketEndpoint
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

    def __init__(self, interval: float = _WARNING_INTERVAL) -> None:
        self.interval = interval
        self._quiet_until = 0.0  # (loop time) failures before this are held, not said
        self._held: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def reset(self, peer: str, reason: str) -> None:
        """Client ``peer`` was reset for ``reason``: say it now, or count it for later."""
        loop = asyncio.get_running_loop()
        line = f"{peer}: {reason}; the client was reset"
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
            clients = f"{count} more client{'s were' if count > 1 else ' was'} reset"
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
        #: The warnings for clients reset because the target failed, rate-limited.
        self.resets = _ResetLog()

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
            upstream = await self._connect()
            if self.proxy_protocol is not None:
                await loop.sock_sendall(upstream, self._proxy_header(client, header))
            # Two endpoints; what came after the client's PROXY header goes first.
            conn = RelayedPair(
                loop,
                SocketEndpoint(client, pushback=first, peer=peer),
                SocketEndpoint(upstream, peer=where),
            )
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


def _plain_ip(host: str) -> str:
    """``::ffff:127.0.0.1`` → ``127.0.0.1``, so v4 clients of a v6 socket say TCP4."""
    return host[7:] if host.startswith("::ffff:") and "." in host else host.split("%", 1)[0]
