"""The `Store` protocol: a small revisioned key-value store, the shape of etcd v3.

Contract (every backend passes tests/storage, one conformance suite):

* **Revisions.** Every successful write (create, update, delete) gets the next global revision,
  an integer starting at 1 and increasing by exactly one per write, never reused, also across
  restarts. `KeyValue.mod_revision` is the revision of the write that produced it;
  `create_revision` the revision of the create that started this incarnation of the key.
* **Compare-and-swap.** `update` and `delete` may name the `mod_revision` they expect; when the
  stored one differs they raise `Conflict` carrying the current value. Creating an existing key
  raises `KeyExists`; updating or deleting a missing one raises `KeyNotFound`.
* **Durability.** A write has reached stable storage (fsync'd) before its coroutine returns.
* **Snapshots.** `list` reads a consistent snapshot at one revision (the current one, or a past
  one still in history), optionally paging by key: `start_after` + `limit`.
* **History and watch.** `watch(prefix, after)` yields every event with revision > `after` for
  keys under `prefix`, in revision order, first from history and then live, with no gap and no
  duplicate. Events are delivered in batches (all events of one write batch together).
* **Compaction.** `compact(revision)` forgets history older than `revision` (the latest value of
  each key is always kept). Reading or watching from before the compacted revision raises
  `Compacted`; asking for a revision not yet written raises `FutureRevision`.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(Enum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For DELETE, `kv.value` is the last value and `kv.mod_revision` the revision
    of the delete itself; `prev` is the value before the change (None for CREATE)."""

    type: EventType
    kv: KeyValue
    prev: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class StorageError(Exception):
    """Base of every error a Store raises on purpose."""


class KeyExists(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} already exists")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} not found")
        self.key = key


class Conflict(StorageError):
    """The expected mod revision did not match; `current` is what is stored now."""

    def __init__(self, key: str, current: KeyValue) -> None:
        super().__init__(f"key {key!r} was modified (now at revision {current.mod_revision})")
        self.key = key
        self.current = current


class Compacted(StorageError):
    """The requested revision is older than the oldest one still in history."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} has been compacted (oldest kept: {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevision(StorageError):
    """The requested revision has not been written yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"revision {requested} is in the future (current: {current})")
        self.requested = requested
        self.current = current


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the snapshot the items were read at
    more: bool  # True when `limit` cut the list short


class Store(Protocol):
    async def get(self, key: str) -> KeyValue | None: ...

    async def list(
        self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0
    ) -> ListResult:
        """Keys under `prefix` in key order at `revision` (0 = current); `limit` 0 = all.

        `prefix` is a plain string prefix: "/registry/pods" also matches "/registry/podsx/...";
        end it with "/" to mean one directory. `start_after` pages: pass the last key of the
        previous page and that page's `revision`."""
        ...

    async def create(self, key: str, value: bytes) -> KeyValue: ...

    async def update(self, key: str, value: bytes, *, expected_revision: int = 0) -> KeyValue:
        """Replace the value; `expected_revision` 0 skips the compare."""
        ...

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        """Delete; returns the last value with `mod_revision` set to the delete's revision."""
        ...

    def watch(self, prefix: str, after: int) -> AsyncGenerator[builtins.list[Event], None]:
        """Events with revision > `after` for keys under `prefix` (a plain string prefix, as in
        `list`), history first, then live, until the iterator is closed. Raises Compacted /
        FutureRevision on the first iteration when `after` is out of range.

        Backends return an async generator: close it with `aclose()` (or
        `contextlib.aclosing`), or cancel the task iterating it; a `break` leaves closing to
        the garbage collector. A watcher too slow for its backend's bounded buffer ends with
        `Compacted` (the consumer relists, as after a real compaction); when the store closes,
        open watches end."""
        ...

    async def current_revision(self) -> int: ...

    async def compacted_revision(self) -> int:
        """The oldest revision still readable (0 when nothing was compacted)."""
        ...

    async def compact(self, revision: int) -> None: ...

    async def close(self) -> None: ...
