"""The one dialer's race on real loopback sockets, blocking and on both event loops.

A "slow" address is a listener whose accept queue is full: the kernel drops
further SYNs, so a connect to it hangs, as one to a dead host does.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

from wirecat.dial import race_async, race_blocking
from wirecat.errors import ConnectError, ConnectTimeout
from wirecat.resolve import SocketAddress

T = TypeVar("T")
DELAY = 0.25


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    factory = asyncio.new_event_loop
    if request.param == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop

    def _run(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(asyncio.wait_for(coro, 30))

    return _run


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _settled_fds() -> int:
    """Descriptors open once the loop has run its callbacks: uvloop closes a
    cancelled attempt's watcher on the next iteration."""
    await asyncio.sleep(0)
    return _fds()


def _address(sock: socket.socket) -> SocketAddress:
    return SocketAddress(socket.AF_INET, sock.getsockname())


@contextmanager
def slow_address() -> Iterator[SocketAddress]:
    """An address whose connects hang: its listener's accept queue is full."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers = []
    try:
        # Fill the queue (backlog 0 still holds one, or two on some kernels).
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        time.sleep(0.05)  # let the handshakes land in the queue (pacing for the kernel, not a result)
        yield _address(listener)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextmanager
def good_address() -> Iterator[SocketAddress]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield _address(listener)


def refused_address() -> SocketAddress:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return _address(listener)  # closed: nothing listens there now


def test_blocking_race_reaches_the_second_after_the_delay() -> None:
    before = _fds()
    with slow_address() as slow, good_address() as good:
        started = time.monotonic()
        with race_blocking([slow, good], "x", delay=DELAY, timeout=10) as sock:
            took = time.monotonic() - started
            assert sock.getpeername() == good.sockaddr
    assert DELAY * 0.9 <= took < 3
    assert _fds() == before  # the slow attempt's socket was closed


def test_blocking_race_moves_on_at_once_after_a_refusal() -> None:
    with good_address() as good:
        started = time.monotonic()
        with race_blocking([refused_address(), good], "x", delay=5.0, timeout=10) as sock:
            assert sock.getpeername() == good.sockaddr
        assert time.monotonic() - started < 2  # not the 5 s stagger


def test_blocking_race_times_out_and_closes_every_attempt() -> None:
    with slow_address() as a, slow_address() as b:
        before = _fds()
        with pytest.raises(ConnectTimeout):
            race_blocking([a, b], "x", delay=0.1, timeout=0.5)
        assert _fds() == before


def test_async_race_reaches_the_second_after_the_delay(run) -> None:
    async def main() -> float:
        with slow_address() as slow, good_address() as good:
            loop = asyncio.get_running_loop()
            started = loop.time()
            sock = await race_async([slow, good], "x", delay=DELAY, timeout=10)
            with sock:
                assert sock.getpeername() == good.sockaddr
            return loop.time() - started

    run(asyncio.sleep(0))  # a first loop (uvloop) opens descriptors it keeps for the process
    before = _fds()
    took = run(main())
    assert DELAY * 0.9 <= took < 3
    assert _fds() == before


def test_async_race_every_failure_named(run) -> None:
    async def main() -> None:
        with pytest.raises(ConnectError, match="every address failed"):
            await race_async([refused_address(), refused_address()], "x", delay=DELAY, timeout=5)

    run(asyncio.sleep(0))
    before = _fds()
    run(main())
    assert _fds() == before


def test_async_race_leaves_no_orphan_after_a_timeout_or_a_cancel(run) -> None:
    async def main() -> None:
        with slow_address() as a, slow_address() as b:
            inside = await _settled_fds()
            with pytest.raises(ConnectTimeout):
                await race_async([a, b], "x", delay=0.1, timeout=0.4)
            assert await _settled_fds() == inside
            with pytest.raises(TimeoutError):  # the caller's own deadline cancels the race
                async with asyncio.timeout(0.3):
                    await race_async([a, b], "x", delay=0.1)
            assert await _settled_fds() == inside

    run(main())
