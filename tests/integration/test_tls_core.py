"""The TLS core (``wirecat.tls``) with real handshakes on loopback and real certificates (trustme).

Each branch of :func:`wirecat.tls.translate_ssl_error` is produced for real
where OpenSSL lets us: the client (or server) handshakes, the ``ssl.SSLError``
is translated, and the one line is checked for its cause, its fix and its
exit code. A failed verification leaves no certificate, so the leaf is
fetched with a second, unverified handshake, as the commands do.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import trustme

from tests.tls_support import ServerThread, issue, serving, write_pair
from wirecat import tls
from wirecat.errors import CertificateError, ProgramError, TLSError, TLSTruncated, WirecatError

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_ctx(leaf: trustme.LeafCert, tmp_path: Path, **kwargs: object) -> ssl.SSLContext:
    cert, key = write_pair(leaf, tmp_path)
    return tls.server_context(cert=cert, key=key, **kwargs)  # type: ignore[arg-type]


def handshake(
    server: ServerThread, context: ssl.SSLContext, hostname: str | None, *, read: bool = False
) -> ssl.SSLSocket:
    """Connect and handshake (and read the greeting when ``read``); raises ssl.SSLError."""
    sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
    try:
        tls_sock = context.wrap_socket(sock, server_hostname=hostname, suppress_ragged_eofs=False)
    except BaseException:
        sock.close()
        raise
    try:
        if read:
            tls_sock.recv(100)
    except BaseException:
        tls_sock.close()
        raise
    return tls_sock


def leaf_of(server: ServerThread, hostname: str | None) -> bytes | None:
    """The server's certificate by a second handshake without verification."""
    with handshake(server, tls.client_context(insecure=True), hostname) as tls_sock:
        return tls_sock.getpeercert(binary_form=True)


def failure(
    server: ServerThread, context: ssl.SSLContext, hostname: str | None, *, read: bool = False
) -> WirecatError:
    """The translated error of a client handshake that must fail."""
    where = f"{server.host}:{server.port}"
    with pytest.raises(ssl.SSLError) as caught:
        handshake(server, context, hostname, read=read).close()
    leaf = leaf_of(server, hostname) if isinstance(caught.value, ssl.SSLCertVerificationError) else None
    return tls.translate_ssl_error(caught.value, where, server_hostname=hostname, certificate=leaf)


# --- verification: trust, names, dates --------------------------------------------------------


def test_trusted_chain_verifies(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    with serving(server_ctx(issue(ca, "localhost", "127.0.0.1"), tmp_path)) as server:
        context = tls.client_context(cafile=ca_file)
        for name in ("localhost", "127.0.0.1"):
            with handshake(server, context, name, read=True) as tls_sock:
                assert tls_sock.version() in ("TLSv1.2", "TLSv1.3")


def test_self_signed_names_its_pin(tmp_path: Path) -> None:
    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    with serving(tls.server_context(certificate=certificate)) as server:
        error = failure(server, tls.client_context(), "127.0.0.1")
    assert isinstance(error, CertificateError)
    assert error.exit_code == 13
    assert error.message.startswith(f"self-signed certificate for 127.0.0.1:{server.port}")
    assert f"--pin {certificate.fingerprint}" in (error.cli_hint or "")
    assert f"pin {certificate.fingerprint}" in error.hint


def test_unknown_issuer_names_the_issuer(ca: trustme.CA, tmp_path: Path) -> None:
    # The system trust store does not know trustme's CA.
    with serving(server_ctx(issue(ca, "localhost"), tmp_path)) as server:
        error = failure(server, tls.client_context(), "localhost")
    assert isinstance(error, CertificateError)
    assert "signed by an unknown issuer" in error.message
    assert "trustme" in error.message  # the issuer's name
    assert "--cafile" in (error.cli_hint or "")
    assert "--pin sha256:" in (error.cli_hint or "")


def test_unknown_issuer_with_another_cafile(tmp_path: Path, ca: trustme.CA) -> None:
    other = trustme.CA()
    other_file = tmp_path / "other.pem"
    other.cert_pem.write_to_path(str(other_file))
    with serving(server_ctx(issue(ca, "localhost"), tmp_path)) as server:
        error = failure(server, tls.client_context(cafile=str(other_file)), "localhost")
    assert isinstance(error, CertificateError)
    assert "unknown issuer" in error.message


@pytest.mark.parametrize(
    ("names", "asked"),
    [
        (("localhost",), "other.test"),  # DNS name mismatch
        (("localhost",), "127.0.0.1"),  # an IP address the certificate does not hold
        (("127.0.0.2",), "127.0.0.1"),  # an IP SAN, the wrong one
        (("*.example.test",), "a.b.example.test"),  # a wildcard covers one label only
        (("*.example.test",), "example.test"),  # ... and not the bare domain
    ],
)
def test_name_mismatch_says_what_it_holds(
    ca: trustme.CA, ca_file: str, tmp_path: Path, names: tuple[str, ...], asked: str
) -> None:
    with serving(server_ctx(issue(ca, *names), tmp_path)) as server:
        error = failure(server, tls.client_context(cafile=ca_file), asked)
    assert isinstance(error, CertificateError)
    assert f"does not hold the name {asked!r}" in error.message
    assert f"it is for {names[0]}" in error.message
    assert "--servername NAME" in (error.cli_hint or "")


@pytest.mark.parametrize("asked", ["a.example.test", "www.example.test"])
def test_wildcard_matches_one_label(ca: trustme.CA, ca_file: str, tmp_path: Path, asked: str) -> None:
    with serving(server_ctx(issue(ca, "*.example.test"), tmp_path)) as server:
        handshake(server, tls.client_context(cafile=ca_file), asked, read=True).close()


def test_ipv6_san(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = ServerThread(server_ctx(issue(ca, "::1"), tmp_path), host="::1")
    except OSError as exc:
        pytest.skip(f"no ::1 here: {exc}")
    server.start()
    try:
        with handshake(server, tls.client_context(cafile=ca_file), "::1", read=True):
            pass
    finally:
        server.stop()


def test_expired_says_when(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    leaf = issue(ca, "localhost", days_from=-30, days_to=-2)
    with serving(server_ctx(leaf, tmp_path)) as server:
        error = failure(server, tls.client_context(cafile=ca_file), "localhost")
    assert isinstance(error, CertificateError)
    assert " expired on 20" in error.message
    assert error.message.endswith("UTC")


def test_not_yet_valid_says_from_when(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    leaf = issue(ca, "localhost", days_from=3, days_to=30)
    with serving(server_ctx(leaf, tmp_path)) as server:
        error = failure(server, tls.client_context(cafile=ca_file), "localhost")
    assert isinstance(error, CertificateError)
    assert "is not valid until 20" in error.message
    assert "clock" in error.hint


def test_without_the_leaf_the_words_still_stand(ca: trustme.CA, tmp_path: Path) -> None:
    # A caller that cannot fetch the certificate still gets a cause and a fix.
    with (
        serving(server_ctx(issue(ca, "localhost"), tmp_path)) as server,
        pytest.raises(ssl.SSLCertVerificationError) as caught,
    ):
        handshake(server, tls.client_context(), "localhost").close()
    error = tls.translate_ssl_error(caught.value, "h:1", server_hostname="localhost")
    assert isinstance(error, CertificateError)
    assert "unknown issuer" in error.message
    assert "--pin sha256:" in (error.cli_hint or "")


# --- pins -----------------------------------------------------------------------------------------


def test_pin_match_and_mismatch(tmp_path: Path) -> None:
    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    other = tls.ephemeral_certificate(["127.0.0.1"])
    with serving(tls.server_context(certificate=certificate)) as server:
        with handshake(server, tls.client_context(pin=certificate.fingerprint), "127.0.0.1") as tls_sock:
            der = tls.peer_certificate(tls_sock)
        tls.check_pin(der, certificate.fingerprint, "here")
        with pytest.raises(CertificateError) as caught:
            tls.check_pin(der, other.fingerprint, "127.0.0.1:1")
    assert caught.value.exit_code == 13
    assert f"is not the pinned one: it is {certificate.fingerprint}" in caught.value.message
    with pytest.raises(CertificateError, match="sent no certificate"):
        tls.check_pin(None, certificate.fingerprint, "here")


# --- not TLS, versions, ciphers, client certificates, ALPN -----------------------------------------


def test_plain_tcp_server(tmp_path: Path) -> None:
    # A plain server that answers whatever it reads, as an HTTP or SMTP one would.
    with serving(None, greeting=b"HTTP/1.0 400 Bad Request\r\n\r\n", read_first=True) as server:
        error = failure(server, tls.client_context(insecure=True), "127.0.0.1")
    assert type(error) is TLSError
    assert error.exit_code == 12
    assert "did not answer TLS: is it plain TCP?" in error.message
    assert error.cli_hint == "drop --tls"


def test_plain_client_at_a_tls_port(tmp_path: Path) -> None:
    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    with serving(tls.server_context(certificate=certificate)) as server:
        _send_plain(server, b"GET / HTTP/1.0\r\n\r\n")
        http_error = server.server_error()
        _send_plain(server, b"hello, plain text here\r\n" * 4)
        plain_error = server.server_error()
    assert isinstance(http_error, ssl.SSLError)
    words = tls.translate_ssl_error(http_error, "c:1", server_side=True)
    assert words.message == "plain HTTP request on a TLS port from c:1"
    assert isinstance(plain_error, ssl.SSLError)
    words = tls.translate_ssl_error(plain_error, "c:1", server_side=True)
    assert words.message == "c:1 did not speak TLS: is it a plain TCP client?"


def _send_plain(server: ServerThread, data: bytes) -> None:
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        try:
            sock.recv(100)  # the server's alert, its close, or its reset
        except ConnectionResetError:
            pass


def _tls11_server_context() -> ssl.SSLContext:
    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    context = tls.server_context(certificate=certificate)
    try:
        with warnings.catch_warnings():  # (ssl warns that TLS 1.0/1.1 are deprecated: that is the point)
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        # OpenSSL 3 allows TLS 1.0/1.1 only at security level 0.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as exc:
        pytest.skip(f"this OpenSSL cannot serve TLS 1.1 only: {exc}")
    return context


def test_tls11_only_server_is_refused() -> None:
    with serving(_tls11_server_context()) as server:
        error = failure(server, tls.client_context(insecure=True), "127.0.0.1")
    assert type(error) is TLSError
    assert "offers no TLS version in common with us (we speak 1.2 and 1.3)" in error.message
    assert "RFC 8996" in error.hint


def test_no_shared_cipher_both_sides() -> None:
    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    server_context = tls.server_context(certificate=certificate)
    server_context.maximum_version = ssl.TLSVersion.TLSv1_2  # 1.3 suites cannot be narrowed by set_ciphers
    server_context.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    client_context = tls.client_context(insecure=True)
    client_context.maximum_version = ssl.TLSVersion.TLSv1_2
    client_context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with serving(server_context) as server:
        error = failure(server, client_context, "127.0.0.1")
        server_side = server.server_error()
    assert type(error) is TLSError
    assert error.message.startswith("no TLS cipher in common with 127.0.0.1:")
    assert isinstance(server_side, ssl.SSLError)
    words = tls.translate_ssl_error(server_side, "c:1", server_side=True)
    assert words.message == "no TLS cipher in common with c:1"


@pytest.fixture
def mutual(ca: trustme.CA, ca_file: str, tmp_path: Path) -> ssl.SSLContext:
    """A server asking for client certificates signed by ``ca``."""
    return server_ctx(issue(ca, "localhost"), tmp_path, client_ca=ca_file)


def test_client_certificate_required(mutual: ssl.SSLContext, ca_file: str) -> None:
    with serving(mutual) as server:
        # TLS 1.3: the client's handshake ends before the server has judged it;
        # the refusal arrives with the first read.
        error = failure(server, tls.client_context(cafile=ca_file), "localhost", read=True)
        server_side = server.server_error()
    assert type(error) is TLSError
    assert "requires a client certificate" in error.message
    assert error.cli_hint == "give one with --cert FILE --key FILE"
    assert isinstance(server_side, ssl.SSLError)
    words = tls.translate_ssl_error(server_side, "c:1", server_side=True)
    assert isinstance(words, CertificateError)
    assert words.message == "c:1 presented no client certificate, and one is required"


def test_client_certificate_from_another_ca(mutual: ssl.SSLContext, ca_file: str, tmp_path: Path) -> None:
    stranger = trustme.CA().issue_cert("client@example.test")
    cert, key = write_pair(stranger, tmp_path, "client")
    context = tls.client_context(cafile=ca_file, cert=cert, key=key)
    with serving(mutual) as server:
        error = failure(server, context, "localhost", read=True)
        server_side = server.server_error()
    assert type(error) is TLSError
    assert "refused our client certificate" in error.message
    assert isinstance(server_side, ssl.SSLError)
    words = tls.translate_ssl_error(server_side, "c:1", server_side=True)
    assert isinstance(words, CertificateError)


def test_client_certificate_accepted(
    mutual: ssl.SSLContext, ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    cert, key = write_pair(ca.issue_cert("client.example.test"), tmp_path, "client")
    with serving(mutual) as server:
        with handshake(
            server, tls.client_context(cafile=ca_file, cert=cert, key=key), "localhost", read=True
        ):
            pass
        presented = server.client_certs.get(timeout=TIMEOUT)
    assert presented is not None
    assert tls.fingerprint(presented) == tls.fingerprint(Path(cert).read_bytes())
    assert "client.example.test" in tls.describe_certificate(presented).names


def test_alpn_without_overlap_is_no_alpn() -> None:
    # Python's server answers "no overlap" by choosing none (SSL_TLSEXT_ERR_NOACK),
    # not with the no_application_protocol alert: the handshake succeeds.
    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    with serving(tls.server_context(certificate=certificate, alpn="h2")) as server:
        context = tls.client_context(pin=certificate.fingerprint, alpn="http/1.1")
        with handshake(server, context, "127.0.0.1", read=True) as tls_sock:
            assert tls_sock.selected_alpn_protocol() is None
        with handshake(server, tls.client_context(insecure=True, alpn="x,h2"), None) as tls_sock:
            assert tls_sock.selected_alpn_protocol() == "h2"


def test_truncation_without_close_notify() -> None:
    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    context = tls.server_context(certificate=certificate)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        tls_client = tls.client_context(insecure=True).wrap_socket(
            client, server_hostname=None, do_handshake_on_connect=False, suppress_ragged_eofs=False
        )
        server_side = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        with tls_client, server_side:
            # Both handshakes from this one thread, in non-blocking steps.
            _step_handshakes(tls_client, server_side)
            server_side.sendall(b"partial")
            # The TCP end with no close_notify (SSLSocket.shutdown sends none).
            server_side.shutdown(socket.SHUT_RDWR)
            assert tls_client.recv(100) == b"partial"
            with pytest.raises(ssl.SSLError) as caught:
                tls_client.recv(100)
    error = tls.translate_ssl_error(caught.value, "s:1")
    assert isinstance(error, TLSTruncated)
    assert error.exit_code == 8
    assert error.message == "s:1 ended the stream without TLS close_notify"


def _step_handshakes(client: ssl.SSLSocket, server: ssl.SSLSocket) -> None:
    """Drive two handshakes in one thread with non-blocking steps (bounded)."""
    client.setblocking(False)
    server.setblocking(False)
    done = {"client": False, "server": False}
    for _ in range(1000):  # a TLS 1.3 handshake needs a handful of steps
        for name, side in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                side.do_handshake()
                done[name] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                import select

                select.select([client, server], [], [], 0.05)  # wait for the other's bytes, bounded
        if all(done.values()):
            break
    assert all(done.values()), done
    client.settimeout(TIMEOUT)
    server.settimeout(TIMEOUT)


# --- configuration: files, keys, passphrases ----------------------------------------------------


def test_server_context_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProgramError) as caught:
        tls.server_context(cert=str(tmp_path / "nope.pem"))
    assert caught.value.exit_code == 9
    assert caught.value.message == f"cannot read {tmp_path / 'nope.pem'}: no such file"


def test_server_context_key_not_matching(tmp_path: Path) -> None:
    one = tls.ephemeral_certificate(["a"])
    two = tls.ephemeral_certificate(["b"])
    (tmp_path / "c.pem").write_bytes(one.cert_pem)
    (tmp_path / "k.pem").write_bytes(two.key_pem)
    with pytest.raises(ProgramError) as caught:
        tls.server_context(cert=str(tmp_path / "c.pem"), key=str(tmp_path / "k.pem"))
    assert "does not match the certificate" in caught.value.message
    assert "\n" not in str(caught.value)


def _encrypted_pair(tmp_path: Path) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization

    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    key = serialization.load_pem_private_key(certificate.key_pem, password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    (tmp_path / "c.pem").write_bytes(certificate.cert_pem)
    (tmp_path / "enc.key").write_bytes(encrypted)
    return str(tmp_path / "c.pem"), str(tmp_path / "enc.key")


def test_server_context_encrypted_key(tmp_path: Path) -> None:
    cert, key = _encrypted_pair(tmp_path)
    with pytest.raises(ProgramError) as caught:
        tls.server_context(cert=cert, key=key)
    assert caught.value.message == f"the key in {key} is encrypted"
    assert "asks for no passphrase" in caught.value.hint


def test_encrypted_key_never_prompts(tmp_path: Path) -> None:
    # No terminal and stdin closed: a passphrase prompt would hang or fail
    # differently; wirecat must refuse at once with its one line.
    cert, key = _encrypted_pair(tmp_path)
    code = (
        "import sys\n"
        "from wirecat import tls\n"
        "from wirecat.errors import WirecatError\n"
        "try:\n"
        f"    tls.server_context(cert={cert!r}, key={key!r})\n"
        "except WirecatError as exc:\n"
        "    print(f'{exc.exit_code} {exc.message}')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,  # no controlling terminal to prompt on
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"9 the key in {key} is encrypted\n"
    assert run.stderr == ""


# --- ephemeral certificates -------------------------------------------------------------------


def test_ephemeral_certificate_contents() -> None:
    import datetime

    certificate = tls.ephemeral_certificate(["127.0.0.1", "::1", "[::2]", "example.test", "127.0.0.1"])
    der = ssl.PEM_cert_to_DER_cert(certificate.cert_pem.decode())
    info = tls.describe_certificate(der)
    assert set(info.names) == {"127.0.0.1", "::1", "::2", "example.test"}
    assert len(info.names) == 4  # duplicates once
    assert info.subject == "CN=127.0.0.1"
    assert info.key == "EC P-256"
    assert info.self_signed
    assert info.fingerprint == certificate.fingerprint == tls.fingerprint(der)
    now = datetime.datetime.now(datetime.UTC)
    assert info.not_before < now < info.not_after
    assert (info.not_after - now).days in (tls.EPHEMERAL_DAYS - 1, tls.EPHEMERAL_DAYS)
    assert b"ENCRYPTED" not in certificate.key_pem


def test_ca_and_issued_certificate_verify(tmp_path: Path) -> None:
    ca = tls.make_ca()
    leaf = tls.issue_certificate(["localhost", "127.0.0.1"], ca=ca, days=10)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "leaf.pem").write_bytes(leaf.cert_pem + leaf.key_pem)
    with serving(tls.server_context(cert=str(tmp_path / "leaf.pem"))) as server:
        context = tls.client_context(cafile=str(tmp_path / "ca.pem"))
        with handshake(server, context, "localhost", read=True):
            pass
    info = tls.describe_certificate(ssl.PEM_cert_to_DER_cert(leaf.cert_pem.decode()))
    assert info.issuer == "CN=wirecat local CA,O=wirecat"
    assert not info.self_signed


def test_certificate_needs_a_host() -> None:
    from wirecat.errors import UsageError

    with pytest.raises(UsageError):
        tls.ephemeral_certificate(["", " "])
    with pytest.raises(UsageError):
        tls.issue_certificate(["x"], days=0)
