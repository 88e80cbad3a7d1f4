"""TLS over a non-blocking socket, as an :class:`~wirecat.endpoint.Endpoint`.

Built on ``ssl.SSLObject`` and two ``ssl.MemoryBIO``\\ s, not ``SSLSocket``:

* OpenSSL forbids two threads on one SSL object, so the two-thread pumps of
  a plain session cannot share one; with BIOs, one owner (a selector loop,
  an event loop) drives both directions and the socket I/O is ours.
* ``SSLSocket.unwrap()`` ends reading; here :meth:`TLSEndpoint.shutdown_write`
  sends close_notify and reading goes on until the peer's close_notify: TLS
  1.3's half-close, what ``shutdown(SHUT_WR)`` is to TCP.

The owner's duties, beyond the :class:`~wirecat.endpoint.Endpoint` calls:

* after ``BlockingIOError`` from any call, wait for the readiness
  :attr:`TLSEndpoint.wants_write` names (write when True, read otherwise);
* while :attr:`TLSEndpoint.pending_output` is true, wait for write readiness
  and call :meth:`TLSEndpoint.flush` (a close_notify, a key update's answer,
  the tail of a large send);
* while :attr:`TLSEndpoint.pending` is non-zero, read again before waiting on
  the descriptor: OpenSSL holds decrypted bytes the descriptor cannot signal.

A TCP end without close_notify is never a clean end: :meth:`recv_into`
raises :class:`~wirecat.errors.TLSTruncated` (exit 8), since a cut stream
cannot be told from a complete one otherwise.

The hot path reads into one reused 256 KiB buffer, feeds OpenSSL with it,
and writes the ciphertext OpenSSL produced straight to the socket; records
are as large as TLS allows (16 KiB).
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, cast

from wirecat.endpoint import SocketBacked, socket_names
from wirecat.errors import HandshakeTimeout, TLSError, TLSTruncated, WirecatError
from wirecat.report import Reporter, quiet
from wirecat.tls import (
    CertificateInfo,
    ClientTLS,
    ServerTLS,
    check_pin,
    describe_certificate,
    peer_certificate,
    translate_ssl_error,
    unverified_leaf,
)

__all__ = ["TLSEndpoint", "describe_session", "explain_failed_verification", "fetch_certificate", "secure"]

Buffer = bytearray | memoryview
Data = bytes | bytearray | memoryview

#: The one receive buffer of each endpoint: 16 TLS records' worth per recv().
RECEIVE_BUFFER = 256 * 1024
#: The most plaintext one send() takes: bounds the ciphertext queued in memory.
MAX_SEND = 1024 * 1024


class TLSEndpoint(SocketBacked):
    """One TLS connection over a non-blocking socket (see the module docstring).

    Args:
        sock: a connected stream socket (TCP or Unix); the endpoint owns it
            and makes it non-blocking.
        tls: a :class:`~wirecat.tls.ClientTLS` or
            :class:`~wirecat.tls.ServerTLS` (what the CLI and the dialers
            build), or a bare ``ssl.SSLContext``.
        server_side: we are the TLS server.
        server_hostname: the name sent as SNI and verified (client side);
            ``ClientTLS.server_hostname`` wins when set.
        peer: the peer's name for messages (default: its address).
        pushback: ciphertext already read from the socket (after a PROXY
            header, say): it is fed to TLS first.
    """

    def __init__(
        self,
        sock: socket.socket,
        tls: ClientTLS | ServerTLS | ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        peer: str = "",
        pushback: bytes = b"",
    ) -> None:
        self._sock = sock
        sock.setblocking(False)
        self._pin: str | None = None
        if isinstance(tls, ssl.SSLContext):
            context = tls
        else:
            context = tls.context
            if isinstance(tls, ClientTLS):
                server_hostname = tls.server_hostname or server_hostname
                self._pin = tls.pin
        self.server_side = server_side
        self.server_hostname = None if server_side else server_hostname
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=self.server_hostname,
        )
        if pushback:
            self._incoming.write(pushback)
        self._buffer = bytearray(RECEIVE_BUFFER)
        self._view = memoryview(self._buffer)
        # Ciphertext taken from the outgoing BIO that the socket has not taken yet.
        self._unsent: memoryview | None = None
        self._handshaken = False
        self._shut = False
        self._shutdown_deferred = False
        self._tcp_ended = False
        # An error met after some bytes were read: raised by the next recv_into().
        self._deferred: WirecatError | None = None
        # close_notify read behind some bytes: the next recv_into() says 0.
        self._end_behind = False
        #: The last BlockingIOError needs write readiness (True) or read readiness (False).
        self.wants_write = False
        #: The peer's certificate (DER) once the handshake is done, or None.
        self.peer_certificate: bytes | None = None
        #: ``TLSv1.3``... once the handshake is done.
        self.tls_version: str | None = None
        #: The cipher suite's name once the handshake is done.
        self.cipher: str | None = None
        #: The protocol ALPN agreed on, or None.
        self.alpn: str | None = None
        self._info: CertificateInfo | None = None
        #: The ssl error behind the last failed handshake (for a second look at the certificate).
        self.handshake_error: ssl.SSLError | None = None
        self.peer, self.local = socket_names(sock, peer)

    # -- what the Endpoint protocol asks -------------------------------------------------------

    @property
    def zero_copy_fds(self) -> None:
        """None: TLS bytes pass through Python (kTLS would change that: ARCHITECTURE.md)."""
        return None

    def take_pushback(self) -> bytes:
        """Nothing: the pushback given was ciphertext, and went to TLS."""
        return b""

    # -- the handshake -------------------------------------------------------------------------

    @property
    def handshaken(self) -> bool:
        """The handshake is done (and the pin, if any, checked)."""
        return self._handshaken

    def handshake_step(self) -> bool:
        """Advance the handshake; True when it is done and its last bytes are sent.

        Raises:
            BlockingIOError: it must wait (:attr:`wants_write` says for what).
            WirecatError: it failed (translated: one line, cause and fix);
                a pin that does not match is a CertificateError.
        """
        while not self._handshaken:
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                if not self._send_queued():
                    self.wants_write = True
                    raise BlockingIOError from None
                self._fill()  # raises BlockingIOError (wants_write False) when nothing came
                continue
            except ssl.SSLError as exc:
                self.handshake_error = exc
                self._send_queued_quietly()  # the alert tells the peer why
                raise self._handshake_failure(exc) from exc
            except OSError as exc:
                raise self._socket_error(exc, "TLS handshake") from exc
            self._handshaken = True
            try:
                self._record_session()
            except WirecatError:
                self._send_queued_quietly()  # our Finished: the peer then sees us close, not a stall
                raise
        if not self._send_queued():
            self.wants_write = True
            raise BlockingIOError
        return True

    def handshake(self, timeout: float | None) -> None:
        """The whole handshake, blocking up to ``timeout`` seconds (None: no bound).

        Raises:
            HandshakeTimeout: not done in time.
            WirecatError: it failed (see :meth:`handshake_step`).
        """
        try:
            self._handshake(timeout)
        except WirecatError as error:
            # A failed verification leaves no certificate to describe: fetch it
            # (a second handshake that trusts nothing) to word the error.
            raise explain_failed_verification(self, error, min(timeout or 5.0, 5.0)) from error.__cause__

    def _handshake(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            key = selector.register(self._sock, selectors.EVENT_READ)
            while True:
                try:
                    if self.handshake_step():
                        return
                except BlockingIOError:
                    pass
                events = selectors.EVENT_WRITE if self.wants_write else selectors.EVENT_READ
                if key.events != events:
                    key = selector.modify(self._sock, events)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise self.timeout_error(timeout)
                if not selector.select(left) and deadline is not None and time.monotonic() >= deadline:
                    raise self.timeout_error(timeout)

    def timeout_error(self, timeout: float | None) -> HandshakeTimeout:
        """The error for a handshake that did not finish in ``timeout`` seconds."""
        who = "the client" if self.server_side else "the server"
        return HandshakeTimeout(
            f"no TLS handshake with {self.peer} within {timeout or 0:g} s",
            f"{who} connected but did not finish TLS: does it speak TLS?",
        )

    def _handshake_failure(self, exc: ssl.SSLError) -> WirecatError:
        if self._tcp_ended and isinstance(exc, ssl.SSLEOFError):
            # Not a truncated stream: no data ever flowed. Say what it most likely is.
            if self.server_side:
                return TLSError(f"{self.peer} closed the connection during the TLS handshake").caused_by(exc)
            return (
                TLSError(
                    f"the server {self.peer} closed the connection during the TLS handshake",
                    "is it a TLS server? does it accept our TLS version and certificate?",
                )
                .with_cli_hint("is it a TLS server (else drop --tls)? does it accept our TLS version?")
                .caused_by(exc)
            )
        return translate_ssl_error(
            exc, self.peer, server_hostname=self.server_hostname, server_side=self.server_side
        )

    def _record_session(self) -> None:
        self.peer_certificate = peer_certificate(self._ssl)
        self.tls_version = self._ssl.version()
        described = self._ssl.cipher()
        self.cipher = described[0] if described else None
        self.alpn = self._ssl.selected_alpn_protocol()
        if self._pin is not None:
            check_pin(self.peer_certificate, self._pin, self.peer)

    @property
    def peer_info(self) -> CertificateInfo | None:
        """What the peer's certificate holds (imports ``cryptography``), or None."""
        if self._info is None and self.peer_certificate is not None:
            try:
                self._info = describe_certificate(self.peer_certificate)
            except Exception:  # a certificate we cannot read is no reason to fail a connection
                return None
        return self._info

    @property
    def peer_subject(self) -> str | None:
        """The peer certificate's subject (``CN=example.com``), or None if it sent none.

        From what OpenSSL verified when it did (no import); a certificate
        trusted by pin alone is read with ``cryptography``.
        """
        if self.peer_certificate is None:
            return None
        verified = self._ssl.getpeercert()  # {} when the context verified nothing
        if verified and verified.get("subject"):
            return _rfc4514(verified["subject"])
        info = self.peer_info
        return info.subject if info is not None else None

    # -- bytes ---------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Bytes inside OpenSSL or its BIO: read them before waiting on the descriptor.

        Plaintext already decrypted, and ciphertext already taken from the
        socket (more than a small buffer holds, say), and the descriptor
        will not fire for them; likewise a close_notify or an error read
        behind data, which the next :meth:`recv_into` hands on. (A partial
        record counts too: reading it raises BlockingIOError, once.)
        """
        behind = 1 if self._end_behind or self._deferred is not None else 0  # an end or error to hand on
        return self._ssl.pending() + self._incoming.pending + behind

    @property
    def pending_output(self) -> bool:
        """Ciphertext is queued: wait until the socket is writable and :meth:`flush`."""
        return self._unsent is not None or self._outgoing.pending > 0

    def recv_into(self, buffer: Buffer) -> int:
        """Decrypt into ``buffer``, as many records as fit and have come; 0 at the peer's close_notify.

        One call fills the buffer from every record already here (a record
        is 16 KiB at most): one call per record would cost a trip through
        Python per 16 KiB, the larger part of a bulk transfer's CPU.

        Raises:
            BlockingIOError: nothing to read yet (:attr:`wants_write` False:
                wait for read readiness; True: flush first).
            TLSTruncated: the TCP stream ended without close_notify.
            WirecatError: a TLS error (a bad record, an alert), translated.
        """
        if self._deferred is not None:
            error, self._deferred = self._deferred, None
            raise error
        if self._end_behind:
            self._end_behind = False
            return 0
        # (typeshed says read() returns bytes; given a buffer it returns the count.)
        read = cast(Callable[[int, Buffer], int], self._ssl.read)
        view = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
        size = len(view)
        total = 0
        while total < size:
            try:
                n = read(size - total, view[total:] if total else view)
            except ssl.SSLWantReadError:
                if self._outgoing.pending:
                    self._send_queued()  # a key update's answer, say: best effort, flush() does the rest
                if not total:
                    self._fill()  # BlockingIOError when the socket has nothing either
                    continue
                try:
                    self._fill()
                except BlockingIOError:
                    break
                continue
            except ssl.SSLZeroReturnError:
                self._end_behind = total > 0  # close_notify: 0 now, or at the next call
                break
            except ssl.SSLError as exc:
                error = self._read_error(exc)
                if not total:
                    raise error from exc
                self._deferred = error  # what came before it is good: hand it over first
                break
            except WirecatError as exc:  # the socket failed in _fill
                if not total:
                    raise
                self._deferred = exc
                break
            if n == 0:
                # close_notify (the ssl module returns 0 for it rather than raising)
                self._end_behind = total > 0
                break
            total += n
        if self._shutdown_deferred and not self._ssl.pending():
            self._shutdown_deferred = False
            self._send_close_notify()
        return total

    def _read_error(self, exc: ssl.SSLError) -> WirecatError:
        if self._tcp_ended and isinstance(exc, ssl.SSLEOFError):
            return TLSTruncated(f"{self.peer} ended the stream without TLS close_notify").caused_by(exc)
        return translate_ssl_error(exc, self.peer, server_side=self.server_side)

    def _fill(self) -> None:
        """Move what the socket has into the incoming BIO; BlockingIOError when it has nothing."""
        if self._tcp_ended:
            self._incoming.write_eof()
            return
        try:
            n = self._sock.recv_into(self._buffer)
        except BlockingIOError:
            self.wants_write = False
            raise
        except ssl.SSLError:
            raise
        except OSError as exc:
            raise self._socket_error(exc, "receive") from exc
        if n:
            self._incoming.write(self._view[:n])
        else:
            self._tcp_ended = True
            self._incoming.write_eof()

    def send(self, data: Data) -> int:
        """Encrypt ``data`` (up to 1 MiB of it) and send what the socket takes now.

        The plaintext is taken whole (the rest of its ciphertext is queued:
        :attr:`pending_output`); while earlier ciphertext is still queued,
        nothing is taken.

        Raises:
            BlockingIOError: earlier ciphertext is still queued (wants_write).
            WirecatError: the socket failed (a reset), translated.
        """
        if (self._unsent is not None or self._outgoing.pending) and not self._send_queued():
            self.wants_write = True
            raise BlockingIOError
        if len(data) > MAX_SEND:
            data = memoryview(data)[:MAX_SEND]
        try:
            n = self._ssl.write(data)
        except ssl.SSLWantReadError:
            self._fill()
            raise BlockingIOError from None
        except ssl.SSLError as exc:
            raise translate_ssl_error(exc, self.peer, server_side=self.server_side) from exc
        self._send_queued()
        return n

    def flush(self) -> bool:
        """Send queued ciphertext; True when none is left (call when the socket is writable)."""
        return self._send_queued()

    def _send_queued(self) -> bool:
        """Send what is queued until the socket would block; True when all went."""
        sock = self._sock
        while True:
            data = self._unsent
            if data is None:
                if not self._outgoing.pending:
                    return True
                data = memoryview(self._outgoing.read())
            try:
                n = sock.send(data)
            except BlockingIOError:
                self._unsent = data
                return False
            except OSError as exc:
                self._unsent = None
                raise self._socket_error(exc, "send") from exc
            self._unsent = data[n:] if n < len(data) else None

    def _send_queued_quietly(self) -> None:
        try:
            self._send_queued()
        except WirecatError:
            pass

    def _socket_error(self, exc: OSError, what: str) -> WirecatError:
        from wirecat.sockets import Op, translate_os_error

        op = Op.SEND if what == "send" else Op.RECEIVE
        return translate_os_error(exc, op, self.peer)

    # -- ending --------------------------------------------------------------------------------

    def shutdown_write(self) -> None:
        """The one half-close: queue close_notify (then :meth:`flush`); reading goes on.

        Over TLS 1.2 most peers answer close_notify by closing the whole
        connection; over TLS 1.3 the other direction stays open.
        """
        if self._shut:
            return
        self._shut = True
        if self._ssl.pending():
            # OpenSSL's second shutdown call would read on and drop the decrypted
            # bytes it still holds: send close_notify once they are read.
            self._shutdown_deferred = True
            return
        self._send_close_notify()

    def _send_close_notify(self) -> None:
        # ``unwrap()`` calls SSL_shutdown twice: the first queues close_notify,
        # the second reads on for the peer's. That read would drop application
        # data waiting in the BIO (OpenSSL discards it once it has sent
        # close_notify), so the ciphertext is set aside and put back after.
        waiting = self._incoming.read()
        try:
            self._ssl.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass  # close_notify is queued; the peer's has not come yet: expected
        except ssl.SSLError:
            pass  # the connection is failing: the reading side will say how
        finally:
            if waiting:
                self._incoming.write(waiting)
        try:
            self._send_queued()
        except WirecatError:
            pass  # the other direction will say how it ended


def fetch_certificate(
    address: socket._Address,
    family: int,
    *,
    server_hostname: str | None,
    timeout: float,
) -> bytes | None:
    """The leaf certificate a server presents, by a second handshake that verifies nothing.

    Only for words in an error message (the names, dates and fingerprint of a
    certificate that failed verification): nothing sent or received over it
    is trusted, and the connection is closed at once. None when it fails.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            endpoint = TLSEndpoint(sock, context, server_side=False, server_hostname=server_hostname)
            endpoint.handshake(timeout)
            der = endpoint.peer_certificate
            endpoint.shutdown_write()
            return der
    except (OSError, WirecatError):
        return None


def explain_failed_verification(endpoint: TLSEndpoint, error: WirecatError, timeout: float) -> WirecatError:
    """``error`` again with the certificate's details, when a verification failed on the client.

    A failed verification leaves no verified certificate: this takes the
    one OpenSSL was sent (:func:`wirecat.tls.unverified_leaf`), or fetches it
    by :func:`fetch_certificate`, and words the error anew (the names it holds,
    its dates, the pin that would trust it). Other errors are returned as given.
    """
    exc = endpoint.handshake_error
    if endpoint.server_side or not isinstance(exc, ssl.SSLCertVerificationError):
        return error
    # The chain the server sent is still in OpenSSL (a one-shot server, say
    # `listen --tls`, will not answer a second handshake); else fetch it.
    der = unverified_leaf(endpoint._ssl)
    if der is None:
        try:
            address = endpoint.socket.getpeername()
        except OSError:
            return error
        der = fetch_certificate(
            address, endpoint.socket.family, server_hostname=endpoint.server_hostname, timeout=timeout
        )
    if der is None:
        return error
    return translate_ssl_error(exc, endpoint.peer, server_hostname=endpoint.server_hostname, certificate=der)


def secure(
    sock: socket.socket,
    tls: ClientTLS | ServerTLS | ssl.SSLContext,
    *,
    server_side: bool,
    timeout: float | None,
    server_hostname: str | None = None,
    peer: str = "",
    report: Reporter = quiet,
) -> TLSEndpoint:
    """A :class:`TLSEndpoint` over ``sock`` with its handshake done (blocking, up to ``timeout``).

    The socket is the caller's to close if this raises. ``report`` gets the
    session's one line (:func:`describe_session`), made only when someone
    listens (the peer's subject may need ``cryptography``).

    Raises:
        HandshakeTimeout: not done in ``timeout`` seconds.
        CertificateError, TLSError: the handshake failed (one line, cause and fix).
    """
    endpoint = TLSEndpoint(sock, tls, server_side=server_side, server_hostname=server_hostname, peer=peer)
    endpoint.handshake(timeout)
    if report is not quiet:
        report(describe_session(endpoint))
    return endpoint


#: OpenSSL's long attribute names (``getpeercert()``) in RFC 4514's short form.
_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def _rfc4514(subject: Any) -> str:
    """``getpeercert()``'s subject as ``cryptography`` writes it (RFC 4514: the last RDN first)."""
    return ",".join(
        "+".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn)
        for rdn in reversed(subject)
    )


def _escape(value: str) -> str:
    escaped = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def describe_session(endpoint: TLSEndpoint) -> str:
    """What the handshake gave, in one line for ``-v``: version, cipher, ALPN, the peer's certificate."""
    parts = [f"{endpoint.tls_version} {endpoint.cipher}"]
    if endpoint.alpn:
        parts.append(f"ALPN {endpoint.alpn}")
    if endpoint.peer_certificate is not None:
        parts.append(f"peer certificate {endpoint.peer_subject or '(unreadable)'}")
    elif endpoint.server_side:
        parts.append("no client certificate")
    return f"TLS with {endpoint.peer}: " + ", ".join(parts)
