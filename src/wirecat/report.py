"""Human-readable progress and summary lines (``-v``), shared by every job."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wirecat.events import Closed, Event

__all__ = [
    "Reporter",
    "event_lines",
    "format_bytes",
    "quiet",
    "say",
    "shutdown_line",
    "stderr_reporter",
    "summary_line",
]

#: Receives one line of progress ("connected to 127.0.0.1:80 from ...").
Reporter = Callable[[str], None]


def quiet(_: str) -> None:
    """A reporter that says nothing (the default without ``-v``)."""


def stderr_reporter(line: str) -> None:
    """Write ``wirecat: LINE`` to stderr at once (stderr may be a pipe, or closed)."""
    say(f"wirecat: {line}")


def say(line: str) -> None:
    """Write ``line`` and a newline to fd 2, all of it, now; nothing if stderr is gone.

    Through the descriptor, not ``sys.stderr`` (None when Python started with
    fd 2 closed, and buffered otherwise).
    """
    data = (line + "\n").encode(errors="replace")
    try:
        while data:
            data = data[os.write(2, data) :]
    except OSError:
        pass  # stderr is gone; there is nobody left to tell


def format_bytes(n: int) -> str:
    """``1536`` → ``"1536 B"``; ``3_000_000`` → ``"3.0 MB"`` (SI units, like iperf)."""
    if n < 10_000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 10_000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} TB"


def summary_line(sent: int, received: int, duration: float, closed_first: str, ending: str) -> str:
    """The one closing line of ``-v``: bytes each way, duration, who closed first."""
    who = {"we": "we closed first", "peer": "the peer closed first"}.get(closed_first, "")
    parts = [f"sent {format_bytes(sent)}, received {format_bytes(received)} in {duration:.2f} s"]
    parts += [p for p in (who, ending) if p]
    return "done: " + "; ".join(parts)


def event_lines(event: Event) -> list[str]:
    """The lines an event is said in, as ``-v`` and the log say it (without the
    ``wirecat:`` prefix); none for an event that has no line of its own."""
    from wirecat import events as ev

    if isinstance(event, ev.Note):
        return [event.text]
    if isinstance(event, ev.Listening):
        return [f"listening on {address}" for address in event.addresses]
    if isinstance(event, ev.Closed):
        return [_closed_line(event)]
    if isinstance(event, ev.Refused):
        if event.origin == "udp":
            return [f"dropped datagram from {event.peer}: {event.why}"]
        return [f"refused {event.peer}: {event.why}"]
    if isinstance(event, ev.Accepted):
        if event.origin == "hub":
            return [f"connection from {event.peer} ({event.active} connected)"]
        return [f"connection from {event.peer}"] if event.origin in ("listen", "exec") else []
    if isinstance(event, ev.Connecting):
        return [f"connecting to {event.address}"]
    if isinstance(event, ev.AttemptFailed):
        return [f"{event.address}: {event.reason}"]
    if isinstance(event, ev.Connected):
        if event.origin != "dial":
            return []
        return [
            f"connected to {event.peer} from {event.local}" if event.local else f"connected to {event.peer}"
        ]
    if isinstance(event, ev.ShutDown):
        return [shutdown_line(event.finished, event.cut, event.drain_timeout)]
    if isinstance(event, ev.Failed):
        return [event.message]
    return [f"trace {event.line}"]  # a Trace line: said as `trace ...`, without the wirecat: prefix


def _closed_line(event: Closed) -> str:
    if event.origin == "hub":
        return (
            f"{event.peer} gone ({event.ending}): sent {format_bytes(event.sent)}, "
            f"received {format_bytes(event.received)} in {event.duration:.2f} s"
        )
    if event.origin == "server":
        return (
            f"{event.peer}: closed after {event.duration:.2f} s; received {format_bytes(event.received)},"
            f" sent {format_bytes(event.sent)}; {event.ending}"
        )
    if event.origin == "relay":
        return (
            f"{event.peer} -> {event.target}: sent {format_bytes(event.sent)}, received"
            f" {format_bytes(event.received)} in {event.duration:.2f} s; {event.ending}"
        )
    return summary_line(event.sent, event.received, event.duration, event.first, event.ending)


def _connections(n: int) -> str:
    return f"{n} connection" if n == 1 else f"{n} connections"


def shutdown_line(finished: int, cut: int, drain_timeout: float) -> str:
    """How a server's shutdown went, in the one line the servers say it in."""
    if cut:
        return (
            f"shut down: {_connections(finished)} finished, {cut} cut off (reset)"
            f" after --drain-timeout {drain_timeout:g} s"
        )
    if finished:
        return f"shut down: {_connections(finished)} finished, none cut off"
    return "shut down: no connection was open"
