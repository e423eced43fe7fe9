"""The scheduler's decision core: pure functions from (Pod, NodeInfos) to a node or a reason.

Modules, bottom up: `resources` (requests and allocatable as integers), `taints`, `affinity`,
`podinfo` (a Pod parsed once), `nodeinfo` (a Node plus its Pods' sums), `filters` (which
nodes fit and Kubernetes' reason strings), `preemption` (the message's preemption part),
`scoring` (default-profile scores and host selection) and `algorithm` (one decision).
Nothing here performs I/O or awaits; the scheduling loop (queue, informers, binding) calls in.
"""

from kubeling.scheduler.algorithm import (
    Decision,
    event_note,
    schedule_pod,
    unschedulable_condition,
)
from kubeling.scheduler.filters import Diagnosis, run_filters, unschedulable_message
from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo, needs_scheduling, occupies_node
from kubeling.scheduler.scoring import select_host

__all__ = [
    "Decision",
    "Diagnosis",
    "NodeInfo",
    "PodInfo",
    "event_note",
    "needs_scheduling",
    "occupies_node",
    "run_filters",
    "schedule_pod",
    "select_host",
    "unschedulable_condition",
    "unschedulable_message",
]
