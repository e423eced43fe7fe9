"""A Node together with the Pods bound to it: the unit that filters and scores look at.

Contract:

- `NodeInfo` is the scheduler's own running tally (Kubernetes' `framework.NodeInfo`). It is
  mutable: the scheduling loop adds a Pod the moment it decides ("assumes") a binding, so the
  next decision already sees it, and removes it when the Pod is deleted, finishes, or the
  binding fails. It never modifies the Node or Pod dicts it was given.
- Sums are kept incrementally: `requested` (what the Pods request, for fitting),
  `non_zero_*` (with the 100m / 200Mi defaults, for scoring), the pod count, and per
  controller (ownerReference uid) the number of non-terminating Pods, for spreading.
- Adding a Pod whose key is already present replaces it (an update); removing an unknown Pod
  is a no-op that returns False. The key is the Pod UID (see `podinfo.pod_key`).
- `set_node` swaps in a newer version of the Node (labels, taints, allocatable, conditions)
  and keeps the Pods.
- Taints are the node's `spec.taints` plus the ones its conditions imply
  (`taints.effective_taints`), pre-split by effect for the filter and the scorer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubeling.scheduler.podinfo import PodInfo, as_pod_info, pod_key
from kubeling.scheduler.resources import Resources, node_allocatable
from kubeling.scheduler.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    Taint,
    effective_taints,
)


class NodeInfo:
    __slots__ = (
        "allocatable",
        "labels",
        "name",
        "node",
        "non_zero_cpu",
        "non_zero_memory",
        "owner_counts",
        "pods",
        "prefer_taints",
        "requested_cpu",
        "requested_ephemeral",
        "requested_memory",
        "requested_scalars",
        "schedule_taints",
        "taints",
        "unschedulable",
    )

    def __init__(
        self, node: Mapping[str, Any], pods: Iterable[PodInfo | Mapping[str, Any]] = ()
    ) -> None:
        self.pods: dict[str, PodInfo] = {}
        self.requested_cpu = 0
        self.requested_memory = 0
        self.requested_ephemeral = 0
        self.requested_scalars: dict[str, int] = {}
        self.non_zero_cpu = 0
        self.non_zero_memory = 0
        self.owner_counts: dict[str, int] = {}
        self.set_node(node)
        for pod in pods:
            self.add_pod(pod)

    def set_node(self, node: Mapping[str, Any]) -> None:
        meta = node.get("metadata") or {}
        self.node = node
        self.name = str(meta.get("name") or "")
        self.labels: Mapping[str, str] = meta.get("labels") or {}
        self.unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        self.allocatable: Resources = node_allocatable(node)
        self.taints: tuple[Taint, ...] = effective_taints(node)
        self.schedule_taints = tuple(
            t for t in self.taints if t.effect in (NO_SCHEDULE, NO_EXECUTE)
        )
        self.prefer_taints = tuple(t for t in self.taints if t.effect == PREFER_NO_SCHEDULE)

    @property
    def pod_count(self) -> int:
        return len(self.pods)

    @property
    def requested(self) -> Resources:
        return Resources(
            milli_cpu=self.requested_cpu,
            memory=self.requested_memory,
            ephemeral_storage=self.requested_ephemeral,
            scalars=tuple(sorted(self.requested_scalars.items())),
        )

    def add_pod(self, pod: PodInfo | Mapping[str, Any]) -> PodInfo:
        info = as_pod_info(pod)
        if info.key in self.pods:
            self._account(self.pods[info.key], -1)
        self.pods[info.key] = info
        self._account(info, 1)
        return info

    def remove_pod(self, pod: PodInfo | Mapping[str, Any] | str) -> bool:
        if isinstance(pod, str):
            key = pod
        elif isinstance(pod, PodInfo):
            key = pod.key
        else:
            key = pod_key(pod)
        info = self.pods.pop(key, None)
        if info is None:
            return False
        self._account(info, -1)
        return True

    def _account(self, info: PodInfo, sign: int) -> None:
        requests = info.requests
        self.requested_cpu += sign * requests.milli_cpu
        self.requested_memory += sign * requests.memory
        self.requested_ephemeral += sign * requests.ephemeral_storage
        for name, value in requests.scalars:
            total = self.requested_scalars.get(name, 0) + sign * value
            if total:
                self.requested_scalars[name] = total
            else:
                self.requested_scalars.pop(name, None)
        self.non_zero_cpu += sign * info.non_zero_cpu
        self.non_zero_memory += sign * info.non_zero_memory
        if info.owner_uid is not None and not info.terminating:
            count = self.owner_counts.get(info.owner_uid, 0) + sign
            if count:
                self.owner_counts[info.owner_uid] = count
            else:
                self.owner_counts.pop(info.owner_uid, None)

    def __repr__(self) -> str:
        return (
            f"NodeInfo({self.name!r}, pods={len(self.pods)}, cpu={self.requested_cpu}m/"
            f"{self.allocatable.milli_cpu}m, memory={self.requested_memory}/"
            f"{self.allocatable.memory})"
        )
