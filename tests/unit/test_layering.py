"""The sans-IO modules import no I/O; the one-shot paths import no asyncio."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "wirecat"
# DESIGN.md: the sans-IO core (errors, limits, addresses, framing, protocol
# headers, and the pure decisions: access lists, admission, the connection
# race, which senders a notice names) imports no I/O, and of wirecat only
# itself. No socket, selectors, asyncio, ssl, threading, subprocess or os.
SANS_IO = [
    "errors.py",
    "limits.py",
    "address.py",
    "crlf.py",
    "access.py",
    "admission.py",
    "happy_eyeballs.py",
    "notices.py",
    *(f"framing/{p.name}" for p in sorted((SRC / "framing").glob("*.py"))),
    *(f"protocol/{p.name}" for p in sorted((SRC / "protocol").glob("*.py"))),
]
SANS_IO_MODULES = {"wirecat." + m.removesuffix(".py").replace("/", ".") for m in SANS_IO}
FORBIDDEN = {"socket", "selectors", "asyncio", "ssl", "threading", "subprocess", "os"}
#: The library: everything but the command-line jobs and the CLI.
LIBRARY = [
    p.relative_to(SRC).as_posix()
    for p in sorted(SRC.rglob("*.py"))
    if p.relative_to(SRC).parts[0] not in ("apps", "cli", "__main__.py")
]


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_import_no_io(module: str) -> None:
    imported = imports_of(SRC / module)
    assert not imported & FORBIDDEN
    ours = {m for m in imported if m.startswith("wirecat") and not m.startswith("wirecat.framing")}
    assert ours <= SANS_IO_MODULES, ours - SANS_IO_MODULES


@pytest.mark.parametrize("module", LIBRARY)
def test_the_library_never_imports_the_jobs_or_the_cli(module: str) -> None:
    imported = imports_of(SRC / module)
    assert not {m for m in imported if m.startswith(("wirecat.apps", "wirecat.cli"))}


@pytest.mark.parametrize("module", sorted(p.name for p in (SRC / "apps").glob("*.py")))
def test_no_job_imports_another(module: str) -> None:
    imported = imports_of(SRC / "apps" / module)
    assert not {m for m in imported if m.startswith("wirecat.apps")}


def test_events_import_only_the_standard_library() -> None:
    imported = imports_of(SRC / "events.py")
    assert {m for m in imported if m.startswith("wirecat")} <= {"wirecat.report"}  # (text, lazily)


@pytest.mark.parametrize("command", [["--version"], ["connect", "--help"], ["listen", "--help"]])
def test_one_shot_paths_do_not_import_asyncio(command: list[str]) -> None:
    code = (
        "import sys, io, contextlib\n"
        "from wirecat.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try: main({command!r})\n"
        "    except SystemExit: pass\n"
        "print('asyncio' in sys.modules, 'ssl' in sys.modules, 'blake3' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # (the command's own output goes to fd 1 itself, before this last line)
    assert out.split()[-3:] == ["False", "False", "False"]
