"""``wirecat recv [--dir DIR] PORT`` and ``wirecat recv HOST:PORT``."""

from __future__ import annotations

import argparse

from wirecat.cli.transfer_flags import (
    add_common_flags,
    byte_size,
    check_common,
    say_how_to_trust,
    text_mode,
    tls_from,
    transfer_address,
)
from wirecat.errors import UsageError
from wirecat.limits import DEFAULT_MAX_CONNECTIONS

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add recv's arguments to its subparser."""
    parser.add_argument(
        "address",
        nargs="?",
        metavar="PORT | HOST:PORT",
        help="PORT: listen on 127.0.0.1:PORT for a sender; HOST:PORT: connect to a sender that"
        " listens (send --listen); unix:PATH connects too",
    )
    parser.add_argument(
        "--listen", metavar="[HOST:]PORT", help="listen here (any host, or unix:PATH) instead of a PORT word"
    )
    parser.add_argument("--dir", default=".", metavar="DIR", help="where the files go (default: here)")
    group = parser.add_argument_group("files that exist")
    policy = group.add_mutually_exclusive_group()
    policy.add_argument("--overwrite", action="store_true", help="replace them (atomically)")
    policy.add_argument("--skip-existing", action="store_true", help="keep them; not an error")
    policy.add_argument("--rename", action="store_true", help="save as 'name (1).ext'")
    group.add_argument("--no-resume", action="store_true", help="start files over: ignore part files")
    group.add_argument(
        "--max-size", type=byte_size, metavar="SIZE", help="refuse files over SIZE (512K, 100M, 2G)"
    )
    clients = parser.add_argument_group("senders")
    clients.add_argument("-k", "--keep-open", action="store_true", help="keep listening for more senders")
    clients.add_argument(
        "--max-conns",
        type=int,
        metavar="N",
        help=f"with -k: transfers at once; more are refused (default {DEFAULT_MAX_CONNECTIONS})",
    )
    add_common_flags(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run recv; return the exit code (0 only when every file arrived verified)."""
    from wirecat.apps.transfer import progress_for, receive_forever, receive_one, report
    from wirecat.cli.common import family_from
    from wirecat.transfer import _check_directory, check_plain, connection, receive_over

    check_common(args)
    if (args.address is None) == (args.listen is None):
        raise UsageError(
            "recv needs one of PORT (listen), HOST:PORT (connect) or --listen ADDR",
            "e.g. wirecat recv 9000, or wirecat recv 192.0.2.1:9000",
        )
    if args.listen is not None:
        listen, address = True, transfer_address(args.listen, listen=True)
    else:
        word: str = args.address
        listen = ":" not in word  # a bare PORT listens; HOST:PORT and unix:PATH connect
        address = transfer_address(word, listen=listen)
    family = family_from(args, address.host)
    settings = tls_from(args, listen=listen, address=address)
    check_plain(address, args.plain, settings)
    if args.keep_open and not listen:
        raise UsageError("-k applies to a listening recv", "drop -k, or listen: wirecat recv -k PORT")
    if args.max_conns is not None and not args.keep_open:
        raise UsageError("--max-conns applies with -k", "without -k, recv takes one transfer")
    if args.max_conns is not None and args.max_conns < 1:
        raise UsageError(f"bad --max-conns {args.max_conns}", "give a number ≥ 1")
    directory = _check_directory(args.dir)
    policy = (
        "overwrite"
        if args.overwrite
        else "skip"
        if args.skip_existing
        else "rename"
        if args.rename
        else "refuse"
    )
    options = {
        "policy": policy,
        "resume": not args.no_resume,
        "max_size": args.max_size,
        "idle_timeout": args.idle_timeout,
    }
    textual = text_mode()

    def listening(names: list[str]) -> None:
        if settings is not None and listen:
            say_how_to_trust(settings, names, "wirecat send", "FILE...")  # type: ignore[arg-type]

    if args.keep_open:

        def receive(sock: object, peer: str) -> object:
            return receive_one(sock, peer, directory, **options)  # type: ignore[arg-type]

        receive_forever(
            directory,
            address,
            max_conns=args.max_conns or DEFAULT_MAX_CONNECTIONS,
            receive=receive,  # type: ignore[arg-type]
            family=family,
            on_result=lambda result, peer: report(result, "recv", textual),
            on_listening=listening,
            tls=settings,  # type: ignore[arg-type]
            handshake_timeout=args.handshake_timeout,
        )
        return 0
    sock, peer = connection(
        address,
        listen=listen,
        timeout=args.timeout,
        family=family,
        origin="recv",
        on_listening=listening,
        tls=settings,
        handshake_timeout=args.handshake_timeout,
    )
    with sock:
        result = receive_over(
            sock,
            directory,
            peer=peer,
            progress=progress_for(args.progress),
            **options,
        )
    report(result, "recv", textual)
    result.check()
    return 0
