"""``wirecat tls probe`` against ``openssl s_server``: the chain it sends, its versions, its ALPN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_peer, run_wirecat
from tests.interop.peers import Endpoint, wait_for_listener
from wirecat import tls
from wirecat.testing import free_port

pytestmark = [pytest.mark.peer("openssl"), pytest.mark.timeout(60)]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """A local CA and a leaf it signed, as `wirecat tls cert --ca` writes them."""
    run = run_wirecat(
        "tls", "cert", "--ca", str(tmp_path / "ca"), "--out-cert", str(tmp_path / "leaf.pem"),
        "--out-key", str(tmp_path / "leaf.key"), "localhost", "127.0.0.1",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return {
        "ca": str(tmp_path / "ca" / "ca.pem"),
        "cert": str(tmp_path / "leaf.pem"),
        "key": str(tmp_path / "leaf.key"),
    }


def s_server(spawn, files: dict[str, str], *extra: str) -> int:
    """Start `openssl s_server` on a free loopback port for a few connections; return the port."""
    openssl = require_peer("openssl")
    port = free_port()
    server = spawn(
        openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", files["cert"], "-key", files["key"],
        "-naccept", "4", "-quiet", *extra,
    )  # fmt: skip
    wait_for_listener(Endpoint("tcp", "127.0.0.1", port))
    assert server.popen.poll() is None
    return port


def test_probe_s_server_with_its_chain(spawn, files: dict[str, str]) -> None:
    port = s_server(spawn, files, "-cert_chain", files["ca"])
    run = run_wirecat("tls", "probe", "--json", f"127.0.0.1:{port}", "--cafile", files["ca"])
    assert run.returncode == 0, run.stdout
    document = json.loads(run.stdout)
    assert document["verified"] is True
    assert document["protocol"] == "TLSv1.3"
    assert [c["subject"] for c in document["chain"]] == ["CN=localhost", "CN=wirecat local CA,O=wirecat"]
    assert document["chain"][1]["self_signed"] is True
    assert document["chain"][0]["fingerprint"] == tls.fingerprint(Path(files["cert"]).read_bytes())


def test_probe_s_server_untrusted_then_text(spawn, files: dict[str, str]) -> None:
    port = s_server(spawn, files)
    run = run_wirecat("tls", "probe", f"localhost:{port}", "-4")
    assert run.returncode == 13
    last = run.stdout.decode().splitlines()[-1]
    assert last.startswith(
        f"verdict   NOT trusted: the certificate of localhost:{port} is signed by an unknown"
    )
    assert "CN=wirecat local CA" in last


def test_probe_s_server_tls12_and_alpn(spawn, files: dict[str, str]) -> None:
    port = s_server(spawn, files, "-tls1_2", "-alpn", "h2")
    run = run_wirecat("tls", "probe", "--json", f"127.0.0.1:{port}", "--cafile", files["ca"], "--alpn", "h2")
    assert run.returncode == 0, run.stdout
    document = json.loads(run.stdout)
    assert document["protocol"] == "TLSv1.2"
    assert document["alpn"] == "h2"
    assert document["cipher_bits"] >= 128
