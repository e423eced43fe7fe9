"""The Deployment reconciler: claims ReplicaSets and hands each step to a strategy.

Reconcile, for one Deployment key (Kubernetes' `syncDeployment`):

    claim     ReplicaSets in the namespace: ours and matching → keep; ours and not matching →
              release; an orphan that matches → adopt (after re-reading the Deployment from
              the server, so a Deployment being deleted adopts nothing)
    deleting  → status only
    paused    → Progressing=Unknown DeploymentPaused; resize (scaling.sync); no rollout
    scaling   → a change of `replicas` alone mid-rollout: proportional resize (scaling.sync)
    otherwise → one step of the strategy: rolling.rollout or recreate.rollout

Contract:

* **No expectations needed.** The new ReplicaSet's name is derived from the template, so a
  create that races a stale cache answers AlreadyExists and the existing one is used. Every
  ReplicaSet write is a compare-and-swap on the cached resourceVersion: a decision taken on a
  stale cache fails with 409 instead of acting twice, and the watch event that made the cache
  stale queues the Deployment again. So running the reconcile twice on the same state, or
  after a restart, changes nothing the first one did not.
* **Revisions.** The new ReplicaSet's revision is one more than the highest among the old
  ones; the Deployment carries the same number. A rollback (`kubectl rollout undo` copies an
  old template back) makes an old ReplicaSet new again, so it gets max + 1 and its previous
  number moves to `revision-history`.
* **Writes to the Deployment** go two ways: annotations (the revision) through the object,
  conditions and counts through `deployments/status`; each only when it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.api.selectors import LabelSelector, selector_from_spec
from kubeling.client.cache import Object, controller_ref, copy
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.controllers.deployment import progress, recreate, rolling, scaling
from kubeling.controllers.deployment.replicasets import (
    HASH_LABEL,
    REVISION,
    annotations_of,
    max_revision,
    max_surge,
    new_rs_replicas,
    replica_annotations_stale,
    replicas,
    revision,
    same_template,
    split_new_and_old,
    status_count,
    template_hash,
    template_of,
    with_new_rs_annotations,
    with_replica_annotations,
)
from kubeling.reconcile import Result, TerminalError
from kubeling.util.timefmt import utcnow

log = logging.getLogger(__name__)

KIND = "Deployment"
API_VERSION = "apps/v1"
CONTROLLER_INDEX = "controller-uid"


def owner_reference(deployment: Mapping[str, Any]) -> Object:
    meta = deployment["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


@dataclass
class Rollout:
    """One reconcile's working state, kept current as the reconcile writes.

    `deployment` is the working copy (its status is rewritten as steps are taken), `stored`
    the Deployment as the server last returned it; `new` and `old` partition the claimed
    ReplicaSets.
    """

    deployment: Object
    stored: Object
    new: Object | None = None
    old: list[Object] = field(default_factory=list)

    @property
    def all(self) -> list[Object]:
        return [*self.old, self.new] if self.new is not None else list(self.old)

    def replace(self, rs: Object) -> None:
        uid = rs["metadata"]["uid"]
        if self.new is not None and self.new["metadata"]["uid"] == uid:
            self.new = rs
        self.old = [rs if o["metadata"]["uid"] == uid else o for o in self.old]

    def drop(self, rs: Object) -> None:
        uid = rs["metadata"]["uid"]
        self.old = [o for o in self.old if o["metadata"]["uid"] != uid]


class DeploymentReconciler:
    def __init__(
        self,
        client: Client,
        deployments: Informer,
        replicasets: Informer,
        pods: Informer,
        recorder: EventRecorder,
        *,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.client = client
        self.deployments = deployments
        self.replicasets = replicasets
        self.pods = pods
        self.recorder = recorder
        self.wall = wall
        self.deploy_info = REGISTRY.resource("apps", "v1", "deployments")
        self.rs_info = REGISTRY.resource("apps", "v1", "replicasets")

    async def reconcile(self, key: str) -> Result:
        cached = self.deployments.cache.get(key)
        if cached is None:
            return Result()
        try:
            return await self._sync(cached)
        except ApiError as err:
            # 409: something we read was stale, and the watch event that made it stale
            # queues this key again. 404: the Deployment or a ReplicaSet is gone: likewise.
            if err.code in (404, 409):
                log.debug("%s: %s; waiting for the next event", key, err)
                return Result()
            raise

    async def _sync(self, cached: Object) -> Result:
        d = copy(cached)
        try:
            selector = selector_from_spec((d.get("spec") or {}).get("selector"))
        except ValueError as err:
            raise TerminalError(f"{d['metadata']['name']}: invalid selector: {err}") from err
        if selector.empty:
            self.recorder.event(
                d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            return Result()
        deleting = bool(d["metadata"].get("deletionTimestamp"))
        ro = Rollout(deployment=d, stored=cached)
        ro.new, ro.old = split_new_and_old(d, await self._claim(d, selector, adopt=not deleting))
        if deleting:
            await self.ensure_new_rs(ro, create=False)
            await self.sync_status(ro)
            return Result()
        await self._paused_condition(ro)
        spec = d.get("spec") or {}
        if spec.get("paused") or scaling.is_scaling_event(d, ro.all):
            await scaling.sync(self, ro)
            return Result()
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            after = await recreate.rollout(self, ro)
        else:
            after = await rolling.rollout(self, ro)
        return Result(requeue_after=after) if after else Result()

    # -- claim --------------------------------------------------------------------------------

    async def _claim(self, d: Object, selector: LabelSelector, *, adopt: bool) -> list[Object]:
        uid = d["metadata"]["uid"]
        owned: list[Object] = []
        orphans: list[Object] = []
        for rs in self.replicasets.cache.list(d["metadata"]["namespace"]):
            ref = controller_ref(rs)
            matches = selector.matches(rs["metadata"].get("labels"))
            if ref is not None and ref.get("uid") != uid:
                continue
            if ref is not None and matches:
                owned.append(rs)
            elif ref is not None and not rs["metadata"].get("deletionTimestamp"):
                await self._set_owner(rs, d, own=False)
            elif ref is None and matches and adopt and not rs["metadata"].get("deletionTimestamp"):
                orphans.append(rs)
        if orphans and await self._may_adopt(d):
            for rs in orphans:
                owned.append(await self._set_owner(rs, d, own=True))
        return owned

    async def _may_adopt(self, d: Object) -> bool:
        """Re-read the Deployment: a cached copy may miss that it is being deleted."""
        try:
            fresh = await self.client.get(
                self.deploy_info, d["metadata"]["name"], d["metadata"]["namespace"]
            )
        except ApiError as err:
            if err.code == 404:
                return False
            raise
        meta = fresh["metadata"]
        return meta.get("uid") == d["metadata"]["uid"] and not meta.get("deletionTimestamp")

    async def _set_owner(self, rs: Object, d: Object, *, own: bool) -> Object:
        meta = rs["metadata"]
        refs = [
            r for r in meta.get("ownerReferences") or [] if r.get("uid") != d["metadata"]["uid"]
        ]
        if own:
            refs.append(owner_reference(d))
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"], "ownerReferences": refs}}
        patched = await self.client.patch(self.rs_info, meta["name"], patch, meta["namespace"])
        log.info(
            "%s replicaset %s/%s", "adopted" if own else "released", meta["namespace"], meta["name"]
        )
        return patched

    # -- the new ReplicaSet and revisions -----------------------------------------------------

    async def ensure_new_rs(self, ro: Rollout, *, create: bool) -> None:
        """Bring the new ReplicaSet's revision and annotations up to date, creating it when
        `create` and there is none; then stamp the Deployment with its revision."""
        d = ro.deployment
        new_revision = max_revision(ro.old) + 1
        if ro.new is not None:
            rs = copy(ro.new)
            changed = with_new_rs_annotations(d, rs, new_revision, exists=True)
            min_ready = (d.get("spec") or {}).get("minReadySeconds", 0)
            if (rs.get("spec") or {}).get("minReadySeconds", 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                ro.replace(await self.client.update(self.rs_info, rs))
            status = d.setdefault("status", {})
            if (
                progress.deadline_seconds(d) is not None
                and progress.get_condition(status, progress.PROGRESSING) is None
            ):
                name = ro.new["metadata"]["name"] if ro.new is not None else ""
                progress.set_condition(
                    status,
                    progress.new_condition(
                        progress.PROGRESSING,
                        "True",
                        progress.FOUND_NEW_RS,
                        f'Found new replica set "{name}"',
                        self.wall(),
                    ),
                )
            self._stamp_revision(d, ro.new)
            await self._save(ro)
            return
        if not create:
            return
        created = await self._create_new_rs(ro, new_revision)
        if created is None:
            return
        ro.new = created
        self._stamp_revision(d, created)
        await self._save(ro)

    def _stamp_revision(self, d: Object, rs: Object | None) -> None:
        if rs is None:
            return
        wanted = annotations_of(rs).get(REVISION)
        if wanted is not None and annotations_of(d).get(REVISION) != wanted:
            d["metadata"]["annotations"] = {**annotations_of(d), REVISION: wanted}

    def _new_rs_body(self, d: Object, ro: Rollout, new_revision: int) -> Object:
        status = d.get("status") or {}
        template = copy(template_of(d))
        hash_ = template_hash(template_of(d), status.get("collisionCount"))
        labels = {**((template.get("metadata") or {}).get("labels") or {}), HASH_LABEL: hash_}
        template.setdefault("metadata", {})["labels"] = labels
        selector = copy((d.get("spec") or {}).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: hash_}
        rs: Object = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{hash_}",
                "namespace": d["metadata"]["namespace"],
                "labels": dict(labels),
                "ownerReferences": [owner_reference(d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": (d.get("spec") or {}).get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        rs["spec"]["replicas"] = new_rs_replicas(d, [*ro.old, rs], rs)
        with_new_rs_annotations(d, rs, new_revision, exists=False)
        return rs

    async def _create_new_rs(self, ro: Rollout, new_revision: int) -> Object | None:
        d = ro.deployment
        body = self._new_rs_body(d, ro, new_revision)
        name = body["metadata"]["name"]
        try:
            created = await self.client.create(self.rs_info, body)
        except ApiError as err:
            if err.reason != "AlreadyExists":
                raise
            existing = await self.client.get(self.rs_info, name, d["metadata"]["namespace"])
            ref = controller_ref(existing)
            if (
                ref is not None
                and ref.get("uid") == d["metadata"]["uid"]
                and same_template(template_of(existing), template_of(d))
            ):
                return existing  # our own, not yet in the cache
            # A different ReplicaSet has the name: hash again with a higher collision count.
            status = d.setdefault("status", {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            await self._save(ro)
            raise RuntimeError(
                f"replica set {name!r} exists with a different template; retrying with "
                f"collisionCount {status['collisionCount']}"
            ) from err
        size = replicas(created)
        if size > 0:
            self.recorder.event(
                d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {size}"
            )
        status = d.setdefault("status", {})
        if progress.deadline_seconds(d) is not None:
            progress.set_condition(
                status,
                progress.new_condition(
                    progress.PROGRESSING,
                    "True",
                    progress.NEW_RS_CREATED,
                    f'Created new replica set "{name}"',
                    self.wall(),
                ),
            )
        return created

    # -- actions the strategies share ---------------------------------------------------------

    async def scale(self, ro: Rollout, rs: Object, size: int, operation: str) -> bool:
        """Resize `rs` and refresh its desired-/max-replicas annotations; True if resized."""
        d = ro.deployment
        desired, ceiling = replicas(d), replicas(d) + max_surge(d)
        before = replicas(rs)
        if before == size and not replica_annotations_stale(rs, desired, ceiling):
            return False
        updated = copy(rs)
        updated["spec"]["replicas"] = size
        with_replica_annotations(updated, desired, ceiling)
        ro.replace(await self.client.update(self.rs_info, updated))
        if before != size:
            self.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {operation} replica set {rs['metadata']['name']} from {before} to {size}",
            )
        return before != size

    async def cleanup(self, ro: Rollout) -> None:
        """Delete the oldest idle ReplicaSets beyond `revisionHistoryLimit`."""
        limit = (ro.deployment.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in ro.old if not rs["metadata"].get("deletionTimestamp")]
        surplus = len(alive) - int(limit)
        if surplus <= 0:
            return
        for rs in sorted(alive, key=lambda r: (revision(r), r["metadata"].get("name")))[:surplus]:
            meta = rs["metadata"]
            idle = (
                replicas(rs) == 0
                and status_count(rs, "replicas") == 0
                and int(meta.get("generation") or 0) <= status_count(rs, "observedGeneration")
            )
            if not idle:
                continue
            try:
                await self.client.delete(self.rs_info, meta["name"], meta["namespace"])
            except ApiError as err:
                if err.code != 404:
                    raise
            ro.drop(rs)

    def pods_by_rs(self, ro: Rollout) -> dict[str, list[Object]]:
        return {
            rs["metadata"]["uid"]: self.pods.cache.by_index(CONTROLLER_INDEX, rs["metadata"]["uid"])
            for rs in ro.all
        }

    # -- status -------------------------------------------------------------------------------

    async def sync_status(self, ro: Rollout) -> None:
        """Counts and the Available condition (no Progressing change): paused or resizing."""
        ro.deployment["status"] = progress.status_for(ro.deployment, ro.all, ro.new, self.wall())
        await self._save(ro)

    async def sync_rollout_status(self, ro: Rollout) -> float | None:
        status, after = progress.rollout_status(ro.deployment, ro.all, ro.new, self.wall())
        ro.deployment["status"] = status
        await self._save(ro)
        return after

    async def _paused_condition(self, ro: Rollout) -> None:
        """Progressing=Unknown while paused and right after resuming (not after a timeout)."""
        d = ro.deployment
        if progress.deadline_seconds(d) is None:
            return
        status = d.setdefault("status", {})
        current = progress.get_condition(status, progress.PROGRESSING)
        if current is not None and current.get("reason") == progress.TIMED_OUT:
            return
        paused_now = current is not None and current.get("reason") == progress.PAUSED
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused and not paused_now:
            reason, message = progress.PAUSED, "Deployment is paused"
        elif not paused and paused_now:
            reason, message = progress.RESUMED, "Deployment is resumed"
        else:
            return
        progress.set_condition(
            status,
            progress.new_condition(progress.PROGRESSING, "Unknown", reason, message, self.wall()),
        )
        await self._save(ro)

    async def _save(self, ro: Rollout) -> None:
        """Write what changed in the working copy: annotations, then status."""
        d, stored = ro.deployment, ro.stored
        wanted_status = d.get("status") or {}
        if annotations_of(d) != annotations_of(stored):
            body = copy(stored)
            body["metadata"]["annotations"] = annotations_of(d)
            ro.stored = await self.client.update(self.deploy_info, body)
        if wanted_status != (ro.stored.get("status") or {}):
            body = copy(ro.stored)
            body["status"] = wanted_status
            ro.stored = await self.client.update_status(self.deploy_info, body)
        ro.deployment = copy(ro.stored)
        ro.deployment["status"] = copy({"s": wanted_status})["s"]
