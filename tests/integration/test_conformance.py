"""The stream conformance battery (wirecat.testing.check_stream) on every endpoint kind and engine.

Endpoints: a TCP socket, a Unix socket, a pair of pipes. Engines: the relay
(its event-loop splice engine, on both loops), the stdio session (the
installed ``wirecat connect``, its pumps between a pipe pair and a socket)
and the exec engine (``listen -k --exec``, with a stdio session as its program).

Not here: the ``-k`` hub, which is a broadcast, not a stream (a client's end
of stream is its leaving, and stdout, shared by every client, never ends
with one: README, "listen -k"); its ends are tested in test_listen.py
(``test_keep_open_end_of_stdin_...``). UDP has no stream. The server
library's connections carry framed messages, not a byte stream: their
half-close, send after the end and resets are tested in test_server.py; its
accept loop is the relay's Listener, run here.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import WIRECAT
from wirecat.endpoint import FdEndpoint, SocketEndpoint
from wirecat.testing import StreamEnd, check_stream, read_line_matching

pytestmark = pytest.mark.timeout(180)

Pair = Callable[[], tuple[StreamEnd, StreamEnd]]


def tcp_pair() -> tuple[StreamEnd, StreamEnd]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    for sock in (a, b):
        sock.setblocking(False)
    return SocketEndpoint(a), SocketEndpoint(b)


def unix_pair() -> tuple[StreamEnd, StreamEnd]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for sock in (a, b):
        sock.setblocking(False)
    return SocketEndpoint(a, peer="b"), SocketEndpoint(b, peer="a")


def pipe_pair() -> tuple[StreamEnd, StreamEnd]:
    a_to_b_r, a_to_b_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    b_to_a_r, b_to_a_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    return (
        _PipeEnd(b_to_a_r, a_to_b_w),
        _PipeEnd(a_to_b_r, b_to_a_w),
    )


class _PipeEnd(FdEndpoint):
    """An FdEndpoint that also closes its read end on close() (the test owns both)."""

    def close(self) -> None:
        super().close()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self._read_fd = -1

    def __init__(self, read_fd: int, write_fd: int) -> None:
        super().__init__(read_fd, write_fd, owns_write=True, peer="pipe")


@pytest.mark.parametrize(
    ("make_pair", "resets"),
    [
        pytest.param(tcp_pair, True, id="tcp"),
        pytest.param(unix_pair, False, id="unix"),
        pytest.param(pipe_pair, False, id="pipes"),
    ],
)
def test_endpoints(make_pair: Pair, resets: bool) -> None:
    check_stream(make_pair, resets=resets)


@pytest.fixture(params=["asyncio", "uvloop"])
def relayed_pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """Pairs whose A is a client of a wirecat relay and B the connection the target accepted."""
    factory = asyncio.new_event_loop
    if request.param == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    import wirecat

    target = socket.create_server(("127.0.0.1", 0), backlog=64)
    loop = factory()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        holder["relay"] = await wirecat.relay("127.0.0.1:0", f"127.0.0.1:{target.getsockname()[1]}")
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    port = int(str(holder["relay"].address).rsplit(":", 1)[1])  # type: ignore[attr-defined]

    def make() -> tuple[StreamEnd, StreamEnd]:
        a = socket.create_connection(("127.0.0.1", port))
        b, _ = target.accept()
        for sock in (a, b):
            sock.setblocking(False)
        return SocketEndpoint(a), SocketEndpoint(b)

    yield make
    stopped = asyncio.run_coroutine_threadsafe(holder["relay"].shutdown(0), loop)  # type: ignore[attr-defined]
    stopped.result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
    target.close()


def test_the_relay_engine(relayed_pair: Pair) -> None:
    check_stream(relayed_pair, resets=True)


@pytest.fixture
def session_pair() -> Iterator[Pair]:
    """Pairs whose A is a `wirecat connect` process's stdin and stdout, B its peer."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    procs: list[subprocess.Popen[bytes]] = []

    def make() -> tuple[StreamEnd, StreamEnd]:
        proc = subprocess.Popen(
            [WIRECAT, "connect", "127.0.0.1", str(listener.getsockname()[1])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        b, _ = listener.accept()
        b.setblocking(False)
        assert proc.stdin is not None
        assert proc.stdout is not None
        stdin = os.dup(proc.stdin.fileno())  # the endpoint's own: shutdown_write closes it
        proc.stdin.close()
        proc.stdin = None
        os.set_blocking(stdin, False)
        os.set_blocking(proc.stdout.fileno(), False)
        return FdEndpoint(proc.stdout.fileno(), stdin, owns_write=True, peer="wirecat"), SocketEndpoint(b)

    yield make
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    listener.close()


def test_the_stdio_session_engine(session_pair: Pair) -> None:
    # A pipe has no reset, and a program's stdout stays open until it exits.
    check_stream(session_pair, resets=False, b_half_close=False)


def _listening_port(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stderr is not None
    match = read_line_matching(proc.stderr, r"listening on .*:(\d+)$")
    return int(match.group(1))


@pytest.fixture
def exec_pair(tmp_path: Path) -> Iterator[Pair]:
    """Pairs whose A is a client of `wirecat listen -k --exec`, B the far end of the program.

    The program is `wirecat connect -U SOCKET`, so what the exec engine does
    with the client's bytes, ends and resets reaches B, a Unix socket this test
    accepts: the exec engine and a stdio session in series.
    """
    path = str(tmp_path / "far.sock")
    far = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    far.bind(path)
    far.listen(16)
    server = subprocess.Popen(
        [WIRECAT, "listen", "-v", "-k", "127.0.0.1", "0", "--exec", WIRECAT, "connect", "-U", path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = _listening_port(server)

    def make() -> tuple[StreamEnd, StreamEnd]:
        a = socket.create_connection(("127.0.0.1", port))
        b, _ = far.accept()
        for sock in (a, b):
            sock.setblocking(False)
        return SocketEndpoint(a), SocketEndpoint(b, peer="program")

    yield make
    server.terminate()  # by PID: the process this test started
    server.wait(10)
    assert server.stderr is not None
    server.stderr.close()
    far.close()


def test_the_exec_engine(exec_pair: Pair) -> None:
    # A client's reset ends the program's stdin (a pipe has no reset): an orderly end at B.
    # B's half-close ends the program's input, not its output: a program's stdout
    # stays open until it exits (as in the stdio session above).
    check_stream(exec_pair, resets=False, b_half_close=False)
