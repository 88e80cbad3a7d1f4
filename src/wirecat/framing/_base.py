"""What every framer is: the :class:`Framer` protocol."""

from __future__ import annotations

from typing import Protocol

__all__ = ["BytesLike", "Framer"]

#: What a framer accepts: bytes, or a view of a receive buffer (no copy needed).
BytesLike = bytes | bytearray | memoryview


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
