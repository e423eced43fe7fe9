"""The Recreate strategy (Kubernetes' `deployment/recreate.go`): all old pods go first.

1. Scale every old ReplicaSet to 0. If one moved, stop until its pods are gone.
2. While any old pod still exists (Running, Pending or Unknown: only Succeeded and Failed
   pods are certainly stopped), wait; a pod's deletion queues the Deployment again.
3. Create the new ReplicaSet if needed and scale it to `replicas` in one go.

So old and new pods never run side by side, at the cost of a gap with no pods at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kubeling.controllers.deployment.replicasets import active, complete, replicas, total_status

if TYPE_CHECKING:
    from kubeling.controllers.deployment.controller import DeploymentReconciler, Rollout


def old_pods_running(rollout: Rollout, pods_of: Mapping[str, Iterable[Mapping[str, Any]]]) -> bool:
    """Whether any pod of an old ReplicaSet may still run; `pods_of` maps an RS uid to pods."""
    if total_status(rollout.old, "replicas") > 0:
        return True
    new_uid = rollout.new["metadata"]["uid"] if rollout.new is not None else None
    for uid, pods in pods_of.items():
        if uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
    return False


async def rollout(r: DeploymentReconciler, ro: Rollout) -> float | None:
    await r.ensure_new_rs(ro, create=False)
    scaled = False
    for rs in active(ro.old):
        scaled = await r.scale(ro, rs, 0, "down") or scaled
    if scaled or old_pods_running(ro, r.pods_by_rs(ro)):
        return await r.sync_rollout_status(ro)
    if ro.new is None:
        await r.ensure_new_rs(ro, create=True)
    if ro.new is not None and replicas(ro.new) != replicas(ro.deployment):
        await r.scale(ro, ro.new, replicas(ro.deployment), "up")
    d = ro.deployment
    if complete(d, d.get("status") or {}):
        await r.cleanup(ro)
    return await r.sync_rollout_status(ro)
