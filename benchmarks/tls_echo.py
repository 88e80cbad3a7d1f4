#!/usr/bin/env python3
"""TLS echo and TLS handshakes: ``wirecat echo --tls`` against a uvloop Protocol with the same context.

    python benchmarks/tls_echo.py                  # 10 connections × 64 B, then handshakes
    python benchmarks/tls_echo.py --seconds 5 --reps 3

Servers, both on uvloop, both with the same certificate (ECDSA P-256, made
here by ``wirecat.tls.ephemeral_certificate``) and the same context builder
(``wirecat.tls.server_context``):

* ``wirecat`` -- ``wirecat echo --tls --cert F --key K 127.0.0.1 0``;
* ``uvloop-protocol`` -- ``loop.create_server(EchoProtocol, ssl=context)``:
  the fastest pure-Python TLS echo (the target: wirecat ≥ 0.9× its echo rate,
  ≥ 1.0× its handshake rate).

The load is Python (the C load client speaks no TLS): client processes on
uvloop, each holding its share of the connections, one 64-byte message in
flight per connection (``echo``), or opening a connection, finishing the
handshake and closing it, in a loop (``handshake``). The Python client is
slower than the servers on a small machine, so besides the rates the
*server's CPU time per message* (or per handshake) is reported, from
``/proc/PID/stat`` around the run: the real cost of each, and the stable
figure. Ratios are the reference's cost divided by wirecat's (above 1:
wirecat is cheaper).

Loopback only; every process is ended by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Child, median, read_port_line, wirecat_bin

TICKS = os.sysconf("SC_CLK_TCK")

REFERENCE = """
import asyncio, signal, sys, uvloop
from wirecat import tls

class Echo(asyncio.Protocol):
    def connection_made(self, transport): self.transport = transport
    def data_received(self, data): self.transport.write(data)

async def main(cert, key):
    loop = asyncio.get_running_loop()
    context = tls.server_context(cert=cert, key=key)
    server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=context, backlog=4096)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", file=sys.stderr, flush=True)
    stop = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    await stop

uvloop.run(main(sys.argv[1], sys.argv[2]))
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid``, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# -- the load client (run as a child: --client MODE PORT CONNS SECONDS FINGERPRINT) ----------------


async def _client(mode: str, port: int, conns: int, seconds: float) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # (the load's cost, not the check, is measured)
    deadline = time.monotonic() + seconds
    counts = [0] * conns

    async def echo(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        message = b"x" * 64
        while time.monotonic() < deadline:
            writer.write(message)
            await reader.readexactly(64)
            counts[index] += 1
        writer.close()

    async def handshakes(index: int) -> None:
        while time.monotonic() < deadline:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            counts[index] += 1
            writer.transport.abort()  # (no close_notify round: the handshake is what is timed)

    job = echo if mode == "echo" else handshakes
    await asyncio.gather(*(job(i) for i in range(conns)))
    return sum(counts)


def client_main(argv: list[str]) -> None:
    import uvloop

    mode, port, conns, seconds = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    print(uvloop.run(_client(mode, port, conns, seconds)))


# -- the runs -------------------------------------------------------------------------------------


def start_server(name: str, cert: str, key: str) -> tuple[Child, int]:
    if name == "wirecat":
        argv = [wirecat_bin(), "echo", "--tls", "--cert", cert, "--key", key, "127.0.0.1", "0"]
    else:
        argv = [sys.executable, "-c", REFERENCE, cert, key]
    child = Child.start(name, argv, stderr=subprocess.PIPE, env={**os.environ, "WIRECAT_LOOP": "uvloop"})
    assert child.popen.stderr is not None
    return child, read_port_line(child.popen.stderr, child)


def one_run(
    name: str, mode: str, cert: str, key: str, conns: int, seconds: float, procs: int
) -> tuple[float, float]:
    """(rate per second, server CPU µs per operation) of one run."""
    server, port = start_server(name, cert, key)
    try:
        share = [conns // procs + (1 if i < conns % procs else 0) for i in range(procs)]
        before = cpu_seconds(server.pid)
        started = time.perf_counter()
        clients = [
            subprocess.Popen(
                [sys.executable, __file__, "--client", mode, str(port), str(n), str(seconds)],
                stdout=subprocess.PIPE,
            )
            for n in share
            if n
        ]
        total = 0
        for client in clients:
            out, _ = client.communicate(timeout=seconds + 60)
            total += int(out.decode().strip() or 0)
        elapsed = time.perf_counter() - started
        used = cpu_seconds(server.pid) - before
    finally:
        os.kill(server.pid, signal.SIGTERM)
        if not server.wait(10):
            server.kill()
    return total / elapsed, used / max(total, 1) * 1e6


def main() -> None:
    if sys.argv[1:2] == ["--client"]:
        client_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--modes", default="echo,handshake", help="echo, handshake or both")
    args = parser.parse_args()

    from wirecat import tls

    certificate = tls.ephemeral_certificate(["127.0.0.1", "localhost"])
    with tempfile.TemporaryDirectory(prefix="wirecat-bench-") as directory:
        cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        Path(cert).write_bytes(certificate.cert_pem)
        Path(key).write_bytes(certificate.key_pem)
        print(f"TLS 1.3, ECDSA P-256, {args.conns} connections, {args.seconds:g} s × {args.reps} rounds\n")
        print("| test | server | rate /s | server CPU µs per op |")
        print("|---|---|---:|---:|")
        summary = {}
        modes = args.modes.split(",")
        for mode in modes:
            results: dict[str, list[tuple[float, float]]] = {"wirecat": [], "uvloop-protocol": []}
            for _ in range(args.reps):  # rounds interleaved
                for name in results:
                    results[name].append(one_run(name, mode, cert, key, args.conns, args.seconds, args.procs))
            for name, runs in results.items():
                rate, cost = median([r for r, _ in runs]), median([c for _, c in runs])
                summary[(mode, name)] = (rate, cost)
                print(f"| {mode} 64 B | {name} | {rate:,.0f} | {cost:.1f} |" if mode == "echo" else
                      f"| {mode} | {name} | {rate:,.0f} | {cost:.1f} |")  # fmt: skip
        print()
        for mode in modes:
            rate_ratio = summary[(mode, "wirecat")][0] / summary[(mode, "uvloop-protocol")][0]
            cost_ratio = summary[(mode, "uvloop-protocol")][1] / summary[(mode, "wirecat")][1]
            print(
                f"{mode}: wirecat's rate {rate_ratio:.2f}× the uvloop Protocol's;"
                f" its CPU per op {cost_ratio:.2f}× as cheap"
            )


if __name__ == "__main__":
    main()
