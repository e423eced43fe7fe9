"""Watch streams: one JSON event per line, flushed, served from the watch cache.

Semantics (Kubernetes' watch, as kubectl and client libraries rely on them):

* `resourceVersion` unset or "0": synthetic ADDED events for the current state, then live.
* `resourceVersion=N`: every change after N, then live; N older than the cache's history →
  one `ERROR` event carrying a 410 Expired Status, and the stream ends.
* `sendInitialEvents=true` (WatchList): the current state as ADDED, then a BOOKMARK annotated
  `k8s.io/initial-events-end`, then live.
* Selectors see transitions: an object that stops matching arrives as DELETED, one that starts
  matching as ADDED.
* `timeoutSeconds` ends the stream cleanly; `allowWatchBookmarks` adds periodic BOOKMARKs.
* A watcher that falls behind the cache's bounded log is disconnected; its client relists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from kubeling.api import errors
from kubeling.api.conversion import from_storage
from kubeling.api.kinds import ResourceInfo
from kubeling.api.selectors import FieldSelector, LabelSelector
from kubeling.apiserver import tables
from kubeling.apiserver.watchcache import (
    ADDED,
    DELETED,
    MODIFIED,
    CacheEvent,
    Expired,
    ResourceCache,
    WatchCaches,
)

BOOKMARK_INTERVAL = 30.0
# How often a blocked write checks whether its watcher has fallen off the shared log.
STUCK_CHECK_INTERVAL = 1.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass
class WatchRequest:
    info: ResourceInfo
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    resource_version: str
    timeout: float | None
    bookmarks: bool
    send_initial: bool
    table: bool
    include_object: str = "Metadata"


class WatchMetrics:
    """Counts shared with /metrics."""

    def __init__(self) -> None:
        self.open = 0
        self.closed_slow = 0


def _encode_event(req: WatchRequest, kind: str, obj: dict[str, Any]) -> bytes:
    view = from_storage(req.info, obj)
    if req.table:
        view = tables.render_table(
            req.info,
            [view],
            include_object=req.include_object,
            list_resource_version=view["metadata"].get("resourceVersion"),
        )
    return orjson.dumps({"type": kind, "object": view}) + b"\n"


def _bookmark(req: WatchRequest, revision: int, initial_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    obj = {"kind": req.info.kind, "apiVersion": req.info.api_version, "metadata": meta}
    return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


def _expired_event(err: Expired) -> bytes:
    status = errors.expired(str(err)).status()
    return orjson.dumps({"type": "ERROR", "object": status}) + b"\n"


def _matcher(req: WatchRequest) -> Callable[[dict[str, Any] | None], bool]:
    labels, fields = req.labels, req.fields

    def matches(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        return labels.matches(obj.get("metadata", {}).get("labels")) and fields.matches(obj)

    return matches


async def serve_watch(
    request: web.Request, req: WatchRequest, caches: WatchCaches, metrics: WatchMetrics
) -> web.StreamResponse:
    info = req.info
    cache = caches.cache_for(info.storage_prefix)
    key_prefix = info.storage_prefix + (
        f"{req.namespace}/" if info.namespaced and req.namespace else ""
    )
    name = req.fields.exact_name()
    matches = _matcher(req)
    plain = not req.table and info.group != "events.k8s.io"
    rv = req.resource_version
    expired: Expired | None = None
    initial: list[bytes] = []

    if rv not in ("", "0"):
        try:
            wanted = int(rv)
        except ValueError:
            raise errors.bad_request(f'invalid resource version "{rv}"') from None
        try:
            await caches.wait_for(wanted, timeout=3.0)
        except TimeoutError:
            raise errors.ApiError(
                504, "Timeout", f"Too large resource version: {wanted}, current: {caches.revision}"
            ) from None
    # No await from here to the cursor: the snapshot and the cursor agree.
    if rv in ("", "0") or req.send_initial:
        for key, obj in sorted(cache.objects.items()):
            if key.startswith(key_prefix) and matches(obj):
                initial.append(_encode_event(req, ADDED, obj))
        cursor = cache.end
        if req.send_initial:
            initial.append(_bookmark(req, caches.revision, initial_end=True))
    else:
        try:
            cursor = cache.start_index(int(rv))
        except Expired as err:
            expired = err
            cursor = cache.end

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    metrics.open += 1
    try:
        if expired is not None:
            await response.write(_expired_event(expired))
            return response
        if initial:
            await response.write(b"".join(initial))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.timeout if req.timeout else None
        last_sent = time.monotonic()
        while True:
            events = cache.events_from(cursor)
            if events is None:
                metrics.closed_slow += 1
                return response
            cursor += len(events)
            chunk = _render(req, events, key_prefix, name, matches, plain)
            if chunk:
                if not await _send(request, response, chunk, cache, cursor):
                    metrics.closed_slow += 1
                    return response
                last_sent = time.monotonic()
            wait = BOOKMARK_INTERVAL
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    return response
            await cache.wait_beyond(cursor, wait)
            if (
                req.bookmarks
                and cache.end == cursor
                and time.monotonic() - last_sent >= BOOKMARK_INTERVAL
            ):
                await response.write(_bookmark(req, caches.revision))
                last_sent = time.monotonic()
    except (ConnectionResetError, asyncio.CancelledError):
        return response
    finally:
        metrics.open -= 1


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    chunk: bytes,
    cache: ResourceCache,
    cursor: int,
) -> bool:
    """Write `chunk`; False (and the connection aborted) when the client stops reading long
    enough for the shared log to overtake this watcher while the write is blocked."""
    write = asyncio.ensure_future(response.write(chunk))
    try:
        while True:
            done, _ = await asyncio.wait({write}, timeout=STUCK_CHECK_INTERVAL)
            if done:
                write.result()
                return True
            if cache.events_from(cursor) is None:
                if request.transport is not None:
                    request.transport.abort()
                return False
    finally:
        if not write.done():
            write.cancel()


def _render(
    req: WatchRequest,
    events: list[CacheEvent],
    key_prefix: str,
    name: str | None,
    matches: Callable[[dict[str, Any] | None], bool],
    plain: bool,
) -> bytes:
    out: list[bytes] = []
    for ev in events:
        if not ev.key.startswith(key_prefix):
            continue
        if name is not None and ev.obj.get("metadata", {}).get("name") != name:
            continue
        now, before = matches(ev.obj), matches(ev.prev)
        if ev.type == DELETED:
            kind = DELETED if before or now else ""
        elif now and before:
            kind = MODIFIED
        elif now:
            kind = ADDED
        elif before:
            kind = DELETED
        else:
            kind = ""
        if kind == DELETED and ev.type != DELETED and ev.prev is not None:
            # Left the selector: the watcher is told about the object it knew (the previous
            # state), at the revision of the change, as Kubernetes' watch cache does.
            gone = {
                **ev.prev,
                "metadata": {**ev.prev.get("metadata", {}), "resourceVersion": str(ev.revision)},
            }
            out.append(_encode_event(req, kind, gone))
            continue
        if not kind:
            continue
        if plain and kind == ev.type:
            out.append(ev.line())
        else:
            out.append(_encode_event(req, kind, ev.obj))
    return b"".join(out)
