"""TLS: contexts that verify by default, ephemeral certificates, pins, and errors a person can read.

Everything here is built once and shared by every command and the library:

* :func:`client_context`: verification ON unless ``insecure=True`` (the system
  trust store, or ``cafile``/``capath``; the host name; the dates), TLS 1.2 at
  the least (1.0 and 1.1 are never offered), ALPN, a client certificate.
  With a ``pin`` the context does not verify the chain: the caller checks
  the one certificate it trusts with :func:`check_pin` after the handshake,
  as ssh trusts a known host.
* :func:`server_context`: a certificate and key from files, or an
  :func:`ephemeral_certificate` made at start; ``client_ca`` asks for and
  verifies client certificates (mutual TLS); without it the server never asks.
* :func:`fingerprint`, :func:`parse_pin`, :func:`check_pin`: SHA-256 of a
  certificate's DER bytes, written ``sha256:<64 hex digits>``.
* :func:`translate_ssl_error`: an ``ssl.SSLError`` as one wirecat error that
  names the cause and the fix (:class:`~wirecat.errors.CertificateError`,
  exit 13; :class:`~wirecat.errors.TLSError`, exit 12;
  :class:`~wirecat.errors.TLSTruncated`, exit 8).
* :func:`describe_certificate`: what a certificate holds (subject, issuer,
  names, dates, key, fingerprint), for messages, ``-v`` and ``tls probe``.

``ssl`` is imported by this module, and this module only by code that speaks
TLS: a plain connection never pays for it. ``cryptography`` is imported only
to make an ephemeral certificate or to read one for a message.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import ssl
import tempfile
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from wirecat.errors import (
    CertificateError,
    ProgramError,
    TLSError,
    TLSTruncated,
    UsageError,
    WirecatError,
)

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "TLS_VERSIONS",
    "Certificate",
    "CertificateInfo",
    "ClientTLS",
    "ServerTLS",
    "check_pin",
    "client_context",
    "describe_certificate",
    "ephemeral_certificate",
    "fingerprint",
    "issue_certificate",
    "make_ca",
    "parse_pin",
    "peer_certificate",
    "server_context",
    "translate_ssl_error",
    "unverified_leaf",
]

#: The versions ``min_version`` may name. 1.0 and 1.1 are deprecated (RFC 8996) and never offered.
TLS_VERSIONS: dict[str, ssl.TLSVersion] = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

#: How long an ephemeral certificate is valid: longer than any server run
#: we expect, short enough that a leaked one soon means nothing.
EPHEMERAL_DAYS = 30
#: How long a CA made by :func:`make_ca` is valid: ten years, as mkcert's.
CA_DAYS = 3650
#: The common name of a CA made by :func:`make_ca`.
DEFAULT_CA_NAME = "wirecat local CA"
#: Certificates start this long before "now": a client's clock a little behind still accepts them.
_CLOCK_SKEW = datetime.timedelta(minutes=5)

# OpenSSL's X509_V_ERR_* codes we word ourselves (x509_vfy.h).
_X509_NOT_YET_VALID = 9
_X509_EXPIRED = 10
_X509_SELF_SIGNED = 18
_X509_SELF_SIGNED_IN_CHAIN = 19
_X509_UNKNOWN_ISSUER = (2, 20, 21)
_X509_NAME_MISMATCH = (62, 64)  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH

_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_PIN = re.compile(r"(?:sha256:)?((?:[0-9a-f]{2}:?){31}[0-9a-f]{2})", re.IGNORECASE)


class Certificate(NamedTuple):
    """A certificate and its key, in PEM, with the certificate's fingerprint."""

    cert_pem: bytes
    key_pem: bytes
    #: ``sha256:<hex>`` of the certificate's DER bytes: what ``--pin`` takes.
    fingerprint: str


class ClientTLS(NamedTuple):
    """What a client needs to speak TLS to one server: the context and how to check the peer."""

    context: ssl.SSLContext
    #: The name sent as SNI and checked against the certificate; None: the host dialed.
    server_hostname: str | None = None
    #: ``sha256:<hex>``: trust exactly this certificate (the context does not verify).
    pin: str | None = None
    #: Verification is off (the CLI has said so on stderr).
    insecure: bool = False


class ServerTLS(NamedTuple):
    """What a server needs to speak TLS: the context, and what to tell its users."""

    context: ssl.SSLContext
    #: ``sha256:<hex>`` of the server's certificate.
    fingerprint: str
    #: The certificate was made at start (:func:`ephemeral_certificate`).
    ephemeral: bool = False
    #: Client certificates are asked for and verified (mutual TLS).
    mutual: bool = False


class CertificateInfo(NamedTuple):
    """What a certificate holds, in words (see :func:`describe_certificate`)."""

    subject: str
    issuer: str
    #: Subject alternative names: DNS names and IP addresses, as written.
    names: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    #: ``EC P-256``, ``RSA 2048``, ``Ed25519``...
    key: str
    fingerprint: str
    self_signed: bool


def fingerprint(cert: bytes | str) -> str:
    """``sha256:<hex>`` of a certificate, given as DER bytes or PEM (text or bytes).

    Of PEM, the first certificate counts (a file may hold its key and chain too).

    Raises:
        ValueError: PEM text with no certificate in it.
    """
    if isinstance(cert, str) or b"-----BEGIN" in cert:
        text = cert if isinstance(cert, str) else cert.decode("ascii", "replace")
        # The first certificate of a PEM file (it may hold a key and a chain too).
        match = _PEM_CERTIFICATE.search(text)
        if match is None:
            raise ValueError("no PEM certificate in the text given")
        cert = ssl.PEM_cert_to_DER_cert(match.group(0))
    return "sha256:" + hashlib.sha256(cert).hexdigest()


def parse_pin(text: str) -> str:
    """A ``--pin`` value in the one form :func:`fingerprint` gives.

    Takes ``sha256:`` with 64 hex digits, in any case, with or without the
    colons ``openssl x509 -fingerprint`` prints.

    Raises:
        UsageError: anything else.
    """
    match = _PIN.fullmatch(text.strip())
    if match is None:
        raise UsageError(
            f"bad pin {text!r}",
            "give sha256: and the certificate's 64 hex digits, as the server printed it",
        )
    return "sha256:" + match.group(1).replace(":", "").lower()


def check_pin(der: bytes | None, pin: str, where: str) -> None:
    """Check that the peer's certificate (DER) is the pinned one.

    Raises:
        CertificateError: it is not, or the peer sent none.
    """
    if der is None:
        raise CertificateError(f"{where} sent no certificate to check the pin against")
    got = fingerprint(der)
    if got != parse_pin(pin):
        raise CertificateError(
            f"the certificate of {where} is not the pinned one: it is {got}",
            "if the server's certificate changed on purpose, pin the new one",
            setting="pin",
        )


def _version(name: str) -> ssl.TLSVersion:
    try:
        return TLS_VERSIONS[name]
    except KeyError:
        raise UsageError(
            f"bad TLS version {name!r}", "give 1.2 or 1.3 (1.0 and 1.1 are never offered)"
        ) from None


def _set_alpn(context: ssl.SSLContext, alpn: Sequence[str] | str | None) -> None:
    if not alpn:
        return
    protocols = [p.strip() for p in alpn.split(",")] if isinstance(alpn, str) else list(alpn)
    if not all(protocols) or any(len(p.encode()) > 255 for p in protocols):
        raise UsageError(f"bad ALPN list {alpn!r}", "give protocol names separated by commas: h2,http/1.1")
    context.set_alpn_protocols(protocols)


def _no_passphrase() -> bytes:
    # load_cert_chain would ask on the terminal for an encrypted key; we refuse instead.
    raise _EncryptedKey


class _EncryptedKey(Exception):
    pass


def _load_chain(context: ssl.SSLContext, cert: str, key: str | None) -> None:
    """Load a certificate (and key) into ``context``, with errors that name the file."""
    for path in (cert, key):
        if path is not None and not os.path.isfile(path):
            raise ProgramError(f"cannot read {path}: no such file", "check the path")
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _EncryptedKey:
        raise ProgramError(
            f"the key in {key or cert} is encrypted",
            "wirecat asks for no passphrase: decrypt it (openssl pkey -in KEY -out PLAIN.key)",
        ) from None
    except ssl.SSLError as exc:
        reason = (exc.reason or "").upper()
        if "KEY_VALUES_MISMATCH" in reason:
            raise ProgramError(
                f"the key in {key} does not match the certificate in {cert}",
                "give the key the certificate was made for",
            ).caused_by(exc) from exc
        raise ProgramError(
            f"cannot load the certificate {cert}" + (f" and key {key}" if key else "") + f": {_words(exc)}",
            "give PEM files (a certificate, and its unencrypted key)",
        ).caused_by(exc) from exc
    except OSError as exc:
        raise ProgramError(f"cannot read {exc.filename or cert}: {exc.strerror}").caused_by(exc) from exc


def _load_verify(context: ssl.SSLContext, cafile: str | None, capath: str | None, what: str) -> None:
    if cafile is not None and not os.path.isfile(cafile):
        raise ProgramError(f"cannot read {what} {cafile}: no such file", "check the path")
    if capath is not None and not os.path.isdir(capath):
        raise ProgramError(f"cannot read {what} directory {capath}: not a directory", "check the path")
    try:
        context.load_verify_locations(cafile=cafile, capath=capath)
    except (ssl.SSLError, OSError) as exc:
        raise ProgramError(f"cannot load {what} {cafile or capath}: {_words(exc)}").caused_by(exc) from exc


def client_context(
    *,
    cafile: str | None = None,
    capath: str | None = None,
    pin: str | None = None,
    insecure: bool = False,
    cert: str | None = None,
    key: str | None = None,
    alpn: Sequence[str] | str | None = None,
    min_version: str = "1.2",
) -> ssl.SSLContext:
    """A client's context: verifies the server unless told otherwise.

    Args:
        cafile: PEM file of the CAs to trust, instead of the system's store.
        capath: directory of hashed CA files (``openssl rehash``), likewise.
        pin: ``sha256:<hex>`` of the one certificate to trust. The context
            then does not verify the chain or the name; check the pin with
            :func:`check_pin` after the handshake (the dialers do).
        insecure: verify nothing. Explicit, and the CLI says so on stderr.
        cert, key: a client certificate to present (key may be in ``cert``).
        alpn: protocols to offer, ``"h2,http/1.1"`` or a list.
        min_version: ``"1.2"`` (the default and the floor) or ``"1.3"``.

    Raises:
        UsageError: contradictory or malformed arguments.
        ProgramError: a file that cannot be read or used.
    """
    if insecure and pin is not None:
        raise UsageError(
            "a pin and insecure cannot go together", "a pin already trusts exactly one certificate"
        )
    if (insecure or pin is not None) and (cafile or capath):
        raise UsageError(
            "a CA file means nothing without verification", "drop the pin or insecure, or the CA file"
        )
    if key is not None and cert is None:
        raise UsageError("a key without a certificate", "give the client certificate too")
    if pin is not None:
        parse_pin(pin)
    floor = _version(min_version)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = floor
    if insecure or pin is not None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cafile is not None or capath is not None:
        _load_verify(context, cafile, capath, "CA file")
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert is not None:
        _load_chain(context, cert, key)
    _set_alpn(context, alpn)
    return context


def server_context(
    *,
    cert: str | None = None,
    key: str | None = None,
    certificate: Certificate | None = None,
    client_ca: str | None = None,
    alpn: Sequence[str] | str | None = None,
    min_version: str = "1.2",
) -> ssl.SSLContext:
    """A server's context, from files or from a :class:`Certificate` in memory.

    Args:
        cert, key: PEM files (the key may be in ``cert``).
        certificate: an in-memory certificate (:func:`ephemeral_certificate`).
        client_ca: PEM file of the CAs whose client certificates to accept;
            given, a client must present one (mutual TLS). Not given, the
            server never asks for one.
        alpn: protocols the server accepts, in its order of preference.
        min_version: ``"1.2"`` or ``"1.3"``.

    Raises:
        UsageError: neither or both of the certificate sources.
        ProgramError: a file that cannot be read, a key that does not match.
    """
    if (cert is None) == (certificate is None):
        raise UsageError("a TLS server needs one certificate", "give cert (and key) files, or a Certificate")
    if key is not None and cert is None:
        raise UsageError("a key without a certificate", "give the certificate too")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _version(min_version)
    # No TLS 1.3 session tickets: they come after the handshake, and a client
    # that only sends (ncat --send-only, socat -u) never reads them; closing
    # with them unread, its kernel sends a reset, which can destroy the end of
    # its upload still unread in our receive queue. wirecat does not resume.
    context.num_tickets = 0
    if cert is not None:
        _load_chain(context, cert, key)
    else:
        assert certificate is not None
        _load_from_memory(context, certificate)
    if client_ca is not None:
        _load_verify(context, client_ca, None, "client CA file")
        context.verify_mode = ssl.CERT_REQUIRED
    _set_alpn(context, alpn)
    return context


def _load_from_memory(context: ssl.SSLContext, certificate: Certificate) -> None:
    # ssl loads only from files: a private directory (0700), gone once loaded.
    with tempfile.TemporaryDirectory(prefix="wirecat-tls-") as directory:
        path = os.path.join(directory, "cert.pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(certificate.cert_pem + certificate.key_pem)
        context.load_cert_chain(path)


def ephemeral_certificate(hosts: Iterable[str], *, days: int = EPHEMERAL_DAYS) -> Certificate:
    """A self-signed certificate made now: ECDSA P-256, for ``hosts``.

    Each host becomes a subject alternative name (an IP address SAN for an
    address, a DNS SAN for a name); the first is the common name. The key
    never touches the disk.

    Imports ``cryptography`` (~30 ms): only servers started without a
    certificate pay for it.

    Raises:
        UsageError: no host given, or ``days`` < 1.
    """
    return issue_certificate(hosts, days=days)


def make_ca(name: str = DEFAULT_CA_NAME, *, days: int = CA_DAYS) -> Certificate:
    """A small certificate authority made now: ECDSA P-256, self-signed, for signing leaves.

    It may sign end certificates only (``pathLenConstraint`` 0), as mkcert's
    does: a leaked CA key can then not make intermediate CAs. Give its
    certificate to clients (``cafile``) and keep its key; sign leaves with
    :func:`issue_certificate`.

    Raises:
        UsageError: an empty name, or ``days`` < 1.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if not name.strip():
        raise UsageError("a CA needs a name")
    _check_days(days)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wirecat"),
            x509.NameAttribute(NameOID.COMMON_NAME, name[:64]),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem_pair(cert, key)


def issue_certificate(
    hosts: Iterable[str], *, ca: Certificate | None = None, days: int = EPHEMERAL_DAYS
) -> Certificate:
    """A server certificate for ``hosts``: ECDSA P-256, signed by ``ca`` or by itself.

    Each host becomes a subject alternative name (an IP address SAN for an
    address, ``[::1]`` or ``::1``; a DNS SAN for a name, ``*.example.test``
    included); the first is the common name. The result is in memory: write
    it where you want it (``wirecat tls cert`` writes files 0600).

    Args:
        hosts: the names and addresses clients will connect by.
        ca: a CA from :func:`make_ca` (its ``key_pem`` is needed); None
            makes a self-signed certificate.
        days: how long it is valid from now (a few minutes before now too,
            for a client whose clock is a little behind).

    Raises:
        UsageError: no host given, or ``days`` < 1.
        ValueError: ``ca`` holds no usable certificate and key.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    names = list(dict.fromkeys(h.strip() for h in hosts if h and h.strip()))
    if not names:
        raise UsageError("a certificate needs a host name or address")
    _check_days(days)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0].strip("[]")[:64])])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
    )
    if ca is None:
        cert = builder.issuer_name(subject).sign(key, hashes.SHA256())
    else:
        ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
        ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the CA key must be an EC or RSA key")
        cert = (
            builder.issuer_name(ca_cert.subject)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
    return _pem_pair(cert, key)


#: The longest validity we write: a hundred years (X.509 dates end in 9999, datetime's too).
MAX_DAYS = 36500


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(f"bad validity {days} days", f"give a number of days from 1 to {MAX_DAYS}")


def _pem_pair(cert: x509.Certificate, key: object) -> Certificate:
    from cryptography.hazmat.primitives import serialization

    der = cert.public_bytes(serialization.Encoding.DER)
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        fingerprint=fingerprint(der),
    )


def _general_name(name: str) -> x509.GeneralName:
    import ipaddress

    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return x509.DNSName(name)


def describe_certificate(der: bytes) -> CertificateInfo:
    """What a certificate (DER) holds, in words. Imports ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(
            [*san.get_values_for_type(x509.DNSName), *map(str, san.get_values_for_type(x509.IPAddress))]
        )
    except x509.ExtensionNotFound:
        names = ()
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        key = f"RSA {public.key_size}"
    elif isinstance(public, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        key = f"EC {curve.get(public.curve.name, public.curve.name)}"
    elif isinstance(public, ed25519.Ed25519PublicKey):
        key = "Ed25519"
    elif isinstance(public, ed448.Ed448PublicKey):
        key = "Ed448"
    elif isinstance(public, dsa.DSAPublicKey):
        key = f"DSA {public.key_size}"
    else:
        key = type(public).__name__
    return CertificateInfo(
        subject=cert.subject.rfc4514_string() or "(empty)",
        issuer=cert.issuer.rfc4514_string() or "(empty)",
        names=names,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key=key,
        fingerprint=fingerprint(der),
        self_signed=cert.subject == cert.issuer,
    )


def _words(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return str(reason).lower().replace("_", " ")


def _date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def translate_ssl_error(
    exc: ssl.SSLError,
    where: str,
    *,
    server_hostname: str | None = None,
    certificate: bytes | None = None,
    server_side: bool = False,
) -> WirecatError:
    """An ``ssl.SSLError`` as one wirecat error naming the cause and the fix.

    Args:
        exc: what the ``ssl`` module raised.
        where: the peer, formatted for a person.
        server_hostname: the name we checked the certificate against.
        certificate: the peer's certificate (DER) if known: a failed
            verification leaves none, so a caller that wants the details
            (names, dates, the pin that would trust it) fetches it without
            verification and passes it here.
        server_side: we are the server (the peer is a client).

    The hints name library settings (``pin``, ``cafile``); the CLI adds the flags.
    """
    info = _safe_describe(certificate)
    if isinstance(exc, ssl.SSLCertVerificationError) and server_side:
        # Mutual TLS: the client's certificate; its fix is on the client's side.
        return CertificateError(
            f"the client certificate of {where} is not trusted: {exc.verify_message}",
            "the client needs a certificate signed by a CA in the server's client CA file",
        ).caused_by(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _verification(exc, where, server_hostname, info).caused_by(exc)
    reason = (exc.reason or "").upper()
    error: WirecatError
    if isinstance(exc, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
        error = TLSTruncated(f"{where} ended the stream without TLS close_notify")
    elif reason == "HTTP_REQUEST":
        error = TLSError(
            f"plain HTTP request on a TLS port from {where}", "the client must speak TLS (https://)"
        )
    elif reason in (
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "HTTPS_PROXY_REQUEST",
    ):
        if server_side:
            error = TLSError(f"{where} did not speak TLS: is it a plain TCP client?")
        else:
            error = TLSError(
                f"the server {where} did not answer TLS: is it plain TCP?", "connect without TLS"
            ).with_cli_hint("drop --tls")
    elif reason in (
        "UNSUPPORTED_PROTOCOL",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "NO_PROTOCOLS_AVAILABLE",
        "TLSV1_ALERT_INSUFFICIENT_SECURITY",
    ):
        error = TLSError(
            f"{where} offers no TLS version in common with us (we speak 1.2 and 1.3)",
            "TLS 1.0 and 1.1 are deprecated (RFC 8996); upgrade the peer",
        )
    elif reason in ("NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "SSLV3_ALERT_HANDSHAKE_FAILURE"):
        error = TLSError(f"no TLS cipher in common with {where}")
    elif reason in ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE"):
        if server_side:
            error = CertificateError(f"{where} presented no client certificate, and one is required")
        else:
            error = TLSError(
                f"{where} requires a client certificate", "give a client certificate and key"
            ).with_cli_hint("give one with --cert FILE --key FILE")
    elif reason in (
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    ):
        if server_side:
            error = CertificateError(
                f"{where} does not trust our certificate",
                "the client must trust it: give it our certificate's pin, or the CA that signed it",
            )
        else:
            error = TLSError(
                f"{where} refused our client certificate", "give one signed by a CA the server trusts"
            )
    elif reason in ("TLSV1_ALERT_NO_APPLICATION_PROTOCOL", "NO_APPLICATION_PROTOCOL"):
        error = TLSError(f"no ALPN protocol in common with {where}")
    else:
        error = TLSError(f"TLS with {where} failed: {_words(exc)}")
    return error.caused_by(exc)


def _safe_describe(der: bytes | None) -> CertificateInfo | None:
    if der is None:
        return None
    try:
        return describe_certificate(der)
    except Exception:  # a certificate we cannot read is no reason to hide the real error
        return None


def _verification(
    exc: ssl.SSLCertVerificationError, where: str, host: str | None, info: CertificateInfo | None
) -> CertificateError:
    code = exc.verify_code
    pin_hint = f"to trust this one: pin {info.fingerprint}" if info else "to trust one certificate: pin it"
    cli_pin = f"to trust this one: --pin {info.fingerprint}" if info else "to trust one: --pin sha256:…"
    if code == _X509_SELF_SIGNED:
        return CertificateError(
            f"self-signed certificate for {where}", f"{pin_hint}, or give it as cafile"
        ).with_cli_hint(f"{cli_pin}, or --cafile FILE")
    if code == _X509_SELF_SIGNED_IN_CHAIN or code in _X509_UNKNOWN_ISSUER:
        issuer = f" ({info.issuer})" if info else ""
        return CertificateError(
            f"the certificate of {where} is signed by an unknown issuer{issuer}",
            f"give its CA as cafile, or {pin_hint}",
        ).with_cli_hint(f"give its CA with --cafile FILE, or {cli_pin}")
    if code == _X509_EXPIRED:
        when = f" on {_date(info.not_after)}" if info else ""
        return CertificateError(f"the certificate of {where} expired{when}", "the server must renew it")
    if code == _X509_NOT_YET_VALID:
        when = f" until {_date(info.not_before)}" if info else " yet"
        return CertificateError(
            f"the certificate of {where} is not valid{when}",
            "check this machine's clock, or the server's certificate",
        )
    if code in _X509_NAME_MISMATCH:
        held = f": it is for {', '.join(info.names) or info.subject}" if info else ""
        return CertificateError(
            f"the certificate of {where} does not hold the name {host!r}{held}",
            "connect by a name it holds, or set the server name (SNI) to one",
        ).with_cli_hint("connect by a name it holds, or --servername NAME")
    return CertificateError(f"the certificate of {where} is not trusted: {exc.verify_message}")


def unverified_leaf(sslobj: ssl.SSLObject | ssl.SSLSocket) -> bytes | None:
    """The certificate (DER) a peer presented, even when it failed verification; None if unknown.

    ``getpeercert()`` refuses until a handshake succeeds, but OpenSSL keeps
    the chain it was sent: Python 3.13 gives it (``get_unverified_chain``);
    3.10–3.12 have the same call on the object underneath, not exported.
    Without either, None (a caller may fetch the certificate again).
    """
    getter = getattr(sslobj, "get_unverified_chain", None)  # 3.13+: a list of DER bytes
    try:
        if getter is not None:
            chain = getter()
            return bytes(chain[0]) if chain else None
        inner = getattr(getattr(sslobj, "_sslobj", None), "get_unverified_chain", None)
        if inner is None:
            return None
        chain = inner()
        return bytes(chain[0].public_bytes(ssl._ssl.ENCODING_DER)) if chain else None  # type: ignore[attr-defined]
    except (AttributeError, ValueError, ssl.SSLError):
        return None


def peer_certificate(sslobj: ssl.SSLObject | ssl.SSLSocket) -> bytes | None:
    """The peer's certificate (DER), verified or not; None if it sent none."""
    return sslobj.getpeercert(binary_form=True)
