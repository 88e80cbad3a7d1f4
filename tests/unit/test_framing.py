"""The sans-IO framers: table-driven cases and hypothesis properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirecat.errors import FrameError, FrameTooLarge, IncompleteFrame
from wirecat.framing import Framer, LengthPrefixed, Lines, Raw


def feed_all(framer: Framer, chunks: list[bytes], *, eof: bool = True) -> list[bytes]:
    frames: list[bytes] = []
    for chunk in chunks:
        frames += framer.feed(chunk)
    if eof:
        frames += framer.feed(b"")
    return frames


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, duplicates allowed)."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def outcome(framer: Framer, chunks: list[bytes]) -> tuple[list[bytes], type | None]:
    """The frames, and the FrameError class raised if any: for comparing two feedings."""
    frames: list[bytes] = []
    try:
        for chunk in [*chunks, b""]:
            frames += framer.feed(chunk)
    except FrameError as exc:
        return frames + exc.frames, type(exc)
    return frames, None


# -- table-driven cases -----------------------------------------------------------------------

LINE_CASES = [
    # (chunks, frames)
    ([b"a\nb\n"], [b"a", b"b"]),
    ([b"a", b"b\n"], [b"ab"]),
    ([b"a\r\nb\r\n"], [b"a", b"b"]),  # CRLF accepted
    ([b"a\r", b"\n"], [b"a"]),  # CR and LF in different reads
    ([b"\n\n"], [b"", b""]),  # empty lines are frames
    ([b"last"], [b"last"]),  # a final line without newline is still a line
    ([b"last\r"], [b"last"]),
    ([b""], []),
    ([b"a\rb\n"], [b"a\rb"]),  # a lone CR inside a line stays
]


@pytest.mark.parametrize(("chunks", "frames"), LINE_CASES)
def test_lines(chunks: list[bytes], frames: list[bytes]) -> None:
    assert feed_all(Lines(), chunks) == frames


def test_lines_with_crlf_newline_keeps_lone_lf() -> None:
    framer = Lines(newline=b"\r\n")
    assert feed_all(framer, [b"a\nb\r\nc\r\n"]) == [b"a\nb", b"c"]
    assert framer.encode(b"x") == b"x\r\n"


def test_line_at_the_limit_is_accepted_and_one_over_is_not() -> None:
    assert Lines(max_length=4).feed(b"abcd\n") == [b"abcd"]
    assert Lines(max_length=4).feed(b"abcd\r\n") == [b"abcd"]
    with pytest.raises(FrameTooLarge):
        Lines(max_length=4).feed(b"abcde\n")


def test_overlong_line_is_refused_before_its_newline_comes() -> None:
    framer = Lines(max_length=10)
    framer.feed(b"x" * 10)
    with pytest.raises(FrameTooLarge):
        framer.feed(b"x")  # no newline yet: refused early, buffer not grown
    assert framer.buffered == 0


@pytest.mark.parametrize(("newline", "chunk"), [(b"\r\n", b"abc\r"), (b"ab", b"xyya"), (b"\n", b"abc\r")])
def test_a_line_kept_past_the_limit_for_its_newline_is_refused_if_the_stream_ends(
    newline: bytes, chunk: bytes
) -> None:
    framer = Lines(max_length=3, newline=newline)
    assert framer.feed(chunk) == []  # maybe the newline is on its way
    if newline == b"\n":
        assert framer.feed(b"") == [b"abc"]  # the \r of a CRLF, dropped: 3 bytes
    else:
        with pytest.raises(FrameTooLarge):
            framer.feed(b"")  # it never came: 4 bytes is over the limit


def test_overlong_line_among_short_ones() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        Lines(max_length=3).feed(b"ab\nabcd\nab\n")
    assert caught.value.frames == [b"ab"]  # the good line before it is not lost


def test_frames_before_an_overlong_partial_line_are_kept() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        Lines(max_length=3).feed(b"a\nb\ncdefg")
    assert caught.value.frames == [b"a", b"b"]


def test_frames_before_a_bad_header_are_kept() -> None:
    framer = LengthPrefixed(max_size=5)
    with pytest.raises(FrameTooLarge) as caught:
        framer.feed(framer.encode(b"ok") + (6).to_bytes(4, "big"))
    assert caught.value.frames == [b"ok"]


def test_lines_encode_refuses_an_embedded_newline() -> None:
    with pytest.raises(FrameError):
        Lines().encode(b"two\nlines")


def test_length_prefixed_cases() -> None:
    framer = LengthPrefixed()
    wire = framer.encode(b"hello") + framer.encode(b"") + framer.encode(b"\x00\n")
    assert wire[:4] == b"\x00\x00\x00\x05"
    assert feed_all(LengthPrefixed(), [wire]) == [b"hello", b"", b"\x00\n"]


def test_length_prefixed_refuses_a_large_header_before_buffering() -> None:
    framer = LengthPrefixed(max_size=100)
    with pytest.raises(FrameTooLarge):
        framer.feed((101).to_bytes(4, "big"))
    framer = LengthPrefixed(max_size=100)
    with pytest.raises(FrameTooLarge):
        framer.feed(b"\xff\xff\xff\xff" + b"x" * 10)
    assert framer.buffered == 0


def test_length_prefixed_at_the_limit() -> None:
    framer = LengthPrefixed(max_size=3)
    assert framer.feed(framer.encode(b"abc")) == [b"abc"]
    with pytest.raises(FrameTooLarge):
        framer.encode(b"abcd")


@pytest.mark.parametrize("wire", [b"\x00", b"\x00\x00\x00\x05abc"])
def test_length_prefixed_eof_inside_a_frame(wire: bytes) -> None:
    framer = LengthPrefixed()
    assert framer.feed(wire) == []
    with pytest.raises(IncompleteFrame):
        framer.feed(b"")


def test_raw_passes_chunks_through() -> None:
    assert feed_all(Raw(), [b"a", b"", b"bc"]) == [b"a", b"bc"]
    assert Raw().feed(memoryview(b"xy")) == [b"xy"]
    assert Raw().encode(bytearray(b"z")) == b"z"


@pytest.mark.parametrize("framer", [Raw(), Lines(max_length=7, newline=b"|"), LengthPrefixed(max_size=9)])
def test_clone_keeps_settings_and_drops_state(framer: Framer) -> None:
    framer.feed(b"\x00\x00")
    clone = framer.clone()
    assert repr(clone) == repr(framer)
    assert clone.buffered == 0


def test_framers_accept_memoryviews_of_a_reused_buffer() -> None:
    buffer = bytearray(b"one\ntw")
    framer = Lines()
    frames = framer.feed(memoryview(buffer))
    buffer[:] = b"o\nxxxxx"  # the receive buffer is reused: nothing may point into it
    frames += framer.feed(memoryview(buffer)[:2])
    assert frames == [b"one", b"two"]


# -- properties -------------------------------------------------------------------------------

FRAMERS = {
    "lines": lambda: Lines(max_length=64),
    "crlf-lines": lambda: Lines(max_length=64, newline=b"\r\n"),
    "length-prefixed": lambda: LengthPrefixed(max_size=64),
}
line_frames = st.lists(st.binary(max_size=64).filter(lambda b: b"\n" not in b and not b.endswith(b"\r")))


@given(frames=line_frames, cuts=st.lists(st.integers(min_value=0)))
def test_lines_round_trip_under_any_split(frames: list[bytes], cuts: list[int]) -> None:
    framer = Lines(max_length=64)
    wire = b"".join(framer.encode(f) for f in frames)
    assert feed_all(Lines(max_length=64), split(wire, cuts)) == frames


@pytest.mark.parametrize("newline", [b"\r\n", b"<=>"])
@given(data=st.data(), cuts=st.lists(st.integers(min_value=0)))
def test_lines_at_the_limit_with_a_long_newline_under_any_split(
    newline: bytes, data: st.DataObject, cuts: list[int]
) -> None:
    """Lines of up to exactly max_length, a read ending anywhere inside a separator: same frames."""
    alphabet = st.sampled_from([bytes([b]) for b in b"x" + newline])
    frame = st.lists(alphabet, max_size=4).map(b"".join)
    frames = data.draw(st.lists(frame.filter(lambda f: (f + newline).find(newline) == len(f)), max_size=6))
    wire = b"".join(f + newline for f in frames)
    assert feed_all(Lines(max_length=4, newline=newline), split(wire, cuts)) == frames


@given(frames=st.lists(st.binary(max_size=64)), cuts=st.lists(st.integers(min_value=0)))
def test_length_prefixed_round_trip_under_any_split(frames: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(LengthPrefixed(max_size=64).encode(f) for f in frames)
    assert feed_all(LengthPrefixed(max_size=64), split(wire, cuts)) == frames


@given(chunks=st.lists(st.binary()))
def test_raw_round_trip(chunks: list[bytes]) -> None:
    assert b"".join(feed_all(Raw(), chunks)) == b"".join(chunks)


@pytest.mark.parametrize("name", list(FRAMERS))
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_any_split_gives_the_same_outcome(name: str, data: bytes, cuts: list[int]) -> None:
    """Whole, split anyhow, or byte by byte: the same frames, or the same error."""
    whole = outcome(FRAMERS[name](), [data])
    assert outcome(FRAMERS[name](), split(data, cuts)) == whole
    assert outcome(FRAMERS[name](), [data[i : i + 1] for i in range(len(data))]) == whole


@pytest.mark.parametrize("name", list(FRAMERS))
@given(data=st.binary(max_size=2000))
def test_random_bytes_give_frames_or_frame_error_only(name: str, data: bytes) -> None:
    framer = FRAMERS[name]()
    try:
        frames = feed_all(framer, [data])
    except FrameError:
        return
    assert all(len(f) <= 64 for f in frames)
