"""What DefaultPreemption would say about a Pod that fits nowhere (its PostFilter message).

kubeling does not evict Pods to make room (yet). Kubernetes' message still ends with what
preemption found, and users and tools read it, so this module runs the part of preemption
that decides the message, without evicting anything:

- `preemptionPolicy: Never` -> "preemption: not eligible due to preemptionPolicy=Never."
- Every node rejected by an unresolvable filter (taint, affinity, unschedulable, node name),
  and every node a PreFilter left out -> "Preemption is not helpful for scheduling".
- Every other node (rejected by NodeResourcesFit) is dry-run: without the Pods of *lower*
  priority (`spec.priority`) would the Pod fit? No such Pods -> "No preemption victims found
  for incoming pod"; still no fit -> the filter's reasons again (e.g. "Insufficient cpu");
  fits -> the node is a candidate.
- With candidates, Kubernetes would preempt and the PostFilter reports success: no message.
  `Preemption.candidates` names them for a future preemption implementation.
- Otherwise: "preemption: 0/N nodes are available: <histogram>." with the same sorting as
  the filter histogram (`filters.fit_error_message`).

Not modelled: PodDisruptionBudgets, the nominated-node checks, and limiting the dry run to a
sample of nodes (Kubernetes examines all potential nodes when none is a candidate, which is
the only case that produces a message).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeling.scheduler.filters import Diagnosis, fit_error_message, insufficient_resources
from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo, as_pod_info
from kubeling.scheduler.resources import Resources

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."


@dataclass(frozen=True)
class Preemption:
    message: str  # the PostFilter message, "preemption: ..."; "" when preemption would act
    candidates: tuple[str, ...] = ()  # nodes where evicting lower-priority Pods makes room


def _dry_run(pod: PodInfo, node: NodeInfo) -> tuple[str, ...] | None:
    """Reasons the Pod still does not fit without lower-priority Pods; None if it would fit."""
    victims = [p for p in node.pods.values() if p.priority < pod.priority]
    if not victims:
        return (NO_VICTIMS,)
    scalars = dict(node.requested_scalars)
    for victim in victims:
        for name, value in victim.requests.scalars:
            scalars[name] = scalars.get(name, 0) - value
    remaining = Resources(
        milli_cpu=node.requested_cpu - sum(v.requests.milli_cpu for v in victims),
        memory=node.requested_memory - sum(v.requests.memory for v in victims),
        ephemeral_storage=node.requested_ephemeral
        - sum(v.requests.ephemeral_storage for v in victims),
        scalars=tuple(sorted(scalars.items())),
    )
    reasons = insufficient_resources(
        pod.requests, node.allocatable, remaining, len(node.pods) - len(victims)
    )
    return reasons or None


def preemption_outcome(
    pod: PodInfo | Mapping[str, Any], diagnosis: Diagnosis, node_infos: Sequence[NodeInfo]
) -> Preemption:
    """The PostFilter message for a Pod that `run_filters` found no node for."""
    info = as_pod_info(pod)
    if info.preemption_never:
        return Preemption(f"preemption: {NOT_ELIGIBLE_NEVER}")
    counts: dict[str, int] = {}
    candidates: list[str] = []
    for node in node_infos:
        if node.name in diagnosis.unresolvable or node.name not in diagnosis.node_reasons:
            reasons: tuple[str, ...] | None = (NOT_HELPFUL,)
        else:
            reasons = _dry_run(info, node)
        if reasons is None:
            candidates.append(node.name)
            continue
        for reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
    if candidates:
        return Preemption("", tuple(candidates))
    return Preemption(f"preemption: {fit_error_message(counts, len(node_infos))}")
