"""``wirecat relay`` with TLS against OpenSSL's own tools: ``s_client`` as a client of a
TLS-terminating relay, ``s_server`` as the target of a TLS-originating one.

Skipped without ``openssl`` unless WIRECAT_REQUIRE_PEERS=1. Certificates from trustme.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import trustme

from tests.conftest import WIRECAT, random_payload, recv_to_eof, require_peer, sha256
from wirecat.testing import read_line_matching

pytestmark = [pytest.mark.timeout(120), pytest.mark.peer("openssl")]

FINISH = 60.0
SIZE = 4 << 20


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": str(root / "ca.pem"), "cert": str(root / "cert.pem"), "key": str(root / "key.pem")}
    ca.cert_pem.write_to_path(paths["ca"])
    leaf.cert_chain_pems[0].write_to_path(paths["cert"])
    leaf.private_key_pem.write_to_path(paths["key"])
    return paths


class OneShotTarget:
    """A plain TCP target for one connection, running ``handle`` in a thread."""

    def __init__(self, handle) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.result: list[object] = []
        self.thread = threading.Thread(target=self._run, args=(handle,), daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self, handle) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(FINISH)
            try:
                self.result.append(handle(conn))
            except BaseException as exc:
                self.result.append(exc)

    def outcome(self) -> object:
        self.thread.join(FINISH)
        self.sock.close()
        assert self.result, "the target saw no connection"
        return self.result[0]


def s_client(spawn, pki: dict[str, str], port: int, stdin, stdout):
    openssl = require_peer("openssl")
    argv = [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", pki["ca"]]
    # -quiet alone implies -ign_eof (s_client would never end); -no_ign_eof: end at end of input.
    argv += ["-verify_return_error", "-quiet", "-no_ign_eof"]
    return spawn(*argv, stdin=stdin, stdout=stdout)


def stop(proc) -> None:
    proc.popen.send_signal(signal.SIGTERM)
    code, _, err = proc.finish(timeout=FINISH)
    assert code == 0, err


def test_s_client_uploads_through_a_terminating_relay(spawn, pki: dict[str, str], tmp_path: Path) -> None:
    """s_client's input reaches the plain target whole; its close_notify ends it cleanly (a FIN).

    A small input: at the end of its input s_client sends close_notify and
    quits without writing what it still holds (it loses megabytes that way
    against Python's own ssl server too), so a large upload tests s_client.
    """
    payload = random_payload(8 * 1024, seed=81)
    source = tmp_path / "in.bin"
    source.write_bytes(payload)
    target = OneShotTarget(lambda conn: sha256(recv_to_eof_strict(conn)))
    relay = spawn(WIRECAT, "relay", "--tls", "--cert", pki["cert"], "--key", pki["key"], "0", target.address)
    port = relay.listening_port()
    with open(source, "rb") as data:
        client = s_client(spawn, pki, port, data, subprocess.DEVNULL)
        code, _, err = client.finish(timeout=FINISH)
    assert code == 0, err
    assert target.outcome() == sha256(payload)
    stop(relay)


def test_s_client_downloads_through_a_terminating_relay(spawn, pki: dict[str, str], tmp_path: Path) -> None:
    """The plain target's bytes and FIN reach s_client as data and close_notify: it ends, all there."""
    payload = random_payload(SIZE, seed=82)
    sink = tmp_path / "out.bin"

    def send(conn: socket.socket) -> None:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        recv_to_eof(conn)

    target = OneShotTarget(send)
    relay = spawn(WIRECAT, "relay", "--tls", "--cert", pki["cert"], "--key", pki["key"], "0", target.address)
    port = relay.listening_port()
    with open(sink, "wb") as out:
        client = s_client(spawn, pki, port, subprocess.PIPE, out)  # its input stays open
        client.popen.wait(timeout=FINISH)  # it ends at the relay's close_notify
        client.finish(timeout=FINISH)
    assert hashlib.sha256(sink.read_bytes()).hexdigest() == sha256(payload)
    target.outcome()
    stop(relay)


def test_origination_to_s_server(spawn, pki: dict[str, str]) -> None:
    """A tls: target served by `openssl s_server -rev` (it answers each line reversed), verified."""
    openssl = require_peer("openssl")
    server = spawn(
        openssl, "s_server", "-accept", "127.0.0.1:0", "-cert", pki["cert"], "-key", pki["key"],
        "-rev", "-naccept", "1",
    )  # fmt: skip
    assert server.popen.stdout is not None
    port = int(read_line_matching(server.popen.stdout, r"ACCEPT 127\.0\.0\.1:(\d+)").group(1))
    relay = spawn(WIRECAT, "relay", "0", f"tls:127.0.0.1:{port}", "--target-cafile", pki["ca"])
    relay_port = relay.listening_port()
    with socket.create_connection(("127.0.0.1", relay_port), timeout=FINISH) as sock:
        sock.sendall(b"hello over tls\n")
        got = b""
        while b"\n" not in got:
            chunk = sock.recv(100)
            assert chunk, f"the connection ended early: {got!r}"
            got += chunk
    assert got == b"slt revo olleh\n"
    stop(relay)


def recv_to_eof_strict(conn: socket.socket) -> bytes:
    """Everything until a clean end; a reset fails (a close_notify must become a FIN)."""
    data = bytearray()
    while chunk := conn.recv(1 << 20):
        data += chunk
    return bytes(data)
