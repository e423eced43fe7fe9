"""Filters: which nodes can take a Pod, and why the others cannot, in Kubernetes' words.

Contract:

- A filter is `(pod: PodInfo, node: NodeInfo) -> tuple[str, ...]`: the empty tuple means the
  Pod fits, otherwise the reasons, spelled exactly as kube-scheduler 1.32 counts them in its
  message. A tuple rather than one string because NodeResourcesFit reports every short
  resource at once ("Insufficient cpu" and "Insufficient memory" on the same node).
- `FILTERS` runs in the order of Kubernetes' default profile (NodeUnschedulable, NodeName,
  TaintToleration, NodeAffinity, NodeResourcesFit). A node is rejected by the first filter
  that fails; later filters are not asked, so each node contributes the reasons of one filter.
- Every filter but NodeResourcesFit rejects with `UnschedulableAndUnresolvable` (evicting
  Pods cannot help); preemption (see `preemption.py`) reads that from `Filter.resolvable`.
- Before the filters, the NodeAffinity PreFilter may pin the Pod to named nodes; the rest are
  "absent" and all get the one reason `node(s) didn't satisfy plugin(s) [NodeAffinity]`.
- `run_filters` can stop once it has found enough feasible nodes (kube-scheduler's
  `percentageOfNodesToScore`, see `num_feasible_nodes_to_find`), scanning from `start` and
  wrapping around; when nothing fits, every node has been examined and has a reason.
- `unschedulable_message` builds `FitError.Error()`: "0/N nodes are available: " then, unless a
  PreFilter rejected the Pod, the histogram "<count> <reason>" of all nodes sorted as *strings*
  (so "10 Insufficient cpu" sorts before "2 ..."), joined by ", " and ended by "."; then the
  PostFilter (preemption) message after a space. Example with 3 nodes:
  "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint
  {node.kubernetes.io/not-ready: }. preemption: 0/3 nodes are available: 1 No preemption
  victims found for incoming pod, 2 Preemption is not helpful for scheduling."
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo, as_pod_info
from kubeling.scheduler.resources import CPU, EPHEMERAL_STORAGE, MEMORY, Resources
from kubeling.scheduler.taints import UNSCHEDULABLE, Taint, first_untolerated, tolerated

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NODE_NAME = "node(s) didn't match the requested node name"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_TOO_MANY_PODS = "Too many pods"
REASON_NOT_PINNED = "node(s) didn't satisfy plugin(s) [NodeAffinity]"
REASON_AFFINITY_CONFLICT = "pod affinity terms conflict"
NO_NODES_MESSAGE = "no nodes available to schedule pods"

_UNSCHEDULABLE_TAINT = Taint(UNSCHEDULABLE, "", "NoSchedule")

Reasons = tuple[str, ...]
FilterFn = Callable[[PodInfo, NodeInfo], Reasons]


def untolerated_taint_reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def insufficient_reason(resource: str) -> str:
    return f"Insufficient {resource}"


def node_unschedulable(pod: PodInfo, node: NodeInfo) -> Reasons:
    """NodeUnschedulable: `spec.unschedulable` unless the Pod tolerates its taint."""
    if node.unschedulable and not tolerated(pod.tolerations, _UNSCHEDULABLE_TAINT):
        return (REASON_UNSCHEDULABLE,)
    return ()


def node_name(pod: PodInfo, node: NodeInfo) -> Reasons:
    """NodeName: a Pod that names a node fits only there."""
    if pod.node_name and pod.node_name != node.name:
        return (REASON_NODE_NAME,)
    return ()


def taint_toleration(pod: PodInfo, node: NodeInfo) -> Reasons:
    """TaintToleration: the first NoSchedule / NoExecute taint the Pod does not tolerate."""
    if not node.schedule_taints:
        return ()
    taint = first_untolerated(node.schedule_taints, pod.schedule_tolerations)
    return () if taint is None else (untolerated_taint_reason(taint),)


def node_affinity(pod: PodInfo, node: NodeInfo) -> Reasons:
    """NodeAffinity: nodeSelector and required node affinity."""
    if pod.required is None or pod.required.matches(node.labels, node.name):
        return ()
    return (REASON_NODE_AFFINITY,)


def insufficient_resources(
    request: Resources,
    allocatable: Resources,
    requested: Resources,
    pod_count: int,
) -> Reasons:
    """NodeResourcesFit's arithmetic on plain numbers (shared with preemption's dry run)."""
    reasons: list[str] = []
    if pod_count + 1 > allocatable.pods:
        reasons.append(REASON_TOO_MANY_PODS)
    if request.is_zero:
        return tuple(reasons)
    if request.milli_cpu > 0 and request.milli_cpu > allocatable.milli_cpu - requested.milli_cpu:
        reasons.append(insufficient_reason(CPU))
    if request.memory > 0 and request.memory > allocatable.memory - requested.memory:
        reasons.append(insufficient_reason(MEMORY))
    wanted = request.ephemeral_storage
    if wanted > 0 and wanted > allocatable.ephemeral_storage - requested.ephemeral_storage:
        reasons.append(insufficient_reason(EPHEMERAL_STORAGE))
    for name, value in request.scalars:
        if value > 0 and value > allocatable.scalar(name) - requested.scalar(name):
            reasons.append(insufficient_reason(name))
    return tuple(reasons)


def node_resources_fit(pod: PodInfo, node: NodeInfo) -> Reasons:
    """NodeResourcesFit: pod count, cpu, memory, ephemeral-storage, extended resources."""
    request = pod.requests
    allocatable = node.allocatable
    if len(node.pods) < allocatable.pods and not request.scalars and not request.ephemeral_storage:
        # The common case, decided without building a Resources for the node.
        cpu, memory = request.milli_cpu, request.memory
        if (cpu <= 0 or cpu <= allocatable.milli_cpu - node.requested_cpu) and (
            memory <= 0 or memory <= allocatable.memory - node.requested_memory
        ):
            return ()
    return insufficient_resources(request, allocatable, node.requested, len(node.pods))


class Filter(NamedTuple):
    name: str
    check: FilterFn
    resolvable: bool  # False: UnschedulableAndUnresolvable, preemption cannot help


FILTERS: tuple[Filter, ...] = (
    Filter("NodeUnschedulable", node_unschedulable, False),
    Filter("NodeName", node_name, False),
    Filter("TaintToleration", taint_toleration, False),
    Filter("NodeAffinity", node_affinity, False),
    Filter("NodeResourcesFit", node_resources_fit, True),
)


def _applicable(pod: PodInfo) -> tuple[Filter, ...]:
    """The filters with something to check for this Pod (Kubernetes' PreFilter `Skip`)."""
    skip = set()
    if not pod.node_name:
        skip.add("NodeName")
    if pod.required is None:
        skip.add("NodeAffinity")
    return tuple(f for f in FILTERS if f.name not in skip)


@dataclass
class Diagnosis:
    """Why nodes were rejected: what `unschedulable_message` and preemption need."""

    node_reasons: dict[str, Reasons] = field(default_factory=dict)
    unresolvable: set[str] = field(default_factory=set)  # nodes preemption cannot help
    rejected_by: set[str] = field(default_factory=set)  # filter names, for requeue hints
    absent_reason: str = ""  # the reason of every node the PreFilter left out
    absent_count: int = 0
    prefilter_message: str = ""  # set when a PreFilter rejected the Pod outright
    examined: int = 0  # nodes looked at (feasible + rejected): advance `start` by this

    def reasons_of(self, name: str) -> Reasons:
        """A node's reasons; nodes never examined carry the absent reason."""
        if name in self.node_reasons:
            return self.node_reasons[name]
        return (self.absent_reason,) if self.absent_reason else ()


def num_feasible_nodes_to_find(total: int, percentage: int = 0) -> int:
    """How many feasible nodes to collect before scoring (`numFeasibleNodesToFind`).

    Under 100 nodes, all. Otherwise `percentage` of them (0 = adaptive: 50% minus 1% per 125
    nodes, at least 5%), but never fewer than 100. 1 000 nodes -> 420; 5 000 -> 500.
    """
    if total < 100:
        return total
    if percentage <= 0:
        percentage = max(50 - total // 125, 5)
    return max(total * percentage // 100, 100)


def run_filters(
    pod: PodInfo | Mapping[str, Any],
    node_infos: Sequence[NodeInfo],
    *,
    start: int = 0,
    percentage: int | None = None,
) -> tuple[list[NodeInfo], Diagnosis]:
    """The feasible nodes (in scan order) and the diagnosis of the rejected ones.

    `percentage` None examines every node; otherwise the scan stops after
    `num_feasible_nodes_to_find(candidates, percentage)` feasible nodes (0 = adaptive, as
    kube-scheduler's default). A caller that rotates like kube-scheduler passes
    `start = (previous start + diagnosis.examined) % len(node_infos)` next time.
    """
    info = as_pod_info(pod)
    diagnosis = Diagnosis()
    candidates: Sequence[NodeInfo] = node_infos
    if info.pinned_nodes is not None:
        if not info.pinned_nodes:
            diagnosis.prefilter_message = REASON_AFFINITY_CONFLICT
            diagnosis.absent_reason = REASON_AFFINITY_CONFLICT
            diagnosis.absent_count = len(node_infos)
            diagnosis.rejected_by.add("NodeAffinity")
            return [], diagnosis
        candidates = [n for n in node_infos if n.name in info.pinned_nodes]
        diagnosis.absent_reason = REASON_NOT_PINNED
        diagnosis.absent_count = len(node_infos) - len(candidates)
    count = len(candidates)
    wanted = count if percentage is None else num_feasible_nodes_to_find(count, percentage)
    first = start % count if count else 0
    ordered = candidates if first == 0 else [*candidates[first:], *candidates[:first]]
    feasible: list[NodeInfo] = []
    checks = _applicable(info)
    functions = tuple(f.check for f in checks)
    examined = 0
    for node in ordered:
        examined += 1
        for function in functions:
            reasons = function(info, node)
            if reasons:
                rejecting = checks[functions.index(function)]
                diagnosis.node_reasons[node.name] = reasons
                diagnosis.rejected_by.add(rejecting.name)
                if not rejecting.resolvable:
                    diagnosis.unresolvable.add(node.name)
                break
        else:
            feasible.append(node)
            if len(feasible) >= wanted:
                break
    diagnosis.examined = examined
    return feasible, diagnosis


def reason_histogram(diagnosis: Diagnosis) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reasons in diagnosis.node_reasons.values():
        for reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
    if diagnosis.absent_count and diagnosis.absent_reason:
        reason = diagnosis.absent_reason
        counts[reason] = counts.get(reason, 0) + diagnosis.absent_count
    return counts


def fit_error_message(counts: Mapping[str, int], total_nodes: int, prefilter: str = "") -> str:
    """`FitError.Error()` without the PostFilter part."""
    message = f"0/{total_nodes} nodes are available:"
    if prefilter:
        return f"{message} {prefilter}."
    entries = sorted(f"{count} {reason}" for reason, count in counts.items())
    if entries:
        message += f" {', '.join(entries)}."
    return message


def unschedulable_message(diagnosis: Diagnosis, total_nodes: int, postfilter: str = "") -> str:
    """The `PodScheduled=False` message (and FailedScheduling event) when nothing fits.

    `postfilter` is preemption's message (`preemption.preemption_outcome`), "" for none.
    """
    if total_nodes == 0:
        return NO_NODES_MESSAGE
    counts = reason_histogram(diagnosis)
    message = fit_error_message(counts, total_nodes, diagnosis.prefilter_message)
    return f"{message} {postfilter}" if postfilter else message
