#!/usr/bin/env python3
"""Relay (port forwarding): throughput, CPU per GB and added latency, against socat and ncat.

    python benchmarks/relay.py                  # 2 GiB, 3 rounds
    python benchmarks/relay.py --size 1G --reps 1 --no-latency

Throughput: ``iperf3 -c`` sends SIZE bytes to an ``iperf3 -s`` through each
relay (and once directly, the machine's ceiling), one stream and then 8
parallel streams (``-P 8``). iperf3's own receiver figure is the throughput;
the relay's CPU time is read from ``/proc/PID/stat`` around the transfer,
children included (socat and ncat fork or spawn per connection; their
children's time is counted once they are reaped, so each relay is stopped
before reading it). "iperf3 CPU" is its client's and server's CPU per GB
(each reaped with ``wait4``): what the transfer costs the endpoints, which a
relay changes too (see RESULTS.md).

Targets are checked on the median of per-round ratios: each round runs every
relay back to back, so a ratio within a round shares the machine's state.

Relays, in the same run, rounds interleaved:

* ``wirecat``: ``wirecat relay 0 127.0.0.1:PORT`` (zero-copy splice);
* ``socat``: ``socat TCP-LISTEN:P,fork,reuseaddr TCP:127.0.0.1:PORT`` (8 KiB buffer);
* ``socat -b 262144``: the same with a 256 KiB buffer (socat tuned);
* ``ncat``: ``ncat -l -k --sh-exec "ncat 127.0.0.1 PORT"`` (one process pair per connection).

Latency: the C load client (``loadgen.c``, as in ``echo.py``) sends 64-byte
messages over 10 connections to the C echo server directly and through each
relay; p50/p99 of the round trip, and the relay's added part.

Loopback only; every process is ended by its PID; every run stops by itself.
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
from pathlib import Path
from typing import NamedTuple

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
from echo import build_loadgen

from wirecat.testing import free_port

TICKS = os.sysconf("SC_CLK_TCK")
GB = 1e9


class Figures(NamedTuple):
    """What one transfer measured."""

    rate: float  # bytes/s, as iperf3's receiver saw them
    relay_cpu: float  # the relay's CPU seconds (0 for direct)
    endpoints_cpu: float  # iperf3 client + server CPU seconds
    busy: float  # how busy all the machine's CPUs were: 0–1


#: results[(relay, streams)][round]
Results = dict[tuple[str, int], dict[int, Figures]]


def cpu_with_children(pid: int) -> float:
    """utime + stime + cutime + cstime of ``pid``, in seconds (reaped children included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def relay_argv(name: str, target_port: int, listen_port: int) -> list[str] | None:
    """The command line of relay ``name`` from ``listen_port`` to ``target_port`` (None: not installed)."""
    target = f"127.0.0.1:{target_port}"
    if name == "wirecat":
        return [wirecat_bin(), "relay", "0", target, "--max-conns", "64"]
    if name == "wirecat (baseline)":
        return [BASELINE[0], "relay", "0", target, "--max-conns", "64"]
    if name.startswith("socat"):
        if not shutil.which("socat"):
            return None
        tuned = ["-b", "262144"] if "262144" in name else []
        return ["socat", *tuned, f"TCP4-LISTEN:{listen_port},bind=127.0.0.1,reuseaddr,fork", f"TCP4:{target}"]
    if name == "ncat":
        if not shutil.which("ncat"):
            return None
        return [
            "ncat",
            "-l",
            "-k",
            "127.0.0.1",
            str(listen_port),
            "--sh-exec",
            f"ncat 127.0.0.1 {target_port}",
        ]
    raise ValueError(name)


RELAYS = ["wirecat", "socat", "socat -b 262144", "ncat"]
#: The launcher of ``--baseline`` (set in main).
BASELINE: list[str] = []


class Relay:
    """A running relay process and the port clients connect to."""

    def __init__(self, name: str, target_port: int) -> None:
        listen_port = free_port()
        argv = relay_argv(name, target_port, listen_port)
        if argv is None:
            raise FileNotFoundError(name)
        self.name = name
        self.child = Child.start(name, argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if name.startswith("wirecat"):
                assert self.child.popen.stderr is not None
                self.port = read_port_line(self.child.popen.stderr, self.child)
            else:
                self.port = listen_port
                wait_listening(listen_port, self.child)
        except BaseException:
            self.stop()
            raise
        self.cpu_start = cpu_with_children(self.child.pid)

    def stop(self) -> float:
        """Stop the relay (its whole process group) and return the CPU seconds it used since start."""
        used = 0.0
        try:
            used = cpu_with_children(self.child.pid) - getattr(self, "cpu_start", 0.0)
        except OSError:
            pass
        try:
            os.killpg(self.child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not self.child.wait(10):
            os.killpg(self.child.pid, signal.SIGKILL)
            self.child.wait(10)
        if self.name == "wirecat":
            return used  # one process: its own time since it was listening (start-up left out)
        # socat and ncat work in children: wait4's rusage at exit has them all
        # (their start-up is a millisecond; Python's would not be).
        return self.child.cpu


def iperf(port: int, size: int, streams: int) -> tuple[float, float]:
    """Run an iperf3 client to ``port``: (bytes/s its receiver saw, the client's CPU seconds)."""
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", str(size), "-P", str(streams), "-J"]
    client = Child.start("iperf3 -c", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert client.popen.stdout is not None
        assert client.popen.stderr is not None
        out = client.popen.stdout.read().decode()
        err = client.popen.stderr.read().decode()
        if not client.wait(600) or client.status != 0:
            raise RuntimeError(f"iperf3 failed: {out[-400:]} {err[-400:]}")
    finally:
        client.kill()
    report = json.loads(out)
    return float(report["end"]["sum_received"]["bits_per_second"]) / 8, client.cpu


def measure(name: str, size: int, streams: int) -> Figures:
    """One transfer through relay ``name`` (or ``direct``) to a fresh one-test iperf3 server."""
    iperf_port = free_port()
    server = Child.start(
        "iperf3 -s",
        ["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(iperf_port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_listening(iperf_port, server)
        relay = None if name == "direct" else Relay(name, iperf_port)
        try:
            before = cpu_times()
            rate, client_cpu = iperf(iperf_port if relay is None else relay.port, size, streams)
            busy = _busy(before, cpu_times())
        finally:
            relay_cpu = 0.0 if relay is None else relay.stop()
        server.wait(10)  # a one-test server exits after its test: its rusage is then known
        return Figures(rate, relay_cpu, client_cpu + server.cpu, busy)
    finally:
        server.kill()


def _busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="2G", help="bytes per transfer (default 2G)")
    parser.add_argument("--reps", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--relays", default=",".join(RELAYS), help="comma-separated subset")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency part")
    parser.add_argument("--latency-seconds", type=float, default=3.0)
    parser.add_argument(
        "--baseline", metavar="SRC", help="also time the wirecat whose package is in SRC (a worktree's src/)"
    )
    args = parser.parse_args()
    if args.baseline:
        BASELINE.append(baseline_launcher(args.baseline, tempfile.mkdtemp(prefix="wirecat-baseline-")))
        if "wirecat (baseline)" not in args.relays:
            args.relays += ",wirecat (baseline)"
    if not shutil.which("iperf3"):
        sys.exit("benchmarks: iperf3 is needed (apt-get install iperf3)")
    size = parse_size(args.size)
    names = [n for n in args.relays.split(",") if n]
    results: Results = {}
    print(f"# relay: {size} bytes per transfer, {args.reps} rounds; peers {peer_versions()}")
    for rep in range(args.reps):
        for streams in (1, 8):
            for name in ["direct", *names]:
                try:
                    got = measure(name, size, streams)
                except FileNotFoundError:
                    continue
                except RuntimeError as exc:  # reported, not fatal: the other cases still run
                    print(f"round {rep + 1}  {streams} stream(s)  {name}: {exc}", file=sys.stderr)
                    continue
                results.setdefault((name, streams), {})[rep] = got
                print(
                    f"round {rep + 1}  {streams} stream(s)  {name:<16} {got.rate / GB:6.2f} GB/s"
                    f"  relay CPU {got.relay_cpu / (size / GB):.3f} s/GB"
                    f"  iperf3 CPU {got.endpoints_cpu / (size / GB):.3f} s/GB  machine {got.busy:.0%} busy",
                    file=sys.stderr,
                    flush=True,
                )
    print()
    print("| streams | relay | GB/s | relay CPU s/GB | iperf3 CPU s/GB | machine busy | runs (GB/s) |")
    print("|---:|---|---:|---:|---:|---:|---|")
    per_gb = size / GB
    for (name, streams), rounds in results.items():
        runs = list(rounds.values())
        rate = median([f.rate for f in runs])
        relay_cpu = median([f.relay_cpu / per_gb for f in runs])
        endpoints_cpu = median([f.endpoints_cpu / per_gb for f in runs])
        busy = median([f.busy for f in runs])
        shown = ", ".join(f"{f.rate / GB:.2f}" for f in runs)
        cpu = f"{relay_cpu:.3f} | {endpoints_cpu:.3f}"
        print(f"| {streams} | {name} | {rate / GB:.2f} | {cpu} | {busy:.0%} | {shown} |")
    print()
    print("Targets (issue 5): the median of per-round ratios (each round's transfers ran")
    print("back to back, so a ratio within a round shares the machine's state), and their range:")
    targets = [
        (1, "socat -b 262144", "rate", 1.2),
        (1, "socat", "rate", 3.0),
        (1, "direct", "rate", 0.75),
        (1, "socat -b 262144", "cpu", 0.5),
        (8, "socat", "rate", 1.0),
        (8, "socat -b 262144", "rate", 1.0),
    ]
    for streams, other, what, want in targets:
        ratios = paired_ratios(results, streams, other, what)
        if not ratios:
            continue
        middle = median(ratios)
        spread = f"{min(ratios):.2f}–{max(ratios):.2f}"
        if what == "rate":
            verdict = "met" if middle >= want else "NOT met"
            print(f"- {streams} stream(s): wirecat ÷ {other} = {middle:.2f}× ({spread}; ≥ {want}: {verdict})")
        else:
            verdict = "met" if middle <= want else "NOT met"
            print(f"- CPU per GB: wirecat ÷ {other} = {middle:.2f} ({spread}; ≤ {want}: {verdict})")
    if not args.no_latency:
        latency(names, args.latency_seconds)


def paired_ratios(results: Results, streams: int, other: str, what: str) -> list[float]:
    """wirecat's ``what`` (``rate`` or ``cpu``: the relay's) ÷ ``other``'s, round by round."""
    ours, theirs = results.get(("wirecat", streams), {}), results.get((other, streams), {})
    field = "rate" if what == "rate" else "relay_cpu"
    both = sorted(ours.keys() & theirs.keys())
    pairs = [(getattr(ours[rep], field), getattr(theirs[rep], field)) for rep in both]
    return [mine / them for mine, them in pairs if them]


def latency(names: list[str], seconds: float) -> None:
    """64-byte request/response over 10 connections: direct and through each relay."""
    with tempfile.TemporaryDirectory(prefix="wirecat-relay-") as tmp:
        loadgen = build_loadgen(Path(tmp))
        echo = Child.start("c-epoll", [str(loadgen), "--server", "0"], stderr=subprocess.PIPE)
        try:
            assert echo.popen.stderr is not None
            echo_port = read_port_line(echo.popen.stderr, echo)
            print()
            print("| path | msgs/s | p50 µs | p99 µs | added p50 µs | added p99 µs |")
            print("|---|---:|---:|---:|---:|---:|")
            base: dict[str, float] = {}
            for name in ["direct", *names]:
                relay = None
                port = echo_port
                if name != "direct":
                    try:
                        relay = Relay(name, echo_port)
                    except FileNotFoundError:
                        continue
                    port = relay.port
                try:
                    run = subprocess.run(
                        [str(loadgen), str(port), "10", "64", str(seconds), "0.5"],
                        capture_output=True,
                        text=True,
                        timeout=seconds + 60,
                        check=True,
                    )
                finally:
                    if relay is not None:
                        relay.stop()
                figures = json.loads(run.stdout)
                if name == "direct":
                    base = figures
                added50 = figures["p50_us"] - base["p50_us"]
                added99 = figures["p99_us"] - base["p99_us"]
                print(
                    f"| {name} | {figures['rate']:,.0f} | {figures['p50_us']} | {figures['p99_us']} |"
                    f" {added50} | {added99} |"
                )
        finally:
            echo.kill()


if __name__ == "__main__":
    main()
