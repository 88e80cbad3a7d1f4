"""``wirecat chat [HOST] PORT``."""

from __future__ import annotations

import argparse

from wirecat.cli.serving import add_queue_flag, add_server_flags, positive_int, run_server
from wirecat.limits import DEFAULT_MAX_LINE

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add chat's arguments to its subparser."""
    add_server_flags(parser)
    add_queue_flag(parser)
    parser.add_argument(
        "--max-line",
        type=positive_int,
        default=DEFAULT_MAX_LINE,
        metavar="BYTES",
        help=f"longest line a client may send (default {DEFAULT_MAX_LINE})",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the chat room until SIGINT/SIGTERM."""
    from wirecat.apps.chat import ChatRoom
    from wirecat.framing import Lines

    room = ChatRoom(max_queue=args.max_queue)
    framing = Lines(max_length=args.max_line)
    return run_server(args, room.handler, framing)
