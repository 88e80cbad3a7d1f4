"""``wirecat broker``: bytes from any client go to all the others, like ``ncat --broker``.

No framing: what a client sends is relayed as it arrives, from the receive
path itself (``handle_frames``), to every other client. As in the chat room,
a client that does not read is disconnected once it is ``max_queue`` bytes
behind, so it never stalls the others.
"""

from __future__ import annotations

from wirecat.errors import ConnectionClosed
from wirecat.events import Note, emit
from wirecat.limits import DEFAULT_SEND_QUEUE
from wirecat.report import format_bytes
from wirecat.stream import Connection

__all__ = ["Broker"]


class Broker:
    """A message broker; pass :meth:`handler` to :func:`wirecat.serve`.

    Args:
        max_queue: bytes a client may fall behind before it is disconnected.
    """

    def __init__(self, *, max_queue: int = DEFAULT_SEND_QUEUE) -> None:
        self.max_queue = max_queue
        #: The connected clients.
        self.clients: set[Connection] = set()

    async def handler(self, conn: Connection) -> None:
        """Relay what ``conn`` sends to every other client until it closes."""
        self.clients.add(conn)
        try:
            await conn.handle_frames(lambda data: self._relay(conn, data))
        finally:
            self.clients.discard(conn)

    def _relay(self, sender: Connection, data: bytes) -> None:
        for client in list(self.clients):
            if client is sender:
                continue
            try:
                client.write(data)
            except ConnectionClosed:
                continue
            behind = client.write_buffer_size
            if behind > self.max_queue:
                self.clients.discard(client)
                client.end_reason = f"disconnected: not reading ({format_bytes(behind)} behind)"
                client.abort()
                emit(Note(f"{client.peer}: {client.end_reason}", "warning", "broker"))
