"""``wirecat tls probe`` and ``wirecat tls cert``, end to end: the installed CLI against loopback servers."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
from pathlib import Path

import pytest
import trustme

from tests.conftest import run_wirecat
from tests.tls_support import issue, serving, write_pair
from wirecat import tls

pytestmark = pytest.mark.timeout(60)

#: The fields of `tls probe --json`, documented in cli/tls.py and the README.
PROBE_FIELDS = {
    "v",
    "target",
    "peer",
    "sni",
    "checked_name",
    "protocol",
    "cipher",
    "cipher_bits",
    "alpn",
    "trust",
    "verified",
    "error",
    "exit_code",
    "whole_chain",
    "chain",
}
CERT_FIELDS = {
    "subject",
    "issuer",
    "names",
    "not_before",
    "not_after",
    "days_left",
    "key",
    "fingerprint",
    "self_signed",
}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def context_for(leaf: trustme.LeafCert, tmp_path: Path, **kwargs: object) -> ssl.SSLContext:
    cert, key = write_pair(leaf, tmp_path)
    return tls.server_context(cert=cert, key=key, **kwargs)  # type: ignore[arg-type]


def lines(out: bytes) -> list[str]:
    return out.decode().splitlines()


# --- probe ----------------------------------------------------------------------------------


def test_probe_trusted(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    with serving(context_for(issue(ca, "localhost", "127.0.0.1"), tmp_path)) as server:
        run = run_wirecat(
            "tls", "probe", f"127.0.0.1:{server.port}", "--cafile", ca_file, "--servername", "localhost"
        )
    assert run.returncode == 0, run.stderr
    assert run.stderr == b""
    out = lines(run.stdout)
    assert out[0] == f"server    127.0.0.1:{server.port}, SNI localhost"
    assert out[1].startswith("tls       TLSv1.3, TLS_")
    assert out[2] == "chain     1 certificate, as sent, the leaf first"
    assert "          names   localhost, 127.0.0.1" in out
    assert any(line.startswith("          valid   ") and "days left)" in line for line in out)
    assert "          key     EC P-256" in out
    assert out[-1] == (
        f"verdict   trusted: the chain verifies against cafile {ca_file} and holds the name 'localhost'"
    )


def test_probe_host_port_words_and_no_sni_for_an_address(
    ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    with serving(context_for(issue(ca, "127.0.0.1"), tmp_path)) as server:
        run = run_wirecat("tls", "probe", "127.0.0.1", str(server.port), "--cafile", ca_file)
    assert run.returncode == 0, run.stderr
    assert lines(run.stdout)[0].endswith("no SNI (an IP address is never sent as SNI)")


def test_probe_untrusted_shows_the_chain_and_the_pin(ca: trustme.CA, tmp_path: Path) -> None:
    leaf = issue(ca, "localhost")
    with serving(context_for(leaf, tmp_path)) as server:
        run = run_wirecat("tls", "probe", f"localhost:{server.port}", "-4")
    assert run.returncode == 13
    out = lines(run.stdout)
    pin = tls.fingerprint(leaf.cert_chain_pems[0].bytes())
    assert f"          sha256  {pin}" in out
    assert out[-1].startswith(
        f"verdict   NOT trusted: the certificate of localhost:{server.port} is signed by"
    )
    assert out[-1].endswith(f"give its CA with --cafile FILE, or to trust this one: --pin {pin}")
    assert b"Traceback" not in run.stderr


def test_probe_pin(tmp_path: Path) -> None:
    certificate = tls.ephemeral_certificate(["127.0.0.1"])
    other = tls.ephemeral_certificate(["127.0.0.1"])
    with serving(tls.server_context(certificate=certificate)) as server:
        good = run_wirecat(
            "tls", "probe", f"127.0.0.1:{server.port}", "--pin", certificate.fingerprint.upper()
        )
        bad = run_wirecat("tls", "probe", f"127.0.0.1:{server.port}", "--pin", other.fingerprint)
    assert good.returncode == 0, good.stderr
    assert lines(good.stdout)[-1] == "verdict   trusted: it is the pinned certificate"
    assert bad.returncode == 13
    assert f"is not the pinned one: it is {certificate.fingerprint}" in lines(bad.stdout)[-1]


def test_probe_json(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    leaf = issue(ca, "localhost")
    with serving(context_for(leaf, tmp_path, alpn="h2")) as server:
        good = run_wirecat(
            "tls",
            "probe",
            "--json",
            f"localhost:{server.port}",
            "-4",
            "--cafile",
            ca_file,
            "--alpn",
            "h2,http/1.1",
        )
        wrong_name = run_wirecat(
            "tls",
            "probe",
            f"127.0.0.1:{server.port}",
            "--cafile",
            ca_file,
            "--servername",
            "x.test",
            "--json",
        )
    assert good.returncode == 0, good.stderr
    document = json.loads(good.stdout)
    assert set(document) == PROBE_FIELDS
    assert document["v"] == 1
    assert document["verified"] is True
    assert document["error"] is None
    assert document["exit_code"] == 0
    assert document["alpn"] == "h2"
    assert document["sni"] == "localhost"
    assert document["protocol"] == "TLSv1.3"
    assert document["whole_chain"] is True
    (cert,) = document["chain"]
    assert set(cert) == CERT_FIELDS
    assert cert["fingerprint"] == tls.fingerprint(leaf.cert_chain_pems[0].bytes())
    assert cert["names"] == ["localhost"]
    assert cert["not_after"].endswith("Z")
    assert cert["days_left"] in (29, 30)
    assert wrong_name.returncode == 13
    document = json.loads(wrong_name.stdout)
    assert document["verified"] is False
    assert document["exit_code"] == 13
    assert "does not hold the name 'x.test': it is for localhost" in document["error"]
    assert document["chain"][0]["names"] == ["localhost"]  # shown, from the second handshake


def test_probe_expired_says_days_ago(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    with serving(context_for(issue(ca, "localhost", days_from=-30, days_to=-3), tmp_path)) as server:
        run = run_wirecat("tls", "probe", f"localhost:{server.port}", "-4", "--cafile", ca_file)
    assert run.returncode == 13
    text = run.stdout.decode()
    assert "(expired 3 days ago)" in text or "(expired 4 days ago)" in text
    assert "expired on 20" in lines(run.stdout)[-1]


def test_probe_plain_server_is_a_tls_failure() -> None:
    with serving(None, greeting=b"HTTP/1.0 400 Bad Request\r\n\r\n", read_first=True) as server:
        run = run_wirecat("tls", "probe", f"127.0.0.1:{server.port}")
        as_json = run_wirecat("tls", "probe", f"127.0.0.1:{server.port}", "--json")
    assert run.returncode == 12
    assert run.stdout == b""
    assert run.stderr.decode() == (
        f"wirecat: the server 127.0.0.1:{server.port} did not answer TLS: is it plain TCP?: drop --tls\n"
    )
    assert as_json.returncode == 12
    document = json.loads(as_json.stdout)
    assert set(document) == PROBE_FIELDS
    assert document["exit_code"] == 12
    assert document["verified"] is False
    assert document["chain"] == []
    assert json.loads(as_json.stderr.decode().splitlines()[-1])["event"] == "error"


def test_probe_refused() -> None:
    from wirecat.testing import free_port

    run = run_wirecat("tls", "probe", f"127.0.0.1:{free_port()}")
    assert run.returncode == 4
    assert run.stderr.decode().startswith("wirecat: connection refused by 127.0.0.1:")


def test_probe_handshake_timeout() -> None:
    # A listener that never accepts: the TCP connect succeeds (the backlog), the handshake never does.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        run = run_wirecat("tls", "probe", f"127.0.0.1:{port}", "-w", "0.5", timeout=20)
    assert run.returncode == 6
    assert run.stderr.decode().startswith(
        f"wirecat: the TLS handshake with 127.0.0.1:{port} did not finish within 0.5 s"
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["127.0.0.1:1", "--pin", "sha256:12"], "bad pin"),
        (["127.0.0.1:1", "--pin", "sha256:" + "ab" * 32, "--cafile", "x"], "--cafile/--capath mean nothing"),
        (["unix:/tmp/x"], "TCP host and port"),
        (["127.0.0.1", "1", "2"], "got 3 words"),
        (["127.0.0.1:1", "--cafile", "/nonexistent/ca.pem"], "cannot read CA file"),
    ],
)
def test_probe_bad_input(args: list[str], words: str) -> None:
    run = run_wirecat("tls", "probe", *args)
    assert run.returncode in (2, 9)
    err = run.stderr.decode()
    assert err.count("\n") == 1
    assert words in err


def test_tls_alone_and_typos() -> None:
    alone = run_wirecat("tls")
    assert alone.returncode == 2
    assert "tls needs one of probe, cert" in alone.stderr.decode()
    typo = run_wirecat("tls", "prob", "x:1")
    assert typo.returncode == 2
    assert "did you mean 'tls probe'?" in typo.stderr.decode()
    helped = run_wirecat("tls", "--help")
    assert helped.returncode == 0
    assert b"tls probe" in helped.stdout
    assert b"tls cert" in helped.stdout
    top = run_wirecat("--help")
    assert b"tls probe" in top.stdout


# --- cert -------------------------------------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cert_self_signed(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    run = run_wirecat("tls", "cert", "--out-cert", str(cert), "--out-key", str(key))
    assert run.returncode == 0, run.stderr
    assert mode_of(key) == 0o600
    info = tls.describe_certificate(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    assert set(info.names) == {"localhost", "127.0.0.1", "::1"}
    assert info.self_signed
    assert 364 <= (info.not_after - info.not_before).days <= 366
    out = run.stdout.decode()
    assert f"fingerprint {info.fingerprint}\n" in out
    assert f"wirecat listen --tls --cert {cert} --key {key} 9000" in out
    assert f"wirecat connect --tls --pin {info.fingerprint} localhost 9000" in out
    # The files make a working server that a pinned client trusts.
    with serving(tls.server_context(cert=str(cert), key=str(key))) as server:
        probe = run_wirecat("tls", "probe", f"127.0.0.1:{server.port}", "--pin", info.fingerprint)
        as_ca = run_wirecat("tls", "probe", f"127.0.0.1:{server.port}", "--cafile", str(cert))
    assert probe.returncode == 0, probe.stdout
    assert as_ca.returncode == 0, as_ca.stdout  # a self-signed certificate is its own CA


def test_cert_refuses_to_overwrite(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("mine\n")
    key.write_text("my key\n")
    key.chmod(0o644)
    run = run_wirecat("tls", "cert", "--out-cert", str(cert), "--out-key", str(key), "h.test")
    assert run.returncode == 9
    assert run.stderr.decode() == (
        f"wirecat: {cert} exists already: give --force to overwrite it, or another file name\n"
    )
    assert cert.read_text() == "mine\n"
    forced = run_wirecat("tls", "cert", "--out-cert", str(cert), "--out-key", str(key), "h.test", "--force")
    assert forced.returncode == 0, forced.stderr
    assert mode_of(key) == 0o600  # an old key file's mode is not kept
    assert "PRIVATE KEY" in key.read_text()


def test_cert_with_a_local_ca(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    first = run_wirecat(
        "tls",
        "cert",
        "--ca",
        str(ca_dir),
        "--out-cert",
        str(tmp_path / "a.pem"),
        "--out-key",
        str(tmp_path / "a.key"),
        "localhost",
        "127.0.0.1",
    )
    assert first.returncode == 0, first.stderr
    assert mode_of(ca_dir) == 0o700
    assert mode_of(ca_dir / "ca-key.pem") == 0o600
    assert mode_of(tmp_path / "a.key") == 0o600
    assert f"made a CA in {ca_dir}" in first.stdout.decode()
    assert f"wirecat connect --tls --cafile {ca_dir / 'ca.pem'} localhost 9000" in first.stdout.decode()
    ca_pem = (ca_dir / "ca.pem").read_bytes()
    second = run_wirecat(
        "tls",
        "cert",
        "--ca",
        str(ca_dir),
        "--out-cert",
        str(tmp_path / "b.pem"),
        "--out-key",
        str(tmp_path / "b.key"),
        "--days",
        "10",
        "[::1]",
    )
    assert second.returncode == 0, second.stderr
    assert (ca_dir / "ca.pem").read_bytes() == ca_pem  # the CA is reused
    assert f"signed by the CA in {ca_dir}" in second.stdout.decode()
    context = tls.server_context(cert=str(tmp_path / "a.pem"), key=str(tmp_path / "a.key"))
    with serving(context) as server:
        probe = run_wirecat("tls", "probe", f"127.0.0.1:{server.port}", "--cafile", str(ca_dir / "ca.pem"))
    assert probe.returncode == 0, probe.stdout
    info = tls.describe_certificate(ssl.PEM_cert_to_DER_cert((tmp_path / "b.pem").read_text()))
    assert info.names == ("::1",)
    assert info.issuer == "CN=wirecat local CA,O=wirecat"


def test_cert_incomplete_ca(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "ca.pem").write_text("x")
    run = run_wirecat(
        "tls",
        "cert",
        "--ca",
        str(tmp_path / "ca"),
        "--out-cert",
        str(tmp_path / "c"),
        "--out-key",
        str(tmp_path / "k"),
    )
    assert run.returncode == 9
    assert "is incomplete" in run.stderr.decode()
    assert not (tmp_path / "c").exists()


def test_cert_bad_days(tmp_path: Path) -> None:
    run = run_wirecat(
        "tls", "cert", "--days", "0", "--out-cert", str(tmp_path / "c"), "--out-key", str(tmp_path / "k")
    )
    assert run.returncode == 2
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["bücher.test"], "bad host name 'bücher.test' for a certificate"),
        (["two words"], "bad host name 'two words'"),
        (["--days", "99999999", "localhost"], "bad validity 99999999 days"),
    ],
)
def test_cert_bad_input_is_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    out = ["--out-cert", str(tmp_path / "c"), "--out-key", str(tmp_path / "k")]
    run = run_wirecat("tls", "cert", *out, *args)
    assert run.returncode == 2
    err = run.stderr.decode()
    assert err.count("\n") == 1
    assert words in err
    assert not (tmp_path / "c").exists()
