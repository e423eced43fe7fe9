"""Kubernetes Events from controllers and agents: what `kubectl describe` and `get events` show.

Contract (client-go's legacy `record.EventRecorder` + `EventCorrelator`, core/v1 Events):

* `event(obj, type, reason, message)` returns at once; the write happens in the background.
  `type` is "Normal" or "Warning" (anything else is a `ValueError`, a bug in the caller).
  `obj` must carry `kind`, `apiVersion` and `metadata.name` (objects from the client and
  from informer caches do); it is only read.
* The Event lives in the object's namespace (`default` for cluster-scoped objects, as in
  Kubernetes) and is named `<object name>.<hex nanoseconds>`. It carries `involvedObject`
  (kind, apiVersion, name, namespace, uid, resourceVersion), `reason`, `message`, `type`,
  `source.component` (+ `source.host`), `reportingComponent` (+ `reportingInstance`),
  `firstTimestamp`, `lastTimestamp` and `count`.
* **Aggregation**: an event equal to an earlier one (same source, involved object kind /
  namespace / name / uid / apiVersion, type, reason and message) seen less than `window`
  seconds ago (10 minutes, client-go's aggregation interval) does not make a new Event: the
  existing one gets `count + 1` and a new `lastTimestamp` through a merge PATCH. Older, or
  forgotten (the last 4096 distinct events are remembered), it starts a new Event.
  A PATCH that finds the Event gone (404: expired by TTL or deleted) creates it again.
* **Bounded and coalescing**: at most `max_pending` distinct Events wait to be written; a
  burst of the same event makes one write carrying the final count, not one per call. When
  the backlog is full, new events are dropped with a log line (client-go drops on a full
  broadcaster channel too): events are advisory and must never slow the caller down.
* Transport failures are retried a few times with back-off on the injected `Clock`; API
  errors other than the 404/409 cases above drop that write (logged).
* `await flush()` waits until everything recorded so far is written (tests, shutdown);
  `await close()` flushes (bounded by `timeout`) and stops the writer.

Not done (client-go's `EventCorrelator` also has these): the "similar events" aggregator that
folds 10 events differing only in message into one "(combined from similar events)" Event,
and the per-object spam filter (token bucket of 25, refilling one per 5 minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.client.rest import Client, Object, PatchType
from kubeling.util.clock import REAL_CLOCK, Clock
from kubeling.util.timefmt import format_time, utcnow

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"
AGGREGATION_WINDOW = 600.0  # client-go's defaultAggregateIntervalInSeconds
REMEMBERED = 4096  # client-go's maxLruCacheEntries
_RETRIES = 3

_EVENTS = REGISTRY.by_path("", "v1", "events")
if _EVENTS is None:  # pragma: no cover - the registry always serves core Events
    raise RuntimeError("core/v1 events are not registered")
EVENTS: ResourceInfo = _EVENTS


@dataclass(eq=False)
class _Record:
    """One Event as the recorder knows it: what the server has or is about to have."""

    body: Object  # the Event as first created
    count: int
    last_timestamp: str
    seen_at: float  # Clock time of the last occurrence
    created: bool = False
    pending: bool = False
    written: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])


class EventRecorder:
    """Records Events for one component; see the module docstring."""

    def __init__(
        self,
        client: Client,
        component: str,
        host: str = "",
        *,
        clock: Clock = REAL_CLOCK,
        wall: Callable[[], datetime] = utcnow,
        window: float = AGGREGATION_WINDOW,
        max_pending: int = 1000,
    ) -> None:
        if not component:
            raise ValueError("an event recorder needs a component name")
        self.client = client
        self.component = component
        self.host = host
        self.window = window
        self.max_pending = max_pending
        self._clock = clock
        self._wall = wall
        self._records: OrderedDict[tuple[str, ...], _Record] = OrderedDict()
        self._pending: deque[_Record] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._in_flight: _Record | None = None
        self._last_name_ns = 0
        self._closed = False
        self.dropped = 0
        self.writes = 0

    # -- recording ----------------------------------------------------------------------------

    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        """Record an event about `obj`; never blocks, never raises for server trouble."""
        if type not in (NORMAL, WARNING):
            raise ValueError(f"event type must be {NORMAL!r} or {WARNING!r}, not {type!r}")
        involved = involved_object(obj)
        key = (
            self.component,
            self.host,
            involved["kind"],
            involved.get("namespace", ""),
            involved["name"],
            involved.get("uid", ""),
            involved["apiVersion"],
            type,
            reason,
            message,
        )
        now = self._clock.now()
        timestamp = format_time(self._wall())
        record = self._records.get(key)
        if record is not None and now - record.seen_at <= self.window:
            record.count += 1
            record.last_timestamp = timestamp
            record.seen_at = now
            self._records.move_to_end(key)
        else:
            record = _Record(
                self._new_event(involved, type, reason, message, timestamp), 1, timestamp, now
            )
            self._records[key] = record
            if len(self._records) > REMEMBERED:
                self._records.popitem(last=False)
        self._enqueue(record)

    def _new_event(
        self, involved: Object, type: str, reason: str, message: str, timestamp: str
    ) -> Object:
        source = {"component": self.component}
        if self.host:
            source["host"] = self.host
        body: Object = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{involved['name']}.{self._unique_nanoseconds():x}",
                "namespace": involved.get("namespace") or "default",
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type,
            "source": source,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
        }
        return body

    def _unique_nanoseconds(self) -> int:
        """Wall-clock nanoseconds for the name, strictly increasing so names never collide."""
        moment = self._wall()
        nanoseconds = int(moment.timestamp()) * 10**9 + moment.microsecond * 1000
        now = max(nanoseconds, self._last_name_ns + 1)
        self._last_name_ns = now
        return now

    def _enqueue(self, record: _Record) -> None:
        if self._closed:
            return
        record.written.clear()
        if record.pending:
            return  # the queued write will carry the new count
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "%s: event backlog full, %d events dropped", self.component, self.dropped
                )
            record.written.set()
            return
        record.pending = True
        self._pending.append(record)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_forever(), name=f"event recorder {self.component}"
            )
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    # -- writing ------------------------------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            while not self._pending:
                self._wakeup = asyncio.get_running_loop().create_future()
                await self._wakeup
            record = self._pending.popleft()
            record.pending = False
            self._in_flight = record
            try:
                await self._write(record)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: writing event %s failed", self.component, record.name)
            finally:
                self._in_flight = None
                if not record.pending:
                    record.written.set()

    async def _write(self, record: _Record) -> None:
        for attempt in range(_RETRIES + 1):
            try:
                if record.created:
                    await self._patch(record)
                else:
                    await self._create(record)
                self.writes += 1
                return
            except ApiError as err:
                log.warning(
                    "%s: event %s/%s not written: %s",
                    self.component,
                    record.namespace,
                    record.name,
                    err,
                )
                return
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                if attempt == _RETRIES:
                    log.warning("%s: event %s not written: %r", self.component, record.name, err)
                    return
                await self._clock.sleep(0.5 * 2**attempt)

    async def _create(self, record: _Record) -> None:
        body = dict(record.body)
        body["count"] = record.count
        body["lastTimestamp"] = record.last_timestamp
        try:
            await self.client.create(EVENTS, body, record.namespace)
        except ApiError as err:
            if err.code != 409:
                raise
            # Already there (an earlier create whose answer was lost): bring it up to date.
            await self._patch(record, after_conflict=True)
        record.created = True

    async def _patch(self, record: _Record, after_conflict: bool = False) -> None:
        patch = {"count": record.count, "lastTimestamp": record.last_timestamp}
        try:
            await self.client.patch(
                EVENTS, record.name, patch, record.namespace, patch_type=PatchType.MERGE
            )
        except ApiError as err:
            if err.code != 404 or after_conflict:
                raise
            record.created = False  # gone (TTL or deleted): create it again
            await self._create(record)

    # -- waiting and stopping -----------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every event recorded so far has been written (or given up on)."""
        waiting = [r.written for r in list(self._pending)]
        if self._in_flight is not None:
            waiting.append(self._in_flight.written)
        for written in waiting:
            await written.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Flush for at most `timeout` seconds, then stop the writer."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout)
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None


def involved_object(obj: Mapping[str, Any]) -> Object:
    """The `ObjectReference` an Event names for `obj`."""
    meta = obj.get("metadata") or {}
    kind, api_version, name = obj.get("kind"), obj.get("apiVersion"), meta.get("name")
    if not kind or not api_version or not name:
        raise ValueError("an event needs an object with kind, apiVersion and metadata.name")
    ref: Object = {"kind": kind, "apiVersion": api_version, "name": name}
    for src, dst in (
        ("namespace", "namespace"),
        ("uid", "uid"),
        ("resourceVersion", "resourceVersion"),
    ):
        if meta.get(src):
            ref[dst] = meta[src]
    return ref
