"""What a reconcile returns (STYLE.md § 2): three outcomes, and only three.

* `Result()` — done: the key's failure history is forgotten.
* `Result(requeue_after=s)` — done for now, look again after `s` seconds (on the queue's
  clock), e.g. to poll an external condition or a deadline. There is no `requeue: bool`:
  a reconcile that wants another go soon says when.
* raising an exception — failed: retried with the queue's per-key exponential back-off.
  Raising `TerminalError` instead says "retrying cannot help" (invalid spec, ...): the key
  is logged and forgotten, and only a new event for it brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Result:
    """A successful reconcile; `requeue_after` seconds > 0 asks to run again after that."""

    requeue_after: float | None = None

    def __post_init__(self) -> None:
        if self.requeue_after is not None and self.requeue_after < 0:
            raise ValueError(f"requeue_after must not be negative ({self.requeue_after})")


class TerminalError(Exception):
    """A failure that retrying cannot fix: logged, forgotten, not retried."""
