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

import enum
import errno
import os
import selectors
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wirecat import trace
from wirecat.address import (
    format_sockaddr,
)
from wirecat.errors import (
    BindError,
    ConnectError,
    ConnectTimeout,
    NetworkError,
    PeerReset,
    ResolveError,
    Timeout,
    UsageError,
    WirecatError,
)
from wirecat.events import Note, Refused, emit
from wirecat.report import Reporter, quiet

if TYPE_CHECKING:
    from wirecat.admission import Admission  # a listener's policy: clients never load it

__all__ = [
    "abort",
    "accept_admitted",
    "accept_one",
    "check_tls",
    "close_with_reset",
    "configure_stream",
    "family_of",
    "reset_on_close",
    "translate_os_error",
]


#: getaddrinfo() errors meaning "no address (of that family)"; not named everywhere.
_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


class Op(enum.Enum):
    """What we were doing when an ``OSError`` came: decides what it means, and the words."""

    CONNECT = "connect to"
    LISTEN = "listen on"
    BIND_SOURCE = "bind the source address"
    SEND = "send to"
    RECEIVE = "receive from"
    #: Either way on an open connection (an event loop's transport says which it was not).
    TALK = "talk to"
    SHUTDOWN = "shut down the connection to"
    RELAY = "relay to"
    #: A local action that used the network stack (the demo's own loopback sockets).
    USE = "use"

    @property
    def verb(self) -> str:
        """The words for the message: ``cannot {verb} {where}: ...``."""
        return self.value


#: The errnos that mean the peer broke the connection (RST, or gone while we wrote).
RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


def translate_os_error(exc: OSError, op: Op, where: str) -> WirecatError:
    """Turn an ``OSError`` from ``op`` on ``where`` into a wirecat error.

    Decided by the exception's type and errno and by the operation, never by
    English words; ``ssl.SSLError`` (an ``OSError``) is looked at first, so
    that no TLS failure is taken for a plain socket error. The ``OSError`` is
    the returned error's ``__cause__`` (whether or not the caller raises it
    ``from`` it), so a user can always see the errno.

    Args:
        exc: the error the kernel (or the TLS library) gave.
        op: what we were doing.
        where: the address involved, formatted for a person.
    """
    return _translate(exc, op, where).caused_by(exc)


def _translate(exc: OSError, op: Op, where: str) -> WirecatError:
    ssl = sys.modules.get("ssl")  # loaded only where TLS is used: nothing to look at otherwise
    if ssl is not None and isinstance(exc, ssl.SSLError):
        from wirecat.tls import translate_ssl_error  # ssl is loaded already: no start-up cost here

        return translate_ssl_error(exc, where)
    if isinstance(exc, socket.gaierror):
        return ResolveError(f"unknown host {where}")
    code = exc.errno
    if code == errno.ECONNREFUSED:
        return ConnectError(f"connection refused by {where}", "nothing is listening there; check the port")
    if code in _UNREACHABLE_ERRNOS:
        return ConnectError(f"cannot {op.verb} {where}: {os.strerror(code or 0).lower()}")
    if code == errno.ETIMEDOUT or isinstance(exc, TimeoutError):
        if op is Op.CONNECT:
            return ConnectTimeout(f"{op.verb} {where} timed out")
        # On an open connection: the kernel gave up retransmitting (or keepalive
        # found the peer gone). No setting of ours governs it.
        hint = "the peer stopped answering; is it still up?"
        return Timeout(f"the connection with {where} timed out", hint, setting="")
    if code == errno.EADDRINUSE:
        return BindError(
            f"address {where} is already in use",
            "stop the other program, or pick another port (port 0 picks a free one)",
        )
    if code in (errno.EACCES, errno.EPERM) and op is Op.LISTEN:
        return BindError(
            f"permission denied to listen on {where}",
            "ports below 1024 need root or CAP_NET_BIND_SERVICE; use a port ≥ 1024",
        )
    if code == errno.EADDRNOTAVAIL:
        return BindError(f"cannot {op.verb} {where}: the address is not on this machine")
    if code in RESET_ERRNOS or code == errno.ENOTCONN:
        return PeerReset(f"connection with {where} was reset by the peer")
    if code == errno.ENOENT and op is Op.CONNECT:
        return ConnectError(f"no socket at {where}", "is the listener running?")
    message = exc.strerror or str(exc.args[0] if exc.args else exc) or type(exc).__name__
    return NetworkError(f"cannot {op.verb} {where}: {message.lower()}")


def family_of(*, ipv4: bool, ipv6: bool) -> socket.AddressFamily:
    """The address family that ``-4``/``-6`` ask for (AF_UNSPEC for either)."""
    if ipv4 and ipv6:
        raise UsageError("-4 and -6 cannot go together", "give one of them, or neither")
    return socket.AF_INET if ipv4 else socket.AF_INET6 if ipv6 else socket.AF_UNSPEC


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
    global _libc_connect
    if _libc_connect is None:
        import ctypes  # only here: a cut connection is rare, and ctypes costs start-up

        _libc_connect = ctypes.CDLL(None, use_errno=True).connect
    unspec = struct.pack("H14x", socket.AF_UNSPEC)  # struct sockaddr with sa_family 0
    done = int(_libc_connect(fd, unspec, len(unspec))) == 0
    tracer = trace.current()
    if tracer is not None:  # a real connect() on the socket, made past its methods: say so
        import ctypes

        result = "ok" if done else f"error {errno.errorcode.get(ctypes.get_errno(), '?')}"
        tracer.call("connect", "AF_UNSPEC", result, fd=fd)
    return done


_libc_connect: Any = None


def accept_admitted(
    listener: socket.socket,
    admission: Admission,
    active: int,
    *,
    report: Reporter = quiet,
    keepalive: bool = False,
    origin: str = "listen",
) -> tuple[socket.socket, str] | None:
    """One ``accept()`` for the blocking servers (listen, ``-k``, ``--exec``), with
    the admission policy: the accept errno policy, allow/deny, and the limit
    against ``active`` connections. The asyncio servers have :mod:`wirecat.listener`.

    Returns:
        (the socket, with the stream options set, and the peer's name), or
        None when there was nothing to take, or the peer was refused (and
        closed, and a :class:`~wirecat.events.Refused` emitted).
    """
    # Here, not at the top: clients import this module and never accept.
    from wirecat.admission import (
        ACCEPT_BACKOFF_SECONDS,
        AcceptErrorAction,
        accept_error_action,
        peer_host,
        peer_label,
    )

    try:
        sock, sockaddr = listener.accept()
    except OSError as exc:
        action = accept_error_action(exc.errno)
        if action is AcceptErrorAction.SKIP:
            return None
        if action is AcceptErrorAction.BACK_OFF:
            emit(
                Note(
                    f"cannot accept: {exc.strerror}; retrying in {ACCEPT_BACKOFF_SECONDS:g} s",
                    "warning",
                    origin,
                )
            )
            time.sleep(ACCEPT_BACKOFF_SECONDS)  # not synchronisation: a pause to let descriptors free up
            return None
        raise
    peer = peer_label(sockaddr, format_sockaddr(listener.getsockname()))
    refusal = admission.decide(peer_host(sockaddr), peer, active)
    if refusal is not None:
        emit(Refused(peer, refusal.reason, refusal.why, origin))
        sock.close()
        return None
    configure_stream(sock, interactive=True, keepalive=keepalive)
    return sock, peer


def check_tls(value: object, *, server: bool) -> None:
    """A ``tls`` argument checked: None, or an ``ssl.SSLContext`` (of the right side).

    ``ssl`` is imported only when a context is given: plain connections never pay for it.

    Raises:
        UsageError: anything else.
    """
    if value is None:
        return
    import ssl

    side = "server" if server else "client"
    if not isinstance(value, ssl.SSLContext):
        raise UsageError(f"bad tls {value!r}", f"give an ssl.SSLContext for the {side} side, or None")


def accept_one(
    listeners: list[socket.socket],
    admission: Admission,
    *,
    timeout: float | None = None,
    active: Callable[[], int] = lambda: 0,
    keepalive: bool = False,
    report: Reporter = quiet,
    origin: str = "listen",
) -> tuple[socket.socket, str]:
    """Wait for one admitted client on any of ``listeners``; (its blocking socket, its name).

    The blocking servers' accept loop (one client, ``--exec``): ``active()``
    connections count against the limit.

    Raises:
        ConnectTimeout: no client came within ``timeout`` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for listener in listeners:
            selector.register(listener, selectors.EVENT_READ)
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise ConnectTimeout(
                    f"no client connected within {timeout:g} s", "", setting="accept_timeout"
                )
            for key, _ in selector.select(wait):
                ready: socket.socket = key.fileobj  # type: ignore[assignment]
                accepted = accept_admitted(
                    ready, admission, active(), report=report, keepalive=keepalive, origin=origin
                )
                if accepted is not None:
                    accepted[0].setblocking(True)
                    return accepted
