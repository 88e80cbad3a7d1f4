"""``wirecat explain [NAME]``."""

from __future__ import annotations

import argparse

from wirecat.errors import UsageError
from wirecat.stdio import print_out

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add explain's arguments to its subparser."""
    parser.add_argument(
        "name",
        nargs="?",
        help="a call, option, constant or type, in any case: recv, sendall, SO_REUSEADDR, select,"
        " socket.AF_INET... (none: the list)",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--all", action="store_true", help="every entry in full (with --format yaml: the sheet itself)"
    )
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


def _or(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def handle(args: argparse.Namespace) -> int:
    """Print the part of the cheat sheet asked for."""
    from wirecat.apps import explain
    from wirecat.cheatsheet import match, suggest

    chosen = [flag for flag in ("all", "pitfalls", "server", "client") if getattr(args, flag)]
    if args.name and chosen:
        raise UsageError(f"give a NAME or --{chosen[0]}, not both")
    if args.all:
        text = explain.render_all(args.format)
    elif args.pitfalls:
        text = explain.render_pitfalls(args.format)
    elif args.server or args.client:
        text = explain.render_steps("server" if args.server else "client", args.format)
    elif args.name:
        found = match(args.name)
        if found is None:
            near = suggest(args.name)
            hint = f"did you mean {_or(near)}?" if near else "run 'wirecat explain' for the list"
            raise UsageError(f"no entry for {args.name!r}", hint)
        entry, how = found
        text = explain.render_entry(entry, args.format)
        if how != "name" and args.format in ("text", "markdown"):
            # Say why another name came back (select → selectors), where a person reads it.
            text = f"({args.name.strip()} is explained under {entry.name})\n\n" + text
    else:
        text = explain.render_list(args.format)
    print_out(text)
    return 0
