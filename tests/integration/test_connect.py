"""``wirecat connect``: every TCP flag, through the installed command.

The servers are small Python socket servers in a thread (:class:`Peer`), so
each test sees exactly what wirecat put on the wire: when the FIN came, from
which address, which bytes. The helpers here are shared with the other
integration modules of this directory (listen, unix, errors, signals).
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

import pytest

from tests.conftest import WIRECAT, random_payload, run_wirecat, sha256
from wirecat.testing import free_port

#: Bounded waits: generous, because the machine has 2 cores shared with other runs.
TIMEOUT = 30.0

Handler = Callable[[socket.socket, "Peer"], object]


# -- shared helpers ------------------------------------------------------------------------------


class Peer:
    """A one-connection Python TCP server on loopback, run in a thread.

    ``handler(conn, peer)`` runs on the accepted socket; what it returns is
    :meth:`result`. ``peer.release`` is an event a handler may wait on to hold
    the connection open until the test (or teardown) sets it. Use as a
    context manager so the thread and sockets always end.
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", *, port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family)
        self.listener.settimeout(TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.handler = handler
        self.client_address: tuple[str, int] | None = None
        self.accepted = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()
        self._result: object = None
        self._error: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, address = self.listener.accept()
            if self._closing:  # the wake-up connection of __exit__: no client came
                conn.close()
                return
            self.client_address = address[:2]
            self.accepted.set()
            with conn:
                conn.settimeout(TIMEOUT)
                self._result = self.handler(conn, self)
        except BaseException as exc:  # handed to the test thread by result()
            self._error = exc
        finally:
            self.done.set()

    def result(self, timeout: float = TIMEOUT) -> object:
        """Wait for the handler to finish; return its value or raise its error."""
        assert self.done.wait(timeout), "the test server's handler did not finish"
        if self._error is not None:
            raise self._error
        return self._result

    def __enter__(self) -> Peer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release.set()
        if not self.accepted.is_set():
            # close() does not interrupt a blocked accept(): connect once to wake it.
            self._closing = True
            try:
                socket.create_connection(self.listener.getsockname()[:2], timeout=5).close()
            except OSError:
                pass
        self._thread.join(TIMEOUT)
        self.listener.close()


def recv_all(conn: socket.socket) -> bytes:
    """Read ``conn`` until the peer's EOF."""
    chunks = []
    while chunk := conn.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes (fewer only if the peer closed first)."""
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(min(1 << 16, size - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_until(stream: IO[bytes], wanted: Callable[[bytes], bool], timeout: float = TIMEOUT) -> bytes:
    """Read ``stream`` (a running process's pipe) until ``wanted(all_read)``; return all read.

    Raises:
        TimeoutError: the deadline passed or the stream ended first.
    """
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not wanted(seen):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"condition not met within {timeout} s; read so far: {seen[-300:]!r}")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise TimeoutError(f"stream ended before the condition was met; read: {seen[-300:]!r}")
            seen += chunk
    return seen


def assert_one_error_line(err: bytes) -> str:
    """stderr is exactly one line ``wirecat: …`` and no traceback; return it."""
    text = err.decode(errors="replace")
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {text!r}"
    assert lines[0].startswith("wirecat: "), text
    return lines[0]


def wait_exit(proc: object, timeout: float = TIMEOUT) -> tuple[int, bytes, bytes]:
    """Wait for a spawned process to exit on its own, its stdin left open; return (code, out, err)."""
    popen = proc.popen  # type: ignore[attr-defined]
    code = popen.wait(timeout=timeout)
    out = popen.stdout.read() if popen.stdout else b""
    err = popen.stderr.read() if popen.stderr else b""
    return code, out, err


def serve_reply_after_eof(reply: bytes, delay: float = 0.0) -> Handler:
    """A handler: read the request until EOF, wait ``delay`` (a slow server), reply, close."""

    def handler(conn: socket.socket, peer: Peer) -> bytes:
        request = recv_all(conn)
        if delay:
            time.sleep(delay)  # the server is slow on purpose: this is the scenario, not a sync
        conn.sendall(reply)
        return request

    return handler


def hold_open(first: bytes = b"") -> Handler:
    """A handler: send ``first``, then keep the connection open until released."""

    def handler(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(first)
        peer.release.wait(TIMEOUT)

    return handler


#: Runs wirecat's CLI with ``localhost`` resolving to ``::1`` and ``127.0.0.1``, as a
#: stock /etc/hosts does, so the Happy Eyeballs and -4/-6 cases do not depend on the
#: machine's resolver (some containers map localhost to 127.0.0.1 only).
DUAL_LOCALHOST_SHIM = r"""
import socket, sys
_real = socket.getaddrinfo
def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    # wirecat hands an ASCII name over as bytes
    if host not in ("localhost", b"localhost") or flags & socket.AI_NUMERICHOST:
        return _real(host, port, family, type, proto, flags)
    found = []
    for fam, literal in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        if family in (socket.AF_UNSPEC, fam):
            found += _real(literal, port, fam, type, proto, flags | socket.AI_NUMERICHOST)
    if not found:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return found
socket.getaddrinfo = _getaddrinfo
from wirecat.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_dual_localhost(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run wirecat (same interpreter and package) with a dual-stack ``localhost``."""
    return subprocess.run(
        [sys.executable, "-c", DUAL_LOCALHOST_SHIM, *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )


def free_port_on_both() -> int:
    """A port free on 127.0.0.1 and on ::1 a moment ago."""
    for _ in range(50):
        port = free_port("::1")
        try:
            with socket.create_server(("127.0.0.1", port)):
                return port
        except OSError:
            continue
    raise AssertionError("no port free on both loopback addresses")


# -- half-close and the lifetime rule ------------------------------------------------------------


def test_half_close_reply_fully_received() -> None:
    reply = random_payload(256 * 1024, seed=7)
    with Peer(serve_reply_after_eof(reply, delay=0.2)) as peer:
        result = run_wirecat("connect", "127.0.0.1", str(peer.port), stdin=b"request\n")
        assert peer.result() == b"request\n"
    assert result.returncode == 0, result.stderr
    assert sha256(result.stdout) == sha256(reply)
    assert result.stderr == b""


def test_reply_long_after_eof_is_not_dropped_by_a_timer() -> None:
    # socat's 0.5 s and nc -q 1 would both drop this reply and exit 0.
    with Peer(serve_reply_after_eof(b"late reply\n", delay=1.5)) as peer:
        result = run_wirecat("connect", "127.0.0.1", str(peer.port), stdin=b"ping\n")
        assert peer.result() == b"ping\n"
    assert (result.returncode, result.stdout) == (0, b"late reply\n"), result.stderr


def _request_then_watch_for_eof(size: int, eof_wait: float) -> Handler:
    """Read ``size`` bytes, then record whether EOF follows within ``eof_wait`` s; reply; close."""

    def handler(conn: socket.socket, peer: Peer) -> tuple[bytes, bool]:
        request = recv_exactly(conn, size)
        conn.settimeout(eof_wait)
        try:
            saw_eof = conn.recv(1) == b""
        except TimeoutError:
            saw_eof = False
        conn.sendall(b"reply\n")
        return request, saw_eof

    return handler


def test_default_sends_fin_at_end_of_stdin() -> None:
    # The control for --no-shutdown below: without the flag, EOF arrives (and at once).
    with Peer(_request_then_watch_for_eof(5, eof_wait=TIMEOUT)) as peer:
        result = run_wirecat("connect", "127.0.0.1", str(peer.port), stdin=b"data\n")
        assert peer.result() == (b"data\n", True)
    assert (result.returncode, result.stdout) == (0, b"reply\n"), result.stderr


def test_no_shutdown_keeps_the_write_side_open() -> None:
    with Peer(_request_then_watch_for_eof(5, eof_wait=2.0)) as peer:
        result = run_wirecat("connect", "--no-shutdown", "127.0.0.1", str(peer.port), stdin=b"data\n")
        request, saw_eof = peer.result()  # type: ignore[misc]
    assert request == b"data\n"
    assert not saw_eof, "--no-shutdown sent FIN at end of stdin"
    assert (result.returncode, result.stdout) == (0, b"reply\n"), result.stderr


def test_nc_minus_N_is_accepted() -> None:
    with Peer(serve_reply_after_eof(b"ok\n")) as peer:
        result = run_wirecat("connect", "-N", "127.0.0.1", str(peer.port), stdin=b"x\n")
        assert peer.result() == b"x\n"
    assert (result.returncode, result.stdout) == (0, b"ok\n"), result.stderr


def test_send_only_sends_and_prints_nothing() -> None:
    payload = random_payload(512 * 1024, seed=3)

    def handler(conn: socket.socket, peer: Peer) -> bytes:
        conn.sendall(b"greeting that must not be printed\n")
        return recv_all(conn)

    with Peer(handler) as peer:
        result = run_wirecat("connect", "--send-only", "127.0.0.1", str(peer.port), stdin=payload)
        received = peer.result()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert sha256(received) == sha256(payload)  # type: ignore[arg-type]


def test_send_only_to_a_peer_that_answers_everything_does_not_stall() -> None:
    """An echo peer: what comes back is read (and dropped), or both sides would stop sending."""
    payload = random_payload(32 << 20, seed=5)

    def echo_and_count(conn: socket.socket, peer: Peer) -> bytes:
        total = 0
        while chunk := conn.recv(1 << 20):
            total += len(chunk)
            conn.sendall(chunk)
        return b"%d" % total

    with Peer(echo_and_count) as peer:
        result = run_wirecat("connect", "--send-only", "127.0.0.1", str(peer.port), stdin=payload, timeout=60)
        assert peer.result() == b"%d" % len(payload)
    assert (result.returncode, result.stdout) == (0, b""), result.stderr


def test_send_only_with_q_or_no_shutdown_ends_cleanly_after_its_input() -> None:
    """No reply is wanted, so -q's expiry cuts nothing off (exit 0), and without FIN no end is awaited."""

    def hold(conn: socket.socket, peer: Peer) -> bytes:
        conn.settimeout(5)
        data = bytearray()
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except TimeoutError:
            pass
        return bytes(data)

    for flags in (["-q", "0.3"], ["--no-shutdown"]):
        with Peer(hold) as peer:
            started = time.monotonic()
            result = run_wirecat("connect", "--send-only", *flags, "127.0.0.1", str(peer.port), stdin=b"hi\n")
            took = time.monotonic() - started
            assert result.returncode == 0, (flags, result.stderr)
            assert took < 3, flags  # not the peer's 5 s
            assert peer.result() == b"hi\n"


def test_recv_only_does_not_read_stdin() -> None:
    def handler(conn: socket.socket, peer: Peer) -> bytes:
        conn.sendall(b"news\n")
        conn.shutdown(socket.SHUT_WR)
        return recv_all(conn)

    with Peer(handler) as peer:
        result = run_wirecat(
            "connect", "--recv-only", "127.0.0.1", str(peer.port), stdin=b"must not be sent\n"
        )
        received = peer.result()
    assert received == b""
    assert (result.returncode, result.stdout) == (0, b"news\n"), result.stderr


def test_quit_after_eof_cuts_off_a_peer_that_stays_open() -> None:
    with Peer(hold_open(b"partial\n")) as peer:
        started = time.monotonic()
        result = run_wirecat("connect", "-q", "1", "127.0.0.1", str(peer.port), stdin=b"")
        elapsed = time.monotonic() - started
    assert result.returncode == 8, result.stderr
    line = assert_one_error_line(result.stderr)
    assert "-q" in line, line
    assert result.stdout == b"partial\n"
    assert elapsed < TIMEOUT / 2


def test_quit_after_eof_with_a_peer_that_closes_in_time() -> None:
    with Peer(serve_reply_after_eof(b"in time\n", delay=0.2)) as peer:
        result = run_wirecat("connect", "-q", "20", "127.0.0.1", str(peer.port), stdin=b"q\n")
        assert peer.result() == b"q\n"
    assert (result.returncode, result.stdout, result.stderr) == (0, b"in time\n", b"")


def test_idle_timeout_ends_a_silent_connection(spawn) -> None:
    with Peer(hold_open()) as peer:
        # stdin stays open and empty: nothing moves either way.
        client = spawn(WIRECAT, "connect", "-i", "1", "127.0.0.1", str(peer.port))
        code, out, err = wait_exit(client)
    assert code == 6, err
    line = assert_one_error_line(err)
    assert "-i" in line, line
    assert out == b""


def test_idle_timeout_does_not_fire_while_data_flows() -> None:
    def trickle(conn: socket.socket, peer: Peer) -> None:
        for i in range(8):
            conn.sendall(b"%d\n" % i)
            time.sleep(0.25)  # pacing the peer well inside -i 3, not synchronisation

    with Peer(trickle) as peer:
        result = run_wirecat("connect", "-i", "3", "127.0.0.1", str(peer.port), stdin=b"")
        peer.result()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"".join(b"%d\n" % i for i in range(8))


# -- connect timeout ------------------------------------------------------------------------------


def _listener_with_full_backlog() -> tuple[socket.socket, list[socket.socket]] | None:
    """A loopback listener that never accepts, with its queue full so new SYNs go unanswered.

    Returns None where the kernel answers anyway (then no loopback connect can time out).
    """
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    for _ in range(64):
        probe = socket.socket()
        probe.settimeout(0.5)
        held.append(probe)
        try:
            probe.connect(("127.0.0.1", port))
        except TimeoutError:
            return listener, held
        except OSError:
            break
    for sock in held:
        sock.close()
    listener.close()
    return None


def test_connect_timeout_on_a_listener_that_never_answers() -> None:
    found = _listener_with_full_backlog()
    if found is None:
        pytest.skip("this kernel answers SYNs even with a full accept queue: no loopback connect timeout")
    listener, held = found
    try:
        started = time.monotonic()
        result = run_wirecat("connect", "-w", "1", "127.0.0.1", str(listener.getsockname()[1]))
        elapsed = time.monotonic() - started
    finally:
        for sock in held:
            sock.close()
        listener.close()
    assert result.returncode == 6, result.stderr
    line = assert_one_error_line(result.stderr)
    assert "timed out" in line, line
    assert 0.9 <= elapsed < TIMEOUT / 2


def test_connect_timeout_does_not_cut_a_quick_connection() -> None:
    with Peer(serve_reply_after_eof(b"fast\n")) as peer:
        result = run_wirecat("connect", "-w", "5", "127.0.0.1", str(peer.port), stdin=b"x")
        peer.result()
    assert (result.returncode, result.stdout) == (0, b"fast\n"), result.stderr


@pytest.mark.parametrize("value", ["abc", "-1", "inf", "nan"])
def test_connect_timeout_must_be_a_number(value: str) -> None:
    result = run_wirecat("connect", "-w", value, "127.0.0.1", "9")
    assert result.returncode == 2
    assert_one_error_line(result.stderr)


# -- source address and port, families ---------------------------------------------------------


def _address_echo(conn: socket.socket, peer: Peer) -> bytes:
    return recv_all(conn)


@pytest.mark.parametrize("flag", ["-p", "--source-port"])
def test_source_address_and_port(flag: str) -> None:
    source_port = free_port()
    with Peer(_address_echo) as peer:
        result = run_wirecat(
            "connect", "-s", "127.0.0.1", flag, str(source_port), "127.0.0.1", str(peer.port), stdin=b"hi"
        )
        assert peer.result() == b"hi"
    assert result.returncode == 0, result.stderr
    assert peer.client_address == ("127.0.0.1", source_port)


def test_source_address_ipv6() -> None:
    source_port = free_port("::1")
    with Peer(_address_echo, "::1") as peer:
        result = run_wirecat(
            "connect", "-s", "::1", "-p", str(source_port), "::1", str(peer.port), stdin=b"six"
        )
        assert peer.result() == b"six"
    assert result.returncode == 0, result.stderr
    assert peer.client_address == ("::1", source_port)


def test_source_port_in_use_is_a_bind_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy, Peer(_address_echo) as peer:
        result = run_wirecat(
            "connect", "-p", str(busy.getsockname()[1]), "127.0.0.1", str(peer.port), stdin=b""
        )
    assert result.returncode == 5, result.stderr
    assert_one_error_line(result.stderr)


def test_ipv6_literal_and_bracket_syntax() -> None:
    for target in (["::1"], ["[::1]"]):
        with Peer(serve_reply_after_eof(b"v6\n"), "::1") as peer:
            result = run_wirecat("connect", *target, str(peer.port), stdin=b"q")
            assert peer.result() == b"q"
        assert (result.returncode, result.stdout) == (0, b"v6\n"), (target, result.stderr)
    with Peer(serve_reply_after_eof(b"v6\n"), "::1") as peer:
        result = run_wirecat("connect", f"[::1]:{peer.port}", stdin=b"q")
        assert peer.result() == b"q"
    assert (result.returncode, result.stdout) == (0, b"v6\n"), result.stderr


@pytest.mark.parametrize(("flag", "host"), [("-6", "127.0.0.1"), ("-4", "::1")])
def test_family_flag_against_an_address_of_the_other_family(flag: str, host: str) -> None:
    # A usage error (issue 12), not "no IPv6 address" (exit 3): no lookup can change it.
    result = run_wirecat("connect", flag, host, "9")
    assert result.returncode == 2, result.stderr
    assert f"{host} is an IPv" in assert_one_error_line(result.stderr)


def test_minus_6_picks_the_ipv6_listener_of_localhost() -> None:
    with Peer(serve_reply_after_eof(b"over v6\n"), "::1") as peer:
        result = run_dual_localhost("connect", "-6", "localhost", str(peer.port), stdin=b"q")
        assert peer.result() == b"q"
    assert (result.returncode, result.stdout) == (0, b"over v6\n"), result.stderr


def test_minus_4_does_not_try_ipv6() -> None:
    # Only ::1 listens: -4 must try 127.0.0.1 alone and be refused.
    port = free_port_on_both()
    with Peer(serve_reply_after_eof(b"v6\n"), "::1", port=port):
        result = run_dual_localhost("connect", "-4", "-v", "localhost", str(port), stdin=b"q")
    assert result.returncode == 4, result.stderr
    assert b"[::1]" not in result.stderr, result.stderr


def test_happy_eyeballs_reaches_ipv4_when_ipv6_is_refused() -> None:
    # ::1 comes first (RFC 6724 order, as the shim gives it): its refusal is named under -v,
    # and 127.0.0.1 is tried at once, without waiting out the stagger.
    port = free_port_on_both()
    with Peer(serve_reply_after_eof(b"reached\n"), "127.0.0.1", port=port) as peer:
        result = run_dual_localhost("connect", "-v", "localhost", str(port), stdin=b"q")
        assert peer.result() == b"q"
    assert (result.returncode, result.stdout) == (0, b"reached\n"), result.stderr
    err = result.stderr.decode()
    assert f"connecting to [::1]:{port}" in err, err
    assert f"[::1]:{port}: connection refused" in err, err
    assert f"connected to 127.0.0.1:{port}" in err, err
    assert "Traceback" not in err


def test_happy_eyeballs_reaches_ipv6_when_ipv4_is_refused() -> None:
    port = free_port_on_both()
    with Peer(serve_reply_after_eof(b"reached\n"), "::1", port=port) as peer:
        result = run_dual_localhost("connect", "-v", "localhost", str(port), stdin=b"q")
        assert peer.result() == b"q"
    assert (result.returncode, result.stdout) == (0, b"reached\n"), result.stderr
    err = result.stderr.decode()
    assert f"connected to [::1]:{port}" in err, err
    # 127.0.0.1 is tried only if ::1 has not answered within the stagger; if it was,
    # its refusal must be named.
    if f"connecting to 127.0.0.1:{port}" in err:
        assert f"127.0.0.1:{port}: connection refused" in err, err


def test_happy_eyeballs_names_each_failure_when_all_fail() -> None:
    port = free_port_on_both()
    result = run_dual_localhost("connect", "-v", "localhost", str(port))
    assert result.returncode == 4, result.stderr
    err = result.stderr.decode()
    assert f"[::1]:{port}: connection refused" in err, err
    assert f"127.0.0.1:{port}: connection refused" in err, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("wirecat: "), err


def test_system_localhost_when_it_has_both_families() -> None:
    families = {info[0] for info in socket.getaddrinfo("localhost", 9, type=socket.SOCK_STREAM)}
    if families != {socket.AF_INET, socket.AF_INET6}:
        pytest.skip("this machine's localhost is not dual-stack; the shimmed tests above cover it")
    port = free_port_on_both()
    with Peer(serve_reply_after_eof(b"sys\n"), "::1", port=port) as peer:
        result = run_wirecat("connect", "-v", "localhost", str(port), stdin=b"q")
        assert peer.result() == b"q"
    assert (result.returncode, result.stdout) == (0, b"sys\n"), result.stderr


# -- data: CRLF, binary, -v, -n -------------------------------------------------------------------


def test_crlf_translation_is_send_side_and_idempotent() -> None:
    reply = b"back\nunchanged\r\n"
    with Peer(serve_reply_after_eof(reply)) as peer:
        result = run_wirecat("connect", "-C", "127.0.0.1", str(peer.port), stdin=b"a\r\nb\n\x00\xff")
        assert peer.result() == b"a\r\nb\r\n\x00\xff"
    assert (result.returncode, result.stdout) == (0, reply), result.stderr


def run_with_threads(argv: list[str], stdin: bytes, timeout: float = 120) -> tuple[int, bytes, bytes]:
    """Run ``argv`` feeding stdin and draining stdout/stderr from separate threads.

    Unlike ``communicate()`` (one thread, poll then write/read), a slow write
    here cannot hold up the reads.
    """
    popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    outputs: dict[str, bytes] = {}

    def feed() -> None:
        assert popen.stdin is not None
        try:
            popen.stdin.write(stdin)
        except BrokenPipeError:
            pass
        finally:
            popen.stdin.close()

    def drain(name: str, pipe: IO[bytes]) -> None:
        outputs[name] = pipe.read()

    threads = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=drain, args=("out", popen.stdout), daemon=True),
        threading.Thread(target=drain, args=("err", popen.stderr), daemon=True),
    ]
    try:
        for thread in threads:
            thread.start()
        code = popen.wait(timeout=timeout)
        for thread in threads:
            thread.join(timeout)
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
        for pipe in (popen.stdout, popen.stderr):
            if pipe is not None:
                pipe.close()
    return code, outputs.get("out", b""), outputs.get("err", b"")


def _full_duplex(download: bytes) -> Handler:
    def handler(conn: socket.socket, peer: Peer) -> bytes:
        # Send while receiving, so neither side can only work in turns.
        sender = threading.Thread(target=conn.sendall, args=(download,), daemon=True)
        sender.start()
        received = recv_all(conn)
        sender.join(TIMEOUT)
        return received

    return handler


def test_binary_payload_both_ways() -> None:
    upload = random_payload(9 * 1024 * 1024 + 17, seed=11)
    download = random_payload(5 * 1024 * 1024 + 3, seed=12)
    assert b"\x00" in upload
    assert b"\x00" in download
    with Peer(_full_duplex(download)) as peer:
        code, out, err = run_with_threads([WIRECAT, "connect", "127.0.0.1", str(peer.port)], upload)
        received = peer.result(timeout=120)
    assert code == 0, err
    assert sha256(received) == sha256(upload)  # type: ignore[arg-type]
    assert sha256(out) == sha256(download)


#: Both tests below guard one hazard of zero-copy: a blocking splice() between a
#: socket and a pipe holds the pipe's mutex while it waits for the socket, so the
#: process at the other end of stdin/stdout blocks (uninterruptibly) in read() or
#: write() although poll() said the pipe was ready.


def test_peer_line_reaches_the_stdout_reader_while_the_peer_waits(spawn) -> None:
    # An interactive exchange: the server prompts and waits for the answer,
    # which a script reading wirecat's stdout can only give once it read the prompt.
    prompt_read = threading.Event()

    def prompt_then_wait(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(b"prompt\n")
        prompt_read.wait(5.0)  # bounded: a wirecat that holds the prompt back gets "late" next
        conn.sendall(b"late\n")

    with Peer(prompt_then_wait) as peer:
        client = spawn(
            WIRECAT, "connect", "--recv-only", "127.0.0.1", str(peer.port), stdin=subprocess.DEVNULL
        )
        fd = client.popen.stdout.fileno()
        assert _readable(fd, TIMEOUT), "the prompt never reached stdout"
        # Let wirecat settle into waiting for the peer's next bytes (every thread
        # asleep), so the read below cannot slip in between two of its syscalls.
        wait_until_asleep(client.popen.pid)
        reader = _Reader(fd)
        assert reader.done.wait(3.0), "read() blocked although poll() said stdout was readable"
        assert reader.data == b"prompt\n"
        prompt_read.set()
        peer.result()
        code, rest, err = client.finish()
    assert (code, rest) == (0, b"late\n"), err


def test_writer_to_stdin_is_not_blocked_when_the_pipe_has_room(spawn) -> None:
    # The peer never reads, so the socket fills. From then on wirecat's stdin
    # pipe may fill too, but a write that poll() allowed must not block.
    with Peer(hold_open()) as peer:
        client = spawn(WIRECAT, "connect", "--send-only", "127.0.0.1", str(peer.port))
        fd = client.popen.stdin.fileno()
        blocked = threading.Event()
        written = 0
        while True:
            if not _writable(fd, 3.0):
                break  # the pipe is full: normal back-pressure, the test passed
            watchdog = threading.Timer(5.0, lambda: (blocked.set(), client.popen.kill()))
            watchdog.start()
            try:
                written += os.write(fd, b"x" * 4096)
            except BrokenPipeError:
                break
            finally:
                watchdog.cancel()
            assert written < 256 * 1024 * 1024, "the pipe never filled"
        assert not blocked.is_set(), f"write() blocked after {written} bytes though poll() allowed it"


def wait_until_asleep(pid: int, timeout: float = 10.0) -> None:
    """Return once every thread of ``pid`` is asleep (blocked in the kernel), or at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            states = [
                Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                for tid in os.listdir(f"/proc/{pid}/task")
            ]
        except OSError:
            return  # no /proc here, or the process ended: nothing to wait for
        if states and all(state == "S" for state in states):
            return
        time.sleep(0.01)  # polling pace under the deadline, as wait_for_port does


class _Reader(threading.Thread):
    """One os.read() in a daemon thread, so a blocked read can be told from a slow one."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.data = b""
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            self.data = os.read(self.fd, 100)
        finally:
            self.done.set()


def _readable(fd: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def _writable(fd: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_WRITE)
        return bool(selector.select(timeout))


def test_verbose_messages_and_closing_line_we_closed_first() -> None:
    with Peer(serve_reply_after_eof(b"0123456789")) as peer:
        result = run_wirecat("connect", "-v", "127.0.0.1", str(peer.port), stdin=b"abc")
        peer.result()
    assert (result.returncode, result.stdout) == (0, b"0123456789"), result.stderr
    lines = result.stderr.decode().splitlines()
    assert all(line.startswith("wirecat: ") for line in lines), lines
    assert any(f"connecting to 127.0.0.1:{peer.port}" in line for line in lines), lines
    source = peer.client_address
    assert source is not None
    assert any(f"connected to 127.0.0.1:{peer.port} from 127.0.0.1:{source[1]}" in line for line in lines), (
        lines
    )
    done = [line for line in lines if "done:" in line]
    assert len(done) == 1, lines
    assert re.search(r"sent 3 B, received 10 B in \d+\.\d\d s; we closed first", done[0]), done


def test_verbose_closing_line_peer_closed_first() -> None:
    def speak_and_close(conn: socket.socket, peer: Peer) -> None:
        conn.sendall(b"bye\n")

    with Peer(speak_and_close) as peer:
        result = run_wirecat("connect", "-v", "--recv-only", "127.0.0.1", str(peer.port))
        peer.result()
    assert (result.returncode, result.stdout) == (0, b"bye\n"), result.stderr
    done = [line for line in result.stderr.decode().splitlines() if "done:" in line]
    assert len(done) == 1, result.stderr
    assert "sent 0 B, received 4 B" in done[0], done
    assert "the peer closed first" in done[0], done


def test_quiet_without_verbose() -> None:
    with Peer(serve_reply_after_eof(b"r")) as peer:
        result = run_wirecat("connect", "127.0.0.1", str(peer.port), stdin=b"s")
        peer.result()
    assert (result.returncode, result.stdout, result.stderr) == (0, b"r", b"")


def test_numeric_flag_refuses_a_name() -> None:
    result = run_wirecat("connect", "-n", "localhost", "9")
    assert result.returncode == 2
    line = assert_one_error_line(result.stderr)
    assert "-n" in line, line


def test_numeric_flag_with_an_address() -> None:
    with Peer(serve_reply_after_eof(b"n\n")) as peer:
        result = run_wirecat("connect", "-n", "127.0.0.1", str(peer.port), stdin=b"")
        peer.result()
    assert (result.returncode, result.stdout) == (0, b"n\n"), result.stderr


def test_keepalive_is_accepted() -> None:
    def check(conn: socket.socket, peer: Peer) -> bytes:
        return recv_all(conn)

    with Peer(check) as peer:
        result = run_wirecat("connect", "--keepalive", "127.0.0.1", str(peer.port), stdin=b"k")
        assert peer.result() == b"k"
    assert result.returncode == 0, result.stderr


# -- netcat spellings -----------------------------------------------------------------------------


def test_netcat_spelling_host_port() -> None:
    with Peer(serve_reply_after_eof(b"nc style\n")) as peer:
        result = run_wirecat("127.0.0.1", str(peer.port), stdin=b"x")
        assert peer.result() == b"x"
    assert (result.returncode, result.stdout) == (0, b"nc style\n"), result.stderr


def test_netcat_spelling_bundled_flags() -> None:
    with Peer(serve_reply_after_eof(b"bundled\n")) as peer:
        result = run_wirecat("-vnw5", "127.0.0.1", str(peer.port), stdin=b"x")
        assert peer.result() == b"x"
    assert (result.returncode, result.stdout) == (0, b"bundled\n"), result.stderr
    assert b"connected to" in result.stderr


@pytest.mark.parametrize(
    ("argv", "long_option"),
    [
        (["-d", "127.0.0.1", "9"], "--recv-only"),
        (["connect", "-d", "127.0.0.1", "9"], "--recv-only"),
        (["-c", "echo hi", "127.0.0.1", "9"], "--sh-exec"),
        (["-e", "/bin/cat", "127.0.0.1", "9"], "--exec"),
        (["-l", "-e", "/bin/cat", "0"], "--exec"),
        (["-k", "127.0.0.1", "9"], "--keepalive"),
        (["connect", "-k", "127.0.0.1", "9"], "--keepalive"),
    ],
)
def test_ambiguous_netcat_letters_fail_naming_the_long_option(argv: list[str], long_option: str) -> None:
    result = run_wirecat(*argv)
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr)
    assert long_option in line, line


def test_ambiguous_letter_with_a_listener_does_not_start_listening() -> None:
    # Checked before any socket is opened: the error comes at once, on its own.
    result = run_wirecat("-l", "-d", "0")
    assert result.returncode == 2
    assert b"listening on" not in result.stderr
