"""``openssl s_client`` and ``ncat --ssl`` as clients of ``wirecat echo --tls``.

Each peer verifies the server's certificate (a ``trustme`` CA), sends a
payload (NUL bytes, CRLF, invalid UTF-8) and must get every byte back; then
its stdin ends and it exits 0. The server's stderr holds no noise. Skipped
without the peer, a failure under ``WIRECAT_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import trustme

from tests.conftest import WIRECAT, random_payload, require_peer, sha256
from tests.interop.peers import read_exact
from wirecat.testing import read_line_matching

FINISH = 30.0
SIZE = 256 << 10

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory: Path = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: str(directory / f"{name}.pem") for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    server.cert_chain_pems[0].write_to_path(paths["cert"])
    server.private_key_pem.write_to_path(paths["key"])
    return paths


def client_argv(peer: str, port: int, ca: str) -> list[str]:
    if peer == "openssl":
        return [
            require_peer("openssl"), "s_client", "-connect", f"127.0.0.1:{port}",
            "-CAfile", ca, "-verify_return_error", "-verify_ip", "127.0.0.1",
            "-quiet", "-no_ign_eof",  # no banner; end at end of stdin
        ]  # fmt: skip
    # ncat checks DNS names only: it connects to localhost (IPv4, from /etc/hosts).
    return [
        require_peer("ncat"),
        "-4",
        "--ssl",
        "--ssl-verify",
        "--ssl-trustfile",
        ca,
        "localhost",
        str(port),
    ]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("peer", ["openssl", "ncat"])
def test_peer_tls_client_of_echo(spawn, certs: dict[str, str], peer: str, loop: str, monkeypatch) -> None:
    argv = client_argv(peer, 0, certs["ca"])  # (skips without the peer, before starting anything)
    monkeypatch.setenv("WIRECAT_LOOP", loop)
    server = spawn(WIRECAT, "echo", "--tls", "--cert", certs["cert"], "--key", certs["key"], "127.0.0.1", "0")
    port = server.listening_port()
    argv = client_argv(peer, port, certs["ca"])
    client = spawn(*argv)
    payload = random_payload(SIZE, seed=31)
    # Interactive: send, read the echo back, and only then end stdin (a TLS
    # client cannot half-close, so an end sent first could race the reply).
    # The payload is written by a thread while this one reads the echo (both
    # pipes are smaller than the payload).
    stdin, stdout = client.popen.stdin, client.popen.stdout
    assert stdin is not None
    assert stdout is not None
    writer = threading.Thread(target=lambda: (stdin.write(payload), stdin.flush()))
    writer.start()

    def nudge() -> None:
        # ncat --ssl reads 8 KiB per wake-up and never drains what OpenSSL has
        # already decrypted (nmap/nmap#2788): the tail of the echo sits in ncat
        # until more bytes arrive. A byte sent after the payload wakes it; its
        # own echo comes after the payload's and is not read.
        if peer == "ncat" and not writer.is_alive():
            stdin.write(b"\n")
            stdin.flush()

    echoed = read_exact(stdout, len(payload), timeout=FINISH, on_stall=nudge)
    writer.join(FINISH)
    assert sha256(echoed) == sha256(payload)
    stdin.close()
    code, _, err = client.finish(timeout=FINISH)
    assert code == 0, err
    server.popen.send_signal(signal.SIGTERM)
    code, _, server_err = server.finish(timeout=FINISH)
    assert code == 0, server_err
    text = server_err.decode(errors="replace")
    assert not re.search(r"Traceback|Exception in callback|SSL handshake failed|Fatal error", text), text


def test_s_client_sees_the_ephemeral_certificate_the_pin_names(spawn) -> None:
    """The fingerprint ``echo --tls`` prints is the certificate's, as openssl computes it."""
    openssl = require_peer("openssl")
    server = spawn(WIRECAT, "echo", "--tls", "127.0.0.1", "0")
    port = server.listening_port()
    shown = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts"],
        input=b"",
        capture_output=True,
        timeout=FINISH,
        check=False,
    ).stdout
    pem = re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", shown, re.DOTALL)
    assert pem, shown
    fingerprint = subprocess.run(
        [openssl, "x509", "-noout", "-fingerprint", "-sha256"],
        input=pem.group(0),
        capture_output=True,
        check=True,
    ).stdout.decode()
    digits = fingerprint.strip().split("=", 1)[1].replace(":", "").lower()
    # Read on from where listening_port() stopped (it may hold this line already).
    trust = read_line_matching(server.popen.stderr, r"trust it with: (.*)$", timeout=FINISH)
    assert trust.group(1) == f"wirecat connect --tls --pin sha256:{digits} 127.0.0.1 {port}"
    server.popen.send_signal(signal.SIGTERM)
    server.finish(timeout=FINISH)
