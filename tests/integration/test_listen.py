"""``wirecat listen``: bind, one client or many (-k), limits, access lists, restarts."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time

import pytest

from tests.conftest import WIRECAT, random_payload, sha256
from tests.integration.test_connect import (
    TIMEOUT,
    assert_one_error_line,
    read_until,
    recv_all,
    recv_exactly,
    run_with_threads,
)
from wirecat.testing import read_line_matching


def connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A Python client, with a deadline on every call."""
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def wait_stderr(proc, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
    """The next stderr line of ``proc`` matching ``pattern`` (earlier lines are dropped)."""
    return read_line_matching(proc.popen.stderr, pattern, timeout=timeout)


def is_closed_at_once(sock: socket.socket) -> bool:
    """True if the server closed ``sock`` without sending anything."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# -- binding ---------------------------------------------------------------------------------


def test_default_bind_is_loopback_and_port_0_is_printed(spawn) -> None:
    server = spawn(WIRECAT, "listen", "0")
    match = wait_stderr(server, r"^wirecat: listening on (\S+)$")
    host, port = match.group(1).rsplit(":", 1)
    assert host == "127.0.0.1"
    assert 0 < int(port) < 65536
    with connect(int(port)) as client:
        client.sendall(b"hello\n")
        client.shutdown(socket.SHUT_WR)
        assert server.popen.stdin is not None
        server.popen.stdin.close()
        assert recv_all(client) == b""
    code, out, err = server.finish()
    assert (code, out) == (0, b"hello\n"), err


def test_listening_lines_are_the_only_stderr_without_verbose(spawn) -> None:
    server = spawn(WIRECAT, "listen", "0")
    port = server.listening_port()
    with connect(port) as client:
        client.shutdown(socket.SHUT_WR)
        code, _, err = server.finish(b"")
        assert recv_all(client) == b""
    assert code == 0
    assert err == b"", err  # the listening line was read already: nothing else


@pytest.mark.parametrize("argv", [["[::1]:0"], ["::1", "0"], ["-6", "::1", "0"], ["-6", "0"]])
def test_ipv6_listener(spawn, argv: list[str]) -> None:
    server = spawn(WIRECAT, "listen", *argv)
    match = wait_stderr(server, r"listening on \[::1\]:(\d+)$")
    with connect(int(match.group(1)), "::1") as client:
        client.sendall(b"over v6\n")
        client.shutdown(socket.SHUT_WR)
        code, out, err = server.finish(b"reply v6\n")
        assert recv_all(client) == b"reply v6\n"
    assert (code, out) == (0, b"over v6\n"), err


def test_host_and_port_in_one_word(spawn) -> None:
    server = spawn(WIRECAT, "listen", "127.0.0.1:0")
    port = server.listening_port()
    with connect(port) as client:
        client.shutdown(socket.SHUT_WR)
        code, _, err = server.finish(b"x")
        assert recv_all(client) == b"x"
    assert code == 0, err


@pytest.mark.parametrize("argv", [["-l", "-p", "0"], ["-lvp", "0"], ["-l", "0"], ["-lp0"]])
def test_netcat_listen_spellings(spawn, argv: list[str]) -> None:
    server = spawn(WIRECAT, *argv)
    port = server.listening_port()
    with connect(port) as client:
        client.sendall(b"nc\n")
        client.shutdown(socket.SHUT_WR)
        if "-lvp" in argv:
            wait_stderr(server, r"connection from 127\.0\.0\.1:\d+")
        code, out, err = server.finish(b"ok\n")
        assert recv_all(client) == b"ok\n"
    assert (code, out) == (0, b"nc\n"), err


# -- one client --------------------------------------------------------------------------------


def test_one_client_then_exit_and_no_more_listening(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-v", "0")
    port = server.listening_port()
    with connect(port) as first:
        wait_stderr(server, r"connection from 127\.0\.0\.1:\d+")
        # One client by default: the listening socket is closed once it is taken.
        with pytest.raises(ConnectionRefusedError):
            connect(port).close()
        first.sendall(b"only one\n")
        first.shutdown(socket.SHUT_WR)
        code, out, err = server.finish(b"bye\n")
        assert recv_all(first) == b"bye\n"
    assert (code, out) == (0, b"only one\n"), err
    done = [line for line in err.decode().splitlines() if "done:" in line]
    assert len(done) == 1, err
    assert "sent 4 B, received 9 B" in done[0], done


def test_listen_binary_both_ways_with_wirecat_connect(spawn) -> None:
    to_server = random_payload(6 * 1024 * 1024 + 1, seed=21)
    to_client = random_payload(3 * 1024 * 1024 + 5, seed=22)
    server = spawn(WIRECAT, "listen", "0")
    port = server.listening_port()
    # The listener's stdin is fed and its stdout drained by threads, so both
    # processes stream at once and neither waits on a full pipe.
    received: list[bytes] = []
    threads = [
        threading.Thread(target=_feed_and_close, args=(server, to_client), daemon=True),
        threading.Thread(target=lambda: received.append(server.popen.stdout.read()), daemon=True),
    ]
    for thread in threads:
        thread.start()
    code, out, err = run_with_threads([WIRECAT, "connect", "127.0.0.1", str(port)], to_server)
    assert code == 0, err
    assert sha256(out) == sha256(to_client)
    for thread in threads:
        thread.join(TIMEOUT)
    assert server.popen.wait(TIMEOUT) == 0
    assert sha256(received[0]) == sha256(to_server)


def _feed_and_close(proc, data: bytes) -> None:
    assert proc.popen.stdin is not None
    try:
        proc.popen.stdin.write(data)
    finally:
        proc.popen.stdin.close()


def test_accept_timeout(spawn) -> None:
    started = time.monotonic()
    server = spawn(WIRECAT, "listen", "-w", "1", "0")
    server.listening_port()
    code, _, err = server.finish(timeout=TIMEOUT)
    assert code == 6, err
    line = assert_one_error_line(err)
    assert "-w" in line, line
    assert time.monotonic() - started >= 1.0


def test_listen_idle_timeout(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-i", "1", "0")
    port = server.listening_port()
    with connect(port):
        code = server.popen.wait(TIMEOUT)  # stdin stays open: only -i can end it
    err = server.popen.stderr.read()
    assert code == 6, err
    assert "-i" in assert_one_error_line(err)


def test_listen_crlf(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-C", "0")
    port = server.listening_port()
    with connect(port) as client:
        client.shutdown(socket.SHUT_WR)
        code, _, err = server.finish(b"a\r\nb\n\x00\xff")
        assert recv_all(client) == b"a\r\nb\r\n\x00\xff"
    assert code == 0, err


# -- many clients (-k) --------------------------------------------------------------------------


def test_keep_open_three_clients_each_way(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-k", "-v", "0")
    port = server.listening_port()
    clients = []
    try:
        for n in range(1, 4):
            clients.append(connect(port))
            wait_stderr(server, rf"\({n} connected\)")
        # stdin reaches every connected client.
        assert server.popen.stdin is not None
        server.popen.stdin.write(b"to all\n")
        server.popen.stdin.flush()
        for client in clients:
            assert recv_exactly(client, 7) == b"to all\n"
        # What each client sends reaches stdout.
        for i, client in enumerate(clients):
            client.sendall(b"from client %d\n" % i)
        assert server.popen.stdout is not None
        wanted = [b"from client %d\n" % i for i in range(3)]
        out = read_until(server.popen.stdout, lambda seen: all(w in seen for w in wanted))
        assert sorted(out.splitlines(keepends=True)) == wanted
        # A client leaving does not end the listener, and the others still get stdin.
        clients.pop(0).close()
        wait_stderr(server, r"gone \(client closed\)")
        server.popen.stdin.write(b"again\n")
        server.popen.stdin.flush()
        for client in clients:
            assert recv_exactly(client, 6) == b"again\n"
        assert server.popen.poll() is None
    finally:
        for client in clients:
            client.close()


def test_keep_open_end_of_stdin_is_each_clients_fin_and_they_may_still_send(spawn) -> None:
    # The hub's ends (it is a broadcast, so not in the stream battery): end of
    # stdin reaches every client as FIN after all its data, and a client may
    # still send afterwards: its bytes reach stdout.
    server = spawn(WIRECAT, "listen", "-k", "-v", "0")
    port = server.listening_port()
    clients = [connect(port) for _ in range(2)]
    try:
        wait_stderr(server, r"\(2 connected\)")
        assert server.popen.stdin is not None
        server.popen.stdin.write(b"last words\n")
        server.popen.stdin.close()
        for client in clients:
            assert recv_all(client) == b"last words\n"  # then the end of stream: FIN, not a reset
        clients[1].sendall(b"still here\n")
        assert server.popen.stdout is not None
        assert b"still here\n" in read_until(server.popen.stdout, lambda seen: b"\n" in seen)
    finally:
        for client in clients:
            client.close()


def test_keep_open_serves_clients_one_after_another(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-k", "0")
    port = server.listening_port()
    assert server.popen.stdout is not None
    for i in range(3):
        with connect(port) as client:
            client.sendall(b"turn %d\n" % i)
            read_until(server.popen.stdout, lambda seen, i=i: b"turn %d\n" % i in seen)
    assert server.popen.poll() is None


def test_max_conns_refuses_the_next_client_and_logs_it(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-k", "--max-conns", "1", "-v", "0")
    port = server.listening_port()
    with connect(port) as first:
        wait_stderr(server, r"\(1 connected\)")
        with connect(port) as second:
            assert is_closed_at_once(second)
            wait_stderr(server, r"^wirecat: refused 127\.0\.0\.1:\d+: at the limit of 1 connection$")
        first.sendall(b"still served\n")
        assert server.popen.stdout is not None
        read_until(server.popen.stdout, lambda seen: b"still served\n" in seen)
    assert server.popen.poll() is None


def test_max_conns_refusal_is_logged_without_verbose(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-k", "--max-conns", "1", "0")
    port = server.listening_port()
    with connect(port) as first:
        first.sendall(b"in\n")
        assert server.popen.stdout is not None
        read_until(server.popen.stdout, lambda seen: b"in\n" in seen)  # first is accepted
        with connect(port) as second:
            assert is_closed_at_once(second)
            wait_stderr(server, r"at the limit of 1 connection$")


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_max_conns(value: str) -> None:
    from tests.conftest import run_wirecat

    result = run_wirecat("listen", "-k", "--max-conns", value, "0")
    assert result.returncode == 2
    assert_one_error_line(result.stderr)


def test_client_leaving_mid_broadcast_does_not_break_the_others(spawn) -> None:
    payload = random_payload(4 * 1024 * 1024, seed=31)
    server = spawn(WIRECAT, "listen", "-k", "-v", "0")
    port = server.listening_port()
    stayers = []
    leaver = None
    try:
        for n in range(1, 3):
            stayers.append(connect(port))
            wait_stderr(server, rf"\({n} connected\)")
        leaver = connect(port)
        wait_stderr(server, r"\(3 connected\)")
        results: dict[int, bytes] = {}

        def drain(index: int, sock: socket.socket) -> None:
            results[index] = recv_exactly(sock, len(payload))

        readers = [threading.Thread(target=drain, args=(i, s), daemon=True) for i, s in enumerate(stayers)]
        for reader in readers:
            reader.start()
        feeder = threading.Thread(target=_write, args=(server, payload), daemon=True)
        feeder.start()
        # The leaver reads a little of the broadcast, then resets the connection.
        assert len(recv_exactly(leaver, 64 * 1024)) == 64 * 1024
        leaver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        leaver.close()
        leaver = None
        for reader in readers:
            reader.join(TIMEOUT)
        feeder.join(TIMEOUT)
        for index in range(len(stayers)):
            assert sha256(results.get(index, b"")) == sha256(payload), f"client {index} lost data"
        assert server.popen.poll() is None
    finally:
        for sock in stayers:
            sock.close()
        if leaver is not None:
            leaver.close()


def _write(proc, data: bytes) -> None:
    assert proc.popen.stdin is not None
    proc.popen.stdin.write(data)
    proc.popen.stdin.flush()


# -- allow / deny ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        ["--deny", "127.0.0.0/8"],
        ["--deny", "127.0.0.1"],
        ["--allow", "203.0.113.0/24"],
        ["--allow", "198.51.100.1"],
    ],
)
@pytest.mark.parametrize("keep_open", [False, True])
def test_denied_client_is_closed_at_once_and_logged(spawn, rules: list[str], keep_open: bool) -> None:
    server = spawn(WIRECAT, "listen", "-v", *(["-k"] if keep_open else []), *rules, "0")
    port = server.listening_port()
    with connect(port) as client:
        assert is_closed_at_once(client)
        wait_stderr(server, r"^wirecat: refused 127\.0\.0\.1:\d+: not allowed by the allow/deny rules$")
    # Still listening: a denied peer does not end the listener.
    assert server.popen.poll() is None
    with connect(port) as again:
        assert is_closed_at_once(again)
    assert server.popen.poll() is None


@pytest.mark.parametrize(
    "rules",
    [
        ["--allow", "127.0.0.0/8"],
        ["--allow", "127.0.0.1"],
        ["--deny", "203.0.113.0/24"],
        ["--allow", "127.0.0.0/8", "--deny", "198.51.100.0/24"],
    ],
)
def test_allowed_client_is_served(spawn, rules: list[str]) -> None:
    server = spawn(WIRECAT, "listen", *rules, "0")
    port = server.listening_port()
    with connect(port) as client:
        client.sendall(b"let in\n")
        client.shutdown(socket.SHUT_WR)
        code, out, err = server.finish(b"welcome\n")
        assert recv_all(client) == b"welcome\n"
    assert (code, out) == (0, b"let in\n"), err


def test_deny_ipv6_cidr(spawn) -> None:
    server = spawn(WIRECAT, "listen", "-v", "--deny", "::1/128", "::1", "0")
    match = wait_stderr(server, r"listening on \[::1\]:(\d+)$")
    with connect(int(match.group(1)), "::1") as client:
        assert is_closed_at_once(client)
        wait_stderr(server, r"refused \[::1\]:\d+: not allowed")


def test_bad_access_rule_is_a_usage_error() -> None:
    from tests.conftest import run_wirecat

    result = run_wirecat("listen", "--allow", "not-an-address/99", "0")
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr)


# -- restart (SO_REUSEADDR) ------------------------------------------------------------------


def test_restart_on_the_same_port_despite_time_wait(spawn) -> None:
    server = spawn(WIRECAT, "listen", "0")
    port = server.listening_port()
    with connect(port) as client:
        # The listener's stdin is empty: it sends FIN first, so its side of the
        # connection ends in TIME_WAIT on `port`.
        assert server.popen.stdin is not None
        client.sendall(b"first run\n")
        server.popen.stdin.close()
        assert recv_all(client) == b""  # the listener's FIN came first
    code, out, err = server.finish()
    assert (code, out) == (0, b"first run\n"), err
    # The control: without SO_REUSEADDR this port cannot be bound now.
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        pass
    else:
        pytest.skip("no TIME_WAIT was left on the port: nothing for SO_REUSEADDR to prove")
    finally:
        probe.close()
    again = spawn(WIRECAT, "listen", str(port))
    assert again.listening_port() == port
    with connect(port) as client:
        client.sendall(b"second run\n")
        client.shutdown(socket.SHUT_WR)
        code, out, err = again.finish(b"")
        assert recv_all(client) == b""
    assert (code, out) == (0, b"second run\n"), err
