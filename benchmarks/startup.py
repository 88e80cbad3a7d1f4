#!/usr/bin/env python3
"""Start-up cost: ``wirecat --version`` and a one-line ``wirecat connect`` round trip.

    python benchmarks/startup.py --runs 30

Two measurements, each against nc, ncat, socat and bare Python:

* ``version``: a process that starts and exits (``wirecat --version``,
  ``socat -V``, ``python -c pass`` ...). Timed by ``hyperfine -N`` when it is
  installed, else by a loop of subprocess runs here.
* ``connect``: the client connects to a listener on 127.0.0.1, sends
  ``hello\\n`` from stdin, half-closes, prints the reply and exits; wall time
  from spawning the client to its exit. The listener is a thread in this
  process that reads one line, replies and closes, so only the client is
  timed. Tools are interleaved run by run, and the median is reported.

Python's start-up depends on what the interpreter's ``site`` runs at start:
every ``.pth`` file in site-packages is executed. So wirecat is also timed
from a clean virtual environment made here (``python -m venv
--without-pip``, wirecat's source on its path by a ``.pth`` file, the same
console script): that is what a user's fresh ``pip install`` gets, free of
whatever else this machine's site-packages does at start. Both are reported.
Last, ``-X importtime`` shows which imports the time goes to.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import baseline_launcher, compile_wirecat, median, peer_versions, wirecat_bin

HOST = "127.0.0.1"  # loopback only
TARGET_VERSION_MS = 40.0
TARGET_CONNECT_MS = 60.0
LINE = b"hello\n"
REPLY_PREFIX = b"reply: "


def clean_venv(directory: str, wirecat_script: str) -> tuple[str, str]:
    """A virtual environment with only wirecat in it; returns (python, wirecat script).

    No pip, no site-packages of the base interpreter: just a ``.pth`` file
    putting wirecat's source on the path, and a copy of the installed console
    script with its first line pointing at the venv's python.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", directory], check=True, timeout=120)
    python = os.path.join(directory, "bin", "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    with open(os.path.join(site, "wirecat.pth"), "w") as f:
        f.write(_wirecat_src() + "\n")
    script = os.path.join(directory, "bin", "wirecat")
    with open(wirecat_script) as src, open(script, "w") as dst:
        src.readline()  # the installed shebang
        dst.write(f"#!{python}\n" + src.read())
    os.chmod(script, 0o755)
    return python, script


def import_costs(argv: Sequence[str], *, stdin: bytes | None, runs: int = 5) -> dict[str, float]:
    """Top-level imports of ``argv`` (a Python program) and their cumulative ms, best of ``runs``.

    ``-X importtime`` slows imports down somewhat; the figures are for
    ranking, not for adding up to the wall time.
    """
    best: dict[str, float] | None = None
    for _ in range(runs):
        run = subprocess.run(
            [argv[0], "-X", "importtime", *argv[1:]],
            input=stdin,
            capture_output=True,
            timeout=30,
            check=False,
        )
        found: dict[str, float] = {}
        for line in run.stderr.decode(errors="replace").splitlines():
            # "import time:  self | cumulative | name"; top level = no indentation before name
            parts = line.split("|")
            if len(parts) == 3 and line.startswith("import time:") and parts[2][1:2] != " ":
                try:
                    found[parts[2].strip()] = int(parts[1]) / 1000
                except ValueError:
                    continue  # the header line
        if best is None or sum(found.values()) < sum(best.values()):
            best = found
    return best or {}


def _wirecat_src() -> str:
    """The directory holding the ``wirecat`` package, for PYTHONPATH under ``-S``."""
    spec = importlib.util.find_spec("wirecat")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("benchmarks: cannot find the wirecat package")
    return os.path.dirname(next(iter(spec.submodule_search_locations)))


class ReplyServer:
    """A listener thread: for each client, read one line, send ``reply: LINE``, close.

    Each connection is served in its own short thread so a slow client never
    delays the next run's accept.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.served = 0
        self._thread = threading.Thread(target=self._accept_loop, name="reply-server", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by close()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while b"\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                line = data.split(b"\n", 1)[0]
                conn.sendall(REPLY_PREFIX + line + b"\n")
                self.served += 1
            except OSError:
                pass  # the client's run fails its own check

    def close(self) -> None:
        """Stop accepting."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(5)


def time_run(argv: Sequence[str], *, stdin: bytes | None, expect: bytes | None) -> float:
    """Wall seconds from spawning ``argv`` to its exit, with ``stdin`` fed in full.

    Raises:
        RuntimeError: non-zero exit, a hang past 15 s (killed by PID), or a
            missing ``expect`` in its output.
    """
    begin = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(stdin, timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()  # by PID: this process only
        proc.communicate()
        raise RuntimeError(f"{' '.join(argv)}: still running after 15 s") from None
    elapsed = time.perf_counter() - begin
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {err.decode(errors='replace')}")
    if expect is not None and expect not in out:
        raise RuntimeError(f"{' '.join(argv)}: no reply; stdout {out!r}, stderr {err!r}")
    return elapsed


def loop_medians(
    commands: dict[str, list[str]],
    runs: int,
    *,
    stdin: bytes | None = None,
    expect: bytes | None = None,
    warmup: int = 3,
) -> dict[str, list[float]]:
    """Run every command ``warmup + runs`` times, interleaved; return the timed runs (s)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(warmup + runs):
        for name, argv in commands.items():
            elapsed = time_run(argv, stdin=stdin, expect=expect)
            if i >= warmup:
                times[name].append(elapsed)
    return times


def hyperfine_medians(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]] | None:
    """Time each command with ``hyperfine -N``; None if hyperfine is missing."""
    hyperfine = shutil.which("hyperfine")
    if hyperfine is None:
        return None
    import shlex

    lines = [shlex.join(argv) for argv in commands.values()]
    with tempfile.TemporaryDirectory(prefix="wirecat-bench-") as tmp:
        export = os.path.join(tmp, "hyperfine.json")
        subprocess.run(
            [
                hyperfine,
                "-N",
                "--warmup",
                "3",
                "--runs",
                str(runs),
                "--export-json",
                export,
                "--style",
                "none",
                *lines,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
        with open(export) as f:
            results = json.load(f)["results"]
    return {name: result["times"] for name, result in zip(commands, results, strict=True)}


def table(
    title: str, times: dict[str, list[float]], target_ms: float | None, target_rows: Sequence[str]
) -> str:
    """A Markdown table of medians (ms), min and spread."""
    lines = [
        f"### {title}",
        "",
        "| command | median ms | min ms | max ms | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in times.items():
        ms = [v * 1000 for v in values]
        mark = ""
        if target_ms is not None and name in target_rows:
            mark = " ✅" if median(ms) <= target_ms else " ❌"
        lines.append(f"| `{name}` | {median(ms):.1f}{mark} | {min(ms):.1f} | {max(ms):.1f} | {len(ms)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measurements and print Markdown tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="timed runs per command (30)")
    parser.add_argument("--no-hyperfine", action="store_true", help="time --version with the built-in loop")
    parser.add_argument(
        "--baseline", metavar="SRC", help="also time the wirecat whose package is in SRC (a worktree's src/)"
    )
    args = parser.parse_args(argv)

    wirecat = wirecat_bin()
    python = sys.executable
    compile_wirecat()
    print(f"# startup: {args.runs} runs, wirecat = {wirecat}, python = {python}", file=sys.stderr)
    print(f"# peers: {peer_versions()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="wirecat-bench-") as tmp:
        venv_python, venv_wirecat = clean_venv(os.path.join(tmp, "venv"), wirecat)
        baseline = baseline_launcher(args.baseline, tmp) if args.baseline else None
        return measure(args, wirecat, python, venv_wirecat, venv_python, baseline)


def measure(
    args: argparse.Namespace,
    wirecat: str,
    python: str,
    venv_wirecat: str,
    venv_python: str,
    baseline: str | None = None,
) -> int:
    """Time everything and print the report; ``baseline`` is a second wirecat to compare with."""
    # --- start and exit ---------------------------------------------------
    version: dict[str, list[str]] = {
        "wirecat --version": [wirecat, "--version"],
        "wirecat --version (clean venv)": [venv_wirecat, "--version"],
        **({"wirecat --version (baseline)": [baseline, "--version"]} if baseline else {}),
        "python -c pass": [python, "-c", "pass"],
        "python -c pass (clean venv)": [venv_python, "-c", "pass"],
        "python -S -c pass": [python, "-S", "-c", "pass"],
    }
    peers = {"socat -V": ["socat", "-V"], "ncat --version": ["ncat", "--version"], "nc -h": ["nc", "-h"]}
    version.update({name: peer for name, peer in peers.items() if shutil.which(peer[0])})
    version["true"] = ["true"]
    version_times = None if args.no_hyperfine else hyperfine_medians(version, args.runs)
    how = "hyperfine -N"
    if version_times is None:
        how = "subprocess loop"
        version_times = loop_medians(version, args.runs)

    # --- connect, send a line, get the reply ------------------------------
    server = ReplyServer()
    port = str(server.port)
    connect: dict[str, list[str]] = {
        "wirecat connect": [wirecat, "connect", HOST, port],
        "wirecat connect (clean venv)": [venv_wirecat, "connect", HOST, port],
        **({"wirecat connect (baseline)": [baseline, "connect", HOST, port]} if baseline else {}),
    }
    if shutil.which("nc"):
        connect["nc -N"] = ["nc", "-N", HOST, port]
    if shutil.which("ncat"):
        connect["ncat"] = ["ncat", HOST, port]
    if shutil.which("socat"):
        connect["socat"] = ["socat", "-", f"TCP:{HOST}:{port}"]
    connect["python socket client (clean venv)"] = [
        venv_python,
        "-c",
        "import socket,sys\n"
        f"s=socket.create_connection(('{HOST}',{port}))\n"
        "s.sendall(sys.stdin.buffer.read());s.shutdown(socket.SHUT_WR)\n"
        "while (b:=s.recv(65536)):sys.stdout.buffer.write(b)\n",
    ]
    try:
        connect_times = loop_medians(
            connect,
            args.runs,
            stdin=LINE,
            expect=REPLY_PREFIX + LINE,
        )
        imports = {
            "--version": import_costs([venv_python, venv_wirecat, "--version"], stdin=None),
            "connect": import_costs([venv_python, venv_wirecat, "connect", HOST, port], stdin=LINE),
        }
    finally:
        server.close()

    print(f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')}, load average {os.getloadavg()[0]:.2f}.\n")
    targets_v = ["wirecat --version", "wirecat --version (clean venv)"]
    targets_c = ["wirecat connect", "wirecat connect (clean venv)"]
    print(table(f"Start and exit ({how}, {args.runs} runs)", version_times, TARGET_VERSION_MS, targets_v))
    print()
    print(
        table(
            f"Connect, send one line, print the reply (subprocess loop, {args.runs} runs)",
            connect_times,
            TARGET_CONNECT_MS,
            targets_c,
        )
    )
    print()
    print("### Where the time goes (clean venv, `-X importtime`, top-level imports, best of 5)")
    print()
    for name, found in imports.items():
        total = sum(found.values())
        top = ", ".join(f"{mod} {ms:.1f}" for mod, ms in sorted(found.items(), key=lambda kv: -kv[1])[:8])
        print(f"- `wirecat {name}`: {total:.1f} ms of imports; ms by top-level import: {top}")
    print()
    for name, times, target in (
        *((n, version_times, TARGET_VERSION_MS) for n in targets_v),
        *((n, connect_times, TARGET_CONNECT_MS) for n in targets_c),
    ):
        ms = median(times[name]) * 1000
        print(f"- `{name}`: {ms:.1f} ms (target ≤ {target:g} ms): {'met' if ms <= target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
