"""``wirecat send PATH... HOST:PORT`` and ``wirecat send --listen PORT PATH...``."""

from __future__ import annotations

import argparse

from wirecat.cli.transfer_flags import (
    add_common_flags,
    check_common,
    say_how_to_trust,
    text_mode,
    tls_from,
    transfer_address,
)
from wirecat.errors import UsageError

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add send's arguments to its subparser."""
    parser.add_argument(
        "words",
        nargs="+",
        metavar="PATH... HOST:PORT",
        help="files and directories (recursive), then the receiver: HOST:PORT, [::1]:PORT or unix:PATH",
    )
    parser.add_argument(
        "--listen",
        metavar="[HOST:]PORT",
        help="wait for the receiver to connect here instead (then every word is a PATH)",
    )
    add_common_flags(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run send; return the exit code (0 only when the receiver confirmed every file)."""
    from wirecat.apps.transfer import progress_for, report
    from wirecat.cli.common import family_from
    from wirecat.transfer import check_plain, collect, connection, send_over

    check_common(args)
    if args.listen is not None:
        paths, where = args.words, args.listen
    else:
        if len(args.words) < 2:
            raise UsageError(
                "send needs PATH... and then HOST:PORT", "e.g. wirecat send report.pdf 127.0.0.1:9000"
            )
        paths, where = args.words[:-1], args.words[-1]
    listen = args.listen is not None
    address = transfer_address(where, listen=listen)
    family = family_from(args, address.host)
    settings = tls_from(args, listen=listen, address=address)
    check_plain(address, args.plain, settings)
    entries = collect(paths)

    def listening(names: list[str]) -> None:
        if settings is not None and listen:
            say_how_to_trust(settings, names, "wirecat recv")  # type: ignore[arg-type]

    sock, peer = connection(
        address,
        listen=listen,
        timeout=args.timeout,
        family=family,
        origin="send",
        on_listening=listening,
        tls=settings,
        handshake_timeout=args.handshake_timeout,
    )
    with sock:
        result = send_over(
            sock, entries, peer=peer, idle_timeout=args.idle_timeout, progress=progress_for(args.progress)
        )
    report(result, "send", text_mode())
    result.check()
    return 0
