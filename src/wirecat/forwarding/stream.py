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
