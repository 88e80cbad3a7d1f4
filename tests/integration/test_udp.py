"""UDP and Unix datagram sessions through the installed ``wirecat``: ``connect -u``, ``listen -u``.

Peers played by the test itself are plain Python datagram sockets on
loopback. Every wait is on data, a line or an event, with a deadline.
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

import pytest

from tests.conftest import WIRECAT, random_payload, run_wirecat, sha256
from wirecat.limits import MAX_DATAGRAM
from wirecat.testing import free_port, read_line_matching

#: Generous: two cores shared with other test runs.
DEADLINE = 20.0


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@contextmanager
def _peer(host: str, port: int | None = None) -> Iterator[socket.socket]:
    """A datagram socket on ``host`` (port 0), connected to ``port`` if given."""
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    try:
        sock.bind((host, 0))
        if port is not None:
            sock.connect((host, port))
        sock.settimeout(DEADLINE)
        yield sock
    finally:
        sock.close()


def _nothing_waiting(sock: socket.socket) -> bool:
    """True if no datagram is queued on ``sock`` right now."""
    sock.setblocking(False)
    try:
        sock.recv(65536)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(DEADLINE)
    return False


def _read_exactly(stream: IO[bytes] | None, size: int, timeout: float = DEADLINE) -> bytes:
    """Read ``size`` bytes from a process's pipe, with a deadline."""
    assert stream is not None
    fd = stream.fileno()
    got = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(got) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"read {len(got)} of {size} bytes; got {got[-200:]!r}")
            chunk = os.read(fd, size - len(got))
            if not chunk:
                raise TimeoutError(f"stream ended after {len(got)} of {size} bytes: {got[-200:]!r}")
            got += chunk
    return got


def _stdin_write(proc: object, data: bytes) -> None:
    stdin = proc.popen.stdin  # type: ignore[attr-defined]
    assert stdin is not None
    stdin.write(data)
    stdin.flush()


def _stop(proc: object) -> tuple[int, bytes, bytes]:
    """End a listener that would run on (``-k``) by SIGTERM, by its PID; collect its output."""
    proc.popen.terminate()  # type: ignore[attr-defined]
    return proc.finish()  # type: ignore[attr-defined,no-any-return]


@dataclass
class _Responder:
    """A one-query UDP server in a thread: receives, calls ``before_reply``, replies."""

    port: int
    queries: list[bytes] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    replied: threading.Event = field(default_factory=threading.Event)


@contextmanager
def _responder(
    reply: bytes, *, before_reply: Callable[[], None] = lambda: None, host: str = "127.0.0.1"
) -> Iterator[_Responder]:
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(0.2)  # only so the thread notices `stop`; each wait is bounded by DEADLINE
    state = _Responder(port=sock.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        deadline = time.monotonic() + DEADLINE
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                data, sender = sock.recvfrom(65536)
            except TimeoutError:
                continue
            state.queries.append(data)
            state.received.set()
            before_reply()
            sock.sendto(reply, sender)
            state.replied.set()
            return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(timeout=DEADLINE)
        sock.close()


# -- round trips --------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_round_trip_connect_to_listen(spawn, host: str) -> None:
    server = spawn(WIRECAT, "listen", "-u", "--udp-idle", "2", host, "0")
    port = server.listening_port()
    # The listener reads stdin only once it has a peer; the reply waits in the pipe.
    _stdin_write(server, b"pong\n")
    server.popen.stdin.close()
    result = run_wirecat("connect", "-u", "--wait-reply", "30", host, str(port), stdin=b"ping\n")
    assert (result.returncode, result.stdout) == (0, b"pong\n"), result.stderr
    # Without -k the listener ends when its peer has been silent for --udp-idle.
    code, out, err = server.finish()
    assert (code, out) == (0, b"ping\n"), err


def test_unix_datagram_round_trip(spawn, tmp_path) -> None:
    path = tmp_path / "dgram.sock"
    server = spawn(WIRECAT, "listen", "-u", "-U", str(path), "--udp-idle", "2")
    read_line_matching(server.popen.stderr, r"listening on unix:", timeout=DEADLINE)
    _stdin_write(server, b"pong\n")
    server.popen.stdin.close()
    result = run_wirecat("connect", "-u", "-U", str(path), "--wait-reply", "30", stdin=b"ping\n")
    assert (result.returncode, result.stdout) == (0, b"pong\n"), result.stderr
    code, out, err = server.finish()
    assert (code, out) == (0, b"ping\n"), err
    # The listener removed its socket file; the client's reply address was
    # abstract (Linux) or removed, so nothing is left behind.
    assert list(tmp_path.iterdir()) == []


# -- the end of a client's session ------------------------------------------------


def test_wait_reply_gets_a_late_reply() -> None:
    # The responder answers a second after the query: far beyond the default
    # 0.1 s linger, well within --wait-reply.
    with _responder(b"answer\n", before_reply=lambda: threading.Event().wait(1.0)) as responder:
        started = time.monotonic()
        result = run_wirecat(
            "connect", "-u", "--wait-reply", "60", "127.0.0.1", str(responder.port), stdin=b"query\n"
        )
        elapsed = time.monotonic() - started
    assert (result.returncode, result.stdout) == (0, b"answer\n"), result.stderr
    assert responder.queries == [b"query\n"]
    # It exits once answered instead of sitting out all 60 s.
    assert elapsed < 60


def test_without_wait_reply_the_client_does_not_wait_for_a_late_reply() -> None:
    client_done = threading.Event()
    # The reply leaves only after the client has exited.
    with _responder(b"too late\n", before_reply=lambda: client_done.wait(DEADLINE)) as responder:
        result = run_wirecat("connect", "-u", "127.0.0.1", str(responder.port), stdin=b"query\n")
        client_done.set()
        assert responder.replied.wait(DEADLINE)
    assert (result.returncode, result.stdout) == (0, b""), result.stderr
    assert responder.queries == [b"query\n"]


def test_verbose_client_says_what_happened() -> None:
    with _responder(b"answer\n") as responder:
        result = run_wirecat(
            "connect", "-u", "-v", "--wait-reply", "30", "127.0.0.1", str(responder.port), stdin=b"q\n"
        )
    assert result.returncode == 0, result.stderr
    err = result.stderr.decode()
    assert f"UDP to 127.0.0.1:{responder.port} from 127.0.0.1:" in err
    assert re.search(r"done: sent 2 B, received 7 B in [\d.]+ s; 1 datagram out, 1 in", err), err


def test_idle_timeout_ends_a_silent_client() -> None:
    with _responder(b"") as responder:
        result = run_wirecat("connect", "-u", "--recv-only", "-i", "0.3", "127.0.0.1", str(responder.port))
    assert result.returncode == 6, result.stderr
    assert b"no datagram either way for 0.3 s (-i)" in result.stderr


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "flags"),
    [
        ("127.0.0.1", ()),
        ("::1", ()),
        ("127.0.0.1", ("--wait-reply", "60")),  # the ICMP error ends the wait at once
        ("127.0.0.1", ("--send-only",)),
    ],
)
def test_nothing_listening_is_a_clear_error(host: str, flags: tuple[str, ...]) -> None:
    port = free_port(host, udp=True)
    started = time.monotonic()
    result = run_wirecat("connect", "-u", *flags, host, str(port), stdin=b"anyone?\n")
    assert result.returncode == 4, result.stderr
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert f"wirecat: nothing is listening on UDP {where}".encode() in result.stderr
    assert b"Traceback" not in result.stderr
    assert time.monotonic() - started < 60


def test_nothing_at_a_unix_datagram_path(tmp_path) -> None:
    result = run_wirecat("connect", "-u", "-U", str(tmp_path / "none.sock"), stdin=b"x")
    assert result.returncode == 4, result.stderr
    assert b"no socket at unix:" in result.stderr


def test_a_refusing_first_address_falls_back_to_the_next() -> None:
    # A name with two addresses, the first dead ([::1] on a free port): what
    # was sent is sent again to the second. The resolver is replaced in a child
    # Python, since loopback names here resolve to one address only.
    dead = free_port("::1", udp=True)
    with _responder(b"from v4\n") as responder:
        script = textwrap.dedent(
            f"""
            import socket, sys
            import wirecat.apps.udp_connect as udp
            from wirecat.resolve import SocketAddress
            udp.resolve = lambda *a, **k: [
                SocketAddress(socket.AF_INET6, ("::1", {dead}, 0, 0)),
                SocketAddress(socket.AF_INET, ("127.0.0.1", {responder.port})),
            ]
            from wirecat.cli.run import run
            sys.exit(run(["connect", "-u", "-v", "--wait-reply", "30", "somehost", "{responder.port}"]))
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", script], input=b"hello\n", capture_output=True, timeout=60, check=False
        )
    assert (result.returncode, result.stdout) == (0, b"from v4\n"), result.stderr
    assert responder.queries == [b"hello\n"]
    assert f"trying 127.0.0.1:{responder.port}".encode() in result.stderr


# -- large input ----------------------------------------------------------------


def _collect(sock: socket.socket, total: int) -> list[bytes]:
    """Receive datagrams until ``total`` bytes came, with a deadline."""
    datagrams: list[bytes] = []
    size = 0
    deadline = time.monotonic() + DEADLINE
    while size < total:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(256 * 1024)
        datagrams.append(data)
        size += len(data)
    return datagrams


@pytest.mark.parametrize(
    ("payload", "flags", "expected"),
    [
        (random_payload(200_000, seed=7), (), None),
        # -C doubles a read of newlines past the datagram limit: it must be split.
        (b"\n" * MAX_DATAGRAM, ("-C",), b"\r\n" * MAX_DATAGRAM),
    ],
    ids=["random", "crlf-expanded"],
)
def test_large_input_is_split_into_datagrams_without_loss(
    payload: bytes, flags: tuple[str, ...], expected: bytes | None
) -> None:
    expected = payload if expected is None else expected
    with _peer("127.0.0.1") as receiver:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        port = receiver.getsockname()[1]
        datagrams: list[bytes] = []
        thread = threading.Thread(target=lambda: datagrams.extend(_collect(receiver, len(expected))))
        thread.start()
        result = run_wirecat("connect", "-u", *flags, "127.0.0.1", str(port), stdin=payload)
        thread.join(timeout=DEADLINE + 5)
    assert result.returncode == 0, result.stderr
    assert sha256(b"".join(datagrams)) == sha256(expected)
    assert len(datagrams) >= 2
    assert max(len(d) for d in datagrams) <= MAX_DATAGRAM


def test_large_input_reaches_a_wirecat_listener(spawn) -> None:
    payload = random_payload(200_000, seed=11)
    server = spawn(WIRECAT, "listen", "-u", "--udp-idle", "2", "0", stdin=subprocess.DEVNULL)
    port = server.listening_port()
    result = run_wirecat("connect", "-u", "127.0.0.1", str(port), stdin=payload)
    assert result.returncode == 0, result.stderr
    code, out, err = server.finish()
    assert code == 0, err
    assert sha256(out) == sha256(payload)


# -- the listener and its peers ------------------------------------------------------


def test_keep_open_serves_several_peers_and_answers_the_most_recent(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-u", "-k", "-v", "0")
    port = server.listening_port()
    with _peer("127.0.0.1", port) as a, _peer("127.0.0.1", port) as b:
        a.send(b"a1\n")
        assert _read_exactly(server.popen.stdout, 3) == b"a1\n"
        b.send(b"b1\n")
        assert _read_exactly(server.popen.stdout, 3) == b"b1\n"
        _stdin_write(server, b"to b\n")  # b spoke last
        assert b.recv(65536) == b"to b\n"
        a.send(b"a2\n")
        assert _read_exactly(server.popen.stdout, 3) == b"a2\n"
        _stdin_write(server, b"to a\n")  # now a did
        assert a.recv(65536) == b"to a\n"  # the first a gets: it never had "to b"
        assert _nothing_waiting(b)
        a_name, b_name = (f"127.0.0.1:{s.getsockname()[1]}" for s in (a, b))
        # The listener never connect()ed to a peer: both still get through.
        b.send(b"b2\n")
        assert _read_exactly(server.popen.stdout, 3) == b"b2\n"
    _code, _out, err = _stop(server)
    assert f"new peer {a_name}".encode() in err
    assert f"new peer {b_name}".encode() in err


def test_keep_open_expires_a_silent_peer(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-u", "-k", "-v", "--udp-idle", "0.5", "0")
    port = server.listening_port()
    with _peer("127.0.0.1", port) as a:
        a.send(b"hello\n")
        name = re.escape(f"127.0.0.1:{a.getsockname()[1]}")
        read_line_matching(server.popen.stderr, rf"new peer {name}", timeout=DEADLINE)
        read_line_matching(server.popen.stderr, rf"peer {name} expired after 0.5 s", timeout=DEADLINE)


def test_one_peer_mode_ignores_other_peers(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-u", "-v", "0")
    port = server.listening_port()
    with _peer("127.0.0.1", port) as a, _peer("127.0.0.1", port) as b:
        a.send(b"a1\n")
        b.send(b"b1\n")
        a.send(b"a2\n")
        # One socket queue, read in order: had b1 been printed, it would be here.
        assert _read_exactly(server.popen.stdout, 6) == b"a1\na2\n"
        _stdin_write(server, b"reply\n")
        assert a.recv(65536) == b"reply\n"
        b_name = f"127.0.0.1:{b.getsockname()[1]}"
    _code, out, err = _stop(server)
    assert out == b""
    assert f"ignored datagram from {b_name}".encode() in err


def test_one_peer_mode_names_each_ignored_sender_once_without_v(spawn) -> None:
    """Datagrams dropped for another peer's sake are said, -v or not, once per sender."""
    server = spawn(WIRECAT, "listen", "-u", "0")
    port = server.listening_port()
    with _peer("127.0.0.1", port) as a, _peer("127.0.0.1", port) as b, _peer("127.0.0.1", port) as c:
        a.send(b"a1\n")
        assert _read_exactly(server.popen.stdout, 3) == b"a1\n"  # a is the peer now
        for _ in range(3):
            b.send(b"b\n")
        c.send(b"c\n")
        a.send(b"a2\n")
        # One socket queue, read in order: b's and c's datagrams were handled before this.
        assert _read_exactly(server.popen.stdout, 3) == b"a2\n"
        a_name, b_name, c_name = (f"127.0.0.1:{s.getsockname()[1]}" for s in (a, b, c))
    _code, out, err = _stop(server)
    assert out == b""
    lines = err.decode().splitlines()
    for name in (b_name, c_name):
        line = f"wirecat: ignored datagram from {name}: serving {a_name} only (-k serves many peers)"
        assert lines.count(line) == 1, lines
    assert len([line for line in lines if "ignored datagram" in line]) == 2, lines


def test_a_flood_of_senders_is_not_named_one_by_one(spawn) -> None:
    """30 other senders at once: 10 named (wirecat.notices' burst), the rest not one line each."""
    server = spawn(WIRECAT, "listen", "-u", "0")
    port = server.listening_port()
    with _peer("127.0.0.1", port) as a:
        a.send(b"a1\n")
        assert _read_exactly(server.popen.stdout, 3) == b"a1\n"
        others = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(30)]
        try:
            for sock in others:
                sock.sendto(b"x\n", ("127.0.0.1", port))
            a.send(b"a2\n")
            assert _read_exactly(server.popen.stdout, 3) == b"a2\n"  # the 30 were handled first
        finally:
            for sock in others:
                sock.close()
    _code, _out, err = _stop(server)
    assert len([line for line in err.decode().splitlines() if "ignored datagram" in line]) == 10, err


def test_deny_drops_a_peer(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-u", "-k", "-v", "--deny", "127.0.0.1", "0")
    port = server.listening_port()
    with _peer("127.0.0.1", port) as denied:
        denied.send(b"let me in\n")
        name = re.escape(f"127.0.0.1:{denied.getsockname()[1]}")
        read_line_matching(
            server.popen.stderr, rf"dropped datagram from {name}: not allowed", timeout=DEADLINE
        )
        # With no admitted peer stdin is not read, so this goes nowhere.
        _stdin_write(server, b"secret\n")
        _code, out, _err = _stop(server)
        assert out == b""
        assert _nothing_waiting(denied)


def test_listen_w_gives_up_without_a_datagram(spawn) -> None:
    result = run_wirecat("listen", "-u", "-w", "0.3", "0")
    assert result.returncode == 6, result.stderr
    assert b"no datagram arrived within 0.3 s (-w)" in result.stderr


def test_listener_output_closed_ends_quietly(spawn) -> None:
    # stdout closed (| head): the listener ends without a traceback.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        server = spawn(WIRECAT, "listen", "-u", "-k", "0", stdout=write_end)
    finally:
        os.close(write_end)
    port = server.listening_port()
    with _peer("127.0.0.1", port) as a:
        a.send(b"into a closed pipe\n")
        code, _out, err = server.finish()
    assert code == 0, err
    assert b"Traceback" not in err
