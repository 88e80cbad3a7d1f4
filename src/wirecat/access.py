"""Allow and deny lists for listeners (``--allow``, ``--deny``), sans-IO.

Rules are IP addresses or CIDR ranges (``203.0.113.0/24``, ``::1``, ``fe80::/10``).
An IPv4 client seen on an IPv6 socket (``::ffff:127.0.0.1``) is matched as
IPv4, so ``--allow 127.0.0.1`` works whichever socket accepted it.

The decision, as in ncat: a peer on the deny list is refused; when an allow
list is given, a peer must be on it. Unix socket peers have no address and are
always admitted (file permissions guard them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

from wirecat.errors import UsageError

__all__ = ["AccessList", "parse_network"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> _Network:
    """Parse one ``--allow``/``--deny`` rule: an address or a CIDR range.

    Raises:
        UsageError: the text is neither.
    """
    try:
        return ipaddress.ip_network(text.strip().strip("[]"), strict=False)
    except ValueError:
        raise UsageError(
            f"bad address or range {text!r} in --allow/--deny",
            "write an IP address or a CIDR range such as 198.51.100.0/24",
        ) from None


def _normalise(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AccessList(NamedTuple):
    """Who may connect. Build with :meth:`from_rules`; ask with :meth:`admits`."""

    allow: tuple[_Network, ...] = ()
    deny: tuple[_Network, ...] = ()

    @classmethod
    def from_rules(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> AccessList:
        """Parse the rules given on the command line (each may hold commas)."""

        def parse(rules: Iterable[str]) -> tuple[_Network, ...]:
            return tuple(parse_network(r) for rule in rules for r in rule.split(",") if r.strip())

        return cls(allow=parse(allow), deny=parse(deny))

    @property
    def is_open(self) -> bool:
        """True when there are no rules at all."""
        return not self.allow and not self.deny

    def admits(self, host: str) -> bool:
        """Whether a peer at ``host`` (an IP address string) may connect."""
        if self.is_open:
            return True
        address = _normalise(host)
        if address is None:  # a Unix socket peer: no address to judge
            return True
        if any(address in net for net in self.deny):
            return False
        return not self.allow or any(address in net for net in self.allow)
