"""The six steps of a TCP server, with the plain socket module, done right.

    python examples/tcp_server.py [PORT]        (then: python examples/tcp_client.py PORT)

It serves one client at a time and sends back each line in upper case.
What tutorials often get wrong, and this does not:

* ``recv()`` needs a size, and returns *up to* that many bytes: one message may
  arrive in pieces, or two messages in one piece, so we collect bytes until a
  whole line is in;
* ``recv()`` returning ``b""`` means the client closed its side: stop reading;
* ``send()`` may send only part of the data: ``sendall()`` sends all of it;
* ``listen(5)`` is the length of the queue of connections waiting for
  ``accept()``, not a limit of five clients;
* ``with`` blocks close every socket, even on errors.
"""

from __future__ import annotations

import socket
import sys


def serve_one_client(conn: socket.socket) -> None:
    """Answer each line the client sends with the same line in upper case."""
    pending = b""
    while True:
        data = conn.recv(4096)  # up to 4096 bytes: maybe part of a line, maybe several
        if not data:  # b"": the client closed its side (or sent all it will)
            break
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            conn.sendall(line.upper() + b"\n")  # sendall, not send: send may send only part


def main(port: int = 0) -> None:
    """socket → bind → listen → accept → communicate → close."""
    # 1. socket: IPv4 (AF_INET), TCP (SOCK_STREAM).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        # Restarting right after a stop would fail with "address in use" while old
        # connections sit in TIME_WAIT; SO_REUSEADDR allows the restart.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # 2. bind: loopback only, so nothing outside this machine can connect.
        listener.bind(("127.0.0.1", port))
        # 3. listen: 5 is the backlog, a queue length, not a client limit.
        listener.listen(5)
        print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", file=sys.stderr, flush=True)
        while True:
            # 4. accept: blocks until a client connects; returns a NEW socket for it.
            conn, address = listener.accept()
            print(f"client {address[0]}:{address[1]}", file=sys.stderr, flush=True)
            # 5. communicate, and 6. close (the with block closes conn).
            with conn:
                serve_one_client(conn)


if __name__ == "__main__":
    try:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    except KeyboardInterrupt:
        pass
