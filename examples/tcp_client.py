"""The four steps of a TCP client, with the plain socket module, done right.

    python examples/tcp_client.py PORT [LINE ...]

Connects to 127.0.0.1:PORT, sends each LINE, half-closes, and prints every
line of the reply until the server closes.

* ``sendall()``, because ``send()`` may send only part;
* ``shutdown(SHUT_WR)`` tells the server "no more from me" (it reads ``b""``)
  while we can still receive its answers: a half-close;
* we read until ``recv()`` returns ``b""``, since the reply may come in any
  number of pieces.
"""

from __future__ import annotations

import socket
import sys


def main(port: int, lines: list[str]) -> None:
    """socket → connect → communicate → close."""
    # create_connection = socket() + connect(), trying each address of the host.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for line in lines:
            sock.sendall(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)  # half-close: we are done sending
        reply = b""
        while chunk := sock.recv(4096):  # b"" once the server has closed
            reply += chunk
    sys.stdout.write(reply.decode(errors="replace"))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:] or ["hello", "world"])
