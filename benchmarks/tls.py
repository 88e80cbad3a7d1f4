#!/usr/bin/env python3
"""TLS over loopback: bulk throughput, echo and handshakes, wirecat against its peers in one run.

    python benchmarks/tls.py                       # all three, 1 GiB bulk, 3 rounds
    python benchmarks/tls.py --size 256M --reps 1 --parts bulk     # a quick look

Three parts, each with its peers in the same run (compare ratios, never
figures from different runs):

``bulk``
    SIZE bytes (1 GiB by default) one way, TLS 1.3, ``head -c SIZE
    /dev/zero | CLIENT`` → ``LISTENER > /dev/null``, as ``bulk.py`` measures
    plain TCP (its ``run_transfer`` is reused: wall time from the client's
    start to the listener's exit, CPU of both from ``wait4``, a first
    untimed round that counts every byte). Tools: ``socat OPENSSL`` tuned
    (``-b 262144``) and with its default buffer, ``ncat --ssl``, a plain
    Python blocking ``ssl`` loop (``sendall``/``recv_into``, 256 KiB: what
    the ``ssl`` module does at best, with no tool around it), and wirecat
    ``connect --tls`` → ``listen --tls``.
``echo``
    64-byte messages on 10 connections, one in flight on each: a uvloop
    ``asyncio.Protocol`` TLS echo server built on the same ``SSLContext``
    settings (``wirecat.tls.server_context`` with the same files) against
    ``wirecat echo --tls``. The load client is Python (threads, blocking
    ``ssl``; the C ``loadgen`` speaks no TLS), so it may be what limits
    messages/s: the server's CPU time per message, read from
    ``/proc/PID/stat``, is the steadier figure.
``handshakes``
    10 concurrent clients, each connecting, completing a verified TLS 1.3
    handshake (ECDSA P-256 certificate), sending one byte and reading it
    back (so the server finished its side), and closing; against the same
    two servers. Server CPU per handshake is reported too.

Every run is bounded in bytes or seconds and every process is ended by its
PID. The wirecat rows run only where the CLI has the flags (``connect
--tls``, ``echo --tls``); otherwise the row is skipped with a note.

This script also holds the helpers it starts as processes (``--role``):
the Python bulk sender and receiver, the uvloop reference server, and the
load clients.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bulk import Case, Series, parse_size, run_transfer
from common import Child, compile_wirecat, median, peer_versions, read_port_line, wirecat_bin

HOST = "127.0.0.1"  # loopback only
GB = 1e9
BUFFER = 256 * 1024
HERE = Path(__file__).resolve()
TICKS = os.sysconf("SC_CLK_TCK")

#: (part, ours, theirs, least ratio, what is compared): the targets of issue 13.
TARGETS = [
    ("bulk", "wirecat", "socat -b 262144", 1.5, "GB/s"),
    ("bulk", "wirecat", "ncat --ssl", 2.0, "GB/s"),
    ("bulk-cpu", "wirecat", "socat -b 262144", 1.0, "CPU s/GB no more than"),
    ("echo", "wirecat echo --tls", "uvloop-protocol", 0.9, "msgs/s"),
    ("handshakes", "wirecat echo --tls", "uvloop-protocol", 1.0, "handshakes/s"),
]


# --- the processes this script starts as itself (--role) --------------------------------------


def role_py_recv(cert: str, key: str) -> None:
    """Accept one TLS connection; copy it to stdout with recv_into 256 KiB; say the port on stderr."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with socket.create_server((HOST, 0)) as listener:
        print(f"listening on {HOST}:{listener.getsockname()[1]}", file=sys.stderr, flush=True)
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls_conn:
            buffer = bytearray(BUFFER)
            view = memoryview(buffer)
            out = sys.stdout.fileno()
            while n := tls_conn.recv_into(buffer):
                os.write(out, view[:n])  # (a pipe or /dev/null: whole writes)
            try:
                tls_conn.unwrap()
            except (OSError, ValueError):
                pass


def role_py_send(port: int, cafile: str) -> None:
    """Connect with TLS (verifying), copy stdin to the connection with readinto/sendall 256 KiB."""
    context = ssl.create_default_context(cafile=cafile)
    with (
        socket.create_connection((HOST, port)) as sock,
        context.wrap_socket(sock, server_hostname=HOST) as tls_sock,
    ):
        buffer = bytearray(BUFFER)
        view = memoryview(buffer)
        stdin = sys.stdin.buffer.raw  # type: ignore[attr-defined]
        while True:
            # Fill the whole 256 KiB (a pipe gives 64 KiB a read): one sendall per buffer.
            filled = 0
            while filled < BUFFER and (n := stdin.readinto(view[filled:])):
                filled += n
            if not filled:
                break
            tls_sock.sendall(view[:filled])
        tls_sock.unwrap()  # close_notify: the receiver's clean end


def role_reference(cert: str, key: str) -> None:
    """The uvloop Protocol TLS echo server (benchmarks/reference_servers.py's, with ssl=)."""
    import asyncio

    import uvloop
    from reference_servers import EchoProtocol

    from wirecat.tls import server_context

    context = server_context(cert=cert, key=key)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(EchoProtocol, HOST, 0, backlog=4096, ssl=context)
        print(f"listening on {HOST}:{server.sockets[0].getsockname()[1]}", file=sys.stderr, flush=True)
        stop = loop.create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
        await stop
        server.close()

    uvloop.run(main())


def _client_context(cafile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def role_echo_load(port: int, cafile: str, conns: int, size: int, seconds: float, warmup: float) -> None:
    """Closed-loop echo load: CONNS threads, one SIZE message in flight each; JSON on stdout."""
    context = _client_context(cafile)
    message = b"x" * size
    start = time.monotonic()
    measure_from, end = start + warmup, start + warmup + seconds
    counts = [[0, 0] for _ in range(conns)]  # [all, in the measured window]
    errors: list[str] = []

    def run(slot: list[int]) -> None:
        try:
            with (
                socket.create_connection((HOST, port), timeout=30) as sock,
                context.wrap_socket(sock, server_hostname=HOST) as tls_sock,
            ):
                tls_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buffer = bytearray(size)
                while (now := time.monotonic()) < end:  # bounded by the clock
                    tls_sock.sendall(message)
                    got = 0
                    while got < size:
                        n = tls_sock.recv_into(memoryview(buffer)[got:])
                        if not n:
                            raise ConnectionError("the server closed")
                        got += n
                    slot[0] += 1
                    if now >= measure_from:
                        slot[1] += 1
        except OSError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=run, args=(slot,)) for slot in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + warmup + 60)
    measured = sum(c[1] for c in counts)
    print(
        json.dumps(
            {
                "messages": measured,
                "all_messages": sum(c[0] for c in counts),
                "rate": measured / seconds,
                "errors": errors[:3],
            }
        )
    )


def role_handshake_load(port: int, cafile: str, clients: int, seconds: float, warmup: float) -> None:
    """CLIENTS threads each connecting, handshaking (verified), echoing one byte, closing; JSON out."""
    context = _client_context(cafile)
    start = time.monotonic()
    measure_from, end = start + warmup, start + warmup + seconds
    counts = [[0, 0] for _ in range(clients)]
    errors: list[str] = []

    def run(slot: list[int]) -> None:
        while (now := time.monotonic()) < end:  # bounded by the clock
            try:
                with (
                    socket.create_connection((HOST, port), timeout=30) as sock,
                    context.wrap_socket(sock, server_hostname=HOST) as tls_sock,
                ):
                    tls_sock.sendall(b"x")
                    if tls_sock.recv(1) != b"x":
                        raise ConnectionError("no echo")
            except OSError as exc:
                errors.append(str(exc))
                return
            slot[0] += 1
            if now >= measure_from:
                slot[1] += 1

    threads = [threading.Thread(target=run, args=(slot,)) for slot in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + warmup + 60)
    measured = sum(c[1] for c in counts)
    print(
        json.dumps(
            {
                "handshakes": measured,
                "all_handshakes": sum(c[0] for c in counts),
                "rate": measured / seconds,
                "errors": errors[:3],
            }
        )
    )


# --- the benchmark --------------------------------------------------------------------------------


def make_certificate(directory: str) -> tuple[str, str]:
    """An ECDSA P-256 certificate for 127.0.0.1 and localhost (its own CA), and its key."""
    from wirecat.tls import issue_certificate

    certificate = issue_certificate([HOST, "localhost"], days=2)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert, "wb") as file:
        file.write(certificate.cert_pem)
    descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(certificate.key_pem)
    return cert, key


def wirecat_has(command: str, flag: str) -> bool:
    """Whether the installed wirecat's COMMAND takes FLAG (the TLS commands come from other branches)."""
    run = subprocess.run(
        [wirecat_bin(), command, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    return flag in run.stdout


def bulk_cases(cert: str, key: str, notes: list[str]) -> list[Case]:
    """The bulk tools, each used the way its manual suggests for a one-way TLS copy."""
    py = [sys.executable, str(HERE)]
    found: list[Case] = []
    if wirecat_has("connect", "--tls") and wirecat_has("listen", "--tls"):
        wc = wirecat_bin()
        found.append(
            Case(
                "wirecat",
                lambda p: [wc, "listen", "--tls", "--cert", cert, "--key", key, HOST, str(p)],
                lambda p: [wc, "connect", "--tls", "--cafile", cert, HOST, str(p)],
                reports_port=True,
            )
        )
    else:
        notes.append("wirecat: skipped, this wirecat has no `connect --tls`/`listen --tls`")
    if shutil.which("socat"):
        for label, extra in (("socat -b 262144", ["-b", "262144"]), ("socat", [])):
            found.append(
                Case(
                    label,
                    _socat_listener(extra, cert, key),
                    _socat_client(extra, cert),
                )
            )
    else:
        notes.append("socat: not installed")
    if shutil.which("ncat"):
        listener = ["ncat", "--ssl", "--ssl-cert", cert, "--ssl-key", key, "--recv-only", "-l", HOST]
        found.append(
            Case(
                "ncat --ssl",
                lambda p: [*listener, str(p)],
                # As people run it: ncat does not verify unless told (and cannot check an IP SAN).
                lambda p: ["ncat", "--ssl", "--send-only", HOST, str(p)],
            )
        )
    else:
        notes.append("ncat: not installed")
    found.append(
        Case(
            "python ssl loop",
            lambda p: [*py, "--role", "py-recv", cert, key],
            lambda p: [*py, "--role", "py-send", str(p), cert],
            reports_port=True,
        )
    )
    return found


def _socat_listener(extra: list[str], cert: str, key: str):  # type: ignore[no-untyped-def]
    # verify=0: socat's OPENSSL-LISTEN asks for a client certificate by default (PAINPOINTS B).
    return lambda p: [
        "socat",
        *extra,
        "-u",
        f"OPENSSL-LISTEN:{p},bind={HOST},reuseaddr,cert={cert},key={key},verify=0",
        "STDOUT",
    ]


def _socat_client(extra: list[str], cert: str):  # type: ignore[no-untyped-def]
    return lambda p: ["socat", *extra, "-u", "STDIN", f"OPENSSL:{HOST}:{p},cafile={cert}"]


def run_bulk(args: argparse.Namespace, cert: str, key: str, notes: list[str]) -> list[str]:
    size: int = args.size
    chosen = bulk_cases(cert, key, notes)
    results = {case.name: Series(case.name, "pipe") for case in chosen}
    rounds = [0, *range(1, args.reps + 1)]  # 0: the counted, untimed round
    for rnd in rounds:
        for case in chosen:
            label = "verify" if rnd == 0 else f"round {rnd}"
            try:
                run = run_transfer(case, "pipe", size, "", verify=rnd == 0)
            except RuntimeError as exc:
                notes.append(f"bulk {label} {case.name}: FAILED: {exc}")
                print(f"bulk {label:8} {case.name:18} FAILED: {exc}", file=sys.stderr, flush=True)
                continue
            print(
                f"bulk {label:8} {case.name:18} {run.wall:6.2f} s {size / run.wall / GB:5.2f} GB/s"
                f"  cpu {run.cpu:5.2f} s  load {os.getloadavg()[0]:.2f}",
                file=sys.stderr,
                flush=True,
            )
            if rnd:
                results[case.name].runs.append(run)
    lines = [
        f"### Bulk: {size} bytes ({size / 2**30:g} GiB) one way over TLS 1.3, medians of {args.reps} rounds",
        "",
        "| tool | wall s | GB/s | CPU s/GB | runs (GB/s) |",
        "|---|---:|---:|---:|---|",
    ]
    gbps: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for name, series in results.items():
        if not series.runs:
            continue
        gbps[name], cpu[name] = series.gbps(size), series.cpu_per_gb(size)
        each = ", ".join(f"{size / r.wall / GB:.2f}" for r in series.runs)
        wall = median([r.wall for r in series.runs])
        lines.append(f"| {name} | {wall:.2f} | {gbps[name]:.2f} | {cpu[name]:.2f} | {each} |")
    if "wirecat" in gbps:
        parts = [f"vs {other} {gbps['wirecat'] / v:.2f}×" for other, v in gbps.items() if other != "wirecat"]
        lines += ["", "wirecat's GB/s: " + "; ".join(parts)]
    args.figures["bulk"] = gbps
    args.figures["bulk-cpu"] = cpu
    return lines


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def _servers(cert: str, key: str, notes: list[str]) -> dict[str, list[str]]:
    found = {"uvloop-protocol": [sys.executable, str(HERE), "--role", "reference", cert, key]}
    if wirecat_has("echo", "--tls"):
        found["wirecat echo --tls"] = [
            wirecat_bin(), "echo", "--tls", "--cert", cert, "--key", key, "--max-conns", "10000", HOST, "0",
        ]  # fmt: skip
    else:
        notes.append("wirecat echo --tls: skipped, this wirecat's echo has no --tls")
    return found


def _measure(
    argv: list[str], load: list[str], budget: float, cpus: tuple[int | None, int | None]
) -> dict[str, object]:
    """Start a server, run one load client against it, stop the server; the client's JSON + server CPU."""
    server = Child.start(argv[0], [*_pin(cpus[0]), *argv], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert server.popen.stderr is not None
        port = read_port_line(server.popen.stderr, server)
        before = cpu_seconds(server.pid)
        run = subprocess.run(
            [*_pin(cpus[1]), *[a.replace("{port}", str(port)) for a in load]],
            capture_output=True,
            text=True,
            timeout=budget + 60,
            check=False,
        )
        after = cpu_seconds(server.pid)
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not server.wait(10):
            server.kill()
        if server.popen.stderr is not None:
            server.popen.stderr.close()
    if run.returncode != 0 or not run.stdout.strip():
        return {"error": run.stderr.strip()[-300:] or f"exit {run.returncode}"}
    figures: dict[str, object] = json.loads(run.stdout)
    figures["server_cpu"] = after - before
    return figures


def run_loaded(args: argparse.Namespace, cert: str, key: str, notes: list[str], part: str) -> list[str]:
    cpus: tuple[int | None, int | None] = (None, None)
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        cpus = (1, 0)
    py = [sys.executable, str(HERE), "--role"]
    if part == "echo":
        load = [*py, "echo-load", "{port}", cert, str(args.conns), str(args.msg_size)]
        unit, all_key = "msgs/s", "all_messages"
    else:
        load = [*py, "handshake-load", "{port}", cert, str(args.conns)]
        unit, all_key = "handshakes/s", "all_handshakes"
    load += [str(args.seconds), str(args.warmup)]
    servers = _servers(cert, key, notes)
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in servers}
    for rnd in range(1, args.reps + 1):
        for name, argv in servers.items():
            figures = _measure(argv, load, args.seconds + args.warmup, cpus)
            if "error" in figures:
                notes.append(f"{part} round {rnd} {name}: FAILED: {figures['error']}")
                print(f"{part} round {rnd} {name:20} FAILED: {figures['error']}", file=sys.stderr, flush=True)
                continue
            runs[name].append(figures)
            print(
                f"{part} round {rnd} {name:20} {figures['rate']:10.0f} {unit}"
                f"  server cpu {figures['server_cpu']:.2f} s  load {os.getloadavg()[0]:.2f}",
                file=sys.stderr,
                flush=True,
            )
    what = (
        f"{args.msg_size} B messages on {args.conns} connections"
        if part == "echo"
        else f"{args.conns} concurrent clients, TLS 1.3, ECDSA P-256, one byte echoed each"
    )
    lines = [
        f"### {'Echo' if part == 'echo' else 'Handshakes'}: {what};"
        f" {args.seconds:g} s after {args.warmup:g} s warm-up, medians of {args.reps} rounds",
        f"(server on CPU {cpus[0]}, Python load client on CPU {cpus[1]})",
        "",
        f"| server | {unit} | server CPU µs per {'message' if part == 'echo' else 'handshake'} | runs |",
        "|---|---:|---:|---|",
    ]
    rates: dict[str, float] = {}
    for name, figures in runs.items():
        if not figures:
            continue
        rates[name] = median([float(f["rate"]) for f in figures])  # type: ignore[arg-type]
        per = median([float(f["server_cpu"]) * 1e6 / max(1, int(f[all_key])) for f in figures])  # type: ignore[arg-type]
        each = ", ".join(f"{float(f['rate']):.0f}" for f in figures)  # type: ignore[arg-type]
        lines.append(f"| {name} | {rates[name]:.0f} | {per:.1f} | {each} |")
    args.figures[part] = rates
    return lines


def verdicts(figures: dict[str, dict[str, float]]) -> list[str]:
    lines = []
    for part, ours, theirs, wanted, what in TARGETS:
        table = figures.get(part, {})
        if ours not in table or theirs not in table or not table[theirs]:
            continue
        if part == "bulk-cpu":
            got = table[ours] / table[theirs]
            verdict = "met" if got <= wanted else "NOT met"
            lines.append(f"- {ours} CPU s/GB ≤ {theirs}'s: {got:.2f}× theirs — {verdict}")
        else:
            got = table[ours] / table[theirs]
            verdict = "met" if got >= wanted else "NOT met"
            lines.append(f"- {ours} {what} ≥ {wanted:g}× {theirs}: {got:.2f}× — {verdict}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or one of its helper roles) and print a Markdown report."""
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--role"]:
        return _role(list(argv[1:]))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="bulk,echo,handshakes", help="which parts (default all three)")
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"), help="bulk bytes (default 1G)")
    parser.add_argument("--reps", type=int, default=3, help="rounds per case; medians reported (default 3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per echo/handshake run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (default 1)")
    parser.add_argument("--conns", type=int, default=10, help="connections / concurrent clients (default 10)")
    parser.add_argument("--msg-size", type=int, default=64, help="echo message size in bytes (default 64)")
    args = parser.parse_args(argv)
    args.figures = {}
    compile_wirecat()
    notes: list[str] = []
    parts = [p for p in args.parts.split(",") if p]
    out = [
        f"# TLS benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"# peers: {peer_versions()}; {ssl.OPENSSL_VERSION}; Python {sys.version.split()[0]}",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="wirecat-tls-bench-") as tmp:
        cert, key = make_certificate(tmp)
        for part in parts:
            if part == "bulk":
                out += [*run_bulk(args, cert, key, notes), ""]
            elif part in ("echo", "handshakes"):
                out += [*run_loaded(args, cert, key, notes, part), ""]
            else:
                sys.exit(f"benchmarks: unknown part {part!r} (bulk, echo, handshakes)")
    found = verdicts(args.figures)
    if found:
        out += ["Targets (issue 13):", "", *found, ""]
    if notes:
        out += ["Notes:", "", *(f"- {n.strip()}" for n in dict.fromkeys(notes))]
    print("\n".join(out))
    return 0


def _role(words: list[str]) -> int:
    role, rest = words[0], words[1:]
    if role == "py-recv":
        role_py_recv(rest[0], rest[1])
    elif role == "py-send":
        role_py_send(int(rest[0]), rest[1])
    elif role == "reference":
        role_reference(rest[0], rest[1])
    elif role == "echo-load":
        role_echo_load(int(rest[0]), rest[1], int(rest[2]), int(rest[3]), float(rest[4]), float(rest[5]))
    elif role == "handshake-load":
        role_handshake_load(int(rest[0]), rest[1], int(rest[2]), float(rest[3]), float(rest[4]))
    else:
        sys.exit(f"unknown role {role!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
