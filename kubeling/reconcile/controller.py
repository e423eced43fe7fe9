"""A controller: informer events → keys → a work queue → workers calling a `Reconciler`.

Contract (STYLE.md §§ 2-4, controller-runtime's controller in miniature):

* **Handlers only map events to keys.** `watch(informer, mapper)` registers handlers that
  call `mapper(obj)` for the object of every add, update (old and new) and delete and
  `queue.add` each key. The default mapper is `own_key` (the object's `namespace/name`);
  `owner_keys(kind)` maps an object to the key of its controller owner of that kind. A
  mapper never reads or writes the server and never blocks.
* **The reconciler gets only the key.** `reconcile(key)` reads the current state (from an
  informer cache or the server), compares it with what it should be and acts only on the
  difference: it is level-based, so it must be correct however many events were coalesced
  into one call, and for a key whose object is gone.
* **The queue owns retries.** The worker loop, for each key it gets:
  - `Result()` → `forget(key)` (its failure history is cleared);
  - `Result(requeue_after=s)` → `forget(key)` + `add_after(key, s)`;
  - an exception → logged, `add_rate_limited(key)` (per-key exponential back-off);
  - `TerminalError` → logged, `forget(key)`, not retried;
  - and always `done(key)`.
* **One key is never reconciled concurrently**, whatever `workers` is: the queue hands a key
  out to one worker at a time and re-queues it once if it changed meanwhile.
* `start()` needs a running loop and starts the workers (idempotent); `await stop()`
  removes the handlers, shuts the queue down, lets reconciles in flight finish (cancelling
  them after `timeout` seconds) and ends the workers. A stopped controller is not restarted:
  build a new one (its state is re-derived from the caches, being level-based).
* `health()` reports whether the workers run, the queue depth, counters and the last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubeling.api.selectors import selector_from_spec
from kubeling.client.cache import controller_ref, object_key
from kubeling.client.informer import Handlers, Informer
from kubeling.client.workqueue import ShutDown, WorkQueue
from kubeling.reconcile.result import Result, TerminalError
from kubeling.util.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

Mapper = Callable[[Mapping[str, Any]], Iterable[str]]


class Reconciler(Protocol):
    """Brings the world for one key to its desired state; see the module docstring."""

    async def reconcile(self, key: str) -> Result: ...


def own_key(obj: Mapping[str, Any]) -> list[str]:
    """The object's own key: `namespace/name` (or `name` when cluster-scoped)."""
    return [object_key(obj)]


def owner_keys(kind: str) -> Mapper:
    """A mapper to the key of the object's controller owner, when that owner is a `kind`.

    Owners live in their dependant's namespace (or are cluster-scoped, which a namespaced
    owner reference cannot name), so the key is `namespace/owner-name`.
    """

    def mapper(obj: Mapping[str, Any]) -> list[str]:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == kind and ref.get("name"):
                namespace = meta.get("namespace")
                return [f"{namespace}/{ref['name']}" if namespace else str(ref["name"])]
        return []

    return mapper


def owner_or_adopters(kind: str, owners: Informer) -> Mapper:
    """A mapper for dependants that are adopted by selector (pods of ReplicaSets, ReplicaSets
    of Deployments): the key of the object's controller owner when it is a `kind`; for an
    orphan, the key of every `kind` in its namespace whose `spec.selector` matches it (the
    ones that would adopt it)."""

    def mapper(obj: Mapping[str, Any]) -> list[str]:
        meta = obj.get("metadata") or {}
        ref = controller_ref(obj)
        if ref is not None:
            return [f"{meta.get('namespace')}/{ref.get('name')}"] if ref.get("kind") == kind else []
        keys = []
        for owner in owners.cache.list(meta.get("namespace")):
            try:
                selector = selector_from_spec((owner.get("spec") or {}).get("selector"))
            except ValueError:
                continue
            if not selector.empty and selector.matches(meta.get("labels")):
                keys.append(object_key(owner))
        return keys

    return mapper


@dataclass(frozen=True, slots=True)
class ControllerHealth:
    """A snapshot of one controller, for health checks and metrics."""

    name: str
    running: bool
    queue_depth: int
    reconciles: int
    errors: int
    terminal_errors: int
    last_error: str | None


class Controller:
    """Workers that reconcile keys from a queue fed by informers; see the module docstring."""

    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        queue: WorkQueue[str] | None = None,
        workers: int = 1,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a controller needs at least one worker ({workers})")
        self.name = name
        self.reconciler = reconciler
        self.queue: WorkQueue[str] = queue if queue is not None else WorkQueue(name, clock=clock)
        self.workers = workers
        self._watches: list[tuple[Informer, Handlers]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciles = 0
        self.errors = 0
        self.terminal_errors = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"<Controller {self.name}>"

    # -- events → keys ------------------------------------------------------------------------

    def watch(
        self,
        informer: Informer,
        mapper: Mapper = own_key,
        *,
        events: Collection[str] = ("add", "update", "delete"),
    ) -> None:
        """Queue `mapper(obj)` for every object the informer adds, updates or deletes
        (or only for the kinds of change named in `events`)."""

        def enqueue(obj: Mapping[str, Any]) -> None:
            for key in mapper(obj):
                self.queue.add(key)

        def on_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
            enqueue(old)
            enqueue(new)

        unknown = set(events) - {"add", "update", "delete"}
        if unknown:
            raise ValueError(f"unknown informer events: {sorted(unknown)}")
        handlers = informer.add_handlers(
            enqueue if "add" in events else None,
            on_update if "update" in events else None,
            enqueue if "delete" in events else None,
        )
        self._watches.append((informer, handlers))

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._tasks) and any(not t.done() for t in self._tasks)

    def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._worker(), name=f"controller {self.name} worker {i}")
            for i in range(self.workers)
        ]

    async def stop(self, timeout: float = 5.0) -> None:
        for informer, handlers in self._watches:
            informer.remove_handlers(handlers)
        self._watches.clear()
        try:
            await asyncio.wait_for(self.queue.shutdown_with_drain(), timeout)
        except TimeoutError:
            log.warning("%r: reconciles still running after %ss; cancelling", self, timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def health(self) -> ControllerHealth:
        return ControllerHealth(
            name=self.name,
            running=self.running,
            queue_depth=len(self.queue) + self.queue.waiting(),
            reconciles=self.reconciles,
            errors=self.errors,
            terminal_errors=self.terminal_errors,
            last_error=self.last_error,
        )

    # -- the worker loop ----------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self._reconcile(key)
            finally:
                self.queue.done(key)

    async def _reconcile(self, key: str) -> None:
        self.reconciles += 1
        try:
            result = await self.reconciler.reconcile(key)
        except TerminalError as err:
            self.terminal_errors += 1
            self.last_error = f"{key}: {err!r}"
            log.error("%r: reconcile of %s failed for good: %r", self, key, err)
            self.queue.forget(key)
        except Exception as err:
            self.errors += 1
            self.last_error = f"{key}: {err!r}"
            log.warning(
                "%r: reconcile of %s failed (retry %d): %r",
                self,
                key,
                self.queue.num_requeues(key) + 1,
                err,
                exc_info=True,
            )
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
            if result.requeue_after:
                self.queue.add_after(key, result.requeue_after)
