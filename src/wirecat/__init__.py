"""wirecat: a socket tool, a small server library, and a teacher of the socket API.

The public names are re-exported here, lazily (PEP 562): ``import wirecat``
costs almost nothing, so ``wirecat --version`` starts as fast as Python does,
and a name's module is imported the first time the name is used. Only the
library is re-exported; the command-line jobs built on it are
``wirecat.apps.*`` (``from wirecat.apps.scan import scan_ports``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import`: typing costs ~4 ms at start-up

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "AccessList": "wirecat.access",
    "Address": "wirecat.address",
    "parse_address": "wirecat.address",
    "SessionOptions": "wirecat.session",
    "SessionResult": "wirecat.session",
    "run_session": "wirecat.session",
    "Connection": "wirecat.stream",
    "connect": "wirecat.stream",
    "Server": "wirecat.server",
    "serve": "wirecat.server",
    "DrainResult": "wirecat.listener",
    "Listener": "wirecat.listener",
    "dial": "wirecat.dial",
    "adial": "wirecat.dial",
    "relay": "wirecat.forwarding",
    "UdpRelay": "wirecat.forwarding",
    "Raw": "wirecat.framing",
    "Lines": "wirecat.framing",
    "LengthPrefixed": "wirecat.framing",
    "send_files": "wirecat.transfer",
    "receive_files": "wirecat.transfer",
    "FileResult": "wirecat.transfer",
    "TransferResult": "wirecat.transfer",
    "Progress": "wirecat.transfer",
    **{
        name: "wirecat.errors"
        for name in (
            "BindError",
            "CertificateError",
            "ChecksumMismatch",
            "ConnectError",
            "ConnectTimeout",
            "ConnectionClosed",
            "FrameError",
            "FrameTimeout",
            "FrameTooLarge",
            "HandshakeTimeout",
            "IncompleteFrame",
            "IdleTimeout",
            "NetworkError",
            "PeerReset",
            "ProtocolError",
            "ProxyProtocolError",
            "ProgramError",
            "ResolveError",
            "SizeMismatch",
            "TLSError",
            "TLSTruncated",
            "Timeout",
            "TransferError",
            "TransferProtocolError",
            "Truncated",
            "UnsafePath",
            "UsageError",
            "WirecatError",
        )
    },
}

__all__ = [
    "AccessList",
    "Address",
    "BindError",
    "CertificateError",
    "ChecksumMismatch",
    "ConnectError",
    "ConnectTimeout",
    "Connection",
    "ConnectionClosed",
    "DrainResult",
    "FileResult",
    "FrameError",
    "FrameTimeout",
    "FrameTooLarge",
    "HandshakeTimeout",
    "IdleTimeout",
    "IncompleteFrame",
    "LengthPrefixed",
    "Lines",
    "Listener",
    "NetworkError",
    "PeerReset",
    "ProgramError",
    "Progress",
    "ProtocolError",
    "ProxyProtocolError",
    "Raw",
    "ResolveError",
    "Server",
    "SessionOptions",
    "SessionResult",
    "SizeMismatch",
    "TLSError",
    "TLSTruncated",
    "Timeout",
    "TransferError",
    "TransferProtocolError",
    "TransferResult",
    "Truncated",
    "UdpRelay",
    "UnsafePath",
    "UsageError",
    "WirecatError",
    "__version__",
    "adial",
    "connect",
    "dial",
    "parse_address",
    "receive_files",
    "relay",
    "run_session",
    "send_files",
    "serve",
]

if TYPE_CHECKING:
    from wirecat.access import AccessList
    from wirecat.address import Address, parse_address
    from wirecat.dial import adial, dial
    from wirecat.errors import (
        BindError,
        CertificateError,
        ChecksumMismatch,
        ConnectError,
        ConnectionClosed,
        ConnectTimeout,
        FrameError,
        FrameTimeout,
        FrameTooLarge,
        HandshakeTimeout,
        IdleTimeout,
        IncompleteFrame,
        NetworkError,
        PeerReset,
        ProgramError,
        ProtocolError,
        ProxyProtocolError,
        ResolveError,
        SizeMismatch,
        Timeout,
        TLSError,
        TLSTruncated,
        TransferError,
        TransferProtocolError,
        Truncated,
        UnsafePath,
        UsageError,
        WirecatError,
    )
    from wirecat.forwarding import UdpRelay, relay
    from wirecat.framing import LengthPrefixed, Lines, Raw
    from wirecat.listener import DrainResult, Listener
    from wirecat.server import Server, serve
    from wirecat.session import SessionOptions, SessionResult, run_session
    from wirecat.stream import Connection, connect
    from wirecat.transfer import FileResult, Progress, TransferResult, receive_files, send_files


#: Submodules reachable as attributes after a bare ``import wirecat``.
_SUBMODULES = ("blocking", "events", "framing", "protocol", "testing", "tls", "trace")


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"wirecat.{name}")
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'wirecat' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
