"""The peer programs wirecat is tested against, and how to wait on them.

Each :class:`Peer` builds the command line a user would type for one job
(listen or connect, over TCP on IPv4 or IPv6, UDP, or a Unix socket) in one of
three modes:

``send``
    read stdin, send it, then end the write side (FIN);
``recv``
    print what arrives, send nothing;
``duplex``
    send stdin, half-close at its end, and keep printing the reply until the
    other side closes: the request/response client.

The peers cannot report a port they picked, so their listeners are given a
port from :func:`wirecat.testing.free_port` and waited for by reading
``/proc/net``: :func:`wirecat.testing.wait_for_port` would connect, and so use
up a one-shot listener's only connection.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar, Literal

from tests.conftest import require_peer

__all__ = [
    "PEERS",
    "Endpoint",
    "Mode",
    "Peer",
    "file_sha256",
    "read_exact",
    "wait_for_listener",
]

Mode = Literal["send", "recv", "duplex"]

#: socat waits only 0.5 s (its -t default) for the other direction after one
#: ends, and would cut off a late reply; this is long enough for any reply here.
SOCAT_LINGER = "30"


@dataclass(frozen=True)
class Endpoint:
    """Where a listener is (or will be): TCP/UDP ``host:port`` or a Unix path."""

    kind: Literal["tcp", "udp", "unix"]
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_v6(self) -> bool:
        """True for an IPv6 host."""
        return ":" in self.host

    def wirecat_args(self) -> list[str]:
        """The address as wirecat's command line takes it."""
        if self.kind == "unix":
            return [f"unix:{self.path}"]
        args = [self.host, str(self.port)]
        return ["-u", *args] if self.kind == "udp" else args

    def with_port(self, port: int) -> Endpoint:
        """The same endpoint on ``port``."""
        return Endpoint(self.kind, self.host, port, self.path)


class Peer:
    """A peer program; subclasses build its command lines."""

    name = ""

    def program(self) -> str:
        """Path of the program; skips (or fails under WIRECAT_REQUIRE_PEERS=1) if missing."""
        return require_peer(self.name)

    def listen_argv(self, ep: Endpoint, mode: Mode) -> list[str]:
        """Listen on ``ep`` for one client, joined to stdin/stdout in ``mode``."""
        raise NotImplementedError

    def connect_argv(self, ep: Endpoint, mode: Mode) -> list[str]:
        """Connect to ``ep``, joined to stdin/stdout in ``mode``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class Socat(Peer):
    """socat: two addresses joined; ``-u`` for one direction only."""

    name = "socat"

    @staticmethod
    def _host(ep: Endpoint) -> str:
        return f"[{ep.host}]" if ep.is_v6 else ep.host

    def listen_address(self, ep: Endpoint) -> str:
        """socat's address for a listener on ``ep``."""
        if ep.kind == "unix":
            return f"UNIX-LISTEN:{ep.path}"
        version = "6" if ep.is_v6 else "4"
        return f"{ep.kind.upper()}{version}-LISTEN:{ep.port},bind={self._host(ep)},reuseaddr"

    def connect_address(self, ep: Endpoint) -> str:
        """socat's address for a client of ``ep``."""
        if ep.kind == "unix":
            return f"UNIX-CONNECT:{ep.path}"
        version = "6" if ep.is_v6 else "4"
        return f"{ep.kind.upper()}{version}:{self._host(ep)}:{ep.port}"

    def _argv(self, address: str, mode: Mode) -> list[str]:
        if mode == "send":
            return [self.program(), "-u", "STDIN", address]
        if mode == "recv":
            return [self.program(), "-u", address, "STDOUT"]
        return [self.program(), "-t", SOCAT_LINGER, "STDIO", address]

    def listen_argv(self, ep: Endpoint, mode: Mode) -> list[str]:
        return self._argv(self.listen_address(ep), mode)

    def connect_argv(self, ep: Endpoint, mode: Mode) -> list[str]:
        return self._argv(self.connect_address(ep), mode)


class Ncat(Peer):
    """Nmap's ncat; it half-closes at end of stdin by default (7.93)."""

    name = "ncat"
    _modes: ClassVar[dict[str, list[str]]] = {"send": ["--send-only"], "recv": ["--recv-only"], "duplex": []}

    def _base(self, ep: Endpoint, mode: Mode) -> list[str]:
        argv = [self.program(), *self._modes[mode]]
        if ep.kind == "unix":
            return [*argv, "-U"]
        argv.append("-6" if ep.is_v6 else "-4")
        return [*argv, "-u"] if ep.kind == "udp" else argv

    def listen_argv(self, ep: Endpoint, mode: Mode) -> list[str]:
        where = [ep.path] if ep.kind == "unix" else [ep.host, str(ep.port)]
        return [*self._base(ep, mode), "-l", *where]

    def connect_argv(self, ep: Endpoint, mode: Mode) -> list[str]:
        where = [ep.path] if ep.kind == "unix" else [ep.host, str(ep.port)]
        return [*self._base(ep, mode), *where]


class OpenBsdNc(Peer):
    """netcat-openbsd: ``-N`` sends FIN at end of stdin, ``-d`` leaves stdin alone."""

    name = "nc"

    def program(self) -> str:
        # Debian installs it as nc.openbsd; plain "nc" may be another netcat
        # whose flags differ, so prefer the unambiguous name.
        return shutil.which("nc.openbsd") or require_peer("nc")

    def _base(self, ep: Endpoint, mode: Mode) -> list[str]:
        argv = [self.program()]
        if ep.kind == "udp":
            argv += ["-u"]  # -N makes no sense without a stream to shut down
        elif mode in ("send", "duplex"):
            argv += ["-N"]
        if mode == "recv":
            argv += ["-d"]
        if ep.kind == "unix":
            return [*argv, "-U"]
        return [*argv, "-6" if ep.is_v6 else "-4"]

    def listen_argv(self, ep: Endpoint, mode: Mode) -> list[str]:
        where = [ep.path] if ep.kind == "unix" else [ep.host, str(ep.port)]
        return [*self._base(ep, mode), "-l", *where]

    def connect_argv(self, ep: Endpoint, mode: Mode) -> list[str]:
        where = [ep.path] if ep.kind == "unix" else [ep.host, str(ep.port)]
        return [*self._base(ep, mode), *where]


PEERS: dict[str, Peer] = {peer.name: peer for peer in (Socat(), Ncat(), OpenBsdNc())}


def _proc_hex(host: str) -> str:
    """``host`` as /proc/net/{tcp,udp}[6] prints it: 32-bit words in host byte order."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    packed = socket.inet_pton(family, host)
    return "".join(f"{int.from_bytes(packed[i : i + 4], 'little'):08X}" for i in range(0, len(packed), 4))


def _is_listening(ep: Endpoint) -> bool:
    if ep.kind == "unix":
        with open("/proc/net/unix") as table:
            for line in table.read().splitlines()[1:]:
                fields = line.split()
                # Flags has __SO_ACCEPTCON (0x10000) once listen() was called:
                # the file alone exists from bind() on, and refuses until then.
                if len(fields) >= 8 and fields[7] == ep.path and int(fields[3], 16) & 0x10000:
                    return True
        return False
    table_name = f"/proc/net/{ep.kind}{'6' if ep.is_v6 else ''}"
    wanted = f"{_proc_hex(ep.host)}:{ep.port:04X}"
    with open(table_name) as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            # TCP: state 0A is LISTEN. UDP: bound is all there is to wait for.
            if fields[1] == wanted and (ep.kind == "udp" or fields[3] == "0A"):
                return True
    return False


def wait_for_listener(ep: Endpoint, *, timeout: float = 10.0) -> None:
    """Return once something listens on ``ep`` (UDP: is bound), without connecting.

    Raises:
        TimeoutError: nothing was listening within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not _is_listening(ep):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listened on {ep} within {timeout} s")
        # Polling pace, not synchronisation: the deadline bounds the wait.
        time.sleep(0.01)


def read_exact(
    stream: IO[bytes],
    size: int,
    *,
    timeout: float = 10.0,
    on_stall: Callable[[], None] | None = None,
    stall: float = 1.0,
) -> bytes:
    """Read exactly ``size`` bytes from a pipe, with a deadline.

    ``on_stall``, if given, is called each time nothing came for ``stall``
    seconds (to nudge a peer that sits on bytes it has: see its callers).

    Raises:
        TimeoutError: fewer bytes came within ``timeout`` seconds, or the
            stream ended first (what came is in the message).
    """
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    data = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(data) < size:
            left = deadline - time.monotonic()
            if left > 0 and on_stall is not None and not selector.select(min(left, stall)):
                on_stall()
                continue
            if left <= 0 or not selector.select(left):
                raise TimeoutError(
                    f"got {len(data)} of {size} bytes within {timeout} s: {bytes(data)[:80]!r}"
                )
            chunk = os.read(fd, size - len(data))
            if not chunk:
                raise TimeoutError(f"stream ended after {len(data)} of {size} bytes: {bytes(data)[:80]!r}")
            data += chunk
    return bytes(data)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (payloads here are up to 100 MiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
