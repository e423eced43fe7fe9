"""The controller work queue, with client-go's guarantees (k8s.io/client-go/util/workqueue).

What the queue promises (client-go's `doc.go`, kept word for word where it applies):

* **Fair**: items are processed in the order in which they are added.
* **Stingy**: a single item will not be processed multiple times concurrently, and if an item
  is added multiple times before it can be processed, it will only be processed once.
* **Concurrent-safe**: multiple producers and consumers (coroutines on one event loop) may use
  it at once. A key handed out by `get()` is *processing* until `done(key)`; while it is, no
  other `get()` returns it. Adding it again while it is processing marks it *dirty*: it is
  handed out once more after `done()`, never twice at the same time. So a reconcile that
  races with a change always runs again and sees that change.
* **Shutdown**: `shutdown()` stops new adds; a blocked `get()` and every later one raise
  `ShutDown`. Keys still queued are dropped (unlike client-go, which hands them out first):
  reconciles are level-based, so they are re-derived on the next start; waiting on them would
  only delay a clean stop. `await shutdown_with_drain()` additionally waits until every key
  being processed is `done()`.

Delays and rate limits (client-go's delaying and rate-limiting queues, in one class):

* `add_after(key, delay)` adds the key when `delay` seconds have passed on the queue's
  `Clock`. A key waiting with a later time is moved earlier; a later request for an already
  waiting key is ignored (the earlier one covers it).
* `add_rate_limited(key)` is `add_after(key, limiter.when(key))`; `forget(key)` clears its
  failure history and `num_requeues(key)` reads it. Call `forget` after a success, or the next
  failure of that key waits as if the earlier failures had just happened.
* The default limiter is client-go's `DefaultControllerRateLimiter`: the larger of
  - per key exponential back-off: 5 ms × 2^failures, capped at 1000 s, and
  - one token bucket for the whole queue: 10 per second, burst 100.

  Worked example: a key failing over and over waits 5 ms, 10 ms, 20 ms, ... (the 19th
  failure waits 5 ms × 2^18 ≈ 1311 s, capped to 1000 s). Meanwhile 150 distinct keys failing
  at the same instant: the first 100 take the burst and wait only their 5 ms; the 101st
  waits 0.1 s, the 150th 5 s, because the bucket refills 10 tokens a second. Note that every
  `when()` spends a token, as in client-go.

The typical worker loop (STYLE.md § 2):

    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            result = await reconciler.reconcile(key)
        except TerminalError:
            queue.forget(key)
        except Exception:
            queue.add_rate_limited(key)
        else:
            queue.forget(key)
            if result.requeue_after:
                queue.add_after(key, result.requeue_after)
        finally:
            queue.done(key)
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from kubeling.util.clock import REAL_CLOCK, Clock

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down: the worker should return."""


class RateLimiter(Protocol):
    """How long a key should wait before it is retried (client-go's `RateLimiter`)."""

    def when(self, key: Hashable) -> float: ...

    def forget(self, key: Hashable) -> None: ...

    def num_requeues(self, key: Hashable) -> int: ...


class ExponentialFailureRateLimiter:
    """`base × 2^failures`, capped at `cap`; per key (client-go's ItemExponentialFailure...)."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures > 1023:  # 2**1024 overflows a float; long past the cap anyway
            return self.cap
        return float(min(self.cap, self.base * 2**failures))

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class TokenBucketRateLimiter:
    """One bucket for all keys: `rate` tokens a second, at most `burst` saved up.

    Every `when()` takes a token, going into debt when none is left; the delay is how long
    the debt takes to refill (golang.org/x/time/rate `Reserve().Delay()`).
    """

    def __init__(self, rate: float = 10.0, burst: int = 100, clock: Clock = REAL_CLOCK) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("need rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.now()

    def when(self, key: Hashable) -> float:
        now = self._clock.now()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def forget(self, key: Hashable) -> None:
        return None

    def num_requeues(self, key: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest wait any of the limiters asks for (every limiter is asked)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("need at least one limiter")
        self.limiters = limiters

    def when(self, key: Hashable) -> float:
        return max([limiter.when(key) for limiter in self.limiters])

    def forget(self, key: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return max(limiter.num_requeues(key) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock = REAL_CLOCK) -> RateLimiter:
    """client-go's `DefaultControllerRateLimiter`: 5 ms..1000 s per key, max'd with 10 qps/100."""
    return MaxOfRateLimiter(
        ExponentialFailureRateLimiter(0.005, 1000.0),
        TokenBucketRateLimiter(10.0, 100, clock),
    )


class WorkQueue(Generic[K]):
    """A de-duplicating, delaying, rate-limited work queue; see the module docstring."""

    def __init__(
        self,
        name: str = "",
        *,
        clock: Clock = REAL_CLOCK,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._limiter = rate_limiter or default_controller_rate_limiter(clock)
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()  # queued, or re-added while processing
        self._processing: set[K] = set()
        # Delayed adds: a heap of (ready at, sequence, key) and each key's earliest time.
        # Superseded heap entries stay until popped and are skipped then.
        self._waiting: list[tuple[float, int, K]] = []
        self._ready_at: dict[K, float] = {}
        self._seq = itertools.count()
        self._changed: asyncio.Future[None] | None = None
        self._idle: asyncio.Future[None] | None = None
        self._shutting_down = False

    # -- state --------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys ready to be handed out (not those waiting on a delay or processing)."""
        self._promote()
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    def waiting(self) -> int:
        """Keys waiting for a delay to pass."""
        return len(self._ready_at)

    # -- adding -------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # handed out again by done()
        self._queue.append(key)
        self._notify()

    def add_after(self, key: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready = self._clock.now() + delay
        current = self._ready_at.get(key)
        if current is not None and current <= ready:
            return
        self._ready_at[key] = ready
        heapq.heappush(self._waiting, (ready, next(self._seq), key))
        self._notify()  # a waiting get() may need to wake earlier now

    def add_rate_limited(self, key: K) -> None:
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: K) -> None:
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._limiter.num_requeues(key)

    def _promote(self) -> None:
        """Move every delayed key whose time has come into the queue."""
        now = self._clock.now()
        while self._waiting and self._waiting[0][0] <= now:
            ready, _, key = heapq.heappop(self._waiting)
            if self._ready_at.get(key) == ready:
                del self._ready_at[key]
                self.add(key)

    def _notify(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    # -- consuming ----------------------------------------------------------------------------

    async def get(self) -> K:
        """The next key, marked processing; blocks until there is one. Raises `ShutDown`."""
        while True:
            if self._shutting_down:
                raise ShutDown(self.name)
            self._promote()
            if self._queue:
                key = self._queue.popleft()
                self._dirty.discard(key)
                self._processing.add(key)
                return key
            await self._wait_for_change()

    async def _wait_for_change(self) -> None:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        changed = asyncio.shield(self._changed)
        if not self._waiting:
            await changed
            return
        timer = asyncio.ensure_future(self._clock.sleep(self._waiting[0][0] - self._clock.now()))
        try:
            await asyncio.wait((changed, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            changed.cancel()  # cancels the shield only, not the shared future
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    def done(self, key: K) -> None:
        """The worker finished `key`; if it was added meanwhile, it is queued again."""
        if key not in self._processing:
            return
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._notify()
        if not self._processing and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    # -- stopping -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        self._shutting_down = True
        self._queue.clear()
        self._dirty.clear()
        self._waiting.clear()
        self._ready_at.clear()
        self._notify()

    async def shutdown_with_drain(self) -> None:
        """Shut down, then wait until every key being processed is `done()`."""
        self.shutdown()
        while self._processing:
            if self._idle is None or self._idle.done():
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)
