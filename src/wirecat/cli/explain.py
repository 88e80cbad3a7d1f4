"""``wirecat explain [NAME]``."""

from __future__ import annotations

import argparse

from wirecat.errors import UsageError
from wirecat.stdio import print_out

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add explain's arguments to its subparser."""
    parser.add_argument("name", nargs="?", help="a call, constant or type: recv, sendall, AF_INET...")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--pitfalls", action="store_true", help="the common mistakes, with the right way")
    what.add_argument("--server", action="store_true", help="the TCP server's steps, in order")
    what.add_argument("--client", action="store_true", help="the TCP client's steps, in order")
    parser.add_argument(
        "--format",
        choices=("text", "markdown", "yaml", "json"),
        default="text",
        help="how to print it (default text)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the part of the cheat sheet asked for."""
    from wirecat.apps import explain
    from wirecat.cheatsheet import find, suggest

    chosen = [flag for flag in ("pitfalls", "server", "client") if getattr(args, flag)]
    if args.name and chosen:
        raise UsageError(f"give a NAME or --{chosen[0]}, not both")
    if args.pitfalls:
        text = explain.render_pitfalls(args.format)
    elif args.server or args.client:
        text = explain.render_steps("server" if args.server else "client", args.format)
    elif args.name:
        entry = find(args.name)
        if entry is None:
            near = suggest(args.name)
            hint = f"did you mean {' or '.join(near)}?" if near else "run 'wirecat explain' for the list"
            raise UsageError(f"no entry for {args.name!r}", hint)
        text = explain.render_entry(entry, args.format)
    else:
        text = explain.render_list(args.format)
    print_out(text)
    return 0
