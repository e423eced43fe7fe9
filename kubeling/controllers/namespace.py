"""The namespace controller: empties a namespace being deleted, then lets it go.

Deleting a Namespace only marks it (`deletionTimestamp`, `status.phase: Terminating`); the
`kubernetes` entry in `spec.finalizers` keeps it until this controller has deleted everything
in it. Reconcile, for a namespace being deleted that still carries the finalizer:

    delete every namespaced object in it (each resource with one deletecollection)
    → anything left (graceful pods, objects with finalizers)? check again in a moment
    → nothing left: remove `kubernetes` from spec.finalizers through `namespaces/<n>/finalize`,
      and the API server deletes the namespace.

Level-based and idempotent: a second run deletes what is left and finalizes at most once
(the finalize write is a compare-and-swap on the namespace's resourceVersion).
"""

from __future__ import annotations

import logging

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY, Registry, ResourceInfo
from kubeling.client.cache import copy
from kubeling.client.informer import Informer
from kubeling.client.rest import Client, DeleteOptions
from kubeling.reconcile import Controller, Manager, Result

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
RECHECK_SECONDS = 1.0


def namespaced_resources(registry: Registry = REGISTRY) -> list[ResourceInfo]:
    """Each stored namespaced resource once (events.k8s.io Events are core Events)."""
    seen: set[str] = set()
    out: list[ResourceInfo] = []
    for info in registry.resources:
        if info.namespaced and "deletecollection" in info.verbs and info.storage_prefix not in seen:
            seen.add(info.storage_prefix)
            out.append(info)
    return out


class NamespaceReconciler:
    def __init__(self, client: Client, namespaces: Informer) -> None:
        self.client = client
        self.namespaces = namespaces
        self.namespace_info = REGISTRY.by_path("", "v1", "namespaces")
        self.resources = namespaced_resources()

    async def reconcile(self, key: str) -> Result:
        namespace = self.namespaces.cache.get(key)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return Result()
        if FINALIZER not in ((namespace.get("spec") or {}).get("finalizers") or []):
            return Result()
        if await self._delete_contents(key):
            return Result(requeue_after=RECHECK_SECONDS)
        finalized = copy(namespace)
        spec = finalized.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
        assert self.namespace_info is not None
        try:
            await self.client.update(self.namespace_info, finalized, subresource="finalize")
        except ApiError as err:
            if err.code == 404:
                return Result()
            raise
        log.info("namespace %s emptied and finalized", key)
        return Result()

    async def _delete_contents(self, namespace: str) -> bool:
        """Delete everything in `namespace`; True while something is still there."""
        remaining = False
        for info in self.resources:
            await self.client.delete_collection(
                info, namespace, options=DeleteOptions(propagation_policy="Background")
            )
            remaining = remaining or bool((await self.client.list(info, namespace)).items)
        return remaining


def namespace_controller(client: Client, manager: Manager) -> Controller:
    """The controller, wired to the manager's shared namespace informer."""
    info = REGISTRY.by_path("", "v1", "namespaces")
    assert info is not None
    informer = manager.informers.informer(info)
    controller = Controller("namespace", NamespaceReconciler(client, informer))
    controller.watch(informer)
    manager.add(controller)
    return controller
