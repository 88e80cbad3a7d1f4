"""Opening sockets: resolve, connect (Happy Eyeballs), bind and listen.

Blocking and ``selectors``-based on purpose: the one-shot commands (connect,
listen, scan) must start fast, and ``import asyncio`` alone costs ~55 ms.

Two things live here and nowhere else:

* :func:`translate_os_error`, the one place an ``OSError`` becomes a wirecat
  error with a message and a hint (the ``OSError`` stays as ``__cause__``);
* :func:`configure_stream`, the one place stream socket options are set.

Binding and listening are :mod:`wirecat.bind`.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import stat
import struct
import time
from typing import TYPE_CHECKING, NamedTuple

from wirecat.address import (
    Address,
    check_host,
    check_ip_address,
    check_unix_path,
    format_hostport,
    format_sockaddr,
)
from wirecat.admission import (
    ACCEPT_BACKOFF_SECONDS,
    AcceptErrorAction,
    Admission,
    accept_error_action,
    peer_host,
    peer_label,
)
from wirecat.errors import (
    BindError,
    ConnectError,
    ConnectTimeout,
    NetworkError,
    PeerReset,
    ProgramError,
    ResolveError,
    UsageError,
    WirecatError,
)
from wirecat.limits import DEFAULT_HAPPY_EYEBALLS_DELAY
from wirecat.report import Reporter, quiet, stderr_reporter
from wirecat.trace import new_socket

if TYPE_CHECKING:
    import asyncio  # only for annotations: the blocking commands never import it

__all__ = [
    "Endpoint",
    "abort",
    "accept_admitted",
    "bind_source",
    "close_with_reset",
    "configure_stream",
    "connect",
    "connect_unix",
    "connect_unix_on",
    "family_of",
    "reset_on_close",
    "resolve",
    "translate_os_error",
]


#: getaddrinfo() errors meaning "no address (of that family)"; not named everywhere.
_EAI_NO_ADDRESS = tuple(getattr(socket, n) for n in ("EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, n))
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENOTCONN}
_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


def translate_os_error(exc: OSError, action: str, where: str) -> WirecatError:
    """Turn an ``OSError`` from ``action`` on ``where`` into a wirecat error.

    The ``OSError`` is the returned error's ``__cause__`` (whether or not the
    caller raises it ``from`` it), so a user can always see the errno.

    Args:
        exc: the error the kernel gave.
        action: what we were doing, as a verb phrase ("connect to").
        where: the address involved, formatted for a person.
    """
    return _translate(exc, action, where).caused_by(exc)


def _translate(exc: OSError, action: str, where: str) -> WirecatError:
    code = exc.errno
    if isinstance(exc, socket.gaierror):
        return ResolveError(f"unknown host {where}")
    if code == errno.ECONNREFUSED:
        return ConnectError(f"connection refused by {where}", "nothing is listening there; check the port")
    if code in _UNREACHABLE_ERRNOS:
        return ConnectError(f"cannot {action} {where}: {os.strerror(code or 0).lower()}")
    if code == errno.ETIMEDOUT:
        return ConnectTimeout(f"{action} {where} timed out")
    if code == errno.EADDRINUSE:
        return BindError(
            f"address {where} is already in use",
            "stop the other program, or pick another port (port 0 picks a free one)",
        )
    if code in (errno.EACCES, errno.EPERM) and action == "listen on":
        return BindError(
            f"permission denied to listen on {where}",
            "ports below 1024 need root or CAP_NET_BIND_SERVICE; use a port ≥ 1024",
        )
    if code == errno.EADDRNOTAVAIL:
        return BindError(f"cannot {action} {where}: the address is not on this machine")
    if code in _RESET_ERRNOS:
        return PeerReset(f"connection with {where} was reset by the peer")
    if code == errno.ENOENT and action.startswith("connect"):
        return ConnectError(f"no socket at {where}", "is the listener running?")
    message = exc.strerror or str(exc.args[0] if exc.args else exc) or type(exc).__name__
    return NetworkError(f"cannot {action} {where}: {message.lower()}")


def family_of(*, ipv4: bool, ipv6: bool) -> socket.AddressFamily:
    """The address family that ``-4``/``-6`` ask for (AF_UNSPEC for either)."""
    if ipv4 and ipv6:
        raise UsageError("-4 and -6 cannot go together", "give one of them, or neither")
    return socket.AF_INET if ipv4 else socket.AF_INET6 if ipv6 else socket.AF_UNSPEC


class Endpoint(NamedTuple):
    """One resolved address: what ``getaddrinfo`` gives, in readable form."""

    family: socket.AddressFamily
    sockaddr: tuple[str, int] | tuple[str, int, int, int]

    def __str__(self) -> str:
        return format_hostport(self.sockaddr[0], self.sockaddr[1])


def resolve(
    host: str,
    port: int,
    *,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    datagram: bool = False,
    numeric: bool = False,
    passive: bool = False,
) -> list[Endpoint]:
    """Resolve ``host`` to endpoints, in the order RFC 8305 §4 asks for.

    The addresses alternate between families, starting with the first one
    the system prefers (RFC 6724 order, as getaddrinfo returns it).

    Raises:
        ResolveError: the name is unknown, or has no address of ``family``.
        UsageError: ``numeric`` (``-n``) was given and ``host`` is a name.
    """
    if host:
        # What can be known without a lookup is a usage error before one.
        check_host(host)
        if numeric:
            try:
                check_ip_address(host)
            except UsageError:
                raise UsageError(f"-n was given but {host!r} is not an IP address") from None
    flags = socket.AI_NUMERICHOST if numeric else 0
    if passive:
        flags |= socket.AI_PASSIVE
    kind = socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM
    try:
        infos = socket.getaddrinfo(host or None, port, family, kind, 0, flags)
    except (UnicodeError, ValueError) as exc:
        # The name cannot be encoded for the resolver (check_host should have said so).
        raise UsageError(f"{host!r} is not a valid host name: {exc}") from exc
    except socket.gaierror as exc:
        if numeric and exc.errno == socket.EAI_NONAME:
            raise UsageError(f"-n was given but {host!r} is not an IP address") from exc
        wanted = {socket.AF_INET: " IPv4", socket.AF_INET6: " IPv6"}.get(family, "")
        no_address = (socket.EAI_NONAME, socket.EAI_FAMILY, *_EAI_NO_ADDRESS)
        if exc.errno in no_address:
            hint = "check the spelling, or give an IP address"
            if wanted:
                raise ResolveError(f"{host!r} has no{wanted} address", hint) from exc
            raise ResolveError(f"unknown host {host!r}", hint) from exc
        raise ResolveError(f"cannot resolve {host!r}: {exc.strerror}") from exc
    seen: set[tuple[object, ...]] = set()
    by_family: dict[int, list[Endpoint]] = {}
    for fam, _, _, _, sockaddr in infos:
        if sockaddr in seen:
            continue
        seen.add(sockaddr)
        by_family.setdefault(fam, []).append(Endpoint(fam, sockaddr))  # type: ignore[arg-type]
    # Interleave families (RFC 8305 §4): v6, v4, v6, v4...
    queues = list(by_family.values())
    ordered: list[Endpoint] = []
    while any(queues):
        ordered.extend(queue.pop(0) for queue in queues if queue)
    return ordered


def configure_stream(sock: socket.socket, *, interactive: bool, keepalive: bool = False) -> None:
    """Set the options every stream socket of ours gets, each for a reason.

    Args:
        interactive: disable Nagle (TCP_NODELAY) so that typed lines and small
            request/response messages leave at once instead of waiting up to
            40 ms for an ACK; bulk pumps write large chunks either way.
        keepalive: SO_KEEPALIVE, so a dead peer is noticed on an idle connection.
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        if interactive:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


# -- ending a connection that we cut off ------------------------------------------------------
#
# A connection that wirecat ends before its natural end (a shutdown's drain
# timeout, an idle or frame timeout, -q, a signal, a slow reader dropped) is
# *reset*, never closed with a FIN: a FIN is the sender's "that was all", and
# a peer that gets one after part of a download takes the part for the whole
# (nc exits 0 with a short file). A reset makes its next recv() fail.
#
# Over a Unix stream socket there is no reset: the peer sees end of stream
# (or ECONNRESET only if it had sent bytes we never read). wirecat's own exit
# code and log still say that the connection was cut.

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def reset_on_close(sock: socket.socket) -> None:
    """Make ``sock``'s close send a reset (``SO_LINGER`` 0) instead of a FIN. Best effort."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass  # already disconnected: nothing left to reset


def close_with_reset(sock: socket.socket) -> None:
    """Close ``sock`` with a reset (RST): the peer's next recv() fails instead of ending cleanly."""
    reset_on_close(sock)
    sock.close()


def abort(sock: socket.socket) -> None:
    """Reset ``sock``'s connection now, and wake every thread waiting on it; keep the descriptor.

    For the thread engines, where another thread may be inside ``poll()`` or
    ``splice()`` on this descriptor: closing it under them could hand its
    number to the next ``open()``. Linux dissolves a TCP connection in place
    when it is ``connect()``-ed to ``AF_UNSPEC`` (connect(2)): a RST goes out,
    waiters wake with ECONNRESET, and the descriptor stays ours to close later.
    Elsewhere, and for Unix sockets (which cannot be reset), ``shutdown()``
    wakes the waiters, and ``SO_LINGER`` 0 makes the later close a reset.
    """
    reset_on_close(sock)
    if sock.family in (socket.AF_INET, socket.AF_INET6) and _disconnect(sock.fileno()):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected any more


def _disconnect(fd: int) -> bool:
    """``connect(fd, {AF_UNSPEC})``: True if the kernel dissolved the connection."""
    if not hasattr(os, "splice"):  # not Linux (os.splice exists only there)
        return False
    import ctypes  # only here: a cut connection is rare, and ctypes costs start-up

    libc = ctypes.CDLL(None, use_errno=True)
    unspec = struct.pack("H14x", socket.AF_UNSPEC)  # struct sockaddr with sa_family 0
    return int(libc.connect(fd, unspec, len(unspec))) == 0


def bind_source(sock: socket.socket, source: tuple[str, int] | None) -> None:
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
        raise translate_os_error(exc, "bind source address", format_hostport(host, source[1])) from exc


def _new_socket(endpoint: Endpoint, source: tuple[str, int] | None, kind: int) -> socket.socket:
    sock = new_socket(endpoint.family, kind)
    try:
        bind_source(sock, source)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def connect(
    host: str,
    port: int,
    *,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    timeout: float | None = None,
    source: tuple[str, int] | None = None,
    numeric: bool = False,
    delay: float = DEFAULT_HAPPY_EYEBALLS_DELAY,
    report: Reporter = quiet,
) -> socket.socket:
    """Connect to ``host:port`` and return a blocking socket.

    A host with several addresses is tried with Happy Eyeballs (RFC 8305):
    a new attempt starts every ``delay`` seconds, or at once when the
    previous one fails, and the first to connect wins; the others are closed.
    Every failure is passed to ``report``. (UDP has its own connect, in
    ``apps/udp.py``: a datagram ``connect()`` sends nothing to race.)

    Raises:
        ResolveError, ConnectError, ConnectTimeout, BindError, UsageError.
    """
    if source is not None and source[0]:
        family = _source_family(source[0], family)
    endpoints = resolve(host, port, family=family, numeric=numeric)
    kind = socket.SOCK_STREAM
    where = format_hostport(host, port)
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = list(endpoints)
    failures: list[WirecatError] = []
    selector = selectors.DefaultSelector()
    attempts: dict[socket.socket, Endpoint] = {}
    next_start = time.monotonic()
    try:
        while pending or attempts:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if pending and (now >= next_start or not attempts):
                endpoint = pending.pop(0)
                report(f"connecting to {endpoint}")
                sock = _new_socket(endpoint, source, kind)
                err = sock.connect_ex(endpoint.sockaddr)
                if err in (0, errno.EINPROGRESS):
                    attempts[sock] = endpoint
                    selector.register(sock, selectors.EVENT_WRITE)
                else:
                    sock.close()
                    failure = translate_os_error(OSError(err, os.strerror(err)), "connect to", str(endpoint))
                    report(f"{endpoint}: {os.strerror(err).lower()}")
                    failures.append(failure)
                next_start = time.monotonic() + delay
                continue
            wait = next_start - now if pending else None
            if deadline is not None:
                left = deadline - now
                if left <= 0:
                    break
                wait = left if wait is None else min(wait, left)
            for key, _ in selector.select(wait):
                sock = key.fileobj  # type: ignore[assignment]
                endpoint = attempts.pop(sock)
                selector.unregister(sock)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err == 0:
                    sock.setblocking(True)
                    report(f"connected to {endpoint} from {format_sockaddr(sock.getsockname())}")
                    return sock
                sock.close()
                failure = translate_os_error(OSError(err, os.strerror(err)), "connect to", str(endpoint))
                report(f"{endpoint}: {os.strerror(err).lower()}")
                failures.append(failure)
                next_start = time.monotonic()  # RFC 8305 §5: start the next one at once
    finally:
        for sock in attempts:
            sock.close()
        selector.close()
    if deadline is not None and time.monotonic() >= deadline:
        raise ConnectTimeout(f"connecting to {where} timed out after {timeout:g} s")
    if len(failures) == 1:
        raise failures[0]
    kinds = {type(f) for f in failures}
    error_type = kinds.pop() if len(kinds) == 1 else ConnectError
    raise error_type(f"could not connect to {where}: every address failed", "run with -v to see each")


def _source_family(host: str, family: socket.AddressFamily) -> socket.AddressFamily:
    """The family a ``-s`` source address forces on the target (a socket has one family)."""
    try:
        check_ip_address(host)
        source_family = socket.getaddrinfo(host, 0, family, 0, 0, socket.AI_NUMERICHOST)[0][0]
    except (socket.gaierror, UsageError):
        if family != socket.AF_UNSPEC:
            wanted = "IPv4" if family == socket.AF_INET else "IPv6"
            raise UsageError(f"source address {host!r} is not an {wanted} address") from None
        raise UsageError(f"source address {host!r} is not an IP address", "give -s an IP address") from None
    return socket.AddressFamily(source_family)


async def connect_unix_on(loop: asyncio.AbstractEventLoop, address: Address) -> socket.socket:
    """Connect a non-blocking Unix stream socket to ``address`` on ``loop``.

    Our own socket, for the event loop's ``sock_connect``: uvloop's
    ``create_unix_connection(path=...)`` refuses abstract names (``unix:@name``).
    """
    check_unix_path(address.path or "")
    sock = new_socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address.sockaddr_path)
    except BaseException:
        sock.close()
        raise
    return sock


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_SNDTIMEO/SO_RCVTIMEO (0 = no limit)."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


def connect_unix(
    address: Address, *, timeout: float | None = None, report: Reporter = quiet
) -> socket.socket:
    """Connect to a Unix socket (stream or datagram) and return it, blocking.

    A stream connect waits while the listener's backlog is full; ``timeout``
    (``-w``) bounds that wait, as it bounds a TCP connect.

    Raises:
        ConnectError, ConnectTimeout.
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
                "its listener is not accepting (its backlog is full); raise -w to wait longer",
            ) from None
        if timeout is not None and kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(0))
    except ConnectTimeout:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        path = address.sockaddr_path
        if exc.errno == errno.ECONNREFUSED and not path.startswith("\0"):
            try:
                is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
            except OSError:
                is_socket = True  # gone meanwhile: say what connect() said
            if not is_socket:
                raise ProgramError(
                    f"{path} is not a socket", "give the path of a listening Unix socket"
                ) from exc
            raise ConnectError(
                f"connection refused by {address}: nothing is listening there",
                "a socket file left by a listener that stopped? start the listener",
            ) from exc
        raise translate_os_error(exc, "connect to", str(address)) from exc
    report(f"connected to {address}")
    return sock


def accept_admitted(
    listener: socket.socket,
    admission: Admission,
    active: int,
    *,
    report: Reporter = quiet,
    keepalive: bool = False,
) -> tuple[socket.socket, str] | None:
    """One ``accept()`` for the blocking servers (listen, ``-k``, ``--exec``), with
    the admission policy: the accept errno policy, allow/deny, and the limit
    against ``active`` connections. The asyncio servers have :mod:`wirecat.listener`.

    Returns:
        (the socket, with the stream options set, and the peer's name), or
        None when there was nothing to take, or the peer was refused (and
        closed): a refusal for being full is said on stderr always, one by
        the allow/deny rules to ``report`` (-v).
    """
    try:
        sock, sockaddr = listener.accept()
    except OSError as exc:
        action = accept_error_action(exc.errno)
        if action is AcceptErrorAction.SKIP:
            return None
        if action is AcceptErrorAction.BACK_OFF:
            report(f"cannot accept: {exc.strerror}; retrying in {ACCEPT_BACKOFF_SECONDS:g} s")
            time.sleep(ACCEPT_BACKOFF_SECONDS)  # not synchronisation: a pause to let descriptors free up
            return None
        raise
    peer = peer_label(sockaddr, format_sockaddr(listener.getsockname()))
    refusal = admission.decide(peer_host(sockaddr), peer, active)
    if refusal is not None:
        (stderr_reporter if refusal.reason == "full" else report)(refusal.text())
        sock.close()
        return None
    configure_stream(sock, interactive=True, keepalive=keepalive)
    return sock, peer
