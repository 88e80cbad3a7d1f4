"""What every framer is: the :class:`Framer` protocol."""

from __future__ import annotations

from typing import Protocol

__all__ = ["BytesLike", "Framer", "check_data", "check_size"]

#: What a framer accepts: bytes, or a view of a receive buffer (no copy needed).
BytesLike = bytes | bytearray | memoryview
_BYTES_TYPES = (bytes, bytearray, memoryview)


def check_size(value: object, what: str, low: int, high: int) -> int:
    """A framer's size limit, checked: a whole number (not a bool, not a float) in [low, high].

    Raises:
        ValueError: anything else (a limit of NaN or 1.5 would be no limit at all).
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be a whole number from {low} to {high}, not {value!r}")
    return value


def check_data(data: object) -> None:
    """Refuse what is not bytes-like before it is mistaken for bytes (``bytes(5)`` is 5 NULs)."""
    if not isinstance(data, _BYTES_TYPES):
        raise TypeError(f"a framer is fed bytes, bytearray or memoryview, not {type(data).__name__}")


class Framer(Protocol):
    """A sans-IO message framer (see :mod:`wirecat.framing`)."""

    @property
    def buffered(self) -> int:
        """Bytes held of a frame that is not complete yet (0 between frames)."""
        ...

    def feed(self, data: BytesLike) -> list[bytes]:
        """Take received bytes; return the frames they complete, in order.

        ``b""`` means end of stream. Raises FrameError on bad input.
        """
        ...

    def encode(self, frame: BytesLike) -> bytes:
        """The bytes that carry ``frame`` on the wire. Raises FrameError."""
        ...

    def clone(self) -> Framer:
        """A new framer with the same settings and nothing buffered."""
        ...
