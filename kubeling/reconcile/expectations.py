"""Controller expectations (client-go's `ControllerExpectations`), on an injected clock.

The problem: a controller creates a pod, and before the informer has seen it the controller
reconciles again, counts one pod too few from its cache, and creates another. The contract:

* **A controller never creates (or deletes) again for a key until its earlier creates and
  deletes have been observed in the informer cache, or have expired.** Before acting it
  records `expect_creations(key, n)` / `expect_deletions(key, uids)`; the informer's handlers
  call `creation_observed(key)` / `deletion_observed(key, uid)` as the changes arrive; the
  reconcile acts only when `satisfied(key)`.
* `satisfied(key)` is true when nothing is expected for the key (never recorded, or
  `delete(key)`d), when every expected change was observed, or when the expectations are
  older than `ttl` seconds (5 minutes, as client-go) on the clock — a create that failed
  silently or a missed watch event must not wedge the key forever.
* A failed create or delete must be reported too: call `creation_observed` /
  `deletion_observed` for it, since no event will ever come.
* `expect_*` replaces earlier expectations for the key and restarts its TTL.
* Single event loop: no locking is needed, but nothing here awaits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kubeling.util.clock import REAL_CLOCK, Clock

TTL = 5 * 60.0


@dataclass(slots=True)
class _Expected:
    adds: int
    deletes: set[str] = field(default_factory=set)
    at: float = 0.0


class Expectations:
    """Pending creates and deletes per controller key; see the module docstring."""

    def __init__(self, clock: Clock = REAL_CLOCK, ttl: float = TTL) -> None:
        self._clock = clock
        self.ttl = ttl
        self._by_key: dict[str, _Expected] = {}

    def expect_creations(self, key: str, n: int) -> None:
        if n < 0:
            raise ValueError(f"cannot expect {n} creations")
        self._by_key[key] = _Expected(n, set(), self._clock.now())

    def expect_deletions(self, key: str, uids: Iterable[str]) -> None:
        self._by_key[key] = _Expected(0, set(uids), self._clock.now())

    def creation_observed(self, key: str) -> None:
        expected = self._by_key.get(key)
        if expected is not None and expected.adds > 0:
            expected.adds -= 1

    def deletion_observed(self, key: str, uid: str) -> None:
        expected = self._by_key.get(key)
        if expected is not None:
            expected.deletes.discard(uid)

    def pending(self, key: str) -> tuple[int, frozenset[str]]:
        """(creates, uids of deletes) still expected for the key, expired or not."""
        expected = self._by_key.get(key)
        if expected is None:
            return 0, frozenset()
        return expected.adds, frozenset(expected.deletes)

    def satisfied(self, key: str) -> bool:
        expected = self._by_key.get(key)
        if expected is None:
            return True
        if expected.adds <= 0 and not expected.deletes:
            return True
        return self._clock.now() - expected.at >= self.ttl

    def delete(self, key: str) -> None:
        """Forget the key (its object is gone)."""
        self._by_key.pop(key, None)
