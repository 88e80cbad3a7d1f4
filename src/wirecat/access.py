"""Allow and deny lists for listeners (``--allow``, ``--deny``), sans-IO.

Rules are IP addresses or CIDR ranges (``203.0.113.0/24``, ``::1``, ``fe80::/10``).
An IPv4 client seen on an IPv6 socket (``::ffff:127.0.0.1``) is matched as
IPv4, so ``--allow 127.0.0.1`` works whichever socket accepted it.

The decision, as in ncat: a peer on the deny list is refused; when an allow
list is given, a peer must be on it. Unix socket peers have no address and are
always admitted (file permissions guard them); a listener on a Unix socket
therefore refuses rules at all (:meth:`AccessList.check_applies`).

Fail closed, never open. A list of rules is a restriction, so nothing a typo
can produce may lift it:

* an empty or blank rule (``--allow ''``, ``--allow ','``, a script's
  ``--allow "$UNSET"``) is an error, never "no rules" (which admits everyone);
* a ``/0`` range written with a non-zero address (``127.0.0.1/0``: a slip for
  ``/8``?) is an error; everyone is admitted only when written as such,
  ``0.0.0.0/0`` or ``::/0``;
* a peer whose address cannot be read is refused whenever there are rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from wirecat.errors import UsageError

__all__ = ["AccessList", "parse_network"]

if TYPE_CHECKING:
    import ipaddress

    _Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# ``ipaddress`` is imported where rules are read or checked, not here: a client
# (``connect``) loads this module for the default empty list and should not pay
# ~1.5 ms of start-up for an import it never uses.


def parse_network(text: str, *, kind: str = "allow/deny") -> _Network:
    """Parse one ``--allow``/``--deny`` rule: an address or a CIDR range.

    Host bits are allowed (``192.0.2.7/24`` means ``192.0.2.0/24``, as ncat
    reads it), except with ``/0``, where they can only be a slip.

    Raises:
        UsageError: the text is empty, neither an address nor a range, or a
            ``/0`` range written with a non-zero address.
    """
    import ipaddress

    stripped = text.strip().strip("[]")
    if not stripped:
        raise UsageError(
            f"empty {kind} rule in {text!r}",
            "an empty rule would admit everyone; give an address or a CIDR range"
            " (0.0.0.0/0 and ::/0 admit everyone on purpose)",
        )
    try:
        network = ipaddress.ip_network(stripped, strict=False)
    except ValueError:
        raise UsageError(
            f"bad address or range {text!r} in the {kind} rules",
            "write an IP address or a CIDR range such as 198.51.100.0/24",
        ) from None
    if network.prefixlen == 0 and stripped.partition("/")[0] not in ("0.0.0.0", "::"):
        raise UsageError(
            f"the {kind} rule {text!r} covers every address",
            f"write {network} if that is what you mean, or give a longer prefix",
        )
    return network


def _normalise(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    import ipaddress

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
    def from_rules(cls, allow: Iterable[str] | str = (), deny: Iterable[str] | str = ()) -> AccessList:
        """Parse the rules given on the command line (each may hold commas).

        A single string is one rule (it may hold commas), not a list of characters.

        Raises:
            UsageError: (also a ``ValueError``) a rule is empty, blank or bad:
                see :func:`parse_network`.
        """

        def parse(rules: Iterable[str] | str, kind: str) -> tuple[_Network, ...]:
            if isinstance(rules, str):
                rules = [rules]
            for rule in rules:
                if not isinstance(rule, str):
                    raise UsageError(f"bad {kind} rule {rule!r}", "give addresses or ranges as strings")
            return tuple(parse_network(r, kind=kind) for rule in rules for r in rule.split(","))

        return cls(allow=parse(allow, "allow"), deny=parse(deny, "deny"))

    @property
    def is_open(self) -> bool:
        """True when there are no rules at all."""
        return not self.allow and not self.deny

    def check_applies(self, *, unix: bool) -> None:
        """Refuse rules on a Unix socket listener, where no peer has an address.

        They could never match, so a listener that was asked to restrict who
        connects would silently admit everyone.

        Raises:
            UsageError: there are rules, and the listener is a Unix socket.
        """
        if unix and not self.is_open:
            raise UsageError(
                "allow/deny rules cannot apply to a Unix socket: its clients have no address",
                "leave them out and restrict who may connect with the socket file's permissions",
            )

    def admits(self, host: str) -> bool:
        """Whether a peer at ``host`` (an IP address string) may connect.

        ``""`` is a Unix socket peer: no address to judge, always admitted.
        Anything else that is not an IP address is refused when there are rules.
        """
        if self.is_open:
            return True
        if not host:  # a Unix socket peer: no address to judge
            return True
        address = _normalise(host)
        if address is None:
            return False  # fail closed: a rule list never admits what it cannot read
        if any(address in net for net in self.deny):
            return False
        return not self.allow or any(address in net for net in self.allow)
