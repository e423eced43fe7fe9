"""Storage: one small revisioned key-value protocol (`Store`) and its backends.

Everything above this package talks to a `Store` only, so the backend is chosen once, by the
datastore URL given to `open_store`:

* `memory://`: `MemoryStore`, nothing on disk (tests, throwaway clusters);
* `sqlite:///absolute/path/state.db` or `sqlite://relative/path/state.db`: `SqliteStore`, the
  embedded default.

The contract every backend keeps is in `kubeling.storage.interface`.
"""

from __future__ import annotations

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
    Store,
)
from kubeling.storage.memory import MemoryStore
from kubeling.storage.sqlite import SqliteStore

__all__ = [
    "Compacted",
    "Conflict",
    "Event",
    "EventType",
    "FutureRevision",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "ListResult",
    "MemoryStore",
    "SqliteStore",
    "StorageError",
    "Store",
    "open_store",
]

_SUPPORTED = "memory://, sqlite:///absolute/path.db or sqlite://relative/path.db"


async def open_store(url: str) -> Store:
    """The store a datastore URL names; raises ValueError for a URL no backend serves."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ValueError(f"datastore {url!r} is not a URL; use {_SUPPORTED}")
    if scheme == "memory":
        if rest:
            raise ValueError(f"datastore {url!r}: memory:// takes no path")
        return MemoryStore()
    if scheme == "sqlite":
        if not rest:
            raise ValueError(f"datastore {url!r} names no file; use {_SUPPORTED}")
        return await SqliteStore.open(rest)
    if scheme == "etcd":
        raise ValueError(f"datastore {url!r}: the etcd backend is not supported yet; use sqlite")
    raise ValueError(f"datastore {url!r}: unknown scheme {scheme!r}; use {_SUPPORTED}")
