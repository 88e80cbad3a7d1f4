"""``wirecat send`` / ``wirecat recv``: the command-line job around :mod:`wirecat.transfer`.

What the library does not: the progress line on a terminal, the one-line
summary, each file's line under ``-v``, and ``recv -k`` (a receiver that
keeps listening, one thread per sender up to ``--max-conns``).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from wirecat.address import Address
from wirecat.errors import WirecatError
from wirecat.events import Accepted, Listening, Note, emit
from wirecat.protocol.transfer import DIGEST_NAME
from wirecat.report import say
from wirecat.transfer import (
    FileResult,
    Progress,
    ProgressCallback,
    TransferResult,
    handshake,
    receive_over,
)

if TYPE_CHECKING:
    from wirecat.tls import ServerTLS

__all__ = ["ProgressLine", "describe_result", "human_bytes", "receive_forever", "summary"]


def human_bytes(count: float) -> str:
    """``2.1 GB``, ``512 kB``, ``17 B``: decimal units, as ``ls -h --si`` and network rates."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"  # (not reached)


def summary(result: TransferResult, verb: str) -> str:
    """``received 3 files, 2.1 GB in 1.9 s, all verified`` (or what went wrong)."""
    files = [r for r in result.files if r.kind == "file"]
    good = [r for r in files if r.verdict == "ok"]
    others = len(result.files) - len(files)
    counted = f"{len(good)} file{'s' if len(good) != 1 else ''}"
    if len(good) != len(files):
        counted = f"{len(good)} of {len(files)} file{'s' if len(files) != 1 else ''}"
    if others:
        counted += f" (and {others} director{'ies' if others != 1 else 'y'} or links)"
    line = f"{verb} {counted}, {human_bytes(result.bytes)} in {result.seconds:.1f} s"
    skipped = sum(r.verdict == "skipped" for r in result.files)
    failed = [r for r in result.files if not r.is_ok]
    if not failed:
        return line + (", all verified" if not skipped else f", verified; {skipped} skipped (they exist)")
    kinds: dict[str, int] = {}
    for r in failed:
        kinds[r.verdict] = kinds.get(r.verdict, 0) + 1
    return line + ": " + ", ".join(f"{n} {kind}" for kind, n in kinds.items())


def describe_result(result: FileResult) -> str:
    """One entry's line for ``-v``."""
    if result.kind != "file":
        return f"{result.kind} {result.name}: {result.verdict}{': ' + result.reason if result.reason else ''}"
    text = f"{result.name}: {result.verdict}, {human_bytes(result.size)}"
    if result.digest and result.verdict == "ok":
        text += f", {DIGEST_NAME} {result.digest}"  # as `b3sum FILE` prints it
    if result.resumed_from:
        text += f", resumed at {result.resumed_from}"
    if result.saved_as and result.saved_as != result.name:
        text += f", saved as {result.saved_as}"
    if result.reason:
        text += f": {result.reason}"
    return text


class ProgressLine:
    """The progress display: on a terminal one line per file rewritten in place
    (bytes, rate, ETA, the total); elsewhere (``--progress`` on a pipe) one
    line per file when it ends."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal
        self.width = 0

    def __call__(self, progress: Progress) -> None:
        rate = progress.total_done / progress.seconds if progress.seconds > 0 else 0.0
        left = progress.total_size - progress.total_done
        eta = f", ETA {left / rate:.0f} s" if rate > 0 and left > 0 and not progress.finished else ""
        total = (
            f" [total {human_bytes(progress.total_done)} of {human_bytes(progress.total_size)}]"
            if progress.total_size
            else ""
        )
        text = (
            f"{progress.name}: {human_bytes(progress.done)} of {human_bytes(progress.size)},"
            f" {human_bytes(rate)}/s{eta}{total}"
        )
        if self.terminal:
            padding = " " * max(0, self.width - len(text))
            self.width = len(text)
            end = "\n" if progress.finished else ""
            if progress.finished:
                self.width = 0
            _write_err(f"\r{text}{padding}{end}")
        elif progress.finished:
            say(text)


def _write_err(text: str) -> None:
    data = text.encode(errors="replace")
    try:
        while data:
            data = data[os.write(2, data) :]
    except OSError:
        pass


def progress_for(flag: bool) -> ProgressCallback | None:
    """The progress callback: on a terminal, or with ``--progress``; None otherwise."""
    terminal = os.isatty(2)
    if terminal or flag:
        return ProgressLine(terminal)
    return None


def report(result: TransferResult, verb: str, text_mode: bool) -> None:
    """Each entry under ``-v``, then the summary (said in text mode; a note under ``--json``)."""
    for entry in result.files:
        emit(Note(describe_result(entry), "info", verb))
    line = summary(result, "received" if verb == "recv" else "sent")
    if text_mode:
        say(f"wirecat: {line}")
    else:
        emit(Note(line, "info", verb))


def receive_forever(
    directory: str,
    address: Address,
    *,
    max_conns: int,
    receive: Callable[[socket.socket, str], TransferResult],
    family: socket.AddressFamily = socket.AF_UNSPEC,
    on_result: Callable[[TransferResult, str], None] = lambda result, peer: None,
    on_listening: Callable[[list[str]], None] | None = None,
    tls: ServerTLS | None = None,
    handshake_timeout: float | None = None,
) -> None:
    """``recv -k``: receive transfers until interrupted, up to ``max_conns`` at once.

    Each connection runs :func:`wirecat.transfer.receive_over` (through
    ``receive``) in its own thread; a failed transfer is said and the
    listener goes on. Returns only by an exception (Ctrl-C).
    """
    from wirecat.admission import Admission
    from wirecat.bind import bind
    from wirecat.sockets import accept_one, configure_stream

    admission = Admission(max_connections=max_conns)
    active: set[threading.Thread] = set()
    lock = threading.Lock()

    def count() -> int:
        with lock:
            return len(active)

    def serve(sock: socket.socket, peer: str) -> None:
        try:
            if tls is not None:  # in this thread: a slow handshake holds up no other sender
                try:
                    sock = handshake(sock, tls, peer, timeout=handshake_timeout)
                except BaseException:
                    sock.close()
                    raise
            with sock:
                result = receive(sock, peer)
            on_result(result, peer)
        except WirecatError as exc:
            emit(Note(f"transfer from {peer} failed: {exc}", "warning", "recv"))
        finally:
            with lock:
                active.discard(threading.current_thread())

    with bind(address, family=family) as bound:
        emit(Listening(tuple(bound.names), "recv"))
        if on_listening is not None:
            on_listening(bound.names)
        while True:
            sock, peer = accept_one(bound.sockets, admission, active=count, origin="recv")
            configure_stream(sock, interactive=True)
            emit(Accepted(peer, bound.names[0], count() + 1, "recv"))
            thread = threading.Thread(target=serve, args=(sock, peer), name=f"recv {peer}", daemon=True)
            with lock:
                active.add(thread)
            thread.start()


def receive_one(
    sock: socket.socket,
    peer: str,
    directory: str,
    **settings: object,
) -> TransferResult:
    """One connection's transfer (the ``receive`` of :func:`receive_forever`)."""
    return receive_over(sock, directory, peer=peer, **settings)  # type: ignore[arg-type]
