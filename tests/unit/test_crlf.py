"""-C: LF → CRLF, idempotent, independent of chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirecat.crlf import CrlfEncoder


def encode(data: bytes) -> bytes:
    return CrlfEncoder().feed(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", b""),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\r\nb\n", b"a\r\nb\r\n"),  # an existing CRLF stays as it is
        (b"\r\r\n", b"\r\r\n"),
        (b"a\rb", b"a\rb"),  # a lone CR is not a line ending to rewrite
        (b"a\r\nb\n\x00\xff", b"a\r\nb\r\n\x00\xff"),
    ],
)
def test_cases(data: bytes, expected: bytes) -> None:
    assert encode(data) == expected


def test_cr_and_lf_split_across_chunks_stay_one_crlf() -> None:
    encoder = CrlfEncoder()
    assert encoder.feed(b"a\r") + encoder.feed(b"\nb\n") == b"a\r\nb\r\n"


@given(st.binary(max_size=200))
def test_idempotent(data: bytes) -> None:
    assert encode(encode(data)) == encode(data)


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=10))
def test_any_chunking_gives_the_same_bytes(data: bytes, cuts: list[int]) -> None:
    encoder = CrlfEncoder()
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert b"".join(encoder.feed(c) for c in chunks) == encode(data)


@given(st.binary(max_size=200))
def test_no_lone_lf_is_left(data: bytes) -> None:
    out = encode(data)
    assert out.replace(b"\r\n", b"").count(b"\n") == 0


def test_a_lone_lf_after_a_completed_split_crlf_is_still_converted() -> None:
    """``a\\r`` | ``\\n`` | ``\\nb``: the CR was used up by the first LF, so the second gets its own."""
    encoder = CrlfEncoder()
    assert b"".join(encoder.feed(chunk) for chunk in (b"a\r", b"\n", b"\nb")) == b"a\r\n\r\nb"
