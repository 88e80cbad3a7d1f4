"""``wirecat demo``: watch a TCP server and client talk, step by step.

Needs no input and no network beyond loopback; exits 0 with nothing left
listening. The steps are explained in :mod:`wirecat.apps.demo`.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add demo's arguments to its subparser."""
    parser.add_argument("-6", dest="ipv6", action="store_true", help="use IPv6 (::1) instead of 127.0.0.1")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the demo, printing each step as it happens; return 0."""
    from wirecat.apps.demo import INTRO, Step, format_step, run_demo

    def show(step: Step) -> None:
        sys.stdout.write(format_step(step) + "\n")
        sys.stdout.flush()  # steps appear as they happen, even through a pipe

    sys.stdout.write(INTRO + "\n")
    run_demo(show, ipv6=args.ipv6)
    return 0
