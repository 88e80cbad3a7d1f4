"""Regressions found in review: closed standard fds, `>>` stdout, -k half-close
and -w, a live Unix listener probed by a second one, -s family, python -m."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import WIRECAT, Proc, random_payload, run_wirecat, sha256
from tests.integration.test_connect import (
    TIMEOUT,
    Peer,
    assert_one_error_line,
    recv_all,
    serve_reply_after_eof,
)
from wirecat.testing import read_line_matching


def test_closed_stdin_is_empty_input_and_still_sends_fin() -> None:
    # `wirecat connect ... <&-`: the server replies only after our FIN.
    with Peer(serve_reply_after_eof(b"reply\n")) as peer:
        result = subprocess.run(
            f"exec {WIRECAT} connect 127.0.0.1 {peer.port} <&-",
            shell=True,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert peer.result() == b""
    assert (result.returncode, result.stdout, result.stderr) == (0, b"reply\n", b"")


def test_closed_stdout_is_not_a_traceback() -> None:
    with Peer(serve_reply_after_eof(b"reply\n")) as peer:
        result = subprocess.run(
            f"echo x | exec {WIRECAT} connect 127.0.0.1 {peer.port} >&-",
            shell=True,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert peer.result() == b"x\n"
    # The reply had nowhere to go: said in one line (exit 9), never dropped in silence.
    assert result.returncode == 9, result.stderr
    assert b"Traceback" not in result.stderr
    assert "cannot write standard output: it is closed" in assert_one_error_line(result.stderr)


def test_keep_open_listener_with_closed_stdin_serves_clients(spawn) -> None:
    server = subprocess.Popen(
        f"exec {WIRECAT} listen -k 0 <&-", shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        port = Proc(server).listening_port()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.settimeout(TIMEOUT)
            client.sendall(b"hello\n")
            assert recv_all(client) == b""  # empty stdin: FIN at once, no crash
    finally:
        server.kill()
        _, err = server.communicate(timeout=TIMEOUT)
    assert b"Traceback" not in err
    assert server.returncode is not None


def test_appending_stdout_receives_everything(tmp_path, spawn) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"old\n")
    payload = random_payload(3 * 1024 * 1024, seed=11)
    with log.open("ab") as out:
        server = spawn(WIRECAT, "listen", "0", stdin=subprocess.DEVNULL, stdout=out)
        port = server.listening_port()
        sender = run_wirecat("connect", "127.0.0.1", str(port), stdin=payload)
        code, _, err = server.finish()
    assert (sender.returncode, code) == (0, 0), (sender.stderr, err)
    assert sha256(log.read_bytes()) == sha256(b"old\n" + payload)


@pytest.mark.parametrize("mode", [[], ["-k"], ["-u"]])
def test_full_disk_on_stdout_is_an_error_not_silence(spawn, mode: list[str]) -> None:
    """One client, the -k hub and UDP alike: exit 9 and one line, never a traceback."""
    with open("/dev/full", "wb") as full:
        server = spawn(WIRECAT, "listen", *mode, "0", stdin=subprocess.DEVNULL, stdout=full)
        port = server.listening_port()
        run_wirecat("connect", *(["-u"] if "-u" in mode else []), "127.0.0.1", str(port), stdin=b"data\n")
        code, _, err = server.finish()
    assert code == 9, err
    assert "cannot write standard output: no space left on device" in assert_one_error_line(err)


def test_unreadable_stdin_is_exit_9_for_udp_and_the_keep_open_hub(tmp_path, spawn) -> None:
    """A write-only stdin is an error said once (exit 9), not a quiet end of input."""
    write_only = tmp_path / "write-only"
    write_only.touch()
    with write_only.open("wb") as stdin:
        run = subprocess.run(
            [WIRECAT, "connect", "-u", "127.0.0.1", "9"], stdin=stdin, capture_output=True, timeout=TIMEOUT
        )
        assert run.returncode == 9, run.stderr
        assert "cannot read standard input: bad file descriptor" in assert_one_error_line(run.stderr)
        server = spawn(WIRECAT, "listen", "-k", "0", stdin=stdin)
        port = server.listening_port()
        # the hub reads stdin once a client is in
        client = socket.socket()
        try:
            # The hub may fail and reset us before connect() has looked at the
            # socket's error: that reset is the hub's own end, not the test's.
            with contextlib.suppress(ConnectionResetError):
                client.connect(("127.0.0.1", port))
            code, _, err = server.finish()
        finally:
            client.close()
    assert code == 9, err
    assert "cannot read standard input: bad file descriptor" in assert_one_error_line(err)


@pytest.mark.parametrize("stdout", ["pipe", "file"])
def test_an_urgent_byte_neither_stalls_nor_loses_what_follows(tmp_path, stdout: str) -> None:
    """splice() stops at TCP's urgent mark and says EAGAIN forever; the pump steps over it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        out_path = tmp_path / "out"
        with out_path.open("wb") as out_file:
            client = subprocess.Popen(
                [WIRECAT, "connect", "127.0.0.1", str(port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE if stdout == "pipe" else out_file,
                stderr=subprocess.PIPE,
            )
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"before")
                conn.send(b"U", socket.MSG_OOB)
                conn.sendall(b"after")
            out, err = client.communicate(timeout=TIMEOUT)
        assert client.returncode == 0, err
        assert (out if stdout == "pipe" else out_path.read_bytes()) == b"beforeafter"


def test_keep_open_send_only_notices_clients_that_leave(spawn) -> None:
    """--send-only still reads (and drops) what clients send, so their leaving frees the slot."""
    server = spawn(WIRECAT, "listen", "-k", "--send-only", "--max-conns", "2", "-v", "0")
    port = server.listening_port()
    assert server.popen.stderr is not None
    for _ in range(4):  # twice the limit, one after another
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(b"dropped\n")
            read_line_matching(server.popen.stderr, r"connection from")
        read_line_matching(server.popen.stderr, r"gone \(client closed\)")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        read_line_matching(server.popen.stderr, r"connection from .*\(1 connected\)")
        assert server.popen.stdin is not None
        server.popen.stdin.write(b"to the one left\n")
        server.popen.stdin.close()
        assert recv_all(client) == b"to the one left\n"
    server.popen.send_signal(signal.SIGTERM)
    _, out, err = server.finish()
    assert out == b"", err  # what the clients sent was dropped


def test_keep_open_sends_fin_after_end_of_stdin(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-k", "0")
    port = server.listening_port()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.settimeout(TIMEOUT)
        assert server.popen.stdin is not None
        server.popen.stdin.write(b"hello\n")
        server.popen.stdin.close()
        assert recv_all(client) == b"hello\n"  # returns: the hub sent FIN after the data


def test_keep_open_recv_only_never_sends_fin(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-k", "--recv-only", "0", stdin=subprocess.DEVNULL)
    port = server.listening_port()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.settimeout(0.5)
        client.sendall(b"log line\n")
        try:
            data = client.recv(1)
        except TimeoutError:
            data = None  # no FIN within the wait: what a log sink should do
        assert data is None


def test_keep_open_wait_for_first_client(spawn) -> None:
    result = run_wirecat("listen", "-k", "-w", "0.5", "0")
    assert result.returncode == 6
    assert "no client connected within 0.5 s" in result.stderr.decode()


def test_second_listener_does_not_steal_the_live_ones_client(tmp_path, spawn) -> None:
    path = tmp_path / "live.sock"
    first = spawn(WIRECAT, "listen", f"unix:{path}", stdin=subprocess.DEVNULL)
    assert first.popen.stderr is not None
    read_line_matching(first.popen.stderr, "listening on")
    second = run_wirecat("listen", f"unix:{path}")
    assert second.returncode == 5
    assert first.popen.poll() is None  # the probe was not taken as its one client
    result = run_wirecat("connect", f"unix:{path}", stdin=b"still here\n")
    assert result.returncode == 0, result.stderr
    code, out, _ = first.finish()
    assert (code, out) == (0, b"still here\n")
    assert not path.exists()


def test_source_family_mismatch_is_named() -> None:
    # A usage error since issue 12 (was exit 3, "'127.0.0.1' has no IPv6 address"): no lookup can change it.
    result = run_wirecat("connect", "-s", "::1", "127.0.0.1", "9")
    assert result.returncode == 2
    assert "source address '::1' is an IPv6 address" in assert_one_error_line(result.stderr)


def test_python_dash_m_wirecat() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wirecat", "--version"], capture_output=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0
    assert result.stdout.decode().startswith("wirecat ")
    env = {**os.environ}
    result = subprocess.run(
        [sys.executable, "-m", "wirecat", "connect", "127.0.0.1", "0"],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )
    assert result.returncode == 2  # port 0 cannot be connected to: a usage error, not a traceback
    assert_one_error_line(result.stderr)
