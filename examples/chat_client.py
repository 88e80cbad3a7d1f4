"""A chat client for ``wirecat chat``, with the blocking client: no asyncio needed.

    wirecat chat 9000 &
    python examples/chat_client.py 9000 NAME "a line to say" ...

Joins the room as NAME, says each line, asks who is here, and prints what
the room said until the server answers ``/quit``.
"""

from __future__ import annotations

import sys

from wirecat import blocking
from wirecat.framing import Lines


def main(port: int, name: str, lines: list[str]) -> None:
    with blocking.connect(f"127.0.0.1:{port}", framing=Lines(), timeout=10) as conn:
        conn.send(f"/nick {name}".encode())
        for line in lines:
            conn.send(line.encode())
        conn.send(b"/who")
        conn.send(b"/quit")
        for frame in conn:  # each a whole line, until the server closes
            print(frame.decode(errors="replace"))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3:])
