"""A Pod as the scheduler reads it: parsed once, then checked against many nodes.

Filtering and scoring one Pod touches every node, so everything they need from the Pod
(requests, tolerations, affinity, owner) is extracted once into a frozen `PodInfo`. The Pod
dict itself is never modified; `PodInfo.pod` is the object it was built from.

Which Pods does the scheduler see? (kube-scheduler's informers)
- `needs_scheduling`: not bound (`spec.nodeName` empty), addressed to this scheduler
  (`spec.schedulerName`, defaulted to `default-scheduler`), not being deleted, not finished,
  and without `spec.schedulingGates`.
- `occupies_node`: bound and not finished. kube-scheduler's Pod informer drops Pods in phase
  `Succeeded` or `Failed` (field selector `status.phase!=Succeeded,status.phase!=Failed`), so
  finished Pods free their node's resources and pod slot; Pods being deleted still hold them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeling.scheduler.affinity import (
    RequiredAffinity,
    Term,
    pinned_node_names,
    preferred_terms,
    required_affinity,
)
from kubeling.scheduler.resources import Resources, pod_non_zero_requests, pod_requests
from kubeling.scheduler.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    Toleration,
    pod_tolerations,
)

DEFAULT_SCHEDULER = "default-scheduler"
_FINISHED = ("Succeeded", "Failed")


def pod_key(pod: Mapping[str, Any]) -> str:
    """The identity of a Pod in a NodeInfo: its UID, or namespace/name when it has none."""
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}")


def controller_uid(pod: Mapping[str, Any]) -> str | None:
    """UID of the ownerReference with `controller: true` (the ReplicaSet, Job, ...), if any."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("uid"):
            return str(ref["uid"])
    return None


def needs_scheduling(pod: Mapping[str, Any], scheduler_name: str = DEFAULT_SCHEDULER) -> bool:
    spec = pod.get("spec") or {}
    if spec.get("nodeName") or spec.get("schedulingGates"):
        return False
    if (spec.get("schedulerName") or DEFAULT_SCHEDULER) != scheduler_name:
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in _FINISHED


def occupies_node(pod: Mapping[str, Any]) -> bool:
    if not (pod.get("spec") or {}).get("nodeName"):
        return False
    return (pod.get("status") or {}).get("phase") not in _FINISHED


@dataclass(frozen=True, slots=True)
class PodInfo:
    pod: Mapping[str, Any]
    key: str
    namespace: str
    node_name: str  # spec.nodeName; the NodeName filter reads it
    owner_uid: str | None  # controller ownerReference: the spreading group
    terminating: bool  # deletionTimestamp set: excluded from spreading counts
    priority: int  # spec.priority (set by admission from priorityClassName), default 0
    preemption_never: bool  # spec.preemptionPolicy == Never
    requests: Resources
    non_zero_cpu: int
    non_zero_memory: int
    tolerations: tuple[Toleration, ...]
    schedule_tolerations: tuple[Toleration, ...]  # may tolerate NoSchedule / NoExecute
    prefer_tolerations: tuple[Toleration, ...]  # may tolerate PreferNoSchedule
    required: RequiredAffinity | None
    preferred: tuple[tuple[int, Term], ...]
    pinned_nodes: frozenset[str] | None  # NodeAffinity PreFilter result

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> PodInfo:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        tolerations = pod_tolerations(pod)
        cpu, memory = pod_non_zero_requests(pod)
        priority = spec.get("priority")
        return cls(
            pod=pod,
            key=pod_key(pod),
            namespace=str(meta.get("namespace") or ""),
            node_name=str(spec.get("nodeName") or ""),
            owner_uid=controller_uid(pod),
            terminating=bool(meta.get("deletionTimestamp")),
            priority=priority if isinstance(priority, int) else 0,
            preemption_never=spec.get("preemptionPolicy") == "Never",
            requests=pod_requests(pod),
            non_zero_cpu=cpu,
            non_zero_memory=memory,
            tolerations=tolerations,
            schedule_tolerations=tuple(
                t for t in tolerations if t.effect in ("", NO_SCHEDULE, NO_EXECUTE)
            ),
            prefer_tolerations=tuple(
                t for t in tolerations if t.effect in ("", PREFER_NO_SCHEDULE)
            ),
            required=required_affinity(pod),
            preferred=preferred_terms(pod),
            pinned_nodes=pinned_node_names(pod),
        )


def as_pod_info(pod: PodInfo | Mapping[str, Any]) -> PodInfo:
    return pod if isinstance(pod, PodInfo) else PodInfo.of(pod)
