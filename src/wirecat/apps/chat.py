"""``wirecat chat``: a line-based chat room, like ``ncat --chat``.

Each client gets a name (``user1``, ``user2``... or its own with
``/nick NAME``); every line it sends goes to everyone else as
``<name> line``; joins, leaves and renames are announced with ``* ``;
``/who`` lists who is here and ``/quit`` leaves. When the server shuts
down, each member is told so (``* the server is shutting down; bye``) before
its end of stream, rather than seeing the others leave one by one.

A slow client never stalls the others. Lines are written to each member
without waiting (``Connection.write``); a member whose unsent backlog passes
``max_queue`` bytes is not reading, and is disconnected with a notice to the
rest, instead of making everyone wait or growing the server's memory.
"""

from __future__ import annotations

import re

from wirecat.errors import ConnectionClosed, FrameError
from wirecat.events import Note, emit
from wirecat.limits import DEFAULT_SEND_QUEUE
from wirecat.report import format_bytes
from wirecat.stream import Connection

__all__ = ["ChatRoom"]

#: Names are short ASCII words, so that ``<name>`` cannot fake another line's sender.
_NAME = re.compile(rb"[A-Za-z0-9_.-]{1,32}")
_HELP = b"* commands: /nick NAME, /who, /quit"
#: Said to each member when the server's graceful shutdown ends its stream.
_SHUTTING_DOWN = b"* the server is shutting down; bye"


class ChatRoom:
    """One chat room; pass :meth:`handler` to :func:`wirecat.serve` with ``Lines()`` framing.

    Args:
        max_queue: bytes a member may fall behind before it is disconnected.
    """

    def __init__(self, *, max_queue: int = DEFAULT_SEND_QUEUE) -> None:
        self.max_queue = max_queue
        #: Who is here, in order of arrival: connection → name.
        self.members: dict[Connection, bytes] = {}
        self._next_number = 1

    def names(self) -> list[str]:
        """The members' names, in order of arrival."""
        return [name.decode() for name in self.members.values()]

    async def handler(self, conn: Connection) -> None:
        """Serve one member: announce it, relay its lines, announce its leaving."""
        name = self._free_name()
        self.members[conn] = name
        self._send(conn, b"* welcome, " + name + b". " + _HELP[2:])
        self._broadcast(b"* " + name + b" joined", sender=conn)
        try:
            async for line in conn:
                if not self._on_line(conn, line):
                    break
            else:
                if conn.is_stopping:
                    # Not the member's end of stream but the server's: say so,
                    # or it looks like any other disconnection.
                    self._send(conn, _SHUTTING_DOWN)
        except FrameError as exc:
            self._send(conn, f"* {exc}; bye".encode())
            raise
        finally:
            gone = self.members.pop(conn, None)
            # In a shutdown everyone goes, and each is told why: "* NAME left"
            # lines from the others would only bury that.
            if gone is not None and not conn.is_stopping:
                self._broadcast(b"* " + gone + b" left")

    def _on_line(self, conn: Connection, line: bytes) -> bool:
        """Handle one line; False when the member asked to leave."""
        name = self.members.get(conn)
        if name is None:  # disconnected for being slow while its lines were queued
            return False
        if not line.startswith(b"/"):
            self._broadcast(b"<" + name + b"> " + line, sender=conn)
            return True
        command, _, argument = line.partition(b" ")
        if command == b"/nick":
            self._rename(conn, name, argument.strip())
        elif command == b"/who":
            self._send(conn, b"* here: " + b", ".join(self.members.values()))
        elif command == b"/quit":
            self._send(conn, b"* bye")
            return False
        else:
            self._send(conn, b"* unknown command " + command[:40] + b". " + _HELP[2:])
        return True

    def _rename(self, conn: Connection, old: bytes, new: bytes) -> None:
        if not _NAME.fullmatch(new):
            self._send(conn, b"* a name is 1 to 32 letters, digits, '_', '.' or '-'")
        elif new in self.members.values():
            self._send(conn, b"* the name " + new + b" is taken")
        else:
            self.members[conn] = new
            self._broadcast(b"* " + old + b" is now " + new)

    def _free_name(self) -> bytes:
        taken = set(self.members.values())
        while (name := f"user{self._next_number}".encode()) in taken:
            self._next_number += 1
        self._next_number += 1
        return name

    def _broadcast(self, line: bytes, *, sender: Connection | None = None) -> None:
        for member in list(self.members):
            if member is not sender:
                self._send(member, line)

    def _send(self, member: Connection, line: bytes) -> None:
        """Queue ``line`` for ``member``; disconnect it if it is too far behind."""
        try:
            member.write(line)
        except ConnectionClosed:
            return
        behind = member.write_buffer_size
        if behind > self.max_queue:
            name = self.members.pop(member, None)
            member.end_reason = f"disconnected: not reading ({format_bytes(behind)} behind)"
            member.abort()
            who = (name or b"?").decode()
            emit(Note(f"{member.peer} ({who}): {member.end_reason}", "warning", "chat"))
            if name is not None:
                self._broadcast(b"* " + name + b" was disconnected: not reading")
