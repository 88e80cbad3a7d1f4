"""Which per-sender notices are said: :class:`SenderNotices` (sans-IO).

A datagram server drops datagrams it will not serve (``listen -u`` serving
one peer, a relay at its session limit, a deny rule) and says so, naming the
sender: data must not vanish in silence. But a UDP source address costs
nothing to forge, so a flood from a million made-up senders would become a
million lines on stderr (a terminal scrolled out of use, a log file filled)
if each were named. So, as the Linux kernel does for its own per-packet
messages (``net_ratelimit()``: ``net.core.message_burst`` 10 messages, then
one per ``message_cost`` 5 s, and "N callbacks suppressed" when it speaks
again):

* each sender is named **once** (a sender that goes on sending is not named
  again), remembering at most ``remember`` senders (oldest forgotten first),
  so memory is bounded too;
* at most ``burst`` new senders are named per ``interval`` seconds; the ones
  over that are counted, and the next line said tells how many went unnamed.
  A sender that went unnamed is named when it sends again after the window
  reopens, so a peer caught in someone else's flood is still seen.

Time comes in as an argument (``now``), so tests drive it.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = [
    "DEFAULT_NOTICE_BURST",
    "DEFAULT_NOTICE_INTERVAL",
    "DEFAULT_REMEMBERED_SENDERS",
    "SenderNotices",
]

#: Senders named per interval at most: the kernel's ``net.core.message_burst``.
DEFAULT_NOTICE_BURST = 10
#: The interval, in seconds: the kernel's ``net.core.message_cost``.
DEFAULT_NOTICE_INTERVAL = 5.0
#: Senders remembered as already named (a set of addresses: ~100 bytes each).
DEFAULT_REMEMBERED_SENDERS = 4096


class SenderNotices:
    """Decides which senders a per-sender notice names: each once, a few per interval.

    Args:
        burst: new senders named per ``interval`` at most (≥ 1).
        interval: seconds of the window.
        remember: senders remembered as named; past it the oldest is
            forgotten (and would be named again, within the rate).
    """

    __slots__ = ("_burst", "_interval", "_named", "_remember", "_said", "_unnamed", "_window_start")

    def __init__(
        self,
        *,
        burst: int = DEFAULT_NOTICE_BURST,
        interval: float = DEFAULT_NOTICE_INTERVAL,
        remember: int = DEFAULT_REMEMBERED_SENDERS,
    ) -> None:
        self._burst = max(1, burst)
        self._interval = interval
        self._remember = max(1, remember)
        #: Senders named already; a dict keeps them in order, oldest first.
        self._named: dict[Hashable, None] = {}
        self._window_start: float | None = None
        self._said = 0  # senders named in this window
        #: Senders over the rate since the last line said (distinct, so a
        #: sender that goes on sending counts once; bounded like ``_named``).
        self._unnamed: dict[Hashable, None] = {}

    def check(self, sender: Hashable, now: float) -> str | None:
        """Whether to say a notice about ``sender`` now.

        Returns:
            None: say nothing (named before, or over the rate: counted).
            Otherwise, a suffix for the line: ``""``, or, when senders went
            unnamed since the last line, ``" (and 37 other senders, not
            named: at most 10 are named every 5 s)"``.
        """
        if sender in self._named:
            return None
        if self._window_start is None or now - self._window_start >= self._interval:
            self._window_start, self._said = now, 0
        if self._said >= self._burst:
            if len(self._unnamed) < self._remember:
                self._unnamed[sender] = None
            return None
        self._said += 1
        self._named[sender] = None
        if len(self._named) > self._remember:
            del self._named[next(iter(self._named))]
        self._unnamed.pop(sender, None)
        suffix = ""
        if self._unnamed:
            n = len(self._unnamed)
            others = f"{'more than ' if n >= self._remember else ''}{n} other sender{'s' if n != 1 else ''}"
            suffix = f" (and {others}, not named: at most {self._burst} are named every {self._interval:g} s)"
            self._unnamed.clear()
        return suffix

    def forget(self, sender: Hashable) -> None:
        """Forget that ``sender`` was named, so its next notice is said again (within the rate)."""
        self._named.pop(sender, None)

    @property
    def unnamed(self) -> int:
        """Senders not named since the last line said (what its suffix will count)."""
        return len(self._unnamed)
