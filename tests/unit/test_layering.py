"""The sans-IO modules import no I/O; the one-shot paths import no asyncio."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "wirecat"
# DESIGN.md: errors/limits import only the standard library; address/crlf/access
# import only those. No socket, selectors, asyncio, ssl or threading.
SANS_IO = [
    "errors.py",
    "limits.py",
    "address.py",
    "crlf.py",
    "access.py",
    *(f"framing/{p.name}" for p in sorted((SRC / "framing").glob("*.py"))),
]
ALLOWED_WIRECAT = {"wirecat.errors", "wirecat.limits"}
FORBIDDEN = {"socket", "selectors", "asyncio", "ssl", "threading", "subprocess", "os"}


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
    assert ours <= ALLOWED_WIRECAT


@pytest.mark.parametrize("command", [["--version"], ["connect", "--help"], ["listen", "--help"]])
def test_one_shot_paths_do_not_import_asyncio(command: list[str]) -> None:
    code = (
        "import sys, io, contextlib\n"
        "from wirecat.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try: main({command!r})\n"
        "    except SystemExit: pass\n"
        "print('asyncio' in sys.modules, 'ssl' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # (the command's own output goes to fd 1 itself, before this last line)
    assert out.split()[-2:] == ["False", "False"]
