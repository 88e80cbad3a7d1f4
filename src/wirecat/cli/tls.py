"""``wirecat tls probe HOST:PORT`` and ``wirecat tls cert [HOST...]``.

``tls probe`` prints, on stdout, a few aligned lines (the connection, the
protocol and cipher, the chain the server sent, one block per certificate)
and last a verdict line: ``verdict   trusted: ...`` or ``verdict   NOT
trusted: <why>: <what to do>``, in the words ``connect --tls`` would use.
Exit 0 only when trusted; otherwise the error table's code: 13 not trusted,
12 another TLS failure, 3 unknown host, 4 refused, 6 a timeout.

``--json`` prints one JSON object on stdout instead (even on failure):

========================  ===================================================
``v``                     1; changes only when a field changes meaning
``target``, ``peer``      ``host:port`` asked for; the address connected to
``sni``                   the name sent as SNI, or null (an IP address is
                          never sent as SNI)
``checked_name``          the name the certificate was checked against
``protocol``, ``cipher``, ``TLSv1.3``, the cipher suite and its secret bits;
``cipher_bits``           null when no handshake was made
``alpn``                  the protocol the server chose, or null
``trust``                 what the chain was checked against
``verified``              true only when the server is trusted
``error``                 null, or the one line a failure prints
``exit_code``             what ``tls probe`` exits with
``whole_chain``           false when only the leaf could be read
``chain``                 the certificates sent, leaf first: ``subject``,
                          ``issuer``, ``names``, ``not_before``,
                          ``not_after`` (ISO 8601, UTC), ``days_left``,
                          ``key``, ``fingerprint``, ``self_signed``
========================  ===================================================

``tls cert`` writes a self-signed certificate and its key (0600), or with
``--ca DIR`` a leaf signed by the small CA kept in DIR (made on first use),
and prints the fingerprint and the commands that use the files.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
from typing import TYPE_CHECKING

from wirecat.cli.common import family_from, reporter, seconds, service_port
from wirecat.errors import UsageError, WirecatError
from wirecat.limits import DEFAULT_HANDSHAKE_TIMEOUT
from wirecat.stdio import print_out

if TYPE_CHECKING:
    from wirecat.apps.tls_tools import ProbeResult, WrittenFiles
    from wirecat.tls import CertificateInfo

__all__ = ["register_cert", "register_probe"]

#: The hosts a certificate is made for when none is given: what a local server is reached by.
DEFAULT_CERT_HOSTS = ("localhost", "127.0.0.1", "::1")
#: A certificate's validity when --days is not given: a year, well under
#: the 398 days browsers accept for a leaf (CA/Browser Forum, 2020).
DEFAULT_CERT_DAYS = 365


def register_probe(parser: argparse.ArgumentParser) -> None:
    """Add ``tls probe``'s arguments to its subparser."""
    parser.add_argument(
        "target",
        nargs="+",
        metavar="HOST:PORT",
        help="the server: HOST:PORT, [V6]:PORT or HOST PORT; a port may be a service name (https)",
    )
    group = parser.add_argument_group("TLS")
    group.add_argument(
        "--servername",
        metavar="NAME",
        help="the name sent as SNI and checked against the certificate (default: the host)",
    )
    group.add_argument(
        "--cafile", metavar="FILE", help="trust the CAs in this PEM file instead of the system's"
    )
    group.add_argument(
        "--capath", metavar="DIR", help="trust the CAs in this hashed directory instead of the system's"
    )
    group.add_argument(
        "--pin", metavar="sha256:HEX", help="trust exactly the certificate with this SHA-256 fingerprint"
    )
    group.add_argument(
        "--alpn", metavar="LIST", help="offer these ALPN protocols, comma-separated: h2,http/1.1"
    )
    parser.add_argument(
        "-w",
        dest="timeout",
        type=seconds,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        metavar="SECS",
        help="give up connecting, and on the handshake, after SECS each"
        f" (default {DEFAULT_HANDSHAKE_TIMEOUT:g})",
    )
    parser.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only")
    parser.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 only")
    parser.add_argument(
        "-n", dest="numeric", action="store_true", help="no DNS: the host must be an IP address"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="say what happens, on stderr")
    parser.set_defaults(handler=handle_probe)


def register_cert(parser: argparse.ArgumentParser) -> None:
    """Add ``tls cert``'s arguments to its subparser."""
    parser.add_argument(
        "hosts",
        nargs="*",
        metavar="HOST",
        help=f"names and addresses the certificate is for (default: {' '.join(DEFAULT_CERT_HOSTS)})",
    )
    parser.add_argument(
        "--out-cert", metavar="FILE", default="cert.pem", help="write the certificate here (default cert.pem)"
    )
    parser.add_argument(
        "--out-key", metavar="FILE", default="key.pem", help="write its key here, mode 0600 (default key.pem)"
    )
    parser.add_argument(
        "--ca",
        metavar="DIR",
        help="sign with the local CA in DIR (ca.pem, ca-key.pem), made there if absent, as mkcert does",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=DEFAULT_CERT_DAYS,
        metavar="N",
        help=f"valid for N days from now (default {DEFAULT_CERT_DAYS})",
    )
    parser.add_argument("--force", action="store_true", help="overwrite the certificate and key files")
    parser.set_defaults(handler=handle_cert)


# --- probe ------------------------------------------------------------------------------


def handle_probe(args: argparse.Namespace) -> int:
    """Probe the server; print the result; return 0 only when it is trusted."""
    from wirecat.address import parse_address

    words = list(args.target)
    if words and words[0].startswith("tls:"):
        words[0] = words[0][len("tls:") :]  # the address form connect takes; TLS is implied here
    if len(words) > 2:
        raise UsageError(f"expected HOST:PORT or HOST PORT, got {len(words)} words", "e.g. example.com:443")
    address = parse_address(*words, service=service_port)
    if address.is_unix or address.datagram:
        raise UsageError("tls probe takes a TCP host and port", "e.g. wirecat tls probe example.com:443")
    if args.pin is not None and (args.cafile or args.capath):
        raise UsageError("--cafile/--capath mean nothing with --pin", "a pin already trusts one certificate")
    family = family_from(args, address.host)
    as_json = getattr(args, "json", False)
    from wirecat.apps.tls_tools import probe

    try:
        result = probe(
            address,
            server_name=args.servername,
            cafile=args.cafile,
            capath=args.capath,
            pin=args.pin,
            alpn=args.alpn,
            timeout=args.timeout,
            family=family,
            numeric=args.numeric,
            report=reporter(args),
        )
    except WirecatError as exc:
        if as_json:  # one object on stdout whatever happens; the error event goes to stderr too
            from wirecat.address import format_hostport

            print_out(_json_failure(format_hostport(address.host, address.port), exc) + "\n")
        raise
    now = datetime.datetime.now(datetime.UTC)
    code = result.error.exit_code if result.error is not None else 0
    print_out(_json(result, now, code) if as_json else _text(result, now))
    return code


def _verdict(result: ProbeResult) -> str:
    from wirecat.cli.run import describe

    if result.error is not None:
        return f"NOT trusted: {describe(result.error)}"
    if result.trust.startswith("pin "):
        return "trusted: it is the pinned certificate"
    return f"trusted: the chain verifies against {result.trust} and holds the name {result.checked_name!r}"


def _days(info: CertificateInfo, now: datetime.datetime) -> str:
    from wirecat.apps.tls_tools import days_left

    if now < info.not_before:
        return f"not valid for {days_left(info.not_before, now) + 1} more days"
    left = days_left(info.not_after, now)
    if left < 0:
        return f"expired {-left} days ago"
    return f"{left} days left"


def _text(result: ProbeResult, now: datetime.datetime) -> str:
    """The probe as aligned lines, the verdict last."""
    lines = []
    peer = "" if result.peer == result.target else f" ({result.peer})"
    sni = f"SNI {result.sni}" if result.sni else "no SNI (an IP address is never sent as SNI)"
    lines.append(f"{'server':<10}{result.target}{peer}, {sni}")
    if result.protocol is not None:
        bits = f" ({result.cipher_bits} bits)" if result.cipher_bits else ""
        alpn = f", ALPN {result.alpn}" if result.alpn else ""
        lines.append(f"{'tls':<10}{result.protocol}, {result.cipher}{bits}{alpn}")
    if result.chain:
        count = len(result.chain)
        sent = (
            "as sent, the leaf first"
            if result.whole_chain
            else "the leaf only: this Python cannot read the rest"
        )
        lines.append(f"{'chain':<10}{count} certificate{'s' if count != 1 else ''}, {sent}")
        for index, info in enumerate(result.chain):
            lines.append(f"{'':<2}{index:<8}{info.subject}")
            rows = [
                ("issuer", info.issuer + (" (self-signed)" if info.self_signed else "")),
                ("names", ", ".join(info.names) or "(none)"),
                (
                    "valid",
                    f"{info.not_before:%Y-%m-%d %H:%M} to {info.not_after:%Y-%m-%d %H:%M} UTC"
                    f" ({_days(info, now)})",
                ),
                ("key", info.key),
                ("sha256", info.fingerprint),
            ]
            lines += [f"{'':<10}{label:<8}{value}" for label, value in rows]
    lines.append(f"{'verdict':<10}{_verdict(result)}")
    return "\n".join(lines) + "\n"


def _json(result: ProbeResult, now: datetime.datetime, code: int) -> str:
    import json

    from wirecat.apps.tls_tools import days_left
    from wirecat.cli.run import describe

    chain = [
        {
            "subject": info.subject,
            "issuer": info.issuer,
            "names": list(info.names),
            "not_before": info.not_before.isoformat().replace("+00:00", "Z"),
            "not_after": info.not_after.isoformat().replace("+00:00", "Z"),
            "days_left": days_left(info.not_after, now),
            "key": info.key,
            "fingerprint": info.fingerprint,
            "self_signed": info.self_signed,
        }
        for info in result.chain
    ]
    document = {
        "v": 1,
        "target": result.target,
        "peer": result.peer,
        "sni": result.sni,
        "checked_name": result.checked_name,
        "protocol": result.protocol,
        "cipher": result.cipher,
        "cipher_bits": result.cipher_bits,
        "alpn": result.alpn,
        "trust": result.trust,
        "verified": result.verified,
        "error": describe(result.error) if result.error is not None else None,
        "exit_code": code,
        "whole_chain": result.whole_chain,
        "chain": chain,
    }
    return json.dumps(document, ensure_ascii=False) + "\n"


def _json_failure(target: str, exc: WirecatError) -> str:
    import json

    from wirecat.cli.run import describe

    document = {
        "v": 1,
        "target": target,
        "peer": None,
        "sni": None,
        "checked_name": None,
        "protocol": None,
        "cipher": None,
        "cipher_bits": None,
        "alpn": None,
        "trust": None,
        "verified": False,
        "error": describe(exc),
        "exit_code": exc.exit_code,
        "whole_chain": False,
        "chain": [],
    }
    return json.dumps(document, ensure_ascii=False)


# --- cert -------------------------------------------------------------------------------


def handle_cert(args: argparse.Namespace) -> int:
    """Write the certificate (and the CA); print the fingerprint and how to use them."""
    from wirecat.apps.tls_tools import write_ca_and_certificate, write_certificate

    if args.days < 1:
        raise UsageError(f"bad --days {args.days}", "give a number of days ≥ 1")
    hosts = [h.strip("[]") for h in args.hosts] or list(DEFAULT_CERT_HOSTS)
    if args.ca is not None:
        written = write_ca_and_certificate(
            hosts, args.ca, args.out_cert, args.out_key, days=args.days, force=args.force
        )
    else:
        written = write_certificate(hosts, args.out_cert, args.out_key, days=args.days, force=args.force)
    print_out(_cert_words(written, hosts))
    return 0


def _cert_words(written: WrittenFiles, hosts: list[str]) -> str:
    import ssl

    from wirecat.tls import describe_certificate

    info = describe_certificate(ssl.PEM_cert_to_DER_cert(written.certificate.cert_pem.decode("ascii")))
    q = shlex.quote
    lines = []
    if written.ca_file is not None:
        ca_dir = written.ca_file.rpartition("/")[0] or "."
        if written.ca_made:
            lines.append(f"made a CA in {ca_dir}: {written.ca_file} (give it to clients) and its key (0600)")
        else:
            lines.append(f"signed by the CA in {ca_dir} ({written.ca_file})")
    signer = "self-signed" if written.ca_file is None else f"issuer {info.issuer}"
    lines += [
        f"wrote {written.cert_file}: for {', '.join(hosts)}; {signer}; {info.key};"
        f" valid until {info.not_after:%Y-%m-%d}",
        f"wrote {written.key_file}: its private key (mode 0600: keep it private)",
        f"fingerprint {written.certificate.fingerprint}",
        "use them:",
        f"  wirecat listen --tls --cert {q(written.cert_file)} --key {q(written.key_file)} 9000",
    ]
    host = hosts[0]
    if written.ca_file is not None:
        lines.append(f"  wirecat connect --tls --cafile {q(written.ca_file)} {q(host)} 9000")
    else:
        lines.append(f"  wirecat connect --tls --pin {written.certificate.fingerprint} {q(host)} 9000")
        lines.append(f"  (or --cafile {q(written.cert_file)}: a self-signed certificate is its own CA)")
    return "\n".join(lines) + "\n"
