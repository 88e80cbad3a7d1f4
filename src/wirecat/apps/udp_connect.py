"""``connect -u``: stdin sent to one datagram address, what it sends back printed.

The rules both datagram jobs keep are in :mod:`wirecat.datagram`.

``connect -u`` (the client)
    The socket is ``connect()``-ed, so the kernel passes us only the target's
    datagrams, and an ICMP "port unreachable" comes back as ``ECONNREFUSED``:
    that is reported as "nothing is listening on UDP HOST:PORT" (exit 4, as a
    refused TCP connection). When the name has several addresses
    (``localhost`` → ``::1``, ``127.0.0.1``) and the first refuses before
    anything came back from it, the next one is tried and what was already
    sent is sent again, as Happy Eyeballs does for TCP.

    UDP has no end of stream to wait for, so after end of stdin:

    ======================  ==================================================
    flags                   when the client exits
    ======================  ==================================================
    (none)                  after :data:`DEFAULT_LINGER` (0.1 s) with no
                            datagram: replies already on their way and an ICMP
                            error still get in, shell loops stay fast (socat
                            waits 0.5 s, ``nc -u`` forever, ncat at once)
    ``--wait-reply SECS``   waits up to SECS for a reply to what we sent last;
                            once one came, exits after 0.1 s with no more, so
                            a query exits as soon as it is answered
    ``-q SECS``             exactly SECS after end of stdin, whatever arrives
                            (Debian's ``nc -u -q``); also caps the above
    ``--no-shutdown``       never by itself: keeps printing until Ctrl-C,
                            ``-i`` or ``-q`` (what ``nc -u`` does)
    ``--send-only``         at once, after checking for an ICMP error
    ``--recv-only``         reads no stdin and sends nothing (a datagram would
                            be data the server did not ask for); prints what
                            the target sends to our address until Ctrl-C,
                            ``-i`` or ``-q``; with ``--wait-reply SECS``, as
                            above, counting from the start
    ======================  ==================================================

    ``-i SECS`` ends the session with exit 6 after SECS with no datagram either
    way. A Unix datagram client binds an address of its own so that replies can
    reach it: on Linux an autobound abstract name (nothing to remove, even
    after ``kill -9``), elsewhere a socket file in a private temporary
    directory, removed on exit. ``-w`` and ``--keepalive`` change nothing:
    ``connect()`` on a datagram socket sends no packet.
"""

from __future__ import annotations

import collections
import errno
import os
import selectors
import socket
import sys
import time

from wirecat.address import Address, check_remote_port, format_sockaddr
from wirecat.datagram import (
    BATCH,
    READ_SIZE,
    DatagramStdin,
    Ended,
    count_datagrams,
    tune,
    warn_truncated,
)
from wirecat.dial import bind_source, source_family
from wirecat.errors import BindError, ConnectError, IdleTimeout
from wirecat.events import emit
from wirecat.lifetime import IdleClock
from wirecat.options import ConnectOptions
from wirecat.report import Reporter, quiet
from wirecat.resolve import SocketAddress, resolve
from wirecat.session import SessionOptions, SessionResult, session_closed
from wirecat.sockets import Op, translate_os_error
from wirecat.stdio import StdoutClosed, write_stdout
from wirecat.trace import new_socket

__all__ = ["DEFAULT_LINGER", "udp_connect_stdio"]

#: Seconds the client keeps printing after end of stdin when nothing more
#: arrives (and after a reply with ``--wait-reply``). Long enough for replies
#: already in flight on a LAN and for an ICMP "port unreachable" to come back;
#: short enough for shell loops. socat waits 0.5 s (``-t``), ``nc -u`` forever.
DEFAULT_LINGER = 0.1
#: What the client keeps to send again if its first address turns out dead.
_REPLAY_DATAGRAMS = 64


# ---------------------------------------------------------------------------
# connect -u
# ---------------------------------------------------------------------------


def udp_connect_stdio(
    target: Address,
    options: ConnectOptions = ConnectOptions(),
    session: SessionOptions = SessionOptions(),
    *,
    wait_reply: float | None = None,
    report: Reporter = quiet,
) -> SessionResult:
    """Send stdin to ``target`` as datagrams and print the datagrams it sends back.

    See the module docstring for when the session ends after stdin does.

    Args:
        target: a datagram address (UDP ``host:port`` or a Unix datagram path).
        options: ``family``, ``source`` and ``numeric`` are used.
        session: ``send``/``receive`` (``--recv-only``/``--send-only``),
            ``shutdown_on_eof`` (False: keep receiving), ``quit_after_eof``
            (``-q``), ``idle_timeout`` (``-i``) and ``crlf`` (``-C``).
        wait_reply: ``--wait-reply``: after end of stdin, seconds to wait for a
            reply to the last datagram sent; None for :data:`DEFAULT_LINGER`.
        report: receives ``-v`` lines, including the closing summary.

    Returns:
        How it went; a failure during the session is in ``result.error``:
        ConnectError (nothing listening: ICMP port unreachable), IdleTimeout
        (``-i``), or another NetworkError.

    Raises:
        ResolveError, BindError, ConnectError, UsageError: the socket could not
            be set up.
    """
    client = _Client(target, options, session, wait_reply, report)
    try:
        result = client.run()
    finally:
        client.close()
    emit(session_closed(result, client.where, "udp"))
    return result


class _Client:
    """The ``connect -u`` loop: one connected datagram socket, stdin, stdout."""

    def __init__(
        self,
        target: Address,
        options: ConnectOptions,
        session: SessionOptions,
        wait_reply: float | None,
        report: Reporter,
    ) -> None:
        self.target = target
        self.options = options
        self.session = session
        self.wait_reply = wait_reply
        self.report = report
        self.tempdir: str | None = None
        self.endpoints: list[SocketAddress] = []
        self.where = f"UDP {target}" if not target.is_unix else str(target)
        if target.is_unix:
            self.sock = self._open_unix()
        else:
            check_remote_port(target.port)
            family = options.family
            if options.source is not None and options.source[0]:
                # As dial() does: the source's family is the socket's (else the
                # bind of a v6 source to a v4 socket says "unknown host").
                family = source_family(options.source[0], family, target.host)
            self.endpoints = resolve(
                target.host,
                target.port,
                family=family,
                datagram=True,
                numeric=options.numeric,
            )
            self.sock = self._open_first()
        self.stdin = DatagramStdin(session.send, session.crlf, report)
        self.out: collections.deque[bytes] = collections.deque()
        #: Sent to the current address with nothing back yet: resent if it refuses.
        self.replay: list[bytes] | None = []
        self.buffer = bytearray(READ_SIZE)
        self.view = memoryview(self.buffer)
        self.sent = self.received = self.datagrams_sent = self.datagrams_received = 0
        self.start = time.monotonic()
        self.last_tx = self.last_rx = self.last_activity = self.start
        self.input_ended_at: float | None = None if self.stdin.open else self.start
        self.selector = selectors.PollSelector()

    # -- set-up --------------------------------------------------------------
    def _open_first(self) -> socket.socket:
        """Open a socket to the first address that takes one (IPv6 may be off)."""
        while True:
            endpoint = self.endpoints.pop(0)
            try:
                return self._open_ip(endpoint)
            except (ConnectError, BindError) as exc:
                if not self.endpoints:
                    raise
                self.report(f"{endpoint}: {exc.message}")

    def _open_ip(self, endpoint: SocketAddress) -> socket.socket:
        sock = new_socket(endpoint.family, socket.SOCK_DGRAM)
        try:
            bind_source(sock, self.options.source)
            try:
                sock.connect(endpoint.sockaddr)
            except OSError as exc:
                raise translate_os_error(exc, Op.SEND, f"UDP {endpoint}") from exc
            tune(sock)
        except BaseException:
            sock.close()
            raise
        self.where = f"UDP {endpoint}"
        self.report(f"UDP to {endpoint} from {format_sockaddr(sock.getsockname())}")
        return sock

    def _open_unix(self) -> socket.socket:
        sock = new_socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if sys.platform == "linux":
                # Autobind (bind to ""): the kernel picks a free abstract name,
                # which needs no file and so can never be left behind.
                sock.bind("")
            else:
                import tempfile  # lazily: 6 ms of start-up, and Linux never needs it

                self.tempdir = tempfile.mkdtemp(prefix="wirecat-")
                sock.bind(os.path.join(self.tempdir, "reply.sock"))
            try:
                sock.connect(self.target.sockaddr_path)
            except OSError as exc:
                raise translate_os_error(exc, Op.CONNECT, str(self.target)) from exc
            tune(sock)
        except BaseException:
            sock.close()
            self._remove_tempdir()
            raise
        self.report(f"datagrams to {self.target} from {format_sockaddr(sock.getsockname())}")
        return sock

    def _remove_tempdir(self) -> None:
        if self.tempdir is not None:
            try:
                os.unlink(os.path.join(self.tempdir, "reply.sock"))
            except OSError:
                pass
            try:
                os.rmdir(self.tempdir)
            except OSError:
                pass
            self.tempdir = None

    def close(self) -> None:
        """Close the socket and remove our reply address, if it is a file."""
        self.selector.close()
        self.sock.close()
        self._remove_tempdir()

    # -- the loop ------------------------------------------------------------
    def run(self) -> SessionResult:
        selector = self.selector
        ending, error = "", None
        try:
            while True:
                now = time.monotonic()
                timeout = self._check_end(now)
                self._watch(selector)
                for key, events in selector.select(timeout):
                    if key.fileobj == 0:
                        self._on_stdin()
                    else:
                        if events & selectors.EVENT_WRITE:
                            self._flush()
                        if events & selectors.EVENT_READ:
                            self._on_socket()
        except Ended as end:
            ending, error = end.ending, end.error
        except StdoutClosed:
            ending = "stdout was closed"
        counts = f"{count_datagrams(self.datagrams_sent)} out, {self.datagrams_received} in"
        ending = f"{counts}; {error.message if error else ending}" if ending or error else counts
        duration = time.monotonic() - self.start
        # closed_first stays "": UDP has no close, and "we closed first" would mislead.
        return SessionResult(self.sent, self.received, duration, "", ending, error)

    def _watch(self, selector: selectors.BaseSelector) -> None:
        """Register what we wait for now: stdin only when nothing is queued."""
        want_stdin = self.stdin.open and not self.out
        registered = selector.get_map()
        if want_stdin and 0 not in registered:
            selector.register(0, selectors.EVENT_READ)
        elif not want_stdin and 0 in registered:
            selector.unregister(0)
        # Always read the socket, even with --send-only: that is where the
        # kernel reports ICMP errors, and unread datagrams would fill the buffer.
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0)
        key = registered.get(self.sock.fileno())
        if key is None:
            selector.register(self.sock, mask)
        elif key.events != mask:
            selector.modify(self.sock, mask)

    def _check_end(self, now: float) -> float | None:
        """Raise Ended if a rule ends the session now; else the select timeout."""
        deadlines: list[float] = []
        clock = IdleClock(self.session.idle_timeout, self.last_activity)  # the one rule (wirecat.lifetime)
        if clock.is_idle(now):
            raise Ended("", IdleTimeout(f"no datagram either way for {clock.timeout:g} s"))
        if clock.deadline is not None:
            deadlines.append(clock.deadline)
        ended = self.input_ended_at
        if ended is not None and not self.out:
            quit_after = self.session.quit_after_eof
            if quit_after is not None:
                if now - ended >= quit_after:
                    raise Ended(f"stopped {quit_after:g} s after end of input")
                deadlines.append(ended + quit_after)
            if self.session.send and not self.session.receive:
                self._raise_pending_error()
                raise Ended("end of input")
            gap = self._quiet_gap()
            if gap is not None:
                since = max(ended, self.last_tx, self.last_rx)
                if now - since >= gap:
                    what = "reply" if self.wait_reply is not None and gap == self.wait_reply else "datagram"
                    raise Ended(f"end of input, then no {what} for {gap:g} s")
                deadlines.append(since + gap)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _quiet_gap(self) -> float | None:
        """Seconds of silence that end the session after end of input; None: no limit."""
        if self.wait_reply is not None:
            # Answered: a datagram came after the last one we sent (or, with
            # --recv-only, any datagram came).
            answered = self.last_rx > self.last_tx if self.session.send else self.datagrams_received > 0
            return min(self.wait_reply, DEFAULT_LINGER) if answered else self.wait_reply
        if not self.session.send or not self.session.shutdown_on_eof:
            return None  # --recv-only, --no-shutdown: until Ctrl-C, -i or -q
        if self.session.quit_after_eof is not None:
            return None  # -q alone decides, as Debian's nc -u -q does
        return DEFAULT_LINGER

    def _raise_pending_error(self) -> None:
        """Report an ICMP error already queued on the socket (``--send-only``)."""
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._failed(OSError(err, os.strerror(err)))

    # -- stdin → socket --------------------------------------------------------
    def _on_stdin(self) -> None:
        datagrams = self.stdin.read()
        if not datagrams and self.stdin.open:
            return  # nothing now (a non-blocking stdin)
        if not datagrams:
            self.input_ended_at = time.monotonic()
            if self.wait_reply is not None and self.session.receive:
                self.report(f"end of input; waiting up to {self.wait_reply:g} s for a reply")
            return
        self.out.extend(datagrams)
        self._flush()

    def _flush(self) -> None:
        while self.out:
            datagram = self.out[0]
            try:
                self.sock.send(datagram)
            except BlockingIOError:
                return  # the socket is full: EVENT_WRITE brings us back
            except OSError as exc:
                self._failed(exc)
                continue  # _failed switched to the next address and requeued
            self.out.popleft()
            self.sent += len(datagram)
            self.datagrams_sent += 1
            self.last_tx = self.last_activity = time.monotonic()
            if self.replay is not None:
                self.replay.append(datagram)
                if len(self.replay) > _REPLAY_DATAGRAMS:
                    self.replay = None  # too much to resend: no more fallback

    # -- socket → stdout -------------------------------------------------------
    def _on_socket(self) -> None:
        for _ in range(BATCH):
            try:
                n = self.sock.recv_into(self.buffer, 0, socket.MSG_TRUNC)
            except BlockingIOError:
                return
            except OSError as exc:
                self._failed(exc)
                return
            self.replay = None  # somebody answers here: no going elsewhere
            if not self.datagrams_received:
                self.report(f"first datagram from {self.where}")
            self.datagrams_received += 1
            self.last_rx = self.last_activity = time.monotonic()
            if n > READ_SIZE:
                warn_truncated(n, self.where)
                n = READ_SIZE
            self.received += n
            if self.session.receive:
                write_stdout(self.view[:n])

    # -- errors ----------------------------------------------------------------
    def _failed(self, exc: OSError) -> None:
        """Handle a send or receive error: try the next address, or end."""
        if exc.errno == errno.ECONNREFUSED:
            if self.endpoints and self.replay is not None:
                self._next_address()
                return
            hint = (
                "check the path; is the listener still running?"
                if self.target.is_unix
                else "an ICMP 'port unreachable' came back; check the host and port"
            )
            raise Ended("", ConnectError(f"nothing is listening on {self.where}", hint).caused_by(exc))
        raise Ended("", translate_os_error(exc, Op.SEND, self.where))

    def _next_address(self) -> None:
        endpoint = self.endpoints.pop(0)
        self.report(f"nothing is listening on {self.where}; trying {endpoint}")
        old = self.sock
        self.selector.unregister(old)
        old.close()
        self.sock = self._open_ip(endpoint)
        assert self.replay is not None
        self.out.extendleft(reversed(self.replay))
        self.replay = []
