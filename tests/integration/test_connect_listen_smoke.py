"""Smoke test: the installed wirecat listens, connects and moves bytes both ways."""

from __future__ import annotations

from tests.conftest import WIRECAT


def test_listen_then_connect_both_ways(spawn) -> None:
    server = spawn(WIRECAT, "listen", "0")
    port = server.listening_port()
    client = spawn(WIRECAT, "connect", "127.0.0.1", str(port))
    # The server's reply is on its stdin; both half-close at end of stdin.
    assert server.popen.stdin is not None
    server.popen.stdin.write(b"from server\n")
    server.popen.stdin.close()
    code, out, err = client.finish(b"from client\n")
    assert (code, out) == (0, b"from server\n"), err
    code, out, err = server.finish()
    assert (code, out) == (0, b"from client\n"), err
