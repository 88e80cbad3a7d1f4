"""An echo server with wirecat, in a few lines: framing, limits, shutdown built in.

    python examples/echo_server.py [PORT]

Each line a client sends comes back. wirecat does the rest: whole lines
however TCP splits them, a line-length limit, idle timeouts, at most 1024
clients at once, and on Ctrl-C a graceful shutdown.
"""

import asyncio
import sys

import wirecat


async def echo(conn: wirecat.Connection) -> None:
    async for line in conn:  # whole lines, without their newline
        await conn.send(line)  # sends all of it, waiting if the client is slow


async def main(port: int) -> None:
    server = await wirecat.serve(echo, f"127.0.0.1:{port}", framing=wirecat.Lines())
    print(f"listening on {server.address}", file=sys.stderr, flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    except KeyboardInterrupt:
        pass
