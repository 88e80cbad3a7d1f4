"""The lifetime rule and the idle clock, sans-IO, on a fake clock: milliseconds, not real timers.

These were subprocess tests that waited out real -q and -i timers; the rule
itself is tested here, and the drivers keep a few end-to-end tests each.
"""

from __future__ import annotations

import pytest

from wirecat.errors import IdleTimeout, PeerReset, Truncated
from wirecat.lifetime import End, IdleClock, SendFin, SessionLifetime, TellPeerEnded, Wait


def session(**overrides: object) -> SessionLifetime:
    settings: dict[str, object] = {
        "sending": True,
        "receiving": True,
        "printing": True,
        "shutdown_on_eof": True,
        "quit_after_eof": None,
        "idle_timeout": None,
        "interactive": False,
        "input_closed": False,
        "peer": "127.0.0.1:9",
        "now": 0.0,
    }
    settings.update(overrides)
    return SessionLifetime(**settings)  # type: ignore[arg-type]


def ends(actions: list[object]) -> End:
    assert isinstance(actions[-1], End), actions
    return actions[-1]


def test_fin_at_end_of_input_then_wait_for_the_peer_without_a_timer() -> None:
    life = session()
    assert life.next(0.0) == [Wait(None)]
    life.input_ended(1.0)
    assert life.next(1.0) == [SendFin(), Wait(None)]  # no grace timer: a late reply still comes
    assert life.next(500.0) == [Wait(None)]
    life.peer_ended()
    assert life.next(501.0) == [TellPeerEnded(), End("both sides closed", None, "we")]


def test_the_peer_first_and_we_go_on_sending() -> None:
    life = session()
    life.peer_ended()
    assert life.next(1.0) == [TellPeerEnded(), Wait(None)]  # the peer may have closed its side only
    life.input_ended(2.0)
    assert life.next(2.0) == [SendFin(), End("both sides closed", None, "peer")]


def test_a_terminal_ends_when_the_peer_does() -> None:
    life = session(interactive=True)
    life.peer_ended()
    assert ends(life.next(1.0)) == End("both sides closed", None, "peer")


def test_quit_after_eof_cuts_a_peer_still_sending() -> None:
    life = session(quit_after_eof=0.5)
    life.input_ended(1.0)
    assert life.next(1.0) == [SendFin(), Wait(1.5)]
    end = ends(life.next(1.5))
    assert isinstance(end.error, Truncated)
    assert "127.0.0.1:9" in end.error.message


def test_quit_after_eof_with_nothing_printed_is_a_clean_end() -> None:
    life = session(quit_after_eof=0.5, printing=False)
    life.input_ended(1.0)
    life.next(1.0)
    assert ends(life.next(2.0)) == End("end of input, then 0.5 s", None, "we")


def test_send_only_without_fin_ends_at_end_of_input() -> None:
    life = session(printing=False, shutdown_on_eof=False)
    life.input_ended(1.0)
    assert life.next(1.0) == [End("end of input", None, "we")]


def test_no_fin_when_asked_not_to() -> None:
    life = session(shutdown_on_eof=False)
    life.input_ended(1.0)
    assert life.next(1.0) == [Wait(None)]


def test_idle_timeout_counts_activity_either_way() -> None:
    life = session(idle_timeout=2.0)
    assert life.next(0.0) == [Wait(2.0)]
    life.idle.active(1.5)  # a byte moved
    assert life.next(3.0) == [Wait(3.5)]
    end = ends(life.next(3.5))
    assert isinstance(end.error, IdleTimeout)
    assert end.error.setting == "idle_timeout"


def test_the_earliest_timer_is_the_wait() -> None:
    life = session(idle_timeout=10.0, quit_after_eof=1.0)
    life.input_ended(0.5)
    assert life.next(0.5) == [SendFin(), Wait(1.5)]


def test_input_closed_from_the_start_sends_fin_at_once() -> None:
    life = session(sending=False, input_closed=True)
    assert life.next(0.0) == [SendFin(), Wait(None)]
    life.peer_ended()
    assert ends(life.next(0.1)) == End("peer closed", None, "we")


def test_nothing_to_do() -> None:
    assert ends(session(sending=False, receiving=False).next(0.0)).ending == "nothing to do"


def test_the_first_failure_counts_and_ends_at_once() -> None:
    life = session(quit_after_eof=0.1)
    reset = PeerReset("reset")
    life.failed(reset)
    life.failed(None, "stdout was closed")
    assert ends(life.next(0.0)) == End("", reset, "")


def test_a_closed_stdout_is_a_quiet_end() -> None:
    life = session()
    life.failed(None, "stdout was closed")
    assert ends(life.next(0.0)) == End("stdout was closed", None, "")


def test_the_peer_is_told_once() -> None:
    life = session()
    life.peer_ended()
    assert TellPeerEnded() in life.next(1.0)
    assert TellPeerEnded() not in life.next(2.0)


@pytest.mark.parametrize(("timeout", "idle_at_10"), [(None, False), (5.0, True), (20.0, False)])
def test_idle_clock(timeout: float | None, idle_at_10: bool) -> None:
    clock = IdleClock(timeout, 0.0)
    assert clock.is_idle(10.0) is idle_at_10
    clock.active(9.0)
    clock.active(3.0)  # an older stamp does not move it back
    assert clock.last == 9.0
    assert clock.is_idle(10.0) is False
    assert clock.deadline == (None if timeout is None else 9.0 + timeout)
