"""socat, ncat and OpenBSD nc as clients of ``wirecat echo`` and ``wirecat chat``.

Each peer sends a payload (NUL bytes, CRLF, invalid UTF-8), half-closes as it
does at end of stdin, and must get every byte back before wirecat closes.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import WIRECAT, random_payload, sha256
from tests.interop.peers import PEERS, Endpoint, file_sha256

FINISH = 60.0
SIZE = 4 << 20


def start(spawn, *args: str):
    server = spawn(WIRECAT, *args)
    return server, server.listening_port()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("peer_name", list(PEERS))
def test_peer_client_of_echo(spawn, tmp_path: Path, peer_name: str, host: str) -> None:
    peer = PEERS[peer_name]
    payload = random_payload(SIZE, seed=21)
    source, sink = tmp_path / "in.bin", tmp_path / "out.bin"
    source.write_bytes(payload)
    server, port = start(spawn, "echo", host, "0")
    with open(source, "rb") as data, open(sink, "wb") as out:
        client = spawn(*peer.connect_argv(Endpoint("tcp", host, port), "duplex"), stdin=data, stdout=out)
        code, _, err = client.finish(timeout=FINISH)
    assert code == 0, err
    assert file_sha256(sink) == sha256(payload)
    server.popen.send_signal(signal.SIGTERM)
    assert server.finish(timeout=FINISH)[0] == 0


@pytest.mark.parametrize("peer_name", list(PEERS))
def test_peer_client_of_chat(spawn, peer_name: str) -> None:
    """A peer joins the chat, renames itself and asks who is here."""
    peer = PEERS[peer_name]
    server, port = start(spawn, "chat", "0")
    argv = peer.connect_argv(Endpoint("tcp", "127.0.0.1", port), "duplex")
    result = subprocess.run(
        argv, input=b"/nick peer\r\n/who\r\n/quit\r\n", capture_output=True, timeout=FINISH, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[1:] == ["* user1 is now peer", "* here: peer", "* bye"]
    server.popen.send_signal(signal.SIGTERM)
    assert server.finish(timeout=FINISH)[0] == 0
