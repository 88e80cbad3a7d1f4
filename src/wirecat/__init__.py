"""wirecat: a socket tool, a small server library, and a teacher of the socket API.

The public names are re-exported here, lazily (PEP 562): ``import wirecat``
costs almost nothing, so ``wirecat --version`` starts as fast as Python does,
and a name's module is imported the first time the name is used.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import`: typing costs ~4 ms at start-up

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "AccessList": "wirecat.access",
    "Address": "wirecat.address",
    "parse_address": "wirecat.address",
    "ConnectOptions": "wirecat.apps.connect",
    "connect_stdio": "wirecat.apps.connect",
    "open_stream": "wirecat.apps.connect",
    "ListenOptions": "wirecat.apps.listen",
    "listen_stdio": "wirecat.apps.listen",
    "scan_ports": "wirecat.apps.scan",
    "PortResult": "wirecat.apps.scan",
    "PortState": "wirecat.apps.scan",
    "ScanResult": "wirecat.apps.scan",
    "run_demo": "wirecat.apps.demo",
    "SessionOptions": "wirecat.session",
    "SessionResult": "wirecat.session",
    "run_session": "wirecat.session",
    "Connection": "wirecat.stream",
    "connect": "wirecat.stream",
    "Server": "wirecat.server",
    "serve": "wirecat.server",
    "relay": "wirecat.forwarding",
    "UdpRelay": "wirecat.forwarding",
    "Raw": "wirecat.framing",
    "Lines": "wirecat.framing",
    "LengthPrefixed": "wirecat.framing",
    **{
        name: "wirecat.errors"
        for name in (
            "BindError",
            "ConnectError",
            "ConnectTimeout",
            "ConnectionClosed",
            "FrameError",
            "FrameTooLarge",
            "IncompleteFrame",
            "IdleTimeout",
            "NetworkError",
            "PeerReset",
            "ProtocolError",
            "ProxyProtocolError",
            "ProgramError",
            "ResolveError",
            "Timeout",
            "Truncated",
            "UsageError",
            "WirecatError",
        )
    },
}

__all__ = [
    "AccessList",
    "Address",
    "BindError",
    "ConnectError",
    "ConnectOptions",
    "ConnectTimeout",
    "Connection",
    "ConnectionClosed",
    "FrameError",
    "FrameTooLarge",
    "IdleTimeout",
    "IncompleteFrame",
    "LengthPrefixed",
    "Lines",
    "ListenOptions",
    "NetworkError",
    "PeerReset",
    "PortResult",
    "PortState",
    "ProgramError",
    "ProtocolError",
    "ProxyProtocolError",
    "Raw",
    "ResolveError",
    "ScanResult",
    "Server",
    "SessionOptions",
    "SessionResult",
    "Timeout",
    "Truncated",
    "UdpRelay",
    "UsageError",
    "WirecatError",
    "__version__",
    "connect",
    "connect_stdio",
    "listen_stdio",
    "open_stream",
    "parse_address",
    "relay",
    "run_demo",
    "run_session",
    "scan_ports",
    "serve",
]

if TYPE_CHECKING:
    from wirecat.access import AccessList
    from wirecat.address import Address, parse_address
    from wirecat.apps.connect import ConnectOptions, connect_stdio, open_stream
    from wirecat.apps.demo import run_demo
    from wirecat.apps.listen import ListenOptions, listen_stdio
    from wirecat.apps.scan import PortResult, PortState, ScanResult, scan_ports
    from wirecat.errors import (
        BindError,
        ConnectError,
        ConnectionClosed,
        ConnectTimeout,
        FrameError,
        FrameTooLarge,
        IdleTimeout,
        IncompleteFrame,
        NetworkError,
        PeerReset,
        ProgramError,
        ProtocolError,
        ProxyProtocolError,
        ResolveError,
        Timeout,
        Truncated,
        UsageError,
        WirecatError,
    )
    from wirecat.forwarding import UdpRelay, relay
    from wirecat.framing import LengthPrefixed, Lines, Raw
    from wirecat.server import Server, serve
    from wirecat.session import SessionOptions, SessionResult, run_session
    from wirecat.stream import Connection, connect


#: Submodules reachable as attributes after a bare ``import wirecat``.
_SUBMODULES = ("blocking", "framing", "protocol", "testing", "trace")


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
