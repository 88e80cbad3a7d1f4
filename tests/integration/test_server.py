"""The server library end to end, on real loopback sockets, under both event loops."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

import wirecat
from wirecat import blocking
from wirecat.errors import ConnectError, ConnectionClosed, FrameError, IdleTimeout, PeerReset
from wirecat.framing import LengthPrefixed, Lines, Raw
from wirecat.runtime import raise_open_file_limit
from wirecat.stream import Connection

T = TypeVar("T")
TIMEOUT = 10.0

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion on the loop under test."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def _run(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            loop = runner.get_loop()
            assert (type(loop).__module__.startswith("uvloop")) == (request.param == "uvloop")
            return runner.run(asyncio.wait_for(coro, 45))

    return _run


async def echo(conn: Connection) -> None:
    async for frame in conn:
        await conn.send(frame)


async def fast_echo(conn: Connection) -> None:
    await conn.handle_frames(conn.write)


def raw_client(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def to_thread(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def recv_until_end(sock: socket.socket) -> int:
    """Bytes received until EOF or a reset (either ends the stream)."""
    total = 0
    try:
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
    except ConnectionResetError:
        pass
    return total


def recv_to_eof(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def recv_to_end(sock: socket.socket) -> tuple[bytes, str]:
    """Everything received, and how it ended: ``"eof"`` or ``"reset"``."""
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        return bytes(data), "reset"
    return bytes(data), "eof"


def is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# -- basics -----------------------------------------------------------------------------------


def test_serve_reports_the_real_port_and_echoes(run) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0") as server:
            assert server.address.startswith("127.0.0.1:")
            assert server.port > 0
            async with wirecat.connect(server.address) as conn:
                await conn.send(b"hello")
                assert await conn.recv() == b"hello"
                assert conn.peer == server.address
                assert conn.bytes_sent == 5
                assert conn.bytes_received == 5
                assert len(server.connections) == 1
                (server_side,) = server.connections
                assert server_side.peer == conn.local

    run(main())


@pytest.mark.parametrize("handler", [echo, fast_echo], ids=["recv-send", "handle_frames"])
@pytest.mark.parametrize(
    "framing",
    [Lines(max_length=100), LengthPrefixed(max_size=100)],
    ids=["lines", "length-prefixed"],
)
def test_frames_survive_any_chunking_over_a_real_socket(run, handler, framing) -> None:
    """The client sends in random pieces (some one byte): the server sees whole frames."""
    rng = random.Random(7)
    frames = [rng.randbytes(rng.randrange(0, 60)).replace(b"\n", b"").replace(b"\r", b"") for _ in range(200)]
    wire = b"".join(framing.encode(f) for f in frames)

    async def main() -> None:
        async with await wirecat.serve(handler, "127.0.0.1:0", framing=framing) as server:

            def client() -> bytes:
                with raw_client(server.address) as sock:
                    position = 0
                    while position < len(wire):
                        step = rng.choice([1, 1, 2, 3, 7, 50, 300])
                        sock.sendall(wire[position : position + step])
                        position += step
                    sock.shutdown(socket.SHUT_WR)
                    return recv_to_eof(sock)

            echoed = await to_thread(client)
            parser = framing.clone()
            assert parser.feed(echoed) + parser.feed(b"") == frames

    run(main())


def test_a_thousand_concurrent_clients(run) -> None:
    raise_open_file_limit(4096)
    count = 1000

    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", framing=Lines()) as server:
            opened = asyncio.Event()
            connected = 0

            async def client(number: int) -> bytes | None:
                nonlocal connected
                async with wirecat.connect(server.address, framing=Lines()) as conn:
                    connected += 1
                    if connected == count:
                        opened.set()
                    await asyncio.wait_for(opened.wait(), TIMEOUT * 3)  # all open at once
                    await conn.send(b"client %d" % number)
                    return await conn.recv()

            replies = await asyncio.gather(*(client(n) for n in range(count)))
            assert replies == [b"client %d" % n for n in range(count)]
            assert server.accepted == count

    run(main())


def test_unix_socket_server_and_client(run, tmp_path) -> None:
    path = tmp_path / "echo.sock"

    async def main() -> None:
        async with await wirecat.serve(echo, f"unix:{path}", framing=Lines()) as server:
            assert server.address == f"unix:{path}"
            async with wirecat.connect(f"unix:{path}", framing=Lines()) as conn:
                await conn.send(b"over unix")
                assert await conn.recv() == b"over unix"
        assert not path.exists()  # removed at shutdown

    run(main())


def test_abstract_unix_socket_server_and_client(run) -> None:
    """``unix:@name`` (Linux's abstract namespace) on both loops: uvloop refused it by path."""
    name = f"unix:@wirecat-test-{time.monotonic_ns()}"

    async def main() -> None:
        async with (
            await wirecat.serve(echo, name, framing=Lines()) as server,
            wirecat.connect(server.address, framing=Lines()) as conn,
        ):
            await conn.send(b"no file at all")
            assert await conn.recv() == b"no file at all"

    run(main())


def test_ipv6_server_and_client(run) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "[::1]:0") as server:
            assert server.address.startswith("[::1]:")
            async with wirecat.connect(server.address) as conn:
                await conn.send(b"v6")
                assert await conn.recv() == b"v6"

    run(main())


def test_half_close_request_then_reply(run) -> None:
    """The client sends, half-closes, and still gets the whole reply."""

    async def upper_after_eof(conn: Connection) -> None:
        body = b"".join([frame async for frame in conn])
        await conn.send(body.upper())

    async def main() -> None:
        async with await wirecat.serve(upper_after_eof, "127.0.0.1:0") as server:
            async with wirecat.connect(server.address) as conn:
                await conn.send(b"abc" * 100_000)
                conn.send_eof()
                reply = b"".join([chunk async for chunk in conn])
            assert reply == b"ABC" * 100_000

    run(main())


def test_connect_errors_are_wirecat_errors(run) -> None:
    async def main() -> None:
        server = await wirecat.serve(echo, "127.0.0.1:0")
        address = server.address
        await server.shutdown()
        with pytest.raises(ConnectError):
            await wirecat.connect(address)

    run(main())


@pytest.mark.parametrize("end", ["close", "send_eof"])
def test_send_after_close_or_send_eof_raises(run, end: str) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0") as server:
            conn = await wirecat.connect(server.address)
            getattr(conn, end)()
            with pytest.raises(ConnectionClosed):
                await conn.send(b"late")
            conn.close()
            await conn.wait_closed()

    run(main())


# -- limits and failures ----------------------------------------------------------------------


def test_idle_timeout_closes_silent_clients_only(run) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", idle_timeout=0.5) as server:
            silent = await wirecat.connect(server.address)
            chatty = await wirecat.connect(server.address)
            started = time.monotonic()
            while time.monotonic() - started < 1.5:  # keep one busy past 3 timeouts
                await chatty.send(b"x")
                assert await chatty.recv() == b"x"
                await asyncio.sleep(0.1)  # pacing, not synchronisation
            with pytest.raises(PeerReset):  # cut off by the server: a reset, never a clean end
                await silent.recv()
            await chatty.send(b"still here")
            assert await chatty.recv() == b"still here"
            for conn in (silent, chatty):
                conn.close()
            await silent.wait_closed()

    run(main())


def test_idle_timeout_ends_a_handler_waiting_in_send_for_a_client_that_never_reads(run) -> None:
    """The wait in send() is the handler's, the idleness is the client's: the client is closed."""
    ended: asyncio.Queue[BaseException | None] = asyncio.Queue()

    async def talker(conn: Connection) -> None:
        try:
            while True:
                await conn.send(b"y" * 65536)
        except wirecat.WirecatError as exc:
            ended.put_nowait(exc)
            raise

    async def main() -> None:
        async with await wirecat.serve(talker, "127.0.0.1:0", idle_timeout=0.5) as server:
            sock = await to_thread(raw_client, server.address)  # connects, then reads nothing
            error = await asyncio.wait_for(ended.get(), TIMEOUT)
            assert isinstance(error, IdleTimeout)
            sock.settimeout(TIMEOUT)
            await to_thread(recv_until_end, sock)  # and the connection was closed
            sock.close()

    run(main())


def test_idle_timeout_spares_a_slow_reader_that_still_takes_bytes(run) -> None:
    """send() waits on a client that reads slowly: bytes still move, so it is not idle."""
    failures: list[BaseException] = []

    async def streamer(conn: Connection) -> None:
        try:
            while True:
                await conn.send(b"s" * 65536)
        except wirecat.WirecatError as exc:
            failures.append(exc)

    def read_slowly(sock: socket.socket, seconds: float) -> int:
        total = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            total += len(sock.recv(4096))
            time.sleep(0.05)  # pacing: a slow reader, not synchronisation
        return total

    async def main() -> None:
        async with await wirecat.serve(streamer, "127.0.0.1:0", idle_timeout=0.5) as server:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small from the first window
            sock.settimeout(TIMEOUT)
            await to_thread(sock.connect, ("127.0.0.1", server.port))
            assert await to_thread(read_slowly, sock, 2.0) > 0
            assert failures == []  # four timeouts passed, and it is still being served
            assert len(server.connections) == 1
            sock.close()

    run(main())


def test_idle_timeout_after_a_write_comes_within_a_quarter_more(run) -> None:
    """A write is seen at the next look only: looks come every quarter of the timeout."""
    waited: asyncio.Queue[float] = asyncio.Queue()

    async def handler(conn: Connection) -> None:
        await asyncio.sleep(0.3)
        await conn.send(b"then nothing")  # the last byte that moves
        sent_at = time.monotonic()
        with pytest.raises(IdleTimeout):
            await conn.recv()
        waited.put_nowait(time.monotonic() - sent_at)

    async def main() -> None:
        async with await wirecat.serve(handler, "127.0.0.1:0", idle_timeout=1.0) as server:
            sock = await to_thread(raw_client, server.address)
            idle = await asyncio.wait_for(waited.get(), TIMEOUT)
            assert 0.95 <= idle <= 1.25 + 0.15  # was up to 2 timeouts
            sock.close()

    run(main())


def test_max_connections_makes_the_next_client_wait(run) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", max_connections=2) as server:
            first = await wirecat.connect(server.address)
            second = await wirecat.connect(server.address)
            for conn in (first, second):
                await conn.send(b"in")
                assert await conn.recv() == b"in"
            third = await wirecat.connect(server.address)  # the kernel accepts it into the backlog
            await third.send(b"waiting")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(third.recv(), 0.5)
            assert len(server.connections) == 2
            first.close()
            assert await asyncio.wait_for(third.recv(), TIMEOUT) == b"waiting"  # served once a slot freed
            second.close()
            third.close()

    run(main())


def test_max_connections_refuse_mode_closes_at_once_and_logs(run, caplog) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", max_connections=1, when_full="refuse") as server:
            first = await wirecat.connect(server.address)
            await first.send(b"a")
            assert await first.recv() == b"a"
            refused = await to_thread(raw_client, server.address)
            assert await to_thread(is_closed, refused)
            refused.close()
            first.close()

    with caplog.at_level(logging.WARNING, logger="wirecat.server"):
        run(main())
    assert "at the limit of 1 connection" in caplog.text


def test_denied_peer_is_closed_before_any_byte(run, caplog) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", deny=["127.0.0.0/8"]) as server:
            sock = await to_thread(raw_client, server.address)
            assert await to_thread(is_closed, sock)
            sock.close()
            assert server.connections == frozenset()

    with caplog.at_level(logging.INFO, logger="wirecat.server"):
        run(main())
    assert "not allowed" in caplog.text


def test_a_failing_handler_closes_only_its_connection(run, caplog) -> None:
    async def fragile(conn: Connection) -> None:
        async for frame in conn:
            if frame == b"boom":
                raise RuntimeError("the handler broke")
            await conn.send(frame)

    async def main() -> None:
        async with await wirecat.serve(fragile, "127.0.0.1:0", framing=Lines()) as server:
            steady = await wirecat.connect(server.address, framing=Lines())
            doomed = await wirecat.connect(server.address, framing=Lines())
            await doomed.send(b"boom")
            with pytest.raises(PeerReset):  # the handler broke: its stream was cut, not finished
                await doomed.recv()
            await steady.send(b"fine")
            assert await steady.recv() == b"fine"
            steady.close()
            doomed.close()

    with caplog.at_level(logging.ERROR, logger="wirecat.server"):
        run(main())
    assert "handler failed for 127.0.0.1:" in caplog.text
    assert "the handler broke" in caplog.text


@pytest.mark.parametrize("handler", [echo, fast_echo], ids=["recv-send", "handle_frames"])
def test_an_oversize_frame_closes_that_connection_and_is_logged(run, caplog, handler) -> None:
    async def main() -> None:
        async with await wirecat.serve(handler, "127.0.0.1:0", framing=Lines(max_length=10)) as server:
            other = await wirecat.connect(server.address, framing=Lines())
            sock = await to_thread(raw_client, server.address)
            await to_thread(sock.sendall, b"short\n" + b"x" * 11)  # a line over the limit, no newline yet
            # The good frame first, then a reset: broken framing ends it, never cleanly.
            assert await to_thread(recv_to_end, sock) == (b"short\n", "reset")
            sock.close()
            await other.send(b"unharmed")
            assert await other.recv() == b"unharmed"
            other.close()

    with caplog.at_level(logging.WARNING, logger="wirecat.server"):
        run(main())
    assert "line longer than 10 bytes" in caplog.text


def test_a_header_announcing_too_much_is_refused_before_buffering(run) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", framing=LengthPrefixed(max_size=1000)) as server:
            sock = await to_thread(raw_client, server.address)
            await to_thread(sock.sendall, (2**31).to_bytes(4, "big"))
            assert await to_thread(is_closed, sock)
            sock.close()

    run(main())


def test_a_client_that_does_not_read_cannot_grow_server_memory(run) -> None:
    """Echo to a client that only sends: the server stops reading instead of buffering."""

    async def main() -> None:
        async with await wirecat.serve(fast_echo, "127.0.0.1:0") as server:
            sock = await to_thread(raw_client, server.address)
            sock.settimeout(2.0)

            def flood() -> int:
                sent = 0
                chunk = b"z" * 65536
                try:
                    while sent < 1 << 30:
                        sent += sock.send(chunk)
                except TimeoutError:  # the server stopped reading: our send blocks
                    return sent
                raise AssertionError("the server read 1 GiB that nobody read back")

            sent = await to_thread(flood)
            (conn,) = server.connections
            assert conn.write_buffer_size < 4 << 20  # bounded, not ~sent
            assert sent < 256 << 20
            sock.settimeout(TIMEOUT)
            sock.shutdown(socket.SHUT_WR)
            assert len(await to_thread(recv_to_eof, sock)) == sent  # every byte echoed, in the end
            sock.close()

    run(main())


# -- graceful shutdown ------------------------------------------------------------------------


def test_shutdown_ends_idle_handlers_at_once_and_lets_a_frame_in_progress_finish(run) -> None:
    framing = LengthPrefixed()

    async def main() -> None:
        both_started = asyncio.Event()
        started_count = 0

        async def counted_echo(conn: Connection) -> None:
            nonlocal started_count
            started_count += 1
            if started_count == 2:
                both_started.set()
            await echo(conn)

        server = await wirecat.serve(counted_echo, "127.0.0.1:0", framing=framing, drain_timeout=8)
        idle = await wirecat.connect(server.address, framing=framing)
        mid = await to_thread(raw_client, server.address)
        wire = framing.encode(b"the message in flight")
        await to_thread(mid.sendall, wire[:7])
        await both_started.wait()
        started = time.monotonic()
        stopping = asyncio.create_task(server.shutdown())
        assert await idle.recv() is None  # idle: end of stream at once
        await to_thread(mid.sendall, wire[7:])
        assert await to_thread(recv_to_eof, mid) == wire  # finished, echoed, then closed
        await stopping
        assert time.monotonic() - started < 5  # nobody waited for the drain timeout
        assert not server.is_serving()
        mid.close()
        idle.close()

    run(main())


def test_shutdown_closes_busy_handlers_after_the_drain_timeout(run, caplog) -> None:
    busy = asyncio.Event()

    async def slow(conn: Connection) -> None:
        await conn.recv()
        busy.set()
        await asyncio.sleep(60)  # never finishes on its own

    async def main() -> None:
        server = await wirecat.serve(slow, "127.0.0.1:0", drain_timeout=0.3)
        conn = await wirecat.connect(server.address)
        await conn.send(b"work")
        await busy.wait()
        started = time.monotonic()
        assert await server.shutdown() == (0, 1)  # none finished, one cut off
        assert 0.3 <= time.monotonic() - started < 5
        with pytest.raises(PeerReset):  # cut off: a reset, never a clean end of stream
            await conn.recv()
        conn.close()
        await conn.wait_closed()

    with caplog.at_level(logging.INFO, logger="wirecat.server"):
        run(main())
    assert "still busy after 0.3 s" in caplog.text


def test_shutdown_flushes_what_the_handler_sent(run) -> None:
    big = random.Random(3).randbytes(8 << 20)

    written = asyncio.Event()

    async def sender(conn: Connection) -> None:
        conn.write(big)  # queued, not yet taken by a client that is not reading
        written.set()
        await conn.recv()

    async def main() -> None:
        server = await wirecat.serve(sender, "127.0.0.1:0", drain_timeout=10)
        sock = await to_thread(raw_client, server.address)
        await written.wait()
        stopping = asyncio.create_task(server.shutdown())
        assert await to_thread(recv_to_eof, sock) == big
        await stopping
        sock.close()

    run(main())


def test_a_handler_can_tell_its_peer_the_server_is_shutting_down(run) -> None:
    """``conn.is_stopping``: the end of stream is the server's, and the handler may say so."""

    async def polite(conn: Connection) -> None:
        async for frame in conn:
            await conn.send(frame)
        await conn.send(b"shutting down" if conn.is_stopping else b"you closed")

    async def main() -> None:
        server = await wirecat.serve(polite, "127.0.0.1:0", framing=Lines())
        leaving = await wirecat.connect(server.address, framing=Lines())
        staying = await wirecat.connect(server.address, framing=Lines())
        await leaving.send(b"hi")
        await staying.send(b"hi")
        assert (await leaving.recv(), await staying.recv()) == (b"hi", b"hi")  # both handlers run
        leaving.send_eof()
        assert await leaving.recv() == b"you closed"
        stopping = asyncio.create_task(server.shutdown())
        assert await staying.recv() == b"shutting down"
        assert await staying.recv() is None
        assert (await stopping).cut == 0
        assert not staying.is_stopping  # a client's connection: no server shuts it down
        for conn in (leaving, staying):
            conn.close()
            await conn.wait_closed()

    run(main())


def test_data_a_closing_peer_never_takes_is_dropped_with_a_warning(run, caplog) -> None:
    """A handler returned with replies queued for a peer that does not read: after
    drain_timeout they are dropped and the peer reset, and a warning says so (it was
    said only in the connection's end_reason, under -v)."""
    big = random.Random(4).randbytes(16 << 20)  # more than the kernel's buffers hold

    async def hurried(conn: Connection) -> None:
        conn.write(big)  # and return at once: the close is left to flush it

    async def main() -> None:
        server = await wirecat.serve(hurried, "127.0.0.1:0", drain_timeout=0.3)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        closed: list[wirecat.events.Closed] = []
        ended = asyncio.Event()

        def on_event(event: wirecat.events.Event) -> None:
            if isinstance(event, wirecat.events.Closed):
                closed.append(event)
                ended.set()

        unsubscribe = wirecat.events.subscribe(on_event)
        try:
            # The server's side ends after 0.3 s, the client having read nothing.
            await asyncio.wait_for(ended.wait(), TIMEOUT)
        finally:
            unsubscribe()
        assert "unsent data dropped" in closed[0].ending
        assert await to_thread(recv_until_end, sock) < len(big)
        sock.close()
        await server.shutdown()

    with caplog.at_level(logging.WARNING, logger="wirecat.server"):
        run(main())
    assert (
        "the peer did not take within 0.3 s of closing were dropped; the connection was reset" in caplog.text
    )


def test_a_reply_still_flushing_when_shutdown_ends_is_aborted_not_left_open(run) -> None:
    """shutdown() returns with no connection's socket left open, even one cut mid-flush."""
    big = b"r" * (64 << 20)
    returned = asyncio.Event()

    async def replier(conn: Connection) -> None:
        conn.write(big)
        returned.set()  # and return: the server goes on to flush the reply while closing

    async def main() -> None:
        server = await wirecat.serve(replier, "127.0.0.1:0", drain_timeout=0.3)
        sock = await to_thread(raw_client, server.address)  # reads nothing
        await returned.wait()
        await server.shutdown()
        sock.settimeout(TIMEOUT)
        received = await to_thread(recv_until_end, sock)
        assert received < len(big)  # cut off, and the end came: the socket was closed
        assert server.port > 0  # still known after shutdown
        sock.close()

    run(main())


def test_serve_forever_returns_after_shutdown(run) -> None:
    async def main() -> None:
        server = await wirecat.serve(echo, "127.0.0.1:0")
        forever = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0)
        assert not forever.done()
        await server.shutdown()
        await asyncio.wait_for(forever, TIMEOUT)

    run(main())


# -- the blocking client ----------------------------------------------------------------------


def test_blocking_client_with_framing(run) -> None:
    async def main() -> None:
        async with await wirecat.serve(echo, "127.0.0.1:0", framing=LengthPrefixed()) as server:

            def client() -> list[bytes | None]:
                with blocking.connect(server.address, framing=LengthPrefixed(), timeout=TIMEOUT) as conn:
                    conn.send(b"one")
                    conn.send(b"")
                    conn.send(b"\x00" * 100_000)
                    replies = [conn.recv(), conn.recv(), conn.recv()]
                    conn.send_eof()
                    replies.append(conn.recv())
                    return replies

            assert await to_thread(client) == [b"one", b"", b"\x00" * 100_000, None]

    run(main())


def test_blocking_client_iterates_lines_until_eof(run) -> None:
    async def greeter(conn: Connection) -> None:
        for word in (b"hello", b"from", b"the server"):
            await conn.send(word)

    async def main() -> None:
        async with await wirecat.serve(greeter, "127.0.0.1:0", framing=Lines()) as server:

            def client() -> list[bytes]:
                with blocking.connect(server.address, framing=Lines(), timeout=TIMEOUT) as conn:
                    return list(conn)

            assert await to_thread(client) == [b"hello", b"from", b"the server"]

    run(main())


def test_blocking_client_raises_frame_errors() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with blocking.connect(f"127.0.0.1:{port}", framing=Lines(max_length=4), timeout=TIMEOUT) as conn:
            server_side, _ = listener.accept()
            with server_side:
                server_side.sendall(b"one\ntwo\nmuch too long\nthree\n")
                assert conn.recv() == b"one"  # the whole frames before the bad one come first
                assert conn.recv() == b"two"
                for _ in range(2):  # then the error, every time: what follows is not parsed
                    with pytest.raises(FrameError):
                        conn.recv()


def test_raw_is_the_default_framing(run) -> None:
    async def main() -> None:
        server = await wirecat.serve(echo, "127.0.0.1:0")
        async with server, wirecat.connect(server.address) as conn:
            assert isinstance(conn.framer, Raw)
            await conn.send(b"line one\nline two\n")
            received = b""
            while len(received) < 18:
                received += await conn.recv() or b""
            assert received == b"line one\nline two\n"

    run(main())


def test_handler_type_is_a_coroutine_function() -> None:
    handler: Callable[[Connection], Awaitable[None]] = echo
    assert asyncio.iscoroutinefunction(handler)
