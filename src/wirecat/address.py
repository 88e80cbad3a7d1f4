"""Addresses as the user writes them, parsed without touching the network.

Forms accepted everywhere (CLI and library alike)::

    host:port        example.com:80, 127.0.0.1:80
    [v6]:port        [::1]:8080            (brackets, as in URLs: RFC 3986 §3.2.2)
    v6 port          ::1 and 8080 given as two CLI words need no brackets
    unix:PATH        unix:/run/app.sock    (a Unix domain socket)
    unix:@NAME       unix:@name            (Linux abstract namespace)
    udp:host:port    the same, datagram transport

Nothing here resolves names or opens sockets: that is ``wirecat.sockets``.
"""

from __future__ import annotations

from typing import NamedTuple

from wirecat.errors import UsageError

__all__ = ["Address", "format_hostport", "parse_address", "parse_port", "parse_ports"]

_PORT_HINT = "give a number from 0 to 65535"


class Address(NamedTuple):
    """Where a socket connects or listens.

    Exactly one of ``path`` (a Unix socket) or ``host``/``port`` (an IP
    socket) is set. ``datagram`` picks UDP (or a Unix datagram socket) over a
    stream.
    """

    host: str = ""
    port: int = 0
    path: str | None = None
    datagram: bool = False

    @property
    def is_unix(self) -> bool:
        """True for a Unix domain socket address."""
        return self.path is not None

    @property
    def sockaddr_path(self) -> str:
        """The path as the kernel wants it: ``@name`` becomes ``"\\0name"``."""
        assert self.path is not None
        return "\0" + self.path[1:] if self.path.startswith("@") else self.path

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return format_hostport(self.host, self.port)


def format_hostport(host: str, port: int) -> str:
    """Format ``host`` and ``port`` as ``host:port``, bracketing IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_port(text: str, *, what: str = "port") -> int:
    """Parse a port number (0 to 65535).

    Raises:
        UsageError: for anything but a decimal number in range.
    """
    # isascii(): str.isdigit() also accepts "¹" and "٣", which int() refuses.
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise UsageError(f"bad {what} {text!r}", _PORT_HINT)
    return int(text)


def parse_ports(text: str) -> list[int]:
    """Parse a port list such as ``22,80,8000-8100`` into sorted unique ports.

    Raises:
        UsageError: for an empty list, a bad number, or a range that runs
            backwards.
    """
    ports: set[int] = set()
    for item in text.split(","):
        low_text, dash, high_text = item.strip().partition("-")
        low = parse_port(low_text)
        high = parse_port(high_text) if dash else low
        if high < low:
            raise UsageError(f"bad port range {item.strip()!r}", "write the lower port first")
        ports.update(range(low, high + 1))
    return sorted(ports)


def _strip_brackets(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def parse_address(
    text: str, port: str | None = None, *, datagram: bool = False, default_host: str = ""
) -> Address:
    """Parse an address written by a user.

    Args:
        text: ``host:port``, ``[v6]:port``, ``unix:PATH``, ``udp:host:port``,
            or just a host when ``port`` is given separately.
        port: the port as a separate word (``wirecat connect HOST PORT``).
        datagram: use a datagram transport (overridden to True by ``udp:``).
        default_host: used when ``text`` is only ``:port`` or a bare port.

    Raises:
        UsageError: the text is not one of the accepted forms.
    """
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise UsageError("empty Unix socket path in 'unix:'", "write unix:/path/to/socket")
        if port is not None:
            raise UsageError(f"a Unix socket address takes no port (got {port!r})")
        return Address(path=path, datagram=datagram)
    if text.startswith("udp:"):
        text, datagram = text[len("udp:") :], True
    elif text.startswith("tcp:"):
        text = text[len("tcp:") :]
    if port is not None:
        host = _strip_brackets(text)
        if not host:
            raise UsageError("empty host name", "give a host name or an address such as 127.0.0.1")
        return Address(host=host, port=parse_port(port), datagram=datagram)
    if text.isascii() and text.isdigit():
        return Address(host=default_host, port=parse_port(text), datagram=datagram)
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise UsageError(f"bad address {text!r}", "write an IPv6 address as [::1]:PORT")
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise UsageError(f"address {text!r} has no port", "write HOST:PORT")
        if ":" in host:
            raise UsageError(f"ambiguous address {text!r}", "write an IPv6 address in brackets: [::1]:PORT")
    return Address(host=host or default_host, port=parse_port(port_text), datagram=datagram)
