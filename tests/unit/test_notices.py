"""SenderNotices: each sender named once, a few per interval, the rest counted (virtual time)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wirecat.notices import SenderNotices


def test_a_sender_is_named_once() -> None:
    notices = SenderNotices()
    assert notices.check("a", 0.0) == ""
    assert notices.check("a", 0.1) is None
    assert notices.check("a", 100.0) is None  # a new window does not name it again
    assert notices.check("b", 100.0) == ""


def test_over_the_burst_senders_are_counted_then_told() -> None:
    notices = SenderNotices(burst=2, interval=5.0)
    assert [notices.check(s, 1.0) for s in ("a", "b", "c", "d", "d", "e")] == ["", "", None, None, None, None]
    assert notices.unnamed == 3  # c, d (twice: once), e
    assert notices.check("f", 5.9) is None  # the window (from 1.0) is still full
    assert notices.unnamed == 4
    tail = notices.check("g", 6.0)  # the window reopens: named, with the count
    assert tail == " (and 4 other senders, not named: at most 2 are named every 5 s)"
    assert notices.unnamed == 0
    assert notices.check("h", 6.0) == ""  # the second of the new window, nothing to count


def test_an_unnamed_sender_is_named_when_it_sends_again_later() -> None:
    notices = SenderNotices(burst=1, interval=1.0)
    assert notices.check("flood", 0.0) == ""
    assert notices.check("peer", 0.5) is None  # caught in the flood
    assert notices.check("peer", 1.5) == ""  # not counted as another sender: it is this one


def test_one_other_sender_is_singular() -> None:
    notices = SenderNotices(burst=1, interval=1.0)
    notices.check("a", 0.0)
    notices.check("b", 0.0)
    assert notices.check("c", 2.0) == " (and 1 other sender, not named: at most 1 are named every 1 s)"


def test_forget_lets_a_sender_be_named_again() -> None:
    notices = SenderNotices()
    notices.check("a", 0.0)
    notices.forget("a")
    notices.forget("never seen")  # no error
    assert notices.check("a", 0.0) == ""


def test_memory_is_bounded_oldest_forgotten_first() -> None:
    notices = SenderNotices(burst=1000, remember=3)
    for sender in "abcd":
        assert notices.check(sender, 0.0) == ""
    assert notices.check("d", 0.0) is None
    assert notices.check("a", 0.0) == ""  # forgotten (the oldest), so named again


def test_the_unnamed_count_is_bounded_and_says_so() -> None:
    notices = SenderNotices(burst=1, interval=1.0, remember=3)
    notices.check("named", 0.0)
    for n in range(10):
        notices.check(n, 0.0)
    assert notices.unnamed == 3
    assert (
        notices.check("next", 1.0)
        == " (and more than 3 other senders, not named: at most 1 are named every 1 s)"
    )


@given(
    st.lists(st.tuples(st.integers(0, 50), st.floats(0, 0.99)), max_size=300),
    st.integers(1, 10),
)
def test_within_one_interval_at_most_burst_lines_and_none_twice(
    datagrams: list[tuple[int, float]], burst: int
) -> None:
    """Whatever the flood, one interval says at most ``burst`` lines, never a sender twice."""
    notices = SenderNotices(burst=burst, interval=1.0)
    named = [
        sender
        for sender, now in sorted(datagrams, key=lambda d: d[1])
        if notices.check(sender, now) is not None
    ]
    assert len(named) <= burst
    assert len(named) == len(set(named))
