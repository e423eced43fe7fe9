"""The `Store` contract (kubeling/storage/interface.py), checked once per backend.

Every test runs against each backend in `conftest.make_store`; a new backend passes this file
before anything else uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

import pytest

from kubeling.storage import (
    Compacted,
    Conflict,
    Event,
    EventType,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    MemoryStore,
    SqliteStore,
    StorageError,
    open_store,
)

AnyStore = MemoryStore | SqliteStore
MakeStore = Callable[..., Awaitable[AnyStore]]
DEADLINE = 10.0


async def collect_until(
    watch: AsyncGenerator[list[Event], None], revision: int, timeout: float = DEADLINE
) -> list[Event]:
    """Events from `watch` until one at `revision` or later arrives."""
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        while not events or events[-1].revision < revision:
            events.extend(await anext(watch))
    return events


async def next_batch(watch: AsyncGenerator[list[Event], None]) -> list[Event]:
    return await anext(watch)


async def poll(condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    """Wait, yielding to the loop, until `condition()` holds; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.001)


# -- revisions and writes -----------------------------------------------------------------


async def test_revisions_start_at_one_and_increase_by_one_per_write(store: AnyStore) -> None:
    assert await store.current_revision() == 0
    created = await store.create("/a", b"1")
    updated = await store.update("/a", b"2")
    deleted = await store.delete("/a")
    assert [created.mod_revision, updated.mod_revision, deleted.mod_revision] == [1, 2, 3]
    assert await store.current_revision() == 3


async def test_create_returns_the_value_at_its_revision(store: AnyStore) -> None:
    kv = await store.create("/registry/pods/default/web", b"pod")
    assert kv == KeyValue("/registry/pods/default/web", b"pod", 1, 1)
    assert await store.get("/registry/pods/default/web") == kv


async def test_create_of_an_existing_key_raises_key_exists_and_writes_nothing(
    store: AnyStore,
) -> None:
    await store.create("/a", b"1")
    with pytest.raises(KeyExists) as raised:
        await store.create("/a", b"2")
    assert raised.value.key == "/a"
    assert await store.current_revision() == 1
    assert (await store.get("/a")) == KeyValue("/a", b"1", 1, 1)


async def test_update_replaces_the_value_and_keeps_the_create_revision(store: AnyStore) -> None:
    await store.create("/a", b"1")
    await store.create("/b", b"1")
    updated = await store.update("/a", b"2")
    assert updated == KeyValue("/a", b"2", 1, 3)
    assert await store.get("/a") == updated


async def test_update_with_the_expected_revision_succeeds(store: AnyStore) -> None:
    created = await store.create("/a", b"1")
    updated = await store.update("/a", b"2", expected_revision=created.mod_revision)
    assert updated.value == b"2"


async def test_update_with_a_stale_revision_raises_conflict_carrying_the_current_value(
    store: AnyStore,
) -> None:
    created = await store.create("/a", b"1")
    current = await store.update("/a", b"2")
    with pytest.raises(Conflict) as raised:
        await store.update("/a", b"3", expected_revision=created.mod_revision)
    assert raised.value.key == "/a"
    assert raised.value.current == current
    assert await store.get("/a") == current


async def test_delete_with_a_stale_revision_raises_conflict(store: AnyStore) -> None:
    created = await store.create("/a", b"1")
    current = await store.update("/a", b"2")
    with pytest.raises(Conflict) as raised:
        await store.delete("/a", expected_revision=created.mod_revision)
    assert raised.value.current == current
    assert await store.get("/a") == current


async def test_update_and_delete_of_a_missing_key_raise_key_not_found(store: AnyStore) -> None:
    with pytest.raises(KeyNotFound):
        await store.update("/missing", b"1")
    with pytest.raises(KeyNotFound):
        await store.delete("/missing")
    assert await store.current_revision() == 0


async def test_delete_returns_the_last_value_at_the_delete_revision(store: AnyStore) -> None:
    await store.create("/a", b"1")
    await store.update("/a", b"2")
    deleted = await store.delete("/a", expected_revision=2)
    assert deleted == KeyValue("/a", b"2", 1, 3)


async def test_get_after_delete_returns_none_and_update_raises_key_not_found(
    store: AnyStore,
) -> None:
    await store.create("/a", b"1")
    await store.delete("/a")
    assert await store.get("/a") is None
    with pytest.raises(KeyNotFound):
        await store.update("/a", b"2")


async def test_recreate_after_delete_starts_a_new_create_revision(store: AnyStore) -> None:
    await store.create("/a", b"1")
    await store.delete("/a")
    recreated = await store.create("/a", b"again")
    assert recreated == KeyValue("/a", b"again", 3, 3)
    assert (await store.update("/a", b"more")).create_revision == 3


async def test_empty_value_is_stored_as_empty(store: AnyStore) -> None:
    await store.create("/a", b"")
    updated = await store.update("/a", b"x")
    assert (await store.list("/a", revision=1)).items[0].value == b""
    assert updated.value == b"x"


# -- list -----------------------------------------------------------------------------------


async def test_list_returns_the_keys_under_the_prefix_in_key_order(store: AnyStore) -> None:
    for key in ["/registry/pods/b", "/registry/services/a", "/registry/pods/a", "/z"]:
        await store.create(key, key.encode())
    listed = await store.list("/registry/pods/")
    assert [kv.key for kv in listed.items] == ["/registry/pods/a", "/registry/pods/b"]
    assert listed.items[0].value == b"/registry/pods/a"
    assert listed.revision == 4
    assert not listed.more
    everything = await store.list("")
    assert [kv.key for kv in everything.items] == sorted(
        ["/registry/pods/a", "/registry/pods/b", "/registry/services/a", "/z"]
    )


async def test_prefix_is_a_plain_string_prefix(store: AnyStore) -> None:
    await store.create("/registry/pods/default/web", b"")
    await store.create("/registry/podsx/default/web", b"")
    with_slash = await store.list("/registry/pods/")
    without_slash = await store.list("/registry/pods")
    assert [kv.key for kv in with_slash.items] == ["/registry/pods/default/web"]
    assert len(without_slash.items) == 2


async def test_list_skips_deleted_keys(store: AnyStore) -> None:
    await store.create("/k/a", b"")
    await store.create("/k/b", b"")
    await store.delete("/k/a")
    assert [kv.key for kv in (await store.list("/k/")).items] == ["/k/b"]


async def test_list_at_a_past_revision_returns_the_snapshot_of_then(store: AnyStore) -> None:
    await store.create("/k/a", b"a1")  # 1
    await store.create("/k/b", b"b1")  # 2
    await store.update("/k/a", b"a2")  # 3
    await store.delete("/k/b")  # 4
    await store.create("/k/c", b"c1")  # 5
    snapshots = {rev: await store.list("/k/", revision=rev) for rev in range(1, 6)}
    assert snapshots[2].items == [KeyValue("/k/a", b"a1", 1, 1), KeyValue("/k/b", b"b1", 2, 2)]
    assert snapshots[3].items == [KeyValue("/k/a", b"a2", 1, 3), KeyValue("/k/b", b"b1", 2, 2)]
    assert snapshots[4].items == [KeyValue("/k/a", b"a2", 1, 3)]
    assert [kv.key for kv in snapshots[5].items] == ["/k/a", "/k/c"]
    assert [s.revision for s in snapshots.values()] == [1, 2, 3, 4, 5]


async def test_list_pages_with_start_after_and_limit(store: AnyStore) -> None:
    for i in range(5):
        await store.create(f"/k/{i}", b"")
    first = await store.list("/k/", limit=2)
    assert [kv.key for kv in first.items] == ["/k/0", "/k/1"] and first.more
    await store.create("/k/5", b"")  # the next pages read the first page's snapshot
    second = await store.list("/k/", revision=first.revision, start_after="/k/1", limit=2)
    assert [kv.key for kv in second.items] == ["/k/2", "/k/3"] and second.more
    last = await store.list("/k/", revision=first.revision, start_after="/k/3", limit=2)
    assert [kv.key for kv in last.items] == ["/k/4"] and not last.more
    exact = await store.list("/k/", limit=6)
    assert len(exact.items) == 6 and not exact.more


async def test_list_at_a_future_revision_raises_future_revision(store: AnyStore) -> None:
    await store.create("/a", b"")
    with pytest.raises(FutureRevision) as raised:
        await store.list("/", revision=2)
    assert (raised.value.requested, raised.value.current) == (2, 1)


async def test_list_at_a_compacted_revision_raises_compacted(store: AnyStore) -> None:
    for i in range(4):
        await store.create(f"/k/{i}", b"")
    await store.compact(3)
    with pytest.raises(Compacted) as raised:
        await store.list("/k/", revision=2)
    assert (raised.value.requested, raised.value.compacted) == (2, 3)
    assert [kv.key for kv in (await store.list("/k/", revision=3)).items] == [
        "/k/0",
        "/k/1",
        "/k/2",
    ]


# -- compaction -----------------------------------------------------------------------------


async def test_compaction_keeps_the_latest_value_of_every_key(store: AnyStore) -> None:
    await store.create("/k/a", b"a1")
    await store.create("/k/b", b"b1")
    await store.create("/k/c", b"c1")
    await store.update("/k/a", b"a2")
    await store.delete("/k/b")
    before = await store.list("/k/")
    await store.compact(before.revision)
    assert await store.compacted_revision() == before.revision
    assert await store.current_revision() == before.revision
    assert (await store.list("/k/")).items == before.items
    assert await store.get("/k/a") == KeyValue("/k/a", b"a2", 1, 4)
    assert await store.get("/k/b") is None
    assert (await store.create("/k/b", b"b2")).mod_revision == before.revision + 1


async def test_compaction_to_an_older_revision_changes_nothing(store: AnyStore) -> None:
    for i in range(3):
        await store.create(f"/k/{i}", b"")
    await store.compact(3)
    await store.compact(2)
    assert await store.compacted_revision() == 3


async def test_compaction_to_a_future_revision_raises_future_revision(store: AnyStore) -> None:
    await store.create("/a", b"")
    with pytest.raises(FutureRevision):
        await store.compact(2)
    assert await store.compacted_revision() == 0


async def test_random_writes_and_compactions_keep_every_readable_snapshot(
    store: AnyStore,
) -> None:
    rng = random.Random(7)
    model: dict[str, KeyValue] = {}
    snapshots: dict[int, dict[str, KeyValue]] = {0: {}}
    events: list[Event] = []
    for step in range(1, 601):
        key = f"/k/{rng.randrange(8)}"
        current = model.get(key)
        if current is None:
            kv = await store.create(key, str(step).encode())
            events.append(Event(EventType.CREATE, kv, None))
            model[key] = kv
        elif rng.random() < 0.3:
            kv = await store.delete(key)
            events.append(Event(EventType.DELETE, kv, current))
            del model[key]
        else:
            kv = await store.update(key, str(step).encode(), expected_revision=current.mod_revision)
            events.append(Event(EventType.UPDATE, kv, current))
            model[key] = kv
        snapshots[kv.mod_revision] = dict(model)
        if step % 150 == 0:
            await store.compact(rng.randrange(await store.compacted_revision(), kv.mod_revision))
    compacted = await store.compacted_revision()
    assert compacted > 0
    for revision in range(compacted, len(events) + 1):
        expected = [snapshots[revision][k] for k in sorted(snapshots[revision])]
        assert (await store.list("/k/", revision=revision)).items == expected
    async with contextlib.aclosing(store.watch("/k/", compacted - 1)) as watch:
        assert await collect_until(watch, len(events)) == events[compacted - 1 :]


# -- watch ----------------------------------------------------------------------------------


async def test_watch_replays_history_then_continues_live(store: AnyStore) -> None:
    await store.create("/k/a", b"1")
    await store.update("/k/a", b"2")
    async with contextlib.aclosing(store.watch("/k/", 0)) as watch:
        history = await collect_until(watch, 2)
        await store.delete("/k/a")
        live = await collect_until(watch, 3)
    assert [e.revision for e in history] == [1, 2]
    assert [e.revision for e in live] == [3]


async def test_watch_events_carry_the_value_and_the_previous_value(store: AnyStore) -> None:
    async with contextlib.aclosing(store.watch("/k/", 0)) as watch:
        await store.create("/k/a", b"1")
        await store.update("/k/a", b"2")
        await store.delete("/k/a")
        events = await collect_until(watch, 3)
    v1, v2 = KeyValue("/k/a", b"1", 1, 1), KeyValue("/k/a", b"2", 1, 2)
    assert events == [
        Event(EventType.CREATE, v1, None),
        Event(EventType.UPDATE, v2, v1),
        Event(EventType.DELETE, KeyValue("/k/a", b"2", 1, 3), v2),
    ]
    async with contextlib.aclosing(store.watch("/k/", 0)) as replay:
        assert await collect_until(replay, 3) == events


async def test_watch_sees_only_keys_under_its_prefix(store: AnyStore) -> None:
    await store.create("/registry/pods/a", b"")
    await store.create("/registry/podsx/a", b"")
    async with contextlib.aclosing(store.watch("/registry/pods/", 0)) as watch:
        await store.create("/registry/services/a", b"")
        await store.update("/registry/pods/a", b"1")
        events = await collect_until(watch, 4)
    assert [(e.kv.key, e.revision) for e in events] == [
        ("/registry/pods/a", 1),
        ("/registry/pods/a", 4),
    ]


async def test_watch_started_during_writes_has_no_gap_and_no_duplicate(store: AnyStore) -> None:
    writers, writes_each = 10, 40
    for w in range(writers):
        await store.create(f"/k/{w}", b"0")
    start = await store.current_revision()
    final = start + writers * writes_each
    written = 0
    a_quarter_written = asyncio.Event()

    async def write(w: int) -> None:
        nonlocal written
        for n in range(writes_each):
            await store.update(f"/k/{w}", str(n).encode())
            written += 1
            if written == writers * writes_each // 4:
                a_quarter_written.set()
            await asyncio.sleep(0)  # lets the memory backend's writers interleave too

    tasks = [asyncio.create_task(write(w)) for w in range(writers)]
    try:
        await a_quarter_written.wait()
        async with contextlib.aclosing(store.watch("/k/", start)) as watch:
            events = await collect_until(watch, final)
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    assert [e.revision for e in events] == list(range(start + 1, final + 1))


async def test_a_write_committed_but_not_yet_published_is_delivered_once(store: AnyStore) -> None:
    await store.create("/k/a", b"")
    writing = asyncio.create_task(store.create("/k/b", b""))
    await asyncio.sleep(0)  # the create has been submitted
    # Wait for it without yielding to the loop: SQLite has then committed it but cannot have
    # published it yet (that callback runs on the loop), so the watch's history read sees it
    # and its live listener receives it again, which must not show as a duplicate.
    deadline = time.monotonic() + DEADLINE
    while await store.current_revision() < 2:
        assert time.monotonic() < deadline, "the write was not committed before the deadline"
    async with contextlib.aclosing(store.watch("/k/", 0)) as watch:
        history = await anext(watch)
        await writing
        await store.update("/k/a", b"1")
        live = await collect_until(watch, 3)
    assert [e.revision for e in history] == [1, 2]
    assert [e.revision for e in live] == [3]


async def test_watch_from_a_future_revision_raises_future_revision(store: AnyStore) -> None:
    await store.create("/a", b"")
    with pytest.raises(FutureRevision) as raised:
        await anext(store.watch("/", 2))
    assert (raised.value.requested, raised.value.current) == (2, 1)


async def test_watch_from_before_the_compacted_revision_raises_compacted(store: AnyStore) -> None:
    await store.create("/k/a", b"1")  # 1
    await store.update("/k/a", b"2")  # 2
    await store.update("/k/a", b"3")  # 3
    await store.create("/k/b", b"1")  # 4
    await store.compact(3)
    with pytest.raises(Compacted) as raised:
        await anext(store.watch("/k/", 1))
    assert (raised.value.requested, raised.value.compacted) == (1, 3)
    async with contextlib.aclosing(store.watch("/k/", 2)) as watch:
        events = await collect_until(watch, 4)
    assert [(e.type, e.revision) for e in events] == [(EventType.UPDATE, 3), (EventType.CREATE, 4)]
    assert events[0].prev == KeyValue("/k/a", b"2", 1, 2)


async def test_compaction_of_a_deleted_key_keeps_later_history(store: AnyStore) -> None:
    await store.create("/k/x", b"")  # 1
    await store.delete("/k/x")  # 2
    await store.create("/k/y", b"")  # 3
    await store.compact(3)
    assert [kv.key for kv in (await store.list("/k/", revision=3)).items] == ["/k/y"]
    async with contextlib.aclosing(store.watch("/k/", 2)) as watch:
        await store.create("/k/x", b"again")  # 4
        events = await collect_until(watch, 4)
    assert [(e.kv.key, e.kv.create_revision) for e in events] == [("/k/y", 3), ("/k/x", 4)]


async def test_a_watcher_too_slow_for_its_buffer_ends_with_compacted(
    make_store: MakeStore,
) -> None:
    store = await make_store(watch_buffer=10)
    watch = store.watch("/k/", 0)
    first = asyncio.create_task(next_batch(watch))
    await store.create("/k/first", b"")
    assert [e.revision for e in await first] == [1]
    for i in range(11):
        await store.create(f"/k/{i}", b"")
    with pytest.raises(Compacted) as raised:
        await collect_until(watch, 12)
    assert (raised.value.requested, raised.value.compacted) == (2, 3)


async def test_closing_a_watch_unregisters_it(store: AnyStore) -> None:
    watch = store.watch("/k/", 0)
    pending = asyncio.create_task(next_batch(watch))
    await poll(lambda: store.watch_count == 1)
    await store.create("/k/a", b"")
    await pending
    await watch.aclose()
    assert store.watch_count == 0


async def test_leaving_a_watch_loop_unregisters_it(store: AnyStore) -> None:
    await store.create("/k/a", b"")

    async def first_batch() -> list[Event]:
        async for batch in store.watch("/k/", 0):
            return batch
        raise AssertionError("the watch ended")

    assert len(await first_batch()) == 1
    gc.collect()
    await poll(lambda: store.watch_count == 0)


async def test_cancelling_the_task_iterating_a_watch_unregisters_it(store: AnyStore) -> None:
    async def consume() -> None:
        async for _ in store.watch("/k/", 0):
            pass

    task = asyncio.create_task(consume())
    await poll(lambda: store.watch_count == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.watch_count == 0


async def test_closing_the_store_ends_open_watches(make_store: MakeStore) -> None:
    store = await make_store()
    await store.create("/k/a", b"")
    watch = store.watch("/k/", 0)
    assert len(await anext(watch)) == 1
    pending = asyncio.create_task(next_batch(watch))
    await poll(lambda: store.watch_count == 1)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, DEADLINE)


# -- opening a store by URL -----------------------------------------------------------------


async def test_open_store_serves_memory_and_sqlite_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = await open_store("memory://")
    absolute = await open_store(f"sqlite://{tmp_path}/abs/state.db")
    monkeypatch.chdir(tmp_path)
    relative = await open_store("sqlite://rel/state.db")
    try:
        assert isinstance(memory, MemoryStore)
        assert isinstance(absolute, SqliteStore) and isinstance(relative, SqliteStore)
        assert (tmp_path / "abs" / "state.db").is_file()
        assert (tmp_path / "rel" / "state.db").is_file()
    finally:
        for store in (memory, absolute, relative):
            await store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("etcd://127.0.0.1:2379", "not supported yet"),
        ("postgres://db/kube", "unknown scheme"),
        ("state.db", "not a URL"),
        ("sqlite://", "names no file"),
    ],
)
async def test_open_store_rejects_urls_it_cannot_serve(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await open_store(url)


async def test_opening_an_unusable_sqlite_path_raises_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageError, match="cannot open the SQLite store"):
        await SqliteStore.open(tmp_path / "file" / "state.db")
