"""``wirecat scan``: which TCP ports of a host accept a connection.

A *connect scan*, as ``nc -z`` and ``nmap -sT`` do it: for each port, start
an ordinary ``connect()`` and see how it ends. No raw sockets, so no
privileges are needed, and the target sees normal connections (which it may
log). Each port ends in one of three states, named as nmap names them:

========  =====================================  ==========================
state     what the kernel told us                ``connect()`` outcome
========  =====================================  ==========================
open      the handshake completed                success
closed    the host answered with a RST           ``ECONNREFUSED``
filtered  no answer within the timeout, or an    timeout, ``EHOSTUNREACH``,
          ICMP error (a firewall, a dead host)   ``ENETUNREACH``, ``EACCES``...
========  =====================================  ==========================

How it runs: up to ``concurrency`` non-blocking sockets at once, watched by
one ``selectors`` selector; each probe has its own deadline of ``timeout``
seconds from its start. Blocking sockets and ``selectors`` rather than
asyncio on purpose: ``import asyncio`` alone costs ~55 ms, and ``wirecat -z``
is used in shell loops (``until wirecat -z db 5432; do sleep 1; done``).

An open port's connection is closed at once with an ordinary ``close()``
(FIN, not RST): the server sees a client that connected and left, the
politest thing a scan can do.
"""

from __future__ import annotations

import enum
import errno
import os
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from wirecat.address import format_hostport
from wirecat.errors import NetworkError, UsageError
from wirecat.limits import DEFAULT_SCAN_CONCURRENCY, DEFAULT_SCAN_TIMEOUT
from wirecat.report import Reporter, quiet
from wirecat.resolve import SocketAddress, resolve
from wirecat.trace import new_socket

__all__ = ["PortResult", "PortState", "ScanResult", "scan_ports"]


class PortState(enum.Enum):
    """How a probe of one port ended."""

    #: The TCP handshake completed: something accepts connections there.
    OPEN = "open"
    #: The host answered with a reset (``ECONNREFUSED``): nothing listens there.
    CLOSED = "closed"
    #: No answer within the timeout, or an ICMP error: a firewall or a dead host.
    FILTERED = "filtered"


class PortResult(NamedTuple):
    """The outcome of probing one port.

    Attributes:
        address: the IP address probed (as getaddrinfo gave it).
        port: the TCP port probed.
        state: open, closed or filtered.
        reason: why, in words ("connected", "connection refused",
            "no answer in 1 s", "no route to host").
    """

    address: str
    port: int
    state: PortState
    reason: str

    def __str__(self) -> str:
        """``127.0.0.1:22 open``, ``[::1]:23 closed``: what ``wirecat scan`` prints."""
        return f"{format_hostport(self.address, self.port)} {self.state.value}"


class ScanResult(NamedTuple):
    """Everything a scan found.

    Attributes:
        endpoint: the one address that was scanned (a host name may resolve
            to several; the first, or the first of the ``family`` asked for,
            is used).
        addresses: every address the host resolved to, ``endpoint`` first.
        results: one entry per port, in ascending port order.
        duration: seconds the scan took, resolution excluded.
    """

    endpoint: SocketAddress
    addresses: tuple[SocketAddress, ...]
    results: tuple[PortResult, ...]
    duration: float

    @property
    def open_ports(self) -> list[int]:
        """The ports found open, ascending."""
        return [r.port for r in self.results if r.state is PortState.OPEN]

    def count_of(self, state: PortState) -> int:
        """How many ports ended in ``state``."""
        return sum(1 for r in self.results if r.state is state)


# errno → state for a connect() that failed. ECONNREFUSED is the only answer
# that proves the host is there and the port closed; nmap treats ICMP
# unreachable (and a local firewall's EACCES/EPERM) as "filtered".
_CLOSED_ERRNOS = {errno.ECONNREFUSED}
# Out of a local resource, not an answer about the port: wait for a probe in
# flight to finish and try again (EMFILE/ENFILE: descriptors; ENOBUFS/ENOMEM:
# kernel memory; EADDRNOTAVAIL: no ephemeral port left for a connection).
_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}


def _reason(code: int) -> str:
    return "connection refused" if code == errno.ECONNREFUSED else os.strerror(code).lower()


def _sockaddr(endpoint: SocketAddress, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
    # An IPv6 sockaddr keeps its flow info and scope id (needed for fe80::%eth0).
    address = endpoint.sockaddr
    if len(address) == 4:
        return (address[0], port, address[2], address[3])
    return (address[0], port)


def _is_self_connect(sock: socket.socket) -> bool:
    # Scanning one's own host across the ephemeral range can hit TCP's
    # "simultaneous open": the kernel picks source port P to connect to port P
    # on the same address, and the socket connects to itself. That is not a
    # server; nmap and the Linux man pages both note the quirk.
    try:
        return bool(sock.getsockname() == sock.getpeername())
    except OSError:
        return False


def scan_ports(
    host: str,
    ports: Sequence[int],
    *,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    numeric: bool = False,
    timeout: float = DEFAULT_SCAN_TIMEOUT,
    concurrency: int = DEFAULT_SCAN_CONCURRENCY,
    on_result: Callable[[PortResult], None] | None = None,
    report: Reporter = quiet,
) -> ScanResult:
    """TCP connect scan of ``ports`` on ``host``.

    Args:
        host: a name or an IP address. A name with several addresses is
            scanned on the first one only (``report`` says which); use
            ``family`` to pick IPv4 or IPv6.
        ports: the ports to probe (duplicates are probed once); see
            :func:`wirecat.address.parse_ports` for ``"22,80,8000-8100"``.
        family: AF_INET (``-4``), AF_INET6 (``-6``) or AF_UNSPEC.
        numeric: ``-n``: ``host`` must be an IP address; no DNS.
        timeout: seconds each port may take to answer before it is called
            filtered. Must be > 0.
        concurrency: most probes in flight at once (each holds one file
            descriptor). Must be ≥ 1. If the process runs out of descriptors
            anyway, fewer run at once; the scan does not fail for it.
        on_result: called with each port's result in ascending port order, as
            soon as that port and every lower one are settled, so a caller can
            print while a long scan goes on.
        report: progress lines (which address is scanned, a summary).

    Returns:
        A :class:`ScanResult` with one result per port, ascending.

    Raises:
        UsageError: a bad port, timeout or concurrency; ``numeric`` with a name.
        ResolveError: the host is unknown or has no address of ``family``.
        NetworkError: the scan cannot start a single probe (e.g. no file
            descriptors at all).
    """
    order = sorted(set(ports))
    if not order:
        raise UsageError("no ports to scan", "give ports such as 22,80,8000-8100")
    bad = [p for p in order if not 1 <= p <= 65535]
    if bad:
        raise UsageError(
            f"bad port {bad[0]}", "give a number from 1 to 65535 (port 0 cannot be connected to)"
        )
    if not timeout > 0:
        raise UsageError(
            f"bad scan timeout {timeout:g}", "give a number of seconds > 0, e.g. 0.5", setting="timeout"
        )
    if concurrency < 1:
        raise UsageError(f"bad concurrency {concurrency}", "give a number ≥ 1")

    addresses = tuple(resolve(host, 0, family=family, numeric=numeric))
    endpoint = addresses[0]
    if len(addresses) > 1:
        others = ", ".join(str(e.sockaddr[0]) for e in addresses[1:])
        report(f"{host} has {len(addresses)} addresses; scanning {endpoint.sockaddr[0]} (not {others})")
    else:
        report(f"scanning {endpoint.sockaddr[0]}: {len(order)} port{'s' * (len(order) != 1)}")

    started = time.monotonic()
    settled: dict[int, PortResult] = {}
    released = 0  # order[:released] have gone to on_result

    def settle(result: PortResult) -> None:
        nonlocal released
        settled[result.port] = result
        while released < len(order) and order[released] in settled:
            if on_result is not None:
                on_result(settled[order[released]])
            released += 1

    # Probes in flight, oldest first. Every probe gets the same timeout, so
    # insertion order is deadline order and the first entry is the next to
    # expire: no heap needed, and dict deletion from the middle is O(1).
    in_flight: dict[socket.socket, tuple[int, float]] = {}
    limit = concurrency
    next_port = 0
    selector = selectors.DefaultSelector()

    def finish(sock: socket.socket, result: PortResult) -> None:
        del in_flight[sock]
        selector.unregister(sock)
        sock.close()
        settle(result)

    try:
        while next_port < len(order) or in_flight:
            # Start probes up to the limit.
            while next_port < len(order) and len(in_flight) < limit:
                port = order[next_port]
                outcome = _start_probe(endpoint, port)
                if isinstance(outcome, int):  # a local resource ran out
                    if not in_flight:
                        where = format_hostport(str(endpoint.sockaddr[0]), port)
                        raise NetworkError(
                            f"cannot scan {where}: {os.strerror(outcome).lower()}",
                            ""
                            if outcome == errno.EADDRNOTAVAIL
                            else "close other programs or raise 'ulimit -n'",
                        )
                    # Run with what we have: the probes in flight are our
                    # share of the resource. Say so once.
                    if limit != len(in_flight):
                        report(f"{os.strerror(outcome).lower()}: probing {len(in_flight)} ports at once")
                    limit = len(in_flight)
                    break
                next_port += 1
                if isinstance(outcome, PortResult):  # answered at once
                    settle(outcome)
                else:
                    in_flight[outcome] = (port, time.monotonic() + timeout)
                    selector.register(outcome, selectors.EVENT_WRITE)
            if not in_flight:
                continue
            # Wait for the next answer, or until the oldest probe expires.
            oldest_deadline = next(iter(in_flight.values()))[1]
            for key, _ in selector.select(max(0.0, oldest_deadline - time.monotonic())):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                port = in_flight[sock][0]
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                finish(sock, _outcome(sock, endpoint, port, code))
            now = time.monotonic()
            expired = [s for s, (_, deadline) in in_flight.items() if deadline <= now]
            for sock in expired:
                port = in_flight[sock][0]
                finish(sock, _result(endpoint, port, PortState.FILTERED, f"no answer in {timeout:g} s"))
    finally:
        for sock in in_flight:
            sock.close()
        selector.close()

    result = ScanResult(
        endpoint=endpoint,
        addresses=addresses,
        results=tuple(settled[p] for p in order),
        duration=time.monotonic() - started,
    )
    report(
        f"scanned {len(order)} port{'s' * (len(order) != 1)} of {endpoint.sockaddr[0]} "
        f"in {result.duration:.2f} s: {result.count_of(PortState.OPEN)} open, "
        f"{result.count_of(PortState.CLOSED)} closed, {result.count_of(PortState.FILTERED)} filtered"
    )
    return result


def _start_probe(endpoint: SocketAddress, port: int) -> socket.socket | PortResult | int:
    """Start a non-blocking connect to ``port``.

    Returns the socket while the answer is pending, a PortResult when the
    kernel answered at once (loopback often refuses synchronously), or an
    errno when a local resource ran out and the probe should be retried.
    """
    try:
        sock = new_socket(endpoint.family, socket.SOCK_STREAM)
    except OSError as exc:
        if exc.errno in _RESOURCE_ERRNOS:
            return exc.errno or errno.EMFILE
        raise
    sock.setblocking(False)
    code = sock.connect_ex(_sockaddr(endpoint, port))
    if code == errno.EINPROGRESS:
        return sock
    if code in _RESOURCE_ERRNOS:
        sock.close()
        return code
    result = _outcome(sock, endpoint, port, code)
    sock.close()
    return result


def _result(endpoint: SocketAddress, port: int, state: PortState, reason: str) -> PortResult:
    return PortResult(str(endpoint.sockaddr[0]), port, state, reason)


def _outcome(sock: socket.socket, endpoint: SocketAddress, port: int, code: int) -> PortResult:
    """The result of a finished connect() with error ``code`` (0 = connected)."""
    if code == 0:
        if _is_self_connect(sock):
            return _result(endpoint, port, PortState.CLOSED, "connected to itself: nothing listens")
        return _result(endpoint, port, PortState.OPEN, "connected")
    if code in _CLOSED_ERRNOS:
        return _result(endpoint, port, PortState.CLOSED, _reason(code))
    return _result(endpoint, port, PortState.FILTERED, _reason(code))
