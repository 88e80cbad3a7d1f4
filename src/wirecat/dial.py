"""The one dialer: :func:`dial` (blocking) and :func:`adial` (async).

Every outgoing stream connection of wirecat is made here: ``connect``, the
blocking client, the library's ``wirecat.connect``, the relay's connection to
its target, and ``--exec`` clients. So these live here once:

* **Happy Eyeballs** (RFC 8305): a name's addresses are raced, a new attempt
  every 250 ms or at once when one fails, the first to connect wins. The race
  is :class:`wirecat.happy_eyeballs.Race`, sans-IO: :func:`dial` drives it
  with ``selectors``, :func:`adial` with the event loop (no thread per
  connection, and every attempt's socket is closed if the race is cancelled
  or times out: no orphan connects after the deadline);
* a **source** address and port (``-s``, ``-p``), which also pins the family;
* **Unix** paths (``unix:/path``, ``unix:@abstract``), with the timeout
  bounding a connect that waits on a full backlog;
* **timeouts** and the **wording** of every failure (one line, the address
  named, the ``OSError`` kept as ``__cause__``).

Why not ``aiohappyeyeballs`` (aio-libs), which races on any loop, uvloop
included: the one-shot commands must not import asyncio (~55 ms of start-up),
so the race must also run blocking; one sans-IO machine serves both drivers,
and the same tests (a fake clock, every ordering) cover both. UDP needs no
race (a datagram ``connect()`` sends nothing): it resolves through
:func:`wirecat.resolve.resolve` and binds its source with :func:`bind_source`.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import stat
import struct
import time
from typing import TYPE_CHECKING

from wirecat.address import (
    Address,
    check_ip_address,
    check_remote_port,
    check_unix_path,
    format_hostport,
    format_sockaddr,
)
from wirecat.errors import ConnectError, ConnectTimeout, ProgramError, UsageError, WirecatError
from wirecat.events import AttemptFailed, Connected, Connecting, emit
from wirecat.happy_eyeballs import Lost, Race, Start, TimedOut, Wait, Won
from wirecat.limits import DEFAULT_HAPPY_EYEBALLS_DELAY
from wirecat.report import Reporter, quiet
from wirecat.resolve import SocketAddress, resolve
from wirecat.sockets import Op, translate_os_error
from wirecat.trace import getaddrinfo, new_socket

if TYPE_CHECKING:
    import asyncio  # only for annotations: the blocking commands never import it

__all__ = ["adial", "bind_source", "dial", "race_async", "race_blocking"]

#: A source address to bind before connecting: (host or "", port or 0).
Source = tuple[str, int]


def bind_source(sock: socket.socket, source: Source | None) -> None:
    """Bind a client socket to ``-s``/``-p`` before it connects (no-op for None).

    An empty host means any address of the socket's family, so ``-p`` alone
    picks only the port. SO_REUSEADDR lets the same source port be used again
    while an earlier connection from it sits in TIME_WAIT.

    Raises:
        BindError: the address is not on this machine, or the port is taken.
    """
    if source is None:
        return
    host = source[0] or ("::" if sock.family == socket.AF_INET6 else "0.0.0.0")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, source[1]))
    except OSError as exc:
        raise translate_os_error(exc, Op.BIND_SOURCE, format_hostport(host, source[1])) from exc


def _attempt_socket(address: SocketAddress, source: Source | None) -> socket.socket:
    """A non-blocking stream socket for one attempt, bound to ``source``."""
    sock = new_socket(address.family, socket.SOCK_STREAM)
    try:
        bind_source(sock, source)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _source_family(host: str, family: socket.AddressFamily) -> socket.AddressFamily:
    """The family a ``-s`` source address forces on the target (a socket has one family)."""
    try:
        check_ip_address(host)
        source_family = getaddrinfo(host, 0, family, 0, 0, socket.AI_NUMERICHOST)[0][0]
    except (socket.gaierror, UsageError):
        if family != socket.AF_UNSPEC:
            wanted = "IPv4" if family == socket.AF_INET else "IPv6"
            raise UsageError(f"source address {host!r} is not an {wanted} address") from None
        raise UsageError(f"source address {host!r} is not an IP address", "give -s an IP address") from None
    return socket.AddressFamily(source_family)


def _targets(
    address: Address, family: socket.AddressFamily, source: Source | None, numeric: bool
) -> list[SocketAddress]:
    if source is not None and source[0]:
        family = _source_family(source[0], family)
    return resolve(address.host, address.port, family=family, numeric=numeric)


def _attempt_failed(target: SocketAddress, code: int, report: Reporter) -> WirecatError:
    emit(AttemptFailed(str(target), os.strerror(code).lower(), "dial"))
    return translate_os_error(OSError(code, os.strerror(code)), Op.CONNECT, str(target))


def _lost(where: str, failures: list[tuple[SocketAddress, object]]) -> WirecatError:
    """The one error for a race where every address failed (each failure was an event)."""
    errors = [error for _, error in failures if isinstance(error, WirecatError)]
    if len(errors) == 1:
        return errors[0]
    kinds = {type(error) for error in errors}
    error_type = kinds.pop() if len(kinds) == 1 else ConnectError
    # Each failure was an AttemptFailed event: the verbose output says them.
    return error_type(f"could not connect to {where}: every address failed", "", setting="verbose")


def _timed_out(where: str, timeout: float | None) -> ConnectTimeout:
    return ConnectTimeout(f"connecting to {where} timed out after {timeout:g} s")


def dial(
    address: Address,
    *,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    timeout: float | None = None,
    source: Source | None = None,
    numeric: bool = False,
    delay: float = DEFAULT_HAPPY_EYEBALLS_DELAY,
    report: Reporter = quiet,
) -> socket.socket:
    """Connect a stream socket to ``address`` and return it, blocking.

    TCP with Happy Eyeballs (see the module docstring), or a Unix socket.
    Every attempt and every failure is passed to ``report``.

    Raises:
        ResolveError, ConnectError, ConnectTimeout, BindError, UsageError,
        ProgramError (a Unix path that is not a socket).
    """
    if address.is_unix:
        return _dial_unix(address, timeout=timeout, report=report)
    check_remote_port(address.port)
    targets = _targets(address, family, source, numeric)
    where = format_hostport(address.host, address.port)
    return race_blocking(targets, where, timeout=timeout, source=source, delay=delay, report=report)


def race_blocking(
    targets: list[SocketAddress],
    where: str,
    *,
    timeout: float | None = None,
    source: Source | None = None,
    delay: float = DEFAULT_HAPPY_EYEBALLS_DELAY,
    report: Reporter = quiet,
) -> socket.socket:
    """The race of :func:`dial` over addresses already resolved (``where`` names them in errors)."""
    race: Race[SocketAddress] = Race(targets, delay=delay, now=time.monotonic(), timeout=timeout)
    attempts: dict[SocketAddress, socket.socket] = {}
    try:
        with selectors.DefaultSelector() as selector:
            while True:
                step = race.next(time.monotonic())
                if isinstance(step, Start):
                    target = step.endpoint
                    emit(Connecting(str(target), "dial"))
                    sock = attempts[target] = _attempt_socket(target, source)
                    code = sock.connect_ex(target.sockaddr)
                    if code in (0, errno.EINPROGRESS):
                        selector.register(sock, selectors.EVENT_WRITE, target)
                    else:
                        attempts.pop(target).close()
                        race.failed(target, _attempt_failed(target, code, report), time.monotonic())
                elif isinstance(step, Wait):
                    wait = None if step.until is None else max(0.0, step.until - time.monotonic())
                    for key, _ in selector.select(wait):
                        target = key.data
                        sock = attempts[target]
                        selector.unregister(sock)
                        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if code == 0:
                            race.connected(target)
                        else:
                            attempts.pop(target).close()
                            race.failed(target, _attempt_failed(target, code, report), time.monotonic())
                elif isinstance(step, Won):
                    sock = attempts.pop(step.endpoint)
                    sock.setblocking(True)
                    emit(Connected(str(step.endpoint), format_sockaddr(sock.getsockname()), "dial"))
                    return sock
                elif isinstance(step, Lost):
                    raise _lost(where, step.failures)
                else:
                    assert isinstance(step, TimedOut)
                    raise _timed_out(where, timeout)
    finally:
        for sock in attempts.values():  # the losers, and every attempt on an error
            sock.close()


async def adial(
    address: Address,
    *,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    # The race's own deadline (not a caller's asyncio.timeout): on it, every
    # attempt is closed and the error names the address.
    timeout: float | None = None,  # noqa: ASYNC109
    source: Source | None = None,
    delay: float = DEFAULT_HAPPY_EYEBALLS_DELAY,
    report: Reporter = quiet,
) -> socket.socket:
    """Connect a stream socket to ``address`` on the running loop; return it, non-blocking.

    The same race as :func:`dial`, driven by the event loop: each attempt is
    a ``sock_connect`` on a socket of our own, and every one of them is
    closed when the race ends, is cancelled, or times out. A name is looked
    up in the loop's executor (an address needs no lookup).

    Raises:
        the errors of :func:`dial`.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    if address.is_unix:
        return await _adial_unix(loop, address, timeout)
    check_remote_port(address.port)
    where = format_hostport(address.host, address.port)
    targets = await loop.run_in_executor(None, _targets, address, family, source, False)
    return await race_async(targets, where, timeout=timeout, source=source, delay=delay, report=report)


async def race_async(
    targets: list[SocketAddress],
    where: str,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 (as adial's)
    source: Source | None = None,
    delay: float = DEFAULT_HAPPY_EYEBALLS_DELAY,
    report: Reporter = quiet,
) -> socket.socket:
    """The race of :func:`adial` over addresses already resolved (``where`` names them in errors)."""
    import asyncio

    loop = asyncio.get_running_loop()
    race: Race[SocketAddress] = Race(targets, delay=delay, now=loop.time(), timeout=timeout)
    attempts: dict[asyncio.Task[None], tuple[SocketAddress, socket.socket]] = {}
    winner: socket.socket | None = None
    try:
        while True:
            step = race.next(loop.time())
            if isinstance(step, Start):
                target = step.endpoint
                emit(Connecting(str(target), "dial"))
                sock = _attempt_socket(target, source)
                attempts[loop.create_task(loop.sock_connect(sock, target.sockaddr))] = (target, sock)
            elif isinstance(step, Wait):
                wait = None if step.until is None else max(0.0, step.until - loop.time())
                done, _ = await asyncio.wait(attempts, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    target, sock = attempts.pop(task)
                    error = task.exception()
                    if error is None and winner is None:
                        race.connected(target)
                        winner = sock
                    elif error is None:
                        sock.close()  # a second one in the same wake-up: the race is decided
                    else:
                        sock.close()
                        code = error.errno if isinstance(error, OSError) and error.errno else errno.EIO
                        race.failed(target, _attempt_failed(target, code, report), loop.time())
            elif isinstance(step, Won):
                assert winner is not None
                sock, winner = winner, None
                emit(Connected(str(step.endpoint), format_sockaddr(sock.getsockname()), "dial"))
                return sock
            elif isinstance(step, Lost):
                raise _lost(where, step.failures)
            else:
                assert isinstance(step, TimedOut)
                raise _timed_out(where, timeout)
    finally:
        for task, (_, sock) in attempts.items():  # the losers, and every attempt on an error
            task.cancel()
            sock.close()
        if winner is not None:  # cancelled between winning and returning
            winner.close()


# -- Unix sockets -----------------------------------------------------------------------------------


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_SNDTIMEO/SO_RCVTIMEO (0 = no limit)."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


def _unix_connect_error(exc: OSError, address: Address) -> WirecatError:
    """What a failed Unix connect means: no listener, a file that is not a socket, no path."""
    path = address.sockaddr_path
    if exc.errno == errno.ECONNREFUSED and not path.startswith("\0"):
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError:
            is_socket = True  # gone meanwhile: say what connect() said
        if not is_socket:
            return ProgramError(
                f"{path} is not a socket", "give the path of a listening Unix socket"
            ).caused_by(exc)
        return ConnectError(
            f"connection refused by {address}: nothing is listening there",
            "a socket file left by a listener that stopped? start the listener",
        ).caused_by(exc)
    return translate_os_error(exc, Op.CONNECT, str(address))


def _dial_unix(address: Address, *, timeout: float | None = None, report: Reporter = quiet) -> socket.socket:
    """Connect to a Unix socket (stream or datagram) and return it, blocking.

    A stream connect waits while the listener's backlog is full; ``timeout``
    bounds that wait, as it bounds a TCP connect.
    """
    check_unix_path(address.path or "")
    kind = socket.SOCK_DGRAM if address.datagram else socket.SOCK_STREAM
    sock = new_socket(socket.AF_UNIX, kind)
    try:
        if timeout is not None and kind == socket.SOCK_STREAM:
            # A non-blocking Unix connect fails at once on a full backlog
            # (EAGAIN) instead of waiting; a blocking one waits up to SO_SNDTIMEO.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeout))
        try:
            sock.connect(address.sockaddr_path)
        except BlockingIOError:
            raise ConnectTimeout(
                f"connecting to {address} timed out after {timeout:g} s",
                "its listener is not accepting (its backlog is full); allow more time",
            ) from None
        if timeout is not None and kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(0))
    except ConnectTimeout:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise _unix_connect_error(exc, address) from exc
    emit(Connected(str(address), "", "dial"))
    return sock


async def _adial_unix(
    loop: asyncio.AbstractEventLoop,
    address: Address,
    timeout: float | None,  # noqa: ASYNC109 (as adial's: the error names the address)
) -> socket.socket:
    """A non-blocking Unix stream socket connected on ``loop``.

    Our own socket, for the loop's ``sock_connect``: uvloop's
    ``create_unix_connection(path=...)`` refuses abstract names (``unix:@name``).
    """
    import asyncio

    check_unix_path(address.path or "")
    sock = new_socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, address.sockaddr_path)
    except TimeoutError:
        sock.close()
        raise ConnectTimeout(f"connecting to {address} timed out after {timeout:g} s") from None
    except OSError as exc:
        sock.close()
        raise _unix_connect_error(exc, address) from exc
    except BaseException:
        sock.close()
        raise
    return sock
