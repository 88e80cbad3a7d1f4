#!/usr/bin/env python3
"""Request/response echo: wirecat echo against the usual Python designs and the C tools.

    python benchmarks/echo.py                    # 1, 10, 100 connections × 64 B, 16 KiB
    python benchmarks/echo.py --seconds 5 --reps 3

A load client written in C (``loadgen.c``, compiled here with the system's
``cc``) holds N connections; each sends a message of SIZE bytes, waits for
all of it to come back, and sends the next (one message in flight per
connection). It reports messages/s and the p50/p99 latency of a message.

Servers, all in the same run, rounds interleaved:

* ``wirecat`` -- ``wirecat echo 0`` (uvloop, the default);
* ``wirecat (asyncio loop)`` -- the same with ``WIRECAT_LOOP=asyncio``;
* ``uvloop-protocol`` -- the fastest pure-Python design (the target);
* ``asyncio-streams`` -- ``asyncio.start_server`` on the stdlib loop;
* ``uvloop-streams`` -- the same on uvloop;
* ``c-epoll`` -- ``loadgen --server``, one C thread with epoll: not a
  competitor but a check that the load client is not the bottleneck (it must
  drive this server harder than any Python one);
* ``socat`` (``fork``, a process per connection) and ``ncat`` (``-k --exec
  /bin/cat``) for scale, at 1 and 10 connections.

Server and client are pinned to different CPUs with ``taskset`` where there
are two or more (the machine is shared; pinning cuts the noise of the
scheduler moving them around). The server's CPU time per message is read
from ``/proc/PID/stat`` around each run: where the server is the bottleneck
it is the real cost of a message, and the most stable figure here.

Loopback only. Every run stops by itself after WARMUP + SECONDS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Child,
    baseline_launcher,
    median,
    peer_versions,
    read_port_line,
    wait_listening,
    wirecat_bin,
)

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")
#: Servers that fork a process per connection.
FORKING = {"socat", "ncat"}


def build_loadgen(directory: Path) -> Path:
    """Compile loadgen.c; return the binary's path."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        sys.exit("benchmarks: a C compiler (cc or gcc) is needed to build the load client")
    binary = directory / "loadgen"
    subprocess.run([compiler, "-O2", "-o", str(binary), str(HERE / "loadgen.c")], check=True)
    return binary


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


class Server:
    """One server under test: how to start it and learn its port."""

    def __init__(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, *, reports_port: bool
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.reports_port = reports_port

    def start(self, cpu: int | None) -> tuple[Child, int]:
        from wirecat.testing import free_port

        port = 0 if self.reports_port else free_port()
        argv = [*pin(cpu), *(a.replace("{port}", str(port)) for a in self.argv)]
        env = {**os.environ, **(self.env or {})}
        child = Child.start(self.name, argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            if self.reports_port:
                assert child.popen.stderr is not None
                port = read_port_line(child.popen.stderr, child)
            else:
                wait_listening(port, child)
        except BaseException:
            child.kill()
            raise
        return child, port


def servers(loadgen: Path, *, with_peers: bool, baseline: str | None = None) -> list[Server]:
    py = sys.executable
    wc = wirecat_bin()
    ref = str(HERE / "reference_servers.py")
    found = [
        Server("wirecat", [wc, "echo", "0", "--max-conns", "10000"], reports_port=True),
        *(
            [Server("wirecat (baseline)", [baseline, "echo", "0", "--max-conns", "10000"], reports_port=True)]
            if baseline
            else []
        ),
        Server(
            "wirecat (asyncio loop)",
            [wc, "echo", "0", "--max-conns", "10000"],
            {"WIRECAT_LOOP": "asyncio"},
            reports_port=True,
        ),
        Server("uvloop-protocol", [py, ref, "uvloop-protocol"], reports_port=True),
        Server("uvloop-streams", [py, ref, "uvloop-streams"], reports_port=True),
        Server("asyncio-streams", [py, ref, "asyncio-streams"], reports_port=True),
        Server("c-epoll", [str(loadgen), "--server", "0"], reports_port=True),
    ]
    if with_peers and shutil.which("socat"):
        found.append(
            Server(
                "socat",
                ["socat", "TCP4-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", "PIPE"],
                reports_port=False,
            )
        )
    if with_peers and shutil.which("ncat"):
        found.append(
            Server(
                "ncat", ["ncat", "-l", "-k", "127.0.0.1", "{port}", "--exec", "/bin/cat"], reports_port=False
            )
        )
    return found


def measure(
    server: Server,
    loadgen: Path,
    conns: int,
    size: int,
    seconds: float,
    warmup: float,
    cpus: tuple[int | None, int | None],
) -> dict[str, float]:
    """One run: start the server, load it, stop it; the loadgen's figures plus server CPU."""
    child, port = server.start(cpus[0])
    try:
        before = cpu_seconds(child.pid)
        run = subprocess.run(
            [*pin(cpus[1]), str(loadgen), str(port), str(conns), str(size), str(seconds), str(warmup)],
            capture_output=True,
            text=True,
            timeout=seconds + warmup + 60,
            check=False,
        )
        after = cpu_seconds(child.pid)
    finally:
        # socat and ncat fork per connection: a whole-group kill ends the children too.
        try:
            os.killpg(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not child.wait(10):
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
    if run.returncode != 0 or not run.stdout.strip():
        return {"error": 1.0}
    figures: dict[str, float] = json.loads(run.stdout)
    figures["cpu_us_per_msg"] = (after - before) * 1e6 / max(1, figures["all_messages"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first (default 0.5)")
    parser.add_argument("--reps", type=int, default=1, help="rounds; medians are reported (default 1)")
    parser.add_argument("--conns", default="1,10,100", help="connection counts (default 1,10,100)")
    parser.add_argument("--sizes", default="64,16384", help="message sizes in bytes (default 64,16384)")
    parser.add_argument("--servers", default="", help="comma-separated subset of server names")
    parser.add_argument("--no-peers", action="store_true", help="leave out socat and ncat")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to CPUs")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument(
        "--baseline", metavar="SRC", help="also time the wirecat whose package is in SRC (a worktree's src/)"
    )
    args = parser.parse_args()

    conns_list = [int(c) for c in args.conns.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    cpus: tuple[int | None, int | None] = (None, None)
    if not args.no_pin and shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        cpus = (1, 0)
    with tempfile.TemporaryDirectory(prefix="wirecat-echo-") as tmp:
        loadgen = build_loadgen(Path(tmp))
        baseline = baseline_launcher(args.baseline, tmp) if args.baseline else None
        chosen = servers(loadgen, with_peers=not args.no_peers, baseline=baseline)
        if args.servers:
            wanted = set(args.servers.split(","))
            chosen = [s for s in chosen if s.name in wanted]
        print(
            f"# echo: {args.seconds:g} s per run after {args.warmup:g} s warm-up, {args.reps} round(s),"
            f" server on CPU {cpus[0]}, client on CPU {cpus[1]}"
        )
        print(f"# peers: {peer_versions()}")
        results: dict[tuple[str, int, int], list[dict[str, float]]] = {}
        for rep in range(args.reps):
            for size in sizes:
                for conns in conns_list:
                    for server in chosen:
                        # Process-per-connection servers at 100 connections measure fork(), not echo.
                        if server.name in FORKING and conns > 10:
                            continue
                        figures = measure(server, loadgen, conns, size, args.seconds, args.warmup, cpus)
                        results.setdefault((server.name, conns, size), []).append(figures)
                        line = progress_line(rep, size, conns, server.name, figures)
                        print(line, file=sys.stderr, flush=True)
        if args.json:
            args.json.write_text(
                json.dumps({f"{k[0]}|{k[1]}|{k[2]}": v for k, v in results.items()}, indent=1)
            )
        report(results, chosen, conns_list, sizes)


def progress_line(rep: int, size: int, conns: int, name: str, figures: dict[str, float]) -> str:
    """One line per run, on stderr, as the benchmark goes."""
    rate, p50, p99 = (figures.get(k, float("nan")) for k in ("rate", "p50_us", "p99_us"))
    cpu = figures.get("cpu_us_per_msg", float("nan"))
    return (
        f"round {rep + 1}  {size:>6} B  {conns:>4} conns  {name:<24} {rate:>10.0f} msg/s"
        f"  p50 {p50:>6.0f} us  p99 {p99:>6.0f} us  cpu {cpu:>6.2f} us/msg"
    )


def report(
    results: dict[tuple[str, int, int], list[dict[str, float]]],
    chosen: list[Server],
    conns_list: list[int],
    sizes: list[int],
) -> None:
    def med(name: str, conns: int, size: int, key: str) -> float:
        runs = results.get((name, conns, size), [])
        return median([r[key] for r in runs if key in r])

    print()
    header = "| size | conns | server | msgs/s | p50 µs | p99 µs | server CPU µs/msg |"
    print(header)
    print("|---:|---:|---|---:|---:|---:|---:|")
    for size in sizes:
        for conns in conns_list:
            for server in chosen:
                if (server.name, conns, size) not in results:
                    continue
                name = server.name
                rate, p50, p99 = (med(name, conns, size, key) for key in ("rate", "p50_us", "p99_us"))
                # socat and ncat fork a process per connection: their CPU is not in their PID.
                cpu = "n/a" if name in FORKING else f"{med(name, conns, size, 'cpu_us_per_msg'):.2f}"
                print(f"| {size} | {conns} | {name} | {rate:,.0f} | {p50:.0f} | {p99:.0f} | {cpu} |")
    print()
    print("Targets (issue 3), ratios of msgs/s in this run:")
    print()
    for size in sizes:
        for conns in conns_list:
            ours = med("wirecat", conns, size, "rate")
            best = med("uvloop-protocol", conns, size, "rate")
            streams = med("asyncio-streams", conns, size, "rate")
            ceiling = med("c-epoll", conns, size, "rate")
            line = f"- {size} B, {conns} conns: wirecat / uvloop-protocol = {ours / best:.2f}×"
            line += " (≥ 0.9: " + ("met" if ours / best >= 0.9 else "NOT met") + ")"
            line += f"; wirecat / asyncio-streams = {ours / streams:.2f}×"
            if conns >= 10:
                line += " (≥ 2: " + ("met" if ours / streams >= 2 else "NOT met") + ")"
            line += f"; the C server got {ceiling / ours:.2f}× wirecat's rate from the same client"
            if any(key[0] == "wirecat (baseline)" for key in results):
                before = med("wirecat (baseline)", conns, size, "rate")
                line += f"; wirecat / its baseline = {ours / before:.2f}×"
            print(line)


if __name__ == "__main__":
    main()
