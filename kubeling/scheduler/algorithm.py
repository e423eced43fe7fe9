"""One scheduling decision: filter, then score or explain. The entry point of the loop.

    decision = schedule_pod(pod, node_infos, rng)
    if decision.node_name:      # bind; then node_infos[...].add_pod(pod) ("assume")
    else:                       # patch status.conditions with unschedulable_condition(...)
                                # and record a FailedScheduling event with event_note(...)

Contract: pure and synchronous; reads `node_infos` and never changes them (the caller assumes
the Pod on the chosen node itself, so the next decision sees it). `start` and `percentage`
mirror kube-scheduler's rotating start index and `percentageOfNodesToScore`; the defaults
examine every node, which is what small clusters (< 100 nodes) do anyway.

Status written on failure (kube-scheduler `handleSchedulingFailure`): condition
`PodScheduled=False`, reason `Unschedulable`, message = `decision.message`; the event
`FailedScheduling` (type Warning, from `default-scheduler`) carries the same message, cut to
1024 characters ending in " ..." (`truncateMessage`, the event note limit).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeling.scheduler.filters import Diagnosis, run_filters, unschedulable_message
from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo, as_pod_info
from kubeling.scheduler.preemption import preemption_outcome
from kubeling.scheduler.scoring import select_host

REASON_UNSCHEDULABLE = "Unschedulable"  # v1.PodReasonUnschedulable
EVENT_REASON = "FailedScheduling"
NOTE_LENGTH_LIMIT = 1024


@dataclass(frozen=True)
class Decision:
    node_name: str | None  # where to bind, or None
    message: str = ""  # why not, when node_name is None
    diagnosis: Diagnosis | None = None
    preemption_candidates: tuple[str, ...] = ()  # where evicting lower priority would help
    examined: int = 0  # nodes looked at; the next `start` is (start + examined) % len(nodes)


def schedule_pod(
    pod: PodInfo | Mapping[str, Any],
    node_infos: Sequence[NodeInfo],
    rng: random.Random,
    *,
    start: int = 0,
    percentage: int | None = None,
) -> Decision:
    info = as_pod_info(pod)
    if not node_infos:
        return Decision(None, unschedulable_message(Diagnosis(), 0))
    feasible, diagnosis = run_filters(info, node_infos, start=start, percentage=percentage)
    if feasible:
        return Decision(select_host(info, feasible, rng), examined=diagnosis.examined)
    outcome = preemption_outcome(info, diagnosis, node_infos)
    message = unschedulable_message(diagnosis, len(node_infos), outcome.message)
    return Decision(None, message, diagnosis, outcome.candidates, diagnosis.examined)


def unschedulable_condition(message: str, now: str) -> dict[str, Any]:
    """The PodScheduled condition to write; `now` is an RFC 3339 timestamp.

    As `podutil.UpdatePodCondition`, keep the old `lastTransitionTime` when the Pod already
    has `PodScheduled=False` (only the message and reason change then).
    """
    return {
        "type": "PodScheduled",
        "status": "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
        "reason": REASON_UNSCHEDULABLE,
        "message": message,
    }


def event_note(message: str) -> str:
    """The FailedScheduling event's note: the message, cut to the event note limit."""
    if len(message) <= NOTE_LENGTH_LIMIT:
        return message
    suffix = " ..."
    return message[: NOTE_LENGTH_LIMIT - len(suffix)] + suffix
