"""Send-side CRLF line endings for ``-C``, sans-IO.

A lone ``\\n`` becomes ``\\r\\n``; an existing ``\\r\\n`` is left alone, so
the conversion is idempotent (as in ncat and OpenBSD nc, unlike socat's
``crnl``, which turns ``\\r\\n`` into ``\\r\\r\\n``). A ``\\r`` at the end of
one chunk and the ``\\n`` that starts the next are still one CRLF.
"""

from __future__ import annotations

__all__ = ["CrlfEncoder"]


class CrlfEncoder:
    """Stateful LF → CRLF converter; feed it the stream in any chunking."""

    __slots__ = ("_after_cr",)

    def __init__(self) -> None:
        self._after_cr = False

    def feed(self, data: bytes) -> bytes:
        """Convert one chunk; the result depends only on the whole stream so far."""
        if not data:
            return b""
        head = b""
        if self._after_cr and data[:1] == b"\n":
            head, data = b"\n", data[1:]
        self._after_cr = data[-1:] == b"\r"  # (data may now be empty: that CR is done with)
        return head + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
