"""The line framer: frames end with a newline (LF, or CRLF)."""

from __future__ import annotations

from typing import final

from wirecat.errors import FrameError, FrameTooLarge
from wirecat.framing._base import _BYTES_TYPES, BytesLike, check_data, check_size
from wirecat.limits import DEFAULT_MAX_LINE

__all__ = ["Lines"]


@final
class Lines:
    """Lines: each frame is the bytes before a newline, without it.

    With the default ``newline=b"\\n"``, a ``\\r`` just before it is dropped
    too, so CRLF clients (telnet, ``nc -C``, HTTP-style protocols) work
    unchanged; ``encode()`` writes plain ``\\n``. Give ``newline=b"\\r\\n"``
    to send CRLF and to keep a lone ``\\n`` inside a frame.

    At end of stream, a last line without its newline is still returned as a
    frame (``printf 'abc' | nc`` sends one line).

    Args:
        max_length: longest line accepted, newline not counted. A longer one
            raises :class:`~wirecat.errors.FrameTooLarge` as soon as that many
            bytes have come without a newline: the buffer never grows past it.
        newline: the separator, ``b"\\n"`` or any other non-empty bytes.
    """

    __slots__ = ("_max_length", "_newline", "_partial", "_strip_cr")

    def __init__(self, max_length: int = DEFAULT_MAX_LINE, newline: bytes = b"\n") -> None:
        if not isinstance(newline, bytes | bytearray) or not newline:
            raise ValueError(f"newline must be non-empty bytes, not {newline!r}")
        self._max_length = check_size(max_length, "max_length", 1, 2**62)
        self._newline = bytes(newline)
        self._strip_cr = self._newline == b"\n"
        self._partial = bytearray()  # a line whose newline has not come yet

    @property
    def max_length(self) -> int:
        """Longest line accepted, newline not counted."""
        return self._max_length

    @property
    def newline(self) -> bytes:
        """The line separator."""
        return self._newline

    @property
    def buffered(self) -> int:
        """Bytes of a line whose newline has not come yet."""
        return len(self._partial)

    def feed(self, data: BytesLike) -> list[bytes]:
        """The complete lines, without their newlines; ``b""`` = end of stream.

        Raises:
            FrameTooLarge: a line is longer than ``max_length``.
        """
        if data.__class__ not in _BYTES_TYPES:
            check_data(data)
        waiting = self._partial
        limit = self._max_length
        if not data:
            last = bytes(waiting)
            waiting.clear()
            if self._strip_cr and last.endswith(b"\r"):
                last = last[:-1]
            if len(last) > limit:  # kept past the limit only for a newline that never came
                raise FrameTooLarge(f"line longer than {limit} bytes", "raise the line length limit")
            return [last] if last else []
        if waiting:
            # Only the new bytes, and the old ones a newline may have begun
            # in, can complete the waiting line. Looking there alone, and
            # growing the waiting bytes in place, keeps a long line that
            # arrives in small reads linear in time instead of quadratic (a
            # slow client must not cost a CPU for every byte it trickles).
            start = max(0, len(waiting) - len(self._newline) + 1)
            waiting += data
            if waiting.find(self._newline, start) < 0:
                if len(waiting) > limit and not self._may_end_in_newline(waiting):
                    waiting.clear()
                    raise FrameTooLarge(f"line longer than {limit} bytes", "raise the line length limit")
                return []
            buffer = bytes(waiting)
            waiting.clear()
        else:
            buffer = bytes(data)
        lines = buffer.split(self._newline)
        partial = lines.pop()
        if self._strip_cr:
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        # No complete line can be too long if all of them together are not.
        if len(buffer) - len(partial) > limit:
            for index, line in enumerate(lines):
                if len(line) > limit:
                    raise FrameTooLarge(
                        f"line of {len(line)} bytes is over the limit of {limit}", frames=lines[:index]
                    )
        if len(partial) > limit and not self._may_end_in_newline(partial):
            raise FrameTooLarge(
                f"line longer than {limit} bytes", "raise the line length limit", frames=lines
            )
        waiting += partial
        return lines

    def _may_end_in_newline(self, partial: bytes | bytearray) -> bool:
        """Whether ``partial``'s bytes past the limit may belong to the newline
        still to come (a read can end inside it), or be the ``\\r`` of a CRLF."""
        extra = len(partial) - self._max_length
        if self._strip_cr:
            return extra == 1 and partial.endswith(b"\r")
        newline = self._newline
        return any(partial.endswith(newline[:size]) for size in range(extra, len(newline)))

    def encode(self, frame: BytesLike) -> bytes:
        """``frame`` followed by the newline.

        Raises:
            FrameError: the frame holds the newline itself, so it would
                arrive as two lines.
        """
        frame = bytes(frame)
        if self._newline in frame:
            raise FrameError(f"a line frame cannot contain the separator {self._newline!r}")
        return frame + self._newline

    def clone(self) -> Lines:
        """A new Lines framer with the same settings and nothing buffered."""
        return Lines(self._max_length, self._newline)

    def __repr__(self) -> str:
        return f"Lines(max_length={self._max_length}, newline={self._newline!r})"
