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

:func:`service_port` looks a port up by name (``http``, ``ssh``) in the
system's services database, as nc does; :func:`wirecat.address.parse_address`
takes it as its ``service`` argument.
"""

from __future__ import annotations

import os
import socket
from typing import NamedTuple

from wirecat import trace
from wirecat.address import check_host, check_ip_address, format_hostport, ip_version
from wirecat.errors import ResolveError, UsageError

__all__ = ["SERVICES_FILE", "SocketAddress", "resolve", "service_port"]

#: Where glibc's "files" source of the services database is (netbase on Debian and Ubuntu).
SERVICES_FILE = "/etc/services"

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
        UsageError: ``numeric`` (``-n``) was given and ``host`` is a name;
            ``host`` is an IP address of another family than ``family``.
    """
    if not host and not passive:
        # getaddrinfo(None) would answer with loopback: a host left out is a slip.
        raise UsageError("empty host name", "give a host name or an address such as 127.0.0.1")
    if host:
        # What can be known without a lookup is a usage error before one.
        check_host(host)
        _check_family(host, family)
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


def _check_family(host: str, family: socket.AddressFamily) -> None:
    """An IP address of the other family than the one asked for is a usage
    error: no lookup can change it (getaddrinfo would say "no address")."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        return
    version = ip_version(host)
    wanted = 4 if family == socket.AF_INET else 6
    if version is not None and version != wanted:
        raise UsageError(
            f"{host} is an IPv{version} address, but only IPv{wanted} was asked for",
            f"give an IPv{wanted} address, or allow both families",
            setting="family",
        )


def service_port(name: str, datagram: bool = False) -> int:
    """The port of service ``name`` (``http``, ``ssh``): ``getservbyname`` with
    ``"tcp"`` (or ``"udp"`` for ``datagram``), which reads the system's
    services database (:data:`SERVICES_FILE`, through NSS).

    Raises:
        UsageError: the database does not know the name for that protocol
            (the message says if it knows it for the other one), or there is
            no database at all.
    """
    protocol, other = ("udp", "tcp") if datagram else ("tcp", "udp")
    try:
        return socket.getservbyname(name, protocol)
    except (OSError, ValueError, UnicodeError):
        pass  # OSError: "service/proto not found"; the others cannot happen for a checked name
    if not os.path.exists(SERVICES_FILE):
        raise UsageError(
            f"cannot look up port {name!r}: this system has no services database ({SERVICES_FILE})",
            "give the port as a number (on Debian and Ubuntu, the netbase package provides it)",
        )
    try:
        socket.getservbyname(name, other)
    except (OSError, ValueError, UnicodeError):
        raise UsageError(
            f"bad port {name!r}: no such service in {SERVICES_FILE}",
            "give a number from 1 to 65535, or a service name such as http",
        ) from None
    raise UsageError(
        f"{name!r} is a {other.upper()} service in {SERVICES_FILE}, not a {protocol.upper()} one",
        "give the port as a number",
    )
