"""Fixtures that run every conformance test once per backend.

`make_store(**options)` opens a fresh store of the backend under test (options such as
`watch_buffer` go to its constructor); `store` is one made with the defaults. Every store a
test opens is closed after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kubeling.storage import MemoryStore, SqliteStore

AnyStore = MemoryStore | SqliteStore
MakeStore = Callable[..., Awaitable[AnyStore]]


@pytest.fixture(params=["memory", "sqlite"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    opened: list[AnyStore] = []

    async def make(**options: Any) -> AnyStore:
        store: AnyStore
        if request.param == "memory":
            store = MemoryStore(**options)
        else:
            store = await SqliteStore.open(tmp_path / f"store{len(opened)}" / "state.db", **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> AnyStore:
    return await make_store()
