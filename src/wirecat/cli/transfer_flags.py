"""Flags shared by ``send`` and ``recv``, and their conversion."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from wirecat.cli.common import seconds
from wirecat.errors import UsageError

__all__ = ["add_common_flags", "byte_size", "check_common", "text_mode", "transfer_address"]

if TYPE_CHECKING:
    from wirecat.address import Address

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def byte_size(text: str) -> int:
    """argparse type for a size: ``1048576``, ``512K``, ``100M``, ``2G``, ``1T`` (binary units)."""
    word = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = word[-1:] if word[-1:] in _UNITS and word[-1:] else ""
    number = word[: len(word) - len(unit)]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not 0 <= value < 2**62:  # (NaN fails too)
        raise argparse.ArgumentTypeError(f"bad size {text!r}: give bytes, or a number with K, M, G or T")
    return int(value * _UNITS[unit])


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """-4/-6/-u/-v, -w, -i, --plain, --progress."""
    group = parser.add_argument_group("connection")
    group.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only")
    group.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 only")
    group.add_argument("-u", "--udp", action="store_true", help=argparse.SUPPRESS)
    group.add_argument(
        "-w", dest="timeout", type=seconds, metavar="SECS", help="give up connecting (or waiting) after SECS"
    )
    group.add_argument(
        "-i",
        "--idle-timeout",
        type=seconds,
        metavar="SECS",
        help="give up after SECS with nothing moving (default 60; 0 never)",
    )
    group.add_argument(
        "--plain",
        action="store_true",
        help="allow a transfer off loopback in clear (TLS for transfers is not built yet)",
    )
    parser.add_argument(
        "--progress", action="store_true", help="a line per file even when stderr is not a terminal"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say each file's verdict")


def check_common(args: argparse.Namespace) -> None:
    """Refuse what a transfer cannot do (UDP)."""
    if args.udp:
        raise UsageError(
            "file transfer needs a stream, not UDP",
            "UDP loses, reorders and repeats datagrams and a file must arrive whole: drop -u",
        )
    if args.idle_timeout == 0:
        args.idle_timeout = None
    elif args.idle_timeout is None:
        from wirecat.transfer import DEFAULT_TRANSFER_IDLE

        args.idle_timeout = DEFAULT_TRANSFER_IDLE


def text_mode() -> bool:
    """Whether stderr carries text (not ``--json``): the summary is said, or emitted as a note."""
    from wirecat import events
    from wirecat.cli.output import JsonOutput

    return not any(isinstance(s, JsonOutput) and s._out is None for s in events.default._subscribers)


def transfer_address(word: str, *, listen: bool) -> Address:
    """The address in a word: where to listen (a bare PORT: 127.0.0.1), or the peer's HOST:PORT.

    Raises:
        UsageError: a malformed address, or no host where one is needed.
    """
    from wirecat.address import parse_address
    from wirecat.bind import listen_address
    from wirecat.cli.common import service_port

    address = parse_address(word, service=service_port)
    if listen:
        return listen_address(address)
    if not address.is_unix and not address.host:
        raise UsageError(f"{word!r} has no host", "give the peer as HOST:PORT, e.g. 127.0.0.1:9000")
    return address
