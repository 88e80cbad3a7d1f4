"""The PROXY protocol (HAProxy), versions 1 and 2, sans-IO.

A relay in front of a server hides the client's address: the server sees the
relay. The PROXY protocol fixes that with one header the relay sends first on
each connection to the server, saying who the client really was
(https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt):

* v1, text: ``PROXY TCP4 198.51.100.1 203.0.113.1 51234 80\\r\\n`` (at most 107
  bytes), or ``PROXY UNKNOWN\\r\\n``;
* v2, binary: a 12-byte signature, a version/command byte, a family/protocol
  byte, a 2-byte length, the addresses, then optional TLVs (skipped here).

:func:`encode_v1` and :func:`encode_v2` build headers; :class:`ProxyHeaderReader`
reads one from the start of a stream, in any chunks, and says where the
stream's own bytes begin. Nothing here touches a socket. Bad input raises
:class:`~wirecat.errors.ProxyProtocolError` and nothing else, as early as it
is known (a v1 line with no CRLF within 107 bytes, a v2 length over the limit).
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from wirecat.errors import ProxyProtocolError

__all__ = [
    "V1_MAX",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderReader",
    "encode_v1",
    "encode_v2",
]

#: The longest v1 header, CRLF included (the specification's own figure).
V1_MAX = 107
#: Every v2 header starts with these 12 bytes.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: Bytes of v2 header before the addresses: signature, ver/cmd, fam, length.
_V2_FIXED = 16
#: Largest v2 address block we accept: Unix addresses (216 bytes) plus TLVs.
#: The length field allows 65535; nothing sane needs more than a few hundred.
_V2_MAX_BODY = 4096

_CMD_LOCAL = 0x20
_CMD_PROXY = 0x21
_FAMILIES = {0x11: "TCP4", 0x21: "TCP6", 0x12: "UDP4", 0x22: "UDP6", 0x31: "UNIX", 0x32: "UNIX"}
_V2_FAMILY_OF = {"TCP4": 0x11, "TCP6": 0x21}


class ProxyHeader(NamedTuple):
    """What a PROXY header says.

    Attributes:
        version: 1 or 2.
        family: ``"TCP4"``, ``"TCP6"`` (also ``"UDP4"``/``"UDP6"``/``"UNIX"``
            from v2), or ``"UNKNOWN"`` (v1) / ``"LOCAL"`` (v2): no addresses,
            the connection is the relay's own (health checks).
        source: the client's address, or ``""``.
        source_port: the client's port, or 0.
        destination: the address the client connected to, or ``""``.
        destination_port: that port, or 0.
    """

    version: int
    family: str
    source: str = ""
    source_port: int = 0
    destination: str = ""
    destination_port: int = 0

    @property
    def has_addresses(self) -> bool:
        """True unless the header is UNKNOWN or LOCAL."""
        return bool(self.source)


def _family_of(source: str, destination: str) -> str:
    try:
        src, dst = ipaddress.ip_address(source), ipaddress.ip_address(destination)
    except ValueError:
        raise ProxyProtocolError(f"not IP addresses: {source!r}, {destination!r}") from None
    if src.version != dst.version:
        raise ProxyProtocolError("source and destination are of different IP versions")
    return "TCP4" if src.version == 4 else "TCP6"


def encode_v1(
    source: str = "", source_port: int = 0, destination: str = "", destination_port: int = 0
) -> bytes:
    """A v1 header; with no addresses (a Unix client), ``PROXY UNKNOWN``.

    Raises:
        ProxyProtocolError: the addresses are not of one IP version.
    """
    if not source:
        return b"PROXY UNKNOWN\r\n"
    family = _family_of(source, destination)
    line = f"PROXY {family} {source} {destination} {source_port} {destination_port}\r\n"
    return line.encode("ascii")


def encode_v2(
    source: str = "", source_port: int = 0, destination: str = "", destination_port: int = 0
) -> bytes:
    """A v2 header; with no addresses, the LOCAL command (no address block).

    Raises:
        ProxyProtocolError: the addresses are not of one IP version.
    """
    if not source:
        return V2_SIGNATURE + bytes([_CMD_LOCAL, 0x00]) + (0).to_bytes(2, "big")
    family = _family_of(source, destination)
    body = (
        ipaddress.ip_address(source).packed
        + ipaddress.ip_address(destination).packed
        + source_port.to_bytes(2, "big")
        + destination_port.to_bytes(2, "big")
    )
    return V2_SIGNATURE + bytes([_CMD_PROXY, _V2_FAMILY_OF[family]]) + len(body).to_bytes(2, "big") + body


def _port(text: bytes) -> int:
    if not (text.isdigit() and len(text) <= 5) or int(text) > 65535 or (len(text) > 1 and text[:1] == b"0"):
        raise ProxyProtocolError(f"bad port {text[:8]!r} in PROXY v1 header")
    return int(text)


def _parse_v1(line: bytes) -> ProxyHeader:
    """Parse a complete v1 line, CRLF stripped."""
    parts = line.split(b" ")
    if parts[0] != b"PROXY" or len(parts) < 2:
        raise ProxyProtocolError("not a PROXY v1 header")
    if parts[1] == b"UNKNOWN":
        return ProxyHeader(1, "UNKNOWN")  # the rest of the line is to be ignored
    if parts[1] not in (b"TCP4", b"TCP6") or len(parts) != 6:
        raise ProxyProtocolError(f"bad PROXY v1 header {line[:40]!r}")
    family = parts[1].decode()
    try:
        source, destination = parts[2].decode("ascii"), parts[3].decode("ascii")
        src, dst = ipaddress.ip_address(source), ipaddress.ip_address(destination)
    except (UnicodeDecodeError, ValueError):
        raise ProxyProtocolError(f"bad address in PROXY v1 header {line[:60]!r}") from None
    if src.version != dst.version or (src.version == 4) != (family == "TCP4"):
        raise ProxyProtocolError(f"addresses do not match {family} in PROXY v1 header")
    return ProxyHeader(1, family, str(src), _port(parts[4]), str(dst), _port(parts[5]))


def _parse_v2(command: int, family_byte: int, body: bytes) -> ProxyHeader:
    if command == _CMD_LOCAL:
        return ProxyHeader(2, "LOCAL")
    if command != _CMD_PROXY:
        raise ProxyProtocolError(f"unknown PROXY v2 version/command byte 0x{command:02x}")
    family = _FAMILIES.get(family_byte)
    if family_byte == 0x00:
        return ProxyHeader(2, "UNKNOWN")  # UNSPEC: addresses, if any, are to be ignored
    if family is None:
        raise ProxyProtocolError(f"unknown PROXY v2 family byte 0x{family_byte:02x}")
    if family in ("TCP4", "UDP4"):
        size, width = 12, 4
    elif family in ("TCP6", "UDP6"):
        size, width = 36, 16
    else:  # UNIX: two 108-byte paths; the real client has no IP address
        if len(body) < 216:
            raise ProxyProtocolError("PROXY v2 UNIX header too short")
        return ProxyHeader(2, "UNIX")
    if len(body) < size:
        raise ProxyProtocolError(f"PROXY v2 {family} header too short ({len(body)} < {size} bytes)")
    source = str(ipaddress.ip_address(body[:width]))
    destination = str(ipaddress.ip_address(body[width : 2 * width]))
    ports = body[2 * width : 2 * width + 4]
    return ProxyHeader(
        2, family, source, int.from_bytes(ports[:2], "big"), destination, int.from_bytes(ports[2:], "big")
    )


class ProxyHeaderReader:
    """Reads one PROXY header (v1 or v2) from the start of a stream.

    Feed it what arrives; it returns None until the header is complete, then
    the :class:`ProxyHeader`, after which :attr:`rest` holds the bytes that
    came after the header (the stream's own data, to be passed on).

    Args:
        versions: which versions to accept (both by default).

    Raises (from :meth:`feed`):
        ProxyProtocolError: the stream does not start with a valid header of an
            accepted version, or ended before a whole header came.
    """

    def __init__(self, versions: tuple[int, ...] = (1, 2)) -> None:
        self._buffer = b""
        self._versions = versions
        self.header: ProxyHeader | None = None
        #: Bytes after the header, once it is complete.
        self.rest = b""

    def feed(self, data: bytes) -> ProxyHeader | None:
        """Take the next bytes (``b""`` = end of stream); the header once complete."""
        if self.header is not None:
            self.rest += data
            return self.header
        if not data:
            raise ProxyProtocolError(
                f"the stream ended inside the PROXY header ({len(self._buffer)} bytes of it received)"
            )
        buffer = self._buffer = self._buffer + data
        if buffer[:1] == b"P":
            if 1 not in self._versions:
                raise ProxyProtocolError("a PROXY v1 header came, but only v2 is accepted")
            known = min(len(buffer), 6)
            if buffer[:known] != b"PROXY "[:known]:
                raise ProxyProtocolError("the stream does not start with a PROXY header")
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) >= V1_MAX:
                    raise ProxyProtocolError(f"no end of PROXY v1 header within {V1_MAX} bytes")
                return None
            if end + 2 > V1_MAX:
                raise ProxyProtocolError(f"PROXY v1 header longer than {V1_MAX} bytes")
            header = _parse_v1(buffer[:end])
            return self._done(header, buffer[end + 2 :])
        if buffer[:1] == V2_SIGNATURE[:1]:
            if 2 not in self._versions:
                raise ProxyProtocolError("a PROXY v2 header came, but only v1 is accepted")
            known = min(len(buffer), len(V2_SIGNATURE))
            if buffer[:known] != V2_SIGNATURE[:known]:
                raise ProxyProtocolError("the stream does not start with a PROXY header")
            if len(buffer) < _V2_FIXED:
                return None
            command, family_byte = buffer[12], buffer[13]
            if command >> 4 != 2:
                raise ProxyProtocolError(f"PROXY v2 header with version {command >> 4}")
            length = int.from_bytes(buffer[14:16], "big")
            if length > _V2_MAX_BODY:
                raise ProxyProtocolError(f"PROXY v2 address block of {length} bytes is over the limit")
            if len(buffer) < _V2_FIXED + length:
                return None
            header = _parse_v2(command, family_byte, buffer[_V2_FIXED : _V2_FIXED + length])
            return self._done(header, buffer[_V2_FIXED + length :])
        raise ProxyProtocolError("the stream does not start with a PROXY header")

    def _done(self, header: ProxyHeader, rest: bytes) -> ProxyHeader:
        self.header, self.rest, self._buffer = header, rest, b""
        return header
