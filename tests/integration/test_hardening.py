"""Regressions from the outside reliability and security run (issue 10).

Each test here failed on the code before its fix: an empty ``--allow`` that
let everyone in, relays and servers that ended cut-off streams with a clean
FIN, drip clients that held their slots for ever, and tracebacks or wrong
messages on bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import selectors
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from tests.conftest import WIRECAT, run_wirecat
from tests.integration.test_connect import TIMEOUT, assert_one_error_line
from tests.integration.test_relay import Target
from wirecat.testing import read_line_matching

# -- 1. an empty rule never means "everyone" -------------------------------------------------

#: Every command that takes --allow, each listening where a rule would matter.
_RULED_COMMANDS = [
    pytest.param(["listen", "0.0.0.0", "0", "--sh-exec", "cat"], id="listen-exec-public"),
    pytest.param(["listen", "-k", "0"], id="listen-k"),
    pytest.param(["listen", "-u", "0"], id="listen-udp"),
    pytest.param(["echo", "0"], id="echo"),
    pytest.param(["chat", "0"], id="chat"),
    pytest.param(["broker", "0"], id="broker"),
    pytest.param(["relay", "0", "127.0.0.1:9"], id="relay"),
    pytest.param(["relay", "udp:0", "udp:127.0.0.1:9"], id="relay-udp"),
]


@pytest.mark.parametrize("rule", ["", ",", " "])
@pytest.mark.parametrize("flag", ["--allow", "--deny"])
@pytest.mark.parametrize("argv", _RULED_COMMANDS)
def test_an_empty_rule_is_a_usage_error_before_listening(argv: list[str], flag: str, rule: str) -> None:
    # `--allow "$ALLOWED"` with the variable unset must not open the door.
    argv = [*argv[:-2], flag, rule, *argv[-2:]] if "--sh-exec" in argv else [*argv, flag, rule]
    result = run_wirecat(*argv, timeout=10)
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr)
    assert f"empty {flag[2:]} rule" in line, line
    assert "listening" not in line


def test_a_public_exec_listener_with_only_deny_rules_is_refused() -> None:
    result = run_wirecat("listen", "0.0.0.0", "0", "--deny", "192.0.2.1", "--sh-exec", "cat", timeout=10)
    assert result.returncode == 2, result.stderr
    assert "--allow" in assert_one_error_line(result.stderr)


@pytest.mark.parametrize(
    "argv",
    [
        ["listen", "-k", "unix:@wirecat-test-rules"],
        ["echo", "unix:@wirecat-test-rules"],
        ["relay", "unix:@wirecat-test-rules", "127.0.0.1:9"],
    ],
)
def test_rules_on_a_unix_listener_are_refused(argv: list[str]) -> None:
    # Unix clients have no address: the rules could never match, and would admit everyone.
    result = run_wirecat(*argv, "--allow", "127.0.0.1", timeout=10)
    assert result.returncode == 2, result.stderr
    assert "Unix socket" in assert_one_error_line(result.stderr)


@pytest.mark.parametrize("allow", [[""], [","], ""])
def test_library_serve_and_relay_refuse_an_empty_rule(allow: list[str] | str) -> None:
    import wirecat

    async def handler(conn: wirecat.Connection) -> None:
        await conn.handle_frames(conn.write)

    async def main() -> None:
        with pytest.raises(ValueError, match="empty allow rule"):
            await wirecat.serve(handler, "127.0.0.1:0", allow=allow)
        with pytest.raises(ValueError, match="empty allow rule"):
            await wirecat.relay("127.0.0.1:0", "127.0.0.1:9", allow=allow)

    asyncio.run(main())


# -- 4. bad input: one line and a usage error, never a traceback -----------------------------

_LONG_LABEL = "a" * 64
_LONG_PATH = "/tmp/" + "a" * 120


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        pytest.param(["connect", _LONG_LABEL, "80"], "63", id="connect-long-label"),
        pytest.param(["connect", "-n", _LONG_LABEL, "80"], "63", id="connect-n-long-label"),
        pytest.param(["scan", _LONG_LABEL, "80"], "63", id="scan-long-label"),
        pytest.param(["connect", "-n", "localhost", "80"], "-n", id="connect-n-name"),
        pytest.param(["scan", "-n", "localhost", "80"], "-n", id="scan-n-name"),
        pytest.param(["connect", "a\x01b", "80"], "holds", id="control-char"),
        pytest.param(["connect", "[::1", "80"], "[::1]:PORT", id="half-bracket"),
        pytest.param(["connect", "-s", _LONG_LABEL, "127.0.0.1", "9"], "source", id="source-long"),
        pytest.param(["relay", "0", f"{_LONG_LABEL}:80"], "63", id="relay-target"),
        pytest.param(["listen", f"unix:{_LONG_PATH}"], "107", id="listen-unix-long"),
        pytest.param(["listen", "-k", f"unix:{_LONG_PATH}"], "107", id="listen-k-unix-long"),
        pytest.param(["echo", f"unix:{_LONG_PATH}"], "107", id="echo-unix-long"),
        pytest.param(["relay", f"unix:{_LONG_PATH}", "127.0.0.1:9"], "107", id="relay-unix-long"),
        pytest.param(["relay", "0", f"unix:{_LONG_PATH}"], "107", id="relay-target-unix-long"),
        pytest.param(["connect", f"unix:{_LONG_PATH}"], "107", id="connect-unix-long"),
        pytest.param(["connect", "-U", _LONG_PATH], "107", id="connect-U-long"),
        pytest.param(["connect", "unix:@" + "a" * 108], "107", id="connect-abstract-long"),
        pytest.param(["listen", "-u", f"unix:{_LONG_PATH}"], "107", id="listen-unix-dgram-long"),
    ],
)
def test_bad_hosts_and_paths_are_one_line_usage_errors(argv: list[str], named: str) -> None:
    result = run_wirecat(*argv, timeout=10)
    assert result.returncode == 2, result.stderr
    line = assert_one_error_line(result.stderr)
    assert named in line, line


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_async_peer_reset_keeps_the_os_error_as_its_cause(loop: str) -> None:
    import errno
    import socket
    import struct

    import wirecat
    from wirecat.errors import PeerReset

    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        loop_ = asyncio.get_running_loop()
        conn = await wirecat.connect(f"127.0.0.1:{listener.getsockname()[1]}")
        accepted, _ = await loop_.sock_accept(listener)
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        accepted.close()  # a reset
        listener.close()
        with pytest.raises(PeerReset) as caught:
            await asyncio.wait_for(conn.recv(), 10)
        conn.close()
        assert isinstance(caught.value.__cause__, OSError)
        assert caught.value.__cause__.errno == errno.ECONNRESET

    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


# -- 2. a connection cut off before its end is reset, never ended with a FIN -----------------

MiB = 1 << 20


def _read_until_cut(sock: socket.socket) -> tuple[int, str]:
    """Read to the end: (bytes read, "reset" or "eof")."""
    total = 0
    try:
        while chunk := sock.recv(MiB):
            total += len(chunk)
    except ConnectionResetError:
        return total, "reset"
    return total, "eof"


def _stream_16_mib(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the relay cuts it off: that is the point
        conn.sendall(b"d" * (16 * MiB))


def _clients_reading_a_little(port: int, count: int) -> list[socket.socket]:
    """``count`` clients, each past its first 256 KiB, then not reading (busy for the relay)."""
    clients = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        got = 0
        while got < 256 * 1024:
            got += len(sock.recv(256 * 1024 - got))
        clients.append(sock)
    return clients


def test_a_relay_that_gives_up_draining_resets_its_clients_and_says_so(spawn) -> None:
    target = Target(_stream_16_mib)
    relay = spawn(WIRECAT, "relay", "--drain-timeout", "0.5", "0", target.address)
    clients = _clients_reading_a_little(relay.listening_port(), 5)
    started = time.monotonic()
    relay.popen.send_signal(signal.SIGTERM)
    code, _, err = relay.finish(timeout=TIMEOUT)
    assert time.monotonic() - started < 5
    assert code == 8, err  # cut connections are not a success
    line = assert_one_error_line(err)  # ("listening on" was read already)
    assert "0 connections finished, 5 cut off (reset) after --drain-timeout 0.5 s" in line
    for sock in clients:
        with sock:
            total, how = _read_until_cut(sock)
        assert how == "reset", f"a clean end of stream after {total} of {16 * MiB} bytes"
        assert total < 16 * MiB
    target.close()


def test_a_second_signal_cuts_every_relayed_connection_at_once(spawn) -> None:
    target = Target(_stream_16_mib)
    relay = spawn(WIRECAT, "relay", "-v", "--drain-timeout", "60", "0", target.address)
    clients = _clients_reading_a_little(relay.listening_port(), 3)
    relay.popen.send_signal(signal.SIGTERM)
    assert relay.popen.stderr is not None
    read_line_matching(relay.popen.stderr, "shutting down")  # (two signals at once would merge into one)
    started = time.monotonic()
    relay.popen.send_signal(signal.SIGTERM)
    code, _, err = relay.finish(timeout=TIMEOUT)
    assert time.monotonic() - started < 5
    assert code == 130, err
    assert b"interrupted again: 3 connections cut off (reset)" in err
    for sock in clients:
        with sock:
            assert _read_until_cut(sock)[1] == "reset"
    target.close()


def test_a_relay_that_drains_everything_says_so_and_exits_0(spawn) -> None:
    target = Target(lambda conn: conn.sendall(b"done"))
    relay = spawn(WIRECAT, "relay", "-v", "0", target.address)
    with socket.create_connection(("127.0.0.1", relay.listening_port()), timeout=TIMEOUT) as sock:
        assert sock.recv(4) == b"done"
        relay.popen.send_signal(signal.SIGTERM)
        assert relay.popen.stderr is not None
        read_line_matching(relay.popen.stderr, "shutting down")  # the connection is still open then
        assert _read_until_cut(sock) == (0, "eof")  # the target ended it: a natural end
    code, _, err = relay.finish(timeout=TIMEOUT)
    assert code == 0, err
    assert b"shut down: 1 connection finished, none cut off" in err
    target.close()


def test_an_echo_server_that_gives_up_draining_resets_a_client_mid_frame(spawn) -> None:
    server = spawn(WIRECAT, "echo", "--length-prefixed", "--drain-timeout", "0.5", "0")
    with socket.create_connection(("127.0.0.1", server.listening_port()), timeout=TIMEOUT) as sock:
        sock.sendall(struct.pack(">I", 5) + b"hello")
        assert sock.recv(9) == struct.pack(">I", 5) + b"hello"
        sock.sendall(struct.pack(">I", 100) + b"half a fr")  # a frame in progress: busy
        server.popen.send_signal(signal.SIGTERM)
        code, _, err = server.finish(timeout=TIMEOUT)
        assert code == 8, err
        assert b"0 connections finished, 1 cut off (reset)" in err
        assert _read_until_cut(sock)[1] == "reset"


@pytest.mark.parametrize("exec_args", [[], ["--exec", "cat"]], ids=["stdio", "exec"])
def test_a_keep_open_listener_stopped_by_a_signal_resets_its_clients(spawn, exec_args: list[str]) -> None:
    server = spawn(WIRECAT, "listen", "-k", "0", *exec_args)
    port = server.listening_port()
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))]
        clients.append(stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)))
        for sock in clients:  # both are in (the hub and the exec server take them in turn)
            sock.sendall(b"ping\n")
        if exec_args:
            for sock in clients:
                assert sock.recv(5) == b"ping\n"
        else:
            assert server.popen.stdout is not None
            read_line_matching(server.popen.stdout, "ping")
            read_line_matching(server.popen.stdout, "ping")
        server.popen.send_signal(signal.SIGTERM)
        code, _, err = server.finish(timeout=TIMEOUT)
        assert code == 128 + signal.SIGTERM
        assert re.search(rb"stopped: 2 (clients|connections) cut off \(reset\)", err), err
        for sock in clients:
            assert _read_until_cut(sock)[1] == "reset"


@pytest.mark.parametrize("mode", ["connect", "listen"])
def test_a_one_shot_session_stopped_by_a_signal_resets_its_peer(spawn, mode: str) -> None:
    if mode == "listen":
        proc = spawn(WIRECAT, "listen", "0")
        sock = socket.create_connection(("127.0.0.1", proc.listening_port()), timeout=TIMEOUT)
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        proc = spawn(WIRECAT, "connect", "127.0.0.1", str(listener.getsockname()[1]))
        sock, _ = listener.accept()
        listener.close()
    with sock:
        assert proc.popen.stdin is not None
        proc.popen.stdin.write(b"partial\n")
        proc.popen.stdin.flush()
        assert sock.recv(8) == b"partial\n"
        proc.popen.send_signal(signal.SIGTERM)
        assert _read_until_cut(sock) == (0, "reset")
    proc.popen.wait(TIMEOUT)


def test_a_relay_idle_timeout_resets_both_sides(spawn) -> None:
    target_side: list[str] = []

    def silent(conn: socket.socket) -> None:
        target_side.append(_read_until_cut(conn)[1])

    target = Target(silent)
    relay = spawn(WIRECAT, "relay", "-i", "0.3", "0", target.address)
    with socket.create_connection(("127.0.0.1", relay.listening_port()), timeout=TIMEOUT) as sock:
        assert _read_until_cut(sock) == (0, "reset")
    target.close()
    assert target_side == ["reset"]
    relay.popen.send_signal(signal.SIGTERM)
    assert relay.finish(timeout=TIMEOUT)[0] == 0


# -- 3. a frame that has begun must end in time (slowloris) ----------------------------------


class _Drippers:
    """``count`` clients that each send b"a" every ``every`` seconds and never a newline.

    One thread; a client that is cut off connects again, as an attacker
    would. Bounded: it stops by itself after ``seconds``.
    """

    def __init__(self, port: int, count: int, *, every: float = 0.3, seconds: float = 15.0) -> None:
        self.port = port
        self.count = count
        self.every = every
        self.deadline = time.monotonic() + seconds
        self.cut = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.connected = threading.Event()

    def _connect(self) -> socket.socket:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))  # lands in the backlog when the server is full
        return sock

    def _run(self) -> None:
        socks = [self._connect() for _ in range(self.count)]
        with selectors.DefaultSelector() as selector:  # every handshake done: all in, or in the backlog
            for sock in socks:
                selector.register(sock, selectors.EVENT_WRITE)
            waiting = len(socks)
            while waiting and time.monotonic() < self.deadline:
                for key, _ in selector.select(1.0):
                    selector.unregister(key.fileobj)
                    waiting -= 1
        for sock in socks:
            sock.send(b"a")  # every frame has begun
        self.connected.set()
        try:
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                for i, sock in enumerate(socks):
                    try:
                        sock.send(b"a")
                    except (BlockingIOError, InterruptedError):
                        pass  # still connecting, or in the backlog
                    except OSError:  # cut off by the server
                        self.cut += 1
                        sock.close()
                        socks[i] = self._connect()
                self._stop.wait(self.every)  # the drip's pace, not synchronisation
        finally:
            for sock in socks:
                sock.close()

    def __enter__(self) -> _Drippers:
        self._thread.start()
        assert self.connected.wait(TIMEOUT)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)


def test_drip_clients_cannot_hold_every_slot_of_a_line_server(spawn) -> None:
    # The case: --max-conns 100 and more drip clients than that. Each
    # byte restarts the idle clock (-i 1); only --frame-timeout frees a slot.
    server = spawn(WIRECAT, "echo", "--lines", "-i", "1", "--max-conns", "100", "--frame-timeout", "1", "0")
    port = server.listening_port()
    with _Drippers(port, 120):
        # The drippers are in (and 20 in the backlog) before the normal client comes.
        assert server.popen.stderr is not None
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as normal:
            normal.sendall(b"hello\n")
            assert normal.recv(6) == b"hello\n"
        served_after = time.monotonic() - started
        line = read_line_matching(server.popen.stderr, r"took more than 1 s to send one frame")
    # It waited behind the drippers (the server was full) until the frame
    # timeout cut them, and not for ever.
    assert 0.5 < served_after < 5, served_after
    assert "cut off (reset)" in line.string
    server.popen.send_signal(signal.SIGTERM)
    assert server.finish(timeout=TIMEOUT)[0] in (0, 8)


@pytest.mark.parametrize("framing", ["lines", "length-prefixed"])
def test_the_library_cuts_off_a_frame_that_drips(framing: str) -> None:
    import wirecat
    from wirecat.framing import LengthPrefixed, Lines

    async def echo(conn: wirecat.Connection) -> None:
        async for frame in conn:
            await conn.send(frame)

    framer = Lines() if framing == "lines" else LengthPrefixed()

    async def main() -> None:
        server = await wirecat.serve(echo, "127.0.0.1:0", framing=framer, frame_timeout=0.5)
        loop = asyncio.get_running_loop()
        drip = socket.create_connection(("127.0.0.1", server.port))
        drip.setblocking(False)
        if framing == "length-prefixed":
            drip.send(struct.pack(">I", 100))  # a frame of 100 bytes begins...
        started = loop.time()
        outcome = ""
        while loop.time() - started < 5:
            try:
                await loop.sock_sendall(drip, b"a")  # ...a byte each 0.1 s: never idle, never done
                await asyncio.sleep(0.1)  # the drip's pace
            except OSError:
                outcome = "cut"
                break
        cut_after = loop.time() - started
        drip.close()
        async with wirecat.connect(server.address, framing=framer) as normal:
            await normal.send(b"still served")
            assert await normal.recv() == b"still served"
        await server.shutdown()
        assert outcome == "cut"
        assert 0.5 <= cut_after < 3

    asyncio.run(main())


def test_a_frame_may_take_its_time_while_the_server_is_not_reading() -> None:
    """Backpressure is ours, not the peer's: a frame waiting on us is not timed out."""
    import wirecat
    from wirecat.framing import Lines

    release = asyncio.Event()

    async def slow(conn: wirecat.Connection) -> None:
        await release.wait()  # reads nothing for a while: frames queue, reading pauses
        async for line in conn:
            await conn.send(line)

    async def main() -> None:
        server = await wirecat.serve(slow, "127.0.0.1:0", framing=Lines(), frame_timeout=0.3)
        async with wirecat.connect(server.address, framing=Lines()) as client:
            payload = b"x" * 60_000
            for _ in range(40):  # 2.4 MB: past the receive queue, so reading pauses mid-line
                client.write(payload)
            await asyncio.sleep(1.0)  # several frame timeouts while the server is not reading
            release.set()
            for _ in range(40):
                assert await asyncio.wait_for(client.recv(), TIMEOUT) == payload
        await server.shutdown()

    asyncio.run(main())


# -- the same kinds of fault, found elsewhere -------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["connect", "-w", "2147484", "127.0.0.1", "1"],
        ["listen", "-w", "99999999999", "0"],
        ["listen", "-k", "-i", "99999999999", "0"],
        ["listen", "-u", "--udp-idle", "2147484", "0"],
        ["scan", "-w", "2147484", "127.0.0.1", "1"],
        ["echo", "-i", "1e300", "0"],
        ["connect", "-u", "--wait-reply", "99999999999", "127.0.0.1", "9"],
    ],
)
def test_huge_timeouts_are_usage_errors_not_overflow_tracebacks(argv: list[str]) -> None:
    result = run_wirecat(*argv, timeout=10)
    assert result.returncode == 2, result.stderr
    assert "11 days" in assert_one_error_line(result.stderr)


def _library_calls() -> list[object]:
    import wirecat
    from wirecat import blocking
    from wirecat.framing import Lines

    async def handler(conn: wirecat.Connection) -> None:
        pass

    return [
        lambda: wirecat.serve(handler, None),
        lambda: wirecat.serve(handler, ("127.0.0.1", 0)),
        lambda: wirecat.serve(handler, 0, framing="lines"),
        lambda: wirecat.serve(handler, 0, framing=Lines),
        lambda: wirecat.serve(handler, 0, tls="yes"),
        lambda: wirecat.serve(None, 0),
        lambda: wirecat.serve(handler, 0, idle_timeout=float("nan")),
        lambda: wirecat.serve(handler, 0, idle_timeout=-1),
        lambda: wirecat.serve(handler, 0, idle_timeout="1"),
        lambda: wirecat.serve(handler, 0, frame_timeout=float("nan")),
        lambda: wirecat.serve(handler, 0, drain_timeout=float("inf")),
        lambda: wirecat.serve(handler, 0, backlog=10**30),
        lambda: wirecat.serve(handler, 0, allow=[None]),
        lambda: wirecat.relay(0, None),
        lambda: wirecat.relay(0, b"127.0.0.1:9"),
        lambda: wirecat.relay(0, "127.0.0.1:9", connect_timeout=1e300),
        lambda: wirecat.connect(None),
        lambda: wirecat.connect(("127.0.0.1", 9)),
        lambda: wirecat.connect("127.0.0.1:9", timeout=float("inf")),
        lambda: blocking.connect(5),
        lambda: blocking.connect("127.0.0.1:9", timeout=1e300),
    ]


@pytest.mark.parametrize("index", range(21))
def test_library_arguments_are_checked_at_the_call(index: int) -> None:
    """A bad argument is a ValueError (UsageError) or TypeError at once, never an
    OverflowError, an AttributeError, or a failure of every connection later."""

    async def call() -> None:
        result = _library_calls()[index]()  # type: ignore[operator]
        if hasattr(result, "__await__"):
            await result

    with pytest.raises((ValueError, TypeError)):
        asyncio.run(call())


@pytest.mark.parametrize(
    "make",
    [
        lambda: __import__("wirecat.framing").framing.Lines(max_length=float("nan")),
        lambda: __import__("wirecat.framing").framing.Lines(max_length=1.5),
        lambda: __import__("wirecat.framing").framing.Lines(max_length=True),
        lambda: __import__("wirecat.framing").framing.Lines(max_length=float("inf")),
        lambda: __import__("wirecat.framing").framing.LengthPrefixed(max_size=2.5),
    ],
)
def test_a_framer_limit_must_be_a_whole_number(make: object) -> None:
    with pytest.raises(ValueError, match="whole number"):
        make()  # type: ignore[operator]


@pytest.mark.parametrize("bad", [None, 5, "text"])
def test_framers_refuse_what_is_not_bytes(bad: object) -> None:
    from wirecat.framing import LengthPrefixed, Lines, Raw

    for framer in (Lines(), LengthPrefixed(), Raw()):
        with pytest.raises(TypeError):
            framer.feed(bad)  # type: ignore[arg-type]


def test_a_silent_client_before_its_proxy_header_is_idle(spawn) -> None:
    """-i runs from the accept, as it does once relaying starts: a client that sends
    no byte of its PROXY header no longer holds its slot for ever."""
    target = Target(lambda conn: None)
    relay = spawn(
        WIRECAT, "relay", "0", target.address, "--accept-proxy-protocol", "--max-conns", "1", "-i", "0.5"
    )
    port = relay.listening_port()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as silent:
        started = time.monotonic()
        assert _read_until_cut(silent) == (0, "reset")
        assert time.monotonic() - started < 5
    assert relay.popen.stderr is not None
    assert read_line_matching(relay.popen.stderr, r"sent no byte of its PROXY header for 0\.5 s")
    relay.popen.send_signal(signal.SIGTERM)
    assert relay.finish(timeout=TIMEOUT)[0] == 0
    target.close()


@pytest.fixture
def broken_program(tmp_path) -> str:
    """An executable file the kernel refuses to run (a bad ELF header)."""
    path = tmp_path / "badelf"
    path.write_bytes(b"\x7fELFx")
    path.chmod(0o755)
    return str(path)


def test_a_program_that_cannot_start_is_exit_9_and_a_reset(broken_program: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        proc = subprocess.Popen(
            [WIRECAT, "connect", "127.0.0.1", str(listener.getsockname()[1]), "--exec", broken_program],
            stderr=subprocess.PIPE,
        )
        sock, _ = listener.accept()
        with sock:
            assert _read_until_cut(sock) == (0, "reset")
        _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 9, err
    assert "cannot run" in assert_one_error_line(err)


def test_a_keep_open_exec_server_says_when_its_program_cannot_start(spawn, broken_program: str) -> None:
    server = spawn(WIRECAT, "listen", "-k", "0", "--exec", broken_program)  # no -v
    with socket.create_connection(("127.0.0.1", server.listening_port()), timeout=TIMEOUT) as sock:
        assert _read_until_cut(sock) == (0, "reset")
    assert server.popen.stderr is not None
    assert read_line_matching(server.popen.stderr, r"cannot run .*badelf")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_program_killed_by_a_signal_exits_128_plus_it(signum: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        proc = subprocess.Popen(
            [
                WIRECAT,
                "connect",
                "127.0.0.1",
                str(listener.getsockname()[1]),
                "--sh-exec",
                f"kill -{signum} $$",
            ],
            stderr=subprocess.PIPE,
        )
        sock, _ = listener.accept()
        with sock:
            _read_until_cut(sock)
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 128 + signum  # as a shell says it (was 256 - N)


@pytest.mark.parametrize(
    ("argv", "framing_break"),
    [
        (["echo", "0", "--lines", "--max-line", "10"], b"x" * 200 + b"\n"),
        (["echo", "0", "--length-prefixed", "--max-frame", "100"], struct.pack(">I", 1000)),
        (["chat", "0", "--max-line", "10"], b"x" * 200 + b"\n"),
    ],
)
def test_broken_framing_ends_with_a_reset(spawn, argv: list[str], framing_break: bytes) -> None:
    server = spawn(WIRECAT, *argv)
    with socket.create_connection(("127.0.0.1", server.listening_port()), timeout=TIMEOUT) as sock:
        sock.sendall(framing_break)
        got, how = b"", ""
        try:
            while chunk := sock.recv(65536):
                got += chunk
            how = "eof"
        except ConnectionResetError:
            how = "reset"
    assert how == "reset", got
    if argv[0] == "chat":
        assert b"bye" in got  # the goodbye is flushed before the reset


@pytest.mark.parametrize(
    "argv",
    [
        ["listen", "-n", "localhost", "0"],
        ["listen", "-k", "-q", "1", "0"],
        ["listen", "--max-conns", "5", "0"],
        ["listen", "--udp-idle", "5", "0"],
        ["connect", "-U", "-s", "127.0.0.1", "/tmp/wirecat-none.sock"],
        ["connect", "-n", ":1"],
        ["connect", "[::1]:0"],
        ["connect", "127.0.0.1", "0"],
        ["connect", "-u", "127.0.0.1", "0"],
        ["scan", "127.0.0.1", "0"],
    ],
)
def test_flags_and_addresses_that_would_change_nothing_are_usage_errors(argv: list[str]) -> None:
    result = run_wirecat(*argv, timeout=10)
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["explain", "recv"], ["connect", "--help"]])
def test_a_full_stdout_is_one_line_and_exit_9(argv: list[str]) -> None:
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [WIRECAT, *argv], stdout=full, stderr=subprocess.PIPE, timeout=10, check=False
        )
    assert result.returncode == 9, result.stderr
    assert "no space left on device" in assert_one_error_line(result.stderr)


@pytest.mark.parametrize("argv", [["--help"], ["explain", "recv"], ["connect", "--help"]])
def test_a_closed_stdout_is_one_line_and_exit_9(argv: list[str]) -> None:
    result = subprocess.run(
        f"exec {WIRECAT} {' '.join(argv)} >&-", shell=True, capture_output=True, timeout=10, check=False
    )
    assert result.returncode == 9, result.stderr
    assert "it is closed" in assert_one_error_line(result.stderr)


def test_a_bad_loop_choice_is_one_line() -> None:
    import os

    result = subprocess.run(
        [WIRECAT, "echo", "0"],
        env={**os.environ, "WIRECAT_LOOP": "bad"},
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert "WIRECAT_LOOP" in assert_one_error_line(result.stderr)  # no "never awaited" warning under it


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_connection_cut_before_its_task_ran_is_reset_too(loop: str) -> None:
    """A task cancelled before its first step runs none of its cleanup: the accept
    loop resets that socket itself, rather than leaving it open (or FIN'd at exit)."""
    import wirecat

    async def handler(conn: wirecat.Connection) -> None:
        await conn.handle_frames(conn.write)

    async def main() -> None:
        server = await wirecat.serve(handler, 0)
        client = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        # Accept now, in this step: the connection's task is made but has not run.
        server._accept_ready(server._listeners[0])
        assert await server.abort() == 1
        outcome = await asyncio.get_running_loop().run_in_executor(None, _read_until_cut, client)
        client.close()
        assert outcome == (0, "reset")

    factory = asyncio.new_event_loop
    if loop == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
