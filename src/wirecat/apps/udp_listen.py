"""``listen -u``: datagrams received on an address, printed, and answered from stdin.

The rules both datagram jobs keep are in :mod:`wirecat.datagram`.

``listen -u`` (the listener)
    It never ``connect()``-s to a peer (OpenBSD nc and ncat serve only the
    first peer for the rest of their life, so a client restarted on a new
    port is never heard again):
    every datagram comes in through ``recvfrom()`` and every reply leaves
    through ``sendto()``. A peer is a source address; its session lasts until
    it has been silent (no datagram either way) for ``--udp-idle`` seconds.

    * One peer by default, like the TCP listener's one client: the first
      admitted datagram picks the peer; datagrams from anyone else are
      dropped, as nc and ncat do, but not in silence: ``ignored datagram from
      X: serving Y only (-k serves many peers)`` is said, ``-v`` or not, once
      per sender (and for a few senders a second at most:
      :mod:`wirecat.notices`). stdin is read once there is a peer and goes to it.
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
      limit is dropped and logged (always: the operator must see it; once
      per sender, as above). The
      listener runs until Ctrl-C or SIGTERM, or until stdout is closed.
    * ``--allow``/``--deny``: datagrams from a refused address are dropped,
      never printed nor answered (noted under ``-v``, once per address, as
      for streams, where a refused client is said under ``-v``). A Unix peer has no IP
      address and is always admitted, as for streams.

    ``-v`` shows ``new peer ADDR`` and ``peer ADDR expired`` lines. A Unix
    listener removes its socket file on exit, as the stream one does. ``-q``,
    ``-N`` and ``--no-shutdown`` change nothing here: end of stdin ends nothing.
"""

from __future__ import annotations

import collections
import errno
import selectors
import socket
import time
from collections.abc import Callable

from wirecat.address import Address, format_sockaddr
from wirecat.admission import peer_host
from wirecat.bind import bind
from wirecat.datagram import (
    BATCH,
    READ_SIZE,
    DatagramStdin,
    Ended,
    SockAddr,
    receive,
    tune,
    warn_truncated,
)
from wirecat.errors import ConnectError, ConnectTimeout, IdleTimeout, WirecatError
from wirecat.events import Event, Listening, Note, Refused, emit
from wirecat.lifetime import IdleClock
from wirecat.limits import DEFAULT_UDP_IDLE
from wirecat.notices import SenderNotices
from wirecat.options import ListenOptions
from wirecat.report import Reporter, format_bytes, quiet
from wirecat.session import SessionOptions, SessionResult, session_closed
from wirecat.sockets import Op, translate_os_error
from wirecat.stdio import StdoutClosed, write_stdout

__all__ = ["udp_listen_stdio"]

#: Pause before sending again to a peer whose queue was full.
_RETRY_SECONDS = 0.01
#: The notices that name the sender of a dropped datagram, one budget each
#: (see :class:`~wirecat.notices.SenderNotices`: a forged-source flood must
#: not become one stderr line per packet).
_NOTICE_KINDS = ("unnamed", "denied", "ignored", "full")


# ---------------------------------------------------------------------------
# listen -u
# ---------------------------------------------------------------------------


class _Peer:
    """One peer's session: where it is, which socket it came in on, counts."""

    __slots__ = ("last_activity", "name", "received", "sent", "sock", "sockaddr", "start")

    def __init__(self, sock: socket.socket, sockaddr: SockAddr, name: str, now: float) -> None:
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
            tune(sock)
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
        self.peers: dict[tuple[int, SockAddr], _Peer] = {}
        self.first: _Peer | None = None  # one-peer mode: the peer chosen
        self.heard_any = False  # for -w: has any datagram come at all?
        self.stdin = DatagramStdin(session.send, session.crlf, report)
        self.out: collections.deque[tuple[_Peer, bytes]] = collections.deque()
        #: Who was named in each kind of notice (each sender once; bounded).
        self.notices = {kind: SenderNotices() for kind in _NOTICE_KINDS}
        #: When to try a send again that found no room (see :meth:`_flush`).
        self.retry_at: float | None = None
        self.buffer = bytearray(READ_SIZE)
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
        except Ended as end:
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
                clock = IdleClock(idle, peer.last_activity)  # the one rule of idleness (wirecat.lifetime)
                if clock.is_idle(now):
                    raise Ended("", IdleTimeout(f"no datagram either way for {idle:g} s"))
                deadlines.append(peer.last_activity + idle)
            elif now - peer.last_activity >= self.expiry:
                if not self.out:
                    self._expire(peer)
                    raise Ended(f"{peer.name} was silent for {self.expiry:g} s")
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
        for _ in range(BATCH):
            try:
                n, sockaddr = receive(sock, self.buffer)
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
            if n > READ_SIZE:
                warn_truncated(n, peer.name)
                n = READ_SIZE
            peer.received += n
            peer.last_activity = time.monotonic()
            if self.session.receive:
                write_stdout(self.view[:n])

    def _note(self, kind: str, sockaddr: SockAddr, event: Callable[[str], Event]) -> None:
        """Emit ``event(suffix)`` if this kind of notice is due for ``sockaddr``.

        Once per sender and kind, a few new senders per second at most (a
        flood of forged source addresses must not flood stderr); the suffix
        counts the senders that went unnamed meanwhile.
        """
        suffix = self.notices[kind].check(sockaddr, time.monotonic())
        if suffix is not None:
            emit(event(suffix))

    def _admit(self, sock: socket.socket, sockaddr: SockAddr | None) -> _Peer | None:
        """The session this datagram belongs to (made if new), or None to drop it."""
        if not sockaddr:
            # A Unix socket that was never bound: we can print, never answer.
            self._note(
                "unnamed",
                "",
                lambda _: Note("datagram from an unnamed Unix socket: it cannot get replies", origin="udp"),
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
            why = refusal.why
            self._note("denied", sockaddr, lambda tail: Refused(name, "access", why + tail, "udp"))
            return None
        if not self.keep_open and self.first is not None:
            # Said once per sender, -v or not: its datagrams are dropped, and
            # nc and ncat drop them without a word.
            text = f"ignored datagram from {name}: serving {self.first.name} only (-k serves many peers)"
            self._note("ignored", sockaddr, lambda tail: Note(text + tail, "warning", "udp"))
            return None
        if refusal is not None:
            why = refusal.why
            self._note("full", sockaddr, lambda tail: Refused(name, "full", why + tail, "udp"))
            return None
        peer = _Peer(sock, sockaddr, name, time.monotonic())
        self.peers[key] = peer
        self.heard_any = True
        self.notices["full"].forget(sockaddr)  # refused again later (full again): say it again
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
            raise Ended("", error)
        self.peers.pop((peer.sock.fileno(), peer.sockaddr), None)
        emit(Note(f"{error.message}; its session ends", "warning", "udp"))
