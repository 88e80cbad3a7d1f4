"""The event loop: which one, how to run it, and the signals that stop a server.

uvloop is used when it is installed (it is a dependency on Linux and macOS),
the standard library's loop otherwise. ``WIRECAT_LOOP=asyncio`` forces the
standard loop (to compare, or to rule uvloop out when debugging);
``WIRECAT_LOOP=uvloop`` insists on uvloop and fails clearly without it.
``--trace`` uses the standard loop: uvloop's socket calls happen in C, out of
the tracer's sight.

Only the server commands and the asyncio library import this module: the
one-shot commands (connect, listen, scan) never pay for ``import asyncio``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from wirecat.errors import UsageError

__all__ = ["loop_factory", "loop_name", "raise_open_file_limit", "run", "wait_for_signal"]

T = TypeVar("T")

_LOOP_CHOICES = ("", "auto", "uvloop", "asyncio")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The function that makes a new event loop, as ``WIRECAT_LOOP`` asks.

    Raises:
        UsageError: ``WIRECAT_LOOP`` holds something else, or asks for uvloop
            where it is not installed.
    """
    choice = os.environ.get("WIRECAT_LOOP", "").strip().lower()
    if choice not in _LOOP_CHOICES:
        raise UsageError(f"bad WIRECAT_LOOP={choice!r}", "use uvloop, asyncio or leave it unset")
    from wirecat import trace

    if trace.current() is not None:
        # uvloop makes its socket calls in C, where no tracer sees them; the
        # standard loop calls our TracedSocket's methods.
        return asyncio.new_event_loop
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise UsageError(
                    "WIRECAT_LOOP=uvloop but uvloop is not installed", "pip install uvloop"
                ) from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``"uvloop"`` or ``"asyncio"``: which loop runs (the running one by default)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new loop of :func:`loop_factory`'s choice."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


async def wait_for_signal(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> int:
    """Wait until one of ``signals`` arrives; return its number.

    The handlers stay installed afterwards and a *second* signal raises
    KeyboardInterrupt, so an impatient Ctrl-C still ends a slow drain.
    """
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: int) -> None:
        if arrived.done():
            for number in signals:
                loop.remove_signal_handler(number)
            os.kill(os.getpid(), signal.SIGINT)  # the default handler: KeyboardInterrupt
        else:
            arrived.set_result(signum)

    for number in signals:
        loop.add_signal_handler(number, on_signal, number)
    return await arrived


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft limit of open files towards ``wanted`` (not past the hard limit).

    A server of N connections needs N descriptors and some to spare; the usual
    soft limit (1024) is lower than the hard one (often 1,048,576 or more), and
    raising it needs no privilege. Returns the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass  # the limit stays; accept() then backs off on EMFILE
    return int(soft)
