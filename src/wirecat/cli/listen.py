"""``wirecat listen [HOST] PORT``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from wirecat.cli.common import (
    add_address_flags,
    add_exec_flags,
    add_session_flags,
    address_from,
    family_from,
    positive_seconds,
    program_from,
    reporter,
    seconds,
    session_options,
)
from wirecat.cli.tls_flags import add_server_tls_flags, server_tls_from
from wirecat.errors import UsageError
from wirecat.limits import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PROGRAMS, DEFAULT_UDP_IDLE

if TYPE_CHECKING:
    from wirecat.address import Address

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add listen's arguments to its subparser."""
    parser.add_argument(
        "address",
        nargs="+",
        metavar="[HOST] PORT",
        help="PORT (on 127.0.0.1, or ::1 with -6), HOST PORT, HOST:PORT, [::]:PORT or unix:PATH;"
        " PORT is a number or a service name (http); port 0 picks a free one",
    )
    add_address_flags(parser)
    add_session_flags(parser)
    group = parser.add_argument_group("clients")
    group.add_argument(
        "-k", "--keep-open", action="store_true", help="serve many clients at once; keep listening"
    )
    group.add_argument(
        "--max-conns",
        type=int,
        metavar="N",
        help=f"with -k: clients at once; more are refused and logged (default {DEFAULT_MAX_CONNECTIONS},"
        f" with --exec {DEFAULT_MAX_PROGRAMS} programs)",
    )
    group.add_argument(
        "--allow", action="append", default=[], metavar="ADDR[/BITS]", help="only these may connect"
    )
    group.add_argument(
        "--deny", action="append", default=[], metavar="ADDR[/BITS]", help="these may not connect"
    )
    group.add_argument(
        "-w", dest="accept_timeout", type=seconds, metavar="SECS", help="give up if no client comes in SECS"
    )
    group.add_argument(
        "--udp-idle",
        type=positive_seconds,
        metavar="SECS",
        help=f"UDP: forget a silent peer after SECS (default {DEFAULT_UDP_IDLE:g})",
    )
    add_exec_flags(parser)
    add_server_tls_flags(parser)
    parser.set_defaults(handler=handle)


def _refuse_ignored_flags(args: argparse.Namespace, datagram: bool) -> None:
    """A flag that would change nothing here is a usage error, never silently ignored."""
    if args.max_conns is not None and not args.keep_open:
        raise UsageError("--max-conns applies with -k", "without -k, listen serves one client")
    if args.udp_idle is not None and not datagram:
        raise UsageError("--udp-idle applies to UDP (-u)", "a TCP client's end is its end of stream")
    if args.keep_open and args.quit_after_eof is not None and not datagram:
        raise UsageError(
            "-q applies to one client: with -k, end of stdin sends each client FIN",
            "drop -q, or serve one client without -k",
        )


def handle(args: argparse.Namespace) -> int:
    """Run listen; return the exit code."""
    from wirecat.access import AccessList
    from wirecat.apps.listen import ListenOptions, listen_stdio
    from wirecat.bind import listen_address

    given = address_from(args.address, args)
    family = family_from(args, given.host)
    # Loopback by default, in the family asked for (-6: ::1): the binder's rule.
    address = listen_address(given, family=family)
    program = program_from(args)
    _refuse_ignored_flags(args, address.datagram)
    if args.max_conns is None:
        args.max_conns = DEFAULT_MAX_PROGRAMS if program is not None else DEFAULT_MAX_CONNECTIONS
    if args.udp_idle is None:
        args.udp_idle = DEFAULT_UDP_IDLE
    if args.max_conns < 1:
        raise UsageError(f"bad --max-conns {args.max_conns}", "give a number ≥ 1")
    access = AccessList.from_rules(args.allow, args.deny)
    access.check_applies(unix=address.is_unix)
    options = ListenOptions(
        family=family,
        keep_open=args.keep_open,
        max_conns=args.max_conns,
        access=access,
        accept_timeout=args.accept_timeout,
        keepalive=args.keepalive,
        numeric=args.numeric,
    )
    if args.tls and address.datagram:
        raise UsageError("--tls is for streams: DTLS (TLS over UDP) is not supported", "drop -u or --tls")
    session = session_options(args)
    report = reporter(args)
    tls = server_tls_from(args, hosts=[address.host], connect_words=_connect_words(address))

    if program is not None:
        from wirecat.apps.program import check_exposure, listen_programs

        if address.datagram:
            raise UsageError("--exec needs a stream listener, not UDP")
        check_exposure([address.host], access, unix=address.is_unix)
        ran = listen_programs(
            address,
            program,
            options,
            session,
            tls=tls,
            handshake_timeout=args.handshake_timeout,
            report=report,
        )
        if ran is None:
            return 0
        if ran.session.error is not None:
            raise ran.session.error
        return ran.exit_code
    if address.datagram:
        from wirecat.apps.udp_listen import udp_listen_stdio

        result = udp_listen_stdio(address, options, session, idle_expiry=args.udp_idle, report=report)
    else:
        result = listen_stdio(
            address, options, session, tls=tls, handshake_timeout=args.handshake_timeout, report=report
        )
    if result is not None and result.error is not None:
        raise result.error
    return 0


def _connect_words(address: Address) -> str:
    """How a client names this listener, for the pin command printed with an ephemeral certificate."""
    if address.is_unix:
        return f"unix:{address.path}"
    host = address.host if address.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    port = "PORT" if address.port == 0 else str(address.port)
    return f"{host} {port}"
