"""``wirecat relay``: bytes both ways, half-close, resets, limits, PROXY headers, UDP."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import WIRECAT, random_payload, recv_to_eof, sha256
from wirecat.protocol.proxy import ProxyHeader, ProxyHeaderReader, encode_v1
from wirecat.testing import free_port, read_line_matching

TIMEOUT = 20.0
MiB = 1 << 20

pytestmark = pytest.mark.timeout(120)


# -- targets: small servers in threads -------------------------------------------------------


class Target:
    """A listening socket served by ``handle(conn)`` in a thread per client."""

    def __init__(
        self,
        handle: Callable[[socket.socket], None],
        family: int = socket.AF_INET,
        path: str = "",
        *,
        sock: socket.socket | None = None,
    ) -> None:
        if sock is None:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.bind(path or ("127.0.0.1", 0))
            sock.listen(512)
        self.sock = sock
        self.handle = handle
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        name = self.sock.getsockname()
        return f"unix:{name}" if isinstance(name, str) else f"127.0.0.1:{name[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            thread = threading.Thread(target=self._one, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(TIMEOUT)
            try:
                self.handle(conn)
            except BaseException as exc:
                self.errors.append(exc)

    def close(self) -> None:
        self.sock.close()
        for thread in self.threads:
            thread.join(TIMEOUT)


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


@contextmanager
def running_relay(spawn, *args: str) -> Iterator[tuple[object, int]]:
    proc = spawn(WIRECAT, "relay", *args)
    port = proc.listening_port()
    yield proc, port
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
        code, _, err = proc.finish(timeout=TIMEOUT)
        assert code == 0, err


def client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return sock


# -- bytes ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_100_mib_both_ways_at_once(spawn) -> None:
    """Client and target each send 100 MiB while receiving the other's: SHA-256 both."""
    size = 100 * MiB
    up, down = random_payload(size, seed=31), random_payload(size, seed=32)
    received_by_target: list[str] = []

    def target_side(conn: socket.socket) -> None:
        sender = threading.Thread(target=lambda: (conn.sendall(down), conn.shutdown(socket.SHUT_WR)))
        sender.start()
        digest = hashlib.sha256()
        while chunk := conn.recv(1 << 20):
            digest.update(chunk)
        sender.join(TIMEOUT)
        received_by_target.append(digest.hexdigest())

    target = Target(target_side)
    with running_relay(spawn, "0", target.address) as (_, port), client(port) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(up), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        digest = hashlib.sha256()
        while chunk := sock.recv(1 << 20):
            digest.update(chunk)
        sender.join(TIMEOUT)
    target.close()
    assert digest.hexdigest() == sha256(down)
    assert received_by_target == [sha256(up)]
    assert not target.errors


@pytest.mark.parametrize("sides", ["tcp-unix", "unix-tcp", "unix-unix"])
def test_unix_sockets_on_either_side(spawn, tmp_path: Path, sides: str) -> None:
    listen_unix, target_unix = (side == "unix" for side in sides.split("-"))
    target = Target(echo, socket.AF_UNIX, str(tmp_path / "target.sock")) if target_unix else Target(echo)
    relay_path = tmp_path / "relay.sock"
    payload = random_payload(4 * MiB, seed=33)
    proc = spawn(WIRECAT, "relay", f"unix:{relay_path}" if listen_unix else "0", target.address)
    if listen_unix:
        read_line_matching(proc.popen.stderr, r"listening on unix:")
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(TIMEOUT)
        sock.connect(str(relay_path))
    else:
        sock = client(proc.listening_port())
    with sock:
        sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        assert sha256(recv_to_eof(sock)) == sha256(payload)
        sender.join(TIMEOUT)
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.finish(timeout=TIMEOUT)[0] == 0
    assert not relay_path.exists()
    target.close()


def test_200_concurrent_clients(spawn) -> None:
    target = Target(echo)
    count = 200
    with running_relay(spawn, "0", target.address) as (_, port):
        socks = [client(port) for _ in range(count)]  # all open at once
        for number, sock in enumerate(socks):
            sock.sendall(b"client %d\n" % number)
        for number, sock in enumerate(socks):
            expected = b"client %d\n" % number
            got = b""
            while len(got) < len(expected):
                got += sock.recv(100)
            assert got == expected
        for sock in socks:
            sock.close()
    assert target.accepted == count
    target.close()


def test_half_close_request_then_reply_through_the_relay(spawn) -> None:
    """The client sends, half-closes, and gets the whole reply the target sends only after EOF."""

    def answer_after_eof(conn: socket.socket) -> None:
        request = recv_to_eof(conn)
        conn.sendall(b"got %d bytes\n" % len(request) + request.upper())

    target = Target(answer_after_eof)
    with running_relay(spawn, "0", target.address, "-v") as (proc, port), client(port) as sock:
        sock.sendall(b"abc" * 100_000)
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b"got 300000 bytes\n" + b"ABC" * 100_000
        line = read_line_matching(proc.popen.stderr, r"-> 127\.0\.0\.1:\d+: sent (.*), received (.*) in")
        assert line.group(1) == "300.0 kB"
    target.close()


def test_a_target_that_is_down_closes_the_client_and_the_relay_goes_on(spawn) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port_down = probe.getsockname()[1]  # nothing listens here once closed
    with running_relay(spawn, "0", f"127.0.0.1:{port_down}") as (proc, port):
        with client(port) as sock:
            started = time.monotonic()
            assert recv_to_eof(sock) == b""  # closed at once
            assert time.monotonic() - started < 5
        assert read_line_matching(proc.popen.stderr, r"connection refused by 127\.0\.0\.1")
        # Now the target comes up on that port: the relay serves.
        target = Target(echo, sock=socket.create_server(("127.0.0.1", port_down)))
        with client(port) as sock:
            sock.sendall(b"back up")
            assert sock.recv(10) == b"back up"
        target.close()


def test_connect_timeout(spawn) -> None:
    """A target that never answers the handshake: the client is closed after --connect-timeout."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        # Fill the accept queue: further handshakes to it are dropped (Linux), so connects hang.
        fillers = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(full.getsockname())
            fillers.append(filler)
        with running_relay(spawn, "0", f"127.0.0.1:{full.getsockname()[1]}", "--connect-timeout", "0.5") as (
            proc,
            port,
        ):
            with client(port) as sock:
                started = time.monotonic()
                assert recv_to_eof(sock) == b""
                assert 0.4 < time.monotonic() - started < 10
            assert read_line_matching(proc.popen.stderr, r"timed out after 0\.5 s")
        for filler in fillers:
            filler.close()


def test_a_client_reset_resets_the_target(spawn) -> None:
    outcome: list[str] = []
    got_data = threading.Event()

    def target_side(conn: socket.socket) -> None:
        conn.recv(100)
        got_data.set()
        try:
            while conn.recv(65536):
                pass
            outcome.append("eof")
        except ConnectionResetError:
            outcome.append("reset")

    target = Target(target_side)
    with running_relay(spawn, "0", target.address, "-v") as (proc, port):
        sock = client(port)
        sock.sendall(b"some data")
        assert got_data.wait(TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
        assert read_line_matching(
            proc.popen.stderr, r"the client reset the connection; the target was reset too"
        )
    target.close()
    assert outcome == ["reset"]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_bytes_that_come_with_a_reset_arrive_then_the_reset(spawn, monkeypatch, loop: str) -> None:
    """The target answers and resets at once: every byte, then the reset, reach the client.

    uvloop stops watching a socket whose error is left pending after a
    callback; a relay that read the bytes but not the reset behind them hung
    with the client never told (and kept the connection's descriptors).
    """
    monkeypatch.setenv("WIRECAT_LOOP", loop)
    answer = b"D" * 1000

    def read_until_reset(sock: socket.socket, received: bytearray) -> None:
        while chunk := sock.recv(65536):
            received += chunk

    def answer_and_reset(conn: socket.socket) -> None:
        conn.recv(100)
        conn.sendall(answer)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Target._one closes it: a reset right behind the answer

    target = Target(answer_and_reset)
    with running_relay(spawn, "0", target.address, "-v") as (proc, port):
        for _ in range(20):
            with client(port) as sock:
                sock.sendall(b"request")
                received = bytearray()
                with pytest.raises(ConnectionResetError):
                    read_until_reset(sock, received)
                assert received == answer
            ending = r"received 1000 B .*the target reset the connection; the client was reset too"
            assert read_line_matching(proc.popen.stderr, ending)
    target.close()


def test_an_urgent_byte_neither_stalls_nor_loses_what_follows(spawn) -> None:
    """splice() stops at TCP's urgent mark; the relay steps over it (the byte is dropped, as by read())."""
    received: list[bytes] = []

    def collect(conn: socket.socket) -> None:
        received.append(recv_to_eof(conn))

    target = Target(collect)
    with running_relay(spawn, "0", target.address) as (_, port), client(port) as sock:
        sock.sendall(b"before")
        sock.send(b"U", socket.MSG_OOB)
        sock.sendall(b"after")
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b""
    target.close()
    assert received == [b"beforeafter"]


def test_idle_timeout_closes_a_silent_connection(spawn) -> None:
    target = Target(echo)
    with running_relay(spawn, "0", target.address, "--idle-timeout", "0.5", "-v") as (proc, port):
        with client(port) as sock:
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
            started = time.monotonic()
            assert recv_to_eof(sock) == b""
            assert 0.4 < time.monotonic() - started < 1.5  # one timeout after the last byte
        assert read_line_matching(proc.popen.stderr, r"idle for 0\.5 s")
    target.close()


def test_max_conns_and_deny(spawn) -> None:
    target = Target(echo)
    with running_relay(spawn, "0", target.address, "--max-conns", "1", "--refuse-when-full") as (proc, port):
        with client(port) as first:
            first.sendall(b"x")
            assert first.recv(1) == b"x"
            with client(port) as second:
                assert recv_to_eof(second) == b""
        assert read_line_matching(
            proc.popen.stderr, r"refused 127\.0\.0\.1:\d+: at the limit of 1 connection$"
        )
    with running_relay(spawn, "0", target.address, "--deny", "127.0.0.1") as (_, port), client(port) as sock:
        assert recv_to_eof(sock) == b""
    target.close()


def test_sigterm_lets_open_connections_drain(spawn) -> None:
    target = Target(echo)
    proc = spawn(WIRECAT, "relay", "0", target.address, "--drain-timeout", "10")
    port = proc.listening_port()
    with client(port) as sock:
        sock.sendall(b"before")
        assert sock.recv(6) == b"before"
        proc.popen.send_signal(signal.SIGTERM)
        sock.sendall(b"after the signal")  # still relayed while draining
        assert sock.recv(16) == b"after the signal"
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b""
    code, _, err = proc.finish(timeout=TIMEOUT)
    assert code == 0, err
    target.close()


def test_relay_trace_shows_the_splices(spawn) -> None:
    target = Target(echo)
    proc = spawn(WIRECAT, "relay", "--trace", "0", target.address)
    port = proc.listening_port()
    with client(port) as sock:
        sock.sendall(b"traced")
        assert sock.recv(6) == b"traced"
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b""
    proc.popen.send_signal(signal.SIGTERM)
    code, _, err = proc.finish(timeout=TIMEOUT)
    assert code == 0
    text = err.decode()
    assert "accept() -> fd" in text
    assert "splice(fd" in text
    assert "-> 6 bytes" in text
    assert "shutdown(SHUT_WR)" in text
    target.close()


# -- PROXY protocol ---------------------------------------------------------------------------


def proxy_reading_target(headers: list[ProxyHeader]) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        reader = ProxyHeaderReader()
        header = None
        while header is None:
            header = reader.feed(conn.recv(4096))
        headers.append(header)
        conn.sendall(b"rest:" + reader.rest + recv_to_eof(conn))

    return handle


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_tells_the_target_who_the_client_is(spawn, version: str) -> None:
    headers: list[ProxyHeader] = []
    target = Target(proxy_reading_target(headers))
    with (
        running_relay(spawn, "0", target.address, "--proxy-protocol", version) as (_, port),
        client(port) as sock,
    ):
        sock.sendall(b"payload")
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b"rest:payload"
        client_port = sock.getsockname()[1]
    target.close()
    assert headers == [ProxyHeader(int(version[1]), "TCP4", "127.0.0.1", client_port, "127.0.0.1", port)]


def test_accepted_proxy_header_is_passed_on(spawn) -> None:
    """A relay behind another proxy: the client's header is read and passed on as v2."""
    headers: list[ProxyHeader] = []
    target = Target(proxy_reading_target(headers))
    with (
        running_relay(spawn, "0", target.address, "--accept-proxy-protocol", "--proxy-protocol", "v2") as (
            _,
            port,
        ),
        client(port) as sock,
    ):
        sock.sendall(encode_v1("198.51.100.7", 40000, "203.0.113.9", 443) + b"data after the header")
        sock.shutdown(socket.SHUT_WR)
        assert recv_to_eof(sock) == b"rest:data after the header"
    target.close()
    assert headers == [ProxyHeader(2, "TCP4", "198.51.100.7", 40000, "203.0.113.9", 443)]


@pytest.mark.parametrize("bad", [b"GET / HTTP/1.1\r\n\r\n", b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n"])
def test_a_malformed_proxy_header_closes_that_connection(spawn, bad: bytes) -> None:
    target = Target(echo)
    with running_relay(spawn, "0", target.address, "--accept-proxy-protocol") as (proc, port):
        with client(port) as sock:
            sock.sendall(bad)
            assert recv_to_eof(sock) == b""
        assert read_line_matching(proc.popen.stderr, r"PROXY")
        assert target.accepted == 0  # the target never saw it
    target.close()


# -- UDP --------------------------------------------------------------------------------------


def test_udp_relay_keeps_a_session_per_client(spawn) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(TIMEOUT)
        stop = threading.Event()

        def udp_echo() -> None:
            while not stop.is_set():
                try:
                    data, sender = server.recvfrom(65535)
                except (TimeoutError, OSError):
                    return
                if not data and stop.is_set():
                    return
                server.sendto(b"echo:" + data, sender)

        thread = threading.Thread(target=udp_echo, daemon=True)
        thread.start()
        target = f"udp:127.0.0.1:{server.getsockname()[1]}"
        with running_relay(spawn, "udp:0", target, "-v") as (proc, port):
            clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
            for number, sock in enumerate(clients):
                sock.settimeout(TIMEOUT)
                sock.sendto(b"from %d" % number, ("127.0.0.1", port))
            for number, sock in enumerate(clients):
                assert sock.recvfrom(100)[0] == b"echo:from %d" % number
            assert read_line_matching(proc.popen.stderr, r"new UDP session")
            for sock in clients:
                sock.close()
        stop.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", server.getsockname())  # wakes the blocked recvfrom
        thread.join(TIMEOUT)


def test_udp_relay_carries_the_largest_ipv6_datagram_whole(spawn) -> None:
    """65,527 bytes, IPv6's largest UDP payload (IPv4's is 65,507), both ways, not cut."""
    largest = random_payload(65527, seed=7)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as target:
        target.bind(("::1", 0))
        target.settimeout(TIMEOUT)
        target_address = f"udp:[::1]:{target.getsockname()[1]}"
        with (
            running_relay(spawn, "udp:[::1]:0", target_address) as (_, port),
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock,
        ):
            sock.settimeout(TIMEOUT)
            sock.sendto(largest, ("::1", port))
            data, relay_side = target.recvfrom(70000)
            assert data == largest
            target.sendto(data, relay_side)
            assert sock.recv(70000) == largest


def test_udp_and_tcp_cannot_be_mixed() -> None:
    from tests.conftest import run_wirecat

    result = run_wirecat("relay", "udp:0", "127.0.0.1:9")
    assert result.returncode == 2
    assert b"use udp: on both sides" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-4", "[::1]:0", "127.0.0.1:9"], b"::1 is an IPv6 address but -4 was given"),
        (["-6", "udp:127.0.0.1:0", "udp:[::1]:9"], b"127.0.0.1 is an IPv4 address but -6 was given"),
    ],
)
def test_one_family_applies_to_both_sides(args: list[str], message: bytes) -> None:
    """``-4``/``-6`` hold for the listening side and for a UDP target, as for a TCP target;
    a listening address of the other family is a usage error (issue 12), not "no such address"."""
    from tests.conftest import run_wirecat

    result = run_wirecat("relay", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_a_target_given_as_an_address_keeps_its_own_family(spawn) -> None:
    """``relay -6 udp:0 udp:127.0.0.1:PORT``: -6 picks the listening side (``[::1]``); an
    address target says its own family (it used to be refused: "'127.0.0.1' has no IPv6 address")."""
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.settimeout(TIMEOUT)
    proc = spawn(WIRECAT, "relay", "-6", "udp:0", f"udp:127.0.0.1:{target.getsockname()[1]}")
    assert proc.popen.stderr is not None
    port = int(read_line_matching(proc.popen.stderr, r"listening on \[::1\]:(\d+)$").group(1))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"through", ("::1", port))
        assert target.recvfrom(100)[0] == b"through"
    target.close()


# -- the library ------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_library_relay_in_process(loop: str) -> None:
    import asyncio

    import wirecat

    factory = asyncio.new_event_loop
    if loop == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop

    async def echo_handler(conn: wirecat.Connection) -> None:
        await conn.handle_frames(conn.write)

    async def main() -> None:
        async with await wirecat.serve(echo_handler, "127.0.0.1:0") as target:
            relay = await wirecat.relay("127.0.0.1:0", target.address)
            async with relay, wirecat.connect(relay.address, framing=wirecat.Lines()) as conn:
                await conn.send(b"through the relay")
                assert await conn.recv() == b"through the relay"
                conn.send_eof()
                assert await conn.recv() is None

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(main(), 30))


def _stderr_lines_until(proc: object, pattern: str, count: int) -> list[str]:
    """Every stderr line up to the ``count``-th that matches ``pattern`` (with a deadline each)."""
    lines: list[str] = []
    matched = 0
    while matched < count:
        line = read_line_matching(proc.popen.stderr, r".*", timeout=TIMEOUT).group(0)  # type: ignore[attr-defined]
        lines.append(line)
        matched += bool(re.search(pattern, line))
    return lines


def test_udp_relay_names_a_client_over_the_limit_once_without_v(spawn) -> None:
    """Each datagram of a client over --max-conns is dropped; it is said once, -v or not."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        target.settimeout(TIMEOUT)
        target_address = f"udp:127.0.0.1:{target.getsockname()[1]}"
        with (
            running_relay(spawn, "udp:0", target_address, "--max-conns", "1") as (proc, port),
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as over,
        ):
            first.sendto(b"first", ("127.0.0.1", port))
            assert target.recvfrom(100)[0] == b"first"  # the one session
            for _ in range(3):
                over.sendto(b"over", ("127.0.0.1", port))
            first.sendto(b"again", ("127.0.0.1", port))
            # One listening socket, read in order: the three were handled before this.
            assert target.recvfrom(100)[0] == b"again"
            over_name = f"127.0.0.1:{over.getsockname()[1]}"
            proc.popen.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
            code, _, err = proc.finish(timeout=TIMEOUT)  # type: ignore[attr-defined]
    assert code == 0, err
    named = [line for line in err.decode().splitlines() if over_name in line]
    assert len(named) == 1, err
    assert named[0].startswith(f"wirecat: refused {over_name}: "), named


def test_udp_relay_says_the_target_refused_a_datagram_once_per_client(spawn) -> None:
    """Nothing listens on the target: each datagram is dropped (ICMP port unreachable);
    a warning says it once per client, -v or not, where it used to be said under -v only."""
    target = f"udp:127.0.0.1:{free_port(udp=True)}"
    with (
        running_relay(spawn, "udp:0", target, "-v") as (proc, port),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        lines: list[str] = []
        for _ in range(3):
            sock.sendto(b"anyone?", ("127.0.0.1", port))
            # Under -v each datagram's session is said to end: wait for it before the next.
            lines += _stderr_lines_until(proc, r"ended: the target refused", 1)
        name = f"127.0.0.1:{sock.getsockname()[1]}"
    warning = f"wirecat: datagram from {name} dropped: nothing is listening on UDP {target[4:]}"
    assert lines.count(warning) == 1, lines


def test_udp_relay_warns_of_a_refusing_target_without_v(spawn) -> None:
    target = f"udp:127.0.0.1:{free_port(udp=True)}"
    with (
        running_relay(spawn, "udp:0", target) as (proc, port),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        sock.sendto(b"anyone?", ("127.0.0.1", port))
        assert read_line_matching(proc.popen.stderr, r"dropped: nothing is listening on UDP", timeout=TIMEOUT)  # type: ignore[attr-defined]


def test_udp_relay_warns_once_per_client_of_replies_it_cannot_send() -> None:
    """A target's reply that cannot be sent on (a full send buffer: ENOBUFS) is said once
    per client, -v or not (it was an info note per datagram). In-process: the failure is
    injected at the listening socket's sendto."""
    import asyncio
    import errno

    import wirecat
    from wirecat import events

    class FailingSend:
        """The relay's listening socket, whose sendto always fails (and is counted)."""

        def __init__(self, sock: socket.socket, tried: asyncio.Event) -> None:
            self.sock = sock
            self.tried = tried
            self.attempts = 0

        def sendto(self, data: object, address: object) -> int:
            self.attempts += 1
            if self.attempts == 3:
                self.tried.set()
            raise OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))

        def __getattr__(self, name: str) -> object:
            return getattr(self.sock, name)

    async def main() -> list[events.Note]:
        notes: list[events.Note] = []
        unsubscribe = events.subscribe(lambda e: notes.append(e) if isinstance(e, events.Note) else None)
        loop = asyncio.get_running_loop()
        tried = asyncio.Event()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
            target.bind(("127.0.0.1", 0))
            target.setblocking(False)

            def answer() -> None:
                data, sender = target.recvfrom(100)
                target.sendto(data, sender)

            loop.add_reader(target.fileno(), answer)
            relay = await wirecat.relay("udp:127.0.0.1:0", f"udp:127.0.0.1:{target.getsockname()[1]}")
            real = relay._listener  # type: ignore[union-attr]
            relay._listener = FailingSend(real, tried)  # type: ignore[union-attr]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    port = int(relay.address.rsplit(":", 1)[1])
                    for n in range(3):
                        client.sendto(b"%d" % n, ("127.0.0.1", port))
                    await asyncio.wait_for(tried.wait(), TIMEOUT)  # all three replies failed
                    name = f"127.0.0.1:{client.getsockname()[1]}"
            finally:
                loop.remove_reader(target.fileno())
                relay._listener = real  # type: ignore[union-attr]
                relay.close()
                unsubscribe()
        return [note for note in notes if note.level == "warning" and name in note.text]

    warnings = asyncio.run(main())
    assert len(warnings) == 1, warnings
    assert warnings[0].text.startswith("reply to 127.0.0.1:"), warnings
    assert warnings[0].text.endswith(" dropped: no buffer space available"), warnings
