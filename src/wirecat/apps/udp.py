"""``connect -u`` and ``listen -u``: datagrams (UDP or Unix) joined to stdin and stdout.

A datagram socket has no connection, no FIN and no flow control, so the
stream rules of :mod:`wirecat.session` cannot apply as they are. These are
the rules instead, documented here and in the README.

Both sides
    One ``read()`` of stdin becomes one datagram, as in nc and ncat. A read is
    at most :data:`~wirecat.limits.MAX_DATAGRAM` bytes (the IPv4 limit), so it
    fits; if ``-C`` makes it longer it is split into several datagrams, never
    truncated. Each datagram received is written to stdout as it is (an empty
    one writes nothing). stdin is read only when the previous datagram has
    left, so a slow socket slows stdin instead of growing memory. A closed
    stdout (``| head``) ends quietly.

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

``listen -u`` (the listener)
    It never ``connect()``-s to a peer (OpenBSD nc and ncat serve only the
    first peer for the rest of their life, so a client restarted on a new
    port is never heard again):
    every datagram comes in through ``recvfrom()`` and every reply leaves
    through ``sendto()``. A peer is a source address; its session lasts until
    it has been silent (no datagram either way) for ``--udp-idle`` seconds.

    * One peer by default, like the TCP listener's one client: the first
      admitted datagram picks the peer; datagrams from anyone else are dropped
      (noted under ``-v``), as nc and ncat do. stdin is read once there is a peer and goes to it.
      The listener exits 0 when the peer's session expires (there is no FIN to
      wait for), with exit 6 if ``-i`` passes first, and with exit 6 if ``-w``
      passes before any datagram arrived.
    * ``-k``: many peers at once, each session keyed by source address (for
      Unix sockets, the peer's socket name) and expired after ``--udp-idle``
      (or ``-i`` if shorter) seconds of silence. Everything received goes to
      stdout; each stdin read goes to the *most recent* peer, the one that sent
      the latest datagram, as the issue asks and a request/response user
      expects. stdin is not read while there is no live peer, so nothing typed
      is lost. ``--max-conns`` bounds the live sessions: a new peer over the
      limit is dropped and logged (always: the operator must see it). The
      listener runs until Ctrl-C or SIGTERM, or until stdout is closed.
    * ``--allow``/``--deny``: datagrams from a refused address are dropped,
      never printed nor answered (noted under ``-v``, once per address). A Unix peer has no IP
      address and is always admitted, as for streams.

    ``-v`` shows ``new peer ADDR`` and ``peer ADDR expired`` lines. A Unix
    listener removes its socket file on exit, as the stream one does. ``-q``,
    ``-N`` and ``--no-shutdown`` change nothing here: end of stdin ends nothing.

Everything runs in one thread on a ``selectors.PollSelector`` (poll, not
epoll: stdin may be a regular file or ``/dev/null``), without asyncio, which
would cost ~55 ms of start-up.
"""

from __future__ import annotations

import collections
import errno
import os
import selectors
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from wirecat.address import Address, check_remote_port, format_sockaddr
from wirecat.admission import peer_host
from wirecat.apps.connect import ConnectOptions
from wirecat.apps.listen import ListenOptions
from wirecat.bind import bind
from wirecat.dial import bind_source
from wirecat.errors import BindError, ConnectError, ConnectTimeout, IdleTimeout, WirecatError
from wirecat.events import Event, Listening, Note, Refused, emit
from wirecat.limits import DEFAULT_UDP_IDLE, MAX_DATAGRAM
from wirecat.report import Reporter, format_bytes, quiet
from wirecat.resolve import SocketAddress, resolve
from wirecat.session import SessionOptions, SessionResult, session_closed
from wirecat.sockets import Op, translate_os_error
from wirecat.stdio import StdoutClosed, fd_is_open, read_stdin, write_stdout
from wirecat.trace import new_socket

__all__ = ["DEFAULT_LINGER", "udp_connect_stdio", "udp_listen_stdio"]

#: Seconds the client keeps printing after end of stdin when nothing more
#: arrives (and after a reply with ``--wait-reply``). Long enough for replies
#: already in flight on a LAN and for an ICMP "port unreachable" to come back;
#: short enough for shell loops. socat waits 0.5 s (``-t``), ``nc -u`` forever.
DEFAULT_LINGER = 0.1

#: Receive buffer asked of the kernel (it clamps to net.core.rmem_max, then
#: doubles). UDP has no flow control: a burst larger than the default ~208 KiB
#: is dropped by the kernel before we are even scheduled to read it.
_SO_RCVBUF = 4 * 1024 * 1024
#: Our read buffer: above the largest UDP payload (65527 bytes over IPv6);
#: Unix datagrams may be larger, and a longer one is reported, not hidden.
_READ_SIZE = 256 * 1024
#: Datagrams read per wake-up before looking at stdin again, for fairness.
_BATCH = 64
#: What the client keeps to send again if its first address turns out dead.
_REPLAY_DATAGRAMS = 64
#: Pause before sending again to a peer whose queue was full.
_RETRY_SECONDS = 0.01
#: Addresses remembered so a dropped peer is noted once, not per datagram.
_NOTED_LIMIT = 4096

#: A socket address as the ``socket`` module gives it: an (host, port, ...)
#: tuple, a Unix path, or an abstract Unix name (bytes, starting with NUL).
_SockAddr = tuple[Any, ...] | str | bytes


class _Ended(Exception):
    """The session is over; carries how it ended."""

    def __init__(self, ending: str, error: WirecatError | None = None) -> None:
        super().__init__(ending)
        self.ending = ending
        self.error = error


def _tune(sock: socket.socket) -> None:
    """The options every datagram socket of ours gets, each for a reason."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SO_RCVBUF)
    except OSError:
        pass  # a smaller buffer only means more drops under bursts
    sock.setblocking(False)  # one thread serves stdin, stdout and the socket


def _split(data: bytes) -> list[bytes]:
    """Cut ``data`` into datagrams of at most MAX_DATAGRAM bytes, in order."""
    return [data[i : i + MAX_DATAGRAM] for i in range(0, len(data), MAX_DATAGRAM)]


class _Stdin:
    """stdin as a source of datagrams: one read each, ``-C`` applied, split."""

    def __init__(self, enabled: bool, crlf: bool, report: Reporter) -> None:
        self.open = enabled and fd_is_open(0)
        self.report = report
        self.encode: Callable[[bytes], bytes] | None = None
        if crlf:
            from wirecat.crlf import CrlfEncoder

            self.encode = CrlfEncoder().feed

    def read(self) -> list[bytes]:
        """One read; an empty list at end of stdin (then ``open`` is False)."""
        data = read_stdin(MAX_DATAGRAM)
        if data is None:
            return []  # a non-blocking stdin with nothing now (still open)
        if not data:
            self.open = False
            return []
        if self.encode is not None:
            data = self.encode(data)
        return _split(data)


def _receive(sock: socket.socket, buffer: bytearray) -> tuple[int, _SockAddr | None]:
    """``recvfrom_into`` that also learns a datagram's real size (MSG_TRUNC)."""
    n, sockaddr = sock.recvfrom_into(buffer, 0, socket.MSG_TRUNC)
    return n, sockaddr


def _datagrams(n: int) -> str:
    return f"{n} datagram" if n == 1 else f"{n} datagrams"


def _warn_truncated(n: int, where: str) -> None:
    # Always said, -v or not: bytes were lost and the user must know.
    emit(Note(f"a datagram of {n} bytes from {where} was cut to {_READ_SIZE} bytes", "warning", "udp"))


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
            self.endpoints = resolve(
                target.host,
                target.port,
                family=options.family,
                datagram=True,
                numeric=options.numeric,
            )
            self.sock = self._open_first()
        self.stdin = _Stdin(session.send, session.crlf, report)
        self.out: collections.deque[bytes] = collections.deque()
        #: Sent to the current address with nothing back yet: resent if it refuses.
        self.replay: list[bytes] | None = []
        self.buffer = bytearray(_READ_SIZE)
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
            _tune(sock)
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
            _tune(sock)
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
        except _Ended as end:
            ending, error = end.ending, end.error
        except StdoutClosed:
            ending = "stdout was closed"
        counts = f"{_datagrams(self.datagrams_sent)} out, {self.datagrams_received} in"
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
        """Raise _Ended if a rule ends the session now; else the select timeout."""
        deadlines: list[float] = []
        idle = self.session.idle_timeout
        if idle is not None:
            if now - self.last_activity >= idle:
                raise _Ended("", IdleTimeout(f"no datagram either way for {idle:g} s"))
            deadlines.append(self.last_activity + idle)
        ended = self.input_ended_at
        if ended is not None and not self.out:
            quit_after = self.session.quit_after_eof
            if quit_after is not None:
                if now - ended >= quit_after:
                    raise _Ended(f"stopped {quit_after:g} s after end of input")
                deadlines.append(ended + quit_after)
            if self.session.send and not self.session.receive:
                self._raise_pending_error()
                raise _Ended("end of input")
            gap = self._quiet_gap()
            if gap is not None:
                since = max(ended, self.last_tx, self.last_rx)
                if now - since >= gap:
                    what = "reply" if self.wait_reply is not None and gap == self.wait_reply else "datagram"
                    raise _Ended(f"end of input, then no {what} for {gap:g} s")
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
        for _ in range(_BATCH):
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
            if n > _READ_SIZE:
                _warn_truncated(n, self.where)
                n = _READ_SIZE
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
            raise _Ended("", ConnectError(f"nothing is listening on {self.where}", hint).caused_by(exc))
        raise _Ended("", translate_os_error(exc, Op.SEND, self.where))

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


# ---------------------------------------------------------------------------
# listen -u
# ---------------------------------------------------------------------------


class _Peer:
    """One peer's session: where it is, which socket it came in on, counts."""

    __slots__ = ("last_activity", "name", "received", "sent", "sock", "sockaddr", "start")

    def __init__(self, sock: socket.socket, sockaddr: _SockAddr, name: str, now: float) -> None:
        self.sock = sock
        self.sockaddr = sockaddr
        self.name = name
        self.start = self.last_activity = now
        self.sent = self.received = 0


def udp_listen_stdio(
    address: Address,
    options: ListenOptions = ListenOptions(),
    session: SessionOptions = SessionOptions(),
    *,
    idle_expiry: float = DEFAULT_UDP_IDLE,
    report: Reporter = quiet,
    on_listening: Callable[[list[str]], None] | None = None,
) -> SessionResult | None:
    """Receive datagrams on ``address``, print them, and answer peers from stdin.

    See the module docstring for the one-peer and ``keep_open`` rules.

    Args:
        address: a datagram address (UDP or a Unix datagram path).
        options: ``keep_open`` (``-k``), ``max_conns``, ``access``,
            ``accept_timeout`` (``-w``, one-peer mode) and ``family`` are used.
        session: ``send``/``receive``, ``idle_timeout`` (``-i``), ``crlf``.
        idle_expiry: ``--udp-idle``: seconds of silence that end a peer's session.
        report: receives ``-v`` lines.
        on_listening: called once with the addresses bound, before any datagram
            is read (``127.0.0.1:40123``).

    Returns:
        The peer's session in one-peer mode; None with ``keep_open`` (which
        returns only when stdout is closed).

    Raises:
        BindError, ResolveError, ProgramError: the listener could not start.
        ConnectTimeout: ``accept_timeout`` passed with no datagram.
    """
    with bind(address, family=options.family, numeric=options.numeric) as bound:
        listeners = bound.sockets
        for sock in listeners:
            _tune(sock)
        emit(Listening(tuple(bound.names), "udp"))
        if on_listening is not None:
            on_listening(bound.names)
        hub = _Listener(listeners, options, session, idle_expiry, report)
        result = hub.run()
    if result is not None:
        emit(session_closed(result, hub.first.name if hub.first is not None else str(address), "udp"))
    return result


class _Listener:
    """The ``listen -u`` loop: bound sockets, peer sessions, stdin, stdout."""

    def __init__(
        self,
        listeners: list[socket.socket],
        options: ListenOptions,
        session: SessionOptions,
        idle_expiry: float,
        report: Reporter,
    ) -> None:
        self.listeners = listeners
        self.options = options
        self.session = session
        self.report = report
        self.keep_open = options.keep_open
        expiry = idle_expiry
        if self.keep_open and session.idle_timeout is not None:
            expiry = min(expiry, session.idle_timeout)
        self.expiry = expiry
        #: Live sessions, least recently heard from first (a dict keeps order).
        self.peers: dict[tuple[int, _SockAddr], _Peer] = {}
        self.first: _Peer | None = None  # one-peer mode: the peer chosen
        self.heard_any = False  # for -w: has any datagram come at all?
        self.stdin = _Stdin(session.send, session.crlf, report)
        self.out: collections.deque[tuple[_Peer, bytes]] = collections.deque()
        self.noted: set[tuple[str, _SockAddr]] = set()
        #: When to try a send again that found no room (see :meth:`_flush`).
        self.retry_at: float | None = None
        self.buffer = bytearray(_READ_SIZE)
        self.view = memoryview(self.buffer)
        self.start = time.monotonic()

    def run(self) -> SessionResult | None:
        selector = selectors.PollSelector()
        for sock in self.listeners:
            selector.register(sock, selectors.EVENT_READ)
        try:
            while True:
                now = time.monotonic()
                timeout = self._check_timers(now)
                self._watch(selector)
                for key, _events in selector.select(timeout):
                    if key.fileobj == 0:
                        self._on_stdin()
                        continue
                    self._on_socket(key.fileobj)  # type: ignore[arg-type]
                if self.retry_at is not None and time.monotonic() >= self.retry_at:
                    self._flush()
        except _Ended as end:
            return self._result(end.ending, end.error)
        except StdoutClosed:
            return self._result("stdout was closed", None) if not self.keep_open else None
        finally:
            selector.close()

    def _result(self, ending: str, error: WirecatError | None) -> SessionResult:
        peer = self.first
        sent, received = (peer.sent, peer.received) if peer else (0, 0)
        duration = time.monotonic() - (peer.start if peer else self.start)
        return SessionResult(sent, received, duration, "", error.message if error else ending, error)

    # -- what to wait for ----------------------------------------------------
    def _target(self) -> _Peer | None:
        """Where stdin goes: the peer heard from last (the last in ``peers``)."""
        if not self.peers:
            return None
        return next(reversed(self.peers.values()))

    def _watch(self, selector: selectors.BaseSelector) -> None:
        registered = selector.get_map()
        want_stdin = self.stdin.open and not self.out and self._target() is not None
        if want_stdin and 0 not in registered:
            selector.register(0, selectors.EVENT_READ)
        elif not want_stdin and 0 in registered:
            selector.unregister(0)

    def _check_timers(self, now: float) -> float | None:
        """Expire silent peers and end the one-peer session; return the select timeout."""
        deadlines: list[float] = [] if self.retry_at is None else [self.retry_at]
        wait = self.options.accept_timeout
        if self.keep_open and wait is not None and not self.heard_any:
            if now - self.start >= wait:
                raise ConnectTimeout(f"no datagram arrived within {wait:g} s", "", setting="accept_timeout")
            deadlines.append(self.start + wait)
        if not self.keep_open:
            peer = self.first
            if peer is None:
                wait = self.options.accept_timeout
                if wait is not None:
                    if now - self.start >= wait:
                        raise ConnectTimeout(
                            f"no datagram arrived within {wait:g} s", "", setting="accept_timeout"
                        )
                    deadlines.append(self.start + wait)
                return max(0.0, min(deadlines) - now) if deadlines else None
            idle = self.session.idle_timeout
            if idle is not None and idle < self.expiry:
                if now - peer.last_activity >= idle:
                    raise _Ended("", IdleTimeout(f"no datagram either way for {idle:g} s"))
                deadlines.append(peer.last_activity + idle)
            elif now - peer.last_activity >= self.expiry:
                if not self.out:
                    self._expire(peer)
                    raise _Ended(f"{peer.name} was silent for {self.expiry:g} s")
                # Replies still queued for it (a full Unix peer): retry_at wakes us.
            else:
                deadlines.append(peer.last_activity + self.expiry)
        else:
            for key, peer in list(self.peers.items()):
                if now - peer.last_activity >= self.expiry:
                    del self.peers[key]
                    self._expire(peer)
                else:
                    deadlines.append(peer.last_activity + self.expiry)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _expire(self, peer: _Peer) -> None:
        self.report(
            f"peer {peer.name} expired after {self.expiry:g} s of silence: sent {format_bytes(peer.sent)},"
            f" received {format_bytes(peer.received)} in {time.monotonic() - peer.start:.2f} s"
        )

    # -- socket → stdout -------------------------------------------------------
    def _on_socket(self, sock: socket.socket) -> None:
        for _ in range(_BATCH):
            try:
                n, sockaddr = _receive(sock, self.buffer)
            except BlockingIOError:
                return
            except OSError as exc:
                # An unconnected socket gets no ICMP errors on Linux; anything
                # here concerns one datagram, so note it and read on.
                self.report(f"receive failed: {exc.strerror}")
                return
            peer = self._admit(sock, sockaddr)
            if peer is None:
                continue
            if n > _READ_SIZE:
                _warn_truncated(n, peer.name)
                n = _READ_SIZE
            peer.received += n
            peer.last_activity = time.monotonic()
            if self.session.receive:
                write_stdout(self.view[:n])

    def _note(self, kind: str, sockaddr: _SockAddr, event: Event) -> None:
        """Emit ``event`` once per (kind, address), so a flood does not flood stderr."""
        if (kind, sockaddr) in self.noted:
            return
        if len(self.noted) >= _NOTED_LIMIT:
            self.noted.clear()
        self.noted.add((kind, sockaddr))
        emit(event)

    def _admit(self, sock: socket.socket, sockaddr: _SockAddr | None) -> _Peer | None:
        """The session this datagram belongs to (made if new), or None to drop it."""
        if not sockaddr:
            # A Unix socket that was never bound: we can print, never answer.
            self._note(
                "unnamed",
                "",
                Note("datagram from an unnamed Unix socket: it cannot get replies", origin="udp"),
            )
            return _Peer(sock, "", "unix:(unnamed)", time.monotonic())
        key = (sock.fileno(), sockaddr)
        peer = self.peers.pop(key, None)
        if peer is not None:
            self.peers[key] = peer  # move to the end: the most recent peer
            return peer
        name = format_sockaddr(sockaddr)
        refusal = self.options.admission.decide(peer_host(sockaddr), name, len(self.peers), unit="peer")
        if refusal is not None and refusal.reason == "access":
            self._note("denied", sockaddr, Refused(name, refusal.reason, refusal.why, "udp"))
            return None
        if not self.keep_open and self.first is not None:
            # Said once per sender, -v or not: its datagrams are dropped.
            text = f"ignored datagram from {name}: serving {self.first.name} only (-k serves many peers)"
            self._note("ignored", sockaddr, Note(text, "warning", "udp"))
            return None
        if refusal is not None:
            self._note("full", sockaddr, Refused(name, refusal.reason, refusal.why, "udp"))
            return None
        peer = _Peer(sock, sockaddr, name, time.monotonic())
        self.peers[key] = peer
        self.heard_any = True
        self.noted.discard(("full", sockaddr))
        if not self.keep_open:
            self.first = peer
        self.report(f"new peer {name} ({len(self.peers)} live)")
        return peer

    # -- stdin → the most recent peer -------------------------------------------
    def _on_stdin(self) -> None:
        peer = self._target()
        datagrams = self.stdin.read()
        if not datagrams and self.stdin.open:
            return  # nothing now (a non-blocking stdin)
        if not datagrams:
            self.report("end of stdin; still receiving")
            return
        assert peer is not None  # stdin is only read while there is a peer
        self.out.extend((peer, datagram) for datagram in datagrams)
        self._flush()

    def _flush(self) -> None:
        self.retry_at = None
        while self.out:
            peer, datagram = self.out[0]
            try:
                peer.sock.sendto(datagram, peer.sockaddr)
            except BlockingIOError:
                # The peer's queue is full (a Unix peer not reading). Waiting
                # for EVENT_WRITE would spin: an unconnected Unix socket polls
                # writable whatever its peers hold. So try again a little later.
                self.retry_at = time.monotonic() + _RETRY_SECONDS
                return
            except OSError as exc:
                self.out.popleft()
                self._send_failed(peer, exc)
                continue
            self.out.popleft()
            peer.sent += len(datagram)
            peer.last_activity = time.monotonic()

    def _send_failed(self, peer: _Peer, exc: OSError) -> None:
        """A peer we cannot send to (a Unix peer gone): end its session."""
        error = translate_os_error(exc, Op.SEND, peer.name)
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            error = ConnectError(f"cannot send to {peer.name}: it is gone", "").caused_by(exc)
        # Drop what is still queued for it; it cannot arrive.
        self.out = collections.deque(item for item in self.out if item[0] is not peer)
        if not self.keep_open:
            raise _Ended("", error)
        self.peers.pop((peer.sock.fileno(), peer.sockaddr), None)
        emit(Note(f"{error.message}; its session ends", "warning", "udp"))
