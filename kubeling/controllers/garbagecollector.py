"""The garbage collector: deletes dependents whose owners are gone and runs the
`foregroundDeletion` and `orphan` finalizers (Kubernetes' garbagecollector, simplified).

One informer per REGISTRY resource that can be listed and watched; each cache is indexed by
the uids in `ownerReferences`, so an owner's dependents are found without a scan. Keys are
`<plural>.<group>/<namespace>/<name>`, the namespace empty when cluster-scoped (e.g.
`replicasets.apps/default/web`, `nodes.//n1`). An event on an object
queues its own key and the keys of its dependents. Reconcile, for one key:

    being deleted with `foregroundDeletion` → delete every dependent (Foreground, uid
        precondition); once none with `blockOwnerDeletion: true` remains, remove the finalizer
    being deleted with `orphan` → drop the ownerReferences to it from every dependent, then
        remove the finalizer
    its ownerReferences → an owner is absent when neither the owner kind's cache nor a GET
        from the server shows an object of that name with that uid (the server is always
        asked before acting, so a stale cache never causes a delete); all absent → delete it
        (Background, uid precondition); some absent → patch away the dangling references.

Owners of namespaced dependents are looked up in the dependent's namespace. A reference to
an unknown kind, or from a cluster-scoped dependent to a namespaced kind, is left alone.
Writes carry the read resourceVersion (compare-and-swap); a conflict raises and the queue
retries. Level-based and idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY, Registry, ResourceInfo
from kubeling.client.cache import Object
from kubeling.client.informer import Informer
from kubeling.client.rest import Client, DeleteOptions
from kubeling.reconcile import Controller, Manager, Result

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
OWNER_INDEX = "gc-owner-uid"
RECHECK_SECONDS = 0.5


def gc_resources(registry: Registry = REGISTRY) -> list[ResourceInfo]:
    """Each stored resource that can be listed and watched, once."""
    seen: set[str] = set()
    out: list[ResourceInfo] = []
    for info in registry.resources:
        if {"list", "watch"} <= set(info.verbs) and info.storage_prefix not in seen:
            seen.add(info.storage_prefix)
            out.append(info)
    return out


def owner_uids(obj: Mapping[str, Any]) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [str(ref["uid"]) for ref in refs if ref.get("uid")]


def resource_key(info: ResourceInfo, namespace: str | None, name: str) -> str:
    return f"{info.plural}.{info.group}/{namespace or ''}/{name}"


class GarbageCollector:
    def __init__(self, client: Client, informers: Mapping[str, tuple[ResourceInfo, Informer]]):
        self.client = client
        self.informers = informers  # `<plural>.<group>` → (info, informer)

    # -- mapping ------------------------------------------------------------------------------

    def dependents(self, uid: str) -> list[tuple[ResourceInfo, Object]]:
        out: list[tuple[ResourceInfo, Object]] = []
        for info, informer in self.informers.values():
            out.extend((info, obj) for obj in informer.cache.by_index(OWNER_INDEX, uid))
        return out

    def mapper(self, info: ResourceInfo) -> Any:
        def keys(obj: Mapping[str, Any]) -> list[str]:
            meta = obj.get("metadata") or {}
            out = [resource_key(info, meta.get("namespace"), str(meta.get("name")))]
            if meta.get("uid"):
                for dep_info, dep in self.dependents(str(meta["uid"])):
                    dep_meta = dep["metadata"]
                    out.append(resource_key(dep_info, dep_meta.get("namespace"), dep_meta["name"]))
            return out

        return keys

    # -- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result:
        resource, namespace, name = key.split("/", 2)
        entry = self.informers.get(resource)
        if entry is None:
            return Result()
        info, informer = entry
        obj = informer.cache.get(f"{namespace}/{name}" if namespace else name)
        if obj is None:
            return Result()
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and FOREGROUND in finalizers:
            if await self._delete_dependents(info, obj):
                return Result(requeue_after=RECHECK_SECONDS)
        elif meta.get("deletionTimestamp") and ORPHAN in finalizers:
            await self._orphan_dependents(info, obj)
        if owner_uids(obj):
            await self._check_owners(info, obj)
        return Result()

    async def _remove_finalizer(self, info: ResourceInfo, obj: Object, finalizer: str) -> None:
        meta = obj["metadata"]
        rest = [f for f in meta.get("finalizers") or [] if f != finalizer]
        patch = {"metadata": {"finalizers": rest, "resourceVersion": meta["resourceVersion"]}}
        await self._ignore_missing(
            self.client.patch(info, meta["name"], patch, meta.get("namespace"))
        )
        log.info("%s %s: %s finalizer removed", info.kind, meta["name"], finalizer)

    async def _delete_dependents(self, info: ResourceInfo, owner: Object) -> bool:
        """Delete the owner's dependents; True while one blocks the owner's deletion."""
        uid = owner["metadata"]["uid"]
        blocking = False
        for dep_info, dep in self.dependents(uid):
            dep_meta = dep["metadata"]
            if any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in dep_meta.get("ownerReferences") or []
            ):
                blocking = True
            if not dep_meta.get("deletionTimestamp"):
                options = DeleteOptions(
                    propagation_policy="Foreground", precondition_uid=dep_meta["uid"]
                )
                await self._ignore_missing(
                    self.client.delete(
                        dep_info, dep_meta["name"], dep_meta.get("namespace"), options
                    )
                )
        if not blocking:
            await self._remove_finalizer(info, owner, FOREGROUND)
        return blocking

    async def _orphan_dependents(self, info: ResourceInfo, owner: Object) -> None:
        uid = owner["metadata"]["uid"]
        for dep_info, dep in self.dependents(uid):
            await self._set_owner_refs(dep_info, dep, {uid})
        await self._remove_finalizer(info, owner, ORPHAN)

    async def _set_owner_refs(self, info: ResourceInfo, obj: Object, drop: set[str]) -> None:
        meta = obj["metadata"]
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") not in drop]
        patch = {"metadata": {"ownerReferences": refs, "resourceVersion": meta["resourceVersion"]}}
        await self._ignore_missing(
            self.client.patch(info, meta["name"], patch, meta.get("namespace"))
        )

    async def _owner_exists(self, obj: Object, ref: Mapping[str, Any]) -> bool:
        owner_info = REGISTRY.by_api_version(str(ref.get("apiVersion")), str(ref.get("kind")))
        namespace = obj["metadata"].get("namespace")
        if owner_info is None or (owner_info.namespaced and not namespace):
            return True  # unresolvable: never delete on a guess
        owner_ns = namespace if owner_info.namespaced else None
        entry = self.informers.get(f"{owner_info.plural}.{owner_info.group}")
        if entry is not None:
            cached = entry[1].cache.get_by_name(owner_ns, str(ref.get("name")))
            if cached is not None and cached["metadata"].get("uid") == ref.get("uid"):
                return True
        try:
            live = await self.client.get(owner_info, str(ref.get("name")), owner_ns)
        except ApiError as err:
            if err.code == 404:
                return False
            raise
        return bool(live["metadata"].get("uid") == ref.get("uid"))

    async def _check_owners(self, info: ResourceInfo, obj: Object) -> None:
        meta = obj["metadata"]
        refs = meta.get("ownerReferences") or []
        absent = {str(r.get("uid")) for r in refs if not await self._owner_exists(obj, r)}
        if not absent:
            return
        if len(absent) < len(refs):
            await self._set_owner_refs(info, obj, absent)
            log.info("%s %s: dangling owner references removed", info.kind, meta["name"])
            return
        if meta.get("deletionTimestamp"):
            return
        options = DeleteOptions(propagation_policy="Background", precondition_uid=meta["uid"])
        await self._ignore_missing(
            self.client.delete(info, meta["name"], meta.get("namespace"), options)
        )
        log.info("%s %s: all owners gone, deleted", info.kind, meta["name"])

    @staticmethod
    async def _ignore_missing(call: Any) -> None:
        try:
            await call
        except ApiError as err:
            if err.code != 404:
                raise


def garbage_collector(client: Client, manager: Manager) -> Controller:
    """The controller, wired to one shared informer per listable resource."""
    informers: dict[str, tuple[ResourceInfo, Informer]] = {}
    for info in gc_resources():
        informer = manager.informers.informer(info)
        if not informer.cache.has_index(OWNER_INDEX):
            informer.cache.add_indexer(OWNER_INDEX, owner_uids)
        informers[f"{info.plural}.{info.group}"] = (info, informer)
    collector = GarbageCollector(client, informers)
    controller = Controller("garbagecollector", collector)
    for info, informer in informers.values():
        controller.watch(informer, collector.mapper(info))
    manager.add(controller)
    return controller
