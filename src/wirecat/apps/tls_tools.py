"""``wirecat tls probe`` and ``wirecat tls cert``: look at a TLS server, make certificates.

:func:`probe` is what people run ``openssl s_client -connect`` for, as data:
the protocol and cipher agreed, the ALPN protocol, the SNI sent, the chain
the server sent (each certificate described by
:func:`wirecat.tls.describe_certificate`), and whether it is trusted, with
the reason in the words every other command uses
(:func:`wirecat.tls.translate_ssl_error`). It ends by itself: one handshake,
no data, no waiting on stdin.

How the verdict and the chain are found:

1. one handshake with a *verifying* context (the system store, ``cafile``
   or ``capath``; or a ``pin``, checked after the handshake as the dialers
   do). Verified: the chain comes from that connection;
2. verification failed: OpenSSL says why, but a failed handshake leaves no
   certificate to show, so a second handshake with verification off fetches
   the chain, and the reason is worded with the leaf in hand (the names it
   holds, its dates, the pin that would trust it).

The chain as sent needs ``SSLSocket.get_unverified_chain()`` (Python 3.13)
or the ``_ssl`` method of the same name that 3.10–3.12 have without
documenting it; where neither exists only the leaf is shown, and the result
says so (:attr:`ProbeResult.whole_chain`).

:func:`write_certificate` and :func:`write_ca_and_certificate` write what
:func:`wirecat.tls.issue_certificate` and :func:`wirecat.tls.make_ca` make:
keys 0600, never over an existing file unless asked.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from wirecat import tls
from wirecat.address import Address, format_hostport, ip_version
from wirecat.dial import dial
from wirecat.errors import (
    CertificateError,
    HandshakeTimeout,
    ProgramError,
    UsageError,
    WirecatError,
)
from wirecat.limits import DEFAULT_HANDSHAKE_TIMEOUT
from wirecat.report import Reporter, quiet
from wirecat.sockets import Op, translate_os_error

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "ProbeResult",
    "WrittenFiles",
    "probe",
    "write_ca_and_certificate",
    "write_certificate",
]

#: The files of a CA directory (``wirecat tls cert --ca DIR``).
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What :func:`probe` found. ``error`` None means the server is trusted."""

    #: ``host:port`` as asked for.
    target: str
    #: The address connected to (``127.0.0.1:443``).
    peer: str
    #: The name sent as SNI; None when none was sent (an IP address is never sent as SNI).
    sni: str | None
    #: The name the certificate was checked against (a host name or an IP address).
    checked_name: str
    #: ``TLSv1.3``...
    protocol: str | None
    cipher: str | None
    cipher_bits: int | None
    #: The ALPN protocol the server chose; None if none was offered or chosen.
    alpn: str | None
    #: The certificates the server sent, the leaf first.
    chain: tuple[tls.CertificateInfo, ...]
    #: False: only the leaf could be read (this Python cannot give the chain as sent).
    whole_chain: bool
    #: What the chain was checked against: ``the system's trust store``, ``cafile ca.pem``, ``pin sha256:…``.
    trust: str
    #: Why the server is not trusted (a :class:`~wirecat.errors.CertificateError`); None: trusted.
    error: WirecatError | None

    @property
    def verified(self) -> bool:
        """The chain (or the pinned certificate) is trusted for the name checked."""
        return self.error is None


def probe(
    address: Address,
    *,
    server_name: str | None = None,
    cafile: str | None = None,
    capath: str | None = None,
    pin: str | None = None,
    alpn: Sequence[str] | str | None = None,
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    numeric: bool = False,
    report: Reporter = quiet,
) -> ProbeResult:
    """Handshake with a TLS server and say what it is and whether it is trusted.

    Args:
        address: a TCP host and port.
        server_name: the name to send as SNI and check; default the host.
        cafile, capath: CAs to trust instead of the system's store.
        pin: ``sha256:<hex>``: trust exactly that certificate instead.
        alpn: protocols to offer (``"h2,http/1.1"``).
        timeout: the bound on each of connecting and the handshake (and
            on the second handshake, when there is one).

    Returns:
        The result, trusted or not: a certificate not trusted is an answer,
        in ``result.error``.

    Raises:
        ResolveError, ConnectError, ConnectTimeout: the server could not be reached.
        HandshakeTimeout: the handshake did not finish within ``timeout``.
        TLSError: the handshake failed for another reason than trust (a
            plain TCP server, no version or cipher in common...).
        UsageError, ProgramError: bad arguments, unreadable CA files.
    """
    if address.is_unix or address.datagram:
        raise UsageError("tls probe takes a TCP host and port", "e.g. wirecat tls probe example.com:443")
    host = address.host.strip("[]")
    checked = server_name or host
    sni = None if ip_version(checked) is not None else checked  # (Python never sends an IP as SNI)
    where = format_hostport(address.host, address.port)
    if pin is not None:
        pin = tls.parse_pin(pin)
    context = tls.client_context(cafile=cafile, capath=capath, pin=pin, alpn=alpn)
    trust = _trust_words(cafile, capath, pin)
    try:
        connection = _handshake(context, address, checked, where, timeout, family, numeric, report)
    except ssl.SSLCertVerificationError as exc:
        report(f"{where}: verification failed; handshaking again without it, to show the chain")
        unverified = tls.client_context(insecure=True, alpn=alpn)
        try:
            connection = _handshake(unverified, address, checked, where, timeout, family, numeric, report)
        except (ssl.SSLError, WirecatError):
            # The second try failed where the first got as far as a certificate:
            # the first error is the answer; there is no chain to show.
            error = tls.translate_ssl_error(exc, where, server_hostname=checked)
            return ProbeResult(where, where, sni, checked, None, None, None, None, (), False, trust, error)
        with connection:
            found = _inspect(connection, where, sni, checked, trust)
            leaf = connection.sock.getpeercert(binary_form=True)
        error = tls.translate_ssl_error(exc, where, server_hostname=checked, certificate=leaf)
        return _with_error(found, error)
    except ssl.SSLError as exc:
        raise tls.translate_ssl_error(exc, where, server_hostname=checked) from exc
    with connection:
        found = _inspect(connection, where, sni, checked, trust)
        if pin is not None:
            try:
                tls.check_pin(connection.sock.getpeercert(binary_form=True), pin, where)
            except CertificateError as error:
                return _with_error(found, error)
    return found


def _trust_words(cafile: str | None, capath: str | None, pin: str | None) -> str:
    if pin is not None:
        return f"pin {pin}"
    if cafile is not None:
        return f"cafile {cafile}"
    if capath is not None:
        return f"capath {capath}"
    return "the system's trust store"


def _handshake(
    context: ssl.SSLContext,
    address: Address,
    server_hostname: str,
    where: str,
    timeout: float,
    family: socket.AddressFamily,
    numeric: bool,
    report: Reporter,
) -> _Connection:
    """Dial and handshake, each within ``timeout``; the socket is closed on any failure."""
    sock = dial(address, family=family, timeout=timeout, numeric=numeric, report=report)
    try:
        sock.settimeout(timeout)
        started = time.monotonic()
        tls_sock = context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        tls_sock.do_handshake()
    except TimeoutError as exc:
        tls_sock.close()
        raise HandshakeTimeout(
            f"the TLS handshake with {where} did not finish within {timeout:g} s",
            "is it a TLS port? a server that waits for the client to speak first is not TLS",
        ).caused_by(exc) from exc
    except ssl.SSLError:
        tls_sock.close()
        raise
    except OSError as exc:
        tls_sock.close()
        raise translate_os_error(exc, Op.CONNECT, where) from exc
    report(f"{where}: handshake done in {(time.monotonic() - started) * 1000:.1f} ms")
    return _Connection(tls_sock, _peer_words(tls_sock, where))


@dataclass(slots=True)
class _Connection:
    sock: ssl.SSLSocket
    peer: str

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Say goodbye properly (close_notify) without waiting for the server's:
        # non-blocking, unwrap sends ours and gives up at once on the reply.
        try:
            self.sock.setblocking(False)
            self.sock.unwrap()
        except (ssl.SSLError, OSError, ValueError):
            pass
        finally:
            self.sock.close()


def _peer_words(sock: ssl.SSLSocket, where: str) -> str:
    try:
        name = sock.getpeername()
    except OSError:
        return where
    return format_hostport(name[0], name[1])


def _inspect(connection: _Connection, where: str, sni: str | None, checked: str, trust: str) -> ProbeResult:
    sock = connection.sock
    ders, whole = _chain_der(sock)
    cipher = sock.cipher()
    return ProbeResult(
        target=where,
        peer=connection.peer,
        sni=sni,
        checked_name=checked,
        protocol=sock.version(),
        cipher=cipher[0] if cipher else None,
        cipher_bits=cipher[2] if cipher else None,
        alpn=sock.selected_alpn_protocol(),
        chain=tuple(tls.describe_certificate(der) for der in ders),
        whole_chain=whole,
        trust=trust,
        error=None,
    )


def _with_error(found: ProbeResult, error: WirecatError) -> ProbeResult:
    return ProbeResult(
        found.target,
        found.peer,
        found.sni,
        found.checked_name,
        found.protocol,
        found.cipher,
        found.cipher_bits,
        found.alpn,
        found.chain,
        found.whole_chain,
        found.trust,
        error,
    )


def _chain_der(sock: ssl.SSLSocket) -> tuple[list[bytes], bool]:
    """The certificates the server sent (DER, the leaf first), and whether that is all of them.

    Feature-detected: ``SSLSocket.get_unverified_chain()`` is public from
    Python 3.13 (DER bytes); 3.10–3.12 have it on the private ``_sslobj``,
    giving ``_ssl.Certificate`` objects. Without either: the leaf alone.
    """
    getter = getattr(sock, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        try:
            certificates = getter()
        except (AttributeError, ValueError, ssl.SSLError):
            certificates = None
        if certificates:
            return [_to_der(c) for c in certificates], True
    leaf = sock.getpeercert(binary_form=True)
    return ([leaf] if leaf else []), False


def _to_der(certificate: object) -> bytes:
    if isinstance(certificate, bytes):
        return certificate
    # _ssl.Certificate (3.10–3.12): public_bytes(ENCODING_DER); the constant lives in _ssl.
    import _ssl

    return certificate.public_bytes(_ssl.ENCODING_DER)  # type: ignore[attr-defined,no-any-return]


def days_left(moment: datetime.datetime, now: datetime.datetime) -> int:
    """Whole days from ``now`` to ``moment`` (negative once past)."""
    return (moment - now) // datetime.timedelta(days=1)


# --- certificates to files ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrittenFiles:
    """What :func:`write_certificate` or :func:`write_ca_and_certificate` wrote."""

    cert_file: str
    key_file: str
    certificate: tls.Certificate
    #: The CA's certificate file (given to clients as ``cafile``); None: self-signed.
    ca_file: str | None = None
    #: The CA was made now (not reused from its directory).
    ca_made: bool = False


def _refuse_existing(paths: Sequence[str], force: bool) -> None:
    if force:
        return
    for path in paths:
        if os.path.lexists(path):
            raise ProgramError(f"{path} exists already", "give --force to overwrite it, or another file name")


def _write(path: str, data: bytes, *, private: bool) -> None:
    """Write ``data`` to ``path``: 0600 for a key (set before any byte is written), 0644 otherwise."""
    mode = 0o600 if private else 0o644
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise ProgramError(f"cannot write {path}: {(exc.strerror or str(exc)).lower()}").caused_by(
            exc
        ) from exc
    with os.fdopen(descriptor, "wb") as file:
        # O_CREAT's mode applies only to a new file: an old one keeps its
        # mode, so set it (an overwritten key must not stay world-readable).
        os.fchmod(file.fileno(), mode)
        file.write(data)


def write_certificate(
    hosts: Sequence[str], cert_file: str, key_file: str, *, days: int = 365, force: bool = False
) -> WrittenFiles:
    """Make a self-signed certificate for ``hosts`` and write it and its key (0600).

    Raises:
        ProgramError: a file exists (and not ``force``), or cannot be written.
        UsageError: no host, the same file for both, or ``days`` < 1.
    """
    _check_hosts(hosts)
    _check_distinct(cert_file, key_file)
    _refuse_existing([cert_file, key_file], force)
    certificate = tls.issue_certificate(hosts, days=days)
    _write(key_file, certificate.key_pem, private=True)
    _write(cert_file, certificate.cert_pem, private=False)
    return WrittenFiles(cert_file, key_file, certificate)


def write_ca_and_certificate(
    hosts: Sequence[str],
    ca_dir: str,
    cert_file: str,
    key_file: str,
    *,
    days: int = 365,
    force: bool = False,
) -> WrittenFiles:
    """A leaf for ``hosts`` signed by the CA in ``ca_dir``, made there first if absent (like mkcert).

    ``ca_dir`` holds ``ca.pem`` (give it to clients: ``--cafile``) and
    ``ca-key.pem`` (0600; keep it). An existing CA is reused, so one CA
    signs many leaves and clients trust them all; ``force`` overwrites the
    leaf's files, never the CA.

    Raises:
        ProgramError: a leaf file exists (and not ``force``); a CA
            directory with only one of its two files, or files that
            cannot be read or written.
        UsageError: no host, the same file for both, or ``days`` < 1.
    """
    _check_hosts(hosts)
    _check_distinct(cert_file, key_file)
    _refuse_existing([cert_file, key_file], force)
    ca_cert_path = os.path.join(ca_dir, CA_CERT_FILE)
    ca_key_path = os.path.join(ca_dir, CA_KEY_FILE)
    have = [os.path.exists(ca_cert_path), os.path.exists(ca_key_path)]
    if all(have):
        ca = _read_ca(ca_cert_path, ca_key_path)
        made = False
    elif any(have):
        missing = ca_key_path if have[0] else ca_cert_path
        raise ProgramError(f"the CA in {ca_dir} is incomplete: {missing} is missing", "give another --ca DIR")
    else:
        try:
            os.makedirs(ca_dir, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ProgramError(f"cannot make {ca_dir}: {(exc.strerror or str(exc)).lower()}") from exc
        ca = tls.make_ca()
        _write(ca_key_path, ca.key_pem, private=True)
        _write(ca_cert_path, ca.cert_pem, private=False)
        made = True
    try:
        certificate = tls.issue_certificate(hosts, ca=ca, days=days)
    except (ValueError, TypeError) as exc:  # cryptography: a bad or encrypted CA key
        raise ProgramError(
            f"cannot sign with the CA in {ca_dir}: {exc}", "its key must be an unencrypted EC or RSA key"
        ) from exc
    _write(key_file, certificate.key_pem, private=True)
    _write(cert_file, certificate.cert_pem, private=False)
    return WrittenFiles(cert_file, key_file, certificate, ca_file=ca_cert_path, ca_made=made)


def _check_hosts(names: Sequence[str]) -> None:
    """Hosts a certificate can name: IP addresses, or ASCII DNS names (``*.`` first allowed).

    (An ephemeral certificate takes what a listener was given; a file
    someone keeps should name only what a client can check.)
    """
    for name in names:
        _check_host(name)


def _check_host(name: str) -> None:
    if ip_version(name.strip("[]")) is not None:
        return
    labels = name.removeprefix("*.").split(".")
    if not name.isascii() or not all(
        0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label) for label in labels
    ):
        raise UsageError(
            f"bad host name {name!r} for a certificate",
            "give a DNS name (letters, digits, '-', '*.' first) or an IP address; IDNs in punycode (xn--...)",
        )


def _check_distinct(cert_file: str, key_file: str) -> None:
    if os.path.abspath(cert_file) == os.path.abspath(key_file):
        raise UsageError("the certificate and the key need two files", "give --out-cert and --out-key apart")


def _read_ca(cert_path: str, key_path: str) -> tls.Certificate:
    try:
        with open(cert_path, "rb") as file:
            cert_pem = file.read()
        with open(key_path, "rb") as file:
            key_pem = file.read()
    except OSError as exc:
        raise ProgramError(f"cannot read {exc.filename}: {(exc.strerror or str(exc)).lower()}") from exc
    try:
        return tls.Certificate(cert_pem, key_pem, tls.fingerprint(cert_pem))
    except ValueError as exc:
        raise ProgramError(f"{cert_path} holds no PEM certificate", "give another --ca DIR") from exc
