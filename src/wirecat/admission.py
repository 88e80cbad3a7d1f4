"""Who gets in, sans-IO: one admission policy for every server.

``listen`` (one client, ``-k``, ``--exec``), the UDP listener, ``echo``/
``chat``/``broker``, the relay (stream and UDP) and the library's ``serve()``
decide the same way, in the same words:

1. **accept() errors** (:func:`accept_error_action`), from trio's survey in
   ``_highlevel_socket.py``: ``ECONNABORTED``, ``EPROTO``, ``EPERM``,
   ``ECONNRESET`` concern one connection that died before we took it: skip it
   and go on. ``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM`` mean we ran out
   of something: say so, pause :data:`ACCEPT_BACKOFF_SECONDS` so closing
   connections can free it, and retry. Anything else is raised: a bug, or a
   listener that is gone.
2. **allow/deny** (:class:`~wirecat.access.AccessList`), before a byte is read;
3. **the connection limit**: at ``max_connections`` a server either stops
   accepting, leaving clients in the kernel's backlog (``wait``), or takes
   and closes them at once (``refuse``).

A refusal is one :class:`Refusal`, and :meth:`Refusal.text` its one wording.
Nothing here touches a socket: the accept loops (:mod:`wirecat.listener`, the
``-k`` hub, the UDP listeners) feed it peers and counts.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Iterable
from typing import Literal, NamedTuple

from wirecat.access import AccessList
from wirecat.address import format_sockaddr
from wirecat.errors import UsageError
from wirecat.limits import DEFAULT_MAX_CONNECTIONS

__all__ = [
    "ACCEPT_BACKOFF_ERRNOS",
    "ACCEPT_BACKOFF_SECONDS",
    "ACCEPT_SKIP_ERRNOS",
    "AcceptErrorAction",
    "Admission",
    "Refusal",
    "accept_error_action",
    "peer_host",
    "peer_label",
]

#: accept() errors that concern one connection that died before we took it: skip it.
ACCEPT_SKIP_ERRNOS = frozenset(
    {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ECONNRESET, errno.EAGAIN}
)
#: accept() errors meaning we ran out of descriptors or memory: log, back off, retry.
ACCEPT_BACKOFF_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: The pause after such an error, so that closing connections can free what we lack.
ACCEPT_BACKOFF_SECONDS = 0.1


class AcceptErrorAction(enum.Enum):
    """What an accept loop does about an ``OSError`` from ``accept()``."""

    #: One connection died before we took it: take the next.
    SKIP = "skip"
    #: Out of descriptors or memory: log, pause ACCEPT_BACKOFF_SECONDS, retry.
    BACK_OFF = "back off"
    #: Anything else: raise it (the listener is gone, or a bug).
    RAISE = "raise"


def accept_error_action(code: int | None) -> AcceptErrorAction:
    """The accept errno policy (see the module docstring) for ``errno`` ``code``."""
    if code in ACCEPT_SKIP_ERRNOS:
        return AcceptErrorAction.SKIP
    if code in ACCEPT_BACKOFF_ERRNOS:
        return AcceptErrorAction.BACK_OFF
    return AcceptErrorAction.RAISE


def peer_host(sockaddr: object) -> str:
    """The IP address the allow/deny rules judge: ``""`` for a Unix socket peer."""
    return str(sockaddr[0]) if isinstance(sockaddr, tuple) else ""


def peer_label(sockaddr: object, local: str = "") -> str:
    """How an accepted peer is named in every message: ``127.0.0.1:51234``,
    ``[::1]:51234``, a bound Unix client's ``unix:PATH``, or, for an unbound
    one (the usual case: it has no name), ``a client of unix:/server/path``."""
    if isinstance(sockaddr, tuple) or sockaddr:
        return format_sockaddr(sockaddr)
    return f"a client of {local}" if local else "a Unix socket client"


class Refusal(NamedTuple):
    """A peer turned away, and why: ``"access"`` (allow/deny) or ``"full"``."""

    peer: str
    reason: Literal["access", "full"]
    #: The connection limit, for ``"full"``.
    limit: int = 0
    #: What is counted against the limit ("connection", "UDP session", "peer").
    unit: str = "connection"

    @property
    def why(self) -> str:
        """The reason in words (``at the limit of 100 connections``)."""
        if self.reason == "access":
            return "not allowed by the allow/deny rules"
        return f"at the limit of {self.limit} {self.unit if self.limit == 1 else self.unit + 's'}"

    def text(self) -> str:
        """The one wording of a refusal, whichever server made it: ``refused PEER: WHY``."""
        return f"refused {self.peer}: {self.why}"


class Admission(NamedTuple):
    """The admission policy of one server: allow/deny and the connection limit.

    Args:
        access: who may connect.
        max_connections: connections served at once (at least 1).
        when_full: ``"wait"`` stops accepting at the limit (new clients wait in
            the kernel's backlog); ``"refuse"`` takes and closes them, logged.
    """

    access: AccessList = AccessList()
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    when_full: Literal["wait", "refuse"] = "wait"

    @classmethod
    def make(
        cls,
        *,
        allow: Iterable[str] | str = (),
        deny: Iterable[str] | str = (),
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        when_full: str = "wait",
        unix: bool = False,
    ) -> Admission:
        """Check and build the policy from a server's arguments.

        Raises:
            UsageError: a bad rule (see :class:`~wirecat.access.AccessList`),
                rules on a Unix socket listener, a limit below 1, or a
                ``when_full`` other than ``"wait"``/``"refuse"``.
        """
        if not isinstance(max_connections, int) or max_connections < 1:
            raise UsageError(f"bad max_connections {max_connections!r}", "give a whole number ≥ 1")
        if when_full not in ("wait", "refuse"):
            raise UsageError(f"bad when_full {when_full!r}", "use 'wait' or 'refuse'")
        access = AccessList.from_rules(allow, deny)
        access.check_applies(unix=unix)
        return cls(access, max_connections, "wait" if when_full == "wait" else "refuse")

    def should_accept(self, active: int) -> bool:
        """Whether to call ``accept()`` at all with ``active`` connections open.

        False at the limit with ``"wait"``: the clients stay in the backlog.
        """
        return active < self.max_connections or self.when_full == "refuse"

    def decide(self, host: str, peer: str, active: int, *, unit: str = "connection") -> Refusal | None:
        """Admit a peer at ``host`` (its IP address, ``""`` for a Unix one)? None, or why not."""
        if not self.access.admits(host):
            return Refusal(peer, "access")
        if active >= self.max_connections:
            return Refusal(peer, "full", self.max_connections, unit)
        return None
