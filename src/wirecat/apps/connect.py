"""``wirecat connect``: stdin and stdout joined to a stream socket we connect."""

from __future__ import annotations

import socket

from wirecat.address import Address, format_sockaddr
from wirecat.dial import dial
from wirecat.events import emit
from wirecat.options import ConnectOptions
from wirecat.report import Reporter, quiet
from wirecat.session import SessionOptions, SessionResult, run_session, session_closed
from wirecat.sockets import configure_stream

__all__ = ["ConnectOptions", "connect_stdio", "open_stream"]


def open_stream(
    target: Address,
    options: ConnectOptions = ConnectOptions(),
    *,
    report: Reporter = quiet,
) -> socket.socket:
    """Connect a stream socket to ``target`` (TCP with Happy Eyeballs, or Unix).

    Raises:
        ResolveError, ConnectError, ConnectTimeout, BindError, UsageError.
    """
    sock = dial(
        target,
        family=options.family,
        timeout=options.timeout,
        source=options.source,
        numeric=options.numeric,
        report=report,
    )
    configure_stream(sock, interactive=True, keepalive=options.keepalive)
    return sock


def connect_stdio(
    target: Address,
    options: ConnectOptions = ConnectOptions(),
    session: SessionOptions = SessionOptions(),
    *,
    report: Reporter = quiet,
) -> SessionResult:
    """Connect to ``target`` and join the connection to stdin and stdout.

    Returns the session's result; a failure during the session is in
    ``result.error`` (see :func:`wirecat.session.run_session`), a failure to
    connect is raised.
    """
    with open_stream(target, options, report=report) as sock:
        try:
            peer = format_sockaddr(sock.getpeername()) if not target.is_unix else str(target)
        except OSError:  # reset right after connecting (ENOTCONN): the session will say so
            peer = str(target)
        result = run_session(sock, peer=peer, options=session)
    emit(session_closed(result, peer, "session"))
    return result
