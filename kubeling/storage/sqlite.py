"""`SqliteStore`: the embedded default backend, kine's shape on the stdlib `sqlite3` module.

**One append-only table is the whole history.** Every write appends a row whose AUTOINCREMENT
`id` is the revision, so revisions are contiguous and never reused, also across restarts and
whatever compaction removed (`sqlite_sequence` remembers the highest id ever used). A key's
current value is its row with the highest id; a delete appends a tombstone. The row shapes:

    write   created deleted create_revision  prev_revision        value       old_value
    create     1       0    its own id       0 or last tombstone  new value   NULL
    update     0       0    of the create    id of replaced row   new value   replaced value
    delete     0       1    of the create    id of deleted row    last value  NULL

Each row holds everything its event needs (`old_value` is the `prev` of an update), so a watch
replays history with one range scan and no joins, and compaction may remove any older row.
`UNIQUE(name, prev_revision)` makes a lost compare-and-swap impossible even if the checks
in Python were wrong.

**Writes: one writer thread, group commit.** SQLite allows one writer at a time and a commit
costs an fsync (WAL, `synchronous=FULL`), so all writes go through a queue to one thread that
runs every write waiting in the queue in one transaction. A write's coroutine returns only
after COMMIT (the contract's durability); the thread resolves the futures on the event loop
with `call_soon_threadsafe`. The stack study measured 23k creates/s for this shape, against 6k
for a transaction per create and 2.5k through aiosqlite. A write refused on purpose
(`KeyExists`, `Conflict`, ...) fails alone; any other error rolls the transaction back and fails
every write in it with `StorageError`.

**Reads run on the event loop thread**, on a second connection: a point read costs 4-15 µs,
less than the ~60 µs of a hop to a thread and back. WAL lets them run while the writer
commits. A list reads its revision and its rows in one read transaction, so it is a snapshot.

**Watch.** This process is the only writer, so live events are published in-process by the
writer's completion callback, never polled. A watch (an async generator; close it with
`aclose()` or by leaving `async with contextlib.aclosing(...)`, or cancel the task iterating it)
registers its listener *first*, then replays history rows with id > `after` from the table in
pages, then serves the listener's buffer, dropping what the history already delivered: a
commit either is visible to the history read or publishes after the listener exists, so there
is no gap, and de-duplication by revision leaves no duplicate. The buffer is bounded
(`watch_buffer` events): a watcher that falls that far behind loses its buffer and its iterator
raises `Compacted(requested=r, compacted=r + 1)`, `r` being the next revision it needed, so
the consumer relists. A slow consumer is dropped, never the server.

**Compaction** to revision `r` deletes every row older than `r` that a later row of the same key
with id <= `r` supersedes, and every tombstone older than `r` (with its history, superseded by
it): the snapshot at `r` and every event after it stay readable. A row names the row it
supersedes in `prev_revision`, so a compaction only reads the rows written since the previous
one; it runs in steps of 1 000 revisions, each its own transaction, so that a large compaction
never holds up other writes for long. The compacted revision is kept in `kine_meta` at every
step, so it survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from os import PathLike
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from kubeling.storage.interface import (
    Compacted,
    Conflict,
    Event,
    EventType,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListResult,
    StorageError,
)

DEFAULT_WATCH_BUFFER = 10_000
_MAX_BATCH = 1_000  # writes per transaction; bounds the latency a burst adds to one commit
_HISTORY_PAGE = 1_000  # history rows a watch reads (and yields) at a time
_COMPACT_STEP = 1_000  # revisions compacted per transaction
_BUSY_TIMEOUT_MS = 5_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS kine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL,
    old_value BLOB
);
CREATE INDEX IF NOT EXISTS kine_name_id ON kine (name, id);
CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision ON kine (name, prev_revision);
CREATE TABLE IF NOT EXISTS kine_meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

SELECT_LATEST = """
SELECT id, create_revision, deleted, value FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1
"""

SELECT_CURRENT_REVISION = """
SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'kine'), 0)
"""

SELECT_COMPACTED_REVISION = """
SELECT COALESCE((SELECT value FROM kine_meta WHERE name = 'compacted'), 0)
"""

# The key range is [prefix, end): `end` is the prefix with its last character incremented, or
# a BLOB for the empty prefix, which sorts after every TEXT value in SQLite. With MAX(), SQLite
# takes the bare columns from the row holding the maximum (sqlite.org/lang_select.html#bareagg),
# so this is each key's newest row at `revision`; it streams in key order straight off the
# (name, id) index, with no sort, and stops at `limit`.
SELECT_RANGE_AT_REVISION = """
SELECT name, value, create_revision, MAX(id)
FROM kine
WHERE name >= :start AND name < :end AND name > :after AND id <= :revision
GROUP BY name
HAVING deleted = 0
ORDER BY name
LIMIT :limit
"""

SELECT_HISTORY = """
SELECT id, name, created, deleted, create_revision, prev_revision, value, old_value
FROM kine
WHERE id > :after AND name >= :start AND name < :end
ORDER BY id
LIMIT :limit
"""

# The create's own id is the next AUTOINCREMENT value: the writer thread is the only writer,
# and ids are only ever assigned by AUTOINCREMENT, so it is the sequence plus one.
INSERT_CREATE = """
INSERT INTO kine (name, created, deleted, create_revision, prev_revision, value, old_value)
VALUES (
    :name, 1, 0,
    (SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'kine'), 0) + 1),
    :prev_revision, :value, NULL
)
"""

INSERT_UPDATE = """
INSERT INTO kine (name, created, deleted, create_revision, prev_revision, value, old_value)
VALUES (:name, 0, 0, :create_revision, :prev_revision, :value, :old_value)
"""

INSERT_TOMBSTONE = """
INSERT INTO kine (name, created, deleted, create_revision, prev_revision, value, old_value)
VALUES (:name, 0, 1, :create_revision, :prev_revision, :value, NULL)
"""

# Compaction from `compacted` to `revision`. Every row names the row it replaced in
# prev_revision (0 for the first create of a key), so the rows that a row written in the window
# (compacted, revision] superseded are exactly those named by its prev_revision; rows superseded
# by earlier writes went in earlier compactions. Tombstones in [compacted, revision) go too.
DELETE_SUPERSEDED = """
DELETE FROM kine
WHERE id IN (SELECT prev_revision FROM kine WHERE id > :compacted AND id <= :revision)
"""

DELETE_TOMBSTONES = """
DELETE FROM kine WHERE deleted = 1 AND id >= :compacted AND id < :revision
"""

UPSERT_COMPACTED_REVISION = """
INSERT INTO kine_meta (name, value) VALUES ('compacted', :revision)
ON CONFLICT (name) DO UPDATE SET value = excluded.value
"""

T = TypeVar("T")
_Applied = tuple[T, Event | None]  # a write's result and the event it produced, if any
_Outcome = _Applied[Any] | BaseException
_Events = list[Event]  # spelled out here: inside the class, `list` is the method


@dataclass(slots=True)
class _Write(Generic[T]):
    """One queued write: what to run in the writer thread and whom to tell."""

    apply: Callable[[sqlite3.Connection], _Applied[T]]
    future: asyncio.Future[T]


@dataclass(eq=False, slots=True)
class _Listener:
    """The bounded live buffer of one watch, filled on the loop by `SqliteStore._complete`."""

    prefix: str
    capacity: int
    events: deque[Event] = field(default_factory=deque)
    overflowed: bool = False
    closed: bool = False
    wakeup: asyncio.Future[None] | None = None

    def push(self, batch: list[Event]) -> None:
        matching = [e for e in batch if e.kv.key.startswith(self.prefix)]
        if not matching or self.overflowed:
            return
        self.events.extend(matching)
        if len(self.events) > self.capacity:
            self.events.clear()
            self.overflowed = True
        self.wake()

    def wake(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def discard_through(self, revision: int) -> None:
        """Drop buffered events the history replay already delivered."""
        while self.events and self.events[0].revision <= revision:
            self.events.popleft()

    async def next_batch(self, position: int) -> list[Event] | None:
        """Buffered events after `position`, waiting for some; None once the store closed."""
        while True:
            if self.overflowed:
                raise Compacted(position + 1, position + 2)
            self.discard_through(position)
            if self.events:
                batch = list(self.events)
                self.events.clear()
                return batch
            if self.closed:
                return None
            self.wakeup = asyncio.get_running_loop().create_future()
            await self.wakeup


class SqliteStore:
    """`Store` on one SQLite file; create it with `await SqliteStore.open(path)`.

    `watch_buffer` is how many undelivered events a live watch may hold before it is ended
    with `Compacted`.
    """

    def __init__(
        self,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        watch_buffer: int,
    ) -> None:
        self._reader = reader
        self._loop = loop
        self._watch_buffer = watch_buffer
        self._listeners: set[_Listener] = set()
        self._queue: queue.SimpleQueue[_Write[Any] | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run_writer, args=(writer,), name="kubeling-sqlite-writer", daemon=True
        )
        self._thread.start()

    @classmethod
    async def open(
        cls, path: str | PathLike[str], *, watch_buffer: int = DEFAULT_WATCH_BUFFER
    ) -> SqliteStore:
        """Open (creating the file, its directory and the schema if needed) the store at `path`."""
        if watch_buffer < 1:
            raise ValueError(f"watch_buffer must be positive, not {watch_buffer}")
        file = Path(path)
        writer: sqlite3.Connection | None = None
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            writer = _connect(file, check_same_thread=False)  # handed to the writer thread
            writer.execute("PRAGMA journal_mode = WAL")
            writer.execute("PRAGMA synchronous = FULL")
            writer.executescript(SCHEMA)
            reader = _connect(file, check_same_thread=True)
        except (OSError, sqlite3.Error) as error:
            if writer is not None:
                writer.close()
            raise StorageError(f"cannot open the SQLite store {str(file)!r}: {error}") from error
        return cls(writer, reader, asyncio.get_running_loop(), watch_buffer)

    # -- reads (on the loop thread) -------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        self._check_open()
        rows = self._reader.execute(SELECT_LATEST, (key,)).fetchall()
        if not rows or rows[0][2]:
            return None
        revision, create_revision, _, value = rows[0]
        return KeyValue(key, value, create_revision, revision)

    async def list(
        self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0
    ) -> ListResult:
        self._check_open()
        if revision < 0 or limit < 0:
            raise ValueError(f"revision and limit must not be negative ({revision}, {limit})")
        with self._read_transaction() as (current, compacted):
            at = revision or current
            if at > current:
                raise FutureRevision(at, current)
            if at < compacted:
                raise Compacted(at, compacted)
            params = {
                "start": prefix,
                "end": _prefix_end(prefix),
                "after": start_after,
                "revision": at,
                "limit": limit + 1 if limit else -1,
            }
            rows = self._reader.execute(SELECT_RANGE_AT_REVISION, params).fetchall()
        more = bool(limit) and len(rows) > limit
        items = [
            KeyValue(name, value, create, mod) for name, value, create, mod in rows[: limit or None]
        ]
        return ListResult(items, at, more)

    async def current_revision(self) -> int:
        self._check_open()
        return int(self._reader.execute(SELECT_CURRENT_REVISION).fetchall()[0][0])

    async def compacted_revision(self) -> int:
        self._check_open()
        return int(self._reader.execute(SELECT_COMPACTED_REVISION).fetchall()[0][0])

    @contextlib.contextmanager
    def _read_transaction(self) -> Iterator[tuple[int, int]]:
        """A read snapshot; yields (current revision, compacted revision) as of the snapshot."""
        self._reader.execute("BEGIN")
        try:
            current = self._reader.execute(SELECT_CURRENT_REVISION).fetchall()[0][0]
            compacted = self._reader.execute(SELECT_COMPACTED_REVISION).fetchall()[0][0]
            yield current, compacted
        finally:
            self._reader.execute("COMMIT")

    # -- writes (queued to the writer thread) ---------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit(partial(_apply_create, key, value))

    async def update(self, key: str, value: bytes, *, expected_revision: int = 0) -> KeyValue:
        return await self._submit(partial(_apply_update, key, value, expected_revision))

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        return await self._submit(partial(_apply_delete, key, expected_revision))

    async def compact(self, revision: int) -> None:
        """Compact in steps of `_COMPACT_STEP` revisions, one transaction each, so that other
        writes go on in between; the compacted revision advances (and is kept) step by step."""
        while await self._submit(partial(_apply_compact_step, revision)) < revision:
            pass

    async def _submit(self, apply: Callable[[sqlite3.Connection], _Applied[T]]) -> T:
        self._check_open()
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Write(apply, future))
        return await future

    def _run_writer(self, conn: sqlite3.Connection) -> None:
        """The writer thread: take every queued write, run them in one transaction, report."""
        try:
            while (first := self._queue.get()) is not None:
                batch: list[_Write[Any]] = [first]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        write = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if write is None:
                        stop = True
                        break
                    batch.append(write)
                outcomes = _apply_batch(conn, batch)
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
                    self._loop.call_soon_threadsafe(self._complete, batch, outcomes)
                if stop:
                    return
        finally:
            conn.close()

    def _complete(self, batch: Sequence[_Write[Any]], outcomes: Sequence[_Outcome]) -> None:
        """On the loop: resolve each write's future, then publish the batch's events."""
        events: list[Event] = []
        for write, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not write.future.done():
                    write.future.set_exception(outcome)
                continue
            result, event = outcome
            if event is not None:
                events.append(event)
            if not write.future.done():  # a cancelled caller's write still happened
                write.future.set_result(result)
        if events:
            for listener in list(self._listeners):
                listener.push(events)
                if listener.overflowed:
                    self._listeners.discard(listener)

    # -- watch ----------------------------------------------------------------------------

    @property
    def watch_count(self) -> int:
        """How many watches are open (iterated at least once and not yet closed)."""
        return len(self._listeners)

    async def watch(self, prefix: str, after: int) -> AsyncGenerator[_Events, None]:
        self._check_open()
        if after < 0:
            raise ValueError(f"watch revision must not be negative ({after})")
        listener = _Listener(prefix, self._watch_buffer)
        self._listeners.add(listener)  # before the history read: see the module docstring
        try:
            position = after  # every matching event up to here has been delivered
            while not self._closed:
                history = self._read_history(prefix, position, first=position == after)
                if history:
                    position = history[-1].revision
                    listener.discard_through(position)
                    yield history
                if len(history) < _HISTORY_PAGE:
                    break
            while (live := await listener.next_batch(position)) is not None:
                position = live[-1].revision
                yield live
        finally:
            self._listeners.discard(listener)

    def _read_history(self, prefix: str, position: int, *, first: bool) -> _Events:
        with self._read_transaction() as (current, compacted):
            if first and position > current:
                raise FutureRevision(position, current)
            if position + 1 < compacted:
                raise Compacted(position, compacted)
            params = {
                "after": position,
                "start": prefix,
                "end": _prefix_end(prefix),
                "limit": _HISTORY_PAGE,
            }
            rows = self._reader.execute(SELECT_HISTORY, params).fetchall()
        return [_event_from_row(row) for row in rows]

    # -- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Finish the queued writes, stop the writer, end every open watch."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        for listener in self._listeners:
            listener.closed = True
            listener.wake()
        self._listeners.clear()
        self._reader.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the store is closed")


def _connect(file: Path, *, check_same_thread: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(file, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn


def _prefix_end(prefix: str) -> str | bytes:
    """The smallest string greater than every string starting with `prefix`."""
    stripped = prefix.rstrip(chr(0x10FFFF))
    if not stripped:
        return b"\xff"
    return stripped[:-1] + chr(ord(stripped[-1]) + 1)


def _event_from_row(row: tuple[Any, ...]) -> Event:
    """The event of one SELECT_HISTORY row (see the row shapes in the module docstring)."""
    revision, name, created, deleted, create_revision, prev_revision, value, old_value = row
    kv = KeyValue(name, value, create_revision, revision)
    if created:
        return Event(EventType.CREATE, kv, None)
    if deleted:
        return Event(EventType.DELETE, kv, KeyValue(name, value, create_revision, prev_revision))
    prev = KeyValue(name, old_value or b"", create_revision, prev_revision)
    return Event(EventType.UPDATE, kv, prev)


def _apply_batch(conn: sqlite3.Connection, batch: list[_Write[Any]]) -> list[_Outcome]:
    """Run `batch` in one transaction; a refused write fails alone, any other error fails all."""
    outcomes: list[_Outcome] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for write in batch:
            try:
                outcomes.append(write.apply(conn))
            except StorageError as refused:  # checked before any row was written
                outcomes.append(refused)
        conn.execute("COMMIT")
    except Exception as failure:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        return [_failed(failure) for _ in batch]
    return outcomes


def _failed(failure: Exception) -> StorageError:
    error = StorageError(f"write transaction failed: {failure!r}")
    error.__cause__ = failure
    return error


def _latest(conn: sqlite3.Connection, key: str) -> tuple[int, int, int, bytes] | None:
    """(id, create_revision, deleted, value) of the newest row of `key`, or None."""
    rows = conn.execute(SELECT_LATEST, (key,)).fetchall()
    return rows[0] if rows else None


def _live(conn: sqlite3.Connection, key: str, expected_revision: int) -> KeyValue:
    """The current value of `key` for an update or delete that expects `expected_revision`."""
    latest = _latest(conn, key)
    if latest is None or latest[2]:
        raise KeyNotFound(key)
    revision, create_revision, _, value = latest
    current = KeyValue(key, value, create_revision, revision)
    if expected_revision and revision != expected_revision:
        raise Conflict(key, current)
    return current


def _insert(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> int:
    """Run one of the INSERT constants; returns the new row's id, its revision."""
    # sqlite3 sets lastrowid after every successful INSERT (`RETURNING id` costs ~12 µs more).
    return cast(int, conn.execute(sql, params).lastrowid)


def _apply_create(key: str, value: bytes, conn: sqlite3.Connection) -> _Applied[KeyValue]:
    latest = _latest(conn, key)
    if latest is not None and not latest[2]:
        raise KeyExists(key)
    params = {"name": key, "prev_revision": latest[0] if latest else 0, "value": value}
    revision = _insert(conn, INSERT_CREATE, params)
    kv = KeyValue(key, value, revision, revision)
    return kv, Event(EventType.CREATE, kv, None)


def _apply_update(
    key: str, value: bytes, expected_revision: int, conn: sqlite3.Connection
) -> _Applied[KeyValue]:
    current = _live(conn, key, expected_revision)
    params = {
        "name": key,
        "create_revision": current.create_revision,
        "prev_revision": current.mod_revision,
        "value": value,
        "old_value": current.value,
    }
    revision = _insert(conn, INSERT_UPDATE, params)
    kv = KeyValue(key, value, current.create_revision, revision)
    return kv, Event(EventType.UPDATE, kv, current)


def _apply_delete(key: str, expected_revision: int, conn: sqlite3.Connection) -> _Applied[KeyValue]:
    current = _live(conn, key, expected_revision)
    params = {
        "name": key,
        "create_revision": current.create_revision,
        "prev_revision": current.mod_revision,
        "value": current.value,
    }
    revision = _insert(conn, INSERT_TOMBSTONE, params)
    kv = KeyValue(key, current.value, current.create_revision, revision)
    return kv, Event(EventType.DELETE, kv, current)


def _apply_compact_step(revision: int, conn: sqlite3.Connection) -> _Applied[int]:
    """Compact up to `revision`, by at most `_COMPACT_STEP`; returns the compacted revision."""
    current = conn.execute(SELECT_CURRENT_REVISION).fetchall()[0][0]
    if revision > current:
        raise FutureRevision(revision, current)
    compacted = conn.execute(SELECT_COMPACTED_REVISION).fetchall()[0][0]
    step = min(revision, compacted + _COMPACT_STEP)
    if step > compacted:
        window = {"compacted": compacted, "revision": step}
        conn.execute(DELETE_SUPERSEDED, window)
        conn.execute(DELETE_TOMBSTONES, window)
        conn.execute(UPSERT_COMPACTED_REVISION, {"revision": step})
    return max(step, compacted), None
