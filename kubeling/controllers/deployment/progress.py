"""A Deployment's status and its conditions (Kubernetes' `deployment/progress.go`, `sync.go`).

`status_for` derives the counts from the ReplicaSets; `rollout_status` adds the `Progressing`
condition that `kubectl rollout status` watches. Both are pure: they take the time as a value.

Conditions follow Kubernetes' rule for `SetDeploymentCondition`: a condition with the same
status and reason as the current one changes nothing (not even `lastUpdateTime`); a new reason
with the same status keeps `lastTransitionTime`.

    Available    True  MinimumReplicasAvailable    available >= replicas - maxUnavailable
                 False MinimumReplicasUnavailable
    Progressing  True  NewReplicaSetCreated / FoundNewReplicaSet   the rollout started
                 True  ReplicaSetUpdated           something moved since the last status
                 True  NewReplicaSetAvailable      the rollout is complete
                 False ProgressDeadlineExceeded    nothing moved for progressDeadlineSeconds
                 Unknown DeploymentPaused / DeploymentResumed

The deadline counts from the Progressing condition's `lastUpdateTime`, which every bit of
progress refreshes: a rollout fails only when it stalls for the whole deadline, not when it
is merely long.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kubeling.client.cache import Object, copy
from kubeling.controllers.deployment.replicasets import (
    complete,
    max_unavailable,
    replicas,
    status_count,
    total_replicas,
    total_status,
)
from kubeling.util.timefmt import format_time, parse_time

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_CREATED = "NewReplicaSetCreated"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
NO_DEADLINE = 2**31 - 1
_COUNTS = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
)


# -- conditions -------------------------------------------------------------------------------


def get_condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == type_:
            return condition
    return None


def new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> Object:
    stamp = format_time(now)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Object, condition: Object) -> None:
    """Set `condition` in `status` (in place) by Kubernetes' rule; see the module docstring."""
    current = get_condition(status, condition["type"])
    if (
        current is not None
        and current.get("status") == condition["status"]
        and current.get("reason") == condition["reason"]
    ):
        return
    if current is not None and current.get("status") == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: Object, type_: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


# -- deadlines --------------------------------------------------------------------------------


def deadline_seconds(deployment: Mapping[str, Any]) -> int | None:
    """`progressDeadlineSeconds`, or None when the Deployment has no deadline."""
    value = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    if value is None or int(value) == NO_DEADLINE:
        return None
    return int(value)


def timed_out(deployment: Mapping[str, Any], status: Mapping[str, Any], now: datetime) -> bool:
    deadline = deadline_seconds(deployment)
    condition = get_condition(status, PROGRESSING)
    if deadline is None or condition is None:
        return False
    if condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    since = condition.get("lastUpdateTime")
    if not since:
        return False
    return parse_time(since) + timedelta(seconds=deadline) < now


def _progressing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Did anything move between two statuses (Kubernetes' `DeploymentProgressing`)?"""

    def count(status: Mapping[str, Any], field: str) -> int:
        return int(status.get(field) or 0)

    old_left = count(old, "replicas") - count(old, "updatedReplicas")
    new_left = count(new, "replicas") - count(new, "updatedReplicas")
    return (
        count(new, "updatedReplicas") > count(old, "updatedReplicas")
        or new_left < old_left
        or count(new, "readyReplicas") > count(old, "readyReplicas")
        or count(new, "availableReplicas") > count(old, "availableReplicas")
    )


# -- status -----------------------------------------------------------------------------------


def status_for(
    deployment: Mapping[str, Any],
    all_rss: Sequence[Object | None],
    new_rs: Object | None,
    now: datetime,
) -> Object:
    """The Deployment's status derived from its ReplicaSets, with the Available condition.

    `replicas`, `readyReplicas` and `availableReplicas` count pods (the ReplicaSets' status);
    `unavailableReplicas` is the pods wanted (their spec) minus the available ones.
    """
    old = deployment.get("status") or {}
    available = total_status(all_rss, "availableReplicas")
    status: Object = {
        "observedGeneration": int(deployment["metadata"].get("generation") or 0),
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": status_count(new_rs, "replicas"),
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total_replicas(all_rss) - available),
    }
    status = {k: v for k, v in status.items() if v}  # zero counts are omitted, as in Kubernetes
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy({"c": old["conditions"]})["c"]
    if available >= replicas(deployment) - max_unavailable(deployment):
        set_condition(
            status,
            new_condition(
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            ),
        )
    else:
        set_condition(
            status,
            new_condition(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            ),
        )
    return status


def rollout_status(
    deployment: Mapping[str, Any],
    all_rss: Sequence[Object | None],
    new_rs: Object | None,
    now: datetime,
) -> tuple[Object, float | None]:
    """(the status after a rollout step, seconds until the deadline should be checked again).

    On top of `status_for`: the Progressing condition (see the module docstring) and a
    ReplicaFailure condition mirrored from the new ReplicaSet.
    """
    status = status_for(deployment, all_rss, new_rs, now)
    deadline = deadline_seconds(deployment)
    if deadline is None:
        remove_condition(status, PROGRESSING)
    current = get_condition(deployment.get("status") or {}, PROGRESSING)
    finished = (
        status.get("replicas", 0) == status.get("updatedReplicas", 0)
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    subject = (
        f'ReplicaSet "{new_rs["metadata"]["name"]}"'
        if new_rs is not None
        else f'Deployment "{deployment["metadata"]["name"]}"'
    )
    if deadline is not None and not finished:
        if complete(deployment, status):
            set_condition(
                status,
                new_condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_AVAILABLE,
                    f"{subject} has successfully progressed.",
                    now,
                ),
            )
        elif _progressing(deployment.get("status") or {}, status):
            moved = new_condition(
                PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.", now
            )
            if current is not None and current.get("status") == "True":
                moved["lastTransitionTime"] = current.get("lastTransitionTime")
            remove_condition(status, PROGRESSING)
            set_condition(status, moved)
        elif timed_out(deployment, status, now):
            set_condition(
                status,
                new_condition(
                    PROGRESSING, "False", TIMED_OUT, f"{subject} has timed out progressing.", now
                ),
            )
    failure = _replica_failure(new_rs)
    if failure is not None:
        set_condition(status, {**failure, "lastUpdateTime": format_time(now)})
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status, _recheck_after(deployment, status, now)


def _replica_failure(new_rs: Object | None) -> Object | None:
    if new_rs is None:
        return None
    found = get_condition(new_rs.get("status") or {}, REPLICA_FAILURE)
    return dict(found) if found is not None else None


def _recheck_after(
    deployment: Mapping[str, Any], status: Mapping[str, Any], now: datetime
) -> float | None:
    """When a stalled rollout's deadline passes, so that it is reported on time."""
    deadline = deadline_seconds(deployment)
    condition = get_condition(status, PROGRESSING)
    if deadline is None or condition is None:
        return None
    if condition.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT) or complete(deployment, status):
        return None
    since = condition.get("lastUpdateTime")
    if not since:
        return None
    left = (parse_time(since) + timedelta(seconds=deadline) - now).total_seconds()
    return max(left, 0.0) + 1.0
