import asyncio

import orjson
import pytest

from kubeling.apiserver.watchcache import ADDED, DELETED, MODIFIED, Expired, WatchCaches
from kubeling.storage import MemoryStore

PREFIX = "/registry/configmaps/"


def _cm(name: str, value: str = "1") -> bytes:
    return orjson.dumps({"kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}})


async def _caches(capacity: int = 100) -> tuple[MemoryStore, WatchCaches]:
    store = MemoryStore()
    await store.create(PREFIX + "default/before", _cm("before"))
    caches = WatchCaches(store, capacity)
    await caches.start()
    return store, caches


async def test_cache_loads_current_objects_with_their_resource_versions():
    _store, caches = await _caches()
    try:
        objects = caches.cache_for(PREFIX).objects
        assert objects[PREFIX + "default/before"]["metadata"]["resourceVersion"] == "1"
    finally:
        await caches.stop()


async def test_events_arrive_in_order_with_types_and_previous_state():
    store, caches = await _caches()
    try:
        cache = caches.cache_for(PREFIX)
        start = cache.start_index(caches.revision)
        kv = await store.create(PREFIX + "default/a", _cm("a"))
        kv = await store.update(
            PREFIX + "default/a", _cm("a", "2"), expected_revision=kv.mod_revision
        )
        await store.delete(PREFIX + "default/a")
        await caches.wait_for(kv.mod_revision + 1)
        events = cache.events_from(start)
        assert events is not None
        assert [e.type for e in events] == [ADDED, MODIFIED, DELETED]
        assert events[1].prev is not None and events[1].prev["data"]["v"] == "1"
        assert events[2].obj["metadata"]["resourceVersion"] == str(events[2].revision)
        assert PREFIX + "default/a" not in cache.objects
    finally:
        await caches.stop()


async def test_watch_from_before_the_kept_history_is_expired():
    store, caches = await _caches(capacity=3)
    try:
        for i in range(6):
            await store.create(PREFIX + f"default/n{i}", _cm(f"n{i}"))
        await caches.wait_for(7)
        cache = caches.cache_for(PREFIX)
        with pytest.raises(Expired):
            cache.start_index(1)
        assert cache.events_from(cache.start_index(4)) is not None
    finally:
        await caches.stop()


async def test_a_reader_overtaken_by_the_log_sees_none_and_must_relist():
    store, caches = await _caches(capacity=2)
    try:
        cache = caches.cache_for(PREFIX)
        cursor = cache.end
        for i in range(5):
            await store.create(PREFIX + f"default/m{i}", _cm(f"m{i}"))
        await caches.wait_for(6)
        assert cache.events_from(cursor) is None
    finally:
        await caches.stop()


async def test_compaction_makes_older_watches_expire():
    store, caches = await _caches()
    try:
        for i in range(4):
            await store.create(PREFIX + f"default/c{i}", _cm(f"c{i}"))
        await caches.wait_for(5)
        caches.forget_before(4)
        cache = caches.cache_for(PREFIX)
        with pytest.raises(Expired):
            cache.start_index(2)
        events = cache.events_from(cache.start_index(3))
        assert events is not None and [e.revision for e in events] == [4, 5]
    finally:
        await caches.stop()


async def test_waiters_wake_up_on_new_events():
    store, caches = await _caches()
    try:
        cache = caches.cache_for(PREFIX)
        index = cache.end
        waiter = asyncio.create_task(cache.wait_beyond(index, 10))
        await asyncio.sleep(0)
        assert not waiter.done()
        await store.create(PREFIX + "default/w", _cm("w"))
        await asyncio.wait_for(waiter, 5)
        assert cache.end == index + 1
    finally:
        await caches.stop()
