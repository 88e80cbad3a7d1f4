"""``wirecat explain``: the cheat sheet, rendered as text, Markdown, YAML or JSON.

Everything here is a pure function from cheat sheet entries to a string; the
CLI prints it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence

from wirecat.cheatsheet import CLIENT_STEPS, SERVER_STEPS, Entry, entries, find

__all__ = ["FORMATS", "render_all", "render_entry", "render_list", "render_pitfalls", "render_steps"]

FORMATS = ("text", "markdown", "yaml", "json")

_WIDTH = 78


def _dump_yaml(data: object) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def block_strings(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, block_strings)
    return str(yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=_WIDTH))


def _structured(data: object, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return _dump_yaml(data)


def render_list(fmt: str = "text") -> str:
    """Every entry with its one-line summary."""
    all_entries = entries()
    if fmt in ("json", "yaml"):
        return _structured([{"name": e.name, "summary": e.summary} for e in all_entries], fmt)
    if fmt == "markdown":
        rows = ["| name | what it does |", "|---|---|"]
        rows += [f"| `{e.name}` | {e.summary} |" for e in all_entries]
        return "\n".join(rows) + "\n"
    width = max(len(e.name) for e in all_entries)
    lines = ["The socket API, one line each (wirecat explain NAME for the whole entry):", ""]
    for e in all_entries:
        lines += textwrap.wrap(
            e.summary, _WIDTH, initial_indent=f"  {e.name:<{width}}  ", subsequent_indent=" " * (width + 4)
        )
    lines += [
        "",
        "Any case and form will do (so_reuseaddr, sock.recv(), reuseaddr), and other names",
        "too (select: see selectors; accept4: see accept).",
        "Also: wirecat explain --pitfalls, --server, --client, --all; --format markdown|yaml|json",
    ]
    return "\n".join(lines) + "\n"


def render_all(fmt: str = "text") -> str:
    """Every entry in full: in YAML, the cheat sheet itself (a list, every field)."""
    all_entries = entries()
    if fmt in ("json", "yaml"):
        return _structured([entry.as_dict() for entry in all_entries], fmt)
    separator = "\n" if fmt == "markdown" else "\n" + "-" * _WIDTH + "\n\n"
    return separator.join(render_entry(entry, fmt) for entry in all_entries)


def _wrap(text: str, indent: str = "  ") -> list[str]:
    out: list[str] = []
    for paragraph in text.split("\n\n"):
        out += textwrap.wrap(
            " ".join(paragraph.split()), _WIDTH, initial_indent=indent, subsequent_indent=indent
        )
        out.append("")
    return out[:-1]


def render_entry(entry: Entry, fmt: str = "text") -> str:
    """One entry in full."""
    if fmt in ("json", "yaml"):
        return _structured(entry.as_dict(), fmt)
    if fmt == "markdown":
        md = [f"## `{entry.name}`", "", f"**{entry.summary}**", ""]
        if entry.aliases:
            md += ["Also: " + ", ".join(f"`{alias}`" for alias in entry.aliases), ""]
        md += ["```python", entry.signature, "```", ""]
        md += [entry.explanation, ""]
        md += [
            f"- **Blocks:** {entry.blocks}",
            f"- **Returns:** {entry.returns}",
            f"- **Raises:** {entry.raises}",
        ]
        if entry.pitfalls:
            md += ["", "**Pitfalls**", ""]
            md += [f"- ✗ `{p.mistake}` → ✓ `{p.right}`: {p.why}" for p in entry.pitfalls]
        md += ["", "**Example** (run by wirecat's tests)", "", "```python", entry.example.rstrip(), "```"]
        if entry.see_also:
            md += ["", "See also: " + ", ".join(f"`{name}`" for name in entry.see_also)]
        return "\n".join(md) + "\n"
    lines = textwrap.wrap(f"{entry.name}: {entry.summary}", _WIDTH, subsequent_indent="  ")
    if entry.aliases:
        lines += textwrap.wrap(
            "(also: " + ", ".join(entry.aliases) + ")", _WIDTH, initial_indent="  ", subsequent_indent="   "
        )
    lines += ["", f"  {entry.signature}", ""]
    lines += _wrap(entry.explanation)
    lines.append("")
    for label, value in (("blocks:", entry.blocks), ("returns:", entry.returns), ("raises:", entry.raises)):
        lines += textwrap.wrap(f"{label:<8} {value}", _WIDTH, initial_indent="  ", subsequent_indent=" " * 11)
    if entry.pitfalls:
        lines += ["", "pitfalls:"]
        for p in entry.pitfalls:
            lines += [f"  wrong: {p.mistake}", f"  right: {p.right}"]
            lines += textwrap.wrap(
                f"why:   {p.why}", _WIDTH, initial_indent="  ", subsequent_indent="         "
            )
            lines.append("")
        lines.pop()
    lines += ["", "example (run by wirecat's tests):", ""]
    lines += ["    " + line if line else "" for line in entry.example.rstrip().splitlines()]
    if entry.see_also:
        lines += ["", "see also: " + ", ".join(entry.see_also)]
    return "\n".join(lines) + "\n"


def render_pitfalls(fmt: str = "text") -> str:
    """Every common mistake, with the right way and why."""
    items = [(e.name, p) for e in entries() for p in e.pitfalls]
    if fmt in ("json", "yaml"):
        return _structured([{"name": name, **p._asdict()} for name, p in items], fmt)
    if fmt == "markdown":
        rows = ["| call | wrong | right | why |", "|---|---|---|---|"]
        rows += [f"| `{name}` | `{p.mistake}` | `{p.right}` | {p.why} |" for name, p in items]
        return "\n".join(rows) + "\n"
    lines = ["Common socket mistakes, and the right way:", ""]
    for name, p in items:
        lines += [f"{name}", f"  wrong: {p.mistake}", f"  right: {p.right}"]
        lines += textwrap.wrap(f"why:   {p.why}", _WIDTH, initial_indent="  ", subsequent_indent="         ")
        lines.append("")
    return "\n".join(lines)


def render_steps(side: str, fmt: str = "text") -> str:
    """The TCP server's (``side="server"``) or client's steps, in order, each linked to its entry."""
    steps: Sequence[tuple[str, str, str]] = SERVER_STEPS if side == "server" else CLIENT_STEPS
    if fmt in ("json", "yaml"):
        data = [
            {"step": n, "what": step, "call": call, "does": does, "summary": _summary(call)}
            for n, (step, call, does) in enumerate(steps, 1)
        ]
        return _structured(data, fmt)
    if fmt == "markdown":
        rows = [f"## The TCP {side}, step by step", "", "| # | step | call | here |", "|---:|---|---|---|"]
        rows += [
            f"| {n} | {step} | `{_label(call)}` | {does} |" for n, (step, call, does) in enumerate(steps, 1)
        ]
        rows += ["", "See them run, one real call at a time: `wirecat demo` (`--step`: at your own pace)."]
        return "\n".join(rows) + "\n"
    lines = [f"The TCP {side}, step by step (wirecat explain NAME for each):", ""]
    for n, (step, call, does) in enumerate(steps, 1):
        lines.append(f"  {n}. {step:<16} {_label(call):<14} {does}")
    lines += [
        "",
        "See them run, one real call at a time: wirecat demo (and wirecat demo --step",
        "to go at your own pace): its server and client make these calls, in this order.",
    ]
    return "\n".join(lines) + "\n"


def _label(name: str) -> str:
    """``recv`` → ``recv()``; a constant (``SO_REUSEADDR``) as it is."""
    return name + "()" if name.islower() else name


def _summary(name: str) -> str:
    entry = find(name)
    return entry.summary if entry else ""
