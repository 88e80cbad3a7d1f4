"""The TLS flags, the same on every command, and their conversion to ``wirecat.tls`` settings.

A client (``connect``, a relay's target) verifies by default; a server
(``listen``, ``echo``, ``chat``, ``broker``, a relay's listening side) makes
its own certificate when given none, and says how to trust it. ``ssl`` is
imported only when ``--tls`` is given: a plain command never pays for it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from wirecat.errors import UsageError
from wirecat.limits import DEFAULT_HANDSHAKE_TIMEOUT

if TYPE_CHECKING:
    from wirecat.tls import ClientTLS, ServerTLS

__all__ = [
    "add_client_tls_flags",
    "add_server_tls_flags",
    "client_tls_from",
    "say_trust_command",
    "server_tls_from",
]


def _seconds(text: str) -> float:
    from wirecat.cli.common import positive_seconds

    return positive_seconds(text)


def add_client_tls_flags(parser: argparse.ArgumentParser, *, prefix: str = "", title: str = "TLS") -> None:
    """--tls, --servername, --cafile, --capath, --pin, --insecure, --cert, --key, --alpn, --tls-min.

    ``prefix`` (``"target-"``) names them for a command that also has a
    server side (the relay's target); ``--tls`` itself is then left out (a
    ``tls:`` target asks for TLS).
    """
    group = parser.add_argument_group(title)
    dest = prefix.replace("-", "_")
    if not prefix:
        group.add_argument(
            "--tls", action="store_true", help="speak TLS, verifying the server (or write tls:HOST:PORT)"
        )
    group.add_argument(
        f"--{prefix}servername",
        dest=f"{dest}servername",
        metavar="NAME",
        help="the name sent as SNI and checked against the certificate (default: the host)",
    )
    group.add_argument(
        f"--{prefix}cafile",
        dest=f"{dest}cafile",
        metavar="FILE",
        help="trust the CAs in this PEM file instead of the system's",
    )
    group.add_argument(
        f"--{prefix}capath",
        dest=f"{dest}capath",
        metavar="DIR",
        help="trust the CAs in this hashed directory (openssl rehash) instead of the system's",
    )
    group.add_argument(
        f"--{prefix}pin",
        dest=f"{dest}pin",
        metavar="sha256:HEX",
        help="trust exactly the certificate with this SHA-256 fingerprint (self-signed included)",
    )
    group.add_argument(
        f"--{prefix}insecure",
        dest=f"{dest}insecure",
        action="store_true",
        help="do not verify the server's certificate at all (says so on stderr)",
    )
    if not prefix:
        _add_common(group, client=True)


def add_server_tls_flags(parser: argparse.ArgumentParser) -> None:
    """--tls, --cert, --key, --client-ca, --alpn, --tls-min, --handshake-timeout."""
    group = parser.add_argument_group("TLS")
    group.add_argument(
        "--tls",
        action="store_true",
        help="speak TLS; without --cert, with a certificate made at start (its pin is printed)",
    )
    group.add_argument(
        "--client-ca",
        metavar="FILE",
        help="ask every client for a certificate signed by a CA in this PEM file (mutual TLS)",
    )
    _add_common(group, client=False)


def _add_common(group: argparse._ArgumentGroup, *, client: bool) -> None:
    whose = "a client certificate to present" if client else "the server's certificate (PEM)"
    group.add_argument("--cert", metavar="FILE", help=whose)
    group.add_argument("--key", metavar="FILE", help="its private key, unencrypted (default: in --cert)")
    group.add_argument("--alpn", metavar="LIST", help="ALPN protocols, comma-separated: h2,http/1.1")
    group.add_argument(
        "--tls-min",
        choices=("1.2", "1.3"),
        default="1.2",
        help="the oldest TLS version accepted (default 1.2; 1.0 and 1.1 never)",
    )
    group.add_argument(
        "--handshake-timeout",
        type=_seconds,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        metavar="SECS",
        help=f"give up on a TLS handshake after SECS (default {DEFAULT_HANDSHAKE_TIMEOUT:g})",
    )


def _given(args: argparse.Namespace, *names: str) -> list[str]:
    return [name for name in names if getattr(args, name.lstrip("-").replace("-", "_"), None)]


def client_tls_from(
    args: argparse.Namespace, *, tls: bool | None = None, prefix: str = ""
) -> ClientTLS | None:
    """The client's TLS settings the flags ask for, or None for plain TCP.

    ``tls``: whether TLS is asked for another way (a ``tls:`` address);
    None reads ``--tls``. A TLS flag without TLS is a usage error, not
    silently ignored. ``--insecure`` is said on stderr, always.
    """
    dest = prefix.replace("-", "_")
    wanted = bool(getattr(args, "tls", False)) if tls is None else tls
    names = [f"--{prefix}{n}" for n in ("servername", "cafile", "capath", "pin", "insecure")]
    if not prefix:
        names += ["--cert", "--key", "--alpn"]
    given = _given(args, *names)
    if not wanted:
        if given:
            raise UsageError(f"{given[0]} is for TLS", "add --tls, or write the address as tls:HOST:PORT")
        return None
    from wirecat import tls as tls_module
    from wirecat.report import stderr_reporter

    pin = getattr(args, f"{dest}pin")
    insecure = getattr(args, f"{dest}insecure")
    if pin is not None:
        pin = tls_module.parse_pin(pin)
    try:
        context = tls_module.client_context(
            cafile=getattr(args, f"{dest}cafile"),
            capath=getattr(args, f"{dest}capath"),
            pin=pin,
            insecure=insecure,
            cert=getattr(args, "cert", None) if not prefix else None,
            key=getattr(args, "key", None) if not prefix else None,
            alpn=getattr(args, "alpn", None) if not prefix else None,
            min_version=getattr(args, "tls_min", "1.2") if not prefix else "1.2",
        )
    except UsageError as exc:
        raise _flag_words(exc, prefix) from None
    if insecure:
        stderr_reporter(
            f"warning: --{prefix}insecure: the server's certificate is not checked;"
            " anyone on the path can read and change the data"
        )
    return tls_module.ClientTLS(
        context, server_hostname=getattr(args, f"{dest}servername"), pin=pin, insecure=insecure
    )


def say_trust_command(fingerprint: str, connect_words: str) -> None:
    """Say on stderr the exact client command that trusts a made-at-start certificate."""
    from wirecat.report import stderr_reporter

    stderr_reporter(f"trust it with: wirecat connect --tls --pin {fingerprint} {connect_words}")


def _flag_words(exc: UsageError, prefix: str) -> UsageError:
    """The library's contradiction, said with the flags."""
    words = {
        "a pin and insecure cannot go together": f"--{prefix}pin and --{prefix}insecure cannot go together",
        "a CA file means nothing without verification": (
            f"--{prefix}cafile/--{prefix}capath mean nothing with --{prefix}pin or --{prefix}insecure"
        ),
        "a key without a certificate": "--key without --cert",
    }
    return UsageError(words.get(exc.message, exc.message), exc.hint)


def server_tls_from(
    args: argparse.Namespace, *, hosts: list[str], connect_words: str | None
) -> ServerTLS | None:
    """The server's TLS settings the flags ask for, or None for plain TCP.

    Without ``--cert`` a certificate is made now for ``hosts`` (and
    ``localhost``), and its fingerprint is said on stderr with the exact
    command that trusts it (``connect_words``: the address to connect to,
    ``127.0.0.1 9000``; None when the port is not known yet: the caller
    says :func:`say_trust_command` once it is).
    """
    given = _given(args, "--cert", "--key", "--client-ca", "--alpn")
    if not args.tls:
        if given:
            raise UsageError(f"{given[0]} is for TLS", "add --tls")
        return None
    from wirecat import tls as tls_module
    from wirecat.report import stderr_reporter

    if args.key is not None and args.cert is None:
        raise UsageError(
            "--key without --cert", "give the certificate too, or neither (one is made at start)"
        )
    if args.cert is not None:
        context = tls_module.server_context(
            cert=args.cert, key=args.key, client_ca=args.client_ca, alpn=args.alpn, min_version=args.tls_min
        )
        with open(args.cert, "rb") as file:
            fingerprint = tls_module.fingerprint(file.read())
        return tls_module.ServerTLS(context, fingerprint, ephemeral=False, mutual=args.client_ca is not None)
    names = [h.strip("[]") for h in hosts if h and h not in ("0.0.0.0", "::")]
    certificate = tls_module.ephemeral_certificate([*names, "localhost"])
    context = tls_module.server_context(
        certificate=certificate, client_ca=args.client_ca, alpn=args.alpn, min_version=args.tls_min
    )
    stderr_reporter(f"TLS certificate made for this run: {certificate.fingerprint}")
    if connect_words is not None:
        say_trust_command(certificate.fingerprint, connect_words)
    return tls_module.ServerTLS(
        context, certificate.fingerprint, ephemeral=True, mutual=args.client_ca is not None
    )
