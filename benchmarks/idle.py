#!/usr/bin/env python3
"""Memory per idle connection: hold N connections open and read the server's RSS.

    python benchmarks/idle.py                  # 10,000 connections
    python benchmarks/idle.py --conns 2000 --servers wirecat

For each server: start it, read its resident memory (VmRSS), open N
connections to it from this process, send one byte on each and read the echo
back (so every connection has really been accepted and is being served), read
VmRSS again, and report (after − before) / N. Then close them all.

Servers: ``wirecat echo`` with its defaults (idle timeout on, so each
connection has its timer), the same with ``--lines`` framing, and the
reference ``uvloop-protocol`` and ``asyncio-streams`` echo servers
(``reference_servers.py``). Target of issue 3: under 10 KiB per connection
for wirecat at 10,000 connections.

Loopback only; it needs about 2 × N file descriptors (it raises its own soft
limit to the hard one, and so does each server).
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Child, baseline_launcher, read_port_line, wirecat_bin

HERE = Path(__file__).resolve().parent


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def open_and_touch(port: int, count: int, payload: bytes, deadline: float) -> list[socket.socket]:
    """``count`` connections, each having sent ``payload`` and read it back."""
    socks: list[socket.socket] = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setblocking(False)
        socks.append(sock)
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.send(payload)
            selector.register(sock, selectors.EVENT_READ)
        waiting = len(socks)
        while waiting:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{waiting} connections got no echo in time")
            for key, _ in selector.select(1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock.recv(64) == payload:
                    selector.unregister(sock)
                    waiting -= 1
    return socks


def measure(name: str, argv: list[str], count: int, payload: bytes) -> tuple[int, int]:
    """(RSS before, RSS after) in KiB for ``count`` connections to the server ``argv``."""
    child = Child.start(name, argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert child.popen.stderr is not None
        port = read_port_line(child.popen.stderr, child)
        before = rss_kib(child.pid)
        socks = open_and_touch(port, count, payload, time.monotonic() + 120)
        after = rss_kib(child.pid)
        for sock in socks:
            sock.close()
        return before, after
    finally:
        try:
            os.kill(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not child.wait(30):
            child.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conns", type=int, default=10_000, help="connections held (default 10000)")
    parser.add_argument("--servers", default="", help="comma-separated subset of server names")
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        help="also measure the wirecat whose package is in SRC (a worktree's src/)",
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.conns + 100:
        sys.exit(f"benchmarks: the hard limit of open files ({hard}) is under {args.conns + 100}")
    wc = wirecat_bin()
    limit = str(args.conns + 10)
    ref = str(HERE / "reference_servers.py")
    servers = {
        "wirecat": [wc, "echo", "0", "--max-conns", limit],
        "wirecat --lines": [wc, "echo", "0", "--max-conns", limit, "--lines"],
        **(
            {
                "wirecat (baseline)": [
                    baseline_launcher(args.baseline, tempfile.mkdtemp()),
                    "echo",
                    "0",
                    "--max-conns",
                    limit,
                ]
            }
            if args.baseline
            else {}
        ),
        "uvloop-protocol": [sys.executable, ref, "uvloop-protocol"],
        "asyncio-streams": [sys.executable, ref, "asyncio-streams"],
    }
    if args.servers:
        servers = {k: v for k, v in servers.items() if k in args.servers.split(",")}
    print(f"# idle: {args.conns} connections, each touched once with one line")
    print()
    print("| server | RSS before, MiB | RSS after, MiB | KiB per connection |")
    print("|---|---:|---:|---:|")
    for name, argv in servers.items():
        before, after = measure(name, argv, args.conns, b"x\n")
        per = (after - before) / args.conns
        print(f"| {name} | {before / 1024:.1f} | {after / 1024:.1f} | {per:.2f} |", flush=True)
    print()
    print("Target (issue 3): wirecat under 10 KiB per connection at 10,000 connections.")


if __name__ == "__main__":
    main()
