"""Message framing over a byte stream, sans-IO.

TCP delivers a stream of bytes, not messages: two ``send()`` calls may arrive
as one ``recv()``, and one ``send()`` as several. A framer turns the stream
back into messages ("frames") and messages into bytes. Each is a pure object
with no I/O, the same vocabulary everywhere (as in h11):

* ``feed(data) -> list[bytes]``: the complete frames in ``data`` and what came
  before it; ``feed(b"")`` means end of stream.
* ``encode(frame) -> bytes``: the bytes to send for one frame.
* ``buffered``: bytes held of a frame not yet complete.
* ``clone()``: a new framer with the same settings and an empty buffer (a
  server clones the one it was given for each connection).

Bad input raises :class:`~wirecat.errors.FrameError` (and only that), as early
as it can be known. Feeding the same bytes in one chunk or split anyhow gives
the same frames.

=====================  ==========================================  ==========
framer                 on the wire                                 limit
=====================  ==========================================  ==========
:class:`Raw`           the bytes as they came; no boundaries       none
:class:`Lines`         ``frame\\n`` (``frame\\r\\n`` accepted)     max_length
:class:`LengthPrefixed`  4-byte big-endian length, then the frame   max_size
=====================  ==========================================  ==========
"""

from __future__ import annotations

from wirecat.errors import FrameError, FrameTooLarge, IncompleteFrame, UsageError
from wirecat.framing._base import BytesLike, Framer
from wirecat.framing.length_prefix import LengthPrefixed
from wirecat.framing.lines import Lines
from wirecat.framing.raw import Raw

__all__ = [
    "BytesLike",
    "FrameError",
    "FrameTooLarge",
    "Framer",
    "IncompleteFrame",
    "LengthPrefixed",
    "Lines",
    "Raw",
    "check_framer",
]


def check_framer(value: object) -> Framer:
    """A framer argument checked: None (Raw) or an object that frames (an instance, not a class).

    Raises:
        UsageError: anything else, such as ``"lines"`` or the class ``Lines`` itself.
    """
    if value is None:
        return Raw()
    if isinstance(value, type) or not all(
        callable(getattr(value, name, None)) for name in ("feed", "encode", "clone")
    ):
        raise UsageError(
            f"bad framing {value!r}", "give a framer instance: Raw(), Lines() or LengthPrefixed()"
        )
    return value  # type: ignore[return-value]
