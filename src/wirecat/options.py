"""The options of the netcat jobs: how ``connect`` opens its connection, how ``listen`` listens.

Plain records shared by the stream and datagram forms of each job (``connect``
and ``connect -u``, ``listen`` and ``listen -u``), so that no job depends on
another.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, NamedTuple

from wirecat.access import AccessList
from wirecat.limits import DEFAULT_CLIENT_QUEUE, DEFAULT_MAX_CONNECTIONS

if TYPE_CHECKING:
    from wirecat.admission import Admission

__all__ = ["ConnectOptions", "ListenOptions"]


class ConnectOptions(NamedTuple):
    """How to open the connection (the session's own options are separate).

    Attributes:
        family: AF_INET (``-4``), AF_INET6 (``-6``) or AF_UNSPEC.
        timeout: ``-w``: seconds to wait for the connection, or None.
        source: ``-s``/``--source-port``: local (host, port) to bind first.
        numeric: ``-n``: the host must be an IP address; no DNS.
        keepalive: ``--keepalive``: turn on SO_KEEPALIVE.
    """

    family: socket.AddressFamily = socket.AF_UNSPEC
    timeout: float | None = None
    source: tuple[str, int] | None = None
    numeric: bool = False
    keepalive: bool = False


class ListenOptions(NamedTuple):
    """How the listener behaves.

    Attributes:
        family: AF_INET (``-4``), AF_INET6 (``-6``) or AF_UNSPEC.
        keep_open: ``-k``: serve many clients at once and keep listening.
        max_conns: ``--max-conns``: clients served at once; more are refused.
        access: ``--allow``/``--deny`` rules.
        accept_timeout: ``-w``: seconds to wait for the first client.
        keepalive: ``--keepalive``: SO_KEEPALIVE on accepted connections.
        client_queue: bytes from stdin queued for one client before stdin pauses.
        numeric: ``-n``: the host must be an IP address; no lookup.
    """

    family: socket.AddressFamily = socket.AF_UNSPEC
    keep_open: bool = False
    max_conns: int = DEFAULT_MAX_CONNECTIONS
    access: AccessList = AccessList()
    accept_timeout: float | None = None
    keepalive: bool = False
    client_queue: int = DEFAULT_CLIENT_QUEUE
    numeric: bool = False

    @property
    def admission(self) -> Admission:
        """The admission policy: the allow/deny rules, and ``max_conns`` refused beyond."""
        from wirecat.admission import Admission  # only listeners need it: not on connect's start-up

        return Admission(self.access, self.max_conns, "refuse")
