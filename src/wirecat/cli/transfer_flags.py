"""Flags shared by ``send`` and ``recv``, and their conversion."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from wirecat.cli.common import seconds
from wirecat.errors import UsageError

__all__ = [
    "add_common_flags",
    "byte_size",
    "check_common",
    "say_how_to_trust",
    "text_mode",
    "tls_from",
    "transfer_address",
]

if TYPE_CHECKING:
    from wirecat.address import Address
    from wirecat.tls import ClientTLS, ServerTLS

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
        help="allow a transfer off loopback in clear (off loopback, TLS is the default)",
    )
    tls = parser.add_argument_group("TLS (the default off loopback; --tls asks for it anywhere)")
    tls.add_argument("--tls", action="store_true", help="speak TLS even on loopback or a Unix socket")
    tls.add_argument(
        "--pin",
        metavar="sha256:HEX",
        help="connecting: trust exactly the certificate with this fingerprint (the listener prints it)",
    )
    tls.add_argument("--cafile", metavar="FILE", help="connecting: trust the CAs in this PEM file")
    tls.add_argument("--servername", metavar="NAME", help="connecting: the name to check (default: the host)")
    tls.add_argument(
        "--insecure", action="store_true", help="connecting: do not verify the certificate (says so)"
    )
    tls.add_argument("--cert", metavar="FILE", help="listening: the certificate (default: one made at start)")
    tls.add_argument("--key", metavar="FILE", help="listening: its private key (default: in --cert)")
    tls.add_argument(
        "--handshake-timeout",
        type=seconds,
        default=None,
        metavar="SECS",
        help="give up on the TLS handshake after SECS (default 10)",
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


_CLIENT_FLAGS = ("pin", "cafile", "servername", "insecure")
_SERVER_FLAGS = ("cert", "key")


def tls_from(args: argparse.Namespace, *, listen: bool, address: Address) -> ClientTLS | ServerTLS | None:
    """The TLS settings of this side, or None for a transfer in clear.

    TLS when ``--tls`` asks, or when the address is off loopback and not a
    Unix socket (unless ``--plain``). Listening: the certificate of
    ``--cert``, or one made now (:func:`say_how_to_trust` tells the other
    side). Connecting: verified against the system's CAs, ``--cafile``, or
    exactly ``--pin``.

    Raises:
        UsageError: --plain with --tls; a flag of the other role; a TLS flag
            on a transfer in clear.
    """
    from wirecat.transfer import is_local

    if args.plain and args.tls:
        raise UsageError("--plain and --tls cannot go together", "give one")
    wanted = args.tls or (not args.plain and not is_local(address))
    mine, theirs = (_SERVER_FLAGS, _CLIENT_FLAGS) if listen else (_CLIENT_FLAGS, _SERVER_FLAGS)
    for name in theirs:
        if getattr(args, name):
            side = "connecting" if listen else "listening"
            raise UsageError(
                f"--{name} is for the {side} side", "this side " + ("listens" if listen else "connects")
            )
    given = [name for name in mine if getattr(args, name)]
    if not wanted:
        if given:
            raise UsageError(f"--{given[0]} is for TLS", "add --tls")
        return None
    from wirecat import tls

    if args.handshake_timeout is None:
        from wirecat.limits import DEFAULT_HANDSHAKE_TIMEOUT

        args.handshake_timeout = DEFAULT_HANDSHAKE_TIMEOUT
    if listen:
        if args.key is not None and args.cert is None:
            raise UsageError(
                "--key without --cert", "give the certificate too, or neither (one is made at start)"
            )
        if args.cert is not None:
            context = tls.server_context(cert=args.cert, key=args.key)
            with open(args.cert, "rb") as file:
                fingerprint = tls.fingerprint(file.read())
            return tls.ServerTLS(context, fingerprint)
        host = address.host.strip("[]")
        names = [h for h in (host, "localhost") if h and h not in ("0.0.0.0", "::")]
        certificate = tls.ephemeral_certificate(names)
        return tls.ServerTLS(
            tls.server_context(certificate=certificate), certificate.fingerprint, ephemeral=True
        )
    pin = tls.parse_pin(args.pin) if args.pin is not None else None
    try:
        context = tls.client_context(cafile=args.cafile, pin=pin, insecure=args.insecure)
    except UsageError as exc:
        raise UsageError(
            exc.message.replace("a pin and insecure", "--pin and --insecure"), exc.hint
        ) from None
    if args.insecure:
        from wirecat.report import say

        say(
            "wirecat: warning: --insecure: the certificate is not checked;"
            " anyone on the path can read and change the files"
        )
    return tls.ClientTLS(context, server_hostname=args.servername, pin=pin, insecure=args.insecure)


def say_how_to_trust(settings: ServerTLS, names: list[str], command: str, paths: str = "") -> None:
    """On stderr: the listener's fingerprint and the exact command for the other side.

    ``command`` is the other side's command (``wirecat recv``), ``paths``
    the words before its address (``FILE...``); the address is the one
    listened on, or ``HOST:PORT`` for every address (``0.0.0.0``).
    """
    from wirecat.address import parse_address
    from wirecat.report import say

    where = names[0]
    address = parse_address(where)
    if not address.is_unix and address.host.strip("[]") in ("0.0.0.0", "::"):
        where = f"HOST:{address.port}"
    made = "made for this run" if settings.ephemeral else "of --cert"
    say(f"wirecat: TLS certificate {made}: {settings.fingerprint}")
    words = f"{paths} " if paths else ""
    say(f"wirecat: on the other side run: {command} --tls --pin {settings.fingerprint} {words}{where}")
