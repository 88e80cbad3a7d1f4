"""``wirecat echo``: send every frame back; the reference server for benchmarks."""

from __future__ import annotations

from wirecat.stream import Connection

__all__ = ["echo"]


async def echo(conn: Connection) -> None:
    """Echo each frame back to its sender until the peer closes.

    Frames are written from the receive path (``handle_frames``), with no task
    switch per message, and reading pauses while the peer does not read its
    echoes; so this runs at the speed of a raw asyncio Protocol and a client
    that only sends cannot grow the server's memory.
    """
    await conn.handle_frames(conn.write)
