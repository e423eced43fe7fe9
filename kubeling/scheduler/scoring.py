"""Scoring: of the nodes that fit, which one to bind to (Kubernetes 1.32's default profile).

Every plugin gives each feasible node 0..100 (`MAX_NODE_SCORE`) after its own normalisation;
a node's total is the weighted sum, and the highest total wins, ties broken uniformly at
random with the injected `random.Random`. With one feasible node nothing is scored.

Plugin (weight): raw score per node -> normalisation.
- TaintToleration (3): untolerated PreferNoSchedule taints -> reversed, 100 - 100*s/max
  (all 100 when max is 0).
- NodeAffinity (2): sum of the weights of matching preferred terms -> 100*s/max; not run
  (adds nothing) when the Pod has no preferred terms.
- NodeResourcesFit, LeastAllocated (1): mean over cpu and memory of
  (allocatable - requested)*100/allocatable -> none.
- PodTopologySpread (2): round(count*ln(n+2) + 2) -> 100*(max+min-s)/max.
- NodeResourcesBalancedAllocation (1): (1 - |cpu fraction - memory fraction|/2)*100 -> none.

All divisions are integer divisions on non-negative numbers, as in Go.
- LeastAllocated uses *non-zero* requests (100m / 200Mi for containers that request nothing):
  node's non-zero sum plus the Pod's; a resource the node does not offer is left out; over
  capacity scores 0. Worked example: allocatable 4000m / 8Gi, 1000m / 2Gi already requested, the
  Pod asks 1000m / 2Gi -> cpu (4000-2000)*100/4000 = 50, memory 50 -> 50.
- BalancedAllocation uses plain requests (node's plus the Pod's), fractions capped at 1.
- Spreading is Kubernetes' system-default topology spread on `kubernetes.io/hostname`
  (maxSkew 3, ScheduleAnyway): `count` is the number of non-terminating Pods with the same
  controller (ownerReference uid) on the node, `n` the number of feasible nodes. Kubernetes
  derives the group from the Services / ReplicaSets / StatefulSets selecting the Pod; the
  controller uid is the same group for workload Pods. Every node counts as its own hostname
  domain (kubelet always sets the label). Pods without a controller are not spread. The zone
  constraint (`topology.kubernetes.io/zone`, maxSkew 5) is not modelled.
- Not modelled: InterPodAffinity (2) and ImageLocality (1); kubeling has no image cache and
  the affinity filter is not implemented, so both would score every node alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo, as_pod_info
from kubeling.scheduler.taints import count_untolerated

MAX_NODE_SCORE = 100
SPREAD_MAX_SKEW = 3

WEIGHTS: Mapping[str, int] = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "NodeResourcesFit": 1,
    "PodTopologySpread": 2,
    "NodeResourcesBalancedAllocation": 1,
}


def resource_scores(pod: PodInfo, feasible: Sequence[NodeInfo]) -> tuple[list[int], list[int]]:
    """LeastAllocated and BalancedAllocation of every node, in one pass (the hot loop).

    Both depend on the node only through its allocatable cpu and memory and four sums, and
    many nodes share those (equal nodes holding equally many equal Pods): each distinct
    combination is computed once per call (10 000 Pods onto 1 000 nodes: 884 -> 1 240 pods/s)."""
    pod_cpu, pod_memory = pod.non_zero_cpu, pod.non_zero_memory
    request_cpu, request_memory = pod.requests.milli_cpu, pod.requests.memory
    least: list[int] = []
    balanced: list[int] = []
    seen: dict[tuple[int, int, int, int, int, int], tuple[int, int]] = {}
    for node in feasible:
        allocatable = node.allocatable
        cpu_capacity = allocatable.milli_cpu
        memory_capacity = allocatable.memory
        state = (
            cpu_capacity,
            memory_capacity,
            node.non_zero_cpu,
            node.non_zero_memory,
            node.requested_cpu,
            node.requested_memory,
        )
        known = seen.get(state)
        if known is not None:
            least.append(known[0])
            balanced.append(known[1])
            continue
        total = weights = 0
        if cpu_capacity:
            weights += 1
            requested = state[2] + pod_cpu
            if requested <= cpu_capacity:
                total += (cpu_capacity - requested) * MAX_NODE_SCORE // cpu_capacity
        if memory_capacity:
            weights += 1
            requested = state[3] + pod_memory
            if requested <= memory_capacity:
                total += (memory_capacity - requested) * MAX_NODE_SCORE // memory_capacity
        fit = total // weights if weights else 0
        if cpu_capacity and memory_capacity:
            cpu = (state[4] + request_cpu) / cpu_capacity
            memory = (state[5] + request_memory) / memory_capacity
            cpu = 1.0 if cpu > 1.0 else cpu
            memory = 1.0 if memory > 1.0 else memory
            balance = int((1 - abs(cpu - memory) / 2) * MAX_NODE_SCORE)
        else:
            balance = MAX_NODE_SCORE  # one resource or none: no deviation
        seen[state] = (fit, balance)
        least.append(fit)
        balanced.append(balance)
    return least, balanced


def least_allocated(pod: PodInfo, node: NodeInfo) -> int:
    return resource_scores(pod, (node,))[0][0]


def balanced_allocation(pod: PodInfo, node: NodeInfo) -> int:
    return resource_scores(pod, (node,))[1][0]


def preferred_affinity(pod: PodInfo, node: NodeInfo) -> int:
    return sum(w for w, term in pod.preferred if term.matches(node.labels, node.name))


def spread_raw(pod: PodInfo, feasible: Sequence[NodeInfo]) -> list[int]:
    """PodTopologySpread's raw scores for the hostname constraint (lower is emptier)."""
    weight = math.log(len(feasible) + 2)
    owner = pod.owner_uid or ""  # "" is never a key: only controller uids are counted
    skew = SPREAD_MAX_SKEW - 1 + 0.5  # + 0.5 and int(): Go's math.Round for positive numbers
    return [int(node.owner_counts.get(owner, 0) * weight + skew) for node in feasible]


def normalize_default(scores: list[int], reverse: bool) -> list[int]:
    """`helper.DefaultNormalizeScore`: scale to 0..100 by the maximum, optionally reversed."""
    highest = max(scores, default=0)
    if highest == 0:
        return [MAX_NODE_SCORE] * len(scores) if reverse else scores
    scaled = [MAX_NODE_SCORE * s // highest for s in scores]
    return [MAX_NODE_SCORE - s for s in scaled] if reverse else scaled


def normalize_spread(scores: list[int]) -> list[int]:
    highest = max(scores, default=0)
    if highest == 0:
        return [MAX_NODE_SCORE] * len(scores)
    lowest = min(scores)
    return [MAX_NODE_SCORE * (highest + lowest - s) // highest for s in scores]


def plugin_scores(
    pod: PodInfo | Mapping[str, Any], feasible: Sequence[NodeInfo]
) -> dict[str, list[int]]:
    """Normalised 0..100 scores per plugin, aligned with `feasible` (unweighted)."""
    info = as_pod_info(pod)
    tolerations = info.prefer_tolerations
    taints = [  # untolerated PreferNoSchedule taints per node
        count_untolerated(node.prefer_taints, tolerations) if node.prefer_taints else 0
        for node in feasible
    ]
    least, balanced = resource_scores(info, feasible)
    scores: dict[str, list[int]] = {
        "TaintToleration": normalize_default(taints, reverse=True),
        "NodeResourcesFit": least,
        "NodeResourcesBalancedAllocation": balanced,
    }
    if info.preferred:
        raw = [preferred_affinity(info, node) for node in feasible]
        scores["NodeAffinity"] = normalize_default(raw, reverse=False)
    if info.owner_uid is not None:
        scores["PodTopologySpread"] = normalize_spread(spread_raw(info, feasible))
    return scores


def total_scores(pod: PodInfo | Mapping[str, Any], feasible: Sequence[NodeInfo]) -> list[int]:
    """Weighted totals aligned with `feasible`."""
    per_plugin = plugin_scores(pod, feasible)
    zeros = [0] * len(feasible)
    # Unpacked in the order of WEIGHTS; one pass instead of one per plugin.
    taint, affinity, fit, spread, balance = (per_plugin.get(name, zeros) for name in WEIGHTS)
    w_taint, w_affinity, w_fit, w_spread, w_balance = WEIGHTS.values()
    return [
        w_taint * a + w_affinity * b + w_fit * c + w_spread * d + w_balance * e
        for a, b, c, d, e in zip(taint, affinity, fit, spread, balance, strict=True)
    ]


def select_host(
    pod: PodInfo | Mapping[str, Any], feasible: Sequence[NodeInfo], rng: random.Random
) -> str:
    """Name of the best-scoring feasible node; ties broken uniformly at random by `rng`."""
    if not feasible:
        raise ValueError("select_host needs at least one feasible node")
    if len(feasible) == 1:
        return feasible[0].name
    totals = total_scores(pod, feasible)
    best = max(totals)
    winners = [index for index, total in enumerate(totals) if total == best]
    return feasible[winners[0] if len(winners) == 1 else rng.choice(winners)].name
