"""Helpers for the controller framework's tests: polling with a deadline (never a bare sleep)
and reconcilers that write down what they were asked."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from kubeling.reconcile import Result

T = TypeVar("T")


async def settle(rounds: int = 50) -> None:
    """Let every ready task on the loop run a few times (no wall-clock wait)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class Recording:
    """A reconciler that records each key, then returns `result` or raises `error`."""

    def __init__(self, result: Result | None = None, error: BaseException | None = None) -> None:
        self.keys: list[str] = []
        self.result = result or Result()
        self.error = error

    async def reconcile(self, key: str) -> Result:
        self.keys.append(key)
        if self.error is not None:
            raise self.error
        return self.result
