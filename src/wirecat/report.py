"""Human-readable progress and summary lines (``-v``), shared by every job."""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["Reporter", "format_bytes", "quiet", "say", "stderr_reporter", "summary_line"]

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
