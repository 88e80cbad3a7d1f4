"""What the server commands (echo, chat, broker) share: flags, logging, the run loop."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from wirecat.cli.common import seconds
from wirecat.cli.tls_flags import add_server_tls_flags
from wirecat.limits import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_FRAME,
    DEFAULT_MAX_LINE,
    DEFAULT_SEND_QUEUE,
)

if TYPE_CHECKING:
    from wirecat.address import Address
    from wirecat.framing import Framer
    from wirecat.server import DrainResult, Handler
    from wirecat.tls import ServerTLS

__all__ = [
    "add_framing_flags",
    "add_limit_flags",
    "add_queue_flag",
    "add_server_flags",
    "framing_from",
    "positive_int",
    "run_server",
    "run_until_signal",
]


def positive_int(text: str) -> int:
    """argparse type for a count or size: a whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"bad number {text!r}: give a whole number ≥ 1")
    return value


def _frame_size(text: str) -> int:
    """argparse type for --max-frame: what a 4-byte length header can announce."""
    value = positive_int(text)
    if value > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: a 4-byte header allows at most 4294967295")
    return value


def _idle(text: str) -> float | None:
    value = seconds(text)
    return None if value == 0 else value


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """The address, limits and access flags of every server command."""
    parser.add_argument(
        "address",
        nargs="+",
        metavar="[HOST] PORT",
        help="PORT (on 127.0.0.1, or ::1 with -6), HOST PORT, HOST:PORT, [::]:PORT or unix:PATH;"
        " PORT is a number or a service name (http); port 0 picks a free one",
    )
    parser.add_argument("-U", "--unix", action="store_true", help="the address is a Unix socket path")
    add_limit_flags(parser)
    add_server_tls_flags(parser)


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """-4/-6, -v, and the limits and access flags shared by every server command."""
    parser.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only")
    parser.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 only")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="one line per connection, on stderr"
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-conns",
        type=positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help=f"clients at once; more wait in the backlog (default {DEFAULT_MAX_CONNECTIONS})",
    )
    limits.add_argument(
        "--refuse-when-full",
        action="store_true",
        help="at --max-conns, close new clients at once (logged) instead of letting them wait",
    )
    limits.add_argument(
        "-i",
        "--idle-timeout",
        type=_idle,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECS",
        help=f"cut off a client silent both ways for SECS, 0 for never (default {DEFAULT_IDLE_TIMEOUT:g})",
    )
    limits.add_argument(
        "--frame-timeout",
        type=_idle,
        default=DEFAULT_FRAME_TIMEOUT,
        metavar="SECS",
        help="cut off a client whose message (a line, a length-prefixed frame, a PROXY header) is not"
        " whole SECS after its first byte: each byte restarts the idle clock, so this is what stops"
        f" a client that drips bytes (slowloris); 0 for never (default {DEFAULT_FRAME_TIMEOUT:g})",
    )
    limits.add_argument(
        "--drain-timeout",
        type=seconds,
        default=DEFAULT_DRAIN_TIMEOUT,
        metavar="SECS",
        help=f"on SIGINT/SIGTERM, let busy clients finish for SECS (default {DEFAULT_DRAIN_TIMEOUT:g})",
    )
    access = parser.add_argument_group("who may connect")
    access.add_argument("--allow", action="append", default=[], metavar="ADDR[/BITS]", help="only these")
    access.add_argument("--deny", action="append", default=[], metavar="ADDR[/BITS]", help="not these")


def add_queue_flag(parser: argparse.ArgumentParser) -> None:
    """--max-queue: how far a client may fall behind before it is disconnected."""
    parser.add_argument(
        "--max-queue",
        type=positive_int,
        default=DEFAULT_SEND_QUEUE,
        metavar="BYTES",
        help=f"disconnect a client this far behind in reading (default {DEFAULT_SEND_QUEUE})",
    )


def add_framing_flags(parser: argparse.ArgumentParser) -> None:
    """--lines / --length-prefixed and their size limits."""
    group = parser.add_argument_group("framing (default: raw bytes)")
    kind = group.add_mutually_exclusive_group()
    kind.add_argument("--lines", action="store_true", help="messages are lines (LF or CRLF)")
    kind.add_argument(
        "--length-prefixed", action="store_true", help="messages have a 4-byte big-endian length header"
    )
    group.add_argument(
        "--max-line",
        type=positive_int,
        default=DEFAULT_MAX_LINE,
        metavar="BYTES",
        help=f"with --lines: longest line (default {DEFAULT_MAX_LINE})",
    )
    group.add_argument(
        "--max-frame",
        type=_frame_size,
        default=DEFAULT_MAX_FRAME,
        metavar="BYTES",
        help=f"with --length-prefixed: largest message (default {DEFAULT_MAX_FRAME})",
    )


def framing_from(args: argparse.Namespace) -> Framer:
    """The framer the flags ask for."""
    from wirecat.framing import LengthPrefixed, Lines, Raw

    if getattr(args, "lines", False):
        return Lines(max_length=args.max_line)
    if getattr(args, "length_prefixed", False):
        return LengthPrefixed(max_size=args.max_frame)
    return Raw()


def run_server(args: argparse.Namespace, handler: Handler, framing: Framer | None = None) -> int:
    """Serve ``handler`` as the flags say until SIGINT/SIGTERM, then shut down gracefully.

    Prints ``listening on HOST:PORT`` for every address (scripts parse it),
    and the signal that stopped it under -v. Returns the exit code (0).
    """
    from wirecat.cli.common import address_from, family_from
    from wirecat.errors import UsageError
    from wirecat.server import serve

    args.udp = False
    address = address_from(args.address, args)  # no host: serve() listens on loopback, in the family
    family = family_from(args, address.host)
    if address.datagram:
        raise UsageError("this server speaks TCP or Unix streams, not UDP")
    tls = _server_tls(args, address, family)

    async def start() -> Serving:
        server = await serve(
            handler,
            address,
            framing=framing,
            tls=tls,
            handshake_timeout=args.handshake_timeout,
            max_connections=args.max_conns,
            idle_timeout=args.idle_timeout,
            frame_timeout=args.frame_timeout,
            drain_timeout=args.drain_timeout,
            allow=args.allow,
            deny=args.deny,
            when_full="refuse" if args.refuse_when_full else "wait",
            family=family,
        )
        if tls is not None and tls.ephemeral:
            # Said once the port is known (port 0 picks one at bind).
            from wirecat.cli.tls_flags import say_trust_command

            say_trust_command(tls.fingerprint, _connect_words(server.addresses[0]))
        return server

    return run_until_signal(args, start)


def _server_tls(args: argparse.Namespace, address: Address, family: int) -> ServerTLS | None:
    """The TLS the flags ask for; a certificate made at start holds the names a client may use."""
    import socket

    from wirecat.cli.tls_flags import server_tls_from

    if address.is_unix:
        hosts = ["localhost"]
    elif address.host in ("", "0.0.0.0", "::"):
        # serve()'s default host is loopback; a wildcard is reached by loopback too.
        loopback = ["::1"] if family == socket.AF_INET6 else ["127.0.0.1"]
        hosts = loopback if address.host == "" else ["127.0.0.1", "::1"]
    else:
        hosts = [address.host]
    return server_tls_from(args, hosts=hosts, connect_words=None)


def _connect_words(listening: str) -> str:
    """What to give ``wirecat connect`` to reach a server listening on ``listening``."""
    if listening.startswith("unix:"):
        return listening
    host, _, port = listening.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"{host} {port}"


class Serving(Protocol):
    """What run_until_signal needs of a server: its addresses, a graceful shutdown, an abort."""

    addresses: list[str]

    async def shutdown(self, drain_timeout: float | None = None) -> DrainResult: ...

    async def abort(self) -> int: ...


def _connections(n: int) -> str:
    return f"{n} connection" if n == 1 else f"{n} connections"


def run_until_signal(args: argparse.Namespace, start: Callable[[], Awaitable[Serving]]) -> int:
    """Start a server (it says where it listens), run until SIGINT/SIGTERM, shut down.

    The shutdown lets busy connections finish for ``--drain-timeout`` and
    then cuts the rest off with a reset; one line says how many finished and
    how many were cut, -v or not. Returns 0 when none was cut; raises
    :class:`~wirecat.errors.Truncated` (exit 8) when some were. A second
    signal cuts every connection at once and returns 130.
    """
    import asyncio  # here, not at the top: --help imports this module

    from wirecat import events, runtime
    from wirecat.errors import EXIT_INTERRUPTED, Truncated
    from wirecat.report import shutdown_line

    async def main() -> int:
        server = await start()
        events.note(f"event loop: {runtime.loop_name()}")
        with runtime.SignalWatch() as signals:
            signum = await signals.next()
            events.note(f"signal {signum}: shutting down")
            draining = asyncio.ensure_future(server.shutdown())
            impatient = asyncio.ensure_future(signals.next())
            await asyncio.wait({draining, impatient}, return_when=asyncio.FIRST_COMPLETED)
            if not draining.done():
                draining.cancel()
                cut = await server.abort()
                events.emit(
                    events.Note(f"interrupted again: {_connections(cut)} cut off (reset)", "warning", "cli")
                )
                return EXIT_INTERRUPTED
            impatient.cancel()
        result = draining.result()
        events.emit(events.ShutDown(result.finished, result.cut, args.drain_timeout, origin="cli"))
        if result.cut:
            raise Truncated(
                shutdown_line(result.finished, result.cut, args.drain_timeout),
                "raise --drain-timeout to let busy clients finish",
                setting="",  # (the CLI's own words: they name the flag already)
            )
        return 0

    return runtime.run(main())
