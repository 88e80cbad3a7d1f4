"""What happens, as values: the events every part of wirecat emits, and one channel for them.

The library speaks in events; what becomes of them is up to whoever listens.
The CLI's ``-v`` lines, its ``--json`` output and Python's ``logging`` are
three subscribers of one :class:`Channel`::

    from wirecat import events

    events.subscribe(print)            # every event, as it happens
    server = await wirecat.serve(...)  # Listening(...), Accepted(...), Closed(...)

The records are immutable (``NamedTuple``: the one-shot commands must start
fast, and ``dataclasses`` alone costs ~8 ms of import), and each has an
``origin``: the part of wirecat that emitted it (``session``, ``hub``,
``server``, ``relay``, ``dial``, ``udp``, ``exec``, ``scan``, ``cli``...).
:func:`to_json` gives the documented form of ``--json`` (schema version
:data:`SCHEMA_VERSION`, ``docs/events.schema.json``).

Until someone subscribes, emitting costs a loop over an empty tuple. The
default channel starts with one subscriber, :func:`to_logging`, so a library
user who configures ``logging`` sees what servers did before there were
events (the logger is ``wirecat.<origin>``); the CLI replaces it with its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "SCHEMA_VERSION",
    "Accepted",
    "AttemptFailed",
    "Channel",
    "Closed",
    "Connected",
    "Connecting",
    "Event",
    "Failed",
    "Listening",
    "Note",
    "Refused",
    "ShutDown",
    "Subscriber",
    "Trace",
    "default",
    "emit",
    "kind_of",
    "note",
    "subscribe",
    "to_json",
    "to_logging",
]

#: The version of the ``--json`` schema; it changes only when a field changes meaning or goes.
SCHEMA_VERSION = 1


class Listening(NamedTuple):
    """A server listens: on each of ``addresses`` (with the real port)."""

    addresses: tuple[str, ...]
    origin: str = ""


class Accepted(NamedTuple):
    """A client was let in; ``active`` connections (this one included) are served now."""

    peer: str
    local: str
    active: int = 0
    origin: str = ""


class Refused(NamedTuple):
    """A client was turned away: ``reason`` ``"access"`` (allow/deny) or ``"full"``; ``why`` in words."""

    peer: str
    reason: str
    why: str
    origin: str = ""


class Connecting(NamedTuple):
    """An attempt to connect to one ``address`` begins (a race may have several)."""

    address: str
    origin: str = ""


class AttemptFailed(NamedTuple):
    """The attempt to ``address`` failed; ``reason`` in words (``connection refused``)."""

    address: str
    reason: str
    origin: str = ""


class Connected(NamedTuple):
    """A connection we made is up: to ``peer``, from ``local``."""

    peer: str
    local: str
    origin: str = ""


class Closed(NamedTuple):
    """A connection ended.

    ``sent``/``received`` count bytes each way (for a relay: client to target,
    and back); ``ending`` says how, in words; ``cut`` is True when wirecat
    cut it off (a reset) rather than it ending by itself; ``first`` is who
    closed first (``"we"``, ``"peer"`` or ``""``); ``target`` is the relay's
    target, or ``""``.
    """

    peer: str
    sent: int
    received: int
    duration: float
    ending: str
    cut: bool = False
    first: str = ""
    target: str = ""
    origin: str = ""


class ShutDown(NamedTuple):
    """A server stopped on a signal: ``finished`` connections ended by themselves
    within ``drain_timeout`` seconds, ``cut`` were cut off (reset)."""

    finished: int
    cut: int
    drain_timeout: float
    origin: str = ""


class Failed(NamedTuple):
    """The command ends with an error: its one-line ``message`` and ``exit_code``."""

    message: str
    exit_code: int
    origin: str = ""


class Note(NamedTuple):
    """Anything else worth a line: ``level`` ``"info"`` (said under ``-v``),
    ``"warning"`` (always said) or ``"error"`` (always; a bug or a failing handler)."""

    text: str
    level: str = "info"
    origin: str = ""


class Trace(NamedTuple):
    """One socket call, as ``--trace`` narrates it."""

    line: str
    origin: str = "trace"


Event = (
    Listening
    | Accepted
    | Refused
    | Connecting
    | AttemptFailed
    | Connected
    | Closed
    | ShutDown
    | Failed
    | Note
    | Trace
)
#: A function given every event (from any thread: it must not block for long).
Subscriber = Callable[[Event], None]

_KINDS: dict[type, str] = {
    Listening: "listening",
    Accepted: "accepted",
    Refused: "refused",
    Connecting: "connecting",
    AttemptFailed: "attempt_failed",
    Connected: "connected",
    Closed: "closed",
    ShutDown: "shutdown",
    Failed: "error",
    Note: "note",
    Trace: "trace",
}


def kind_of(event: Event) -> str:
    """The event's name in ``--json`` (``"closed"``, ``"refused"``...)."""
    return _KINDS[type(event)]


def to_json(event: Event, *, time: float | None = None) -> dict[str, Any]:
    """The event as ``--json`` writes it: ``{"v": 1, "event": "closed", "time": ..., fields...}``."""
    record: dict[str, Any] = {"v": SCHEMA_VERSION, "event": kind_of(event)}
    if time is not None:
        record["time"] = time
    fields = event._asdict()
    if isinstance(event, Listening):
        fields["addresses"] = list(event.addresses)
    record.update(fields)
    return record


class Channel:
    """Where events go: to every subscriber, in the order they subscribed.

    Emitting from several threads at once is safe; a subscriber that raises
    is removed from the path of that one event only (the error goes nowhere:
    an observer must not break what it observes).
    """

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns the function that removes it again."""
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    def clear(self) -> None:
        """Remove every subscriber (the CLI does, before adding its own)."""
        with self._lock:
            self._subscribers = ()

    @property
    def has_subscribers(self) -> bool:
        """Whether anyone listens (a costly event may be skipped when not)."""
        return bool(self._subscribers)

    def emit(self, event: Event) -> None:
        """Give ``event`` to every subscriber."""
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # an observer must not break what it observes
                continue

    def note(self, text: str) -> None:
        """Emit ``Note(text)``: a :data:`wirecat.report.Reporter` that feeds the channel."""
        self.emit(Note(text))


#: The channel the library emits to unless given another.
default = Channel()
emit = default.emit
subscribe = default.subscribe
note = default.note


def to_logging(event: Event) -> None:
    """A subscriber that hands events to Python's ``logging``, as their ``-v``
    text, under the logger ``wirecat.<origin>``: a note at its own level, a
    refusal for being full as a warning, an error as an error, the rest at INFO."""
    import logging

    from wirecat.report import event_lines

    level = logging.INFO
    if isinstance(event, Note):
        level = {"warning": logging.WARNING, "error": logging.ERROR}.get(event.level, logging.INFO)
    elif isinstance(event, Refused) and event.reason == "full":
        level = logging.WARNING
    elif isinstance(event, Failed):
        level = logging.ERROR
    logger = logging.getLogger(f"wirecat.{event.origin or 'events'}")
    for line in event_lines(event):
        logger.log(level, "%s", line)


default.subscribe(to_logging)
