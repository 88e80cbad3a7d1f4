"""``wirecat scan HOST PORTS`` (also ``wirecat -z HOST PORTS``).

Output, made for scripts:

* stdout: one line per **open** port, ``ADDRESS:PORT open``, in ascending
  port order (``127.0.0.1:22 open``, ``[::1]:8080 open``). ADDRESS is the IP
  address actually scanned, so ``cut -d' ' -f1`` gives something to connect to.
* stderr, with ``-v`` only: ``wirecat: ADDRESS:PORT closed (connection
  refused)`` or ``... filtered (no answer in 1 s)`` for the others, which
  address of the host was scanned, and a closing count.

Exit status: 0 if at least one port is open, 1 if none is (as ``nc -z``), so
``until wirecat -z 127.0.0.1 5432; do sleep 1; done`` waits for a server.
Nothing is printed without ``-v`` when no port is open: that is an answer,
not a failure, and such loops should stay quiet.
"""

from __future__ import annotations

import argparse

from wirecat.cli.common import family_from, reporter, seconds, service_port
from wirecat.errors import UsageError
from wirecat.limits import DEFAULT_SCAN_CONCURRENCY, DEFAULT_SCAN_TIMEOUT
from wirecat.stdio import print_out

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add scan's arguments to its subparser."""
    parser.add_argument("host", metavar="HOST", help="host name or IP address to scan")
    parser.add_argument(
        "ports",
        nargs="+",
        metavar="PORTS",
        help="ports, ranges and service names such as 22,80,8000-8100,https (several words are joined,"
        " as nc allows)",
    )
    parser.add_argument(
        "-w",
        dest="timeout",
        type=seconds,
        default=DEFAULT_SCAN_TIMEOUT,
        metavar="SECS",
        help=f"wait SECS for each port before calling it filtered (default {DEFAULT_SCAN_TIMEOUT:g})",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_SCAN_CONCURRENCY,
        metavar="N",
        help=f"probe at most N ports at once (default {DEFAULT_SCAN_CONCURRENCY})",
    )
    parser.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only")
    parser.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 only")
    parser.add_argument(
        "-n", dest="numeric", action="store_true", help="no DNS: the host must be an IP address"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="also show closed and filtered ports, on stderr"
    )
    # nc -zu scans UDP; a UDP "scan" cannot tell open from filtered without
    # a protocol-specific probe, so refuse it plainly rather than guess.
    parser.add_argument("-u", "--udp", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the scan; print open ports; return 0 if any is open, else 1."""
    from wirecat.address import parse_ports
    from wirecat.apps.scan import PortResult, PortState, scan_ports

    if args.udp:
        raise UsageError(
            "scan is TCP only", "a UDP port gives no answer to tell open from filtered without a protocol"
        )
    ports = parse_ports(",".join(args.ports), service=service_port)
    report = reporter(args)

    def show(result: PortResult) -> None:
        if result.state is PortState.OPEN:
            print_out(f"{result}\n")  # at once: a long scan shows each find as it comes
        else:
            report(f"{result} ({result.reason})")

    result = scan_ports(
        args.host,
        ports,
        family=family_from(args, args.host),
        numeric=args.numeric,
        timeout=args.timeout,
        concurrency=args.concurrency,
        on_result=show,
        report=report,
    )
    return 0 if result.open_ports else 1
