"""What the CLI prints on stderr: the two subscribers of the event channel.

:class:`TextOutput` is the default: the ``wirecat: ...`` lines, some always
(``listening on``, a refusal for being full, warnings, the final error),
the rest under ``-v``. :class:`JsonOutput` is ``--json`` (on stderr, in place
of the text) and ``--log-json FILE`` (beside it): one JSON object per line,
in the documented schema (``docs/events.schema.json``).
"""

from __future__ import annotations

import threading
import time
from typing import IO

from wirecat import events as ev
from wirecat.report import event_lines, say

__all__ = ["JsonOutput", "TextOutput", "shows"]


def shows(event: ev.Event, verbose: int) -> bool:
    """Whether ``event`` is said at this verbosity (the same rule for text and JSON).

    Always: where a server listens, refusals for being full, how a shutdown
    went, warnings and errors, the final error, trace lines. Under ``-v``:
    the rest (connections, attempts, how each ended, notes).
    """
    if isinstance(event, ev.Note):
        return verbose > 0 or event.level != "info"
    if isinstance(event, ev.Refused):
        return verbose > 0 or event.reason == "full"
    if isinstance(event, (ev.Listening, ev.ShutDown, ev.Failed, ev.Trace)):
        return True
    return verbose > 0


class TextOutput:
    """The ``wirecat: ...`` lines on stderr (the default output)."""

    def __init__(self, verbose: int = 0) -> None:
        #: ``-v`` count; set once the flags are parsed.
        self.verbose = verbose

    def __call__(self, event: ev.Event) -> None:
        if not shows(event, self.verbose):
            return
        if isinstance(event, ev.ShutDown) and event.cut:
            return  # the command's error line says it, and exit 8
        for line in event_lines(event):
            say(line if isinstance(event, ev.Trace) else f"wirecat: {line}")


class JsonOutput:
    """Newline-delimited JSON events, to stderr (``--json``) or a file (``--log-json FILE``)."""

    def __init__(self, out: IO[str] | None = None, verbose: int = 0) -> None:
        self._out = out  # None: fd 2, all of each line at once
        self._lock = threading.Lock()
        #: ``-v`` count; set once the flags are parsed.
        self.verbose = verbose

    def __call__(self, event: ev.Event) -> None:
        if not shows(event, self.verbose):
            return
        import json  # only with --json: ~2 ms of start-up

        line = json.dumps(ev.to_json(event, time=round(time.time(), 6)), ensure_ascii=False)
        with self._lock:
            if self._out is None:
                say(line)
            else:
                try:
                    self._out.write(line + "\n")
                    self._out.flush()
                except OSError:
                    pass  # the log file is gone; the command goes on
