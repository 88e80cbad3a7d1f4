#!/usr/bin/env python3
"""File transfer over loopback: ``wirecat send``→``recv`` against raw bulk and tar over nc.

    python benchmarks/transfer.py --size 2G --files 10000 --reps 3 [--dir /dev/shm]

Two measures, in one run (ratios compare only within a run):

* **One large file** of SIZE (page cache warm: read once before timing),
  written by the receiver into ``--dir``:

  - ``send``→``recv``: ``wirecat recv --dir OUT 0`` and
    ``wirecat send FILE 127.0.0.1:PORT`` (names, BLAKE3 at both ends,
    fsync, rename);
  - wirecat's own raw bulk: ``wirecat listen 127.0.0.1 0 > OUT/file`` and
    ``wirecat connect 127.0.0.1 PORT < FILE`` (no name, no digest, no fsync);
  - ``nc``: ``nc -l 127.0.0.1 PORT > OUT/file`` and ``nc -N 127.0.0.1 PORT < FILE``.

* **Over TLS** (``--tls``): ``recv --tls`` (a certificate made at start)
  and ``send --tls --pin …`` as the receiver prints it, against socat
  ``OPENSSL-LISTEN`` → ``OPENSSL`` tuned (``-b 262144``, an ECDSA P-256
  certificate from ``openssl req``, ``verify=0``), the same file.

* **Many small files** (FILES × 4 KiB in one directory): ``send``→``recv``
  against ``tar c DIR | nc -N`` → ``nc -l | tar x`` (files per second).

Wall time runs from starting the client until both ends have exited. Cases
are interleaved round by round; the median is reported. Every output is
checked (size, and the SHA-256 of the large file) in the first round.
Loopback only; every process is ended by its PID.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Child, median, read_port_line, require, wait_listening, wirecat_bin

from wirecat.testing import free_port

HOST = "127.0.0.1"
GB = 1e9


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def make_big(path: str, size: int) -> str:
    block = hashlib.sha256(b"wirecat").digest() * (1 << 15)  # 1 MiB, not zeros
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    with open(path, "rb") as f:  # warm the page cache
        while f.read(1 << 24):
            pass
    return digest.hexdigest()


def run_pair(
    listener: list[str],
    client: list[str],
    *,
    port_from_stderr: bool,
    port: int,
    listener_stdout: object = None,
    client_stdin: object = None,
    shell: bool = False,
) -> float:
    """Start the listener, wait until it listens, time the client until both exited."""
    listen = Child.start(
        "listener", listener, stdout=listener_stdout or subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        if port_from_stderr:
            assert listen.popen.stderr is not None
            port = read_port_line(listen.popen.stderr, listen)
        else:
            wait_listening(port, listen)
        argv = [word.replace("{port}", str(port)) for word in client]
        start = time.perf_counter()
        child = Child.start(
            "client",
            argv,
            stdin=client_stdin or subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not child.wait(600) or not listen.wait(600):
            raise RuntimeError("a transfer did not finish in 600 s")
        if child.status or listen.status:
            err = child.popen.stderr.read() if child.popen.stderr else b""
            raise RuntimeError(f"exit {child.status}/{listen.status}: {argv}: {err[-300:]!r}")
        return max(child.ended, listen.ended) - start
    finally:
        listen.kill()
        for stream in (listen.popen.stderr,):
            if stream is not None:
                stream.close()


def shell_pair(listener: str, client: str, port: int) -> float:
    """The same for shell pipelines (tar | nc): the port is known, waited for in the socket table."""
    listen = Child.start("listener", ["/bin/sh", "-c", listener], stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, listen)
        start = time.perf_counter()
        child = Child.start("client", ["/bin/sh", "-c", client], stdout=subprocess.DEVNULL)
        if not child.wait(600) or not listen.wait(600):
            raise RuntimeError("a transfer did not finish in 600 s")
        if child.status or listen.status:
            raise RuntimeError(f"exit {child.status}/{listen.status}: {client}")
        return max(child.ended, listen.ended) - start
    finally:
        listen.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2G")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--dir", default=None, help="where files are written (default: a temporary directory)"
    )
    parser.add_argument(
        "--tls", action="store_true", help="also measure TLS: send→recv against socat OPENSSL"
    )
    args = parser.parse_args()
    socat = require("socat") if args.tls else None
    wirecat = wirecat_bin()
    nc = require("nc")
    tar = require("tar")
    size = parse_size(args.size)
    work = tempfile.mkdtemp(prefix="wirecat-transfer-", dir=args.dir)
    try:
        source = os.path.join(work, "source")
        os.mkdir(source)
        big = os.path.join(source, "big.bin")
        expected = make_big(big, size)
        small = os.path.join(source, "small")
        os.mkdir(small)
        block = os.urandom(4096)
        for index in range(args.files):
            with open(os.path.join(small, f"f{index:06d}"), "wb") as f:
                f.write(block)
        out = os.path.join(work, "out")

        def fresh() -> str:
            shutil.rmtree(out, ignore_errors=True)
            os.mkdir(out)
            subprocess.run(["sync"], check=False)  # no earlier round's dirty pages in this one's time
            return out

        def send_recv() -> float:
            return run_pair(
                [wirecat, "recv", "--dir", fresh(), "0"],
                [wirecat, "send", big, f"{HOST}:{{port}}"],
                port_from_stderr=True,
                port=0,
            )

        def raw_bulk() -> float:
            fresh()
            with open(os.path.join(out, "big.bin"), "wb") as sink, open(big, "rb") as stdin:
                return run_pair(
                    [wirecat, "listen", HOST, "0"],
                    [wirecat, "connect", HOST, "{port}"],
                    port_from_stderr=True,
                    port=0,
                    listener_stdout=sink,
                    client_stdin=stdin,
                )

        def netcat() -> float:
            fresh()
            port = free_port()
            with open(os.path.join(out, "big.bin"), "wb") as sink, open(big, "rb") as stdin:
                return run_pair(
                    [nc, "-l", HOST, str(port)],
                    [nc, "-N", HOST, "{port}"],
                    port_from_stderr=False,
                    port=port,
                    listener_stdout=sink,
                    client_stdin=stdin,
                )

        def small_send_recv() -> float:
            return run_pair(
                [wirecat, "recv", "--dir", fresh(), "0"],
                [wirecat, "send", small, f"{HOST}:{{port}}"],
                port_from_stderr=True,
                port=0,
            )

        def small_tar() -> float:
            fresh()
            port = free_port()
            return shell_pair(
                f"{nc} -l {HOST} {port} | {tar} x -C {out}",
                f"{tar} c -C {source} small | {nc} -N {HOST} {port}",
                port,
            )

        def tls_send_recv() -> float:
            listen = Child.start(
                "listener", [wirecat, "recv", "--tls", "--dir", fresh(), "0"], stderr=subprocess.PIPE
            )
            try:
                from wirecat.testing import read_line_matching

                assert listen.popen.stderr is not None
                words = read_line_matching(listen.popen.stderr, r"on the other side run: (.*)$", timeout=20)
                argv = [wirecat, *[big if w == "FILE..." else w for w in words.group(1).split()[1:]]]
                start = time.perf_counter()
                child = Child.start("client", argv, stdout=subprocess.DEVNULL)
                if not child.wait(600) or not listen.wait(600) or child.status or listen.status:
                    raise RuntimeError(f"TLS transfer failed: {child.status}/{listen.status}")
                return max(child.ended, listen.ended) - start
            finally:
                listen.kill()

        def tls_socat() -> float:
            fresh()
            port = free_port()
            cert, key = os.path.join(work, "c.pem"), os.path.join(work, "k.pem")
            listener = [
                socat,
                "-u",
                "-b",
                "262144",
                f"OPENSSL-LISTEN:{port},bind={HOST},cert={cert},key={key},verify=0",
                f"CREATE:{os.path.join(out, 'big.bin')}",
            ]
            client = [socat, "-u", "-b", "262144", f"FILE:{big}", f"OPENSSL:{HOST}:{{port}},verify=0"]
            return run_pair(listener, client, port_from_stderr=False, port=port)

        large: dict[str, Callable[[], float]] = {
            "send→recv": send_recv,
            "connect<file → listen>file": raw_bulk,
            "nc → nc": netcat,
        }
        if socat is not None:
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    os.path.join(work, "k.pem"),
                    "-out",
                    os.path.join(work, "c.pem"),
                    "-days",
                    "1",
                    "-subj",
                    "/CN=localhost",
                ],
                check=True,
                capture_output=True,
            )
            large |= {"TLS send→recv": tls_send_recv, "TLS socat OPENSSL -b 262144": tls_socat}
        many: dict[str, Callable[[], float]] = {"send→recv": small_send_recv, "tar|nc → nc|tar": small_tar}
        times: dict[str, list[float]] = {f"large {k}": [] for k in large} | {f"small {k}": [] for k in many}
        for round_number in range(args.reps + 1):
            for name, run in large.items():
                seconds = run()
                if round_number == 0:
                    got = os.path.join(out, "big.bin")
                    with open(got, "rb") as f:
                        digest = hashlib.file_digest(f, "sha256").hexdigest()
                    assert digest == expected, f"{name}: wrong bytes"
                else:
                    times[f"large {name}"].append(seconds)
            for name, run in many.items():
                seconds = run()
                if round_number == 0:
                    count = len(os.listdir(os.path.join(out, "small")))
                    assert count == args.files, f"{name}: {count} files"
                else:
                    times[f"small {name}"].append(seconds)
        print(f"one file of {size} bytes, {args.files} files of 4 KiB, in {work}; medians of {args.reps}")
        print("| case | wall s | rate | runs (s) |")
        print("|---|---:|---:|---|")
        for name, values in times.items():
            m = median(values)
            rate = (
                f"{size / m / GB:.2f} GB/s" if name.startswith("large") else f"{args.files / m:,.0f} files/s"
            )
            print(f"| {name} | {m:.2f} | {rate} | {', '.join(f'{v:.2f}' for v in values)} |")
        ours = median(times["large send→recv"])
        small_ratio = median(times["small tar|nc → nc|tar"]) / median(times["small send→recv"])
        if socat is not None:
            tls_ratio = median(times["large TLS socat OPENSSL -b 262144"]) / median(
                times["large TLS send→recv"]
            )
            print(f"TLS send→recv ÷ socat OPENSSL: {tls_ratio:.2f}×")
        print(
            f"send→recv ÷ raw bulk: {median(times['large connect<file → listen>file']) / ours:.2f}×;"
            f" ÷ nc: {median(times['large nc → nc']) / ours:.2f}×;"
            f" small files ÷ tar|nc: {small_ratio:.2f}×"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
