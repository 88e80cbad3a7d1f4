"""One stream connection joined to standard input and output: the netcat job.

The lifetime rule, the same for ``connect`` and ``listen`` (and documented in
the README, because every netcat has a different one):

1. Two directions run at once, each a :class:`~wirecat.pump.Pump` in its own
   thread: stdin → socket and socket → stdout.
2. At end of stdin we send FIN (``shutdown(SHUT_WR)``, what ``nc -N`` does)
   and keep printing what the peer sends. No grace timer cuts the peer off.
3. The session ends when both directions are done. If the peer closes first,
   we keep sending what stdin still has (the peer may only have closed its
   own side); if stdin is a terminal we end at once, since nobody is typing a
   reply to a closed connection.
4. ``-q SECS`` ends the session that long after end of stdin; if the peer was
   still sending, that is reported as :class:`~wirecat.errors.Truncated`.
   ``-i SECS`` ends it after that long with nothing moving either way.
5. A closed stdout (``| head``) ends the session quietly.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from wirecat.crlf import CrlfEncoder
from wirecat.endpoint import SocketEndpoint
from wirecat.errors import PeerReset, WirecatError
from wirecat.events import Closed
from wirecat.lifetime import End, SendFin, SessionLifetime, TellPeerEnded
from wirecat.pump import FdKind, Pump, PumpError, fd_kind
from wirecat.sockets import Op, abort, translate_os_error
from wirecat.splice import grow_pipe
from wirecat.stdio import fd_is_open, stdin_error, stdout_error

if TYPE_CHECKING:
    from wirecat.tls_endpoint import TLSEndpoint

__all__ = ["SessionOptions", "SessionResult", "run_session", "run_tls_session", "session_closed"]

#: How often the supervising thread wakes when only a timer can end the wait.
_TICK = 0.5
#: Seconds to wait for a woken pump thread to finish (see ``on_abort``).
_JOIN_TIMEOUT = 10.0


class SessionOptions(NamedTuple):
    """How a stdio session behaves; the defaults are wirecat's lifetime rule.

    Attributes:
        send: read stdin and send it (False: ``--recv-only``).
        receive: print what the peer sends (False: ``--send-only``).
        shutdown_on_eof: send FIN at end of stdin (False: ``--no-shutdown``).
        quit_after_eof: ``-q``: seconds to wait for the peer after end of stdin.
        idle_timeout: ``-i``: seconds with no traffic before giving up.
        crlf: ``-C``: send LF line endings as CRLF.
    """

    send: bool = True
    receive: bool = True
    shutdown_on_eof: bool = True
    quit_after_eof: float | None = None
    idle_timeout: float | None = None
    crlf: bool = False


class SessionResult(NamedTuple):
    """How a session went.

    Attributes:
        sent: bytes sent to the peer.
        received: bytes received from the peer.
        duration: seconds from start to end.
        closed_first: ``"we"`` (end of stdin), ``"peer"``, or ``""`` when
            neither side closed (a timer or an error ended it).
        ending: one phrase on how it ended, for the ``-v`` closing line.
        error: the error that ended it, or None for a clean end.
        pumps_running: a pump thread was still running when the session
            returned (``on_abort`` did not wake it): its descriptors must
            not be closed, or a reused descriptor number would get its bytes.
    """

    sent: int
    received: int
    duration: float
    closed_first: str
    ending: str
    error: WirecatError | None = None
    pumps_running: bool = False


class _Direction(threading.Thread):
    """Runs one pump in a daemon thread and records how it ended."""

    def __init__(self, pump: Pump, on_done: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.pump = pump
        self.on_done = on_done
        self.error: PumpError | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            self.pump.run()
        except PumpError as exc:
            self.error = exc
        except OSError as exc:
            # Not from the bytes' path (e.g. os.pipe() out of descriptors):
            # still an error, never to be taken for a clean end of stream.
            self.error = PumpError("src", exc)
        finally:
            self.finished_at = time.monotonic()
            self.on_done()


def run_session(
    sock: socket.socket | TLSEndpoint,
    *,
    peer: str,
    options: SessionOptions = SessionOptions(),
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    output_is_program: bool = False,
    on_peer_eof: Callable[[], None] | None = None,
    on_abort: Callable[[], None] | None = None,
) -> SessionResult:
    """Join ``sock`` to ``stdin_fd``/``stdout_fd`` until the lifetime rule ends it.

    With ``output_is_program`` (``--exec``: ``stdout_fd`` is a program's
    stdin), a program that stops reading does not end the session: the rest
    of what the peer sends is read and dropped while the program's output
    still goes out. ``on_peer_eof`` is called once when the receive direction
    is done (``--exec`` closes the program's stdin there, so it sees its end
    of input).

    With ``on_abort`` (``--exec``, where the process goes on serving others),
    a session that ends early (a timer, an error) does not leave its pumps
    running on descriptors the caller is about to close and that may be
    reused by another connection: it shuts the socket down, calls
    ``on_abort`` (which must end the other side: the program), and joins the
    pump threads before returning. Without it (the one-shot CLI), the process
    exits right after and the daemon threads with it.

    The socket is left open; the caller closes it. Errors are returned in
    ``result.error`` rather than raised, so the caller can report the byte
    counts first; they are:

    * PeerReset: the peer reset the connection, or closed it while we still
      had data to send;
    * IdleTimeout: ``options.idle_timeout`` passed with no traffic;
    * Truncated: ``options.quit_after_eof`` ended the session while the peer
      was still connected.

    A session that ends before both directions are done (those errors, a
    closed stdout, a signal) resets the connection (:func:`wirecat.sockets.abort`):
    a FIN would tell the peer that it had everything.

    A :class:`~wirecat.tls_endpoint.TLSEndpoint` (handshake done) instead
    of a socket runs :func:`run_tls_session`: the same rule from one thread.
    """
    if not isinstance(sock, socket.socket):
        return run_tls_session(
            sock,
            peer=peer,
            options=options,
            stdin_fd=stdin_fd,
            stdout_fd=stdout_fd,
            output_is_program=output_is_program,
            on_peer_eof=on_peer_eof,
            on_abort=on_abort,
        )
    try:
        return _run_session(
            sock,
            peer=peer,
            options=options,
            stdin_fd=stdin_fd,
            stdout_fd=stdout_fd,
            output_is_program=output_is_program,
            on_peer_eof=on_peer_eof,
            on_abort=on_abort,
        )
    except BaseException:
        # A signal (SIGINT, SIGTERM, SIGHUP) unwinds through here wherever the
        # session was (starting its threads, or waiting), or a bug: either way
        # the peer is cut off, and a reset tells it so.
        abort(sock)
        raise


def _run_session(
    sock: socket.socket,
    *,
    peer: str,
    options: SessionOptions = SessionOptions(),
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    output_is_program: bool = False,
    on_peer_eof: Callable[[], None] | None = None,
    on_abort: Callable[[], None] | None = None,
) -> SessionResult:
    start = time.monotonic()
    remote = SocketEndpoint(sock, peer=peer)  # the half-close and the cut-off, as every engine does them
    changed = threading.Event()
    # Non-blocking, so the pumps wait in poll() and never inside splice() (pump.py).
    sock.setblocking(False)
    fd = sock.fileno()
    sender = receiver = None
    # A closed stdin (library callers; the CLI opens /dev/null on it) is empty input.
    stdin_closed = options.send and not fd_is_open(stdin_fd)
    if options.send and not stdin_closed:
        transform = CrlfEncoder().feed if options.crlf else None
        sender = _Direction(Pump(stdin_fd, fd, transform=transform), changed.set, "stdin→socket")
    null_fd = -1
    if options.receive:
        receiver = _Direction(
            Pump(fd, stdout_fd, discard_if_closed=output_is_program), changed.set, "socket→stdout"
        )
    elif sender:
        # --send-only ignores what comes back, but still reads it, to the end:
        # a peer that answers (an echo) would otherwise fill our receive
        # buffer, stop reading in turn, and our sending would stall for ever;
        # and closing with unread bytes sends a reset that can cost the peer
        # the end of what we sent.
        null_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        receiver = _Direction(Pump(fd, null_fd), changed.set, "socket→/dev/null")
    interactive = os.isatty(stdin_fd) if sender else False
    for direction in (sender, receiver):
        if direction:
            direction.start()

    lifetime = SessionLifetime(
        sending=sender is not None,
        receiving=receiver is not None,
        printing=options.receive,
        shutdown_on_eof=options.shutdown_on_eof,
        quit_after_eof=options.quit_after_eof,
        idle_timeout=options.idle_timeout,
        interactive=interactive,
        input_closed=stdin_closed,
        peer=peer,
        now=start,
    )
    # The driver of the lifetime rule (wirecat.lifetime): feed it what the
    # pumps did, do what it says, sleep until something changes or a timer is due.
    while True:
        changed.clear()
        now = time.monotonic()
        if sender and sender.error:
            lifetime.failed(_send_error(sender.error, peer), "stdin failed")
        if receiver and receiver.error:
            if receiver.error.side != "dst":
                lifetime.failed(translate_os_error(receiver.error.error, Op.RECEIVE, peer))
            elif receiver.error.error.errno == errno.EPIPE:  # | head: end quietly
                lifetime.failed(None, "stdout was closed")
            else:
                lifetime.failed(stdout_error(receiver.error.error))
        if sender and sender.finished_at is not None:
            lifetime.input_ended(sender.finished_at)
        if receiver and receiver.finished_at is not None:
            lifetime.peer_ended()
        for direction in (sender, receiver):
            if direction:
                lifetime.idle.active(direction.pump.last_activity)
        end: End | None = None
        for action in lifetime.next(now):
            if isinstance(action, SendFin):
                remote.shutdown_write()
            elif isinstance(action, TellPeerEnded):
                if on_peer_eof is not None:
                    on_peer_eof()
            elif isinstance(action, End):
                end = action
            else:
                until = action.until
                changed.wait(_TICK if until is None else min(max(0.0, until - now), _TICK))
        if end is not None:
            break
    closed_first, ending, error = end.closed_first, end.ending, end.error

    running = [d for d in (sender, receiver) if d is not None and d.finished_at is None]
    # Ended by a timer (-q, -i), an error or a closed stdout: the peer is cut
    # off before its natural end, and is reset (a FIN would say "that was all").
    cut = error is not None or ending == "stdout was closed"
    if cut:
        remote.abort()  # also wakes a pump waiting on the socket
    if on_abort is not None and running:
        if not cut:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a pump waiting on the socket
            except OSError:
                pass
        on_abort()  # ends the other side, which wakes a pump waiting on it
        for direction in running:
            direction.join(_JOIN_TIMEOUT)
    pumps_running = any(d.is_alive() for d in (sender, receiver) if d is not None)
    if null_fd >= 0 and not (receiver and receiver.is_alive()):
        os.close(null_fd)  # (never under a running pump: its number could be reused)
    sent = sender.pump.count if sender else 0
    received = receiver.pump.count if receiver else 0
    if isinstance(error, PeerReset) and received == 0:
        # A reset before any byte came back is what a relay sends each client
        # while its target is down (README, relay): say so, and where the reason is.
        if error.hint == _STOPPED_READING:
            error.hint = (
                "nothing came back: the peer stopped reading, or it is a relay whose target is down"
                " (the relay's log says why)"
            )
        elif not error.hint:
            error.hint = "nothing came first, as when a relay's target is down (the relay's log says why)"
    if error is not None:
        ending = error.message
    return SessionResult(sent, received, time.monotonic() - start, closed_first, ending, error, pumps_running)


_STOPPED_READING = "the peer stopped reading; check what it expects"


def _send_error(exc: PumpError, peer: str) -> WirecatError | None:
    if exc.side == "src":
        return stdin_error(exc.error)
    if exc.error.errno in (errno.EPIPE, errno.ECONNRESET):
        return PeerReset(
            f"{peer} closed the connection before it had all our data", _STOPPED_READING
        ).caused_by(exc.error)
    return translate_os_error(exc.error, Op.SEND, peer)


def session_closed(result: SessionResult, peer: str, origin: str) -> Closed:
    """The :class:`~wirecat.events.Closed` event of a finished session (the ``-v`` ``done:`` line)."""
    return Closed(
        peer,
        result.sent,
        result.received,
        result.duration,
        result.ending,
        cut=result.error is not None or result.ending == "stdout was closed",
        first=result.closed_first,
        origin=origin,
    )


# -- TLS: one owner for both directions ---------------------------------------------------------

#: Plaintext read ahead of stdout, and stdin read ahead of TLS: one buffer each.
#: 1 MiB measured here against 256 KiB (1 GiB over loopback, CPU of each side
#: by perf stat): sender 1.06 s against 1.20, receiver 0.78 against 0.92 —
#: fewer trips round the loop, larger pipe reads and sends. One session, so
#: two buffers cost nothing worth counting.
_TLS_CHUNK = 1024 * 1024
#: Room kept at the end of the receive buffer: one TLS record's plaintext.
_RECORD = 16 * 1024
#: Steps taken without waiting before the loop looks at the timers again.
_BURST = 64

_IN = select.POLLIN | select.POLLHUP | select.POLLERR
_OUT = select.POLLOUT | select.POLLHUP | select.POLLERR


def run_tls_session(
    endpoint: TLSEndpoint,
    *,
    peer: str,
    options: SessionOptions = SessionOptions(),
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    output_is_program: bool = False,
    on_peer_eof: Callable[[], None] | None = None,
    on_abort: Callable[[], None] | None = None,
) -> SessionResult:
    """:func:`run_session` over TLS: the same rule, results and events, from one thread.

    OpenSSL forbids two threads on one connection, so instead of two pumps
    one ``poll()`` loop moves stdin → TLS and TLS → stdout. The half-close is
    close_notify (:meth:`TLSEndpoint.shutdown_write`), and reading goes on
    until the peer's close_notify; a TCP end without it is
    :class:`~wirecat.errors.TLSTruncated` (exit 8), never a clean end.

    ``endpoint`` must have finished its handshake; it is left open (the
    caller closes it). With ``output_is_program`` the two descriptors are the
    program's pipes (ours), and are made non-blocking.
    """
    try:
        return _TLSSession(
            endpoint,
            peer=peer,
            options=options,
            stdin_fd=stdin_fd,
            stdout_fd=stdout_fd,
            output_is_program=output_is_program,
            on_peer_eof=on_peer_eof,
            on_abort=on_abort,
        ).run()
    except BaseException:
        endpoint.abort()  # a signal, or a bug: the peer is cut off, and a reset says so
        raise


class _TLSSession:
    """The state of one single-owner TLS session (see :func:`run_tls_session`)."""

    def __init__(
        self,
        endpoint: TLSEndpoint,
        *,
        peer: str,
        options: SessionOptions,
        stdin_fd: int,
        stdout_fd: int,
        output_is_program: bool,
        on_peer_eof: Callable[[], None] | None,
        on_abort: Callable[[], None] | None,
    ) -> None:
        self.endpoint = endpoint
        self.peer = peer
        self.options = options
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.output_is_program = output_is_program
        self.on_peer_eof = on_peer_eof
        self.on_abort = on_abort
        self.start = time.monotonic()
        stdin_closed = options.send and not fd_is_open(stdin_fd)
        self.sending = options.send and not stdin_closed
        self.printing = options.receive
        if output_is_program:
            os.set_blocking(stdin_fd, False)  # our own pipes: a stalled program never blocks the loop
            os.set_blocking(stdout_fd, False)
        self.encode = CrlfEncoder().feed if options.crlf else None
        for fd in (stdin_fd, stdout_fd):
            if fd >= 0 and fd_is_open(fd) and fd_kind(fd) == FdKind.PIPE:
                grow_pipe(fd)  # larger reads and writes: fewer trips round the loop (as the pumps do)
        self.lifetime = SessionLifetime(
            sending=self.sending,
            receiving=True,  # --send-only still reads, into nothing (see run_session)
            printing=options.receive,
            shutdown_on_eof=options.shutdown_on_eof,
            quit_after_eof=options.quit_after_eof,
            idle_timeout=options.idle_timeout,
            interactive=os.isatty(stdin_fd) if self.sending else False,
            input_closed=stdin_closed,
            peer=peer,
            now=self.start,
        )
        self.idle = self.lifetime.idle
        self.in_buffer = bytearray(_TLS_CHUNK)
        self.in_view = memoryview(self.in_buffer)
        self.out_buffer = bytearray(_TLS_CHUNK)
        self.out_view = memoryview(self.out_buffer)
        self.up: memoryview | None = None  # read from stdin, not yet taken by TLS
        self.down: memoryview | None = None  # from TLS, not yet written out
        self.stdin_ready = False
        self.stdin_eof = False
        self.input_told = False
        self.stdout_ready = True
        self.discarding = not options.receive  # --send-only, or a program that stopped reading
        self.peer_eof = False
        self.peer_told = False
        self.recv_error: WirecatError | None = None
        # What readiness the TLS socket needs before each direction can go on: "", "r" or "w".
        self.recv_wait = ""
        self.send_wait = ""
        self.sent = 0
        self.received = 0
        self.poll = select.poll()
        self.masks: dict[int, int] = {}

    # -- the two directions ------------------------------------------------------------------------

    def _upstream(self, now: float) -> bool:
        """stdin → TLS; True if something moved."""
        moved = False
        if self.up is None and self.stdin_ready and not self.stdin_eof:
            self.stdin_ready = False
            try:
                n = os.readv(self.stdin_fd, [self.in_view])
            except BlockingIOError:
                return False
            except OSError as exc:
                self.lifetime.failed(stdin_error(exc), "stdin failed")
                return False
            if n == 0:
                self.stdin_eof = True
            else:
                chunk = self.in_view[:n]
                self.up = chunk if self.encode is None else memoryview(self.encode(bytes(chunk)))
                moved = True
        if self.up is not None and not self.send_wait:
            endpoint = self.endpoint
            try:
                taken = endpoint.send(self.up)
            except BlockingIOError:
                self.send_wait = "w" if endpoint.wants_write else "r"
                return moved
            except WirecatError as exc:
                self.lifetime.failed(_tls_send_error(exc, self.peer))
                return False
            self.sent += taken
            self.up = self.up[taken:] if taken < len(self.up) else None
            self.idle.last = now
            moved = True
        if self.stdin_eof and self.up is None and not self.input_told:
            self.input_told = True
            self.lifetime.input_ended(now)
        return moved

    def _downstream(self, now: float) -> bool:
        """TLS → stdout; True if something moved."""
        moved = False
        if self.down is not None and self.stdout_ready:
            try:
                n = os.write(self.stdout_fd, self.down)
            except BlockingIOError:
                self.stdout_ready = False
                return False
            except OSError as exc:
                if exc.errno == errno.EPIPE and self.output_is_program:
                    self.discarding = True  # the program stopped reading: drop the rest, do not reset
                    self.down = None
                elif exc.errno == errno.EPIPE:
                    self.lifetime.failed(None, "stdout was closed")
                    return False
                else:
                    self.lifetime.failed(stdout_error(exc))
                    return False
            else:
                self.down = self.down[n:] if n < len(self.down) else None
                self.idle.last = now
                moved = True
        if self.down is None and not self.peer_eof and self.recv_error is None and not self.recv_wait:
            moved |= self._receive(now)
        if self.down is None:
            if self.recv_error is not None:
                self.lifetime.failed(self.recv_error)
            elif self.peer_eof and not self.peer_told:
                self.peer_told = True
                self.lifetime.peer_ended()
        return moved

    def _receive(self, now: float) -> bool:
        """Decrypt as much as one buffer holds (records come 16 KiB at a time: one write for many)."""
        endpoint, view = self.endpoint, self.out_view
        total, limit = 0, len(view) - _RECORD
        while total <= limit:
            try:
                n = endpoint.recv_into(view[total:])
            except BlockingIOError:
                self.recv_wait = "w" if endpoint.wants_write else "r"
                break
            except WirecatError as exc:
                self.recv_error = exc  # after what came before it is written out
                break
            if n == 0:
                self.peer_eof = True
                break
            total += n
        if total:
            self.received += total
            self.idle.last = now
            if not self.discarding:
                self.down = view[:total]
        return total > 0

    # -- waiting -----------------------------------------------------------------------------------

    def _want(self, fd: int, mask: int, wanted: dict[int, int]) -> None:
        wanted[fd] = wanted.get(fd, 0) | mask

    def _wait(self, timeout: float | None) -> None:
        """Wait for what the blocked steps need, or ``timeout`` seconds (None: no timer)."""
        wanted: dict[int, int] = {}
        sock_fd = self.endpoint.read_fd
        if self.sending and not self.stdin_eof and self.up is None and not self.stdin_ready:
            self._want(self.stdin_fd, select.POLLIN, wanted)
        if self.down is not None and not self.stdout_ready:
            self._want(self.stdout_fd, select.POLLOUT, wanted)
        if "r" in (self.recv_wait, self.send_wait):
            self._want(sock_fd, select.POLLIN, wanted)
        if "w" in (self.recv_wait, self.send_wait) or self.endpoint.pending_output:
            self._want(sock_fd, select.POLLOUT, wanted)
        for fd in set(self.masks) - set(wanted):
            self.poll.unregister(fd)
            del self.masks[fd]
        for fd, mask in wanted.items():
            if self.masks.get(fd) != mask:
                if fd in self.masks:
                    self.poll.modify(fd, mask)
                else:
                    self.poll.register(fd, mask)
                self.masks[fd] = mask
        if not wanted and timeout is None:
            return  # nothing to wait for: the lifetime rule decides next
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        for fd, events in self.poll.poll(ms):
            if fd == sock_fd:
                if events & _IN:
                    self.recv_wait = "" if self.recv_wait == "r" else self.recv_wait
                    self.send_wait = "" if self.send_wait == "r" else self.send_wait
                if events & _OUT:
                    self.recv_wait = "" if self.recv_wait == "w" else self.recv_wait
                    self.send_wait = "" if self.send_wait == "w" else self.send_wait
            if fd == self.stdin_fd and events & _IN:
                self.stdin_ready = True
            if fd == self.stdout_fd and events & _OUT:
                self.stdout_ready = True

    def _flush(self) -> None:
        if self.endpoint.pending_output:
            try:
                self.endpoint.flush()
            except WirecatError as exc:
                self.lifetime.failed(_tls_send_error(exc, self.peer))

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> SessionResult:
        lifetime = self.lifetime
        # A first look at stdin without waiting (a file, or bytes already there).
        self.stdin_ready = self.sending
        end: End | None = None
        while end is None:
            now = time.monotonic()
            for _ in range(_BURST):
                moved = self._upstream(now) if self.sending else False
                moved |= self._downstream(now)
                self._flush()
                if not moved:
                    break
            timeout: float | None = None
            for action in lifetime.next(time.monotonic()):
                if isinstance(action, SendFin):
                    self.endpoint.shutdown_write()
                elif isinstance(action, TellPeerEnded):
                    if self.on_peer_eof is not None:
                        self.on_peer_eof()
                elif isinstance(action, End):
                    end = action
                else:
                    timeout = None if action.until is None else max(0.0, action.until - time.monotonic())
            if end is None:
                self._wait(timeout)
        error = end.error
        cut = error is not None or end.ending == "stdout was closed"
        if cut:
            self.endpoint.abort()
        else:
            self._drain_output()
        unfinished = (self.sending and not self.input_told) or not self.peer_told
        if self.on_abort is not None and unfinished:
            self.on_abort()
        ending = end.ending
        if error is not None:
            ending = error.message
        return SessionResult(
            self.sent, self.received, time.monotonic() - self.start, end.closed_first, ending, error
        )

    def _drain_output(self) -> None:
        """Send the ciphertext still queued (our close_notify, the last data) before returning.

        Bounded by the idle timeout when one is set; otherwise by the peer
        taking bytes, as a blocking write would be.
        """
        endpoint = self.endpoint
        while endpoint.pending_output:
            try:
                if endpoint.flush():
                    return
            except WirecatError:
                return  # the peer is gone: nothing more to give it
            deadline = self.idle.deadline
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                return
            poller = select.poll()
            poller.register(endpoint.write_fd, select.POLLOUT)
            if not poller.poll(None if timeout is None else int(timeout * 1000) + 1):
                return


def _tls_send_error(exc: WirecatError, peer: str) -> WirecatError:
    if isinstance(exc, PeerReset) and not exc.hint:
        exc.hint = _STOPPED_READING
    return exc
