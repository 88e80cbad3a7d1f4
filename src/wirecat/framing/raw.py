"""The raw framer: no framing at all, bytes as they come."""

from __future__ import annotations

from typing import final

from wirecat.framing._base import _BYTES_TYPES, BytesLike, check_data

__all__ = ["Raw"]


@final
class Raw:
    """Bytes as they came: each ``feed()`` is one "frame".

    There are no message boundaries in a TCP stream, and this framer does not
    invent any: a chunk is whatever one ``recv()`` returned, which may be part
    of what the peer sent in one ``send()``, or several sends joined. Use
    :class:`~wirecat.framing.Lines` or
    :class:`~wirecat.framing.LengthPrefixed` when messages matter.
    """

    __slots__ = ()

    @property
    def buffered(self) -> int:
        """Always 0: nothing is ever held back."""
        return 0

    def feed(self, data: BytesLike) -> list[bytes]:
        """``[bytes(data)]``, or ``[]`` for end of stream (``b""``)."""
        if data.__class__ not in _BYTES_TYPES:
            check_data(data)
        return [bytes(data)] if data else []

    def encode(self, frame: BytesLike) -> bytes:
        """The frame itself."""
        return bytes(frame)

    def clone(self) -> Raw:
        """Raw keeps no state, so any instance will do."""
        return self

    def __repr__(self) -> str:
        return "Raw()"
