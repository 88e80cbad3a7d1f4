"""Addresses as the user writes them, parsed without touching the network.

Forms accepted everywhere (CLI and library alike)::

    host:port        example.com:80, 127.0.0.1:80
    [v6]:port        [::1]:8080            (brackets, as in URLs: RFC 3986 §3.2.2)
    v6 port          ::1 and 8080 given as two CLI words need no brackets
    unix:PATH        unix:/run/app.sock    (a Unix domain socket)
    unix:@NAME       unix:@name            (Linux abstract namespace)
    udp:host:port    the same, datagram transport
    tls:host:port    TLS over TCP (also tls:unix:PATH); sets ``Address.tls``

A port is a number; where the caller passes a ``service`` lookup (the CLI
passes :func:`wirecat.resolve.service_port`), it may also be a service name
(``http``, ``ssh``), as nc allows. Nothing here resolves names, reads the
services database or opens sockets: that is ``wirecat.resolve`` and
``wirecat.sockets``.
What can be known without the network is checked here, so that bad input is
a usage error before any lookup or socket: a host name that cannot be a name
(:func:`check_host`), a Unix socket path over the kernel's limit
(:func:`check_unix_path`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from wirecat.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    #: Looks a service name up: ``(name, datagram) -> port``; raises UsageError if unknown.
    ServiceLookup = Callable[[str, bool], int]

__all__ = [
    "MAX_UNIX_PATH",
    "Address",
    "as_address",
    "check_host",
    "check_ip_address",
    "check_remote_port",
    "check_unix_path",
    "format_hostport",
    "format_sockaddr",
    "ip_version",
    "is_ip_address",
    "is_service_name",
    "parse_address",
    "parse_port",
    "parse_ports",
]

_PORT_HINT = "give a number from 0 to 65535"
_PORT_OR_SERVICE_HINT = "give a number from 0 to 65535, or a service name such as http"
#: Longest service name looked up: RFC 6335 §5.1 allows 15 characters; the
#: services database has none longer, and nothing longer is sent to it.
_MAX_SERVICE_NAME = 32

#: Longest Unix socket path, in bytes: ``sun_path`` holds 108 bytes with the
#: terminating NUL on Linux; an abstract name (``@name``) has 107 after its
#: leading NUL. (macOS and the BSDs allow 103.)
MAX_UNIX_PATH = 107
#: Longest host name, in bytes once IDNA-encoded (RFC 1035 §2.3.4: 255 octets
#: on the wire, 253 characters written with dots); a label has at most 63.
_MAX_HOST = 253
#: Characters no host name or IP address holds; each would reach the resolver
#: as a lookup that cannot succeed (or, for NUL, as a ValueError).
_NOT_IN_HOSTS = frozenset("[]/\\@,;<>\"'`|{}()") | {chr(c) for c in range(33)} | {"\x7f"}


def _shown(text: str, limit: int = 40) -> str:
    """``text`` for an error message: quoted, and cut short if long."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def check_host(host: str) -> str:
    """Check that ``host`` can be a host name or an IP address; return it.

    Pure: no lookup. A name must encode to IDNA (as the resolver will ask for
    it), with labels of 1 to 63 bytes and 253 in all; brackets belong around
    an IPv6 address with a port (``[::1]:80``), never inside a host.

    Raises:
        UsageError: the text cannot be a host, with the reason.
    """
    if not host:
        raise UsageError("empty host name", "give a host name or an address such as 127.0.0.1")
    bad = next((c for c in host if c in _NOT_IN_HOSTS), None)
    if bad is not None:
        hint = (
            "write an IPv6 address as [::1]:PORT, or as ::1 PORT"
            if bad in "[]"
            else "a host is a name such as example.com or an address such as 127.0.0.1"
        )
        raise UsageError(f"{_shown(host)} is not a host name or an address: it holds {bad!r}", hint)
    if ":" in host:  # only IPv6 literals hold colons
        check_ip_address(host)
        return host
    try:
        encoded = _ascii_host(host) if host.isascii() else host.encode("idna")
    except UnicodeError as exc:
        reason = str(exc.__cause__ or exc).removeprefix("encoding with 'idna' codec failed (")
        if "too long" in reason or "empty" in reason:
            reason = "each part between dots must have 1 to 63 characters"
        raise UsageError(f"{_shown(host)} is not a valid host name: {reason.rstrip(')')}") from None
    if len(encoded.rstrip(b".")) > _MAX_HOST:
        raise UsageError(
            f"host name {_shown(host)} is too long", f"a host name has at most {_MAX_HOST} bytes"
        )
    return host


def _ascii_host(host: str) -> bytes:
    """``host.encode("idna")`` for an ASCII name: the same label checks, without
    importing the codec (~1 ms of every client's start-up)."""
    if not host:
        return b""  # as the codec does (check_host has refused it already)
    labels = host.split(".")
    if len(labels) > 1 and not labels[-1]:
        labels.pop()  # one trailing dot: the root, as the codec allows it
    for label in labels:
        if not 0 < len(label) < 64:
            raise UnicodeError("label empty or too long")
    return host.encode("ascii")


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IP address literal (an IPv6 one may carry a ``%zone``)."""
    return _is_ip_literal(host.split("%", 1)[0])


def _is_ip_literal(text: str) -> bool:
    # ipaddress is imported here, not at the top: a client naming its peer by
    # IPv4 address or by name never needs it (~1.5 ms of start-up).
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ip_version(host: str) -> int | None:
    """4 or 6 for an IP address literal (an IPv6 one may carry a ``%zone``); None for a name."""
    if not is_ip_address(host):
        return None
    return 6 if ":" in host else 4


def check_ip_address(host: str) -> str:
    """Check that ``host`` is an IP address (an IPv6 one may carry a ``%zone``); return it.

    For ``-n`` (no DNS), and for the hosts with a colon, which can only be IPv6.

    Raises:
        UsageError: it is not one.
    """
    if not _is_ip_literal(host.split("%", 1)[0] if ":" in host else host):
        if ":" in host:
            raise UsageError(f"{_shown(host)} is not an IPv6 address") from None
        raise UsageError(f"{_shown(host)} is not an IP address") from None
    return host


def check_unix_path(path: str) -> str:
    """Check a Unix socket path (``@name`` for Linux's abstract names); return it.

    Raises:
        UsageError: it is empty or longer than the kernel allows.
    """
    name = path[1:] if path.startswith("@") else path
    if not name:
        raise UsageError("empty Unix socket path", "write unix:/path/to/socket, or unix:@name")
    size = len(name.encode("utf-8", "surrogateescape"))  # os.fsencode's bytes, without importing os
    if size > MAX_UNIX_PATH:
        abstract = path.startswith("@")
        raise UsageError(
            f"{'abstract Unix socket name' if abstract else 'Unix socket path'} {_shown(path)}"
            f" is {size} bytes long",
            f"the kernel allows at most {MAX_UNIX_PATH}: choose a shorter "
            + ("name" if abstract else "path (a relative path counts only its own bytes)"),
        )
    return path


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
    #: Written ``tls:...``: speak TLS over the stream (the caller brings the settings).
    tls: bool = False

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


def check_remote_port(port: int) -> int:
    """A port to connect or send to: 1 to 65535.

    Raises:
        UsageError: port 0, which asks a listener for any free port and can
            never be connected to.
    """
    if port == 0:
        raise UsageError(
            "port 0 cannot be connected to", "0 asks a listener for any free port; give the port it printed"
        )
    return port


def as_address(value: object, *, port_alone: bool = False) -> Address:
    """An :class:`Address` from what a library caller gave: an Address, or a
    string in any of the forms above (and, where ``port_alone``, a bare port
    number for a listening address).

    Raises:
        UsageError: anything else (None, bytes, a tuple...), or a malformed string.
    """
    if isinstance(value, Address):
        return value
    if isinstance(value, str):
        return parse_address(value)
    if port_alone and isinstance(value, int) and not isinstance(value, bool):
        return Address(port=parse_port(str(value)))
    raise UsageError(
        f"bad address {value!r}",
        "give a string such as '127.0.0.1:8000', '[::1]:8000' or 'unix:/path', or an Address",
    )


def format_hostport(host: str, port: int) -> str:
    """Format ``host`` and ``port`` as ``host:port``, bracketing IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_sockaddr(sockaddr: object) -> str:
    """Format a socket address as the kernel gives it: an IP tuple as
    ``host:port``, a Unix path as ``unix:PATH`` (``unix:@name`` for an
    abstract one, ``unix:(unnamed)`` for an unbound socket)."""
    if isinstance(sockaddr, tuple):
        return format_hostport(str(sockaddr[0]), int(sockaddr[1]))
    if isinstance(sockaddr, bytes):
        sockaddr = sockaddr.decode(errors="replace")
    text = str(sockaddr)
    if text.startswith("\0"):
        text = "@" + text[1:]
    return f"unix:{text}" if text else "unix:(unnamed)"


def is_service_name(text: str) -> bool:
    """Whether ``text`` has the form of a service name (``http``, ``http-alt``,
    ``kerberos_master``): ASCII letters, digits, ``-`` and ``_``, with at least
    one letter (RFC 6335 §5.1, and the underscores /etc/services holds)."""
    return (
        0 < len(text) <= _MAX_SERVICE_NAME
        and text.isascii()
        and text.replace("-", "").replace("_", "").isalnum()
        and any(c.isalpha() for c in text)
    )


def parse_port(
    text: str, *, what: str = "port", service: ServiceLookup | None = None, datagram: bool = False
) -> int:
    """Parse a port number (0 to 65535), or a service name where ``service`` is given.

    Args:
        text: what the user wrote.
        what: how the message names it (``"source port"``).
        service: looks a service name up, ``(name, datagram) -> port``
            (:func:`wirecat.resolve.service_port`); None accepts numbers only.
        datagram: the name is a UDP service, not a TCP one.

    Raises:
        UsageError: for anything but a decimal number in range, or a service
            name the lookup does not know.
    """
    # isascii(): str.isdigit() also accepts "¹" and "٣", which int() refuses.
    if text.isascii() and text.isdigit() and int(text) <= 65535:
        return int(text)
    if service is not None and is_service_name(text):
        return service(text, datagram)
    raise UsageError(f"bad {what} {text!r}", _PORT_HINT if service is None else _PORT_OR_SERVICE_HINT)


def parse_ports(text: str, *, service: ServiceLookup | None = None) -> list[int]:
    """Parse a port list such as ``22,80,8000-8100`` into sorted unique ports.

    With ``service`` (see :func:`parse_port`), an item may be a TCP service
    name (``ssh,http``); a range is numbers only, since names hold dashes
    (``http-alt``).

    Raises:
        UsageError: for an empty list, a bad number or name, or a range that
            runs backwards.
    """
    ports: set[int] = set()
    for item in text.split(","):
        if service is not None and is_service_name(item.strip()):
            ports.add(service(item.strip(), False))
            continue
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
    text: str,
    port: str | None = None,
    *,
    datagram: bool = False,
    default_host: str = "",
    service: ServiceLookup | None = None,
) -> Address:
    """Parse an address written by a user.

    Args:
        text: ``host:port``, ``[v6]:port``, ``unix:PATH``, ``udp:host:port``,
            or just a host when ``port`` is given separately.
        port: the port as a separate word (``wirecat connect HOST PORT``).
        datagram: use a datagram transport (overridden to True by ``udp:``).
        default_host: used when ``text`` is only ``:port`` or a bare port.
        service: looks up a port written as a service name (``host:http``,
            and a bare name where a bare port is accepted); see
            :func:`parse_port`. None: ports are numbers.

    Raises:
        UsageError: the text is not one of the accepted forms.
    """
    if text[:4].lower() == "tls:":
        inner = parse_address(text[4:], port, datagram=datagram, default_host=default_host, service=service)
        if inner.datagram:
            raise UsageError(
                f"TLS over UDP in {text!r}", "DTLS is not supported: TLS needs a stream (drop udp: or tls:)"
            )
        return inner._replace(tls=True)
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise UsageError("empty Unix socket path in 'unix:'", "write unix:/path/to/socket")
        if port is not None:
            raise UsageError(f"a Unix socket address takes no port (got {port!r})")
        return Address(path=check_unix_path(path), datagram=datagram)
    if text.startswith("udp:"):
        text, datagram = text[len("udp:") :], True
    elif text.startswith("tcp:"):
        text = text[len("tcp:") :]
    if port is not None:
        host = check_host(_strip_brackets(text))
        number = parse_port(port, service=service, datagram=datagram)
        return Address(host=host, port=number, datagram=datagram)
    if text.isascii() and text.isdigit():
        return Address(host=default_host, port=parse_port(text), datagram=datagram)
    if service is not None and is_service_name(text):
        # A bare word: a port given by name (`listen http`), or else a host
        # without its port, which the message below says.
        try:
            return Address(host=default_host, port=service(text, datagram), datagram=datagram)
        except UsageError:
            pass
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
    port_number = parse_port(port_text, service=service, datagram=datagram)
    return Address(host=check_host(host) if host else default_host, port=port_number, datagram=datagram)
