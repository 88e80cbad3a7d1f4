"""Shared helpers for the benchmarks: finding programs, running them, timing them.

Every process started here is ended by its PID (never by name), and every wait
has a deadline. Readiness is waited for, never slept for: wirecat prints the
port it got, and for peers that cannot, :func:`wait_listening` watches the
kernel's socket table for the LISTEN entry instead of connecting (a connect
would use up a one-shot listener).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

__all__ = [
    "Child",
    "baseline_launcher",
    "compile_wirecat",
    "median",
    "peer_versions",
    "read_port_line",
    "require",
    "wait_listening",
    "wirecat_bin",
]


def wirecat_bin() -> str:
    """The real ``wirecat`` console script, not a version-manager shim.

    A pyenv shim is a bash script that costs about 50 ms before Python even
    starts; timing it would measure pyenv, not wirecat. The script installed
    next to the running interpreter is what a user's PATH points at outside
    pyenv.
    """
    beside = os.path.join(os.path.dirname(sys.executable), "wirecat")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("wirecat")
    if not found:
        sys.exit("benchmarks: wirecat is not installed (pip install -e .)")
    return found


def baseline_launcher(src: str, directory: str) -> str:
    """A console script, in ``directory``, that runs the wirecat whose package is in ``src``.

    For comparing a change with the commit before it in one run (the machine
    is shared and noisy: figures from different runs do not compare):
    ``git worktree add /tmp/wirecat-before COMMIT``, then ``--baseline
    /tmp/wirecat-before/src``. The script is what pip would write, plus the
    path, so the two start the same way; the package is byte-compiled first.
    """
    import compileall

    compileall.compile_dir(os.path.join(src, "wirecat"), quiet=1)
    path = os.path.join(directory, "wirecat-baseline")
    with open(path, "w") as script:
        # pip's console script, word for word (its `import re` included), and the path.
        script.write(
            f"#!{sys.executable}\nimport re\nimport sys\nsys.path.insert(0, {src!r})\n"
            "from wirecat.cli import main\nif __name__ == '__main__':\n"
            "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
            "    sys.exit(main())\n"
        )
    os.chmod(path, 0o755)
    return path


def compile_wirecat() -> None:
    """Byte-compile the wirecat package, as ``pip install`` does, and let children cache.

    With ``PYTHONDONTWRITEBYTECODE=1`` in the environment (as on some CI and
    sandbox machines) an editable install recompiles every changed module at
    every start: several ms per module, which a user's installed copy never
    pays. So compile once here, and let the processes we start write their
    caches if a source changes during the run.
    """
    import compileall
    import importlib.util

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    spec = importlib.util.find_spec("wirecat")
    if spec is not None and spec.submodule_search_locations:
        for directory in spec.submodule_search_locations:
            compileall.compile_dir(directory, quiet=1)


def require(name: str) -> str | None:
    """Path of program ``name``, or None (and a note on stderr) when missing."""
    path = shutil.which(name)
    if path is None:
        print(f"benchmarks: {name} not found, skipping its cases", file=sys.stderr)
    return path


def peer_versions() -> dict[str, str]:
    """One version line per peer program, for the record."""
    probes = {
        "socat": ["socat", "-V"],
        "ncat": ["ncat", "--version"],
        "nc": ["dpkg-query", "-W", "-f", "${Version}", "netcat-openbsd"],
        "iperf3": ["iperf3", "--version"],
        "hyperfine": ["hyperfine", "--version"],
    }
    found: dict[str, str] = {}
    for name, argv in probes.items():
        if shutil.which(argv[0]) is None:
            continue
        try:
            run = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        text = run.stdout + run.stderr
        match = re.search(
            r"(\d+\.\d+(?:\.\d+)?[^\s,]*)", text if name != "socat" else text.split("\n", 1)[-1]
        )
        found[name] = match.group(1) if match else text.strip().splitlines()[0]
    return found


def median(values: Sequence[float]) -> float:
    """Median of ``values``; NaN for none."""
    return statistics.median(values) if values else float("nan")


_LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column


def _listening_ports() -> set[int]:
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == _LISTEN_STATE:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            continue
    return ports


def wait_listening(port: int, child: Child, *, timeout: float = 10.0) -> None:
    """Return once something listens on TCP ``port``; fail early if ``child`` died.

    Raises:
        RuntimeError: ``child`` exited first (port taken?), or the deadline passed.
    """
    deadline = time.monotonic() + timeout
    while port not in _listening_ports():
        if child.exited.is_set():
            raise RuntimeError(f"{child.name} exited ({child.status}) before listening on {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not listen on {port} within {timeout} s")
        # Poll pacing for a program that cannot tell us its port; the deadline bounds it.
        child.exited.wait(0.002)


def read_port_line(stream: IO[bytes], child: Child, *, timeout: float = 10.0) -> int:
    """Read ``listening on HOST:PORT`` from a wirecat listener's stderr; return PORT."""
    from wirecat.testing import read_line_matching

    try:
        match = read_line_matching(stream, r"listening on .*:(\d+)$", timeout=timeout)
    except TimeoutError as exc:
        raise RuntimeError(f"{child.name}: {exc}") from None
    return int(match.group(1))


@dataclass
class Child:
    """A started process, reaped by a thread with ``os.wait4`` for its rusage.

    ``ended`` is the ``time.perf_counter()`` at which wait4 returned, so the
    wall time of a transfer ends when the receiver really exited, not when a
    polling loop noticed.
    """

    name: str
    popen: subprocess.Popen[bytes]
    exited: threading.Event = field(default_factory=threading.Event)
    status: int | None = None
    ended: float = 0.0
    cpu: float = 0.0
    _reaper: threading.Thread | None = None

    @classmethod
    def start(cls, name: str, argv: Sequence[str], **popen_args: object) -> Child:
        """Start ``argv`` (in its own process group, so a kill reaches nothing else)."""
        popen = subprocess.Popen(list(argv), start_new_session=True, **popen_args)  # type: ignore[call-overload]
        child = cls(name, popen)
        child._reaper = threading.Thread(target=child._reap, name=f"reap-{name}", daemon=True)
        child._reaper.start()
        return child

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def _reap(self) -> None:
        _, status, usage = os.wait4(self.popen.pid, 0)
        self.ended = time.perf_counter()
        self.cpu = usage.ru_utime + usage.ru_stime
        self.status = os.waitstatus_to_exitcode(status)
        # Tell Popen it is reaped, so it never waits on a recycled PID.
        self.popen.returncode = self.status
        self.exited.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the exit; True if it exited."""
        return self.exited.wait(timeout)

    def kill(self) -> None:
        """SIGKILL this process by PID (if still running) and reap it."""
        if not self.exited.is_set():
            try:
                os.kill(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.exited.wait(10)
