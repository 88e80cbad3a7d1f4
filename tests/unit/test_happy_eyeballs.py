"""The Happy Eyeballs race (RFC 8305), sans-IO, on a fake clock: every ordering."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wirecat.happy_eyeballs import Lost, Race, Start, TimedOut, Wait, Won

DELAY = 0.25


def test_one_address_that_connects() -> None:
    race = Race(["a"], delay=DELAY, now=0.0, timeout=None)
    assert race.next(0.0) == Start("a")
    assert race.next(0.0) == Wait(None)  # nothing more to start: wait for it
    race.connected("a")
    assert race.next(0.1) == Won("a")
    assert race.in_flight == ()


def test_a_failure_starts_the_next_at_once() -> None:
    race = Race(["v6", "v4"], delay=DELAY, now=0.0, timeout=None)
    assert race.next(0.0) == Start("v6")
    assert race.next(0.0) == Wait(DELAY)
    race.failed("v6", "refused", 0.01)
    assert race.next(0.01) == Start("v4")  # RFC 8305 §5: not at 0.25
    race.connected("v4")
    assert race.next(0.02) == Won("v4")


def test_a_slow_first_address_is_raced_after_the_delay() -> None:
    race = Race(["v6", "v4"], delay=DELAY, now=0.0, timeout=None)
    assert race.next(0.0) == Start("v6")
    assert race.next(0.1) == Wait(DELAY)
    assert race.next(DELAY) == Start("v4")
    assert race.in_flight == ("v6", "v4")
    race.connected("v4")
    assert race.next(0.3) == Won("v4")
    assert race.in_flight == ("v6",)  # the loser, for the caller to close


def test_the_first_may_still_win_after_the_second_started() -> None:
    race = Race(["v6", "v4"], delay=DELAY, now=0.0, timeout=None)
    race.next(0.0)
    race.next(DELAY)
    race.connected("v6")
    race.connected("v4")  # came too: ignored, the race is decided
    assert race.next(0.3) == Won("v6")
    assert race.in_flight == ("v4",)


def test_every_failure_is_kept_in_order() -> None:
    race = Race(["a", "b", "c"], delay=DELAY, now=0.0, timeout=None)
    race.next(0.0)
    race.failed("a", "refused", 0.0)
    race.next(0.0)
    race.next(DELAY)
    race.failed("c", "unreachable", 0.3)
    race.failed("b", "refused", 0.4)
    assert race.next(0.4) == Lost([("a", "refused"), ("c", "unreachable"), ("b", "refused")])


def test_the_deadline_ends_the_race() -> None:
    race = Race(["a", "b"], delay=DELAY, now=0.0, timeout=0.3)
    race.next(0.0)
    assert race.next(0.1) == Wait(DELAY)
    race.next(DELAY)
    assert race.next(0.26) == Wait(0.3)  # the deadline comes before anything else
    assert race.next(0.3) == TimedOut()
    assert set(race.in_flight) == {"a", "b"}


def test_no_address_loses_at_once() -> None:
    assert Race([], delay=DELAY, now=0.0, timeout=None).next(0.0) == Lost([])


#: One event of the outside world: after ``dt`` seconds, attempt ``index`` (of
#: those in flight) connects (True) or fails (False), or nothing happens (None).
events = st.lists(
    st.tuples(st.floats(0, 1, allow_nan=False), st.integers(0, 5), st.sampled_from([True, False, None])),
    max_size=30,
)


@given(st.integers(0, 6), events, st.one_of(st.none(), st.floats(0.05, 3)))
def test_any_ordering_keeps_the_rules(
    count: int, script: list[tuple[float, int, bool | None]], timeout: float | None
) -> None:
    addresses = [f"a{i}" for i in range(count)]
    race = Race(addresses, delay=DELAY, now=0.0, timeout=timeout)
    now, started, last_start, failed_since = 0.0, [], None, False
    outcome = None
    for dt, index, what in script + [(5.0, 0, None)] * 20:
        step = race.next(now)
        while isinstance(step, Start):
            # A new attempt only after the delay, or at once after a failure (§5).
            assert last_start is None or failed_since or now >= last_start + DELAY - 1e-9
            assert step.endpoint not in started  # each address once
            started.append(step.endpoint)
            last_start, failed_since = now, False
            step = race.next(now)
        if not isinstance(step, Wait):
            outcome = step
            break
        assert step.until is None or step.until >= now
        now += dt
        flying = race.in_flight
        if what is not None and flying:
            target = flying[index % len(flying)]
            if what:
                race.connected(target)
            else:
                race.failed(target, "x", now)
                failed_since = True
    if outcome is None:
        outcome = race.next(now)
    assert started == addresses[: len(started)]  # in the order given
    if isinstance(outcome, Won):
        assert outcome.endpoint in started
        assert outcome.endpoint not in race.in_flight
    elif isinstance(outcome, Lost):
        assert [e for e, _ in outcome.failures] == sorted(started, key=[e for e, _ in outcome.failures].index)
        assert len(outcome.failures) == count
    elif isinstance(outcome, TimedOut):
        assert timeout is not None
        assert now >= timeout
    else:  # attempts that never end, and no deadline: still waiting, for them alone
        assert outcome == Wait(None)
        assert timeout is None
        assert race.in_flight
