"""Happy Eyeballs (RFC 8305), sans-IO: which address to try next, and when.

A host name often has several addresses, IPv6 and IPv4. Trying them one by
one waits a whole connect timeout on each dead one; trying all at once floods
the network. RFC 8305's race starts the first attempt, then a new one every
``delay`` (250 ms, §5) or at once when the last one failed, and the first to
connect wins (the others are closed). This module is only that decision, so
the blocking dialer (``selectors``) and the async one (the event loop) run the
same race, and tests can drive it with a fake clock::

    race = Race(addresses, delay=0.25, now=clock(), timeout=10)
    while True:
        step = race.next(clock())
        if isinstance(step, Start): begin connecting to step.endpoint
        elif isinstance(step, Wait): wait for an attempt to end, until step.until
        elif isinstance(step, Won): return the winner's socket, close the rest
        elif isinstance(step, Lost): raise (step.failures says why each failed)
        elif isinstance(step, TimedOut): close every attempt, raise

and, as attempts end, ``race.connected(endpoint)`` or ``race.failed(endpoint,
error, now)``. The endpoints are taken in the order given: the caller
interleaves families (RFC 8305 §4), as ``getaddrinfo`` order alone would not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, NamedTuple, TypeVar

__all__ = ["Lost", "Race", "Start", "TimedOut", "Wait", "Won"]

T = TypeVar("T")


class Start(NamedTuple, Generic[T]):
    """Begin an attempt to connect to ``endpoint`` now."""

    endpoint: T


class Wait(NamedTuple):
    """Wait for an attempt to end, until ``until`` (a time on the caller's clock), or
    for ever when None."""

    until: float | None


class Won(NamedTuple, Generic[T]):
    """``endpoint`` connected: use it, and close every other attempt still going."""

    endpoint: T


class Lost(NamedTuple, Generic[T]):
    """Every attempt failed: ``failures`` holds (endpoint, error) in the order they failed."""

    failures: list[tuple[T, object]]


class TimedOut(NamedTuple):
    """The race's time is up with no winner: close every attempt still going."""


class Race(Generic[T]):
    """The state of one connection race (see the module docstring).

    Args:
        endpoints: the addresses to try, in order.
        delay: seconds between the starts of two attempts while the first
            is still going (RFC 8305 §5: 250 ms recommended, at least 100 ms).
        now: the current time on the caller's clock.
        timeout: seconds for the whole race, or None for no limit.
    """

    def __init__(self, endpoints: Sequence[T], *, delay: float, now: float, timeout: float | None) -> None:
        self._pending = list(endpoints)
        self._delay = delay
        self._deadline = None if timeout is None else now + timeout
        self._next_start = now
        self._in_flight: list[T] = []
        self._failures: list[tuple[T, object]] = []
        self._winner: T | None = None
        self._won = False

    @property
    def in_flight(self) -> tuple[T, ...]:
        """The attempts begun and not ended: the caller closes them once the race is over."""
        return tuple(self._in_flight)

    @property
    def failures(self) -> list[tuple[T, object]]:
        """(endpoint, error) of each attempt that failed so far."""
        return list(self._failures)

    def next(self, now: float) -> Start[T] | Wait | Won[T] | Lost[T] | TimedOut:
        """What to do now."""
        if self._won:
            assert self._winner is not None
            return Won(self._winner)
        if self._deadline is not None and now >= self._deadline:
            return TimedOut()
        if self._pending and (now >= self._next_start or not self._in_flight):
            endpoint = self._pending.pop(0)
            self._in_flight.append(endpoint)
            self._next_start = now + self._delay
            return Start(endpoint)
        if not self._pending and not self._in_flight:
            return Lost(list(self._failures))
        until = self._next_start if self._pending else None
        if self._deadline is not None:
            until = self._deadline if until is None else min(until, self._deadline)
        return Wait(until)

    def connected(self, endpoint: T) -> None:
        """The attempt to ``endpoint`` connected: it wins (a later one never does)."""
        if self._won:
            return
        self._in_flight.remove(endpoint)
        self._winner, self._won = endpoint, True

    def failed(self, endpoint: T, error: object, now: float) -> None:
        """The attempt to ``endpoint`` failed with ``error``; the next one may start at once (§5)."""
        self._in_flight.remove(endpoint)
        self._failures.append((endpoint, error))
        self._next_start = now
