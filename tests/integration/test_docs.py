"""Every code block in README.md and docs/API.md works as written.

``python`` blocks are whole programs: each is saved to a file and run with
this Python, as a reader would run it. The exception is a block whose fence
is right after a line ``<!-- fragment -->``: a piece of a program, which must
still compile (top-level ``await`` allowed). Keep fragments few.

* A block that calls ``serve_forever()`` is a server: it is started, must
  print the address it listens on (its first line of output), answer a line,
  and exit 0 without a traceback when stopped with SIGINT (Ctrl-C), by PID.
* Any other block runs to completion with ``hello`` on stdin: exit 0, no
  traceback.

Ports. The docs speak of one server, the README's uppercasing line server on
127.0.0.1:8000, and its clients connect there; 8001 stands for a port where
nothing listens. So the test starts the README's server on a free port and
rewrites 8000 (and 9000, the port of the ``--trace`` section's snippet) in a
block to that port, and 8001 to a free one. A server block listens on the
first address it names: that port becomes 0 (the kernel's pick), and the
test reads the real one from what the block prints. Nothing but loopback is
ever reached.

``sh`` blocks are not run (some name hosts that are not ours): every
``wirecat ...`` command line in them is parsed as the CLI parses it, so a
subcommand, flag or value that does not exist fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from wirecat.testing import free_port, read_line_matching

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/API.md")
#: The marker, on the line before a fence, of a block that is not a whole program.
FRAGMENT = "<!-- fragment -->"
#: The marker of a session block whose every command fails with the line shown after it.
ERRORS = "<!-- errors -->"
TIMEOUT = 30.0

pytestmark = pytest.mark.timeout(120)


class Block(NamedTuple):
    """One fenced code block: where it is, its language, its text."""

    doc: str
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    fragment: bool
    errors: bool = False

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def is_server(self) -> bool:
        return "serve_forever()" in self.code


def blocks_of(doc: str) -> list[Block]:
    """The fenced blocks of ``doc`` (a path under the repository root)."""
    found: list[Block] = []
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        fence = lines[index].strip()
        if not fence.startswith("```"):
            index += 1
            continue
        start = index
        before = next((lines[i].strip() for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        language = fence[3:].strip().lower()
        code = "\n".join(body) + "\n"
        found.append(Block(doc, start + 1, language, code, before == FRAGMENT, before == ERRORS))
    return found


ALL_BLOCKS = [block for doc in DOCS for block in blocks_of(doc)]
PYTHON = [block for block in ALL_BLOCKS if block.language in ("python", "py")]
SHELL = [
    block
    for block in ALL_BLOCKS
    if block.language in ("sh", "shell", "bash", "console")
    # An unlabelled block that shows a session: `$ command`, then its output.
    or (not block.language and any(line.startswith("$ ") for line in block.code.splitlines()))
]


def test_the_docs_have_blocks_and_few_fragments() -> None:
    """The extraction works (a change of fence style would silently test nothing)."""
    assert len(PYTHON) >= 8, [b.id for b in PYTHON]
    assert sum(b.is_server for b in PYTHON) >= 2
    assert len(SHELL) >= 4
    fragments = [b.id for b in PYTHON if b.fragment]
    assert len(fragments) <= 2, f"keep fragments few: {fragments}"


# -- running programs ---------------------------------------------------------------------------


def with_ports(code: str, server_port: int, *, listen: bool) -> str:
    """``code`` with the docs' ports made real (see the module docstring)."""
    if listen:
        code = re.sub(r"(127\.0\.0\.1:)\d+", r"\g<1>0", code, count=1)
    code = re.sub(r"\b(8000|9000)\b", str(server_port), code)
    return re.sub(r"\b8001\b", str(free_port()), code)


def save(block: Block, directory: Path, code: str) -> Path:
    path = directory / f"{Path(block.doc).stem}_{block.line}.py"
    path.write_text(code, encoding="utf-8")
    return path


def environment() -> dict[str, str]:
    # Unbuffered, so a server's "listening on" line reaches the pipe at once
    # (a terminal would be line-buffered); the working directory is a temporary
    # one, so `import wirecat` finds the installed package, as a reader's would.
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


class Running(NamedTuple):
    popen: subprocess.Popen[bytes]
    port: int


def start_server(path: Path) -> Running:
    """Run a server block; wait for the address it prints."""
    popen = subprocess.Popen(
        [sys.executable, str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=path.parent,
        env=environment(),
    )
    try:
        assert popen.stdout is not None
        match = read_line_matching(popen.stdout, r":(\d+)\s*$", timeout=TIMEOUT)
    except BaseException:
        popen.kill()
        popen.wait(TIMEOUT)
        raise
    return Running(popen, int(match.group(1)))


def stop_server(server: Running) -> tuple[int, str]:
    """Ctrl-C by PID, as a reader stops it; (exit code, stderr)."""
    server.popen.send_signal(signal.SIGINT)
    try:
        _, err = server.popen.communicate(timeout=TIMEOUT)
    finally:
        if server.popen.poll() is None:
            server.popen.kill()
            server.popen.wait(TIMEOUT)
    return server.popen.returncode, err.decode(errors="replace")


def ask(port: int, line: bytes = b"hello\n") -> bytes:
    """Send ``line`` to 127.0.0.1:``port``; the first line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(line)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The README's own server (its first server block), on a free port: the peer of every client block."""
    block = next(b for b in PYTHON if b.doc == "README.md" and b.is_server)
    directory = tmp_path_factory.mktemp("docs_server")
    server = start_server(save(block, directory, with_ports(block.code, 0, listen=True)))
    try:
        yield server.port
    finally:
        code, err = stop_server(server)
    assert code == 0, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("block", [b for b in PYTHON if not b.fragment], ids=lambda b: b.id)
def test_python_block_runs_as_a_saved_program(block: Block, docs_server: int, tmp_path: Path) -> None:
    path = save(block, tmp_path, with_ports(block.code, docs_server, listen=block.is_server))
    if block.is_server:
        server = start_server(path)
        try:
            assert ask(server.port) == b"HELLO\n"  # the docs' server, or a relay to it
        finally:
            code, err = stop_server(server)
        assert code == 0, err
        assert "Traceback" not in err, err
        return
    result = subprocess.run(
        [sys.executable, str(path)],
        input=b"hello\n",
        capture_output=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=environment(),
        check=False,
    )
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 0, err
    assert "Traceback" not in err, err


def test_python_fragments_compile() -> None:
    """A fragment is not run, but it must still be Python (top-level await allowed)."""
    import ast

    for block in PYTHON:
        if block.fragment:
            compile(block.code, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


# -- shell command lines ------------------------------------------------------------------------

#: Words that end one command of a shell line, and redirections (which take the next word).
_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")"}
_REDIRECTIONS = {"<", ">", ">>", ">&", "<&", ">|"}


def wirecat_commands(block: Block) -> list[list[str]]:
    """The argv (after ``wirecat``) of every wirecat command in a shell block.

    A block that shows a session (``$ command`` lines, then output) counts its
    ``$`` lines only.
    """
    lines = block.code.splitlines()
    if any(line.startswith("$ ") for line in lines):
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands: list[list[str]] = []
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = iter([*lexer, ";"])
        command: list[str] = []
        for word in words:
            if word in _SEPARATORS:
                if command and os.path.basename(command[0]) == "wirecat":
                    commands.append(command[1:])
                command = []
            elif word in _REDIRECTIONS:
                next(words, None)  # the file: not part of the command
            else:
                command.append(word)
    return commands


def parse_like_the_cli(argv: list[str]) -> object:
    """Parse ``argv`` the way ``wirecat.cli.run.run`` does, stopping before the command runs."""
    from wirecat.cli.run import _take_json, parse_command_line

    argv, _, _ = _take_json(argv)
    args, program, _ = parse_command_line(argv)
    if program:
        assert "exec_argv" in args, f"{args.command} has no --exec"
    words = getattr(args, "address", None) or getattr(args, "target", None)
    if isinstance(words, list) and hasattr(args, "unix"):
        # The address words as the command reads them (pure: no lookup), so a
        # misspelled subcommand, taken for a host (`wirecat HOST PORT`), fails too.
        from wirecat.cli.common import address_from

        args.udp = getattr(args, "udp", False)
        address_from(words, args)
    return args.handler


SHELL_COMMANDS = [(block, argv) for block in SHELL if not block.errors for argv in wirecat_commands(block)]


def test_the_shell_blocks_have_wirecat_commands() -> None:
    assert len(SHELL_COMMANDS) >= 15, SHELL_COMMANDS


@pytest.mark.parametrize(
    ("block", "argv"), SHELL_COMMANDS, ids=[f"{b.id}:{' '.join(argv)}" for b, argv in SHELL_COMMANDS]
)
def test_shell_command_line_parses(block: Block, argv: list[str]) -> None:
    assert callable(parse_like_the_cli(argv)), block.id


def test_the_command_line_check_can_fail() -> None:
    """A subcommand or flag that does not exist is caught (the check is not vacuous)."""
    from wirecat.errors import UsageError

    for argv in (
        ["conect", "127.0.0.1", "80"],
        ["listen", "--no-such-flag", "9000"],
        ["echo", "0", "--lines=x"],
    ):
        with pytest.raises(UsageError):
            parse_like_the_cli(argv)


# -- sessions that show errors ------------------------------------------------------------------

#: Runs wirecat with a resolver that knows no names (no query leaves the machine).
_NO_DNS = r"""
import socket, sys
_real = socket.getaddrinfo
def _numeric_only(host, port, family=0, type=0, proto=0, flags=0):
    return _real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
socket.getaddrinfo = _numeric_only
from wirecat.cli import main
sys.exit(main(sys.argv[1:]))
"""


def error_sessions() -> list[tuple[Block, list[str], str]]:
    """(block, argv, the error line shown) for each command of an ``<!-- errors -->`` block."""
    found: list[tuple[Block, list[str], str]] = []
    for block in (b for b in SHELL if b.errors):
        lines = block.code.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                argv = shlex.split(line[2:])
                assert argv[0] == "wirecat", f"{block.id}: {line}"
                shown = lines[i + 1] if i + 1 < len(lines) else ""
                found.append((block, argv[1:], shown))
    return found


ERROR_SESSIONS = error_sessions()


def test_the_error_sessions_are_found() -> None:
    assert len(ERROR_SESSIONS) >= 3, ERROR_SESSIONS


@pytest.mark.parametrize(
    ("block", "argv", "shown"), ERROR_SESSIONS, ids=[f"{b.id}:{' '.join(a)}" for b, a, _ in ERROR_SESSIONS]
)
def test_an_error_shown_is_the_error_wirecat_gives(block: Block, argv: list[str], shown: str) -> None:
    # Run for real (the commands shown fail before any socket; the resolver
    # knows no names): the README's words must be wirecat's, line for line.
    result = subprocess.run(
        [sys.executable, "-c", _NO_DNS, *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 2, (block.id, result)
    assert result.stderr.decode().splitlines() == [shown], block.id
