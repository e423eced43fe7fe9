"""The indexed object cache behind an informer: what controllers read instead of the server.

Contract:

* **Keys** are `namespace/name` for namespaced objects and `name` for cluster-scoped ones
  (client-go's `MetaNamespaceKeyFunc`); `object_key()` computes them, `split_key()` undoes it.
  Work queues carry these keys.
* **Shared, never to be mutated.** `get`, `list` and `by_index` hand out the cached objects
  themselves, not copies: copying every object on every read would cost more than the
  reconcile that reads it, and many controllers read the same object. A caller that wants
  to change an object calls `copy(obj)` first, changes the copy, and writes it back through
  the client (STYLE.md § 7). Mutating a cached object corrupts what every other reader sees
  and what the informer compares against. Set `KUBELING_CACHE_MUTATION_DETECTOR=1` (as
  client-go's `KUBE_CACHE_MUTATION_DETECTOR`) to have the cache remember each object's bytes
  and report in `mutations` (and the log) any object that changed while cached.
* **Indexers** map an object to zero or more index values (`Indexer`); `by_index(name,
  value)` returns the objects with that value. Indexers may be added at any time; the index
  is built over the current contents. Ready-made ones: `by_namespace`,
  `by_controller_uid` (the owner reference with `controller: true`), `by_node_name`
  (a Pod's `spec.nodeName`) and `by_label(key)`.
* **Single event loop**: no locks. Only the informer writes; every method is synchronous, so
  a reader never sees a half-applied change.
"""

from __future__ import annotations

import builtins
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson

log = logging.getLogger(__name__)

Object = dict[str, Any]
Indexer = Callable[[Mapping[str, Any]], Iterable[str]]

NAMESPACE_INDEX = "namespace"


def copy(obj: Mapping[str, Any]) -> Object:
    """A deep copy of a JSON object, safe to change (an orjson round trip: ~5x `deepcopy`)."""
    result: Object = orjson.loads(orjson.dumps(obj))
    return result


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name", "")
    return f"{namespace}/{name}" if namespace else str(name)


def split_key(key: str) -> tuple[str | None, str]:
    """`ns/name` → (ns, name); `name` → (None, name)."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, key)


# -- ready-made indexers --------------------------------------------------------------------


def by_namespace(obj: Mapping[str, Any]) -> list[str]:
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [namespace] if namespace else []


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner reference with `controller: true`, if any (there is at most one)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def by_controller_uid(obj: Mapping[str, Any]) -> list[str]:
    ref = controller_ref(obj)
    return [str(ref["uid"])] if ref is not None and ref.get("uid") else []


def by_node_name(obj: Mapping[str, Any]) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def by_label(key: str) -> Indexer:
    def index(obj: Mapping[str, Any]) -> list[str]:
        value = ((obj.get("metadata") or {}).get("labels") or {}).get(key)
        return [value] if value is not None else []

    return index


def _detector_enabled() -> bool:
    return os.environ.get("KUBELING_CACHE_MUTATION_DETECTOR", "") not in ("", "0", "false")


class Cache:
    """Objects by key, with secondary indexes; see the module docstring."""

    def __init__(
        self,
        indexers: Mapping[str, Indexer] | None = None,
        *,
        detect_mutations: bool | None = None,
    ) -> None:
        self._items: dict[str, Object] = {}
        self._indexers: dict[str, Indexer] = {NAMESPACE_INDEX: by_namespace}
        # index name → value → keys; key → the values it is filed under, per index.
        self._indices: dict[str, dict[str, set[str]]] = {NAMESPACE_INDEX: {}}
        self._filed: dict[str, dict[str, tuple[str, ...]]] = {NAMESPACE_INDEX: {}}
        self._snapshots: dict[str, bytes] | None = (
            {}
            if (detect_mutations if detect_mutations is not None else _detector_enabled())
            else None
        )
        self.mutations: list[str] = []
        for name, indexer in (indexers or {}).items():
            self.add_indexer(name, indexer)

    # -- reads (shared objects: do not mutate) ------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[Object]:
        return iter(list(self._items.values()))

    def get(self, key: str) -> Object | None:
        return self._items.get(key)

    def get_by_name(self, namespace: str | None, name: str) -> Object | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list_keys(self) -> list[str]:
        return list(self._items)

    def list(self, namespace: str | None = None) -> list[Object]:
        """Every object, or those of one namespace (through the namespace index)."""
        if namespace is None:
            return list(self._items.values())
        return self.by_index(NAMESPACE_INDEX, namespace)

    def by_index(self, index: str, value: str) -> builtins.list[Object]:
        return [self._items[k] for k in self.index_keys(index, value)]

    def index_keys(self, index: str, value: str) -> builtins.list[str]:
        try:
            keys = self._indices[index].get(value, ())
        except KeyError:
            raise KeyError(f"no index named {index!r}") from None
        return sorted(keys)

    def index_values(self, index: str) -> builtins.list[str]:
        """Every value the index currently holds objects under."""
        return sorted(self._indices[index])

    # -- indexers -----------------------------------------------------------------------------

    def add_indexer(self, name: str, indexer: Indexer) -> None:
        """Add an index and build it over the current contents."""
        if name in self._indexers:
            if self._indexers[name] is indexer:
                return
            raise ValueError(f"an index named {name!r} already exists")
        self._indexers[name] = indexer
        self._indices[name] = {}
        self._filed[name] = {}
        for key, obj in self._items.items():
            self._file(name, key, obj)

    def has_index(self, name: str) -> bool:
        return name in self._indexers

    def _file(self, index: str, key: str, obj: Mapping[str, Any]) -> None:
        values = tuple(dict.fromkeys(self._indexers[index](obj)))
        if values:
            self._filed[index][key] = values
            bucket = self._indices[index]
            for value in values:
                bucket.setdefault(value, set()).add(key)

    def _unfile(self, index: str, key: str) -> None:
        bucket = self._indices[index]
        for value in self._filed[index].pop(key, ()):
            keys = bucket.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del bucket[value]

    # -- writes (the informer's) --------------------------------------------------------------

    def upsert(self, obj: Object) -> Object | None:
        """Store `obj` (the cache now owns it); returns the object it replaced."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._check(key, old)
            for index in self._indexers:
                self._unfile(index, key)
        self._items[key] = obj
        for index in self._indexers:
            self._file(index, key, obj)
        if self._snapshots is not None:
            self._snapshots[key] = orjson.dumps(obj)
        return old

    def remove(self, key: str) -> Object | None:
        """Forget `key`; returns the object that was cached."""
        old = self._items.pop(key, None)
        if old is not None:
            self._check(key, old)
            for index in self._indexers:
                self._unfile(index, key)
            if self._snapshots is not None:
                self._snapshots.pop(key, None)
        return old

    def _check(self, key: str, old: Object) -> None:
        if self._snapshots is None:
            return
        if orjson.dumps(old) != self._snapshots.get(key) and key not in self.mutations:
            self.mutations.append(key)
            log.error("cached object %s was mutated in place: copy() before changing", key)

    def check_mutations(self) -> builtins.list[str]:
        """With the detector on: the keys of cached objects changed in place so far."""
        if self._snapshots is not None:
            for key, obj in self._items.items():
                if orjson.dumps(obj) != self._snapshots.get(key) and key not in self.mutations:
                    self.mutations.append(key)
        return list(self.mutations)
