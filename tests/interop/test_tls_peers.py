"""wirecat's TLS against openssl s_server/s_client, ncat --ssl and socat OPENSSL, both roles.

A 100 MiB random payload goes from the client to the server, checked by
SHA-256 on the server's output; a peer that is not installed skips (fails
under WIRECAT_REQUIRE_PEERS=1). The half-close request/reply (a server
that answers only at the end of its input) runs wirecat on both ends: TLS
1.3 keeps the reply direction open after close_notify. The peers are not
used for it: ``openssl s_server`` and ncat end the whole connection at
close_notify, as most TLS stacks do.

Habits of the peers the tests work around: ``s_server`` and ncat end the
connection at the end of their own stdin (kept open here); ``s_client``
reads a line starting with R or Q as a command (``-nocommands``); ncat
checks only DNS names (it connects to ``localhost``); a wirecat server
whose stdin is empty sends close_notify at once, which ncat and socat take
for the end (``--recv-only``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.conftest import WIRECAT, require_peer
from tests.interop.peers import Endpoint, file_sha256, wait_for_listener
from wirecat.testing import free_port

pytestmark = pytest.mark.timeout(180)

SIZE = 100 << 20
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("tls-peers")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    paths["cert"].write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    return {name: str(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("payload") / "random.bin"
    path.write_bytes(os.urandom(SIZE))
    return path, file_sha256(path)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def server_argv(peer: str, port: int, files: dict[str, str]) -> list[str]:
    if peer == "openssl":
        return [
            require_peer("openssl"),
            "s_server",
            "-quiet",
            "-naccept",
            "1",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            files["cert"],
            "-key",
            files["key"],
        ]
    if peer == "ncat":
        return [
            require_peer("ncat"),
            "--ssl",
            "--ssl-cert",
            files["cert"],
            "--ssl-key",
            files["key"],
            "-l",
            "127.0.0.1",
            str(port),
            "--recv-only",
        ]
    return [
        require_peer("socat"),
        "-u",
        f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,cert={files['cert']},key={files['key']},verify=0",
        "STDOUT",
    ]


def client_argv(peer: str, port: int, files: dict[str, str]) -> list[str]:
    if peer == "openssl":
        return [
            require_peer("openssl"),
            "s_client",
            "-quiet",
            "-nocommands",  # else a line starting with R or Q in the payload is a command
            "-no_ign_eof",
            "-verify_return_error",
            "-CAfile",
            files["ca"],
            "-connect",
            f"127.0.0.1:{port}",
        ]
    if peer == "ncat":
        return [
            require_peer("ncat"),
            "--ssl",
            "--ssl-trustfile",
            files["ca"],
            "--send-only",
            "localhost",  # (ncat checks names only: one the certificate holds)
            str(port),
        ]
    return [require_peer("socat"), "-u", "STDIN", f"OPENSSL:127.0.0.1:{port},cafile={files['ca']}"]


PEER_NAMES = ["openssl", "ncat", "socat"]


@pytest.mark.parametrize("peer", PEER_NAMES)
def test_wirecat_client_to_peer_server(
    peer: str,
    tls_files: dict[str, str],
    payload: tuple[Path, str],
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    port = free_port()
    out = tmp_path / "out.bin"
    with out.open("wb") as sink:
        # stdin stays open: s_server and ncat end the connection at the end of theirs.
        server = subprocess.Popen(
            server_argv(peer, port, tls_files), stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.DEVNULL
        )
    procs.append(server)
    wait_for_listener_on(port)
    with payload[0].open("rb") as source:
        client = subprocess.run(
            [WIRECAT, "connect", "--tls", "--cafile", tls_files["ca"], "--send-only", "127.0.0.1", str(port)],
            stdin=source,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    server.wait(TIMEOUT)
    assert server.stdin is not None
    server.stdin.close()
    assert client.returncode in (0, 8), client.stderr  # a peer that closes TCP without close_notify: 8
    assert file_sha256(out) == payload[1]


@pytest.mark.parametrize("peer", PEER_NAMES)
def test_peer_client_to_wirecat_server(
    peer: str,
    tls_files: dict[str, str],
    payload: tuple[Path, str],
    procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    port = free_port()
    out = tmp_path / "out.bin"
    with out.open("wb") as sink, (tmp_path / "server.err").open("wb") as log:
        server = subprocess.Popen(
            [
                WIRECAT,
                "listen",
                "--recv-only",  # no close_notify at once (stdin is empty): ncat and socat would end there
                "--tls",
                "--cert",
                tls_files["cert"],
                "--key",
                tls_files["key"],
                "127.0.0.1",
                str(port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=log,
        )
    procs.append(server)
    wait_for_listener_on(port)
    with payload[0].open("rb") as source:
        client = subprocess.run(
            client_argv(peer, port, tls_files),
            stdin=source,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    server.wait(TIMEOUT)
    assert client.returncode == 0, client.stderr + (tmp_path / "server.err").read_bytes()
    assert file_sha256(out) == payload[1], (tmp_path / "server.err").read_text()
    # socat may end TCP without close_notify (8); ncat --send-only never reads
    # the session tickets a TLS 1.3 server sends, and its close with them
    # unread is a reset (7), after all the data.
    assert server.returncode in ((0, 7, 8) if peer == "ncat" else (0, 8))


def test_half_close_reply_wirecat_both_ends(procs: list[subprocess.Popen[bytes]]) -> None:
    """The server answers only after the client's end of input (close_notify); the reply arrives whole."""
    port = free_port()
    server = subprocess.Popen(
        [WIRECAT, "listen", "--tls", "--sh-exec", "sha256sum", "127.0.0.1", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    procs.append(server)
    assert server.stderr is not None
    pin = ""
    for _ in range(10):
        line = server.stderr.readline().decode()
        if "made for this run: " in line:
            pin = line.split("made for this run: ")[1].strip()
            break
    wait_for_listener_on(port)
    data = os.urandom(5 << 20)
    client = subprocess.run(
        [WIRECAT, "connect", "--tls", "--pin", pin, "127.0.0.1", str(port)],
        input=data,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert client.returncode == 0, client.stderr
    assert client.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert server.wait(TIMEOUT) == 0


def wait_for_listener_on(port: int) -> None:
    wait_for_listener(Endpoint("tcp", "127.0.0.1", port), timeout=30)
