"""How many inference requests a process works on at once: a ceiling, lowered under overload to
what the server answers within a latency target.

Requests in progress share one event loop and one batcher, so each waits in proportion to their
number (Little's law: in progress = answered per second × seconds each). A fixed bound cannot suit
every traffic: 16 requests of 64 wide rows keep a saturated server at p99 43 ms and 95% of its
goodput, 128 let a queue of 135 ms stand and cost goodput (bench/results/reliability.md), yet 64
clients sending one row each, or 8 sending 256, are normal loads well under capacity that 16
would refuse. So the bound adapts, only while requests are refused (at the door, or with a 503
from further in, such as the batcher's queue bound, which sheds the same overload later): over
each window in which some were refused it moves halfway to the number the server answers in
`target_s` at the rate it answered in that window; in a window without a refusal it grows back
by a quarter, up to the ceiling. Traffic that is never refused never meets a lowered bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW_S = 0.1
"""How often the bound may move: each window's answers give the rate it is fitted to."""
STALE_S = 1.0
"""A window longer than this (events paused) tells nothing about the rate: it is dropped."""
FEWEST = 4
"""The bound never falls below this (nor above the ceiling), enough to merge a few requests."""


class ConcurrencyLimit:
    """The bound, for one process's event loop (not thread-safe: only the loop touches it)."""

    def __init__(
        self,
        most: int,
        target_s: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.most = most
        self.limit = most
        self.target_s = target_s
        self._fewest = min(FEWEST, most)
        self._clock = clock
        self._start = clock()
        self._answered = 0
        self._refused = 0

    def answered(self) -> None:
        """A request in progress was answered."""
        self._answered += 1
        self._tick()

    def refused(self) -> None:
        """A request was refused at the bound."""
        self._refused += 1
        self._tick()

    def _tick(self) -> None:
        if self.target_s is None:
            return
        now = self._clock()
        elapsed = now - self._start
        if elapsed < WINDOW_S:
            return
        if elapsed <= STALE_S:
            if self._refused:
                fitted = self._answered / elapsed * self.target_s
                self.limit = round((self.limit + fitted) / 2)
            else:
                self.limit += max(1, self.limit // 4)
            self.limit = max(self._fewest, min(self.most, self.limit))
        self._start, self._answered, self._refused = now, 0, 0
