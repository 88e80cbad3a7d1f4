"""``wirecat connect HOST PORT``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from wirecat.address import format_sockaddr
from wirecat.cli.common import (
    add_address_flags,
    add_exec_flags,
    add_session_flags,
    address_from,
    family_from,
    program_from,
    reporter,
    seconds,
    session_options,
    source_from,
)
from wirecat.cli.tls_flags import add_client_tls_flags, client_tls_from
from wirecat.errors import UsageError

if TYPE_CHECKING:
    from wirecat.address import Address
    from wirecat.apps.connect import ConnectOptions
    from wirecat.apps.program import Program
    from wirecat.report import Reporter
    from wirecat.session import SessionOptions
    from wirecat.tls import ClientTLS

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add connect's arguments to its subparser."""
    parser.add_argument(
        "target",
        nargs="+",
        metavar="HOST PORT",
        help="HOST PORT, HOST:PORT, [::1]:PORT, unix:PATH or tls:HOST:PORT; PORT is a number or a service"
        " name (http)",
    )
    add_address_flags(parser)
    add_session_flags(parser)
    group = parser.add_argument_group("connection")
    group.add_argument("-w", dest="timeout", type=seconds, metavar="SECS", help="connect timeout")
    group.add_argument("-s", "--source", metavar="ADDR", help="local address to connect from")
    group.add_argument("-p", "--source-port", metavar="PORT", help="local port to connect from")
    group.add_argument(
        "--wait-reply",
        type=seconds,
        metavar="SECS",
        help="UDP: after end of stdin, wait up to SECS for replies",
    )
    group.add_argument("-k", dest="keep_open", action="store_true", help=argparse.SUPPRESS)
    add_exec_flags(parser)
    add_client_tls_flags(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run connect; return the exit code."""
    from wirecat.apps.connect import ConnectOptions, connect_stdio

    if args.keep_open:
        raise UsageError(
            "-k means --keep-open, which applies to listen only",
            "for TCP keepalive (traditional nc -k) use --keepalive",
        )
    target = address_from(args.target, args)
    if not target.is_unix and not target.host:
        # `wirecat 9000`: a port alone is nc's listen spelling minus -l, or a
        # host left out; resolving "" would connect to loopback by surprise.
        raise UsageError(
            f"no host to connect to on port {target.port}",
            f"write 'wirecat connect HOST {target.port}'; to wait for clients on it, 'wirecat listen"
            f" {target.port}'",
        )
    family = family_from(args, target.host, args.source or "")
    if target.is_unix and (args.source is not None or args.source_port is not None):
        raise UsageError("-s and -p are for TCP and UDP", "a Unix socket client has no address to bind")
    if args.wait_reply is not None and not target.datagram:
        raise UsageError(
            "--wait-reply is for UDP (-u)", "over TCP wirecat waits for the peer to close anyway"
        )
    options = ConnectOptions(
        family=family,
        timeout=args.timeout,
        source=source_from(args),
        numeric=args.numeric,
        keepalive=args.keepalive,
    )
    if target.datagram and (args.tls or target.tls):
        raise UsageError("--tls is for streams: DTLS (TLS over UDP) is not supported", "drop -u or --tls")
    tls = client_tls_from(args, tls=args.tls or target.tls)
    session = session_options(args)
    report = reporter(args)
    program = program_from(args)
    if program is not None:
        return _connect_program(target, options, session, program, report, tls, args.handshake_timeout)
    if target.datagram:
        from wirecat.apps.udp_connect import udp_connect_stdio

        result = udp_connect_stdio(target, options, session, wait_reply=args.wait_reply, report=report)
    else:
        result = connect_stdio(
            target, options, session, tls=tls, handshake_timeout=args.handshake_timeout, report=report
        )
    if result.error is not None:
        raise result.error
    return 0


def _connect_program(
    target: Address,
    options: ConnectOptions,
    session: SessionOptions,
    program: Program,
    report: Reporter,
    tls: ClientTLS | None,
    handshake_timeout: float,
) -> int:
    """connect --exec: the program talks to the server; wirecat exits with its status."""
    from wirecat.apps.connect import open_stream, start_tls
    from wirecat.apps.program import run_program

    if target.datagram:
        raise UsageError("--exec needs a stream connection, not UDP")
    with open_stream(target, options, report=report) as sock:
        peer = str(target) if target.is_unix else format_sockaddr(sock.getpeername())
        if tls is not None:
            endpoint = start_tls(
                sock, target, tls, peer=peer, handshake_timeout=handshake_timeout, report=report
            )
            result = run_program(endpoint, program, peer=peer, options=session, report=report)
        else:
            result = run_program(sock, program, peer=peer, options=session, report=report)
    if result.session.error is not None:
        raise result.session.error
    return result.exit_code
