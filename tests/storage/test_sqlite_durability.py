"""What `SqliteStore` keeps across a restart, and across a `kill -9` in the middle of writing.

The contract says a write is durable once its coroutine returns; the kill test checks exactly
that: a child process prints each key only after `create` returned, the test kills it at an
arbitrary moment, and every printed key must be in the reopened file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

from kubeling.storage import EventType, KeyValue, SqliteStore

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 30.0

CHILD = """
import asyncio, sys
from kubeling.storage import SqliteStore

async def main(path):
    store = await SqliteStore.open(path)

    async def write(worker):
        for n in range(1_000_000):
            key = f"/k/{worker}/{n}"
            await store.create(key, b"x" * 3000)
            print(key, flush=True)

    await asyncio.gather(*(write(w) for w in range(8)))

asyncio.run(main(sys.argv[1]))
"""


async def test_reopening_keeps_every_key_and_revisions_keep_increasing(tmp_path: Path) -> None:
    path = tmp_path / "data" / "state.db"
    store = await SqliteStore.open(path)
    for i in range(10):
        await store.create(f"/k/{i}", str(i).encode())
    await store.update("/k/3", b"three")
    await store.delete("/k/7")
    before = await store.list("/k/")
    await store.close()

    reopened = await SqliteStore.open(path)
    try:
        assert await reopened.list("/k/") == before
        assert await reopened.current_revision() == 12
        assert (await reopened.create("/k/7", b"again")) == KeyValue("/k/7", b"again", 13, 13)
    finally:
        await reopened.close()


async def test_history_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await SqliteStore.open(path)
    await store.create("/k/a", b"1")
    await store.update("/k/a", b"2")
    await store.delete("/k/a")
    await store.close()

    reopened = await SqliteStore.open(path)
    try:
        async with contextlib.aclosing(reopened.watch("/k/", 0)) as watch:
            events = await anext(watch)
        assert [e.type for e in events] == [EventType.CREATE, EventType.UPDATE, EventType.DELETE]
        assert events[-1].prev == KeyValue("/k/a", b"2", 1, 2)
    finally:
        await reopened.close()


async def test_compacted_revision_and_revision_counter_survive_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await SqliteStore.open(path)
    for i in range(3):
        await store.create(f"/k/{i}", b"")
        await store.delete(f"/k/{i}")
    await store.compact(6)
    await store.close()

    reopened = await SqliteStore.open(path)
    try:
        assert await reopened.compacted_revision() == 6
        assert await reopened.current_revision() == 6
        assert (await reopened.list("/k/")).items == []
        assert (await reopened.create("/k/0", b"")).mod_revision == 7
    finally:
        await reopened.close()


async def test_every_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    wanted = 300
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        async with asyncio.timeout(DEADLINE):
            while len(acknowledged) < wanted:
                line = await child.stdout.readline()
                if not line:
                    assert child.stderr is not None
                    errors = (await child.stderr.read()).decode()
                    raise AssertionError(f"the writer exited early:\n{errors}")
                acknowledged.append(line.decode().strip())
    finally:
        if child.returncode is None:
            child.kill()
        await child.communicate()
    assert child.returncode == -9

    store = await SqliteStore.open(path)
    try:
        stored = {kv.key: kv for kv in (await store.list("/k/")).items}
        missing = [key for key in acknowledged if key not in stored]
        assert not missing, f"{len(missing)} acknowledged writes were lost: {missing[:5]}"
        revision = await store.current_revision()
        assert revision >= max(kv.mod_revision for kv in stored.values())
        assert (await store.create("/after", b"")).mod_revision == revision + 1
    finally:
        await store.close()
