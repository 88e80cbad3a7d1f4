"""A connection's lifetime, sans-IO: when it is idle, and when a session ends.

Two machines, fed events and the time, returning what to do; the drivers
(threads, ``selectors``, the event loop) only carry it out. No clock is read
here: time comes in as ``now``, so tests drive every timer with a fake clock
in microseconds instead of waiting for real ones.

**The idle clock** (:class:`IdleClock`), one definition of "active" for every
engine (the stdio session, the ``-k`` hub, UDP, the relay, the server's
connections): a connection is active when a byte moves either way, read from
the peer or taken by it. A slow reader that still takes bytes is not idle; a
write into a buffer the peer never empties is not activity (the server's
connections see what the peer took through ``SIOCOUTQ``).

**The session's lifetime** (:class:`SessionLifetime`), the rule of
``connect``, ``listen`` and ``--exec`` (README, "How a connection ends"):

1. At the end of our input we send FIN (``shutdown(SHUT_WR)``) and go on
   receiving; no grace timer cuts the peer off.
2. The session ends when both directions are done. If the peer ends first we
   go on sending, unless our input is a terminal (nobody types to a closed
   connection).
3. ``quit_after_eof`` (``-q``) ends it that long after our input ended; if
   the peer was still sending, that is :class:`~wirecat.errors.Truncated`.
   ``idle_timeout`` (``-i``) ends it after that long with nothing moving.
4. An error ends it at once; so does a reader of our output that went away.
"""

from __future__ import annotations

from typing import NamedTuple

from wirecat.errors import IdleTimeout, Truncated, WirecatError

__all__ = ["End", "IdleClock", "SendFin", "SessionLifetime", "TellPeerEnded", "Wait"]


class IdleClock:
    """When a connection with nothing moving becomes idle.

    Engines stamp :attr:`last` where bytes move (an attribute store, so that
    the hot paths pay no call), and ask the clock the rest.

    Args:
        timeout: seconds of no activity that make the connection idle; None
            for never.
        now: the time the connection started (its first activity).
    """

    __slots__ = ("last", "timeout")

    def __init__(self, timeout: float | None, now: float) -> None:
        self.timeout = timeout
        #: The time of the last activity (a byte moved either way).
        self.last = now

    def active(self, now: float) -> None:
        """A byte moved at ``now``; a time earlier than the last is ignored."""
        if now > self.last:
            self.last = now

    @property
    def deadline(self) -> float | None:
        """When the connection becomes idle if nothing moves, or None."""
        return None if self.timeout is None else self.last + self.timeout

    def is_idle(self, now: float) -> bool:
        """Whether ``timeout`` seconds have passed with nothing moving."""
        return self.timeout is not None and now >= self.last + self.timeout


class SendFin(NamedTuple):
    """Our input has ended: half-close the connection (``shutdown(SHUT_WR)``)."""


class TellPeerEnded(NamedTuple):
    """The peer's end of stream has come (``--exec`` closes the program's stdin)."""


class End(NamedTuple):
    """The session is over: how (``ending``), the error if any, and who closed first."""

    ending: str
    error: WirecatError | None
    closed_first: str


class Wait(NamedTuple):
    """Nothing to do until something happens, or until ``until`` (None: no timer runs)."""

    until: float | None


Action = SendFin | TellPeerEnded | End | Wait


class SessionLifetime:
    """The session rule (see the module docstring) as a state machine.

    Args:
        sending: our input is read and sent (False for ``--recv-only``, or
            when there is no input at all).
        receiving: what the peer sends is read (always, except for a
            session with neither direction: ``--send-only`` still reads,
            into nothing).
        printing: what is read goes somewhere (False for ``--send-only``: a
            timer after the end of input cuts no reply off).
        shutdown_on_eof: send FIN when our input ends (False: ``--no-shutdown``).
        quit_after_eof: ``-q``: seconds after the end of input to end, or None.
        idle_timeout: ``-i``: seconds with nothing moving to end, or None.
        interactive: our input is a terminal.
        input_closed: our input was closed from the start (an empty input).
        peer: the peer's name, for the messages.
        now: the time the session starts.
    """

    def __init__(
        self,
        *,
        sending: bool,
        receiving: bool,
        printing: bool,
        shutdown_on_eof: bool,
        quit_after_eof: float | None,
        idle_timeout: float | None,
        interactive: bool,
        input_closed: bool,
        peer: str,
        now: float,
    ) -> None:
        self._sending = sending
        self._receiving = receiving
        self._printing = printing
        self._shutdown_on_eof = shutdown_on_eof
        self._quit_after_eof = quit_after_eof
        self._interactive = interactive
        self._peer = peer
        self.idle = IdleClock(idle_timeout, now)
        self._input_ended_at: float | None = None
        self._peer_ended = False
        self._fin_sent = False
        self._peer_told = False
        self._closed_first = ""
        self._failure: tuple[str, WirecatError | None] | None = None
        self._pending: list[Action] = []
        if input_closed:
            self._closed_first = "we"
            if shutdown_on_eof:
                self._fin_sent = True
                self._pending.append(SendFin())

    # -- events --------------------------------------------------------------------------------

    def input_ended(self, now: float) -> None:
        """Our input reached its end at ``now`` (and everything read was sent)."""
        if self._input_ended_at is None:
            self._input_ended_at = now

    def peer_ended(self) -> None:
        """The peer's end of stream came (and everything it sent was delivered)."""
        self._peer_ended = True

    def failed(self, error: WirecatError | None, ending: str = "") -> None:
        """An error ends the session (the first one given counts); ``None`` with
        an ``ending`` is a quiet end (a reader of our output that went away)."""
        if self._failure is None:
            self._failure = (ending, error)

    # -- what to do -----------------------------------------------------------------------------

    def next(self, now: float) -> list[Action]:
        """What to do now: the actions, in order; the last is an End or a Wait."""
        actions, self._pending = self._pending, []
        if self._failure is not None:
            ending, error = self._failure
            return [*actions, End(ending, error, self._closed_first)]
        input_done = not self._sending or self._input_ended_at is not None
        if self._sending and self._input_ended_at is not None and not self._fin_sent:
            self._fin_sent = True
            self._closed_first = self._closed_first or "we"
            if self._shutdown_on_eof:
                actions.append(SendFin())
            elif not self._printing:
                # --send-only --no-shutdown: no FIN, so no end will come back
                # to wait for; done with what was sent.
                return [*actions, End("end of input", None, self._closed_first)]
        if self._receiving and self._peer_ended:
            if not self._peer_told:
                self._peer_told = True
                actions.append(TellPeerEnded())
            self._closed_first = self._closed_first or "peer"
            if input_done or self._interactive:
                ending = "both sides closed" if self._sending else "peer closed"
                return [*actions, End(ending, None, self._closed_first)]
        if not self._sending and not self._receiving:
            return [*actions, End("nothing to do", None, self._closed_first)]
        deadlines: list[float] = []
        if self._quit_after_eof is not None and self._sending and self._input_ended_at is not None:
            quit_at = self._input_ended_at + self._quit_after_eof
            if now >= quit_at:
                if not self._printing:  # no reply to cut off
                    ending = f"end of input, then {self._quit_after_eof:g} s"
                    return [*actions, End(ending, None, self._closed_first)]
                error = Truncated(
                    f"stopped {self._quit_after_eof:g} s after end of input "
                    f"while {self._peer} was still connected; its reply may be cut off"
                )
                return [*actions, End(error.message, error, self._closed_first)]
            deadlines.append(quit_at)
        idle_at = self.idle.deadline
        if idle_at is not None:
            if now >= idle_at:
                error = IdleTimeout(f"no data either way for {self.idle.timeout:g} s")
                return [*actions, End(error.message, error, self._closed_first)]
            deadlines.append(idle_at)
        return [*actions, Wait(min(deadlines) if deadlines else None)]
