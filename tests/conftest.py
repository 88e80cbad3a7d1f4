"""Shared fixtures: the installed ``wirecat`` as a subprocess, peers, payloads.

Conventions (see docs/ARCHITECTURE.md): loopback only, port 0 wherever the
server can report its port, no sleeps as synchronisation, every process we
start is ended by its PID in teardown.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from wirecat.testing import read_line_matching


def _installed_wirecat() -> str:
    """The console script installed with the Python running the tests.

    Next to this interpreter first (a virtual environment's ``bin``, which
    need not be on PATH: ``.venv/bin/python -m pytest``), then PATH.
    """
    beside = os.path.join(sysconfig.get_path("scripts"), "wirecat")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("wirecat") or ""


WIRECAT = _installed_wirecat()
REQUIRE_PEERS = os.environ.get("WIRECAT_REQUIRE_PEERS") == "1"


def require_peer(name: str) -> str:
    """Path of peer program ``name``; skip without it, fail under WIRECAT_REQUIRE_PEERS=1."""
    path = shutil.which(name)
    if path is None:
        message = f"peer program {name!r} is not installed"
        if REQUIRE_PEERS:
            pytest.fail(message + " (WIRECAT_REQUIRE_PEERS=1)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def wirecat_bin() -> str:
    """The installed console script: tests run what users run."""
    if not WIRECAT:
        pytest.fail("the wirecat command is not installed: pip install -e '.[test]'")
    return WIRECAT


@dataclass
class Proc:
    """A started process, with its pipes; ended by PID at teardown."""

    popen: subprocess.Popen[bytes]

    def listening_port(self, timeout: float = 10.0) -> int:
        """Wait for the ``listening on HOST:PORT`` line on stderr; return PORT."""
        assert self.popen.stderr is not None
        match = read_line_matching(self.popen.stderr, r"listening on .*:(\d+)$", timeout=timeout)
        return int(match.group(1))

    def finish(self, stdin: bytes | None = None, timeout: float = 30.0) -> tuple[int, bytes, bytes]:
        """Send ``stdin`` (then EOF), wait for exit; return (code, stdout, stderr)."""
        if self.popen.stdin is not None and self.popen.stdin.closed:
            self.popen.stdin = None  # closed by the test already: EOF was sent
        out, err = self.popen.communicate(stdin, timeout=timeout)
        return self.popen.returncode, out, err


@pytest.fixture
def spawn() -> Iterator[object]:
    """Start processes with pipes; any still running at teardown is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def _spawn(*argv: str, stdin: int | None = subprocess.PIPE, stdout: object = subprocess.PIPE) -> Proc:
        popen = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)  # type: ignore[arg-type]
        started.append(popen)
        return Proc(popen)

    yield _spawn
    for popen in started:
        if popen.poll() is None:
            popen.kill()
        popen.wait(timeout=10)
        for pipe in (popen.stdin, popen.stdout, popen.stderr):
            if pipe is not None:
                pipe.close()


def run_wirecat(*args: str, stdin: bytes = b"", timeout: float = 30.0) -> subprocess.CompletedProcess[bytes]:
    """Run the installed wirecat to completion."""
    return subprocess.run([WIRECAT, *args], input=stdin, capture_output=True, timeout=timeout, check=False)


def recv_to_eof(sock: socket.socket) -> bytes:
    """Everything ``sock`` receives until the peer's end of stream; a reset counts as that end."""
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def random_payload(size: int, seed: int = 1) -> bytes:
    """Deterministic random bytes that include NUL, CR, LF and invalid UTF-8."""
    import random

    rng = random.Random(seed)
    tricky = b"\x00\r\n\xff\xfe\xc3(\r\n\n"
    body = rng.randbytes(max(0, size - len(tricky)))
    return (tricky + body)[:size]


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


PYTHON = sys.executable
