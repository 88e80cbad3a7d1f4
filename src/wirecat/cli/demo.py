"""``wirecat demo``: watch a TCP server and client talk, step by step.

Needs no input and no network beyond loopback; exits 0 with nothing left
listening. The steps are explained in :mod:`wirecat.apps.demo`.
"""

from __future__ import annotations

import argparse
import os
import sys

from wirecat import events
from wirecat.stdio import print_out

__all__ = ["register"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add demo's arguments to its subparser."""
    parser.add_argument("-6", dest="ipv6", action="store_true", help="use IPv6 (::1) instead of 127.0.0.1")
    parser.add_argument(
        "--step",
        action="store_true",
        help="in a terminal, wait for Enter before each step, as long as you like (Ctrl-C ends it)",
    )
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        "--columns", action="store_true", help="server on the left, client on the right (default when wide)"
    )
    layout.add_argument("--interleaved", action="store_true", help="one column, steps in order")
    parser.set_defaults(handler=handle)


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(1).columns
    except OSError:
        return 0  # not a terminal: one column


def handle(args: argparse.Namespace) -> int:
    """Run the demo, printing each step as it happens; return 0."""
    from wirecat.apps.demo import INTRO, MIN_COLUMN, Step, format_step, run_demo

    width = _terminal_width()
    if args.columns:
        columns = max(width, 2 * MIN_COLUMN)
    elif args.interleaved:
        columns = 0
    else:
        columns = width if width >= 2 * MIN_COLUMN else 0
    interactive = args.step and os.isatty(0) and os.isatty(1)
    if args.step and not interactive:
        events.emit(events.Note("--step needs a terminal; running without pauses", "warning", "cli"))

    def show(step: Step) -> None:
        print_out(format_step(step, columns=columns) + "\n")  # at once, even through a pipe

    def pause(name: str) -> None:
        # Called in the main thread (run_demo's conductor), never in a side's:
        # Ctrl-C here ends the demo at once, with exit 130.
        print_out(f"   [next: {name}; Enter to go on] ")
        if not sys.stdin.readline():  # end of input: stop pausing, run to the end
            nonlocal interactive
            interactive = False

    def before_step(name: str) -> None:
        if interactive:
            pause(name)

    print_out(INTRO + "\n")
    if columns:
        half = columns // 2
        print_out(f"{'SERVER':<{half}}CLIENT\n{'-' * (half - 2):<{half}}{'-' * (half - 2)}\n")
    try:
        run_demo(
            show, ipv6=args.ipv6, before_step=before_step, trace_mode=getattr(args, "trace", None) or "calls"
        )
    except OSError as exc:  # no loopback in that family (-6 without IPv6), a loopback that is down
        from wirecat.sockets import Op, translate_os_error

        raise translate_os_error(exc, Op.USE, "::1" if args.ipv6 else "127.0.0.1") from exc
    return 0
