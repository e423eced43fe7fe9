"""One asyncio lock per key, created on demand and dropped when nobody holds or awaits it.

The API server serialises read-modify-write cycles on the same object with it: concurrent
patches then queue instead of racing each other through compare-and-swap retries, which under
load could exhaust any retry budget. The store's CAS still guards against other processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class KeyedLock:
    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """Keys currently held or awaited (for tests and metrics)."""
        return len(self._locks)
