"""The RollingUpdate strategy (Kubernetes' `deployment/rolling.go`).

One step of a rolling update, repeated on every reconcile until the rollout is complete:

1. **Scale the new ReplicaSet up** as far as `replicas + maxSurge` allows (or down to
   `replicas` if it is bigger). If it moved, stop: the next step waits for the pods.
2. **Scale old ReplicaSets down** as far as `replicas - maxUnavailable` allows, in two passes:
   first pods that are not available anyway (they cost no availability), oldest ReplicaSet
   first; then available ones, as far as the available pods above the floor allow. A
   ReplicaSet's available pods count only up to its `spec.replicas`: the rest are about to be
   deleted by the ReplicaSet controller, whose status may not say so yet.
3. Once complete, old ReplicaSets beyond `revisionHistoryLimit` are deleted.

Worked example (Kubernetes' own): 10 replicas, maxSurge 3, maxUnavailable 2; the old RS has
10 pods, the new RS was just scaled to 3 and 2 of its pods are not available yet. All pods:
13; the floor is 10 - 2 = 8; the new RS's unavailable pods are 2, so at most
13 - 8 - 2 = 3 old pods may go now. Counting the new RS's unavailable pods keeps a stuck new
RS (a bad image) from draining the old one: with 3 new pods unavailable the budget is 2, and
once those 2 are gone it is 0 until new pods become available.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kubeling.client.cache import Object
from kubeling.controllers.deployment.replicasets import (
    active,
    by_creation,
    complete,
    max_unavailable,
    new_rs_replicas,
    replicas,
    status_count,
    total_replicas,
)

if TYPE_CHECKING:
    from kubeling.controllers.deployment.controller import DeploymentReconciler, Rollout

Plan = list[tuple[Object, int]]


def old_scale_down_budget(
    deployment: Object, all_rss: Sequence[Object], new_rs: Object | None
) -> int:
    """How many old pods may go now (see the worked example in the module docstring)."""
    floor = replicas(deployment) - max_unavailable(deployment)
    new_unavailable = replicas(new_rs) - status_count(new_rs, "availableReplicas")
    return total_replicas(all_rss) - floor - new_unavailable


def unhealthy_cleanup(old_rss: Sequence[Object], budget: int) -> Plan:
    """Scale down old ReplicaSets' unavailable pods, oldest ReplicaSet first, within `budget`."""
    plan: Plan = []
    removed = 0
    for rs in by_creation(old_rss):
        if removed >= budget:
            break
        size = replicas(rs)
        unhealthy = size - status_count(rs, "availableReplicas")
        if size == 0 or unhealthy <= 0:
            continue
        cut = min(budget - removed, unhealthy)
        plan.append((rs, size - cut))
        removed += cut
    return plan


def _surely_available(rs: Object) -> int:
    """Available pods that will stay: a ReplicaSet just scaled below its status still
    reports the pods it is about to delete, which must not count towards the floor."""
    return min(status_count(rs, "availableReplicas"), replicas(rs))


def available_scale_down(
    deployment: Object, all_rss: Sequence[Object], old_rss: Sequence[Object]
) -> Plan:
    """Scale down old ReplicaSets while the available pods stay at or above the floor."""
    floor = replicas(deployment) - max_unavailable(deployment)
    spare = sum(_surely_available(rs) for rs in all_rss) - floor
    plan: Plan = []
    removed = 0
    for rs in by_creation(old_rss):
        if removed >= spare:
            break
        size = replicas(rs)
        if size == 0:
            continue
        cut = min(size, spare - removed)
        plan.append((rs, size - cut))
        removed += cut
    return plan


async def rollout(r: DeploymentReconciler, ro: Rollout) -> float | None:
    """One rolling-update step; returns when to look at the progress deadline again."""
    await r.ensure_new_rs(ro, create=True)
    d = ro.deployment
    if await _reconcile_new(r, ro):
        return await r.sync_rollout_status(ro)
    if await _reconcile_old(r, ro):
        return await r.sync_rollout_status(ro)
    if complete(d, d.get("status") or {}):
        await r.cleanup(ro)
    return await r.sync_rollout_status(ro)


async def _reconcile_new(r: DeploymentReconciler, ro: Rollout) -> bool:
    new = ro.new
    if new is None:
        return False
    desired = replicas(ro.deployment)
    if replicas(new) == desired:
        return False
    if replicas(new) > desired:
        return await r.scale(ro, new, desired, "down")
    return await r.scale(ro, new, new_rs_replicas(ro.deployment, ro.all, new), "up")


async def _reconcile_old(r: DeploymentReconciler, ro: Rollout) -> bool:
    old = active(ro.old)
    if total_replicas(old) == 0:
        return False
    budget = old_scale_down_budget(ro.deployment, ro.all, ro.new)
    if budget <= 0:
        return False
    scaled = False
    for rs, size in unhealthy_cleanup(old, budget):
        scaled = await r.scale(ro, rs, size, "down") or scaled
    for rs, size in available_scale_down(ro.deployment, ro.all, active(ro.old)):
        scaled = await r.scale(ro, rs, size, "down") or scaled
    return scaled
