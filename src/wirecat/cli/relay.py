"""``wirecat relay LISTEN TARGET``."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from wirecat.cli.common import positive_seconds, seconds
from wirecat.cli.serving import add_limit_flags, run_until_signal
from wirecat.cli.tls_flags import add_client_tls_flags, add_server_tls_flags
from wirecat.limits import DEFAULT_CONNECT_TIMEOUT, DEFAULT_UDP_IDLE

if TYPE_CHECKING:
    from wirecat.forwarding import UdpRelay
    from wirecat.listener import Listener

__all__ = ["register"]


def _version(text: str) -> int:
    if text.lower() not in ("v1", "v2", "1", "2"):
        raise argparse.ArgumentTypeError(f"bad PROXY protocol version {text!r}: use v1 or v2")
    return int(text[-1])


def register(parser: argparse.ArgumentParser) -> None:
    """Add relay's arguments to its subparser."""
    parser.add_argument(
        "listen",
        metavar="LISTEN",
        help="where clients connect: PORT (on 127.0.0.1, or ::1 with -6), HOST:PORT, unix:PATH, udp:PORT",
    )
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="where to relay them: HOST:PORT, tls:HOST:PORT (TLS to it, verified), unix:PATH, udp:HOST:PORT",
    )
    add_limit_flags(parser)
    # --tls terminates TLS on the listening side; a tls: target originates it,
    # with the client flags named --target-* (--target-pin, --target-cafile...).
    add_server_tls_flags(parser)
    add_client_tls_flags(parser, prefix="target-", title="TLS to the target (a tls:HOST:PORT target)")
    group = parser.add_argument_group("relay")
    group.add_argument(
        "--connect-timeout",
        type=seconds,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECS",
        help="give up on the target after SECS and reset the client (its read fails: ECONNRESET, exit 7"
        " in wirecat connect; the reason is logged, at most a line a second); 0 waits as long as the"
        f" kernel does (about 2 minutes) (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    group.add_argument(
        "-s",
        "--source",
        metavar="ADDR",
        help="the local address connections to the target come from (TCP targets; the target's family)",
    )
    group.add_argument(
        "--proxy-protocol",
        type=_version,
        metavar="v1|v2",
        help="send a PROXY protocol header to the target, so it learns the real client",
    )
    group.add_argument(
        "--accept-proxy-protocol",
        action="store_true",
        help="read a PROXY protocol header (v1 or v2) from each client first",
    )
    group.add_argument(
        "--udp-idle",
        type=positive_seconds,
        default=DEFAULT_UDP_IDLE,
        metavar="SECS",
        help=f"UDP: forget a client silent for SECS (default {DEFAULT_UDP_IDLE:g})",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Relay until SIGINT/SIGTERM."""
    from wirecat.address import parse_address
    from wirecat.cli.common import family_from, service_port
    from wirecat.cli.tls_flags import client_tls_from, server_tls_from
    from wirecat.forwarding import relay

    # No host: relay() listens on loopback, in the family. A port may be a service name.
    listen = parse_address(args.listen, service=service_port)
    target = parse_address(args.target, service=service_port)  # tls:HOST:PORT sets target.tls
    # Both made before listening: a bad certificate file fails the start, and
    # an ephemeral certificate's pin is said before the first client comes.
    target_tls = client_tls_from(args, tls=target.tls, prefix="target-")
    host = "unix:" + listen.host if listen.is_unix else (listen.host or "127.0.0.1")
    tls = server_tls_from(
        args, hosts=[listen.host or "127.0.0.1"], connect_words=f"{host} {listen.port or 'PORT'}"
    )
    # -4/-6 are the listening side's family (and a target name's); a target
    # given as an address keeps its own (README), so only LISTEN is checked.
    family = family_from(args, listen.host)

    def start() -> Awaitable[Listener | UdpRelay]:
        return relay(
            listen,
            target,
            max_connections=args.max_conns,
            idle_timeout=args.idle_timeout,
            frame_timeout=args.frame_timeout,
            connect_timeout=args.connect_timeout or None,
            drain_timeout=args.drain_timeout,
            allow=args.allow,
            deny=args.deny,
            when_full="refuse" if args.refuse_when_full else "wait",
            proxy_protocol=args.proxy_protocol,
            accept_proxy_protocol=args.accept_proxy_protocol,
            family=family,
            source=(args.source.strip("[]"), 0) if args.source else None,
            udp_idle=args.udp_idle,
            tls=tls,
            target_tls=target_tls,
            handshake_timeout=args.handshake_timeout,
        )

    return run_until_signal(args, start)
