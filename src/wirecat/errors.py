"""The one error tree of wirecat.

Every failure a user can meet is one of these classes. Each carries an
``exit_code`` (what the CLI exits with) and a ``hint`` (what to do about it,
or ``""``). The CLI prints ``wirecat: <message>: <hint>`` on one line and exits
with the code; a traceback appears only with ``--debug``.

::

    WirecatError                      exit 1
    ├── UsageError                    exit 2   bad flag, address, port or combination
    ├── NetworkError
    │   ├── ResolveError              exit 3   unknown host
    │   ├── ConnectError              exit 4   refused, unreachable
    │   ├── BindError                 exit 5   address in use, permission denied
    │   ├── Timeout                   exit 6
    │   │   ├── ConnectTimeout
    │   │   ├── IdleTimeout
    │   │   ├── FrameTimeout                   a frame begun, not finished in time (slowloris)
    │   │   └── HandshakeTimeout               a TLS handshake not finished in time
    │   ├── PeerReset                 exit 7   reset by peer, broken pipe
    │   ├── Truncated                 exit 8   a timer cut a connection off (-q, --drain-timeout)
    │   │   └── TLSTruncated                   TCP ended without TLS close_notify: maybe cut short
    │   └── ConnectionClosed          exit 1   send() on a connection that is closed
    ├── ProgramError                  exit 9   a program or file we were asked to use
    ├── FrameError                    exit 10  bytes that break the framing rules
    │   ├── FrameTooLarge                      a frame or line over its size limit
    │   └── IncompleteFrame                    the stream ended in the middle of a frame
    ├── ProtocolError                 exit 11  a peer broke a protocol we speak
    │   ├── ProxyProtocolError                 a bad or missing PROXY protocol header
    │   └── TransferProtocolError              bytes that break the file-transfer protocol
    ├── TransferError                 exit 1   a file was not delivered (refused: it exists,
    │   │                                      it is too large, no space)
    │   ├── UnsafePath                exit 11  a name that would write outside the directory
    │   ├── SizeMismatch              exit 11  more or fewer bytes than the header declared
    │   └── ChecksumMismatch          exit 11  the digests of the two ends differ
    ├── TLSError                      exit 12  the TLS handshake failed: versions, ciphers,
    │                                          a plain-TCP peer, a client certificate asked for
    └── CertificateError              exit 13  the peer's certificate is not trusted (issuer,
                                               name, dates, pin)

Only the standard library is imported here, so the sans-IO modules may raise
these errors without pulling in any I/O.
"""

from __future__ import annotations

# Not `from typing import ...`: typing costs ~5 ms of start-up and --version needs this module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "BindError",
    "CertificateError",
    "ChecksumMismatch",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "FrameError",
    "FrameTimeout",
    "FrameTooLarge",
    "HandshakeTimeout",
    "IdleTimeout",
    "IncompleteFrame",
    "NetworkError",
    "PeerReset",
    "ProgramError",
    "ProtocolError",
    "ProxyProtocolError",
    "ResolveError",
    "SizeMismatch",
    "TLSError",
    "TLSTruncated",
    "Timeout",
    "TransferError",
    "TransferProtocolError",
    "Truncated",
    "UnsafePath",
    "UsageError",
    "WirecatError",
]

#: Exit status of a run that did everything it was asked.
EXIT_OK = 0
#: Exit status after Ctrl-C (SIGINT), as a shell reports a killed child: 128 + 2.
EXIT_INTERRUPTED = 130


class WirecatError(Exception):
    """Base of every error wirecat raises on purpose.

    Args:
        message: what happened, in words a user reads ("connection refused by
            127.0.0.1:9").
        hint: what to do about it, or ``""`` when there is nothing to do.
        setting: the library argument that governs what happened
            (``"timeout"``, ``"idle_timeout"``...), or ``""``. The messages
            never name a command-line flag (a library user passed none): the
            CLI adds the flag that sets it when it prints the error.
    """

    exit_code: int = 1
    default_hint: str = ""
    default_setting: str = ""
    #: The hint in command-line words (flags), where it differs from ``hint``:
    #: set with :meth:`with_cli_hint`, printed by the CLI instead of ``hint``.
    cli_hint: str = ""

    def __init__(self, message: str, hint: str | None = None, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint
        self.setting = self.default_setting if setting is None else setting

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message

    def with_cli_hint(self, hint: str) -> Self:
        """Set the hint the CLI prints (naming flags, which library hints never do); return self."""
        self.cli_hint = hint
        return self

    def caused_by(self, cause: BaseException) -> Self:
        """Set ``cause`` (the operating system's error, usually) as ``__cause__``; return self.

        For errors made now and raised later, where ``raise ... from`` cannot say it.
        """
        self.__cause__ = cause
        return self


class UsageError(WirecatError, ValueError):
    """Raised for bad input: an unknown flag, a malformed address, a port out
    of range, flags that cannot go together, or a library argument of the
    same kind. Never raised for a failure of the network.

    It is also a ``ValueError``, the standard error for a bad argument, so
    library callers may catch either."""

    exit_code = 2


class NetworkError(WirecatError):
    """Base of the errors the network (or the operating system's sockets) gave us."""


class ResolveError(NetworkError):
    """Raised when a host name does not resolve to any address of the wanted family."""

    exit_code = 3
    default_hint = "check the spelling, or give an IP address"


class ConnectError(NetworkError):
    """Raised when no address of the target accepted a connection (refused,
    host or network unreachable). Not raised for timeouts: see ConnectTimeout."""

    exit_code = 4


class BindError(NetworkError):
    """Raised when a socket cannot be bound to its local address: the address is
    in use, not on this machine, or needs privileges (ports below 1024)."""

    exit_code = 5


class Timeout(NetworkError):
    """Base of the timeouts; every one of them was asked for by a flag."""

    exit_code = 6


class ConnectTimeout(Timeout):
    """Raised when connecting took longer than its timeout (``-w``, ``--connect-timeout``)."""

    default_hint = "the host may be down or a firewall may drop packets; allow more time"
    default_setting = "timeout"


class IdleTimeout(Timeout):
    """Raised when nothing moved in either direction for the idle timeout (``-i``)."""

    default_setting = "idle_timeout"


class FrameTimeout(Timeout):
    """Raised when a frame (a line, a length-prefixed message, a PROXY header)
    began but was not complete within the frame timeout: a peer that drips
    bytes (slowloris) restarts the idle clock with each one, and only this
    bound frees its connection. Not raised between frames: that is idleness.
    """

    default_setting = "frame_timeout"


class HandshakeTimeout(Timeout):
    """Raised when a TLS handshake did not finish within its bound: a peer
    that connects and says nothing, or drips its handshake, holds no slot."""

    default_setting = "handshake_timeout"


class PeerReset(NetworkError):
    """Raised when the peer reset the connection (ECONNRESET) or stopped
    reading for good (EPIPE) while we still had data to send. Not raised for an
    orderly close: that is a normal end."""

    exit_code = 7


class Truncated(NetworkError):
    """Raised when a timer we were told to use cut a connection off before its
    natural end: ``-q`` ended the session while the peer was still sending (its
    reply may be incomplete), or a server's shutdown reached its drain timeout
    with connections still busy (they were reset). Not raised for a peer's
    reset: that is :class:`PeerReset`."""

    exit_code = 8
    default_hint = "wait for the peer's end of stream instead"
    default_setting = "quit_after_eof"


class TLSTruncated(Truncated):
    """Raised when a TLS peer's TCP stream ended without its close_notify.

    TLS says the end of its data with close_notify; a TCP end without it
    cannot be told from an attacker or a crash cutting the stream short, so
    what came may not be all that was sent. Never reported as a clean end."""

    default_hint = "the peer did not close TLS cleanly; what arrived may be incomplete"
    default_setting = ""


class ProgramError(WirecatError):
    """Raised when a local resource we were pointed at cannot be used: a file
    that cannot be opened, a socket path that is a regular file."""

    exit_code = 9


class ConnectionClosed(NetworkError):
    """Raised by ``send()`` on a connection that was already closed, by us
    (``close()``, a server shutting down, an idle timeout) or by the peer's
    end of the connection. Not raised for a reset: that is :class:`PeerReset`."""

    exit_code = 1


class FrameError(WirecatError):
    """Raised by a framer (``wirecat.framing``) when bytes break its rules.

    A framer raises only this class and its subclasses, whatever bytes it is
    fed; a server that gets one closes that connection, logs why, and goes on
    serving everyone else.

    Attributes:
        frames: the whole frames that came before the bad bytes in the same
            ``feed()``; they are good, and are delivered before the error.
    """

    exit_code = 10

    def __init__(self, message: str, hint: str | None = None, *, frames: list[bytes] | None = None) -> None:
        super().__init__(message, hint, setting="")
        self.frames: list[bytes] = frames or []


class FrameTooLarge(FrameError):
    """Raised as soon as a frame is known to be over its limit: a length
    header above ``max_size``, or a line that passed ``max_length`` without a
    newline. Raised before the bytes are buffered, never after."""


class IncompleteFrame(FrameError):
    """Raised at end of stream when part of a frame was received but not all
    of it (a length header promising more than came)."""


class ProtocolError(WirecatError):
    """Raised by a sans-IO protocol reader (``wirecat.protocol``) when a peer's
    bytes break the protocol. Like FrameError, it ends that one connection."""

    exit_code = 11


class ProxyProtocolError(ProtocolError):
    """Raised for a PROXY protocol header that is missing, malformed, too long,
    or of a version not accepted."""


class TransferProtocolError(ProtocolError):
    """Raised by the file-transfer state machines (:mod:`wirecat.protocol.transfer`)
    for bytes or a turn that break the protocol: a bad greeting or version, a
    record over its limit, a record out of order, the stream ending inside a
    record. The only error they raise, whatever bytes they are fed."""


class TransferError(WirecatError):
    """Raised when a file transfer did not deliver every file verified: the
    receiver refused some (the name exists, the file is over its size limit,
    no space), or a file failed. Not raised for a file skipped on purpose
    (``skip_existing``). The message counts the files and names the first."""


class UnsafePath(TransferError):
    """Raised (and sent to the sender as the reason of a refusal) for a name
    the receiver will not write: ``..``, an absolute path, a drive letter,
    control characters, an over-long name, a name that collides with another
    of the same transfer once Unicode-normalised, a path through a symlink,
    a symlink pointing outside the directory. A lie by the peer: exit 11."""

    exit_code = 11


class SizeMismatch(TransferError):
    """Raised when a file's bytes did not match its declared size: the file
    changed while it was being sent, or the stream ended before its end.
    The part file is kept for a resume when the stream ended, discarded
    otherwise."""

    exit_code = 11


class ChecksumMismatch(TransferError):
    """Raised when the receiver's digest of a file differs from the sender's:
    the part file is discarded and the file reported failed at both ends."""

    exit_code = 11


class TLSError(WirecatError):
    """Raised when a TLS handshake fails for a reason other than trust: no
    TLS version or cipher in common, a peer that does not speak TLS at all,
    a client certificate required or refused, a bad TLS record."""

    exit_code = 12


class CertificateError(TLSError):
    """Raised when the peer's certificate is not trusted: an unknown or
    self-signed issuer, a name it does not hold, dates it is not valid for,
    or a fingerprint other than the pinned one. The message names what the
    certificate holds and the hint how to trust it."""

    exit_code = 13
