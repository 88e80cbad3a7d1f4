"""``wirecat echo [HOST] PORT``."""

from __future__ import annotations

import argparse

from wirecat.cli.serving import add_framing_flags, add_server_flags, framing_from, run_server

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add echo's arguments to its subparser."""
    add_server_flags(parser)
    add_framing_flags(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the echo server until SIGINT/SIGTERM."""
    from wirecat.apps.echo import echo

    return run_server(args, echo, framing_from(args))
