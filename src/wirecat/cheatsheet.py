"""The socket API cheat sheet, as data: ``cheatsheet.yaml`` and how to read it.

Each entry (:class:`Entry`) has a name, other names it answers to, a
one-line summary, a signature, an explanation, what it blocks on, returns and
raises, its pitfalls (a mistake, the right way, and why), related entries,
what ``--trace=explain`` says of a traced call of it, and an example that is
real code: the test suite runs every example and its asserts check what it
claims.

``wirecat explain`` prints it; ``--trace=explain`` adds to each traced call
the note that fits its arguments and result (:func:`explain_call`). The six steps of a TCP
server, and a client's, are :data:`SERVER_STEPS` and :data:`CLIENT_STEPS`.

Looking a name up (:func:`find`) forgives what a learner types: any case,
``sock.recv()``, ``socket.SO_REUSEADDR``, ``reuseaddr``, an alias (``select``
is explained under ``selectors``, ``accept4``, what strace shows, under
``accept``). When nothing matches, :func:`suggest` looks beyond spelling: at
names that contain the word, at aliases, and at the entries whose text
mentions it (``TIME_WAIT`` → ``SO_REUSEADDR``, ``bind``).
"""

from __future__ import annotations

import difflib
import functools
import re
from importlib import resources
from typing import NamedTuple

__all__ = [
    "CLIENT_STEPS",
    "FIELDS",
    "REQUIRED_FIELDS",
    "SERVER_STEPS",
    "Entry",
    "Pitfall",
    "TraceNote",
    "entries",
    "explain_call",
    "find",
    "match",
    "suggest",
    "summary_of",
]


class Pitfall(NamedTuple):
    """A common mistake and the right way."""

    mistake: str
    right: str
    why: str


class TraceNote(NamedTuple):
    """What ``--trace=explain`` says of a traced call that ``match`` finds.

    Attributes:
        match: a regular expression, searched in the traced call as printed
            without its time and descriptor: ``setblocking(True)``,
            ``recv(65536) -> 0 bytes (end of stream)``.
        note: the one line shown after the call.
    """

    match: str
    note: str


class Entry(NamedTuple):
    """One call, constant or type of the socket API."""

    name: str
    aliases: tuple[str, ...]
    summary: str
    signature: str
    explanation: str
    blocks: str
    returns: str
    raises: str
    pitfalls: tuple[Pitfall, ...]
    see_also: tuple[str, ...]
    trace: tuple[TraceNote, ...]
    example: str

    def as_dict(self) -> dict[str, object]:
        """The entry as plain data (for JSON and YAML output), in file order."""
        data: dict[str, object] = dict(self._asdict())
        data["aliases"] = list(self.aliases)
        data["pitfalls"] = [p._asdict() for p in self.pitfalls]
        data["see_also"] = list(self.see_also)
        data["trace"] = [t._asdict() for t in self.trace]
        return data

    def note_for(self, call: str) -> str:
        """The ``--trace=explain`` note for ``call`` (``name(args) -> result``): the
        first :attr:`trace` note whose pattern it matches, else the summary."""
        for rule in self.trace:
            if re.search(rule.match, call):
                return rule.note
        return self.summary


#: Every field of an entry, in the order they are shown.
FIELDS = Entry._fields
#: The fields every entry must have; the others (aliases, trace) may be left out.
REQUIRED_FIELDS = tuple(name for name in FIELDS if name not in ("aliases", "trace"))

#: The TCP server's steps, in order: (step, entry name, what it does here).
#: ``wirecat demo`` makes these calls in this order (a test checks it).
SERVER_STEPS: tuple[tuple[str, str, str], ...] = (
    ("create a socket", "socket", "socket(AF_INET, SOCK_STREAM): an IPv4 TCP endpoint"),
    ("allow restarts", "SO_REUSEADDR", "setsockopt(SOL_SOCKET, SO_REUSEADDR, 1), before bind()"),
    ("bind an address", "bind", "(host, port); 127.0.0.1 unless you mean the network"),
    ("listen", "listen", "now the kernel queues connections; the backlog is not a client limit"),
    ("accept a client", "accept", "blocks; returns a NEW socket for that one client"),
    ("communicate", "recv", "recv(n) in a loop until b''; sendall() to answer"),
    ("close", "close", "the client's socket when done with it; the listener at the end"),
)

#: The TCP client's steps, in order (``wirecat demo`` makes these calls too).
CLIENT_STEPS: tuple[tuple[str, str, str], ...] = (
    ("create a socket", "socket", "or create_connection() for socket + connect by name"),
    ("connect", "connect", "to (host, port); the kernel picks our local port"),
    ("send at once", "TCP_NODELAY", "optional: setsockopt(IPPROTO_TCP, TCP_NODELAY, 1) for small writes"),
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
    missing = [name for name in REQUIRED_FIELDS if name not in item]
    if missing:
        raise ValueError(f"cheat sheet entry {item.get('name')!r} lacks {', '.join(missing)}")
    pitfalls = tuple(Pitfall(**p) for p in item["pitfalls"])  # type: ignore[attr-defined]
    notes = tuple(TraceNote(**t) for t in item.get("trace") or ())  # type: ignore[attr-defined]
    return Entry(
        name=str(item["name"]),
        aliases=tuple(str(alias) for alias in item.get("aliases") or ()),  # type: ignore[attr-defined]
        summary=str(item["summary"]).strip(),
        signature=str(item["signature"]).strip(),
        explanation=str(item["explanation"]).strip(),
        blocks=str(item["blocks"]).strip(),
        returns=str(item["returns"]).strip(),
        raises=str(item["raises"]).strip(),
        pitfalls=pitfalls,
        see_also=tuple(str(name) for name in item["see_also"]),  # type: ignore[attr-defined]
        trace=tuple(TraceNote(str(t.match), str(t.note).strip()) for t in notes),
        example=str(item["example"]),
    )


# -- looking names up -----------------------------------------------------------------------------

#: The prefixes of constants' names, which a learner often leaves out (``reuseaddr``).
_PREFIXES = ("so_", "tcp_", "af_", "sock_", "ipproto_", "ipv6_", "shut_")


def _squash(text: str) -> str:
    """Lower case, without the characters people spell differently: ``send_all`` = ``sendall``."""
    return re.sub(r"[\W_]+", "", text.lower())


@functools.cache
def _index() -> dict[str, Entry]:
    """Squashed name or alias → entry; a name wins over another entry's alias."""
    index: dict[str, Entry] = {}
    for entry in entries():
        for alias in entry.aliases:
            index.setdefault(_squash(alias), entry)
    index.update({_squash(entry.name): entry for entry in entries()})
    return index


@functools.cache
def _unprefixed() -> dict[str, Entry | None]:
    """``reuseaddr`` → SO_REUSEADDR: constants by their name without its prefix (None: ambiguous)."""
    found: dict[str, Entry | None] = {}
    for entry in entries():
        for name in (entry.name, *entry.aliases):
            lowered = name.lower()
            for prefix in _PREFIXES:
                if lowered.startswith(prefix) and len(lowered) > len(prefix):
                    key = _squash(lowered[len(prefix) :])
                    found[key] = entry if found.get(key, entry) is entry else None
    return found


def _keys(name: str) -> list[str]:
    """What to look ``name`` up as: the whole of it, then its last dotted part.

    ``sock.recv(1024)`` → ``sock.recv``, ``recv``; ``socket.SO_REUSEADDR`` →
    ``socket.SO_REUSEADDR``, ``SO_REUSEADDR``; ``select.select`` stays whole first.
    """
    text = name.strip().split("(", 1)[0].strip()
    keys = [text]
    if "." in text.strip("."):
        keys.append(text.rstrip(".").rsplit(".", 1)[1])
    return [_squash(key) for key in keys if _squash(key)]


def match(name: str) -> tuple[Entry, str] | None:
    """The entry ``name`` means, and how it was found: ``"name"``, ``"alias"`` or ``"prefix"``.

    ``"name"`` also when the name was only qualified (``socket.socket``,
    ``sock.recv``): only a different word (``select`` for ``selectors``) is
    worth telling the reader about.

    Case does not matter, nor ``_``, ``()``, arguments or a ``module.``/``sock.``
    in front; aliases count (``select`` → ``selectors``), and a constant may
    lose its prefix (``reuseaddr`` → ``SO_REUSEADDR``) when only one fits.
    """
    index = _index()
    keys = _keys(name)
    for key in keys:
        entry = index.get(key)
        if entry is not None:
            return entry, "name" if _squash(entry.name) in (key, keys[-1]) else "alias"
    for key in _keys(name):
        entry = _unprefixed().get(key)
        if entry is not None:
            return entry, "prefix"
    return None


def find(name: str) -> Entry | None:
    """The entry called ``name``, forgiving spelling as :func:`match` does; None if none."""
    found = match(name)
    return found[0] if found else None


def suggest(name: str, limit: int = 4) -> list[str]:
    """Entry names for "did you mean", best first: more than the nearest spelling.

    In order: entries whose name or alias contains the word or is contained
    in it (``recv`` in ``recv_into``), names and aliases spelled alike
    (``sendal``), then entries whose summary, and then whose explanation or
    pitfalls, mention the word (``TIME_WAIT``, ``Nagle``, ``non-blocking``).
    """
    keys = _keys(name)
    if not keys:
        return []
    key = keys[-1]
    scores: dict[str, float] = {}

    def score(entry: Entry, value: float) -> None:
        scores[entry.name] = max(scores.get(entry.name, 0.0), value)

    for entry in entries():
        names = [_squash(n) for n in (entry.name, *entry.aliases)]
        for candidate in names:
            if len(key) >= 3 and (key in candidate or candidate in key):
                # Closer in length: a better fit (recv → recv_into before recvfrom_into).
                score(entry, 3 + min(len(key), len(candidate)) / max(len(key), len(candidate)))
            ratio = difflib.SequenceMatcher(None, key, candidate).ratio()
            if ratio >= 0.75:
                score(entry, 2 + ratio)
        if len(key) >= 3:
            if key in _words(entry.summary):
                score(entry, 1.5)
            else:
                body = " ".join([entry.explanation, entry.raises, *(" ".join(p) for p in entry.pitfalls)])
                if key in _words(body):
                    score(entry, 1.0)
    ranked = sorted(scores, key=lambda n: -scores[n])
    return ranked[:limit]


def _words(text: str) -> set[str]:
    """The squashed words of ``text``, and its hyphenated or underscored ones whole too."""
    words = set()
    for word in re.findall(r"[\w.-]+", text):
        words.add(_squash(word))
        words.update(_squash(part) for part in re.split(r"[-.]", word))
    return words


def summary_of(call: str) -> str:
    """The one-line summary for a traced call name (``recv``, ``accept``), or ``""``."""
    entry = find(call)
    return entry.summary if entry is not None else ""


def explain_call(name: str, call: str) -> str:
    """What ``--trace=explain`` says of ``call`` (``setblocking(True)``), from entry ``name``.

    The entry's trace note that matches the call's arguments and result, else
    its summary; ``""`` when no entry explains ``name`` (a pump's read of stdin).
    """
    found = match(name)
    if found is None or found[1] == "prefix":
        return ""
    return found[0].note_for(call)
