"""Helpers for the controller framework's tests: polling with a deadline (never a bare sleep)
and reconcilers that write down what they were asked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from kubeling.reconcile import Result

T = TypeVar("T")


async def eventually(
    condition: Callable[[], T], timeout: float = 10.0, message: str = "condition"
) -> T:
    """Poll `condition` on the loop until it is truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.002)


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
