"""``wirecat listen``: the six steps of a TCP server, joined to stdin and stdout.

socket → bind → listen → accept → communicate → close, for real:

* one client by default: accept one (refusing denied peers), stop listening,
  run the same stdio session as ``connect``, exit when it ends;
* ``keep_open`` (``-k``): many clients at once in one thread (``selectors``):
  what each client sends goes to stdout, what stdin gives goes to every
  connected client. stdin is read only while a client is connected and every
  client's queue is below its limit, so nothing typed is dropped for lack of
  a listener, and a slow client slows stdin rather than growing memory. At
  end of stdin each client gets FIN once its queue is sent (clients that come
  later get it at once), the same rule as one-client mode; ``--no-shutdown``
  keeps them open, and ``--recv-only`` (a log sink) never reads stdin.

With TLS the hub is the same one loop: each client gets a non-blocking
:class:`~wirecat.tls_endpoint.TLSEndpoint` whose handshake is driven on
readiness, bounded by ``handshake_timeout`` (a client that stalls is cut
alone, and one that fails is one warning line: the others never wait for
either); it joins the broadcast once its handshake is done. Its
close_notify is its end; a TCP end without one is said as a possible
truncation. ``ssl`` is imported only when TLS is asked for.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from wirecat.address import Address, format_sockaddr
from wirecat.bind import bind
from wirecat.errors import ConnectTimeout, TLSTruncated, WirecatError
from wirecat.events import Accepted, Closed, Listening, Note, emit
from wirecat.lifetime import IdleClock
from wirecat.limits import DEFAULT_HANDSHAKE_TIMEOUT
from wirecat.options import ListenOptions
from wirecat.report import Reporter, quiet
from wirecat.session import SessionOptions, SessionResult, run_session, session_closed
from wirecat.sockets import (
    accept_admitted,
    accept_one,
    close_with_reset,
)
from wirecat.stdio import StdoutClosed, fd_is_open, read_stdin, write_stdout

if TYPE_CHECKING:
    from wirecat.tls import ServerTLS
    from wirecat.tls_endpoint import TLSEndpoint

__all__ = ["ListenOptions", "listen_stdio"]


def listen_stdio(
    address: Address,
    options: ListenOptions = ListenOptions(),
    session: SessionOptions = SessionOptions(),
    *,
    tls: ServerTLS | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    report: Reporter = quiet,
    on_listening: Callable[[list[str]], None] | None = None,
) -> SessionResult | None:
    """Listen on ``address`` and join clients to stdin and stdout.

    Args:
        tls: speak TLS to the client (with ``keep_open``, to each client);
            each handshake is bounded by ``handshake_timeout``.
        on_listening: called once with the addresses really listened on
            (``127.0.0.1:40123``), after ``listen()`` and before ``accept()``.

    Returns:
        The session's result in one-client mode; None with ``keep_open``
        (which returns only when interrupted, or when stdout is closed).

    Raises:
        BindError, ResolveError, ProgramError: the listener could not start.
        ConnectTimeout: ``accept_timeout`` passed with no client.
    """
    with bind(address, family=options.family, numeric=options.numeric) as bound:
        listeners = bound.sockets
        emit(Listening(tuple(bound.names), "listen"))
        if on_listening is not None:
            on_listening(bound.names)
        if options.keep_open:
            _Hub(listeners, options, session, report, tls=tls, handshake_timeout=handshake_timeout).run()
            return None
        sock, peer = accept_one(
            listeners,
            options.admission,
            timeout=options.accept_timeout,
            keepalive=options.keepalive,
            report=report,
        )
    with sock:
        emit(Accepted(peer, bound.names[0], 1, "listen"))
        if tls is not None:
            from wirecat.tls_endpoint import secure

            endpoint = secure(
                sock, tls, server_side=True, timeout=handshake_timeout, peer=peer, report=report
            )
            result = run_session(endpoint, peer=peer, options=session)
        else:
            result = run_session(sock, peer=peer, options=session)
    emit(session_closed(result, peer, "session"))
    return result


class _Client:
    __slots__ = (
        "closing",
        "deadline",
        "fin_sent",
        "idle",
        "peer",
        "queue",
        "received",
        "sent",
        "sock",
        "start",
        "tls",
    )

    def __init__(
        self, sock: socket.socket, peer: str, idle_timeout: float | None, tls: TLSEndpoint | None = None
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.queue = bytearray()
        self.sent = 0
        self.received = 0
        self.start = time.monotonic()
        #: Stamped where bytes move either way (the one idle clock: wirecat.lifetime).
        self.idle = IdleClock(idle_timeout, self.start)
        self.closing = False  # the client sent EOF: close once its queue is sent
        self.fin_sent = False  # we sent FIN (end of our stdin) after its queue
        #: The TLS endpoint over ``sock`` (None: plain TCP).
        self.tls = tls
        #: When its TLS handshake must be done (None: done, or no bound).
        self.deadline: float | None = None

    @property
    def handshaking(self) -> bool:
        """Its TLS handshake is not done yet: it is not in the broadcast."""
        return self.tls is not None and not self.tls.handshaken

    @property
    def drained(self) -> bool:
        """Nothing of ours is waiting to go to it (plaintext or ciphertext)."""
        return not self.queue and (self.tls is None or not self.tls.pending_output)


#: Reads of one TLS client per turn of the loop while OpenSSL holds more (its
#: ``pending``): 16 × 256 KiB, then the other clients get their turn.
_TLS_READS_PER_TURN = 16


class _Hub:
    """The ``-k`` loop: one thread, one selector, every client and stdin."""

    def __init__(
        self,
        listeners: list[socket.socket],
        options: ListenOptions,
        session: SessionOptions,
        report: Reporter,
        *,
        tls: ServerTLS | None = None,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.listeners = listeners
        self.local = format_sockaddr(listeners[0].getsockname())
        self.options = options
        self.session = session
        self.report = report
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        # poll(), not epoll: stdin may be a regular file, which epoll refuses.
        self.selector = selectors.PollSelector()
        self.clients: dict[int, _Client] = {}
        #: TLS clients whose endpoint still holds bytes after their turn: read
        #: again without waiting (readiness will not fire for them).
        self.unread: set[_Client] = set()
        self.buffer = bytearray(256 * 1024)
        self.view = memoryview(self.buffer)
        self.stdin_open = session.send and fd_is_open(0)
        #: End of stdin reached: each client gets FIN once its queue is sent
        #: (the lifetime rule of session.py), unless --no-shutdown.
        self.stdin_done = session.send and not self.stdin_open
        self.stdin_registered = False
        self.start = time.monotonic()
        self.ever_connected = False  # for -w: the wait is for the first client
        self.encode = None
        if session.crlf:
            from wirecat.crlf import CrlfEncoder

            self.encode = CrlfEncoder().feed

    def run(self) -> None:
        for listener in self.listeners:
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, self._on_accept)
        try:
            while True:
                self._update_stdin()
                timeout = 0.0 if self.unread else self._next_timeout()
                for key, events in self.selector.select(timeout):
                    key.data(key.fileobj, events)
                self._read_unread()
                self._expire_idle()
                self._expire_handshakes()
                wait = self.options.accept_timeout
                if wait is not None and not self.ever_connected and time.monotonic() - self.start >= wait:
                    raise ConnectTimeout(
                        f"no client connected within {wait:g} s", "", setting="accept_timeout"
                    )
        except StdoutClosed:
            return
        except (KeyboardInterrupt, SystemExit):
            # Stopped by a signal: say what that cost, -v or not. (An error
            # says its own one line; a closed stdout ends quietly.)
            self._cut_off_all(announce=True)
            raise
        finally:
            self._cut_off_all()
            self.selector.close()

    def _cut_off_all(self, *, announce: bool = False) -> None:
        """The hub is ending: reset every client still here, so none takes it for the end."""
        cut = list(self.clients.values())
        for client in cut:
            self._close(client, "cut off (reset): the listener stopped", cut=True)
        if cut and announce:
            text = f"stopped: {len(cut)} client{'s' if len(cut) != 1 else ''} cut off (reset)"
            emit(Note(text, "warning", "hub"))

    # -- stdin ---------------------------------------------------------------
    def _update_stdin(self) -> None:
        # Read only for a client that can take it: one still in its TLS
        # handshake is no listener yet (and may never be one).
        want = (
            self.stdin_open
            and any(not c.handshaking for c in self.clients.values())
            and all(len(c.queue) < self.options.client_queue for c in self.clients.values())
        )
        if want and not self.stdin_registered:
            self.selector.register(0, selectors.EVENT_READ, self._on_stdin)
        elif not want and self.stdin_registered:
            self.selector.unregister(0)
        self.stdin_registered = want

    def _on_stdin(self, _fd: object, _events: int) -> None:
        data = read_stdin(len(self.buffer))
        if data is None:
            return  # a non-blocking stdin with nothing now: wait for the next readiness
        if not data:
            self.stdin_open = False
            self.stdin_done = True
            self.report("end of stdin")
            for client in list(self.clients.values()):
                if not client.handshaking:
                    self._flush(client)  # sends FIN where the queue is empty
            return
        if self.encode is not None:
            data = self.encode(data)
        for client in list(self.clients.values()):
            if not client.closing and not client.handshaking:
                client.queue += data
                self._flush(client)

    # -- clients -------------------------------------------------------------
    def _on_accept(self, listener: object, _events: int) -> None:
        accepted = accept_admitted(
            listener,  # type: ignore[arg-type]
            self.options.admission,
            len(self.clients),
            report=self.report,
            keepalive=self.options.keepalive,
            origin="hub",
        )
        if accepted is None:
            return
        sock, peer = accepted
        sock.setblocking(False)
        endpoint = None
        if self.tls is not None:
            from wirecat.tls_endpoint import TLSEndpoint

            endpoint = TLSEndpoint(sock, self.tls, server_side=True, peer=peer)
        client = _Client(sock, peer, self.session.idle_timeout, endpoint)
        self.clients[sock.fileno()] = client
        self.ever_connected = True
        # Read even with --send-only (what comes is dropped): that is how a
        # client's leaving, or reset, is noticed while stdin is quiet.
        self.selector.register(sock, selectors.EVENT_READ, self._on_client)
        emit(Accepted(peer, self.local, len(self.clients), "hub"))
        if endpoint is not None:
            if self.handshake_timeout is not None:
                client.deadline = client.start + self.handshake_timeout
            self._handshake(client)  # its ClientHello may be here already
        elif self.stdin_done:
            self._flush(client)  # stdin already ended: FIN at once

    def _on_client(self, sock: object, events: int) -> None:
        client = self.clients.get(sock.fileno())  # type: ignore[attr-defined]
        if client is None:
            return
        if client.handshaking:
            self._handshake(client)
            return
        if events & selectors.EVENT_WRITE:
            self._flush(client)
        if events & selectors.EVENT_READ and client.sock.fileno() >= 0 and not client.closing:
            self._receive(client)

    def _handshake(self, client: _Client) -> None:
        """Drive a TLS client's handshake one step on readiness; it never blocks the loop."""
        endpoint = client.tls
        assert endpoint is not None
        try:
            endpoint.handshake_step()
        except BlockingIOError:
            self._watch(client)
            return
        except WirecatError as exc:
            # One line, -v or not: every client may fail the same way, and the
            # hub serves on. No close_notify: there was no session to end.
            # (translate_ssl_error's line names the peer already.) A plain
            # close, not a reset: the client reads the alert OpenSSL sent.
            emit(Note(str(exc), "warning", "hub"))
            self._close(client, "TLS handshake failed")
            return
        client.deadline = None
        client.idle.last = time.monotonic()
        if self.report is not quiet:  # -v only (the subject may need cryptography)
            from wirecat.tls_endpoint import describe_session

            self.report(describe_session(endpoint))
        if self.stdin_done:
            self._flush(client)  # stdin already ended: close_notify at once
        if client.sock.fileno() >= 0 and not client.closing:
            self._receive(client)  # application data may have come with its Finished

    def _expire_handshakes(self) -> None:
        if self.tls is None:
            return
        now = time.monotonic()
        for client in list(self.clients.values()):
            if client.deadline is not None and now >= client.deadline and client.tls is not None:
                error = client.tls.timeout_error(self.handshake_timeout)
                emit(Note(f"{error}", "warning", "hub"))
                self._close(client, "TLS handshake timed out: cut off (reset)", cut=True)

    def _receive(self, client: _Client) -> None:
        if client.tls is not None:
            self._receive_tls(client, client.tls)
            return
        try:
            n = client.sock.recv_into(self.buffer)
        except BlockingIOError:
            return
        except OSError as exc:
            self._close(client, f"error: {exc.strerror}")
            return
        if n == 0:
            self._ended(client)
            return
        self._got(client, n)

    def _got(self, client: _Client, n: int) -> None:
        client.received += n
        client.idle.last = time.monotonic()
        if self.session.receive:
            write_stdout(self.view[:n])

    def _ended(self, client: _Client) -> None:
        """The client sent its end (FIN, or close_notify): close once our queue is sent."""
        client.closing = True
        self.unread.discard(client)
        if client.drained:
            self._close(client, "client closed")
        else:
            self._watch(client)

    def _receive_tls(self, client: _Client, endpoint: TLSEndpoint) -> None:
        self.unread.discard(client)
        for _ in range(_TLS_READS_PER_TURN):
            try:
                n = endpoint.recv_into(self.buffer)
            except BlockingIOError:
                break
            except TLSTruncated:
                emit(
                    Note(
                        f"{client.peer} ended the stream without TLS close_notify:"
                        " what it sent may be cut short",
                        "warning",
                        "hub",
                    )
                )
                self._close(client, "no TLS close_notify: possibly truncated")
                return
            except WirecatError as exc:
                self._close(client, f"error: {exc.message}")
                return
            if n == 0:
                self._ended(client)
                return
            self._got(client, n)
            if not endpoint.pending:
                break
        else:
            if endpoint.pending:
                self.unread.add(client)  # its turn is over; the next select() does not wait
        self._watch(client)

    def _read_unread(self) -> None:
        for client in list(self.unread):
            self.unread.discard(client)
            if self.clients.get(client.sock.fileno()) is client and not client.closing:
                self._receive(client)

    def _flush(self, client: _Client) -> None:
        if client.tls is not None:
            if not self._flush_tls(client, client.tls):
                return
        elif client.queue:
            try:
                n = client.sock.send(client.queue)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self._close(client, f"error: {exc.strerror}")
                return
            del client.queue[:n]
            client.sent += n
            if n:
                client.idle.last = time.monotonic()
        if client.closing and client.drained:
            self._close(client, "client closed")
            return
        if self.stdin_done and client.drained and not client.fin_sent and self.session.shutdown_on_eof:
            client.fin_sent = True
            if client.tls is not None:
                client.tls.shutdown_write()  # close_notify: TLS's FIN (its tail is flushed on readiness)
            else:
                try:
                    client.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # already gone: its read side will tell
        self._watch(client)

    def _flush_tls(self, client: _Client, endpoint: TLSEndpoint) -> bool:
        """Send ciphertext queued, then the plaintext queue; False when the client is gone."""
        try:
            if endpoint.pending_output and not endpoint.flush():
                return True  # the socket is full: wait for write readiness
            while client.queue:
                try:
                    n = endpoint.send(client.queue)
                except BlockingIOError:
                    break
                del client.queue[:n]
                client.sent += n
                client.idle.last = time.monotonic()
                if endpoint.pending_output:
                    break  # the socket took only part: the rest on write readiness
        except WirecatError as exc:
            self._close(client, f"error: {exc.message}")
            return False
        return True

    def _watch(self, client: _Client) -> None:
        if client.sock.fileno() < 0:
            return
        mask = 0
        if not client.closing:
            mask |= selectors.EVENT_READ
        if not client.drained or (client.handshaking and client.tls is not None and client.tls.wants_write):
            mask |= selectors.EVENT_WRITE
        key = self.selector.get_map().get(client.sock.fileno())
        if key is None and mask:
            self.selector.register(client.sock, mask, self._on_client)
        elif key is not None and not mask:
            self.selector.unregister(client.sock)
        elif key is not None and key.events != mask:
            self.selector.modify(client.sock, mask, self._on_client)

    def _close(self, client: _Client, why: str, *, cut: bool = False) -> None:
        fd = client.sock.fileno()
        self.clients.pop(fd, None)
        self.unread.discard(client)
        if fd in self.selector.get_map():
            self.selector.unregister(fd)
        if cut:
            close_with_reset(client.sock)
        else:
            if client.tls is not None and client.tls.handshaken:
                # Our close_notify (if stdin has not sent it): the client sees
                # an end, not a truncation. Best effort: the socket is closing.
                client.tls.shutdown_write()
            client.sock.close()
        duration = time.monotonic() - client.start
        emit(Closed(client.peer, client.sent, client.received, duration, why, cut=cut, origin="hub"))

    # -- idle timeout --------------------------------------------------------
    def _next_timeout(self) -> float | None:
        deadlines = []
        idle = self.session.idle_timeout
        if idle is not None and self.clients:
            deadlines.append(min(c.idle.last for c in self.clients.values()) + idle)
        wait = self.options.accept_timeout
        if wait is not None and not self.ever_connected:
            deadlines.append(self.start + wait)
        deadlines += [c.deadline for c in self.clients.values() if c.deadline is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _expire_idle(self) -> None:
        idle = self.session.idle_timeout
        if idle is None:
            return
        now = time.monotonic()
        for client in list(self.clients.values()):
            if client.idle.is_idle(now):
                self._close(client, f"idle for {idle:g} s: cut off (reset)", cut=True)
