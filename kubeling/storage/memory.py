"""`MemoryStore`: the `Store` contract with nothing on disk, for tests and throwaway clusters.

It is the reference backend: the conformance suite runs the same tests against it and against
SQLite, so it keeps the whole contract, including history. Every write appends one `Event` to
`_log`; revisions are contiguous, so the event of revision `r` sits at `_log[r - first]`, where
`first` is the oldest revision still in the log. Two consequences:

* **A past snapshot is the present with the newer events undone.** `list(revision=r)` starts from
  the current values and walks the log backwards to `r + 1`, restoring each event's `prev`.
* **A watcher is a cursor into the log**, not a queue: a slow watcher costs no memory of its
  own. It still obeys the bound every backend promises: when more than `watch_buffer` events
  for its prefix were written since it last caught up with the head, its iterator raises
  `Compacted(requested=r, compacted=r + 1)`, `r` being the next revision it needed, and the
  consumer relists as it would after a real compaction.

Compaction drops log entries older than the compacted revision; the current values are kept in
`_values` (and their keys sorted in `_keys` for ordered prefix ranges), so nothing current is lost.

Nothing here awaits, so every method is atomic with respect to the event loop. Durability is
not a property of this backend: everything is lost when the process ends.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

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
_WATCH_PAGE = 1_000  # log entries a watcher examines per step, so no single step blocks the loop
_Events = list[Event]  # spelled out here: inside the class, `list` is the method


@dataclass(eq=False, slots=True)
class _Cursor:
    """The live state of one watch: how far behind it is and how to wake it."""

    prefix: str
    pending: int = 0  # matching events written since the watcher last reached the head
    overflowed: bool = False
    closed: bool = False
    wakeup: asyncio.Future[None] | None = field(default=None)

    def wake(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)


class MemoryStore:
    """In-memory `Store`; see the module docstring for how history and watches work."""

    def __init__(self, *, watch_buffer: int = DEFAULT_WATCH_BUFFER) -> None:
        if watch_buffer < 1:
            raise ValueError(f"watch_buffer must be positive, not {watch_buffer}")
        self._watch_buffer = watch_buffer
        self._values: dict[str, KeyValue] = {}
        self._keys: list[str] = []  # the keys of _values, sorted
        self._log: list[Event] = []  # one event per revision, oldest first
        self._revision = 0
        self._compacted = 0
        self._cursors: set[_Cursor] = set()
        self._closed = False

    # -- reads ----------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        self._check_open()
        return self._values.get(key)

    async def list(
        self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0
    ) -> ListResult:
        self._check_open()
        if revision < 0 or limit < 0:
            raise ValueError(f"revision and limit must not be negative ({revision}, {limit})")
        at = revision or self._revision
        if at > self._revision:
            raise FutureRevision(at, self._revision)
        if at < self._compacted:
            raise Compacted(at, self._compacted)
        values = self._snapshot(prefix, at)
        keys = sorted(k for k in values if k > start_after)
        more = bool(limit) and len(keys) > limit
        if more:
            keys = keys[:limit]
        return ListResult([values[k] for k in keys], at, more)

    def _snapshot(self, prefix: str, revision: int) -> dict[str, KeyValue]:
        """The values under `prefix` as they were at `revision` (>= the compacted revision)."""
        lo = bisect.bisect_left(self._keys, prefix)
        values: dict[str, KeyValue] = {}
        for key in itertools.islice(self._keys, lo, None):
            if not key.startswith(prefix):
                break
            values[key] = self._values[key]
        first = self._first_logged()
        for event in reversed(self._log[revision + 1 - first :]):
            key = event.kv.key
            if not key.startswith(prefix):
                continue
            if event.prev is None:
                values.pop(key, None)
            else:
                values[key] = event.prev
        return values

    async def current_revision(self) -> int:
        self._check_open()
        return self._revision

    async def compacted_revision(self) -> int:
        self._check_open()
        return self._compacted

    # -- writes ---------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        self._check_open()
        if key in self._values:
            raise KeyExists(key)
        revision = self._revision + 1
        kv = KeyValue(key, value, revision, revision)
        self._record(Event(EventType.CREATE, kv, None))
        return kv

    async def update(self, key: str, value: bytes, *, expected_revision: int = 0) -> KeyValue:
        current = self._current_for_write(key, expected_revision)
        kv = KeyValue(key, value, current.create_revision, self._revision + 1)
        self._record(Event(EventType.UPDATE, kv, current))
        return kv

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        current = self._current_for_write(key, expected_revision)
        kv = KeyValue(key, current.value, current.create_revision, self._revision + 1)
        self._record(Event(EventType.DELETE, kv, current))
        return kv

    async def compact(self, revision: int) -> None:
        self._check_open()
        if revision > self._revision:
            raise FutureRevision(revision, self._revision)
        if revision <= self._compacted:
            return
        del self._log[: revision - self._first_logged()]
        self._compacted = revision
        for cursor in self._cursors:
            cursor.wake()  # a cursor left behind the compaction must raise now, not later

    def _current_for_write(self, key: str, expected_revision: int) -> KeyValue:
        self._check_open()
        current = self._values.get(key)
        if current is None:
            raise KeyNotFound(key)
        if expected_revision and current.mod_revision != expected_revision:
            raise Conflict(key, current)
        return current

    def _record(self, event: Event) -> None:
        key = event.kv.key
        if event.type is EventType.DELETE:
            del self._values[key]
            del self._keys[bisect.bisect_left(self._keys, key)]
        else:
            if event.type is EventType.CREATE:
                bisect.insort(self._keys, key)
            self._values[key] = event.kv
        self._log.append(event)
        self._revision = event.revision
        for cursor in self._cursors:
            if key.startswith(cursor.prefix):
                cursor.pending += 1
                cursor.overflowed = cursor.overflowed or cursor.pending > self._watch_buffer
                cursor.wake()

    def _first_logged(self) -> int:
        """The revision of `_log[0]` (or the next revision when the log is empty)."""
        return self._revision - len(self._log) + 1

    # -- watch ----------------------------------------------------------------------------

    @property
    def watch_count(self) -> int:
        """How many watches are open (iterated at least once and not yet closed)."""
        return len(self._cursors)

    async def watch(self, prefix: str, after: int) -> AsyncGenerator[_Events, None]:
        self._check_open()
        if after < 0:
            raise ValueError(f"watch revision must not be negative ({after})")
        if after > self._revision:
            raise FutureRevision(after, self._revision)
        cursor = _Cursor(prefix)
        self._cursors.add(cursor)
        try:
            position = after  # every matching event up to here has been delivered
            while True:
                if cursor.overflowed:
                    raise Compacted(position + 1, position + 2)
                if position + 1 < self._compacted:
                    raise Compacted(position, self._compacted)
                start = position + 1 - self._first_logged()
                chunk = self._log[start : start + _WATCH_PAGE]
                if chunk:
                    position = chunk[-1].revision
                    if position == self._revision:
                        cursor.pending = 0
                    batch = [e for e in chunk if e.kv.key.startswith(prefix)]
                    if batch:
                        yield batch
                    continue
                if self._closed or cursor.closed:
                    return
                cursor.wakeup = asyncio.get_running_loop().create_future()
                await cursor.wakeup
        finally:
            self._cursors.discard(cursor)

    # -- lifecycle ------------------------------------------------------------------------

    async def close(self) -> None:
        """Ends every open watch (their iterators stop) and refuses further calls."""
        self._closed = True
        for cursor in self._cursors:
            cursor.closed = True
            cursor.wake()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the store is closed")
