"""Resizing a Deployment mid-rollout: proportional scaling (Kubernetes' `deployment/sync.go`).

A *scaling event* is a change of `spec.replicas` alone: some active ReplicaSet carries a
`desired-replicas` annotation different from the Deployment's `replicas`. It is handled
here, not by the strategy, and so is everything while the Deployment is paused.

* With one active ReplicaSet (or none), that one (or the newest) simply takes `replicas`.
* Once the new ReplicaSet is saturated (all `replicas` pods available), the old ones go to 0.
* Otherwise, in a rolling update, the pods to add or remove are spread over the active
  ReplicaSets in proportion to their size. Worked example: 10 replicas, maxSurge 3, paused
  mid-rollout with the old RS at 8 and the new at 5 (13 pods; max-replicas annotation 13).
  Scaling to 20 allows 20 + 5 = 25 pods, 12 more: the old RS gets round(8 * 25 / 13) - 8 = 7,
  the new one round(5 * 25 / 13) - 5 = 5 → 15 and 10. Bigger ReplicaSets go first (newer
  first on ties when adding, older first when removing); any rounding leftover goes to the
  first one, so the total is exactly right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kubeling.client.cache import Object
from kubeling.controllers.deployment.replicasets import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    active,
    by_creation,
    int_annotation,
    is_rolling,
    max_surge,
    replicas,
    status_count,
    total_replicas,
)

if TYPE_CHECKING:
    from kubeling.controllers.deployment.controller import DeploymentReconciler, Rollout


def is_scaling_event(deployment: Mapping[str, Any], rss: Sequence[Object | None]) -> bool:
    desired = replicas(deployment)
    for rs in active(rss):
        annotated = int_annotation(rs, DESIRED_REPLICAS)
        if annotated is not None and annotated != desired:
            return True
    return False


def saturated(deployment: Mapping[str, Any], rs: Object | None) -> bool:
    """The ReplicaSet runs all of the Deployment's pods, all available."""
    if rs is None:
        return False
    desired = replicas(deployment)
    return (
        replicas(rs) == desired
        and int_annotation(rs, DESIRED_REPLICAS) == desired
        and status_count(rs, "availableReplicas") == desired
    )


def _round_half_away(value: float) -> int:
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def _fraction(rs: Object, deployment: Mapping[str, Any]) -> int:
    """How many pods `rs` gains (or loses) to keep its share of the Deployment's new size."""
    desired = replicas(deployment)
    if desired == 0:
        return -replicas(rs)
    ceiling = desired + max_surge(deployment)
    before = int_annotation(rs, MAX_REPLICAS)
    if before is None:
        before = status_count(deployment, "replicas")
    if before <= 0:
        return 0
    return _round_half_away(replicas(rs) * ceiling / before) - replicas(rs)


def proportional_sizes(deployment: Mapping[str, Any], rss: Sequence[Object]) -> dict[str, int]:
    """New sizes for the active ReplicaSets `rss` of a rolling Deployment (module docstring)."""
    desired = replicas(deployment)
    allowed = desired + max_surge(deployment) if desired > 0 else 0
    to_add = allowed - total_replicas(rss)

    # Bigger first; ties go to the newer one when adding, to the older one when removing.
    ties = by_creation(rss)[::-1] if to_add > 0 else by_creation(rss)
    ordered = sorted(ties, key=lambda rs: -replicas(rs))
    sizes = {rs["metadata"]["name"]: replicas(rs) for rs in ordered}
    if to_add == 0:
        return sizes
    added = 0
    for rs in ordered:
        if replicas(rs) == 0 or added == to_add:
            continue
        share = _fraction(rs, deployment)
        left = to_add - added
        share = min(share, left) if to_add > 0 else max(share, left)
        sizes[rs["metadata"]["name"]] += share
        added += share
    if added != to_add and ordered:
        sizes[ordered[0]["metadata"]["name"]] += to_add - added
    return {name: max(size, 0) for name, size in sizes.items()}


def _active_or_latest(ro: Rollout) -> Object | None:
    """The one active ReplicaSet, the newest if none is active, None if several are."""
    running = active([*by_creation(ro.old)[::-1], ro.new])
    if len(running) == 1:
        return running[0]
    if not running:
        if ro.new is not None:
            return ro.new
        return by_creation(ro.old)[-1] if ro.old else None
    return None


async def scale(r: DeploymentReconciler, ro: Rollout) -> None:
    d = ro.deployment
    only = _active_or_latest(ro)
    if only is not None:
        await r.scale(ro, only, replicas(d), "up" if replicas(only) < replicas(d) else "down")
        return
    if saturated(d, ro.new):
        for rs in active(ro.old):
            await r.scale(ro, rs, 0, "down")
        return
    if not is_rolling(d):
        return
    running = active(ro.all)
    sizes = proportional_sizes(d, running)
    for rs in running:
        size = sizes[rs["metadata"]["name"]]
        await r.scale(ro, rs, size, "up" if size > replicas(rs) else "down")


async def sync(r: DeploymentReconciler, ro: Rollout) -> None:
    """A scaling event or a paused Deployment: resize, tidy up history, report status."""
    await r.ensure_new_rs(ro, create=False)
    await scale(r, ro)
    if (ro.deployment.get("spec") or {}).get("paused"):
        await r.cleanup(ro)
    await r.sync_status(ro)
