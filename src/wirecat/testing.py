"""Helpers for tests of servers and clients, wirecat's own and users' alike.

Every wait has a deadline and none is a sleep: :func:`wait_for_port` retries
``connect()`` until it succeeds, :func:`read_line_matching` reads a stream
until a line matches. Only loopback addresses are used.
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import time
import weakref
from typing import IO

__all__ = ["free_port", "read_line_matching", "wait_for_port"]


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
