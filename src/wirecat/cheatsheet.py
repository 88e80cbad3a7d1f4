"""The socket API cheat sheet, as data: ``cheatsheet.yaml`` and how to read it.

Each entry (:class:`Entry`) has a name, a one-line summary, a signature, an
explanation, what it blocks on, returns and raises, its pitfalls (a mistake,
the right way, and why), related entries, and an example that is real code:
the test suite runs every example and its asserts check what it claims.

``wirecat explain`` prints it; ``--trace=explain`` adds an entry's summary to
each traced call. The TCP server and client steps (the seed's six server
steps) are :data:`SERVER_STEPS` and :data:`CLIENT_STEPS`.
"""

from __future__ import annotations

import difflib
import functools
from importlib import resources
from typing import NamedTuple

__all__ = [
    "CLIENT_STEPS",
    "FIELDS",
    "SERVER_STEPS",
    "Entry",
    "Pitfall",
    "entries",
    "find",
    "suggest",
    "summary_of",
]


class Pitfall(NamedTuple):
    """A common mistake and the right way."""

    mistake: str
    right: str
    why: str


class Entry(NamedTuple):
    """One call, constant or type of the socket API."""

    name: str
    summary: str
    signature: str
    explanation: str
    blocks: str
    returns: str
    raises: str
    pitfalls: tuple[Pitfall, ...]
    see_also: tuple[str, ...]
    example: str

    def as_dict(self) -> dict[str, object]:
        """The entry as plain data (for JSON and YAML output), in file order."""
        data: dict[str, object] = dict(self._asdict())
        data["pitfalls"] = [p._asdict() for p in self.pitfalls]
        data["see_also"] = list(self.see_also)
        return data


#: Every field an entry must have, in the order they are shown.
FIELDS = Entry._fields

#: The TCP server's steps, in order: (step, entry name, what it does here).
SERVER_STEPS: tuple[tuple[str, str, str], ...] = (
    ("create a socket", "socket", "socket(AF_INET, SOCK_STREAM): an IPv4 TCP endpoint"),
    ("allow restarts", "setsockopt", "SO_REUSEADDR, before bind()"),
    ("bind an address", "bind", "(host, port); 127.0.0.1 unless you mean the network"),
    ("listen", "listen", "now the kernel queues connections; the backlog is not a client limit"),
    ("accept a client", "accept", "blocks; returns a NEW socket for that one client"),
    ("communicate", "recv", "recv(n) in a loop until b''; sendall() to answer"),
    ("close", "close", "the client's socket when done with it; the listener at the end"),
)

#: The TCP client's steps, in order.
CLIENT_STEPS: tuple[tuple[str, str, str], ...] = (
    ("create a socket", "socket", "or create_connection() for socket + connect by name"),
    ("connect", "connect", "to (host, port); the kernel picks our local port"),
    ("communicate", "sendall", "sendall() the request; recv(n) in a loop until b''"),
    ("half-close", "shutdown", "shutdown(SHUT_WR) when the whole request is sent"),
    ("close", "close", "after the reply's end of stream"),
)


@functools.cache
def entries() -> tuple[Entry, ...]:
    """Every entry of the cheat sheet, in file order (read once)."""
    import yaml

    text = resources.files("wirecat").joinpath("cheatsheet.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = yaml.load(text, Loader=loader)
    return tuple(_entry(item) for item in raw)


def _entry(item: dict[str, object]) -> Entry:
    missing = [name for name in FIELDS if name not in item]
    if missing:
        raise ValueError(f"cheat sheet entry {item.get('name')!r} lacks {', '.join(missing)}")
    pitfalls = tuple(Pitfall(**p) for p in item["pitfalls"])  # type: ignore[attr-defined]
    return Entry(
        name=str(item["name"]),
        summary=str(item["summary"]).strip(),
        signature=str(item["signature"]).strip(),
        explanation=str(item["explanation"]).strip(),
        blocks=str(item["blocks"]).strip(),
        returns=str(item["returns"]).strip(),
        raises=str(item["raises"]).strip(),
        pitfalls=pitfalls,
        see_also=tuple(str(name) for name in item["see_also"]),  # type: ignore[attr-defined]
        example=str(item["example"]),
    )


def _by_name() -> dict[str, Entry]:
    return {entry.name.lower(): entry for entry in entries()}


def find(name: str) -> Entry | None:
    """The entry called ``name`` (case-insensitive; ``sock.recv`` and ``recv()`` work too)."""
    key = name.strip().lower().removesuffix("()")
    for prefix in ("socket.", "sock."):
        if key.startswith(prefix) and key != "socket.socket":
            key = key[len(prefix) :]
    if key == "socket.socket":
        key = "socket"
    return _by_name().get(key)


def suggest(name: str) -> list[str]:
    """Entry names that look like ``name``, best first (for "did you mean")."""
    names = [entry.name for entry in entries()]
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
    return [lowered[c] for c in close]


def summary_of(call: str) -> str:
    """The one-line summary for a traced call name (``recv``, ``accept``), or ``""``."""
    entry = find(call)
    return entry.summary if entry is not None else ""
