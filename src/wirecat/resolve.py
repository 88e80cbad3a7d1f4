"""Names to addresses: :func:`resolve`, the one call to ``getaddrinfo``.

The dialer (:mod:`wirecat.dial`), the binder (:mod:`wirecat.bind`), UDP and
``scan`` resolve through it, so a name gets the same checks, the same order
and the same errors wherever it is used:

* what can be known without a lookup is a usage error before one: a host
  that cannot be a name (:func:`~wirecat.address.check_host`), a name where
  ``numeric`` (``-n``) asks for an address;
* the addresses come back interleaved by family (RFC 8305 §4: IPv6, IPv4,
  IPv6...), starting with the one the system prefers (RFC 6724, as
  ``getaddrinfo`` orders them), ready for a Happy Eyeballs race;
* "no such name" and "no address of that family" are :class:`ResolveError`.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from wirecat import trace
from wirecat.address import check_host, check_ip_address, format_hostport
from wirecat.errors import ResolveError, UsageError

__all__ = ["SocketAddress", "resolve"]

#: getaddrinfo() errors meaning "no address (of that family)"; not named everywhere.
_EAI_NO_ADDRESS = tuple(getattr(socket, n) for n in ("EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, n))


class SocketAddress(NamedTuple):
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
) -> list[SocketAddress]:
    """Resolve ``host`` to socket addresses, in the order RFC 8305 §4 asks for.

    The addresses alternate between families, starting with the first one
    the system prefers (RFC 6724 order, as getaddrinfo returns it).

    Raises:
        ResolveError: the name is unknown, or has no address of ``family``.
        UsageError: ``numeric`` (``-n``) was given and ``host`` is a name.
    """
    if not host and not passive:
        # getaddrinfo(None) would answer with loopback: a host left out is a slip.
        raise UsageError("empty host name", "give a host name or an address such as 127.0.0.1")
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
        # An ASCII name as bytes: a str would go through the "idna" codec,
        # ~1 ms of import for a name check_host has already made.
        name = (host.encode("ascii") if host.isascii() else host) if host else None
        infos = trace.getaddrinfo(name, port, family, kind, 0, flags)  # socket.getaddrinfo, traced
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
    by_family: dict[int, list[SocketAddress]] = {}
    for fam, _, _, _, sockaddr in infos:
        if sockaddr in seen:
            continue
        seen.add(sockaddr)
        by_family.setdefault(fam, []).append(SocketAddress(fam, sockaddr))  # type: ignore[arg-type]
    # Interleave families (RFC 8305 §4): v6, v4, v6, v4...
    queues = list(by_family.values())
    ordered: list[SocketAddress] = []
    while any(queues):
        ordered.extend(queue.pop(0) for queue in queues if queue)
    return ordered
