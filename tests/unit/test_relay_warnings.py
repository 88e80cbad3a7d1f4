"""The relay's warnings for clients reset because the target failed: rate-limited (issue 12).

Driven on a real event loop but without waiting: everything here happens
within one interval, and ``flush()`` is what the interval's end (or the
relay's) calls.
"""

from __future__ import annotations

import asyncio

from wirecat import events
from wirecat.forwarding.stream import _MAX_REASONS, _ResetLog


def said(run: object) -> list[events.Note]:
    """The relay notes emitted while ``run()`` (a coroutine function) runs."""
    notes: list[events.Note] = []
    unsubscribe = events.subscribe(lambda e: notes.append(e) if isinstance(e, events.Note) else None)
    try:
        asyncio.run(run())  # type: ignore[operator]
    finally:
        unsubscribe()
    return notes


REFUSED = "connection refused by 127.0.0.1:1: nothing is listening there; check the port"


def test_the_first_failure_is_said_at_once_and_the_rest_counted() -> None:
    async def run() -> None:
        log = _ResetLog(interval=3600)  # (nothing here waits for it)
        for n in range(1, 101):
            log.reset(f"127.0.0.1:{40000 + n}", REFUSED)
        log.flush()

    notes = said(run)
    warnings = [(n.text, n.origin) for n in notes if n.level == "warning"]
    assert warnings == [
        (f"127.0.0.1:40001: {REFUSED}; the client was reset", "relay"),
        (f"99 more clients were reset: {REFUSED}", "relay"),
    ]
    # Under -v, each held one is still said (an info note).
    assert [n.text for n in notes if n.level == "info"][
        -1
    ] == f"127.0.0.1:40100: {REFUSED}; the client was reset"


def test_one_line_per_reason_and_a_bound_on_reasons() -> None:
    async def run() -> None:
        log = _ResetLog(interval=3600)
        log.reset("127.0.0.1:1", REFUSED)
        log.reset("127.0.0.1:2", "timed out")
        for n in range(3, 53):  # a PROXY header's reason names the client: 50 distinct ones
            log.reset(f"127.0.0.1:{n}", f"no whole PROXY header from 127.0.0.1:{n} within 30 s")
        log.flush()

    warnings = [n.text for n in said(run) if n.level == "warning"]
    assert warnings[0] == f"127.0.0.1:1: {REFUSED}; the client was reset"
    assert warnings[1] == "1 more client was reset: timed out"
    assert len(warnings) == 1 + _MAX_REASONS + 1  # the first, one per reason held, then the rest together
    assert warnings[-1] == f"{50 - (_MAX_REASONS - 1)} more clients were reset for other reasons"


def test_nothing_held_says_nothing() -> None:
    async def run() -> None:
        _ResetLog().flush()

    assert said(run) == []
