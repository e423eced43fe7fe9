"""Informers: one list + watch per resource, kept in an indexed cache, fanned out to handlers.

Contract (client-go's reflector + shared informer, in one class):

* **List, then watch from the list.** The informer lists (everything, resourceVersion ""),
  replaces its cache with the result, and watches from the list's resourceVersion with
  `allowWatchBookmarks=true`. It remembers the resourceVersion of the last event or
  BOOKMARK, so a watch that ends cleanly (its `timeoutSeconds`, a server restart) resumes
  from there without a relist.
* **Relist when history is gone.** A 410 Expired (an `ERROR` event, or the resume of a watch
  whose resourceVersion was compacted, or a watcher the server dropped as too slow) relists
  at once (after a back-off only when the previous list is under a second old, so a server
  answering 410 over and over is not hammered). Any other failure (connection refused or
  reset, 5xx, a malformed stream) waits a back-off on the injected `Clock` (0.8 s doubling
  to 30 s, with jitter, reset after 2 minutes without failures, as client-go's reflector)
  and then relists, since changes may have been missed while disconnected.
* **Handlers see each change once, in order**: `on_add(obj)`, `on_update(old, new)`,
  `on_delete(obj)`, called synchronously on the loop in the order the informer learns of
  changes. They must not block or await: map the object to a key and `queue.add(key)`
  (STYLE.md § 3). An exception in a handler is logged and does not stop the informer or the
  other handlers.
* **A relist is a diff**: objects new to the cache → `on_add`; objects whose
  resourceVersion changed → `on_update`; objects gone → `on_delete` with the last state the
  cache saw (the deletion itself was missed, so the object may be stale; client-go wraps it
  in `DeletedFinalStateUnknown`, kubeling passes it as is).
* **Resync** (`resync` seconds > 0): every period, `on_update(obj, obj)` for every cached
  object, with the same object as old and new. Handlers that only care about real changes
  compare `metadata.resourceVersion`.
* **A handler added late** (after objects are cached) first gets `on_add` for each of them,
  so every handler sees a complete picture, as in client-go.
* `has_synced` turns true once the first list is in the cache and its `on_add`s delivered;
  `await wait_synced()` waits for that. It never turns false again.
* Cached objects are shared: see `kubeling.client.cache` (never mutate; `copy()` first).
* `start()` needs a running loop; `await stop()` ends the watch and the task. Both idempotent.

`SharedInformerFactory` hands out one informer per (resource, namespace, selectors), so many
controllers share one watch and one cache, and starts / stops them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from kubeling.api.errors import ApiError
from kubeling.api.kinds import ResourceInfo
from kubeling.client.cache import Cache, Indexer, Object, object_key
from kubeling.client.rest import Client
from kubeling.client.watch import ADDED, BOOKMARK, DELETED, MODIFIED, Watch
from kubeling.util.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

AddHandler = Callable[[Object], None]
UpdateHandler = Callable[[Object, Object], None]
DeleteHandler = Callable[[Object], None]


@dataclass(frozen=True)
class Handlers:
    on_add: AddHandler | None = None
    on_update: UpdateHandler | None = None
    on_delete: DeleteHandler | None = None


class Backoff:
    """Exponential back-off with jitter: `initial` doubling to `cap`, forgotten after `reset`
    seconds without failures (client-go's reflector uses 800 ms, 30 s, 2 min, jitter 1.0)."""

    def __init__(
        self,
        clock: Clock,
        initial: float = 0.8,
        cap: float = 30.0,
        reset: float = 120.0,
        jitter: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.clock, self.initial, self.cap, self.reset = clock, initial, cap, reset
        self.jitter, self.rng = jitter, rng
        self._current = 0.0
        self._last_failure = float("-inf")

    def next_delay(self) -> float:
        now = self.clock.now()
        if now - self._last_failure > self.reset:
            self._current = 0.0
        self._last_failure = now
        self._current = self.initial if not self._current else min(self.cap, self._current * 2)
        return self._current * (1 + self.jitter * self.rng())


class Informer:
    """List + watch of one resource into a `Cache`; see the module docstring."""

    def __init__(
        self,
        client: Client,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resync: float = 0.0,
        indexers: dict[str, Indexer] | None = None,
        clock: Clock = REAL_CLOCK,
        watch_timeout: Callable[[], int] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.info = info
        self.namespace = namespace if info.namespaced else None
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync = resync
        self.cache = Cache(indexers)
        self._clock = clock
        # client-go asks the server to end each watch after a random 5-10 minutes, so that
        # watches spread over API servers and a silently dead connection is noticed.
        self._watch_timeout = watch_timeout or (lambda: random.randint(300, 600))
        self._backoff = backoff or Backoff(clock)
        self._handlers: list[Handlers] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._watch: Watch | None = None
        self._stopping = False
        self._stop = asyncio.Event()
        self.resource_version = ""
        self._last_list_at = float("-inf")
        # Counters for tests and metrics.
        self.lists = 0
        self.watches = 0
        self.expired = 0

    def __repr__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"<Informer {self.info.qualified}{where} rv={self.resource_version}>"

    # -- handlers -----------------------------------------------------------------------------

    def add_handlers(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> Handlers:
        """Register handlers; replays `on_add` for what is cached already. Returns a token
        for `remove_handlers`."""
        handlers = Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if on_add is not None:
            for obj in self.cache:
                _call(on_add, obj)
        return handlers

    def remove_handlers(self, handlers: Handlers) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(handlers)

    def _added(self, obj: Object) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                _call(h.on_add, obj)

    def _updated(self, old: Object, new: Object) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                _call(h.on_update, old, new)

    def _deleted(self, obj: Object) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                _call(h.on_delete, obj)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait for the first list to be cached; `TimeoutError` after `timeout` seconds."""
        await asyncio.wait_for(self._synced.wait(), timeout)

    @property
    def watching(self) -> bool:
        """A watch stream is open right now (false while listing or backing off)."""
        return self._watch is not None and self._watch.established

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._stop = asyncio.Event()
        self._task = loop.create_task(self._run(), name=f"informer {self.info.qualified}")
        if self.resync > 0:
            self._resync_task = loop.create_task(
                self._resync_forever(), name=f"informer resync {self.info.qualified}"
            )

    async def stop(self, timeout: float = 5.0) -> None:
        """End the watch and let the informer finish what it is doing (a request in flight
        completes rather than being cut mid-way); cancel it after `timeout` seconds."""
        self._stopping = True
        self._stop.set()
        if self._watch is not None:
            await self._watch.close()
        if self._resync_task is not None:
            self._resync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync_task
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._task = self._resync_task = None

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the clock; `stop()` ends the sleep early."""
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    # -- list and watch -----------------------------------------------------------------------

    async def _run(self) -> None:
        need_list = True
        while not self._stopping:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                if not self._stopping:
                    await self._watch_once()
            except asyncio.CancelledError:
                raise
            except ApiError as err:
                if self._stopping:
                    return
                if err.code == 410:
                    # The history we would resume from is gone: relist right away. A server
                    # that answers 410 again and again still gets the back-off.
                    self.expired += 1
                    need_list = True
                    if self._clock.now() - self._last_list_at < 1.0:
                        await self._sleep(self._backoff.next_delay())
                    continue
                log.warning("%r: %s %s; relisting after back-off", self, err.code, err.reason)
                need_list = True
                await self._sleep(self._backoff.next_delay())
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as err:
                if self._stopping:
                    return
                log.warning("%r: %r; relisting after back-off", self, err)
                need_list = True
                await self._sleep(self._backoff.next_delay())
            except Exception:
                # A bug must not silently end the informer: every controller would go stale.
                log.exception("%r: unexpected failure; relisting after back-off", self)
                need_list = True
                await self._sleep(self._backoff.next_delay())

    async def _list(self) -> None:
        result = await self.client.list(
            self.info,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self.lists += 1
        self._last_list_at = self._clock.now()
        self._replace(result.items)
        self.resource_version = result.resource_version
        self._synced.set()

    def _replace(self, items: list[Object]) -> None:
        fresh = {object_key(obj): obj for obj in items}
        for key in self.cache.list_keys():
            if key not in fresh:
                gone = self.cache.remove(key)
                if gone is not None:
                    self._deleted(gone)
        for obj in items:
            old = self.cache.upsert(obj)
            if old is None:
                self._added(obj)
            elif _rv(old) != _rv(obj):
                self._updated(old, obj)

    async def _watch_once(self) -> None:
        watch = self.client.watch(
            self.info,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            allow_bookmarks=True,
            timeout_seconds=self._watch_timeout(),
        )
        self._watch = watch
        self.watches += 1
        started, events = self._clock.now(), 0
        try:
            async with watch:
                async for kind, obj in watch:
                    events += 1
                    self._apply(kind, obj)
        finally:
            self._watch = None
        if events == 0 and self._clock.now() - started < 1.0 and not self._stopping:
            # A watch that ends at once without a word is a server in trouble: do not spin.
            await self._sleep(self._backoff.next_delay())

    def _apply(self, kind: str, obj: Object) -> None:
        rv = _rv(obj)
        if kind == BOOKMARK:
            if rv:
                self.resource_version = rv
            return
        if kind in (ADDED, MODIFIED):
            old = self.cache.upsert(obj)
            if old is None:
                self._added(obj)
            else:
                self._updated(old, obj)
        elif kind == DELETED:
            self.cache.remove(object_key(obj))
            self._deleted(obj)  # the final state, as the server last had it
        else:
            log.warning("%r: ignoring a watch event of type %r", self, kind)
        if rv:
            self.resource_version = rv

    async def _resync_forever(self) -> None:
        while True:
            await self._clock.sleep(self.resync)
            if self.has_synced:
                for obj in self.cache:
                    self._updated(obj, obj)


def _rv(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _call(handler: Callable[..., Any], *args: Object) -> None:
    try:
        handler(*args)
    except Exception:
        log.exception("informer handler %r failed", handler)


@dataclass(frozen=True)
class _InformerKey:
    info: ResourceInfo
    namespace: str | None
    label_selector: str
    field_selector: str


class SharedInformerFactory:
    """One informer per (resource, namespace, selectors), shared by every caller."""

    def __init__(
        self,
        client: Client,
        *,
        resync: float = 0.0,
        clock: Clock = REAL_CLOCK,
        namespace: str | None = None,
        watch_timeout: Callable[[], int] | None = None,
    ) -> None:
        self.client = client
        self.resync = resync
        self.clock = clock
        self.namespace = namespace  # default scope; None watches all namespaces
        self._watch_timeout = watch_timeout
        self._informers: dict[_InformerKey, Informer] = {}
        self._started = False

    def informer(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Informer:
        """The shared informer for these parameters; started at once if the factory runs."""
        ns = (namespace or self.namespace) if info.namespaced else None
        key = _InformerKey(info, ns, label_selector, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(
                self.client,
                info,
                ns,
                label_selector=label_selector,
                field_selector=field_selector,
                resync=self.resync,
                clock=self.clock,
                watch_timeout=self._watch_timeout,
            )
            self._informers[key] = informer
            if self._started:
                informer.start()
        return informer

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Start every informer handed out so far, and any handed out later."""
        self._started = True
        for informer in self._informers.values():
            informer.start()

    async def wait_for_cache_sync(self, timeout: float | None = None) -> None:
        """Wait until every informer has synced; `TimeoutError` after `timeout` seconds."""
        await asyncio.wait_for(
            asyncio.gather(*(i.wait_synced() for i in self._informers.values())), timeout
        )

    async def shutdown(self) -> None:
        self._started = False
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
