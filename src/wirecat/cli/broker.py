"""``wirecat broker [HOST] PORT``."""

from __future__ import annotations

import argparse

from wirecat.cli.serving import add_queue_flag, add_server_flags, run_server

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add broker's arguments to its subparser."""
    add_server_flags(parser)
    add_queue_flag(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the broker until SIGINT/SIGTERM."""
    from wirecat.apps.broker import Broker

    return run_server(args, Broker(max_queue=args.max_queue).handler)
