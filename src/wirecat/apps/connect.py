"""``wirecat connect``: stdin and stdout joined to a stream socket we connect."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from wirecat.address import Address, format_sockaddr
from wirecat.dial import dial
from wirecat.events import emit
from wirecat.limits import DEFAULT_HANDSHAKE_TIMEOUT
from wirecat.options import ConnectOptions
from wirecat.report import Reporter, quiet
from wirecat.session import SessionOptions, SessionResult, run_session, session_closed
from wirecat.sockets import configure_stream

if TYPE_CHECKING:
    from wirecat.tls import ClientTLS
    from wirecat.tls_endpoint import TLSEndpoint

__all__ = ["ConnectOptions", "connect_stdio", "open_stream", "start_tls"]


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


def start_tls(
    sock: socket.socket,
    target: Address,
    tls: ClientTLS | None,
    *,
    peer: str,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    report: Reporter = quiet,
) -> TLSEndpoint:
    """The client's TLS handshake over a connected ``sock``, verifying by default.

    ``tls`` None: the system's trust store and the host dialed (a ``tls:``
    address with no settings). SNI and the name checked are
    ``tls.server_hostname``, else the host dialed (none for a Unix socket).

    Raises:
        HandshakeTimeout, CertificateError, TLSError.
    """
    from wirecat import tls as tls_module
    from wirecat.tls_endpoint import secure

    if tls is None:
        tls = tls_module.ClientTLS(tls_module.client_context())
    host = None if target.is_unix else target.host.strip("[]") or None
    return secure(
        sock,
        tls,
        server_side=False,
        server_hostname=host,
        peer=peer,
        timeout=handshake_timeout,
        report=report,
    )


def connect_stdio(
    target: Address,
    options: ConnectOptions = ConnectOptions(),
    session: SessionOptions = SessionOptions(),
    *,
    tls: ClientTLS | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    report: Reporter = quiet,
) -> SessionResult:
    """Connect to ``target`` and join the connection to stdin and stdout.

    With ``tls`` (or a ``tls:`` target) the connection speaks TLS, verified
    by default; its handshake is bounded by ``handshake_timeout``.

    Returns the session's result; a failure during the session is in
    ``result.error`` (see :func:`wirecat.session.run_session`), a failure to
    connect (or to agree on TLS) is raised.
    """
    with open_stream(target, options, report=report) as sock:
        try:
            peer = format_sockaddr(sock.getpeername()) if not target.is_unix else str(target)
        except OSError:  # reset right after connecting (ENOTCONN): the session will say so
            peer = str(target)
        if tls is not None or target.tls:
            endpoint = start_tls(
                sock, target, tls, peer=peer, handshake_timeout=handshake_timeout, report=report
            )
            result = run_session(endpoint, peer=peer, options=session)
        else:
            result = run_session(sock, peer=peer, options=session)
    emit(session_closed(result, peer, "session"))
    return result
