"""The file-transfer protocol of ``wirecat send`` / ``wirecat recv``, sans-IO.

One stream connection carries files one way; the other way carries the
receiver's answers. Both directions start with the same greeting
(``WCXF``, the version, two zero bytes, then the digest's name: its length
in one byte and that many bytes of ASCII, ``blake3``); then everything is a *record*:
a type byte, a 4-byte big-endian body length, the body. Only the file data
itself is not a record: it follows its ``START`` record raw, exactly as many
bytes as the record says, so the I/O layer can move it with ``sendfile`` and
``splice`` without the bytes ever passing through this module.

::

    sender                                       receiver
    HELLO                     ─────────►
    HEADER (file a)           ─────────►          (may send several: a batch)
    HEADER (dir d)            ─────────►
                              ◄─────────          HELLO
                              ◄─────────          OFFER a: accept at offset K
                                                       (K > 0: "I hold a prefix of
                                                       K bytes, its BLAKE3 is …")
                              ◄─────────          OFFER d: done (made) / refused
    START a, offset 0 or K    ─────────►
    size - offset raw bytes   ─────────►
    DIGEST a (BLAKE3, whole)  ─────────►
                              ◄─────────          VERDICT a: ok / mismatch / failed
    END (entries sent)        ─────────►
                              ◄─────────          FINISHED (ok, failed)

Each HEADER is answered by one OFFER, in order; each accepted file by one
START, its data and one DIGEST, in the order of the offers; each DIGEST by one
VERDICT. A sender may send many HEADERs before it reads their offers (a
batch: many small files cost one round trip, not one each), and must not send
a START before it has read that file's offer: the receiver refuses a START
that comes before it made the offer. A sender that resumes at ``K`` has hashed
its own first ``K`` bytes and compared them with the receiver's digest of its
part file: where they differ it starts at 0 instead. Directories and
symbolic links have no data: their OFFER is their final answer.

The digest is named in the greeting, not implied by the version, so that a
peer that hashes another way is refused in its first bytes with a message
that says so (:data:`DIGESTS` lists the names this module accepts). This
module never hashes: the I/O layer does, with the algorithm named.

The machines: :class:`Sender` (encodes the sender's records, is fed the
receiver's) and :class:`Receiver` (the other way round). ``feed(data)``
returns the events the bytes complete (``b""`` is the end of the stream);
``encode(event)`` the bytes of one event, after checking that it is the
event's turn. The receiver's data comes out of :meth:`Receiver.feed` as
:class:`Data` events only for bytes already read with a record; the I/O layer
moves the rest itself and says how much with :meth:`Receiver.skip`. Every
length is bounded by a constructor argument, checked as soon as its bytes are
in, before anything is buffered; anything wrong raises
:class:`~wirecat.errors.TransferProtocolError` and nothing else.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import NamedTuple

from wirecat.errors import TransferProtocolError

__all__ = [
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_NAME",
    "DEFAULT_MAX_RECORD",
    "DEFAULT_MAX_SIZE",
    "DIGESTS",
    "DIGEST_NAME",
    "DIGEST_SIZE",
    "HELLO_SIZE",
    "MAGIC",
    "MAX_COMPONENT",
    "MAX_REASON",
    "VERSION",
    "Data",
    "DataStart",
    "Digest",
    "End",
    "Event",
    "FileHeader",
    "Finished",
    "Hello",
    "Kind",
    "Offer",
    "OfferAction",
    "Receiver",
    "Sender",
    "Verdict",
    "VerdictKind",
]

#: The greeting's first four bytes: a stream that is not ours (an HTTP
#: client, a stray ``nc``) is told apart in the first read.
MAGIC = b"WCXF"
#: The protocol version this module speaks. A peer of another version is
#: refused at the greeting, before any file moves.
#: 2: the greeting names the digest (version 1 was SHA-256, unnamed).
VERSION = 2
#: The greeting's fixed part: MAGIC, the version byte, two reserved zero
#: bytes, the digest name's length; the name follows.
HELLO_SIZE = 8
#: The digest of every file's data, and of a resumed file's prefix: BLAKE3
#: (32-byte output), 3-4x SHA-256's speed on one core, measured
#: (benchmarks/RESULTS.md, issue 14): the transfer's bottleneck was hashing.
DIGEST_NAME = "blake3"
#: The digest names this module accepts in a peer's greeting.
DIGESTS = frozenset({DIGEST_NAME})
#: Bytes of a digest.
DIGEST_SIZE = 32
#: Longest digest name in a greeting.
_MAX_DIGEST_NAME = 32
#: Longest relative path in bytes of UTF-8: Linux's PATH_MAX.
DEFAULT_MAX_NAME = 4096
#: Longest path component in bytes: NAME_MAX on Linux, macOS and Windows alike.
MAX_COMPONENT = 255
#: Longest reason a receiver gives for a refusal, in bytes of UTF-8.
MAX_REASON = 1024
#: Longest record body: a header with a name and a link target at their
#: limits (2 × 4096) and its fixed fields fits with room to spare.
DEFAULT_MAX_RECORD = 16 * 1024
#: Entries in one transfer: a bound on the receiver's bookkeeping (a name
#: and a few integers each) well above the trees people send (a Linux
#: kernel source tree has ~90,000 files).
DEFAULT_MAX_FILES = 1_000_000
#: Largest file size the protocol carries: 2**62 bytes (4 EiB) keeps every
#: offset and sum of sizes inside a signed 64-bit integer.
DEFAULT_MAX_SIZE = 2**62

_RECORD_HEAD = 5  # type byte + 4-byte length
_HEADER_FIXED = 1 + 4 + 8 + 8 + 2 + 2  # kind, mode, mtime_ns, size, name length, target length
_NO_DIGEST = bytes(DIGEST_SIZE)


class Kind(enum.IntEnum):
    """What an entry is."""

    #: A regular file: data follows.
    FILE = 0
    #: A directory: made (with its mode and mtime), no data.
    DIRECTORY = 1
    #: A symbolic link: made pointing at ``target``, never followed.
    SYMLINK = 2


class OfferAction(enum.IntEnum):
    """The receiver's answer to a header."""

    #: Send the data, from ``offset``.
    ACCEPT = 0
    #: Not taken; ``reason`` says why (it exists, too large, unsafe name…).
    REFUSE = 1
    #: Not taken on purpose (``--skip-existing``): not a failure.
    SKIP = 2
    #: A directory or symlink made as asked: its final answer.
    DONE = 3


class VerdictKind(enum.IntEnum):
    """The receiver's judgement of a file once its data and digest are in."""

    #: Written under its name; the digests agree.
    OK = 0
    #: The digests differ: the part file was discarded.
    MISMATCH = 1
    #: Could not be written (a disk error): ``reason`` says why.
    FAILED = 2


class Hello(NamedTuple):
    """The greeting, either way: the peer speaks ``version`` and hashes with ``digest``."""

    version: int = VERSION
    digest: str = DIGEST_NAME


class FileHeader(NamedTuple):
    """One entry the sender offers.

    Attributes:
        name: the relative path, ``/``-separated, as the sender wrote it (the
            receiver checks it: :mod:`wirecat.transfer_paths`).
        size: bytes of data (0 for a directory or symlink).
        mode: permission bits (``0o644``), without the file type.
        mtime_ns: modification time, nanoseconds since the epoch.
        kind: file, directory or symlink.
        target: a symlink's target, as stored in the link; ``""`` otherwise.
    """

    name: str
    size: int = 0
    mode: int = 0o644
    mtime_ns: int = 0
    kind: Kind = Kind.FILE
    target: str = ""


class Offer(NamedTuple):
    """The receiver's answer to the oldest unanswered header.

    Attributes:
        action: accept, refuse, skip, or done (a directory or link made).
        offset: with ACCEPT, where the sender may start: the length of the
            prefix the receiver already holds (0: from the start).
        prefix_digest: the digest (BLAKE3) of that prefix (32 zero bytes when 0).
        reason: why, for REFUSE and SKIP; ``""`` otherwise.
        header: the header answered (filled in by the machine that decodes it).
    """

    action: OfferAction
    offset: int = 0
    prefix_digest: bytes = _NO_DIGEST
    reason: str = ""
    header: FileHeader | None = None


class DataStart(NamedTuple):
    """The data of the oldest accepted file begins: ``length`` raw bytes from ``offset``.

    Sent with ``offset`` equal to the offer's or 0 (the sender's prefix
    differed); ``length`` is filled in by the machines (size - offset).
    """

    offset: int = 0
    length: int = 0
    header: FileHeader | None = None


class Data(NamedTuple):
    """Bytes of the current file that arrived with records (the slow path)."""

    data: bytes


class Digest(NamedTuple):
    """The sender's digest (BLAKE3) of the whole file (the prefix included), after its data."""

    digest: bytes
    header: FileHeader | None = None


class Verdict(NamedTuple):
    """The receiver's judgement of the oldest file whose digest it has."""

    kind: VerdictKind
    digest: bytes = _NO_DIGEST
    reason: str = ""
    header: FileHeader | None = None


class End(NamedTuple):
    """The sender has no more entries; ``entries`` headers were sent."""

    entries: int


class Finished(NamedTuple):
    """The receiver's last word: ``ok`` files verified (or made), ``failed`` not."""

    ok: int
    failed: int


Event = Hello | FileHeader | Offer | DataStart | Data | Digest | Verdict | End | Finished


# Record types: one byte each (plain constants: enum lookups cost on the per-file path).
_HEADER, _START, _DIGEST, _END = b"H", b"S", b"D", b"E"
_OFFER, _VERDICT, _FINISHED = b"O", b"V", b"F"


def encode_hello(version: int = VERSION, digest: str = DIGEST_NAME) -> bytes:
    """The greeting: the fixed 8 bytes, then the digest's name."""
    if not 0 <= version <= 255:
        raise TransferProtocolError(f"version {version} does not fit in a byte")
    name = digest.encode("ascii", "replace")
    if not 0 < len(name) <= _MAX_DIGEST_NAME:
        raise TransferProtocolError(f"a digest name of {len(name)} bytes (from 1 to {_MAX_DIGEST_NAME})")
    return MAGIC + bytes([version]) + b"\0\0" + bytes([len(name)]) + name


def _record(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "big") + body


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TransferProtocolError(f"{what} is not UTF-8: {raw[:40]!r}") from None


class _Reader:
    """The shared parser of both machines: a greeting, then records.

    Two phases, as wsproto's buffer: a record is consumed only once all of it
    is in, so a byte at a time and one chunk give the same events.
    """

    def __init__(self, max_record: int, side: str) -> None:
        if not isinstance(max_record, int) or isinstance(max_record, bool) or max_record < 64:
            raise ValueError(f"max_record must be a whole number ≥ 64, not {max_record!r}")
        self._buffer = bytearray()
        self._max_record = max_record
        self._greeted = False
        self._ended = False
        self._side = side  # who sends what we read, for messages

    def _hello(self) -> Hello | None:
        buffer = self._buffer
        known = min(len(buffer), 4)
        if buffer[:known] != MAGIC[:known]:
            raise TransferProtocolError(
                f"the {self._side} does not speak wirecat's transfer protocol"
                f" (it began {bytes(buffer[:8])!r})"
            )
        if len(buffer) < 5:
            return None
        version = buffer[4]
        if version != VERSION:
            # Before the rest: a version-1 peer's greeting has no name to wait for.
            raise TransferProtocolError(
                f"the {self._side} speaks transfer protocol version {version}, this wirecat {VERSION}:"
                " use the same wirecat release on both sides"
            )
        if len(buffer) < HELLO_SIZE:
            return None
        size = buffer[7]
        if not 0 < size <= _MAX_DIGEST_NAME:
            raise TransferProtocolError(f"the {self._side}'s greeting names a digest of {size} bytes")
        if len(buffer) < HELLO_SIZE + size:
            return None
        raw = bytes(buffer[HELLO_SIZE : HELLO_SIZE + size])
        del buffer[: HELLO_SIZE + size]
        self._greeted = True
        digest = raw.decode("ascii", "replace")
        if digest not in DIGESTS:
            raise TransferProtocolError(
                f"the {self._side} hashes with {digest!r}, this wirecat with {DIGEST_NAME}:"
                " use the same wirecat release on both sides"
            )
        return Hello(version, digest)

    def _next_record(self) -> tuple[int, bytes] | None:
        """(type byte, body) of the next whole record, consumed; None if not all in."""
        buffer = self._buffer
        if len(buffer) < _RECORD_HEAD:
            return None
        length = int.from_bytes(buffer[1:5], "big")
        if length > self._max_record:
            raise TransferProtocolError(
                f"a record of {length} bytes from the {self._side} is over the limit of {self._max_record}"
            )
        if len(buffer) < _RECORD_HEAD + length:
            return None
        kind = buffer[0]
        body = bytes(buffer[_RECORD_HEAD : _RECORD_HEAD + length])
        del buffer[: _RECORD_HEAD + length]
        return kind, body

    def _eof(self, inside_data: int) -> None:
        if inside_data:
            raise TransferProtocolError(
                f"the {self._side}'s stream ended {inside_data} bytes before the end of a file's data"
            )
        if self._buffer:
            raise TransferProtocolError(f"the {self._side}'s stream ended inside a record")
        if not self._ended:
            raise TransferProtocolError(
                f"the {self._side} closed the connection before the end of the transfer"
            )

    def _after_end(self) -> None:
        if self._buffer:
            raise TransferProtocolError(f"the {self._side} sent bytes after the end of the transfer")


def _check_body(body: bytes, size: int, what: str) -> None:
    if len(body) != size:
        raise TransferProtocolError(f"a {what} record of {len(body)} bytes (it has {size})")


def _encode_header(header: FileHeader, max_name: int, max_size: int) -> bytes:
    name = header.name.encode("utf-8")
    target = header.target.encode("utf-8")
    _check_header_fields(len(name), len(target), header.size, header.mode, header.kind, max_name, max_size)
    if not -(2**63) <= header.mtime_ns < 2**63:
        raise TransferProtocolError(f"mtime {header.mtime_ns} out of range")
    body = (
        bytes([int(header.kind)])
        + header.mode.to_bytes(4, "big")
        + header.mtime_ns.to_bytes(8, "big", signed=True)
        + header.size.to_bytes(8, "big")
        + len(name).to_bytes(2, "big")
        + name
        + len(target).to_bytes(2, "big")
        + target
    )
    return _record(_HEADER, body)


def _check_header_fields(
    name_len: int, target_len: int, size: int, mode: int, kind: int, max_name: int, max_size: int
) -> None:
    if kind not in (0, 1, 2):
        raise TransferProtocolError(f"unknown entry kind {kind}")
    if not 0 < name_len <= max_name:
        raise TransferProtocolError(f"a name of {name_len} bytes (from 1 to {max_name})")
    if target_len > max_name:
        raise TransferProtocolError(f"a link target of {target_len} bytes is over the limit of {max_name}")
    if (kind == Kind.SYMLINK) != (target_len > 0):
        raise TransferProtocolError("a link target comes with a symlink, and only with one")
    if not 0 <= size <= max_size:
        raise TransferProtocolError(f"a size of {size} bytes is over the limit of {max_size}")
    if kind != Kind.FILE and size:
        raise TransferProtocolError("a directory or symlink has no data")
    if not 0 <= mode <= 0o7777:
        raise TransferProtocolError(f"mode {mode:o} has bits other than permissions")


def _decode_header(body: bytes, max_name: int, max_size: int) -> FileHeader:
    if len(body) < _HEADER_FIXED:
        raise TransferProtocolError(f"a header record of {len(body)} bytes is too short")
    kind = body[0]
    mode = int.from_bytes(body[1:5], "big")
    mtime_ns = int.from_bytes(body[5:13], "big", signed=True)
    size = int.from_bytes(body[13:21], "big")
    name_len = int.from_bytes(body[21:23], "big")
    name_end = 23 + name_len
    if len(body) < name_end + 2:
        raise TransferProtocolError("a header record shorter than its name")
    target_len = int.from_bytes(body[name_end : name_end + 2], "big")
    if len(body) != name_end + 2 + target_len:
        raise TransferProtocolError("a header record whose lengths do not add up")
    _check_header_fields(name_len, target_len, size, mode, kind, max_name, max_size)
    name = _text(body[23:name_end], "a name")
    target = _text(body[name_end + 2 :], "a link target")
    return FileHeader(name, size, mode, mtime_ns, Kind(kind), target)


def _encode_reason(reason: str) -> bytes:
    raw = reason.encode("utf-8")[:MAX_REASON].decode("utf-8", "ignore").encode("utf-8")
    return len(raw).to_bytes(2, "big") + raw


def _decode_reason(raw: bytes) -> str:
    if len(raw) < 2 or len(raw) != 2 + int.from_bytes(raw[:2], "big"):
        raise TransferProtocolError("a reason whose length does not add up")
    if len(raw) - 2 > MAX_REASON:
        raise TransferProtocolError(f"a reason over {MAX_REASON} bytes")
    return _text(raw[2:], "a reason")


def _check_digest(digest: bytes) -> bytes:
    if not isinstance(digest, bytes | bytearray) or len(digest) != DIGEST_SIZE:
        raise TransferProtocolError(f"a digest is {DIGEST_SIZE} bytes")
    return bytes(digest)


class _Sent(NamedTuple):
    header: FileHeader
    offset: int  # the offer's


class Sender:
    """The sending end: encodes hello, headers, data starts, digests, the end;
    is fed the receiver's hello, offers, verdicts and its last word.

    Args:
        max_name: longest name (and link target) in bytes.
        max_size: largest file.
        max_files: most entries in one transfer.
        max_record: longest record accepted from the receiver.

    The I/O layer sends the data itself between :class:`DataStart` and
    :class:`Digest`, and says how much with :meth:`sent`.
    """

    def __init__(
        self,
        *,
        max_name: int = DEFAULT_MAX_NAME,
        max_size: int = DEFAULT_MAX_SIZE,
        max_files: int = DEFAULT_MAX_FILES,
        max_record: int = DEFAULT_MAX_RECORD,
    ) -> None:
        self._reader = _Reader(max_record, "receiver")
        self._max_name, self._max_size, self._max_files = max_name, max_size, max_files
        self._said_hello = False
        self._count = 0
        self._unanswered: deque[FileHeader] = deque()
        self._accepted: deque[_Sent] = deque()
        self._sending: FileHeader | None = None
        self._remaining = 0
        self._awaiting_verdict: deque[FileHeader] = deque()
        self._ended = False
        self.finished: Finished | None = None

    # -- what we send ------------------------------------------------------
    @property
    def unanswered(self) -> int:
        """Headers sent whose offers have not come yet."""
        return len(self._unanswered)

    @property
    def accepted(self) -> int:
        """Files accepted whose data has not started yet."""
        return len(self._accepted)

    @property
    def awaiting_verdicts(self) -> int:
        """Files whose digest is sent and whose verdict has not come."""
        return len(self._awaiting_verdict)

    @property
    def remaining(self) -> int:
        """Bytes of the current file's data still to send (0 between files)."""
        return self._remaining

    def encode(self, event: Hello | FileHeader | DataStart | Digest | End) -> bytes:
        """The bytes of one of the sender's events, in its turn.

        Raises:
            TransferProtocolError: out of turn (a START with no accepted file,
                a DIGEST before all the data, a header after END), or a field
                over its limit.
        """
        if self._ended:
            raise TransferProtocolError("nothing may be sent after the end")
        if isinstance(event, Hello):
            if self._said_hello:
                raise TransferProtocolError("the greeting is sent once")
            self._said_hello = True
            return encode_hello(event.version, event.digest)
        if not self._said_hello:
            raise TransferProtocolError("the greeting comes first")
        if self._sending is not None and (self._remaining or not isinstance(event, Digest)):
            raise TransferProtocolError(
                f"{self._remaining} bytes of {self._sending.name!r} are still to be sent, then its digest"
            )
        if isinstance(event, FileHeader):
            if self._count >= self._max_files:
                raise TransferProtocolError(f"more than {self._max_files} entries in one transfer")
            data = _encode_header(event, self._max_name, self._max_size)
            self._count += 1
            self._unanswered.append(event)
            return data
        if isinstance(event, DataStart):
            if not self._accepted:
                raise TransferProtocolError("no file was accepted whose data could start")
            sent = self._accepted[0]
            if event.offset not in (0, sent.offset):
                raise TransferProtocolError(f"a start at {event.offset}: the offer was {sent.offset} (or 0)")
            self._accepted.popleft()
            self._sending = sent.header
            self._remaining = sent.header.size - event.offset
            return _record(_START, event.offset.to_bytes(8, "big"))
        if isinstance(event, Digest):
            if self._sending is None:
                raise TransferProtocolError("a digest with no file sent")
            digest = _check_digest(event.digest)
            self._awaiting_verdict.append(self._sending)
            self._sending = None
            return _record(_DIGEST, digest)
        if isinstance(event, End):
            if self._unanswered or self._accepted:
                raise TransferProtocolError("the end, with headers unanswered or accepted files unsent")
            if event.entries != self._count:
                raise TransferProtocolError(f"the end says {event.entries} entries; {self._count} were sent")
            self._ended = True
            return _record(_END, event.entries.to_bytes(8, "big"))
        raise TypeError(f"a sender does not encode {type(event).__name__}")

    def sent(self, count: int) -> None:
        """``count`` bytes of the current file's data went out (sendfile, or a copy).

        Raises:
            TransferProtocolError: more than the data still to send.
        """
        if count < 0 or count > self._remaining:
            raise TransferProtocolError(f"{count} bytes sent, {self._remaining} were left of the file")
        self._remaining -= count

    # -- what we read ------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """The receiver's events the bytes complete; ``b""`` = its end of stream.

        Raises:
            TransferProtocolError: bytes that break the protocol, an answer
                with no question, the stream ending before the last word.
        """
        reader = self._reader
        if not data:
            if self.finished is None:
                reader._eof(0)
            return []
        if self.finished is not None:
            raise TransferProtocolError("the receiver sent bytes after its last word")
        reader._buffer += data
        events: list[Event] = []
        if not reader._greeted:
            hello = reader._hello()
            if hello is None:
                return events
            events.append(hello)
        while (record := reader._next_record()) is not None:
            events.append(self._on_record(*record))
            if self.finished is not None:
                reader._ended = True
                reader._after_end()
        return events

    def _on_record(self, kind: int, body: bytes) -> Event:
        if kind == _OFFER[0]:
            if len(body) < 1 + 8 + DIGEST_SIZE + 2:
                raise TransferProtocolError("an offer record too short")
            if not self._unanswered:
                raise TransferProtocolError("an offer for no header")
            action_byte = body[0]
            if action_byte > 3:
                raise TransferProtocolError(f"unknown offer action {action_byte}")
            action = OfferAction(action_byte)
            offset = int.from_bytes(body[1:9], "big")
            prefix = body[9 : 9 + DIGEST_SIZE]
            reason = _decode_reason(body[9 + DIGEST_SIZE :])
            header = self._unanswered[0]
            if action is OfferAction.ACCEPT:
                if header.kind != Kind.FILE:
                    raise TransferProtocolError(f"data offered for {header.name!r}, which has none")
                if offset > header.size:
                    raise TransferProtocolError(f"an offer at {offset} of a file of {header.size} bytes")
                self._accepted.append(_Sent(header, offset))
            elif action is OfferAction.DONE and header.kind == Kind.FILE:
                raise TransferProtocolError(f"{header.name!r} said done before its data came")
            elif offset:
                raise TransferProtocolError("an offset with an offer that is not an acceptance")
            self._unanswered.popleft()
            return Offer(action, offset, prefix, reason, header)
        if kind == _VERDICT[0]:
            if len(body) < 1 + DIGEST_SIZE + 2:
                raise TransferProtocolError("a verdict record too short")
            if not self._awaiting_verdict:
                raise TransferProtocolError("a verdict for no file")
            verdict_byte = body[0]
            if verdict_byte > 2:
                raise TransferProtocolError(f"unknown verdict {verdict_byte}")
            reason = _decode_reason(body[1 + DIGEST_SIZE :])
            header = self._awaiting_verdict.popleft()
            return Verdict(VerdictKind(verdict_byte), body[1 : 1 + DIGEST_SIZE], reason, header)
        if kind == _FINISHED[0]:
            _check_body(body, 16, "finished")
            if not self._ended or self._unanswered or self._accepted or self._awaiting_verdict:
                raise TransferProtocolError("the receiver finished before the transfer's end")
            self.finished = Finished(int.from_bytes(body[:8], "big"), int.from_bytes(body[8:], "big"))
            return self.finished
        raise TransferProtocolError(f"unknown record type {bytes([kind])!r} from the receiver")


class Receiver:
    """The receiving end: is fed the sender's stream; encodes hello, offers,
    verdicts and the last word.

    Args:
        max_name: longest name (and link target) in bytes.
        max_size: largest file (a header over it is a protocol error; a
            smaller policy limit is the application's to refuse politely).
        max_files: most entries in one transfer.
        max_record: longest record accepted from the sender.

    Data comes out as :class:`DataStart`, then :class:`Data` events for the
    bytes fed; the I/O layer may instead move :attr:`remaining` bytes itself
    and call :meth:`skip`.
    """

    def __init__(
        self,
        *,
        max_name: int = DEFAULT_MAX_NAME,
        max_size: int = DEFAULT_MAX_SIZE,
        max_files: int = DEFAULT_MAX_FILES,
        max_record: int = DEFAULT_MAX_RECORD,
    ) -> None:
        self._reader = _Reader(max_record, "sender")
        self._max_name, self._max_size, self._max_files = max_name, max_size, max_files
        self._said_hello = False
        self._count = 0
        self._unanswered: deque[FileHeader] = deque()
        self._accepted: deque[_Sent] = deque()
        self._receiving: FileHeader | None = None
        self._remaining = 0
        self._awaiting_verdict: deque[FileHeader] = deque()
        self._end: End | None = None
        self._finished = False
        self._ok = 0
        self._failed = 0

    @property
    def remaining(self) -> int:
        """Bytes of the current file's data still to come (0 between files)."""
        return self._remaining

    @property
    def unanswered(self) -> int:
        """Headers received that the I/O layer has not answered yet."""
        return len(self._unanswered)

    @property
    def ended(self) -> bool:
        """The sender said END."""
        return self._end is not None

    def skip(self, count: int) -> None:
        """``count`` bytes of the current file were read by the I/O layer itself (splice).

        Raises:
            TransferProtocolError: more than the data still to come.
        """
        if count < 0 or count > self._remaining:
            raise TransferProtocolError(f"{count} bytes taken, {self._remaining} were left of the file")
        self._remaining -= count

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """The sender's events the bytes complete; ``b""`` = its end of stream.

        Parsing stops before a START whose offer the I/O layer has not made:
        those bytes wait (within ``max_record``) until :meth:`encode` sends
        the offer and the next ``feed`` (``feed(b"")`` is EOF: feed more, or
        call :meth:`pending`).

        Raises:
            TransferProtocolError: bytes that break the protocol.
        """
        reader = self._reader
        if not data:
            if not self._finished_reading():
                reader._eof(self._remaining)
            return []
        if self._end is not None and not self._remaining:
            raise TransferProtocolError("the sender sent bytes after its end")
        reader._buffer += data
        return self.pending()

    def _finished_reading(self) -> bool:
        return self._end is not None and not self._reader._buffer

    def pending(self) -> list[Event]:
        """Events from bytes already fed that waited for an offer."""
        reader = self._reader
        buffer = reader._buffer
        events: list[Event] = []
        if not reader._greeted:
            hello = reader._hello()
            if hello is None:
                return events
            events.append(hello)
        while buffer:
            if self._remaining:
                take = min(self._remaining, len(buffer))
                events.append(Data(bytes(buffer[:take])))
                del buffer[:take]
                self._remaining -= take
                continue
            if self._end is not None:
                raise TransferProtocolError("the sender sent bytes after its end")
            if self._receiving is not None and buffer[0] != _DIGEST[0]:
                raise TransferProtocolError(
                    f"more bytes of {self._receiving.name!r} than its declared {self._receiving.size}:"
                    " a file's data must be followed by its digest"
                )
            if self._receiving is None and buffer[0] == _START[0] and not self._accepted:
                if self._unanswered:
                    # Wait for the offer (the I/O layer is making it), within a limit.
                    if len(buffer) > reader._max_record + _RECORD_HEAD:
                        raise TransferProtocolError("the sender sent data before its offer")
                    break
                raise TransferProtocolError("the sender sent data no offer accepted")
            record = reader._next_record()
            if record is None:
                break
            events.append(self._on_record(*record))
        return events

    def _on_record(self, kind: int, body: bytes) -> Event:
        if self._receiving is not None:
            if kind != _DIGEST[0]:
                raise TransferProtocolError(
                    f"a file's data must be followed by its digest, not {bytes([kind])!r}"
                )
            _check_body(body, DIGEST_SIZE, "digest")
            header = self._receiving
            self._receiving = None
            self._awaiting_verdict.append(header)
            return Digest(body, header)
        if kind == _HEADER[0]:
            if self._count >= self._max_files:
                raise TransferProtocolError(f"more than {self._max_files} entries in one transfer")
            header = _decode_header(body, self._max_name, self._max_size)
            self._count += 1
            self._unanswered.append(header)
            return header
        if kind == _START[0]:
            _check_body(body, 8, "start")
            sent = self._accepted.popleft()  # (pending() checked there is one)
            offset = int.from_bytes(body, "big")
            if offset not in (0, sent.offset):
                raise TransferProtocolError(f"data from {offset}: the offer was {sent.offset} (or 0)")
            self._receiving = sent.header
            self._remaining = sent.header.size - offset
            return DataStart(offset, self._remaining, sent.header)
        if kind == _END[0]:
            _check_body(body, 8, "end")
            count = int.from_bytes(body, "big")
            if count != self._count:
                raise TransferProtocolError(f"the sender's end says {count} entries; {self._count} came")
            if self._unanswered or self._accepted:
                raise TransferProtocolError("the sender ended with accepted files unsent")
            self._end = End(count)
            return self._end
        if kind == _DIGEST[0]:
            raise TransferProtocolError("a digest with no file")
        raise TransferProtocolError(f"unknown record type {bytes([kind])!r} from the sender")

    def encode(self, event: Hello | Offer | Verdict | Finished) -> bytes:
        """The bytes of one of the receiver's events, in its turn.

        Raises:
            TransferProtocolError: out of turn (an offer with no header, a
                verdict with no digest, the last word before the end), or an
                offer at an offset past the file's size.
        """
        if self._finished:
            raise TransferProtocolError("nothing may be sent after the last word")
        if isinstance(event, Hello):
            if self._said_hello:
                raise TransferProtocolError("the greeting is sent once")
            self._said_hello = True
            return encode_hello(event.version, event.digest)
        if not self._said_hello:
            raise TransferProtocolError("the greeting comes first")
        if isinstance(event, Offer):
            if not self._unanswered:
                raise TransferProtocolError("an offer for no header")
            header = self._unanswered[0]
            action = OfferAction(event.action)
            if action is OfferAction.ACCEPT:
                if header.kind != Kind.FILE or not 0 <= event.offset <= header.size:
                    raise TransferProtocolError(f"cannot accept {header.name!r} at {event.offset}")
            elif action is OfferAction.DONE and header.kind == Kind.FILE:
                raise TransferProtocolError("a file is done only after its data")
            elif event.offset:
                raise TransferProtocolError("an offset with an offer that is not an acceptance")
            body = (
                bytes([action])
                + event.offset.to_bytes(8, "big")
                + _check_digest(event.prefix_digest)
                + _encode_reason(event.reason)
            )
            self._unanswered.popleft()
            if action is OfferAction.ACCEPT:
                self._accepted.append(_Sent(header, event.offset))
            elif action is OfferAction.DONE:
                self._ok += 1
            elif action is OfferAction.REFUSE:
                self._failed += 1
            return _record(_OFFER, body)
        if isinstance(event, Verdict):
            if not self._awaiting_verdict:
                raise TransferProtocolError("a verdict for no file")
            self._awaiting_verdict.popleft()
            kind = VerdictKind(event.kind)
            if kind is VerdictKind.OK:
                self._ok += 1
            else:
                self._failed += 1
            body = bytes([kind]) + _check_digest(event.digest) + _encode_reason(event.reason)
            return _record(_VERDICT, body)
        if isinstance(event, Finished):
            if self._end is None or self._awaiting_verdict or self._receiving is not None:
                raise TransferProtocolError("the last word comes after the sender's end and every verdict")
            self._finished = True
            return _record(_FINISHED, event.ok.to_bytes(8, "big") + event.failed.to_bytes(8, "big"))
        raise TypeError(f"a receiver does not encode {type(event).__name__}")

    def finished(self) -> Finished:
        """The last word as the machine counted it: files ok (or made), files failed or refused."""
        return Finished(self._ok, self._failed)
