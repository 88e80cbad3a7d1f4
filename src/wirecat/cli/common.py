"""Flags shared by several subcommands, and their conversion to library options."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from wirecat.address import Address, check_unix_path, ip_version, parse_address, parse_port
from wirecat.errors import UsageError
from wirecat.limits import MAX_SECONDS
from wirecat.report import Reporter, quiet

if TYPE_CHECKING:
    import socket

    from wirecat.apps.program import Program
    from wirecat.session import SessionOptions

__all__ = [
    "add_address_flags",
    "add_exec_flags",
    "add_session_flags",
    "address_from",
    "family_from",
    "positive_seconds",
    "program_from",
    "reporter",
    "seconds",
    "service_port",
    "session_options",
    "source_from",
]


def seconds(text: str) -> float:
    """argparse type for a duration in seconds: a number from 0 to MAX_SECONDS (11 days)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_SECONDS:  # (NaN fails both)
        raise argparse.ArgumentTypeError(
            f"bad number of seconds {text!r}: give a number from 0 to {MAX_SECONDS:g} (11 days)"
        )
    return value


def positive_seconds(text: str) -> float:
    """argparse type for a duration that must be more than 0 (where 0 would mean "at once" for ever)."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"bad number of seconds {text!r}: give a number > 0")
    return value


def add_address_flags(parser: argparse.ArgumentParser) -> None:
    """-4/-6/-u/-U/-n/-v and --keepalive."""
    group = parser.add_argument_group("address and transport")
    group.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only")
    group.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 only")
    group.add_argument("-u", "--udp", action="store_true", help="UDP instead of TCP")
    group.add_argument(
        "-U", "--unix", action="store_true", help="the address is a Unix socket path (or write unix:PATH)"
    )
    group.add_argument(
        "-n", dest="numeric", action="store_true", help="no DNS: the host must be an IP address"
    )
    group.add_argument("--keepalive", action="store_true", help="turn on TCP keepalive (SO_KEEPALIVE)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say what happens, on stderr")


def add_session_flags(parser: argparse.ArgumentParser) -> None:
    """The stdio session flags shared by connect and listen."""
    group = parser.add_argument_group("data and lifetime")
    group.add_argument("-C", "--crlf", action="store_true", help="send LF line endings as CRLF (idempotent)")
    group.add_argument(
        "-q",
        dest="quit_after_eof",
        type=seconds,
        metavar="SECS",
        help="quit SECS after end of stdin even if the peer is still sending (exit 8 if it was)",
    )
    group.add_argument(
        "-N",
        dest="nc_shutdown",
        action="store_true",
        help="accepted for nc compatibility: wirecat always sends FIN at end of stdin",
    )
    group.add_argument(
        "--no-shutdown",
        action="store_true",
        help="do not send FIN at end of stdin; wait for the peer to close",
    )
    group.add_argument("--send-only", action="store_true", help="only send; ignore what the peer sends")
    group.add_argument("--recv-only", action="store_true", help="only receive; do not read stdin")
    group.add_argument(
        "-i",
        "--idle-timeout",
        type=seconds,
        metavar="SECS",
        help="give up after SECS with no data either way",
    )


def add_exec_flags(parser: argparse.ArgumentParser) -> None:
    """--exec PROG [ARGS...], --sh-exec COMMAND, --exec-stderr."""
    group = parser.add_argument_group("a program behind the socket")
    # `--exec PROG ARGS...` is cut off argv before argparse sees it (cli/run.py),
    # so the program's own flags (-c, --, --trace) stay the program's. This
    # entry is for --help.
    group.add_argument(
        "--exec",
        dest="exec_help",
        action="store_true",
        help="PROG [ARGS...]: run PROG with its stdin and stdout joined to the connection, no shell"
        " (everything after --exec is the program's; a PROG that is not there or cannot run: exit 9)",
    )
    parser.set_defaults(exec_argv=None)
    group.add_argument("--sh-exec", metavar="COMMAND", help="the same through /bin/sh -c COMMAND")
    group.add_argument("--exec-stderr", action="store_true", help="send the program's stderr to the peer too")


def program_from(args: argparse.Namespace) -> Program | None:
    """The Program that --exec/--sh-exec ask for, or None (checked: it can be run)."""
    if args.exec_argv is None and args.sh_exec is None and not args.exec_stderr:
        return None  # the usual case: no need to import subprocess and friends (start-up)
    from wirecat.apps.program import Program

    return Program.from_flags(args.exec_argv, args.sh_exec, stderr_to_peer=args.exec_stderr)


def session_options(args: argparse.Namespace) -> SessionOptions:
    """Build SessionOptions from parsed flags, refusing contradictory ones."""
    from wirecat.session import SessionOptions  # not at import: scan needs none of it

    if args.send_only and args.recv_only:
        raise UsageError("--send-only and --recv-only cannot go together", "give at most one")
    if args.no_shutdown and args.nc_shutdown:
        raise UsageError("-N (send FIN at end of stdin) contradicts --no-shutdown")
    return SessionOptions(
        send=not args.recv_only,
        receive=not args.send_only,
        shutdown_on_eof=not args.no_shutdown,
        quit_after_eof=args.quit_after_eof,
        idle_timeout=args.idle_timeout,
        crlf=args.crlf,
    )


def family_from(args: argparse.Namespace, *hosts: str) -> socket.AddressFamily:
    """The address family ``-4``/``-6`` ask for (AF_UNSPEC for either).

    An IP address among ``hosts`` (what the user wrote; names and "" pass)
    of the other family is a usage error here, naming the flag: the library
    would say the same without it, and a lookup could never help.

    Raises:
        UsageError: ``-4`` and ``-6`` together, or an address of the other family.
    """
    from wirecat.sockets import family_of  # (socket is loaded anyway; sockets is not, for --help)

    family = family_of(ipv4=args.ipv4, ipv6=args.ipv6)
    if args.ipv4 or args.ipv6:
        flag, wanted = ("-4", 4) if args.ipv4 else ("-6", 6)
        for host in hosts:
            version = ip_version(host.strip("[]"))
            if version is not None and version != wanted:
                raise UsageError(
                    f"{host} is an IPv{version} address but {flag} was given",
                    f"drop {flag}, or give an IPv{wanted} address",
                )
    return family


def service_port(name: str, datagram: bool) -> int:
    """A port given by service name (``http``), as nc takes it: see :func:`wirecat.resolve.service_port`."""
    from wirecat.resolve import service_port as lookup  # only when a name is given

    return lookup(name, datagram)


def address_from(words: list[str], args: argparse.Namespace, *, default_host: str = "") -> Address:
    """Turn the positional words (HOST PORT, HOST:PORT, unix:PATH, -U PATH) into an Address.

    A port may be a service name (``http``), looked up in the services database.
    """
    if args.unix:
        if len(words) != 1:
            raise UsageError("-U takes one socket path and no port", "e.g. wirecat connect -U /tmp/app.sock")
        path = check_unix_path(words[0].removeprefix("unix:"))
        return Address(path=path, datagram=args.udp)
    if len(words) == 2:
        return parse_address(words[0], words[1], datagram=args.udp, service=service_port)
    if len(words) == 1:
        return parse_address(words[0], datagram=args.udp, default_host=default_host, service=service_port)
    raise UsageError(f"expected an address and a port, got {len(words)} words: {' '.join(words)!r}")


def source_from(args: argparse.Namespace) -> tuple[str, int] | None:
    """``-s ADDR`` and ``-p``/``--source-port PORT`` as a (host, port) to bind, or None."""
    if args.source is None and args.source_port is None:
        return None
    port = 0
    if args.source_port is not None:
        port = parse_port(args.source_port, what="source port", service=service_port, datagram=args.udp)
    return (args.source or "").strip("[]"), port


def reporter(args: argparse.Namespace) -> Reporter:
    """Notes for the event channel: said under -v (the CLI's outputs decide), silent otherwise."""
    from wirecat import events

    return events.note if args.verbose else quiet
