"""``wirecat echo``, ``chat`` and ``broker`` through the installed command."""

from __future__ import annotations

import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import WIRECAT, random_payload, recv_to_eof, run_wirecat, sha256
from wirecat.framing import LengthPrefixed
from wirecat.testing import read_line_matching

TIMEOUT = 10.0

pytestmark = pytest.mark.timeout(90)


def client(port: int, host: str = "127.0.0.1", *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    if rcvbuf is not None:  # before connect(), so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT)
    sock.connect((host, port))
    return sock


class LineReader:
    """Whole lines from a socket, with a deadline on each."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""

    def line(self) -> bytes:
        while b"\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"EOF; pending {self.pending!r}")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def until(self, wanted: bytes) -> list[bytes]:
        """Lines up to and including ``wanted``."""
        seen = []
        while (line := self.line()) != wanted:
            seen.append(line)
        return [*seen, line]


def start(spawn, *args: str):
    server = spawn(WIRECAT, *args)
    return server, server.listening_port()


def stop(server, sig: int = signal.SIGTERM) -> tuple[int, bytes]:
    server.popen.send_signal(sig)
    code, _, err = server.finish(timeout=TIMEOUT * 2)
    return code, err


# -- echo -------------------------------------------------------------------------------------


def test_echo_raw_returns_every_byte_and_sigterm_exits_0(spawn) -> None:
    server, port = start(spawn, "echo", "0")
    payload = random_payload(4 << 20, seed=11)
    with client(port) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        assert sha256(recv_to_eof(sock)) == sha256(payload)
    code, err = stop(server)
    assert code == 0, err


def test_echo_lines_accepts_crlf_and_answers_lf(spawn) -> None:
    server, port = start(spawn, "echo", "0", "--lines")
    with client(port) as sock:
        sock.sendall(b"one\r\ntwo\nthree")
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b"one\ntwo\nthree\n"
    assert stop(server)[0] == 0


def test_echo_length_prefixed(spawn) -> None:
    server, port = start(spawn, "echo", "0", "--length-prefixed")
    framing = LengthPrefixed()
    frames = [b"", b"\x00\n\r", random_payload(100_000, seed=2)]
    with client(port) as sock:
        sock.sendall(b"".join(framing.encode(f) for f in frames))
        sock.shutdown(socket.SHUT_WR)
        echoed = recv_to_eof(sock)
    assert framing.feed(echoed) == frames
    assert stop(server)[0] == 0


def test_echo_verbose_logs_one_line_per_connection(spawn) -> None:
    server, port = start(spawn, "echo", "0", "-v")
    with client(port) as sock:
        sock.sendall(b"12345")
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b"12345"
    match = read_line_matching(
        server.popen.stderr, r"closed after .* received 5 B, sent 5 B; the peer closed"
    )
    assert match
    code, err = stop(server, signal.SIGINT)
    assert code == 0
    assert b"shutting down" in err


def test_echo_oversize_line_closes_that_client_only(spawn) -> None:
    server, port = start(spawn, "echo", "0", "--lines", "--max-line", "10")
    with client(port) as good, client(port) as bad:
        bad.sendall(b"ok\n" + b"x" * 50)
        assert recv_to_eof(bad) == b"ok\n"
        good.sendall(b"fine\n")
        assert LineReader(good).line() == b"fine"
    # Shown without -v: a client broke the protocol.
    assert read_line_matching(server.popen.stderr, r"line longer than 10 bytes", timeout=TIMEOUT)
    assert stop(server)[0] == 0


def test_echo_idle_timeout(spawn) -> None:
    server, port = start(spawn, "echo", "0", "--idle-timeout", "0.5", "-v")
    with client(port) as sock:
        started = time.monotonic()
        assert recv_to_eof(sock) == b""
        assert 0.4 < time.monotonic() - started < TIMEOUT
    assert read_line_matching(server.popen.stderr, r"idle for 0.5 s")
    assert stop(server)[0] == 0


def test_echo_max_conns_refuse_when_full(spawn) -> None:
    server, port = start(spawn, "echo", "0", "--max-conns", "1", "--refuse-when-full")
    with client(port) as first:
        first.sendall(b"a")
        assert first.recv(1) == b"a"
        with client(port) as second:
            assert recv_to_eof(second) == b""
    assert read_line_matching(server.popen.stderr, r"refused 127\.0\.0\.1:\d+: at the limit of 1 connection$")
    assert stop(server)[0] == 0


def test_echo_deny_closes_at_once(spawn) -> None:
    server, port = start(spawn, "echo", "0", "--deny", "127.0.0.0/8", "-v")
    with client(port) as sock:
        assert recv_to_eof(sock) == b""
    assert read_line_matching(server.popen.stderr, r"refused 127\.0\.0\.1:\d+: not allowed")
    assert stop(server)[0] == 0


def test_echo_on_ipv6(spawn) -> None:
    server = spawn(WIRECAT, "echo", "::1", "0")
    match = read_line_matching(server.popen.stderr, r"listening on \[::1\]:(\d+)$")
    with client(int(match.group(1)), "::1") as sock:
        sock.sendall(b"six")
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b"six"
    assert stop(server)[0] == 0


def test_echo_on_a_unix_socket_removes_its_file(spawn, tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    server = spawn(WIRECAT, "echo", f"unix:{path}")
    read_line_matching(server.popen.stderr, r"listening on unix:")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(str(path))
        sock.sendall(b"local")
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b"local"
    assert stop(server)[0] == 0
    assert not path.exists()


def test_sigterm_lets_a_message_in_flight_finish(spawn) -> None:
    server, port = start(spawn, "echo", "0", "--length-prefixed", "-v")
    wire = LengthPrefixed().encode(b"half now, half after the signal")
    with client(port) as idle, client(port) as busy:
        busy.sendall(wire[:9])
        idle.sendall(LengthPrefixed().encode(b"ping"))
        # Served, so both are accepted (busy connected first).
        assert idle.recv(100) == LengthPrefixed().encode(b"ping")
        server.popen.send_signal(signal.SIGTERM)
        assert recv_to_eof(idle) == b""  # idle between frames: closed at once
        busy.sendall(wire[9:])
        assert recv_to_eof(busy) == wire  # the frame in flight was finished and echoed
    code, _, err = server.finish(timeout=TIMEOUT)
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["echo"], "PORT"),
        (["echo", "0", "--max-conns", "0"], "bad number"),
        (["echo", "0", "--lines", "--length-prefixed"], "not allowed with"),
        (["echo", "0", "--idle-timeout", "soon"], "bad number of seconds"),
        (["chat", "0", "--max-queue", "0"], "bad number"),
        (["echo", "udp:127.0.0.1:0"], "not UDP"),
        (["echo", "0", "--length-prefixed", "--max-frame", "5000000000"], "at most 4294967295"),
    ],
)
def test_bad_server_flags_are_usage_errors(args: list[str], message: str) -> None:
    result = run_wirecat(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("wirecat: ")
    assert message in lines[0]


def test_echo_on_the_stdlib_loop_says_nothing_per_write_to_a_client_that_reset(spawn, monkeypatch) -> None:
    """20,000 lines then a reset: no line of warning per echo write into the dead connection."""
    monkeypatch.setenv("WIRECAT_LOOP", "asyncio")
    server, port = start(spawn, "echo", "--lines", "0")
    for _ in range(3):
        sock = client(port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(b"x\n" * 20000)
        sock.close()  # RST right behind the lines
    with client(port) as sock:  # still serving, and the others are done
        sock.sendall(b"alive\n")
        assert sock.recv(100) == b"alive\n"
    code, err = stop(server)
    assert code == 0
    assert err.count(b"socket.send() raised exception") <= 3, err[-500:]


def test_address_in_use_is_exit_5(spawn) -> None:
    server, port = start(spawn, "echo", "0")
    result = run_wirecat("echo", str(port))
    assert result.returncode == 5
    assert b"already in use" in result.stderr
    assert stop(server)[0] == 0


# -- chat -------------------------------------------------------------------------------------


def test_chat_names_messages_nick_who_and_leaving(spawn) -> None:
    server, port = start(spawn, "chat", "0")
    with client(port) as a_sock, client(port) as b_sock:
        a, b = LineReader(a_sock), LineReader(b_sock)
        assert a.line().startswith(b"* welcome, user1")
        assert a.line() == b"* user2 joined"
        assert b.line().startswith(b"* welcome, user2")
        a_sock.sendall(b"hello\r\n")
        assert b.line() == b"<user1> hello"
        b_sock.sendall(b"/nick bob\n")
        assert a.line() == b"* user2 is now bob"
        assert b.line() == b"* user2 is now bob"
        a_sock.sendall(b"/nick bob\n/nick no spaces\n/who\n")
        assert a.line() == b"* the name bob is taken"
        assert a.line().startswith(b"* a name is")
        assert a.line() == b"* here: user1, bob"
        b_sock.sendall(b"/quit\n")
        assert b.line() == b"* bye"
        assert a.line() == b"* bob left"
    assert stop(server)[0] == 0


def test_chat_members_are_told_the_server_is_shutting_down(spawn) -> None:
    """On SIGTERM each member gets one line saying why its stream ends (it used to see
    the others leave, "* user2 left", and then end of stream)."""
    server, port = start(spawn, "chat", "0")
    with client(port) as a_sock, client(port) as b_sock:
        a, b = LineReader(a_sock), LineReader(b_sock)
        a.until(b"* user2 joined")
        assert b.line().startswith(b"* welcome, user2")
        code, err = stop(server)
        assert code == 0, err
        for reader in (a, b):
            assert reader.pending + recv_to_eof(reader.sock) == b"* the server is shutting down; bye\n"


def test_chat_a_stalled_client_never_stalls_the_others(spawn) -> None:
    """One client stops reading; the others still get every line, in order."""
    server, port = start(spawn, "chat", "0", "--max-queue", "262144", "-v")
    count, batch = 100_000, 500  # ~9 MB in all: more than the kernel buffers for the stalled client
    with client(port) as talker_sock, client(port) as listener_sock, client(port, rcvbuf=4096) as stalled:
        talker, listener = LineReader(talker_sock), LineReader(listener_sock)
        talker.until(b"* user3 joined")
        listener.until(b"* user3 joined")
        # stalled never reads from here on. The talker sends in batches that
        # the listener keeps up with, so only the stalled client falls behind.
        lines = [b"message %06d %s" % (n, b"." * 80) for n in range(count)]
        received: list[bytes] = []
        notices: list[bytes] = []
        for start_at in range(0, count, batch):
            talker_sock.sendall(b"".join(line + b"\n" for line in lines[start_at : start_at + batch]))
            while len(received) < start_at + batch:
                line = listener.line()
                (notices if line.startswith(b"* ") else received).append(line)
        assert received == [b"<user1> " + line for line in lines]
        assert notices == [b"* user3 was disconnected: not reading"]
        assert read_line_matching(server.popen.stderr, r"disconnected: not reading")
        stalled.close()
    assert stop(server)[0] == 0


# -- broker -----------------------------------------------------------------------------------


def test_broker_relays_to_everyone_but_the_sender(spawn) -> None:
    server, port = start(spawn, "broker", "0", "-v")
    with client(port) as a, client(port) as b, client(port) as c:
        payload = random_payload(256 << 10, seed=5)  # under the 1 MiB queue: b is read after c
        # Wait until the broker has all three: a message from c reaches a and b.
        c.sendall(b"ready")
        assert a.recv(5) == b"ready"
        assert b.recv(5) == b"ready"
        sending = threading.Thread(target=a.sendall, args=(payload,))
        sending.start()
        for receiver in (b, c):
            got = bytearray()
            while len(got) < len(payload) and (chunk := receiver.recv(1 << 20)):
                got += chunk
            assert sha256(bytes(got)) == sha256(payload)
        sending.join(TIMEOUT)
        a.shutdown(socket.SHUT_WR)
        assert recv_to_eof(a) == b""  # the sender got nothing of its own back
    assert stop(server)[0] == 0


def test_broker_disconnects_a_client_that_does_not_read(spawn) -> None:
    server, port = start(spawn, "broker", "0")
    with client(port) as sender, client(port) as reader, client(port, rcvbuf=4096) as stalled:
        stalled.sendall(b"!")
        assert reader.recv(1) == b"!"
        assert sender.recv(1) == b"!"  # all three are registered
        # 32 MiB, more than the kernel buffers and the 1 MiB queue of the stalled
        # client, sent in batches that the reader keeps up with.
        payload = random_payload(32 << 20, seed=9)
        batch = 256 << 10
        got = bytearray()
        for start_at in range(0, len(payload), batch):
            sender.sendall(payload[start_at : start_at + batch])
            while len(got) < min(start_at + batch, len(payload)) and (chunk := reader.recv(1 << 20)):
                got += chunk
        assert sha256(bytes(got)) == sha256(payload)
        assert read_line_matching(server.popen.stderr, r"disconnected: not reading")
    assert stop(server)[0] == 0
