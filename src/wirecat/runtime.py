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

__all__ = ["SignalWatch", "loop_factory", "loop_name", "raise_open_file_limit", "run"]

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
    try:
        factory = loop_factory()
    except BaseException:
        main.close()  # never run: no "coroutine was never awaited" warning under the one error line
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


class SignalWatch:
    """SIGINT and SIGTERM, counted as they arrive, on the running loop.

    A server shuts down gracefully on the first and gives up on the drain
    at the second (an impatient Ctrl-C). Use as ``with SignalWatch() as
    signals: await signals.next()``; the handlers go when the block ends.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self._loop = asyncio.get_running_loop()
        self._signals = signals
        self._arrived: asyncio.Queue[int] = asyncio.Queue()
        for number in signals:
            self._loop.add_signal_handler(number, self._arrived.put_nowait, number)

    async def next(self) -> int:
        """Wait for the next signal (or return one that came meanwhile); its number."""
        return await self._arrived.get()

    def close(self) -> None:
        """Put the default handlers back."""
        for number in self._signals:
            self._loop.remove_signal_handler(number)

    def __enter__(self) -> SignalWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
