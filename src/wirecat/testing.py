"""Helpers for tests of servers and clients, wirecat's own and users' alike.

Every wait has a deadline and none is a sleep: :func:`wait_for_port` retries
``connect()`` until it succeeds, :func:`read_line_matching` reads a stream
until a line matches. Only loopback addresses are used.

:func:`check_stream` is a conformance battery for anything that carries a
byte stream both ways (after trio's ``check_two_way_stream``): two
endpoints, or two ends of a path through an engine (a relay, a session),
must pass 1 MiB full duplex in random chunks, half-close each way, refuse a
send after their own end of stream, wake a reader when the other side goes,
and pass a reset on.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import selectors
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import IO, Protocol

__all__ = ["StreamEnd", "check_stream", "free_port", "read_line_matching", "wait_for_port"]


def free_port(host: str = "127.0.0.1", *, udp: bool = False) -> int:
    """A port that was free on ``host`` a moment ago (bind to port 0, then close).

    Prefer giving the server port 0 and reading back the port it got; use this
    only for programs that cannot report their port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(family, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, *, timeout: float = 10.0) -> None:
    """Return once something accepts TCP connections on ``host:port``.

    Raises:
        TimeoutError: nothing accepted within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listened on {host}:{port} within {timeout} s") from None
            # Retry pacing, not synchronisation: the deadline above bounds it.
            time.sleep(0.01)


def read_line_matching(stream: IO[bytes], pattern: str, *, timeout: float = 10.0) -> re.Match[str]:
    """Read ``stream`` line by line until one matches ``pattern``; return the match.

    Lines read before the match are discarded; lines read past it (in the
    same chunk) are kept for the next call on the same stream. The stream is
    read with ``os.read`` on its descriptor, so it must not be read elsewhere
    at once.

    Raises:
        TimeoutError: no line matched within ``timeout`` seconds, or the
            stream ended first (the lines seen are in the message).
    """
    regex = re.compile(pattern)
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    seen = _leftovers.pop(stream, b"")
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            while b"\n" in seen:
                line, seen = seen.split(b"\n", 1)
                match = regex.search(line.decode(errors="replace"))
                if match:
                    if seen:
                        _leftovers[stream] = seen
                    return match
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"no line matched {pattern!r} within {timeout} s; pending: {seen!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise TimeoutError(f"stream ended before a line matched {pattern!r}; rest: {seen!r}")
            seen += chunk


#: Bytes read past a matching line, per stream, for the next call.
_leftovers: weakref.WeakKeyDictionary[IO[bytes], bytes] = weakref.WeakKeyDictionary()


class StreamEnd(Protocol):
    """One end of a byte stream, as :func:`check_stream` drives it
    (a :class:`wirecat.endpoint.Endpoint` is one)."""

    @property
    def read_fd(self) -> int:
        """Readable when bytes (or the end) can be read."""
        ...

    @property
    def write_fd(self) -> int:
        """Writable when bytes can be sent."""
        ...

    def recv_into(self, buffer: bytearray | memoryview) -> int:
        """Read; 0 at the end of the stream."""
        ...

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Write some; how much was taken."""
        ...

    def shutdown_write(self) -> None:
        """Half-close: no more bytes from this end."""
        ...

    def abort(self) -> None:
        """Cut off now (a reset where the transport has one)."""
        ...

    def close(self) -> None:
        """Let go of it."""
        ...


#: How long any one step of the battery may take.
_STEP = 20.0


def _wait(fd: int, event: int, deadline: float) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(fd, event)
        left = deadline - time.monotonic()
        if left <= 0 or not selector.select(left):
            raise TimeoutError("the stream made no progress within the deadline")


def _send_all(end: StreamEnd, data: bytes, rng: random.Random, deadline: float) -> None:
    view = memoryview(data)
    while view:
        chunk = view[: rng.randint(1, 65536)]
        try:
            view = view[end.send(chunk) :]
        except BlockingIOError:
            _wait(end.write_fd, selectors.EVENT_WRITE, deadline)


def _recv_all(end: StreamEnd, deadline: float) -> bytes:
    """Everything until the end of the stream (a reset counts as its end here)."""
    data = bytearray()
    buffer = bytearray(65536)
    while True:
        try:
            n = end.recv_into(buffer)
        except BlockingIOError:
            _wait(end.read_fd, selectors.EVENT_READ, deadline)
            continue
        except ConnectionResetError:
            return bytes(data)
        if n == 0:
            return bytes(data)
        data += buffer[:n]


def _recv_outcome(end: StreamEnd, deadline: float) -> str:
    """``"eof"``, ``"reset"`` or ``"data"``: what the next read brings."""
    buffer = bytearray(65536)
    while True:
        try:
            n = end.recv_into(buffer)
        except BlockingIOError:
            _wait(end.read_fd, selectors.EVENT_READ, deadline)
            continue
        except ConnectionResetError:
            return "reset"
        return "eof" if n == 0 else "data"


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []

    def run() -> None:
        try:
            result.append(target())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _joined(thread: threading.Thread, result: list[object]) -> object:
    thread.join(_STEP)
    assert not thread.is_alive(), "a stream operation hung"
    if result and isinstance(result[0], BaseException):
        raise result[0]
    return result[0] if result else None


def check_stream(
    make_pair: Callable[[], tuple[StreamEnd, StreamEnd]],
    *,
    resets: bool = True,
    b_half_close: bool = True,
    seed: int = 0,
) -> None:
    """Run the stream conformance battery on fresh pairs from ``make_pair``.

    ``make_pair()`` gives two ends (A, B) of one stream: bytes sent at A come
    out at B and the other way round. Each check gets its own pair:

    1. 1 MiB each way at once, in random chunks (seeded): both arrive whole;
    2. A half-closes: B reads the end of the stream, and can still send to A;
    3. the same from B's side;
    4. A sends after its own half-close: an error, never bytes that vanish;
    5. B waits in a read and A closes: B wakes (the end, or a reset);
    6. with ``resets``, A aborts: B's next read is a reset, not an orderly end.

    ``b_half_close=False`` leaves out B's half-close (3.) for paths where B's
    end of stream does not end A's side by itself: a program's stdout stays
    open until it exits, which the stdio session waits for A's end to allow.

    Raises:
        AssertionError: a check failed (the message says which).
    """
    rng = random.Random(seed)

    # 1. full duplex
    a, b = make_pair()
    try:
        up, down = rng.randbytes(1 << 20), rng.randbytes(1 << 20)
        deadline = time.monotonic() + _STEP

        def a_sends() -> None:
            _send_all(a, up, random.Random(seed + 1), deadline)
            a.shutdown_write()

        def a_side() -> bytes:
            sender, sent = _in_thread(a_sends)
            got = _recv_all(a, deadline)
            _joined(sender, sent)
            return got

        a_thread, a_result = _in_thread(a_side)
        _send_all(b, down, random.Random(seed + 2), deadline)
        b.shutdown_write()
        got_at_b = _recv_all(b, deadline)
        got_at_a = _joined(a_thread, a_result)
        assert hashlib.sha256(got_at_b).digest() == hashlib.sha256(up).digest(), "A to B: bytes differ"
        assert got_at_a == down, "B to A: bytes differ"
    finally:
        a.close()
        b.close()

    # 2 and 3. half-close each way
    for first, second, name in ((0, 1, "A"), (1, 0, "B"))[: 2 if b_half_close else 1]:
        ends = make_pair()
        try:
            closer, other = ends[first], ends[second]
            deadline = time.monotonic() + _STEP
            closer.shutdown_write()
            assert _recv_all(other, deadline) == b"", f"{name} half-closed: the other end did not see the end"
            _send_all(other, b"reply after the end", rng, deadline)
            other.shutdown_write()
            assert _recv_all(closer, deadline) == b"reply after the end", (
                f"{name} half-closed: the reply did not come back"
            )
        finally:
            ends[0].close()
            ends[1].close()

    # 4. send after our own end of stream
    a, b = make_pair()
    try:
        a.shutdown_write()
        try:
            a.send(b"too late")
        except OSError:
            pass
        else:
            raise AssertionError("a send after the half-close did not fail")
    finally:
        a.close()
        b.close()

    # 5. close while the other end waits in a read
    a, b = make_pair()
    try:
        deadline = time.monotonic() + _STEP
        reading = threading.Event()

        def read_b() -> str:
            reading.set()  # from here the reader is in its read, or about to wait in it
            return _recv_outcome(b, deadline)

        reader, result = _in_thread(read_b)
        assert reading.wait(_STEP)
        a.close()
        outcome = _joined(reader, result)
        assert outcome in ("eof", "reset"), f"a reader was not woken by the close: {outcome}"
    finally:
        b.close()

    # 6. a reset passed on
    if resets:
        a, b = make_pair()
        try:
            a.abort()
            a.close()
            outcome = _recv_outcome(b, time.monotonic() + _STEP)
            assert outcome == "reset", f"an abort reached the other end as {outcome!r}, not as a reset"
        finally:
            b.close()
