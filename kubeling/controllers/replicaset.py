"""The ReplicaSet controller: keeps `spec.replicas` pods matching the selector alive.

Reconcile, for one ReplicaSet key (Kubernetes' `syncReplicaSet`, in miniature):

    claim   every active pod in the namespace (not terminal, not being deleted):
            ours and matching → keep; ours and no longer matching → release (drop our
            ownerReference); an orphan that matches → adopt (add one); another's → skip
    manage  only when the expectations are satisfied and the ReplicaSet is not being
            deleted: create `replicas - len(kept)` pods or delete the surplus
    status  replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
            observedGeneration; written through `replicasets/status` only when changed

Contract:

* **Never a double create.** Before creating n pods the controller expects n creations
  (`Expectations`), and does not manage the key again until the pod informer has shown
  them (or they failed, or 5 minutes passed). Deletes work the same way, by uid.
* **Slow start.** Creates go in batches of 1, 2, 4, … pods; the first failing batch ends
  the reconcile (raising, so the queue backs off) and the pods not attempted are reported
  as observed, so that a quota or admission error costs one pod, not `replicas` pods.
  At most `burst` (500) pods are created or deleted in one reconcile.
* **Delete order**, first to go: unscheduled before scheduled; Pending before Unknown
  before Running; not ready before ready; more restarts first; younger first. Worked
  example: pods a (Running, ready, node n1), b (Pending, no node), c (Running, not ready,
  node n1); scaling 3 → 1 deletes b (unscheduled), then c (not ready), and keeps a.
* A pod counts as available once Ready has been True for `minReadySeconds`; a reconcile
  that finds ready pods not yet available asks to run again when the first one will be.
* A deleted ReplicaSet leaves its pods alone (the garbage collector removes them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.api.selectors import LabelSelector, selector_from_spec
from kubeling.client.cache import Object, controller_ref, copy
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.reconcile import (
    Controller,
    Expectations,
    Manager,
    Result,
    TerminalError,
    owner_or_adopters,
)
from kubeling.util.timefmt import parse_time, utcnow

log = logging.getLogger(__name__)

KIND = "ReplicaSet"
API_VERSION = "apps/v1"
BURST_REPLICAS = 500
COMPONENT = "replicaset-controller"
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_active(pod: Mapping[str, Any]) -> bool:
    """Not finished and not being deleted (client-go's `IsPodActive`)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return condition
    return None


def is_ready(pod: Mapping[str, Any]) -> bool:
    return _ready_condition(pod) is not None


def available_in(pod: Mapping[str, Any], min_ready: int, now: datetime) -> float | None:
    """Seconds until the pod is available: 0 when it is, None when it is not ready."""
    condition = _ready_condition(pod)
    if condition is None:
        return None
    since = condition.get("lastTransitionTime")
    if min_ready <= 0 or not since:
        return 0.0
    return max(0.0, min_ready - (now - parse_time(since)).total_seconds())


def deletion_rank(pod: Mapping[str, Any]) -> tuple[int, int, int, int, float]:
    """Sort key: the pods to delete first sort first (see the module docstring)."""
    status = pod.get("status") or {}
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    created = pod["metadata"].get("creationTimestamp")
    age_key = -parse_time(created).timestamp() if created else 0.0
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        _PHASE_RANK.get(status.get("phase", "Pending"), 0),
        1 if is_ready(pod) else 0,
        -restarts,
        age_key,
    )


def owner_reference(rs: Mapping[str, Any]) -> Object:
    meta = rs["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(rs: Mapping[str, Any]) -> Object:
    template = (rs.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    meta: Object = {
        "generateName": f"{rs['metadata']['name']}-",
        "namespace": rs["metadata"]["namespace"],
        "ownerReferences": [owner_reference(rs)],
    }
    for field in ("labels", "annotations", "finalizers"):
        if template_meta.get(field):
            meta[field] = copy({field: template_meta[field]})[field]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy(template["spec"])}


class ReplicaSetReconciler:
    def __init__(
        self,
        client: Client,
        replicasets: Informer,
        pods: Informer,
        recorder: EventRecorder,
        expectations: Expectations,
        *,
        burst: int = BURST_REPLICAS,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.client = client
        self.replicasets = replicasets
        self.pods = pods
        self.recorder = recorder
        self.expectations = expectations
        self.burst = burst
        self.wall = wall
        self.pod_info = REGISTRY.resource("", "v1", "pods")
        self.rs_info = REGISTRY.resource("apps", "v1", "replicasets")

    async def reconcile(self, key: str) -> Result:
        rs = self.replicasets.cache.get(key)
        if rs is None:
            self.expectations.delete(key)
            return Result()
        spec = rs.get("spec") or {}
        try:
            selector = selector_from_spec(spec.get("selector"))
        except ValueError as err:
            raise TerminalError(f"{key}: invalid selector: {err}") from err
        if selector.empty:
            raise TerminalError(f"{key}: an empty selector would own every pod")
        deleting = bool(rs["metadata"].get("deletionTimestamp"))
        needs_sync = self.expectations.satisfied(key)
        pods = await self._claim(rs, selector, adopt=not deleting)
        if needs_sync and not deleting:
            await self._manage(key, rs, pods, int(spec.get("replicas", 1)))
        return await self._update_status(rs, pods)

    # -- claim --------------------------------------------------------------------------------

    async def _claim(
        self, rs: Mapping[str, Any], selector: LabelSelector, *, adopt: bool
    ) -> list[Object]:
        uid = rs["metadata"]["uid"]
        owned: list[Object] = []
        for pod in self.pods.cache.list(rs["metadata"]["namespace"]):
            if not is_active(pod):
                continue
            ref = controller_ref(pod)
            matches = selector.matches(pod["metadata"].get("labels"))
            if ref is not None and ref.get("uid") != uid:
                continue
            if ref is not None and matches:
                owned.append(pod)
            elif ref is not None and adopt:
                await self._set_owner(pod, rs, own=False)
            elif ref is None and matches and adopt:
                owned.append(await self._set_owner(pod, rs, own=True))
        return owned

    async def _set_owner(self, pod: Object, rs: Mapping[str, Any], *, own: bool) -> Object:
        """Adopt (`own`) or release the pod: a compare-and-swap on its resourceVersion."""
        meta = pod["metadata"]
        refs = [
            r for r in meta.get("ownerReferences") or [] if r.get("uid") != rs["metadata"]["uid"]
        ]
        if own:
            refs.append(owner_reference(rs))
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"], "ownerReferences": refs}}
        patched = await self.client.patch(self.pod_info, meta["name"], patch, meta["namespace"])
        log.info("%s %s/%s", "adopted" if own else "released", meta["namespace"], meta["name"])
        return patched

    # -- manage -------------------------------------------------------------------------------

    async def _manage(self, key: str, rs: Object, pods: list[Object], replicas: int) -> None:
        diff = len(pods) - replicas
        if diff < 0:
            await self._create(key, rs, min(-diff, self.burst))
        elif diff > 0:
            victims = sorted(pods, key=deletion_rank)[: min(diff, self.burst)]
            await self._delete(key, rs, victims)

    async def _create(self, key: str, rs: Object, count: int) -> None:
        self.expectations.expect_creations(key, count)
        template = pod_from_template(rs)
        done, batch = 0, 1
        while done < count:
            size = min(batch, count - done)
            results = await asyncio.gather(
                *(self._create_one(rs, template) for _ in range(size)), return_exceptions=True
            )
            done += size
            errors = [r for r in results if isinstance(r, BaseException)]
            for _ in errors:
                self.expectations.creation_observed(key)  # no event will come for it
            if errors:
                for _ in range(count - done):
                    self.expectations.creation_observed(key)
                raise errors[0]
            batch *= 2

    async def _create_one(self, rs: Object, template: Object) -> None:
        pod = await self.client.create(self.pod_info, template, rs["metadata"]["namespace"])
        self.recorder.event(
            rs, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"
        )

    async def _delete(self, key: str, rs: Object, victims: list[Object]) -> None:
        self.expectations.expect_deletions(key, (p["metadata"]["uid"] for p in victims))
        results = await asyncio.gather(
            *(self._delete_one(key, rs, pod) for pod in victims), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _delete_one(self, key: str, rs: Object, pod: Object) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(self.pod_info, meta["name"], meta["namespace"])
        except ApiError as err:
            self.expectations.deletion_observed(key, meta["uid"])
            if err.code == 404:
                return
            raise
        except BaseException:
            self.expectations.deletion_observed(key, meta["uid"])
            raise
        self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    # -- status -------------------------------------------------------------------------------

    async def _update_status(self, rs: Object, pods: list[Object]) -> Result:
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        now = self.wall()
        waits = [available_in(p, min_ready, now) for p in pods]
        counts = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1
                for p in pods
                if template_labels.items() <= (p["metadata"].get("labels") or {}).items()
            ),
            "readyReplicas": sum(1 for w in waits if w is not None),
            "availableReplicas": sum(1 for w in waits if w == 0.0),
            "observedGeneration": rs["metadata"].get("generation", 0),
        }
        pending = [w for w in waits if w]
        result = Result(requeue_after=min(pending) + 0.1) if pending else Result()
        status = rs.get("status") or {}
        if all(status.get(k, 0) == v for k, v in counts.items()):
            return result
        updated = copy(rs)
        updated["status"] = {**(updated.get("status") or {}), **counts}
        try:
            await self.client.update_status(self.rs_info, updated)
        except ApiError as err:
            # 404: the ReplicaSet is gone. 409: our cached copy is stale, and the watch
            # event for the newer version queues the key again.
            if err.code in (404, 409):
                return Result()
            raise
        return result


def _expectations_handlers(
    expectations: Expectations,
) -> tuple[
    Callable[[Mapping[str, Any]], None],
    Callable[[Mapping[str, Any], Mapping[str, Any]], None],
    Callable[[Mapping[str, Any]], None],
]:
    """Pod informer handlers that lower the owner's expectations as changes arrive."""

    def owner(pod: Mapping[str, Any]) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != KIND:
            return None
        return f"{pod['metadata'].get('namespace')}/{ref.get('name')}"

    def on_add(pod: Mapping[str, Any]) -> None:
        key = owner(pod)
        if key is not None:
            if pod["metadata"].get("deletionTimestamp"):
                expectations.deletion_observed(key, pod["metadata"].get("uid", ""))
            else:
                expectations.creation_observed(key)

    def on_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        key = owner(new) or owner(old)
        if key is not None and new["metadata"].get("deletionTimestamp"):
            expectations.deletion_observed(key, new["metadata"].get("uid", ""))

    def on_delete(pod: Mapping[str, Any]) -> None:
        key = owner(pod)
        if key is not None:
            expectations.deletion_observed(key, pod["metadata"].get("uid", ""))

    return on_add, on_update, on_delete


def replicaset_controller(
    client: Client, manager: Manager, recorder: EventRecorder | None = None
) -> Controller:
    """The controller, wired to the manager's shared ReplicaSet and Pod informers.

    Events go through `recorder` (a new one for `replicaset-controller` when None; the
    caller that passes one closes it).
    """
    replicasets = manager.informers.informer(REGISTRY.resource("apps", "v1", "replicasets"))
    pods = manager.informers.informer(REGISTRY.resource("", "v1", "pods"))
    expectations = Expectations(manager.clock)
    pods.add_handlers(*_expectations_handlers(expectations))
    reconciler = ReplicaSetReconciler(
        client,
        replicasets,
        pods,
        recorder if recorder is not None else EventRecorder(client, COMPONENT),
        expectations,
    )
    controller = Controller("replicaset", reconciler)
    controller.watch(replicasets)
    controller.watch(pods, owner_or_adopters(KIND, replicasets))
    manager.add(controller)
    return controller
