"""Ctrl-C exits 130 quietly; a closed stdout (``| head``) ends quietly with exit 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading

import pytest

from tests.conftest import WIRECAT
from tests.integration.test_connect import (
    TIMEOUT,
    Peer,
    _listener_with_full_backlog,
    hold_open,
    read_until,
    wait_exit,
)
from wirecat.testing import read_line_matching

#: A chunk the flooding peers send over and over.
CHUNK = os.urandom(64 * 1024)


def flood(conn: socket.socket, peer: Peer) -> None:
    """Send until the other side goes away."""
    try:
        while not peer.release.is_set():
            conn.sendall(CHUNK)
    except OSError:
        pass  # the reader left: that is the point


# -- SIGINT / SIGTERM ----------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_connect_interrupted_during_a_session(spawn, signum: int, code: int) -> None:
    with Peer(hold_open(b"hi\n")) as peer:
        client = spawn(WIRECAT, "connect", "127.0.0.1", str(peer.port))
        # In the session (or about to be): the peer has accepted us.
        assert peer.accepted.wait(TIMEOUT)
        client.popen.send_signal(signum)
        exit_code, _, err = wait_exit(client)
    assert exit_code == code, err
    assert err == b"", err  # quietly: no traceback, no message


def test_connect_interrupted_while_connecting(spawn) -> None:
    found = _listener_with_full_backlog()
    if found is None:
        pytest.skip("this kernel answers SYNs even with a full accept queue: connect never hangs")
    listener, held = found
    try:
        client = spawn(
            WIRECAT, "connect", "-v", "127.0.0.1", str(listener.getsockname()[1]), stdin=subprocess.DEVNULL
        )
        read_line_matching(client.popen.stderr, r"connecting to 127\.0\.0\.1:", timeout=TIMEOUT)
        client.popen.send_signal(signal.SIGINT)
        code, _, err = wait_exit(client)
    finally:
        for sock in held:
            sock.close()
        listener.close()
    assert code == 130, err
    assert b"Traceback" not in err, err


@pytest.mark.parametrize("keep_open", [False, True])
def test_listen_interrupted_while_waiting(spawn, keep_open: bool) -> None:
    server = spawn(WIRECAT, "listen", *(["-k"] if keep_open else []), "0")
    server.listening_port()
    server.popen.send_signal(signal.SIGINT)
    code, _, err = wait_exit(server)
    assert code == 130, err
    assert err == b"", err


def test_listen_interrupted_with_a_client(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-v", "0")
    port = server.listening_port()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.sendall(b"ping\n")
        read_line_matching(server.popen.stderr, r"connection from 127\.0\.0\.1:\d+$", timeout=TIMEOUT)
        server.popen.send_signal(signal.SIGINT)
        code, _, err = wait_exit(server)
    assert code == 130, err
    assert err == b"", err  # nothing after the connection line: no traceback, no summary


# -- closed stdout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stdin_open", [False, True])
def test_connect_with_stdout_closed_early(spawn, stdin_open: bool) -> None:
    with Peer(flood) as peer:
        client = spawn(
            WIRECAT,
            "connect",
            "127.0.0.1",
            str(peer.port),
            stdin=subprocess.PIPE if stdin_open else subprocess.DEVNULL,
        )
        assert client.popen.stdout is not None
        assert len(read_until(client.popen.stdout, lambda seen: len(seen) >= 5)) >= 5
        client.popen.stdout.close()  # what `| head -c 5` does once it has its bytes
        code = client.popen.wait(timeout=TIMEOUT)
        err = client.popen.stderr.read()
    assert code == 0, err
    assert err == b"", err


#: wirecat's own exit status, not head's, is the pipeline's.
PIPELINE = '"$0" connect 127.0.0.1 "$1" </dev/null | head -c 5; exit "${PIPESTATUS[0]}"'


def test_connect_into_head_in_a_shell_pipeline() -> None:
    with Peer(flood) as peer:
        result = subprocess.run(
            ["bash", "-c", PIPELINE, WIRECAT, str(peer.port)],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == 5
    assert result.stderr == b""


@pytest.mark.parametrize("keep_open", [False, True])
def test_listen_with_stdout_closed_early(spawn, keep_open: bool) -> None:
    server = spawn(WIRECAT, "listen", *(["-k"] if keep_open else []), "0")
    port = server.listening_port()
    stop = threading.Event()

    def client_flood() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
                while not stop.is_set():
                    sock.sendall(CHUNK)
        except OSError:
            pass  # the listener went away: expected

    sender = threading.Thread(target=client_flood, daemon=True)
    sender.start()
    try:
        assert server.popen.stdout is not None
        read_until(server.popen.stdout, lambda seen: len(seen) >= 5)
        server.popen.stdout.close()
        code = server.popen.wait(timeout=TIMEOUT)
        err = server.popen.stderr.read()
    finally:
        stop.set()
        sender.join(TIMEOUT)
    assert code == 0, err
    assert err == b"", err
