#!/usr/bin/env python3
"""Echo servers to compare wirecat against, each the usual way to write one.

    python benchmarks/reference_servers.py KIND [PORT]

KIND is one of:

``asyncio-streams``
    ``asyncio.start_server`` on the standard library's loop, read/write/drain:
    what most Python tutorials write.
``uvloop-streams``
    the same code on uvloop.
``uvloop-protocol``
    an ``asyncio.Protocol`` whose ``data_received`` writes the data back, on
    uvloop: the fastest pure-Python design, the target of issue 3.

Each listens on 127.0.0.1 (port 0 by default), prints ``listening on
127.0.0.1:PORT`` on stderr, and runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys


class EchoProtocol(asyncio.Protocol):
    """Write back what comes; pause reading while the peer does not read (backpressure)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # type: ignore[attr-defined]

    def resume_writing(self) -> None:
        self.transport.resume_reading()  # type: ignore[attr-defined]


async def echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(kind: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    if kind.endswith("protocol"):
        server = await loop.create_server(EchoProtocol, "127.0.0.1", port, backlog=4096)
    else:
        server = await asyncio.start_server(echo_stream, "127.0.0.1", port, backlog=4096)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", file=sys.stderr, flush=True)
    stop = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind not in ("asyncio-streams", "uvloop-streams", "uvloop-protocol"):
        sys.exit(f"unknown kind {kind!r}")
    if kind.startswith("uvloop"):
        import uvloop

        run = uvloop.run
    else:
        run = asyncio.run
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run(main(kind, int(sys.argv[2]) if len(sys.argv) > 2 else 0))
