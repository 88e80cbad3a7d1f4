"""The length-prefixed framer: a 4-byte big-endian length, then the frame."""

from __future__ import annotations

from typing import final

from wirecat.errors import FrameTooLarge, IncompleteFrame
from wirecat.framing._base import _BYTES_TYPES, BytesLike, check_data, check_size
from wirecat.limits import DEFAULT_MAX_FRAME

__all__ = ["LengthPrefixed"]

_HEADER = 4
_MAX_ENCODABLE = 2**32 - 1


@final
class LengthPrefixed:
    """Frames sent as ``length (4 bytes, big-endian, unsigned)`` + ``frame``.

    The most common binary framing (as in many RPC and message protocols);
    frames may hold any bytes, including none.

    Args:
        max_size: largest frame accepted. A header announcing more raises
            :class:`~wirecat.errors.FrameTooLarge` as soon as the 4 header
            bytes are in, before any of the frame is buffered.
    """

    __slots__ = ("_buffer", "_max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME) -> None:
        self._max_size = check_size(max_size, "max_size", 0, _MAX_ENCODABLE)
        self._buffer = bytearray()

    @property
    def max_size(self) -> int:
        """Largest frame accepted, in bytes."""
        return self._max_size

    @property
    def buffered(self) -> int:
        """Bytes received of a header or frame that is not complete."""
        return len(self._buffer)

    def feed(self, data: BytesLike) -> list[bytes]:
        """The complete frames; ``b""`` = end of stream.

        Raises:
            FrameTooLarge: a header announces more than ``max_size``.
            IncompleteFrame: the stream ended inside a header or a frame.
        """
        if data.__class__ not in _BYTES_TYPES:
            check_data(data)
        buffer = self._buffer
        if not data:
            if buffer:
                held = len(buffer)
                buffer.clear()
                raise IncompleteFrame(f"the stream ended inside a frame ({held} bytes of it received)")
            return []
        buffer += data
        frames: list[bytes] = []
        end_of_data = len(buffer)
        position = 0
        while end_of_data - position >= _HEADER:
            size = int.from_bytes(buffer[position : position + _HEADER], "big")
            if size > self._max_size:
                buffer.clear()
                raise FrameTooLarge(
                    f"frame of {size} bytes announced, over the limit of {self._max_size}", frames=frames
                )
            end = position + _HEADER + size
            if end > end_of_data:
                break
            frames.append(bytes(buffer[position + _HEADER : end]))
            position = end
        if position:
            del buffer[:position]  # O(1) from the front of a bytearray
        return frames

    def encode(self, frame: BytesLike) -> bytes:
        """The 4-byte length followed by ``frame``.

        Raises:
            FrameTooLarge: the frame is over ``max_size`` (the peer would refuse it).
        """
        size = len(frame)
        if size > self._max_size:
            raise FrameTooLarge(f"frame of {size} bytes is over the limit of {self._max_size}")
        return size.to_bytes(_HEADER, "big") + bytes(frame)

    def clone(self) -> LengthPrefixed:
        """A new framer with the same limit and nothing buffered."""
        return LengthPrefixed(self._max_size)

    def __repr__(self) -> str:
        return f"LengthPrefixed(max_size={self._max_size})"
