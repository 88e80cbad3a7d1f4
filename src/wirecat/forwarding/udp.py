"""The UDP relay: one upstream socket per client address, forgotten when idle."""

from __future__ import annotations

import asyncio
import errno
import socket

from wirecat import trace
from wirecat.address import Address, format_sockaddr
from wirecat.admission import Admission, peer_host
from wirecat.bind import bind
from wirecat.errors import UsageError
from wirecat.events import Listening, Note, Refused, emit
from wirecat.listener import DrainResult
from wirecat.notices import SenderNotices
from wirecat.resolve import resolve

__all__ = ["UdpRelay"]

#: Holds any UDP payload whole: IPv6 carries up to 65,527 bytes, more than IPv4's 65,507.
_UDP_BUFFER = 65536


class _UdpSession:
    __slots__ = ("client", "last", "sock")

    def __init__(self, sock: socket.socket, client: tuple[str, int], now: float) -> None:
        self.sock = sock
        self.client = client
        self.last = now


class UdpRelay:
    """A UDP relay: one upstream socket per client address, forgotten when idle.

    Datagrams from a client go out of its own upstream socket (connected to
    the target), so the target's replies come back to that socket and are sent
    to that client alone. A session is forgotten after ``idle`` seconds with
    no datagram either way. Made by :func:`relay` with ``udp:`` addresses.
    """

    def __init__(
        self,
        listener: socket.socket,
        target: Address,
        endpoint_family: socket.AddressFamily,
        target_sockaddr: tuple[str, int] | tuple[str, int, int, int],
        admission: Admission,
        *,
        idle: float,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._listener = listener
        self._target = target
        self._family = endpoint_family
        self._target_sockaddr = target_sockaddr
        self._admission = admission
        self._idle = idle
        self._sessions: dict[tuple[str, int], _UdpSession] = {}
        # A client with no session is refused, or fails to get one, on each
        # datagram it sends: say it once per client, a few clients a second at
        # most (UDP source addresses cost nothing to forge: wirecat.notices).
        self._refusals = SenderNotices()
        self._failures = SenderNotices()
        self._reply_failures = SenderNotices()
        self._buffer = bytearray(_UDP_BUFFER)
        self._view = memoryview(self._buffer)
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._closed = False
        self.addresses = [format_sockaddr(listener.getsockname())]
        emit(Listening(tuple(self.addresses), "relay"))
        self._loop.add_reader(listener.fileno(), self._from_client)
        self._sweeper = self._loop.call_later(max(idle / 4, 0.05), self._sweep)

    @classmethod
    async def start(
        cls,
        listen: Address,
        target: Address,
        admission: Admission,
        *,
        idle: float,
        family: socket.AddressFamily = socket.AF_UNSPEC,
        target_family: socket.AddressFamily = socket.AF_UNSPEC,
    ) -> UdpRelay:
        """Bind ``listen`` (in ``family``) and resolve ``target`` (in ``target_family``); return the relay."""
        if listen.is_unix or target.is_unix:
            raise UsageError("UDP relays take host:port addresses", "Unix datagram relays are not supported")
        loop = asyncio.get_running_loop()
        endpoints = await loop.run_in_executor(
            None, lambda: resolve(target.host, target.port, family=target_family, datagram=True)
        )
        bound = bind(listen, family=family, blocking=False)
        for extra in bound.sockets[1:]:
            extra.close()  # one socket: replies must leave from the address clients used
        listener = bound.sockets[0]
        return cls(
            listener,
            target,
            endpoints[0].family,
            endpoints[0].sockaddr,
            admission,
            idle=idle,
        )

    @property
    def address(self) -> str:
        """The address listened on, with the real port."""
        return self.addresses[0]

    @property
    def sessions(self) -> int:
        """Client addresses with a live session."""
        return len(self._sessions)

    def _from_client(self) -> None:
        for _ in range(64):  # a batch per wake-up
            try:
                n, client = self._listener.recvfrom_into(self._view)
            except BlockingIOError:
                return
            except OSError as exc:
                emit(Note(f"UDP receive failed: {exc.strerror}", origin="relay"))
                return
            session = self._sessions.get(client)
            if session is None:
                session = self._new_session(client)
                if session is None:
                    continue
            session.last = self._loop.time()
            try:
                session.sock.send(self._view[:n])
            except OSError as exc:
                self._target_refused(client, exc)

    def _new_session(self, client: tuple[str, int]) -> _UdpSession | None:
        name = format_sockaddr(client)
        refusal = self._admission.decide(peer_host(client), name, len(self._sessions), unit="UDP session")
        now = self._loop.time()
        if refusal is not None:
            tail = self._refusals.check(client, now)
            if tail is not None:
                emit(Refused(name, refusal.reason, refusal.why + tail, "relay"))
            return None
        try:
            sock = trace.new_socket(self._family, socket.SOCK_DGRAM)
        except OSError as exc:  # out of descriptors: drop this datagram, keep serving
            self._say_failure(client, now, f"cannot open a socket to the target: {exc.strerror}")
            return None
        try:
            sock.setblocking(False)
            sock.connect(self._target_sockaddr)  # a datagram connect: only sets the default peer
        except OSError as exc:
            sock.close()
            self._say_failure(client, now, f"cannot reach the target {self._target}: {exc.strerror}")
            return None
        # Admitted: a later refusal (full again after this session ends) is
        # news. (Not a failure: a target that is down fails every new session.)
        self._refusals.forget(client)
        session = _UdpSession(sock, client, now)
        self._sessions[client] = session
        self._loop.add_reader(sock.fileno(), self._from_target, session)
        emit(Note(f"new UDP session for {name}", origin="relay"))
        return session

    def _from_target(self, session: _UdpSession) -> None:
        for _ in range(64):
            try:
                n = session.sock.recv_into(self._view)
            except BlockingIOError:
                return
            except OSError as exc:  # ICMP port unreachable from the target
                self._target_refused(session.client, exc)
                return
            session.last = self._loop.time()
            try:
                self._listener.sendto(self._view[:n], session.client)
            except OSError as exc:
                # The target's reply is lost (our send buffer full, the
                # client's address unreachable): said -v or not, once per
                # client and few a second, like a dropped client datagram.
                tail = self._reply_failures.check(session.client, session.last)
                if tail is not None:
                    why = (exc.strerror or str(exc)).lower()
                    text = f"reply to {format_sockaddr(session.client)} dropped: {why}"
                    emit(Note(text + tail, "warning", "relay"))

    def _say_failure(self, client: tuple[str, int], now: float, why: str) -> None:
        """Warn that ``client``'s datagram was dropped because of ``why`` (once per client, few a second)."""
        tail = self._failures.check(client, now)
        if tail is not None:
            emit(Note(f"datagram from {format_sockaddr(client)} dropped: {why}{tail}", "warning", "relay"))

    def _target_refused(self, client: tuple[str, int], exc: OSError) -> None:
        """The target refused what came from ``client`` (ICMP port unreachable): end its session.

        Said -v or not (once per client, few a second: wirecat.notices), as
        the stream relay says a target that is down: the client's datagram
        was dropped, and UDP tells the client nothing.
        """
        self._forget(client, f"the target refused: {exc.strerror}")
        if exc.errno == errno.ECONNREFUSED:
            why = f"nothing is listening on UDP {self._target}"
        else:
            why = f"the target {self._target}: {(exc.strerror or str(exc)).lower()}"
        self._say_failure(client, self._loop.time(), why)

    def _forget(self, client: tuple[str, int], why: str) -> None:
        session = self._sessions.pop(client, None)
        if session is not None:
            self._loop.remove_reader(session.sock.fileno())
            session.sock.close()
            emit(Note(f"UDP session for {format_sockaddr(client)} ended: {why}", origin="relay"))

    def _sweep(self) -> None:
        now = self._loop.time()
        for client, session in list(self._sessions.items()):
            if now - session.last >= self._idle:
                self._forget(client, f"idle for {self._idle:g} s")
        if not self._closed:
            self._sweeper = self._loop.call_later(max(self._idle / 4, 0.05), self._sweep)

    def close(self) -> None:
        """Stop relaying: close the listening socket and every session."""
        if self._closed:
            return
        self._closed = True
        self._sweeper.cancel()
        self._loop.remove_reader(self._listener.fileno())
        self._listener.close()
        for client in list(self._sessions):
            self._forget(client, "the relay stopped")
        if not self._done.done():
            self._done.set_result(None)

    async def shutdown(self, drain_timeout: float | None = None) -> DrainResult:
        """Datagrams have nothing to drain: the same as :meth:`close`; nothing is cut."""
        self.close()
        return DrainResult(finished=0, cut=0)

    async def abort(self) -> int:
        """The same as :meth:`close`: no connection to cut. Returns 0."""
        self.close()
        return 0

    async def serve_forever(self) -> None:
        """Wait until the relay is closed."""
        await asyncio.shield(self._done)

    async def __aenter__(self) -> UdpRelay:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
