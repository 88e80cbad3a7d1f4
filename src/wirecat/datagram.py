"""What both datagram jobs share (``connect -u`` and ``listen -u``): the rules for
datagrams joined to stdin and stdout, and the pieces that keep them.

A datagram socket has no connection, no FIN and no flow control, so the
stream rules of :mod:`wirecat.session` cannot apply as they are.

Both sides
    One ``read()`` of stdin becomes one datagram, as in nc and ncat. A read is
    at most :data:`~wirecat.limits.MAX_DATAGRAM` bytes (the IPv4 limit), so it
    fits; if ``-C`` makes it longer it is split into several datagrams, never
    truncated. Each datagram received is written to stdout as it is (an empty
    one writes nothing). stdin is read only when the previous datagram has
    left, so a slow socket slows stdin instead of growing memory. A closed
    stdout (``| head``) ends quietly.

The jobs are ``wirecat.apps.udp_connect`` and ``wirecat.apps.udp_listen``.
Each runs in one thread on a ``selectors.PollSelector`` (poll, not
epoll: stdin may be a regular file or ``/dev/null``), without asyncio, which
would cost ~55 ms of start-up.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from wirecat.errors import WirecatError
from wirecat.events import Note, emit
from wirecat.limits import MAX_DATAGRAM
from wirecat.report import Reporter
from wirecat.stdio import fd_is_open, read_stdin

__all__ = [
    "BATCH",
    "READ_SIZE",
    "DatagramStdin",
    "Ended",
    "SockAddr",
    "count_datagrams",
    "receive",
    "split_datagrams",
    "tune",
    "warn_truncated",
]

#: Receive buffer asked of the kernel (it clamps to net.core.rmem_max, then
#: doubles). UDP has no flow control: a burst larger than the default ~208 KiB
#: is dropped by the kernel before we are even scheduled to read it.
SO_RCVBUF_ASKED = 4 * 1024 * 1024
#: Our read buffer: above the largest UDP payload (65527 bytes over IPv6);
#: Unix datagrams may be larger, and a longer one is reported, not hidden.
READ_SIZE = 256 * 1024
#: Datagrams read per wake-up before looking at stdin again, for fairness.
BATCH = 64

#: A socket address as the ``socket`` module gives it: an (host, port, ...)
#: tuple, a Unix path, or an abstract Unix name (bytes, starting with NUL).
SockAddr = tuple[Any, ...] | str | bytes


class Ended(Exception):
    """The session is over; carries how it ended."""

    def __init__(self, ending: str, error: WirecatError | None = None) -> None:
        super().__init__(ending)
        self.ending = ending
        self.error = error


def tune(sock: socket.socket) -> None:
    """The options every datagram socket of ours gets, each for a reason."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SO_RCVBUF_ASKED)
    except OSError:
        pass  # a smaller buffer only means more drops under bursts
    sock.setblocking(False)  # one thread serves stdin, stdout and the socket


def split_datagrams(data: bytes) -> list[bytes]:
    """Cut ``data`` into datagrams of at most MAX_DATAGRAM bytes, in order."""
    return [data[i : i + MAX_DATAGRAM] for i in range(0, len(data), MAX_DATAGRAM)]


class DatagramStdin:
    """stdin as a source of datagrams: one read each, ``-C`` applied, split."""

    def __init__(self, enabled: bool, crlf: bool, report: Reporter) -> None:
        self.open = enabled and fd_is_open(0)
        self.report = report
        self.encode: Callable[[bytes], bytes] | None = None
        if crlf:
            from wirecat.crlf import CrlfEncoder

            self.encode = CrlfEncoder().feed

    def read(self) -> list[bytes]:
        """One read; an empty list at end of stdin (then ``open`` is False)."""
        data = read_stdin(MAX_DATAGRAM)
        if data is None:
            return []  # a non-blocking stdin with nothing now (still open)
        if not data:
            self.open = False
            return []
        if self.encode is not None:
            data = self.encode(data)
        return split_datagrams(data)


def receive(sock: socket.socket, buffer: bytearray) -> tuple[int, SockAddr | None]:
    """``recvfrom_into`` that also learns a datagram's real size (MSG_TRUNC)."""
    n, sockaddr = sock.recvfrom_into(buffer, 0, socket.MSG_TRUNC)
    return n, sockaddr


def count_datagrams(n: int) -> str:
    return f"{n} datagram" if n == 1 else f"{n} datagrams"


def warn_truncated(n: int, where: str) -> None:
    # Always said, -v or not: bytes were lost and the user must know.
    emit(Note(f"a datagram of {n} bytes from {where} was cut to {READ_SIZE} bytes", "warning", "udp"))
