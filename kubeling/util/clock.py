"""Time as an injected seam: every delay in kubeling asks a `Clock`, never `time` directly.

client-go still carries "TODO: Support injection of clock"; kubeling starts with it, so that
back-off, rate limits, resyncs and timeouts can be tested on a `FakeClock` without sleeping.

Contract of a `Clock`:

* `now()` is monotonic seconds (never goes back; unrelated to wall time). Use it for
  durations and deadlines only; timestamps written into objects come from wall time
  (`kubeling.util.timefmt`).
* `await sleep(seconds)` returns once `now()` has advanced by at least `seconds`. A zero or
  negative duration still yields to the event loop once, as `asyncio.sleep(0)` does.
  Cancelling the sleep cancels only the sleeper.

`FakeClock` moves only when a test calls `advance()`. `advance()` is synchronous: it moves
`now()` and wakes every sleeper whose deadline has been reached, earliest deadline first (ties
in the order they went to sleep). Woken coroutines run when the test next yields to the loop
(for example by awaiting what it expects to happen). A sleeper that goes back to sleep does so
from the *new* time, so `advance(10)` wakes a 1-second periodic loop once, not ten times:
advance step by step to see every period.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time and sleeping; see the module docstring for the contract."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """`time.monotonic` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


REAL_CLOCK = RealClock()


class FakeClock:
    """A clock for tests: time stands still until `advance()` moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._seq = itertools.count()
        # (deadline, sequence, future): the sequence keeps ties in the order of sleeping and
        # keeps futures from being compared.
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future  # a cancelled sleeper's future is skipped by advance()

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` and wake the sleepers that are due, in order."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many coroutines are asleep on this clock now (cancelled ones excluded)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        """The earliest time a sleeper will wake, or None when nobody sleeps."""
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) if live else None
