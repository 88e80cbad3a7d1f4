#!/usr/bin/env python3
"""One-way bulk transfer over loopback: wirecat against socat, ncat, nc and iperf3.

    python benchmarks/bulk.py --size 2G --reps 3

Each case sends SIZE bytes from a client (``… connect 127.0.0.1 PORT``) to a
listener writing to ``/dev/null``, in two input modes:

* ``pipe``: ``head -c SIZE /dev/zero | client`` (stdin is a pipe);
* ``file``: ``client < FILE`` (stdin is a regular file of SIZE zeros, written
  once to a temporary directory so that it sits in the page cache; removed
  at the end).

``iperf3`` single stream (``-n SIZE``) is the machine's ceiling: no stdin, no
stdout, just a socket.

Measured per run: wall time from starting the client until the listener has
exited (so a client's start-up counts, as it would in a script), GB/s
(GB = 10^9 bytes), and CPU seconds per GB: user+sys of the client and the
listener (``os.wait4`` rusage; ``head`` is not counted, it is the same for
every case). A first, untimed round checks that every listener really
received SIZE bytes (its stdout goes to a pipe that is counted); the timed
rounds write to ``/dev/null``. Cases are interleaved round by round, and the
median of the rounds is reported, with ratios of wirecat to the others.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (
    Child,
    baseline_launcher,
    compile_wirecat,
    median,
    peer_versions,
    read_port_line,
    require,
    wait_listening,
    wirecat_bin,
)

from wirecat.testing import free_port

HOST = "127.0.0.1"  # loopback only
GB = 1e9


@dataclass(frozen=True)
class Case:
    """One tool's client and listener command lines.

    ``listener(port)`` and ``client(port)`` build argv; a listener given
    port 0 reports its port on stderr (wirecat), others get a free port.
    """

    name: str
    listener: Callable[[int], list[str]]
    client: Callable[[int], list[str]]
    reports_port: bool = False


def wirecat_case(name: str, wirecat: list[str]) -> Case:
    """wirecat (or a prototype of it, run as ``wirecat``) with its defaults."""
    return Case(
        name,
        lambda p: [*wirecat, "listen", HOST, str(p)],
        lambda p: [*wirecat, "connect", HOST, str(p)],
        reports_port=True,
    )


def cases(wirecat: list[str], candidate: list[str] | None = None) -> list[Case]:
    """The tools compared, each used the way its manual suggests for a one-way copy."""
    found = [wirecat_case("wirecat", wirecat)]
    if candidate:
        found.append(wirecat_case("candidate", candidate))
    if require("socat"):
        for label, extra in (("socat", []), ("socat -b 262144", ["-b", "262144"])):
            found.append(Case(label, _socat_listener(extra), _socat_client(extra)))
    if require("ncat"):
        found.append(
            Case(
                "ncat",
                lambda p: ["ncat", "--recv-only", "-l", HOST, str(p)],
                lambda p: ["ncat", "--send-only", HOST, str(p)],
            )
        )
    if require("nc"):
        # netcat-openbsd: -N sends FIN at end of stdin (otherwise it never ends);
        # -d keeps the listener from reading its stdin.
        found.append(
            Case(
                "nc",
                lambda p: ["nc", "-d", "-l", HOST, str(p)],
                lambda p: ["nc", "-N", HOST, str(p)],
            )
        )
    return found


def _socat_listener(extra: list[str]) -> Callable[[int], list[str]]:
    return lambda p: ["socat", *extra, "-u", f"TCP-LISTEN:{p},bind={HOST},reuseaddr", "STDOUT"]


def _socat_client(extra: list[str]) -> Callable[[int], list[str]]:
    return lambda p: ["socat", *extra, "-u", "STDIN", f"TCP:{HOST}:{p}"]


@dataclass
class Run:
    """One timed transfer."""

    wall: float
    cpu: float
    received: int | None = None  # counted bytes (verification round only)
    reported_gbps: float | None = None  # iperf3's own figure


@dataclass
class Series:
    """All runs of one case in one mode."""

    case: str
    mode: str
    runs: list[Run] = field(default_factory=list)

    def gbps(self, size: int) -> float:
        """Median GB/s by wall time."""
        return median([size / r.wall / GB for r in self.runs])

    def cpu_per_gb(self, size: int) -> float:
        """Median CPU seconds per GB."""
        return median([r.cpu / (size / GB) for r in self.runs])

    def reported(self) -> float | None:
        """Median of the tool's own GB/s figure, if it gives one."""
        values = [r.reported_gbps for r in self.runs if r.reported_gbps is not None]
        return median(values) if values else None


def _count_into(fd: int, total: list[int]) -> None:
    """Drain ``fd`` (a pipe) and count its bytes, via splice into /dev/null."""
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        while True:
            try:
                n = os.splice(fd, sink, 1 << 20)
            except OSError:
                n = len(os.read(fd, 1 << 20))  # kernel without splice to /dev/null
            if n == 0:
                return
            total[0] += n
    finally:
        os.close(sink)


def _timeout_for(size: int) -> float:
    # Generous but bounded: 60 s plus 50 MB/s, far slower than any tool here.
    return 60.0 + size / 50e6


def run_transfer(case: Case, mode: str, size: int, source_file: str, *, verify: bool) -> Run:
    """Run one transfer of ``size`` bytes; every process is ended by PID before returning."""
    started: list[Child] = []
    counted = [0]
    counter: threading.Thread | None = None
    try:
        port = 0 if case.reports_port else free_port(HOST)
        stdout_target: int = subprocess.PIPE if verify else subprocess.DEVNULL
        listener = Child.start(
            f"{case.name} listener",
            case.listener(port),
            stdin=subprocess.DEVNULL,
            stdout=stdout_target,
            stderr=subprocess.PIPE if case.reports_port else subprocess.DEVNULL,
        )
        started.append(listener)
        if case.reports_port:
            assert listener.popen.stderr is not None
            port = read_port_line(listener.popen.stderr, listener)
        else:
            wait_listening(port, listener)
        if verify:
            assert listener.popen.stdout is not None
            counter = threading.Thread(
                target=_count_into, args=(listener.popen.stdout.fileno(), counted), daemon=True
            )
            counter.start()

        begin = time.perf_counter()
        if mode == "pipe":
            head = Child.start("head", ["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE)
            started.append(head)
            assert head.popen.stdout is not None
            client = Child.start(
                f"{case.name} client",
                case.client(port),
                stdin=head.popen.stdout,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            head.popen.stdout.close()  # only the client holds the read end now
        else:
            with open(source_file, "rb") as src:
                client = Child.start(
                    f"{case.name} client",
                    case.client(port),
                    stdin=src,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
        started.append(client)

        deadline = _timeout_for(size)
        for child in (listener, client):
            if not child.wait(max(1.0, deadline - (time.perf_counter() - begin))):
                raise RuntimeError(f"{child.name} still running after {deadline:.0f} s")
        wall = listener.ended - begin
        problems = [f"{c.name} exited {c.status}" for c in (listener, client) if c.status != 0]
        if problems:
            assert client.popen.stderr is not None
            raise RuntimeError(
                "; ".join(problems) + f": {client.popen.stderr.read().decode(errors='replace')}"
            )
        received: int | None = None
        if counter is not None:
            counter.join(30)
            received = counted[0]
            if received != size:
                raise RuntimeError(f"{case.name} ({mode}): listener wrote {received} bytes, expected {size}")
        return Run(wall=wall, cpu=listener.cpu + client.cpu, received=received)
    finally:
        for child in reversed(started):
            child.kill()
            for stream in (child.popen.stdout, child.popen.stderr):
                if stream is not None:
                    stream.close()


def run_iperf3(size: int) -> Run:
    """``iperf3`` single stream, ``-n SIZE``: the machine's loopback ceiling."""
    started: list[Child] = []
    try:
        port = free_port(HOST)
        server = Child.start(
            "iperf3 server",
            ["iperf3", "-s", "-1", "-B", HOST, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(server)
        wait_listening(port, server)
        begin = time.perf_counter()
        client = Child.start(
            "iperf3 client",
            ["iperf3", "-c", HOST, "-p", str(port), "-n", str(size), "-J"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        started.append(client)
        assert client.popen.stdout is not None
        report = client.popen.stdout.read()  # iperf3 writes its JSON at the end
        deadline = _timeout_for(size)
        for child in (server, client):
            if not child.wait(max(1.0, deadline - (time.perf_counter() - begin))):
                raise RuntimeError(f"{child.name} still running after {deadline:.0f} s")
        if client.status != 0:
            raise RuntimeError(f"iperf3 client exited {client.status}")
        end = json.loads(report)["end"]
        # iperf3's receiver total can miss the last few MB still in flight when
        # the client reports the end; what was sent is the check.
        sent = int(end["sum_sent"]["bytes"])
        received = int(end["sum_received"]["bytes"])
        if sent < size:
            raise RuntimeError(f"iperf3 sent {sent} bytes, expected {size}")
        return Run(
            wall=max(server.ended, client.ended) - begin,
            cpu=server.cpu + client.cpu,
            received=received,
            reported_gbps=end["sum_received"]["bits_per_second"] / 8 / GB,
        )
    finally:
        for child in reversed(started):
            child.kill()
            if child.popen.stdout is not None:
                child.popen.stdout.close()


def make_source(directory: str, size: int) -> str:
    """A regular file of ``size`` zero bytes, really written (not sparse), so it is in page cache."""
    path = os.path.join(directory, "zeros.bin")
    block = bytes(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            left -= f.write(block[: min(left, len(block))])
    return path


def parse_size(text: str) -> int:
    """``2G``, ``512M``, ``100K`` or a plain byte count (binary units: 2G = 2 GiB)."""
    match = re.fullmatch(r"(\d+)([KMG]?)i?B?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 2G)")
    return int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2).upper()]


#: (input mode, other tool, least ratio of wirecat's GB/s to the other's), from issue 2.
TARGETS = [
    ("pipe", "socat -b 262144", 1.0),
    ("pipe", "nc", 1.3),
    ("file", "nc", 1.5),
    ("file", "iperf3", 1.0),  # iperf3's own figure: excludes its start-up, so the stricter one
]


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}×"


def report(results: dict[tuple[str, str], Series], size: int, modes: Sequence[str]) -> str:
    """The results as a Markdown table plus the ratios the targets are stated in."""
    lines = [
        f"Size {size} bytes ({size / 2**30:g} GiB), medians of {max(len(s.runs) for s in results.values())} "
        "rounds; GB = 10^9 bytes.",
        "",
        "| input | tool | wall s | GB/s | CPU s/GB | runs (GB/s) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for (case, mode), series in results.items():
        each = ", ".join(f"{size / r.wall / GB:.2f}" for r in series.runs)
        wall = median([r.wall for r in series.runs])
        extra = ""
        if series.reported() is not None:
            extra = f" (iperf3's own figure: {series.reported():.2f})"
        lines.append(
            f"| {mode} | {case} | {wall:.2f} | {series.gbps(size):.2f} | "
            f"{series.cpu_per_gb(size):.2f} | {each}{extra} |"
        )
    ceiling = results.get(("iperf3", "-"))
    iperf_wall = ceiling.gbps(size) if ceiling else None
    iperf_own = ceiling.reported() if ceiling else None
    lines += ["", "Ratios (GB/s ÷ GB/s, same run):", ""]
    verdicts: list[str] = []
    for name in ("wirecat", "candidate"):
        for mode in modes:
            ours = results.get((name, mode))
            if ours is None:
                continue
            mine = ours.gbps(size)
            parts = []
            for other in ("socat", "socat -b 262144", "ncat", "nc"):
                theirs = results.get((other, mode))
                if theirs is not None:
                    parts.append(f"vs {other} {_ratio(mine, theirs.gbps(size))}")
            parts.append(
                f"vs iperf3 {_ratio(mine, iperf_own)} (its own figure), {_ratio(mine, iperf_wall)} (wall)"
            )
            lines.append(f"- {name}, {mode}: " + "; ".join(parts))
            for target_mode, other, wanted in TARGETS:
                if target_mode != mode:
                    continue
                if other == "iperf3":
                    theirs_gbps = iperf_own
                else:
                    found = results.get((other, mode))
                    theirs_gbps = found.gbps(size) if found else None
                if theirs_gbps:
                    got = mine / theirs_gbps
                    verdict = "met" if got >= wanted else "NOT met"
                    verdicts.append(f"- {name}, {mode}: ≥ {wanted:g}× {other}: {got:.2f}× — {verdict}")
    if verdicts:
        lines += ["", "Targets (issue 2):", "", *verdicts]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print a Markdown report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=parse_size, default=parse_size("2G"), help="bytes per transfer (2G)")
    parser.add_argument("--reps", type=int, default=3, help="timed rounds per case (3)")
    parser.add_argument("--modes", default="pipe,file", help="input modes: pipe,file")
    parser.add_argument("--tools", default="", help="only these tools (comma-separated names)")
    parser.add_argument("--no-verify", action="store_true", help="skip the counted first round")
    parser.add_argument("--no-iperf3", action="store_true", help="skip the iperf3 ceiling")
    parser.add_argument(
        "--wirecat",
        metavar="CMD",
        help="the wirecat command to time (default: the installed script); e.g. 'python -m wirecat' "
        "with PYTHONPATH pointing at a prototype",
    )
    parser.add_argument(
        "--candidate",
        metavar="CMD",
        help="a second wirecat command to time in the same run, e.g. a prototype: "
        "'env PYTHONPATH=/tmp/proto python -m wirecat'",
    )
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        help="time the wirecat whose package is in SRC (a worktree's src/) as the candidate",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every run as JSON")
    args = parser.parse_args(argv)
    if args.baseline:
        launcher = baseline_launcher(args.baseline, tempfile.mkdtemp(prefix="wirecat-baseline-"))
        args.candidate = shlex.quote(launcher)

    size: int = args.size
    compile_wirecat()
    modes = [m for m in args.modes.split(",") if m]
    wirecat = shlex.split(args.wirecat) if args.wirecat else [wirecat_bin()]
    chosen = cases(wirecat, shlex.split(args.candidate) if args.candidate else None)
    if args.tools:
        wanted = {t.strip() for t in args.tools.split(",")}
        chosen = [c for c in chosen if c.name in wanted]
    use_iperf = not args.no_iperf3 and require("iperf3") is not None

    print(f"# bulk: {size} bytes, {args.reps} rounds, wirecat = {shlex.join(wirecat)}", file=sys.stderr)
    print(f"# peers: {peer_versions()}", file=sys.stderr)
    results: dict[tuple[str, str], Series] = {}
    for mode in modes:
        for case in chosen:
            results[(case.name, mode)] = Series(case.name, mode)
    if use_iperf:
        results[("iperf3", "-")] = Series("iperf3", "-")

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="wirecat-bench-") as tmp:
        source = make_source(tmp, size) if "file" in modes else ""
        rounds = ([0] if not args.no_verify else []) + list(range(1, args.reps + 1))
        for rnd in rounds:
            verify = rnd == 0
            label = "verify" if verify else f"round {rnd}"
            for mode in modes:
                for case in chosen:
                    key = (case.name, mode)
                    try:
                        run = run_transfer(case, mode, size, source, verify=verify)
                    except RuntimeError as exc:
                        failures.append(f"{label} {mode} {case.name}: {exc}")
                        print(f"{label:8} {mode:4} {case.name:16} FAILED: {exc}", file=sys.stderr)
                        continue
                    load = os.getloadavg()[0]
                    print(
                        f"{label:8} {mode:4} {case.name:16} {run.wall:6.2f} s "
                        f"{size / run.wall / GB:5.2f} GB/s  cpu {run.cpu:5.2f} s  load {load:.2f}"
                        + (f"  received {run.received}" if run.received is not None else ""),
                        file=sys.stderr,
                    )
                    if not verify:
                        results[key].runs.append(run)
            if use_iperf:
                try:
                    run = run_iperf3(size)
                except RuntimeError as exc:
                    failures.append(f"{label} iperf3: {exc}")
                    print(f"{label:8} -    iperf3           FAILED: {exc}", file=sys.stderr)
                    continue
                print(
                    f"{label:8} -    iperf3           {run.wall:6.2f} s {size / run.wall / GB:5.2f} GB/s  "
                    f"cpu {run.cpu:5.2f} s  own {run.reported_gbps:.2f} GB/s",
                    file=sys.stderr,
                )
                if not verify:
                    results[("iperf3", "-")].runs.append(run)

    results = {k: v for k, v in results.items() if v.runs}
    print(report(results, size, modes))
    if failures:
        print("\nFailed runs (left out of the medians):\n")
        print("\n".join(f"- {f}" for f in failures))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "size": size,
                    "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                    "runs": [
                        {"tool": s.case, "mode": s.mode, **r.__dict__}
                        for s in results.values()
                        for r in s.runs
                    ],
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
