"""The generic REST registry: Kubernetes' write semantics over the `Store`, for every kind.

Each verb follows the steps of Kubernetes' generic registry, in the same order, so errors come
out with the same precedence a Kubernetes user knows:

    decode → strict field check (400) → server-owned metadata → defaults → validation (422)
    → namespace exists (404 / 403 terminating) → allocation (Services) → compare-and-swap write

Writes are optimistic: an update reads the stored object, computes the new one and writes it
with `expected_revision` = the revision it read. If another writer won the race and the
client did not pin a resourceVersion, the update is recomputed from the fresh object (as
Kubernetes' `GuaranteedUpdate`); if the client pinned one, it gets 409 Conflict. A write that
changes nothing is not written (resourceVersion does not move), as in Kubernetes.
"""

from __future__ import annotations

import base64
import binascii
import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from kubeling.api import defaults, errors, rules, validation
from kubeling.api.conversion import from_storage, storage_kind, to_storage
from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.api.prune import prune_unknown
from kubeling.api.schema import kind_schema
from kubeling.api.selectors import EVERYTHING, FieldSelector, LabelSelector
from kubeling.apiserver import admission, objectmeta, pitfalls
from kubeling.apiserver.allocators import (
    AllocationError,
    ServiceAllocator,
    drop_type_dependent_fields,
)
from kubeling.apiserver.watchcache import WatchCaches, decode_object
from kubeling.storage import Compacted, Conflict, FutureRevision, KeyExists, KeyNotFound, Store
from kubeling.util.keyedlock import KeyedLock
from kubeling.util.timefmt import format_time, now_rfc3339, utcnow

NAMESPACES = REGISTRY.by_path("", "v1", "namespaces")
SERVICES = REGISTRY.by_path("", "v1", "services")
_MAX_RETRIES = 16
_SPEC = frozenset(("spec",))


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    field_manager: str = ""
    force: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class DeleteOptions:
    grace_period: int | None = None
    propagation: str | None = None  # Orphan | Background | Foreground
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False


@dataclass
class ListResult:
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


Mutation = Callable[[dict[str, Any]], dict[str, Any]]


def _key_namespace(info: ResourceInfo, namespace: str | None) -> str:
    return info.storage_prefix + (f"{namespace}/" if info.namespaced and namespace else "")


def encode_continue(revision: int, last_key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise errors.bad_request(f"continue key is not valid: {token!r}") from None


class ObjectRegistry:
    def __init__(
        self,
        store: Store,
        caches: WatchCaches,
        allocator: ServiceAllocator,
        gc_enabled: bool = False,
    ) -> None:
        self.store = store
        self.caches = caches
        self.allocator = allocator
        # Propagation finalizers (foregroundDeletion, orphan) are only added when a garbage
        # collector runs to remove them; without one they would block every delete forever.
        self.gc_enabled = gc_enabled
        self._key_locks = KeyedLock()
        self._neighbours = pitfalls.CachedNeighbours(caches)
        self._admission = admission.Admission(caches)

    # -- reads --------------------------------------------------------------------------------

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> dict[str, Any]:
        kv = await self.store.get(info.storage_key(namespace, name))
        if kv is None:
            raise errors.not_found(info.qualified, name, info.group)
        return from_storage(info, decode_object(kv.value, kv.mod_revision))

    async def list(
        self,
        info: ResourceInfo,
        namespace: str | None,
        labels: LabelSelector = EVERYTHING,
        fields: FieldSelector | None = None,
        *,
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        match: str = "",
    ) -> ListResult:
        fields = fields or FieldSelector()
        prefix = _key_namespace(info, namespace)

        def keep(obj: dict[str, Any]) -> bool:
            meta = obj.get("metadata", {})
            return labels.matches(meta.get("labels")) and fields.matches(obj)

        if resource_version == "0" and not continue_token and match != "Exact":
            return self._list_from_cache(info, prefix, keep)
        if resource_version and not continue_token and match != "Exact":
            await self._wait_for_cache(int_rv(resource_version))
            return self._list_from_cache(info, prefix, keep)
        revision, start = 0, ""
        if continue_token:
            revision, start = decode_continue(continue_token)
        elif match == "Exact":
            revision = int_rv(resource_version)
        items: builtins.list[dict[str, Any]] = []
        more = False
        while True:
            try:
                page = await self.store.list(
                    prefix,
                    revision=revision,
                    start_after=start,
                    limit=(limit - len(items)) if limit else 0,
                )
            except Compacted:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                    if continue_token
                    else f"too old resource version: {revision}"
                ) from None
            except FutureRevision:
                raise ApiError(
                    504,
                    "Timeout",
                    f"Too large resource version: {revision}, current: "
                    f"{await self.store.current_revision()}",
                ) from None
            revision = page.revision
            for kv in page.items:
                obj = decode_object(kv.value, kv.mod_revision)
                if keep(obj):
                    items.append(from_storage(info, obj))
            more = page.more
            if not page.items or not more or not limit or len(items) >= limit:
                break
            start = page.items[-1].key
        if not (more and page.items):
            return ListResult(items, str(revision))
        last = page.items[-1].key
        remaining = None
        if labels.empty and fields.empty:
            # Kubernetes counts what is left only when no selector filters it.
            rest = await self.store.list(prefix, revision=revision, start_after=last)
            remaining = len(rest.items)
        return ListResult(items, str(revision), encode_continue(revision, last), remaining)

    def _list_from_cache(
        self, info: ResourceInfo, prefix: str, keep: Callable[[dict[str, Any]], bool]
    ) -> ListResult:
        cache = self.caches.cache_for(info.storage_prefix)
        items = [
            from_storage(info, obj)
            for key, obj in sorted(cache.objects.items())
            if key.startswith(prefix) and keep(obj)
        ]
        return ListResult(items, str(self.caches.revision))

    async def _wait_for_cache(self, revision: int) -> None:
        try:
            await self.caches.wait_for(revision, timeout=3.0)
        except TimeoutError:
            raise ApiError(
                504,
                "Timeout",
                f"Too large resource version: {revision}, current: {self.caches.revision}",
            ) from None

    # -- create -------------------------------------------------------------------------------

    def _decode_checks(
        self,
        info: ResourceInfo,
        obj: dict[str, Any],
        opts: WriteOptions,
        strategic_patch: Any = None,
        known_clean: frozenset[str] = frozenset(),
    ) -> tuple[dict[str, Any], builtins.list[errors.Cause]]:
        """Structure, unknown fields (per fieldValidation) and pruning of an incoming object;
        returns the pruned object and the required fields it lacks.

        Unknown fields under Strict are a 400, except after a strategic merge patch, where
        Kubernetes reports them as an invalid `patch` (422) naming the patch it applied.
        `known_clean`: top-level fields known to pass (see `_stored_spec`)."""
        report = validation.check_structure(info, obj, known_clean)
        if report.type_errors:
            raise errors.bad_request(report.type_errors[0])
        if report.unknown_fields:
            if opts.field_validation == "Strict":
                strict = validation.strict_error(info, report.unknown_fields)
                if strategic_patch is None:
                    raise strict
                detail = strict.message.split("strict decoding error: ", 1)[-1]
                cause = errors.invalid_value(
                    "patch",
                    orjson.dumps(strategic_patch).decode(),
                    f"strict decoding error: {detail}",
                )
                raise errors.invalid("", "", [cause])
            if opts.field_validation == "Warn":
                opts.warnings.extend(validation.warning_texts(report.unknown_fields))
            obj = prune_unknown(obj, kind_schema(info.group, info.version, info.kind))
        return obj, report.missing

    def _stored_spec(
        self, info: ResourceInfo, namespace: str | None, name: str, obj: dict[str, Any]
    ) -> frozenset[str] | None:
        """`{"spec"}` if a status write's body carries the spec of the stored object, byte for
        byte (as clients send back the object they read), else None.

        A status write ignores the spec it is sent, but decoding still checks its types, as
        Kubernetes' does. The stored spec passed that check when it was written (every write
        path checks its body and prunes unknown fields; defaults add only well-typed known
        fields), so checking an identical copy again cannot find anything: a third of a Pod
        status write's cost. Bytes, not `==`: `1.0 == 1 == True` in Python, not in Go's
        decoder. Any stored version will do (a stale cache entry too): all passed."""
        if not self.caches.healthy or storage_kind(info) is not info or "spec" not in obj:
            return None
        key = info.storage_key(namespace, name)
        stored = self.caches.cache_for(info.storage_prefix).objects.get(key)
        if stored is None or stored.get("apiVersion") != obj.get("apiVersion"):
            return None
        if orjson.dumps(stored.get("spec")) != orjson.dumps(obj["spec"]):
            return None
        return _SPEC

    def _validate(
        self,
        info: ResourceInfo,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        missing: builtins.list[errors.Cause],
        subresource: str = "",
    ) -> None:
        if old is not None and subresource == "status":
            found = rules.validate_status_update(info, obj, old)
        elif old is not None and subresource == "binding":
            found = rules.validate_binding(obj, old)
        else:
            found = rules.validate(info, obj, old)
        # The schema's required fields and the rules may name the same field: report it once.
        causes = list(dict.fromkeys([*missing, *found]))
        if old is not None:
            causes.extend(_finalizer_causes(obj, old))
        if causes:
            name = obj.get("metadata", {}).get("name", "")
            raise errors.invalid(info.kind, name, causes, info.group)

    async def _check_namespace(self, info: ResourceInfo, namespace: str | None, name: str) -> None:
        if not info.namespaced or NAMESPACES is None:
            return
        kv = await self.store.get(NAMESPACES.storage_key(None, namespace or ""))
        if kv is None:
            raise errors.not_found("namespaces", namespace or "")
        if orjson.loads(kv.value).get("metadata", {}).get("deletionTimestamp"):
            err = errors.forbidden(
                f'{info.qualified} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated"
            )
            err.causes = [
                errors.Cause(
                    "", f"namespace {namespace} is being terminated", "NamespaceTerminating"
                )
            ]
            raise err

    async def create(
        self, info: ResourceInfo, namespace: str | None, body: dict[str, Any], opts: WriteOptions
    ) -> dict[str, Any]:
        obj = self._set_type(info, body)
        _check_namespace_field(info, obj, namespace)
        if obj.get("metadata", {}).get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        obj, missing = self._decode_checks(info, obj, opts)
        stored = to_storage(info, obj)
        kind = storage_kind(info)
        objectmeta.prepare_create(kind, stored)
        name = stored["metadata"].get("name", "")
        # Admission (the namespace must exist and not be terminating) precedes validation.
        await self._check_namespace(info, namespace, name)
        defaults.apply_defaults(kind, stored)
        self._admission.on_create(kind, stored)
        self._validate(kind, stored, None, missing)
        self._allocate(info, stored, None)
        opts.warnings.extend(pitfalls.warnings(kind, stored, None, self._neighbours))
        if opts.dry_run:
            self._unallocate(info, stored, None)
            return from_storage(info, stored)
        try:
            kv = await self.store.create(info.storage_key(namespace, name), _encode(stored))
        except KeyExists:
            self._unallocate(info, stored, None)
            raise errors.already_exists(info.qualified, name, info.group) from None
        except BaseException:
            self._unallocate(info, stored, None)
            raise
        return from_storage(info, _stored_at(stored, kv.mod_revision))

    # -- update -------------------------------------------------------------------------------

    async def update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> tuple[dict[str, Any], bool]:
        """PUT: replace the object (or its status) with `body`; returns (object, created).

        Kinds that allow it (Leases, Endpoints, Events) are created by a PUT when missing."""
        if info.create_on_update and not subresource:
            key = info.storage_key(namespace, name)
            if await self.store.get(key) is None:
                created = dict(body) if isinstance(body, dict) else body
                if isinstance(created, dict):
                    meta = dict(created.get("metadata") or {})
                    meta.pop("resourceVersion", None)
                    meta.setdefault("name", name)
                    created["metadata"] = meta
                try:
                    return await self.create(info, namespace, created, opts), True
                except ApiError as err:
                    if err.reason != "AlreadyExists":
                        raise
        obj = self._set_type(info, body)
        _check_namespace_field(info, obj, namespace)
        body_name = obj.get("metadata", {}).get("name")
        if body_name and body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        obj.setdefault("metadata", {})["name"] = name
        clean = self._stored_spec(info, namespace, name, obj) if subresource == "status" else None
        obj, missing = self._decode_checks(info, obj, opts, known_clean=clean or frozenset())
        pinned = obj.get("metadata", {}).get("resourceVersion") or ""
        written = await self._write(
            info,
            namespace,
            name,
            lambda _current: obj,
            opts,
            subresource=subresource,
            pinned=pinned,
            missing=missing,
        )
        return written, False

    async def patch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        apply_patch: Mutation,
        opts: WriteOptions,
        *,
        subresource: str = "",
        create_with: dict[str, Any] | None = None,
        strategic_patch: Any = None,
    ) -> tuple[dict[str, Any], bool]:
        """PATCH: `apply_patch(current)` gives the new object; returns (object, created).

        `create_with` is the object to create when none exists (server-side apply)."""
        key = info.storage_key(namespace, name)
        if create_with is not None and await self.store.get(key) is None:
            create_with.setdefault("metadata", {})["name"] = name
            try:
                return await self.create(info, namespace, create_with, opts), True
            except ApiError as err:
                if err.reason != "AlreadyExists":
                    raise
        state: dict[str, Any] = {}

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            patched = apply_patch(current)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            patched = self._set_type(info, patched)
            patched, state["missing"] = self._decode_checks(info, patched, opts, strategic_patch)
            meta = patched.setdefault("metadata", {})
            if meta.get("name") != name:
                raise errors.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on "
                    f"the URL ({name})"
                )
            return patched

        obj = await self._write(
            info,
            namespace,
            name,
            mutate,
            opts,
            subresource=subresource,
            pinned_from_result=True,
            missing_state=state,
        )
        return obj, False

    async def _write(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        mutate: Mutation,
        opts: WriteOptions,
        *,
        subresource: str = "",
        pinned: str = "",
        pinned_from_result: bool = False,
        missing: builtins.list[errors.Cause] | None = None,
        missing_state: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        key = info.storage_key(namespace, name)
        # Writers of one object queue here; the retries are for writers elsewhere.
        async with self._key_locks.hold(key):
            # The first attempt reads the watch cache, not the store (Kubernetes' GuaranteedUpdate
            # does the same with its cached object): the compare-and-swap below makes a stale
            # read harmless, and every outcome a stale read could change (a conflict, "nothing to
            # change", a version mismatch) is decided again from the store.
            cached = None if opts.dry_run else self._cached(info, key)
            for _attempt in range(_MAX_RETRIES + (cached is not None)):
                from_cache, cached = cached, None
                if from_cache is not None:
                    old, revision = from_cache
                else:
                    kv = await self.store.get(key)
                    if kv is None:
                        raise errors.not_found(info.qualified, name, info.group)
                    old, revision = decode_object(kv.value, kv.mod_revision), kv.mod_revision
                view = objectmeta.deep_copy(from_storage(info, old))
                new_view = mutate(view)
                if pinned_from_result:
                    # A patch pins the version only if it names one other than the one it was
                    # applied to; otherwise a concurrent write just means patching again.
                    named = new_view.get("metadata", {}).get("resourceVersion") or ""
                    pinned = named if named != str(revision) else ""
                if pinned and pinned != str(revision):
                    if from_cache is not None:
                        continue
                    raise errors.conflict(info.qualified, name, errors.STALE_OBJECT, info.group)
                new = to_storage(info, new_view)
                kind = storage_kind(info)
                if info is SERVICES and subresource == "":
                    drop_type_dependent_fields(new.setdefault("spec", {}), old.get("spec") or {})
                if subresource == "status":
                    new = objectmeta.prepare_status_update(new, old)
                else:
                    wanted_status = new.get("status")
                    objectmeta.prepare_update(kind, new, old)
                    if subresource == "binding" and wanted_status is not None:
                        # A binding sets spec.nodeName and the PodScheduled condition in one write.
                        new["status"] = wanted_status
                if subresource in ("status", "binding"):
                    # Only the status (and a binding's nodeName, which no default reads) is new.
                    objectmeta.default_status(kind, new)
                else:
                    defaults.apply_defaults(kind, new)
                if missing_state is not None:
                    missing = missing_state.get("missing")
                self._validate(
                    kind, new, old, (missing or []) if subresource != "status" else [], subresource
                )
                if subresource not in ("status", "binding"):
                    self._allocate(info, new, old)
                new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                if new == old:
                    if from_cache is not None and not await self._current(key, revision):
                        continue
                    return from_storage(info, old)
                # Warnings of a write that is retried come from its last attempt only.
                found = [] if subresource else pitfalls.warnings(kind, new, old, self._neighbours)
                if opts.dry_run:
                    self._unallocate(info, new, old)
                    opts.warnings.extend(found)
                    return from_storage(info, new)
                if _finished_finalizing(new):
                    try:
                        return from_storage(info, await self._delete_now(info, key, new, revision))
                    except _Retry:
                        continue
                try:
                    written = await self.store.update(key, _encode(new), expected_revision=revision)
                except Conflict:
                    self._unallocate(info, new, old)
                    if pinned and from_cache is None:
                        raise errors.conflict(
                            info.qualified, name, errors.STALE_OBJECT, info.group
                        ) from None
                    continue
                except KeyNotFound:
                    self._unallocate(info, new, old)
                    if from_cache is not None:
                        continue
                    raise errors.not_found(info.qualified, name, info.group) from None
                self._release_dropped(info, new, old)
                opts.warnings.extend(found)
                return from_storage(info, _stored_at(new, written.mod_revision))
            raise errors.ApiError(
                409, "Conflict", f"too many concurrent writes to {info.qualified} {name!r}"
            )

    def _cached(self, info: ResourceInfo, key: str) -> tuple[dict[str, Any], int] | None:
        """A private copy of `key` from the watch cache and its revision, if it holds it."""
        if not self.caches.healthy:
            return None
        obj = self.caches.cache_for(info.storage_prefix).objects.get(key)
        if obj is None:
            return None
        revision = int(obj["metadata"]["resourceVersion"])
        return decode_object(orjson.dumps(obj), revision), revision

    async def _current(self, key: str, revision: int) -> bool:
        """Is `revision` still the store's latest of `key`?"""
        kv = await self.store.get(key)
        return kv is not None and kv.mod_revision == revision

    async def update_with(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        mutate: Mutation,
        opts: WriteOptions,
        *,
        subresource: str = "",
        pinned: str = "",
    ) -> dict[str, Any]:
        """Read-modify-write with a server-side mutation (scale, binding, finalize)."""
        return await self._write(
            info, namespace, name, mutate, opts, subresource=subresource, pinned=pinned, missing=[]
        )

    # -- delete -------------------------------------------------------------------------------

    async def delete(
        self, info: ResourceInfo, namespace: str | None, name: str, options: DeleteOptions
    ) -> tuple[dict[str, Any], bool]:
        """Delete or begin deleting; returns (object, deleted_now)."""
        key = info.storage_key(namespace, name)
        async with self._key_locks.hold(key):
            return await self._delete_attempts(info, key, name, options)

    async def _delete_attempts(
        self, info: ResourceInfo, key: str, name: str, options: DeleteOptions
    ) -> tuple[dict[str, Any], bool]:
        for _attempt in range(_MAX_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise errors.not_found(info.qualified, name, info.group)
            old = decode_object(kv.value, kv.mod_revision)
            meta = old.get("metadata", {})
            if options.precondition_uid and options.precondition_uid != meta.get("uid"):
                raise errors.conflict(
                    info.qualified,
                    name,
                    f"Precondition failed: UID in precondition: "
                    f"{options.precondition_uid}, UID in object meta: {meta.get('uid')}",
                    info.group,
                )
            if options.precondition_rv and options.precondition_rv != meta.get("resourceVersion"):
                raise errors.conflict(
                    info.qualified,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{options.precondition_rv}, ResourceVersion in object meta: "
                    f"{meta.get('resourceVersion')}",
                    info.group,
                )
            new = self._begin_deletion(info, old, options)
            if new is None:
                if options.dry_run:
                    return from_storage(info, old), True
                try:
                    return from_storage(
                        info, await self._delete_now(info, key, old, kv.mod_revision)
                    ), True
                except _Retry:
                    continue
            if new == old or options.dry_run:
                return from_storage(info, new), False
            try:
                written = await self.store.update(
                    key, _encode(new), expected_revision=kv.mod_revision
                )
            except (Conflict, KeyNotFound):
                continue
            return from_storage(info, decode_object(written.value, written.mod_revision)), False
        raise errors.ApiError(
            409, "Conflict", f"too many concurrent writes to {info.qualified} {name!r}"
        )

    def _begin_deletion(
        self, info: ResourceInfo, old: dict[str, Any], options: DeleteOptions
    ) -> dict[str, Any] | None:
        """The object marked for deletion, or None when it can go at once."""
        meta = old.get("metadata", {})
        finalizers = list(meta.get("finalizers") or [])
        if self.gc_enabled:
            policy = options.propagation
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            elif policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
        grace = _grace_period(info, old, options)
        namespace_pending = (info.kind, info.group) == ("Namespace", "") and (
            (old.get("spec") or {}).get("finalizers")
        )
        if not finalizers and not grace and not namespace_pending:
            return None
        new = objectmeta.deep_copy(old)
        new_meta = new["metadata"]
        if finalizers != (meta.get("finalizers") or []):
            new_meta["finalizers"] = finalizers
        if not new_meta.get("deletionTimestamp"):
            new_meta["deletionTimestamp"] = now_rfc3339() if not grace else _in_seconds(grace)
            new_meta["deletionGracePeriodSeconds"] = grace
            if info.tracks_generation:
                new_meta["generation"] = int(new_meta.get("generation") or 0) + 1
        elif grace < int(new_meta.get("deletionGracePeriodSeconds") or 0):
            new_meta["deletionTimestamp"] = _in_seconds(grace)
            new_meta["deletionGracePeriodSeconds"] = grace
        if namespace_pending:
            new.setdefault("status", {})["phase"] = "Terminating"
        if grace == 0 and not finalizers and not namespace_pending:
            return None
        return new

    async def _delete_now(
        self, info: ResourceInfo, key: str, obj: dict[str, Any], revision: int
    ) -> dict[str, Any]:
        try:
            deleted = await self.store.delete(key, expected_revision=revision)
        except (Conflict, KeyNotFound):
            raise _Retry() from None
        if info is SERVICES:
            self.allocator.release(obj.get("spec") or {})
        return decode_object(deleted.value, deleted.mod_revision)

    async def delete_collection(
        self,
        info: ResourceInfo,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        options: DeleteOptions,
    ) -> ListResult:
        listing = await self.list(info, namespace, labels, fields)
        deleted: builtins.list[dict[str, Any]] = []
        for obj in listing.items:
            meta = obj["metadata"]
            try:
                item, _ = await self.delete(info, meta.get("namespace"), meta["name"], options)
            except ApiError as err:
                if err.code == 404:
                    continue
                raise
            deleted.append(item)
        return ListResult(deleted, str(await self.store.current_revision()))

    # -- helpers ------------------------------------------------------------------------------

    def _set_type(self, info: ResourceInfo, body: dict[str, Any]) -> dict[str, Any]:
        """Check or fill in apiVersion/kind: clients may omit them, never contradict the URL."""
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        obj = dict(body)
        api_version = obj.get("apiVersion") or info.api_version
        kind = obj.get("kind") or info.kind
        if api_version != info.api_version or kind != info.kind:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({info.api_version})"
                if api_version != info.api_version
                else f'{kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                f"kind {kind!r} does not match the resource ({info.kind})"
            )
        obj["apiVersion"], obj["kind"] = api_version, kind
        if not isinstance(obj.get("metadata", {}), dict):
            raise errors.bad_request("metadata must be an object")
        return obj

    def _allocate(
        self, info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if info is not SERVICES:
            return
        try:
            meta = obj["metadata"]
            self.allocator.allocate(
                obj.setdefault("spec", {}),
                (old or {}).get("spec"),
                owner=f"{meta.get('namespace')}/{meta.get('name')}",
            )
        except AllocationError as err:
            raise errors.invalid(info.kind, obj["metadata"].get("name", ""), [err.cause]) from None

    def _unallocate(
        self, info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if info is SERVICES:
            self.allocator.undo(obj.get("spec") or {}, (old or {}).get("spec"))

    def _release_dropped(
        self, info: ResourceInfo, new: dict[str, Any], old: dict[str, Any]
    ) -> None:
        if info is SERVICES and (new.get("spec") or {}).get("type") == "ExternalName":
            self.allocator.release(old.get("spec") or {})


class _Retry(Exception):
    """The stored object changed between read and delete: start over."""


def int_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{text}"') from None
    if value < 0:
        raise errors.bad_request(f'invalid resource version "{text}"')
    return value


def _stored_at(obj: dict[str, Any], revision: int) -> dict[str, Any]:
    """The object just written, as a reader will see it (saves decoding what we encoded)."""
    obj["metadata"]["resourceVersion"] = str(revision)
    return obj


def _encode(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata")
    if meta and "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return orjson.dumps(obj)


def _check_namespace_field(info: ResourceInfo, obj: dict[str, Any], namespace: str | None) -> None:
    meta = obj.setdefault("metadata", {})
    if not info.namespaced:
        meta.pop("namespace", None)
        return
    given = meta.get("namespace")
    if given and given != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    meta["namespace"] = namespace


def _grace_period(info: ResourceInfo, obj: dict[str, Any], options: DeleteOptions) -> int:
    """Only pods bound to a node delete gracefully (their kubelet finishes the job)."""
    if (info.group, info.kind) != ("", "Pod"):
        return 0
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = options.grace_period
    if grace is None:
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
    return max(grace, 0)


def _in_seconds(seconds: int) -> str:
    return format_time(utcnow() + timedelta(seconds=seconds))


def _finished_finalizing(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata", {})
    return bool(
        meta.get("deletionTimestamp")
        and not meta.get("finalizers")
        and not meta.get("deletionGracePeriodSeconds")
        and not (obj.get("kind") == "Namespace" and (obj.get("spec") or {}).get("finalizers"))
    )


def _finalizer_causes(obj: dict[str, Any], old: dict[str, Any]) -> list[errors.Cause]:
    old_meta = old.get("metadata", {})
    if not old_meta.get("deletionTimestamp"):
        return []
    added = set(obj.get("metadata", {}).get("finalizers") or []) - set(
        old_meta.get("finalizers") or []
    )
    if not added:
        return []
    return [
        errors.forbidden_field(
            "metadata.finalizers",
            f"no new finalizers can be added if the object is being deleted, found new finalizers "
            f"{sorted(added)}",
        )
    ]
