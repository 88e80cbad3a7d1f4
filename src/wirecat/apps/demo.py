"""``wirecat demo``: a TCP server and client talking, one real socket call at a time.

The server is the classic six steps (socket, bind, listen, accept,
communicate, close) written as plain straight-line code in
:func:`_server`, run in a thread; the client is :func:`_client`, run by the
caller. Both use the blocking ``socket`` API exactly as a learner would, and
every :class:`Step` reports what the call really returned: the addresses, the
file descriptors, the byte counts.

The server and the client each run in a thread of their own; the caller's
thread is the conductor. It opens the slots of :data:`_SCRIPT` (a list of
named steps; see :class:`_Turns`) one at a time, and a side waits at each of
its steps until that step is open. A turn only orders the *reporting*; the
calls themselves block as blocking calls do. For example the server prints
"accept() blocks", then really blocks in ``accept()``, while the client
connects; the server's "accept() returned" step then waits for its slot,
after the client's connect step, so the output is the same on every run.

Only the conductor waits for a person (``demo --step`` asks for Enter before
each step) and only it has deadlines, so Ctrl-C, which Python delivers to the
main thread, ends the demo at once wherever it is (neither side ever blocks
on input), and a person may take as long as they like at a prompt.

The lessons, each shown where it happens, correct common misreadings of the
socket API:

* ``listen(backlog)``: the backlog is the length of the queue of
  connections waiting for ``accept()``, not a limit on clients;
* ``recv(n)`` needs a size: the most bytes one call may return;
* ``send()`` may send only part of the bytes; ``sendall()`` loops until all
  are sent;
* TCP is a byte stream: two sends may arrive as one ``recv()``;
* ``recv()`` returning ``b""`` means end of stream (the peer shut down its
  sending side), not "no data yet";
* ``shutdown(SHUT_WR)`` half-closes: the other direction stays open.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

from wirecat.address import format_hostport
from wirecat.errors import WirecatError
from wirecat.trace import TracedSocket, Tracer

__all__ = ["INTRO", "DemoResult", "Step", "format_step", "run_demo"]

#: The backlog the server passes to listen(): small on purpose, to show it is
#: a queue length and the demo's one client does not need more.
DEMO_BACKLOG = 5
#: Bytes asked of every recv(): the most one call may return.
RECV_SIZE = 1024
#: Seconds a side waits for its turn before the demo gives up. Every step
#: is local and takes microseconds; this only bounds a bug or a stalled machine.
TURN_TIMEOUT = 10.0

#: What the demo prints before its first step.
INTRO = """\
wirecat demo: a TCP server and a client on this machine, one socket call
at a time. The server and the client each run in a thread of this program,
both with Python's plain blocking socket API. Each step shows the code that
ran, what it really returned (->) or that it is waiting (...), and what it
means.
"""

# The order in which the steps are shown. A side that reaches a slot before
# its turn waits there; the calls between slots run freely.
_SCRIPT = [
    "server socket",
    "server reuseaddr",
    "server bind",
    "server listen",
    "server accept called",
    "client socket",
    "client connect",
    "client nodelay",
    "server accept returned",
    "server recv called",
    "client sendall hello",
    "server recv returned",
    "server sendall reply",
    "client recv reply",
    "client send first",
    "client sendall second",
    "server recv both",
    "client shutdown",
    "server recv eof",
    "server sendall bye",
    "server close conn",
    "client recv bye",
    "client close",
    "server close listener",
    "check",
]


class Step(NamedTuple):
    """One socket call, as it happened.

    Attributes:
        number: 1, 2, 3... in the order shown.
        side: ``"server"``, ``"client"`` or ``"check"``.
        call: the Python code that was run, e.g. ``conn.recv(1024)``.
        result: what it returned or did, with real addresses and byte counts.
        lesson: one line on what to learn from it, or ``""``.
        pending: True when the step is shown *before* a blocking call returns
            ("accept() blocks until..."); its return is a later step.
        trace: the socket calls this step really made, as ``--trace`` prints
            them (``bind(127.0.0.1:0) -> ok``), from the demo's traced sockets.
    """

    number: int
    side: str
    call: str
    result: str
    lesson: str = ""
    pending: bool = False
    trace: tuple[str, ...] = ()


class DemoResult(NamedTuple):
    """What the demo did, for callers and tests.

    Attributes:
        address: the server's address (host, port) while it listened.
        steps: every step shown, in order.
        client_bytes: bytes the client sent.
        server_bytes: bytes the server sent.
    """

    address: tuple[str, int]
    steps: tuple[Step, ...]
    client_bytes: int
    server_bytes: int


class _Tally:
    """What both sides record while the demo runs (a :class:`DemoResult` later).

    Each field is written by one side only (the step list and the address
    under the turn hand-over, which also orders the client's read of the
    address after the server's bind), so no lock is needed.
    """

    __slots__ = ("address", "client_bytes", "server_bytes", "steps")

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.address: tuple[str, int] | None = None
        self.client_bytes = 0
        self.server_bytes = 0


def format_step(step: Step, *, columns: int = 0) -> str:
    """Lay out a step for a terminal: number, side, call; the traced calls; result and lesson.

    ::

         6 CLIENT  client.connect(('127.0.0.1', 40521))
                   | connect(127.0.0.1:40521) -> ok
                   -> None: connected from 127.0.0.1:51234
                      the kernel did the TCP handshake (SYN, SYN-ACK, ACK)

    Args:
        columns: the terminal's width for the two-column layout (server on
            the left, client on the right); 0 for one column, interleaved.

    ASCII only, so it prints on any terminal and locale.
    """
    indent = " " * 11
    arrow = "..." if step.pending else "->"
    lines = [f"{step.number:>2} {step.side.upper():<6}  {step.call}"]
    lines += [f"{indent}| {call}" for call in step.trace]
    lines.append(f"{indent}{arrow} {step.result}")
    if step.lesson:
        lines.append(f"{indent}   {step.lesson}")
    if columns < 2 * MIN_COLUMN:
        return "\n".join(lines)
    half = columns // 2
    wrapped: list[str] = []
    for line in lines:
        # Keep each column in its half: long lines continue, indented, below.
        first, rest = line[: half - 1], line[half - 1 :]
        wrapped.append(first)
        while rest:
            wrapped.append(indent + rest[: half - 1 - len(indent)])
            rest = rest[half - 1 - len(indent) :]
    pad = "" if step.side == "server" else " " * half
    return "\n".join(pad + line for line in wrapped)


#: Narrowest column of the two-column layout; below it the demo interleaves.
MIN_COLUMN = 60


class _Aborted(Exception):
    """The demo is ending early (the other side failed, or the caller stopped it)."""


class _Turns:
    """Hands out the slots of :data:`_SCRIPT` in order: the conductor opens one, a side runs it.

    A side writes ``with turns.slot("client connect") as show:``, which waits
    until the conductor has opened that slot, runs the block, then marks the
    slot done. ``show`` records a :class:`Step` and passes it on at once, so
    output follows the script. The conductor (:func:`run_demo`, in the
    caller's thread) calls :meth:`open` for each slot once the one before it
    is done, and :meth:`wait_done` with a deadline.
    """

    def __init__(
        self,
        on_step: Callable[[Step], None],
        result: _Tally,
        trace_mode: str = "calls",
    ) -> None:
        self._cond = threading.Condition()
        self._open = -1  # the slot the conductor let start
        self._done = 0  # slots finished, so the index of the next one
        self._failed = False
        self._on_step = on_step
        self._result = result
        #: Traced calls not yet shown, per side (each side's tracer appends to its own).
        self.calls: dict[str, list[str]] = {"server": [], "client": [], "check": []}
        self.trace_mode = trace_mode

    def tracer(self, side: str) -> Tracer:
        """A tracer whose lines join the next step shown by ``side``."""
        return Tracer(self.trace_mode, self.calls[side].append, timestamps=False)

    def abort(self) -> None:
        """Wake every waiter with :class:`_Aborted` (a side failed, or the caller stops)."""
        with self._cond:
            self._failed = True
            self._cond.notify_all()

    def open(self, index: int) -> None:
        """Let slot ``index`` start (the conductor calls this once slot ``index - 1`` is done)."""
        with self._cond:
            self._open = index
            self._cond.notify_all()

    def wait_done(self, index: int, timeout: float) -> bool:
        """Wait until slot ``index`` is done: True, or False if the demo failed or time ran out."""
        with self._cond:
            done = self._cond.wait_for(lambda: self._failed or self._done > index, timeout)
            return bool(done) and not self._failed

    @contextlib.contextmanager
    def slot(self, name: str) -> Iterator[Callable[..., None]]:
        """Wait until the conductor opens step ``name``; yield its ``show``; mark it done."""
        index = _SCRIPT.index(name)
        with self._cond:
            # No deadline here: the conductor has one for each slot it opens,
            # and none while a person reads the prompt before it (demo --step).
            self._cond.wait_for(lambda: self._failed or self._open == index)
            if self._failed:
                raise _Aborted
        side = name.split()[0]

        def show(call: str, result: str, lesson: str = "", *, pending: bool = False) -> None:
            traced = tuple(self.calls[side])
            self.calls[side].clear()
            step = Step(len(self._result.steps) + 1, side, call, result, lesson, pending, traced)
            self._result.steps.append(step)
            self._on_step(step)

        # Only the slot's owner runs here, so show() needs no lock: the
        # Condition hand-over orders it before the next slot's steps.
        yield show
        with self._cond:
            self._done = index + 1
            self._cond.notify_all()


def _fd(sock: socket.socket) -> str:
    return f"a socket with file descriptor {sock.fileno()}"


def _name(sockaddr: tuple[str, int] | tuple[str, int, int, int]) -> str:
    return format_hostport(str(sockaddr[0]), int(sockaddr[1]))


def _fam(family: socket.AddressFamily) -> str:
    return "AF_INET6" if family == socket.AF_INET6 else "AF_INET"


def _server(
    turns: _Turns,
    family: socket.AddressFamily,
    host: str,
    result: _Tally,
    opened: list[socket.socket],
) -> None:
    """The server: the six steps of a TCP server (and SO_REUSEADDR), blocking calls, one client."""
    with turns.slot("server socket") as show:
        listener = TracedSocket(family, socket.SOCK_STREAM, tracer=turns.tracer("server"))
        opened.append(listener)
        show(
            f"listener = socket.socket({_fam(family)}, SOCK_STREAM)",
            _fd(listener),
            f"{_fam(family)}: IP{'v6' if family == socket.AF_INET6 else 'v4'} addresses; "
            "SOCK_STREAM: TCP. It has no address yet.",
        )
    with turns.slot("server reuseaddr") as show:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        show(
            "listener.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)",
            "None: bind() may now take a port held by connections in TIME_WAIT",
            "Before bind(), so a restarted server can bind its port at once.",
        )
    with turns.slot("server bind") as show:
        listener.bind((host, 0))
        bound = listener.getsockname()
        result.address = (str(bound[0]), int(bound[1]))
        show(
            f"listener.bind(({host!r}, 0))",
            f"None; listener.getsockname() says {_name(bound)}",
            "Port 0 asks the kernel for a free port; getsockname() says which.",
        )
    with turns.slot("server listen") as show:
        listener.listen(DEMO_BACKLOG)
        show(
            f"listener.listen({DEMO_BACKLOG})",
            f"None; clients can now connect to {_name(bound)}",
            f"Backlog {DEMO_BACKLOG}: a queue length for accept(), not a limit on clients.",
        )
    with turns.slot("server accept called") as show:
        show(
            "conn, addr = listener.accept()",
            "accept() blocks until a client has connected",
            "It returns a NEW socket for this client; the listener stays.",
            pending=True,
        )
    conn, addr = listener.accept()
    opened.append(conn)
    with turns.slot("server accept returned") as show:
        show(
            "accept() returned",
            f"conn = {_fd(conn)}, addr = {_name(addr)}",
            "Talk to this client through conn; the listener waits for others.",
        )
    with turns.slot("server recv called") as show:
        show(
            f"data = conn.recv({RECV_SIZE})",
            "recv() blocks until some bytes arrive",
            f"recv needs a size: {RECV_SIZE} is the most bytes one call may return.",
            pending=True,
        )
    data = conn.recv(RECV_SIZE)
    with turns.slot("server recv returned") as show:
        whole = data.endswith(b"\n") or not data
        show(
            "recv() returned",
            f"{data!r} ({len(data)} bytes)",
            "The client's whole line came in this one recv(); else we would recv() again."
            if whole
            else "Part of the client's line: recv() returns what has arrived so far.",
        )
        # One recv() is not one message: read on until the line's newline,
        # as a real server must (on loopback it is all there at once).
        while data and not data.endswith(b"\n"):
            chunk = conn.recv(RECV_SIZE)
            data += chunk
            show(f"data += conn.recv({RECV_SIZE})", f"{chunk!r} ({len(chunk)} bytes)", "More of the line.")
            if not chunk:
                break
    reply = b"hello, client\n"
    with turns.slot("server sendall reply") as show:
        conn.sendall(reply)
        result.server_bytes += len(reply)
        show(
            f"conn.sendall({reply!r})",
            f"None: all {len(reply)} bytes handed to the kernel",
            "sendall() loops over send() until every byte is sent.",
        )
    with turns.slot("server recv both") as show:
        # Read until both of the client's lines are in: a real server must
        # find message boundaries itself (here: newlines).
        data = b""
        while data.count(b"\n") < 2:
            chunk = conn.recv(RECV_SIZE)
            data += chunk
            lesson = (
                "Two sends, one recv(): TCP carries bytes, not messages."
                if chunk.count(b"\n") == 2
                else "recv() returns what has arrived: TCP keeps no message boundaries."
            )
            show(f"data = conn.recv({RECV_SIZE})", f"{chunk!r} ({len(chunk)} bytes)", lesson)
            if not chunk:
                break
    with turns.slot("server recv eof") as show:
        data = conn.recv(RECV_SIZE)
        show(
            f"data = conn.recv({RECV_SIZE})",
            f"{data!r} ({len(data)} bytes)",
            "b'' means end of stream (the client is done), not 'no data yet'.",
        )
    bye = b"bye: got 2 lines\n"
    with turns.slot("server sendall bye") as show:
        conn.sendall(bye)
        result.server_bytes += len(bye)
        show(
            f"conn.sendall({bye!r})",
            f"None: all {len(bye)} bytes sent",
            "Only the client's sending side is closed: this way is still open.",
        )
    with turns.slot("server close conn") as show:
        conn.close()
        show(
            "conn.close()",
            "None: the connection's socket is released",
            "Queued bytes go out first, then FIN: the client reads both.",
        )
    with turns.slot("server close listener") as show:
        listener.close()
        show(
            "listener.close()",
            f"None: nothing listens on {_name(bound)} any more",
            "The server's steps: socket, SO_REUSEADDR, bind, listen, accept, talk, close.",
        )


def _client(turns: _Turns, family: socket.AddressFamily, result: _Tally, opened: list[socket.socket]) -> None:
    """The client: connect, talk, half-close, read to the end, close."""
    with turns.slot("client socket") as show:
        client = TracedSocket(family, socket.SOCK_STREAM, tracer=turns.tracer("client"))
        opened.append(client)
        assert result.address is not None  # the server's bind step came first
        server = result.address
        show(
            f"client = socket.socket({_fam(family)}, SOCK_STREAM)", _fd(client), "A second, separate socket."
        )
    with client:
        with turns.slot("client connect") as show:
            client.connect(server)
            show(
                f"client.connect({server!r})",
                f"None: connected from {_name(client.getsockname())}",
                "The kernel did the TCP handshake and gave the client a port.",
            )
        with turns.slot("client nodelay") as show:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            show(
                "client.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)",
                "None: Nagle's algorithm is off for this socket",
                "Small writes leave at once, not after the previous one's ACK.",
            )
        hello = b"hello, server\n"
        with turns.slot("client sendall hello") as show:
            client.sendall(hello)
            result.client_bytes += len(hello)
            show(
                f"client.sendall({hello!r})",
                f"None: all {len(hello)} bytes sent",
                "The server's recv() is waiting for these.",
            )
        with turns.slot("client recv reply") as show:
            data = b""
            while not data.endswith(b"\n"):
                chunk = client.recv(RECV_SIZE)
                data += chunk
                show(f"data = client.recv({RECV_SIZE})", f"{chunk!r} ({len(chunk)} bytes)", "The reply.")
                if not chunk:
                    break
        first = b"first line\n"
        with turns.slot("client send first") as show:
            sent = client.send(first)
            result.client_bytes += sent
            show(
                f"n = client.send({first!r})",
                f"n = {sent} of {len(first)} bytes",
                "send() may send only part: check n, or use sendall().",
            )
            if sent < len(first):  # truthful either way: finish the job
                client.sendall(first[sent:])
                result.client_bytes += len(first) - sent
                show(f"client.sendall({first[sent:]!r})", "None: the rest is sent")
        second = b"second line\n"
        with turns.slot("client sendall second") as show:
            client.sendall(second)
            result.client_bytes += len(second)
            show(f"client.sendall({second!r})", f"None: all {len(second)} bytes sent")
        with turns.slot("client shutdown") as show:
            client.shutdown(socket.SHUT_WR)
            show(
                "client.shutdown(SHUT_WR)",
                "None: FIN sent; the client will send nothing more",
                "A half-close: the client can still receive the server's answer.",
            )
        with turns.slot("client recv bye") as show:
            while True:
                data = client.recv(RECV_SIZE)
                lesson = (
                    "b'' again: end of stream, the server closed."
                    if not data
                    else "The server's last bytes come before its end of stream."
                )
                show(f"data = client.recv({RECV_SIZE})", f"{data!r} ({len(data)} bytes)", lesson)
                if not data:
                    break
        with turns.slot("client close") as show:
            client.close()
            show("client.close()", "None: the client's socket is released", "Always close what you open.")


def _check_closed(turns: _Turns, family: socket.AddressFamily, server: tuple[str, int]) -> None:
    """Prove the listener is gone: a new connect() must be refused."""
    with (
        turns.slot("check") as show,
        TracedSocket(family, socket.SOCK_STREAM, tracer=turns.tracer("check")) as probe,
    ):
        code = probe.connect_ex(server)
        what = errno.errorcode.get(code, "connected!") if code else "connected!"
        refused = code == errno.ECONNREFUSED
        show(
            f"socket.socket({_fam(family)}).connect_ex({server!r})",
            f"{code} ({what})",
            "Refused: nothing is left listening. The demo is over."
            if refused
            else "Not refused: another program took the port since the demo closed it.",
        )


def run_demo(
    on_step: Callable[[Step], None] = lambda step: None,
    *,
    ipv6: bool = False,
    before_step: Callable[[str], None] | None = None,
    trace_mode: str = "calls",
) -> DemoResult:
    """Run a TCP server and a client on loopback, each in a thread, reporting every call.

    Args:
        on_step: called with each :class:`Step` as it happens, in the same
            order on every run (print ``format_step(step)`` for a terminal);
            called from the server's or the client's thread.
        ipv6: use ``::1`` and AF_INET6 instead of ``127.0.0.1`` and AF_INET.
        before_step: called with each step's name (``"server bind"``) before
            its calls are made, in the caller's thread: ``demo --step`` waits
            for Enter there. It may take as long as it likes; an exception it
            raises (KeyboardInterrupt) ends the demo at once.
        trace_mode: how the traced calls of each step are shown (``calls``,
            ``explain`` or ``bytes``, as ``--trace``).

    Returns:
        A :class:`DemoResult`: the server's address and every step. When it
        returns, every socket the demo opened is closed and its threads are done.

    Raises:
        WirecatError: the demo stalled (a bug, or a machine too slow to run
            a step in :data:`TURN_TIMEOUT` seconds).
        OSError: a socket call failed (e.g. no IPv6 loopback with ``ipv6``).
        KeyboardInterrupt: Ctrl-C, raised in the caller's thread: both sides
            are stopped and their sockets closed before it propagates.
    """
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    host = "::1" if ipv6 else "127.0.0.1"
    result = _Tally()
    turns = _Turns(on_step, result, trace_mode)
    # Each side's sockets: closed by that side when it ends; shut down by the
    # conductor to wake a side blocked in accept() or recv() when it stops early.
    opened: dict[str, list[socket.socket]] = {"server": [], "client": []}
    errors: list[BaseException] = []

    def run_side(side: str, body: Callable[[], None]) -> None:
        try:
            body()
        except _Aborted:
            pass
        except BaseException as exc:  # handed to the conductor below
            errors.append(exc)
            turns.abort()
        finally:
            for sock in opened[side]:
                sock.close()

    bodies: dict[str, Callable[[], None]] = {
        "server": lambda: _server(turns, family, host, result, opened["server"]),
        "client": lambda: _client(turns, family, result, opened["client"]),
    }
    threads = [
        threading.Thread(target=run_side, args=(side, body), name=f"wirecat-demo-{side}", daemon=True)
        for side, body in bodies.items()
    ]
    try:
        for thread in threads:
            thread.start()
        for index, name in enumerate(_SCRIPT[:-1]):
            if before_step is not None:
                before_step(name)
            turns.open(index)
            # The deadline starts when the step is opened, so time spent at
            # a prompt never counts against it.
            if not turns.wait_done(index, TURN_TIMEOUT):
                if errors:
                    raise errors[0]
                raise WirecatError(f"demo stalled at step {name!r}", "run it again with --debug")
        for thread in threads:
            thread.join(TURN_TIMEOUT)
        if errors:
            raise errors[0]
        if any(thread.is_alive() for thread in threads):
            raise WirecatError("demo did not finish", "run it again with --debug")
        assert result.address is not None
        if before_step is not None:
            before_step(_SCRIPT[-1])
        turns.open(len(_SCRIPT) - 1)
        _check_closed(turns, family, result.address)
    except BaseException:
        # Stop both sides: a side waiting for its turn wakes with _Aborted; one
        # blocked in accept() or recv() wakes because shutdown() makes a
        # blocked call on Linux return at once (close() alone may not).
        turns.abort()
        for sock in [*opened["server"], *opened["client"]]:  # copies: a side may still append
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            if thread.ident is not None:
                thread.join(TURN_TIMEOUT)
        raise
    return DemoResult(result.address, tuple(result.steps), result.client_bytes, result.server_bytes)
