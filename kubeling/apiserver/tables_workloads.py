"""Table printers for what runs: Pods, Deployments, ReplicaSets, and the Events they emit.

Why: these are the tables users read most (`kubectl get pods`, `get deploy`, `get events`), so
the cells follow Kubernetes' printers exactly, including the pod STATUS rules: the phase, or
the reason of the container that explains it (`CrashLoopBackOff`, `Completed`, `Init:1/2`,
`Init:Error`), `Terminating` once deletion began, and the RESTARTS cell with the time since
the last restart (`3 (5m ago)`). Sidecars (init containers with `restartPolicy: Always`) count
as containers, as they do in Kubernetes.

Contract: `TABLES` maps `(group, kind)` to its `KindTable`; see `tables_cells`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubeling.apiserver.tables_cells import (
    AGE,
    CONTAINERS,
    IMAGES,
    NAME,
    Column,
    KindTable,
    Obj,
    age,
    container_cells,
    format_selector,
    get,
    human_duration,
    items,
    mapping,
    name,
    number,
    selector_string,
    since,
    text,
    timestamp,
)

# ---------------------------------------------------------------------------------------------
# Pods

POD_COLUMNS = (
    NAME,
    Column("Ready", doc="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", doc="The aggregate status of the containers in this pod."),
    Column("Restarts", doc="The number of times the containers in this pod have been restarted "
           "and when the last container in this pod has restarted."),
    AGE,
    Column("IP", priority=1, doc=("core.v1.PodStatus", "podIP")),
    Column("Node", priority=1, doc=("core.v1.PodSpec", "nodeName")),
    Column("Nominated Node", priority=1, doc=("core.v1.PodStatus", "nominatedNodeName")),
    Column("Readiness Gates", priority=1, doc=("core.v1.PodSpec", "readinessGates")),
)  # fmt: skip

_TERMINAL = ("Succeeded", "Failed")


def _condition_true(pod: Obj, kind: str) -> bool:
    """The status of the first condition of that type (absent: False)."""
    for condition in items(pod, "status", "conditions"):
        if text(condition, "type") == kind:
            return text(condition, "status") == "True"
    return False


def _has_ready_condition(pod: Obj) -> bool:
    return any(
        text(c, "type") == "Ready" and text(c, "status") == "True"
        for c in items(pod, "status", "conditions")
    )


def _is_sidecar(container: Any) -> bool:
    return text(container, "restartPolicy") == "Always"


def _finished_at(status: Any) -> datetime | None:
    return timestamp(get(status, "lastState", "terminated", "finishedAt"))


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current


def _terminated_reason(terminated: Any, prefix: str) -> str:
    reason = text(terminated, "reason")
    if reason:
        return prefix + reason
    signal = number(terminated, "signal")
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{number(terminated, 'exitCode')}"


def pod_status(pod: Obj) -> tuple[int, int, str, int, datetime | None]:
    """(ready, total, STATUS, restarts, last restart) as Kubernetes' pod printer derives them."""
    spec_init = {text(c, "name"): c for c in items(pod, "spec", "initContainers")}
    total = len(items(pod, "spec", "containers"))
    total += sum(1 for c in spec_init.values() if _is_sidecar(c))
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = text(pod, "status", "phase")
    reason = text(pod, "status", "reason") or phase
    for condition in items(pod, "status", "conditions"):
        if text(condition, "type") == "PodScheduled" and text(condition, "reason") == (
            "SchedulingGated"
        ):
            reason = "SchedulingGated"

    init_statuses = items(pod, "status", "initContainerStatuses")
    initializing = False
    for index, status in enumerate(init_statuses):
        restarts += number(status, "restartCount")
        last_restart = _later(last_restart, _finished_at(status))
        sidecar = _is_sidecar(spec_init.get(text(status, "name")))
        if sidecar:
            sidecar_restarts += number(status, "restartCount")
            last_sidecar_restart = _later(last_sidecar_restart, _finished_at(status))
        terminated = get(status, "state", "terminated")
        waiting_reason = text(status, "state", "waiting", "reason")
        if terminated is not None and number(terminated, "exitCode") == 0:
            continue
        if sidecar and get(status, "started") is True:
            ready += 1 if get(status, "ready") is True else 0
            continue
        if terminated is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting_reason and waiting_reason != "PodInitializing":
            reason = "Init:" + waiting_reason
        else:
            reason = f"Init:{index}/{len(spec_init)}"
        initializing = True
        break

    if not initializing or _condition_true(pod, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for status in reversed(items(pod, "status", "containerStatuses")):
            restarts += number(status, "restartCount")
            last_restart = _later(last_restart, _finished_at(status))
            terminated = get(status, "state", "terminated")
            waiting_reason = text(status, "state", "waiting", "reason")
            if waiting_reason:
                reason = waiting_reason
            elif terminated is not None:
                reason = _terminated_reason(terminated, "")
            elif get(status, "ready") is True and get(status, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_ready_condition(pod) else "NotReady"

    deleting = get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and text(pod, "status", "reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in _TERMINAL:
        reason = "Terminating"
    return ready, total, reason, restarts, last_restart


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    ready, total, reason, restarts, last_restart = pod_status(pod)
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    pod_ips = items(pod, "status", "podIPs")
    pod_ip = text(pod_ips[0], "ip") if pod_ips else text(pod, "status", "podIP")
    gates = items(pod, "spec", "readinessGates")
    gates_cell = "<none>"
    if gates:
        met = sum(1 for g in gates if _condition_true(pod, text(g, "conditionType")))
        gates_cell = f"{met}/{len(gates)}"
    return [
        name(pod), f"{ready}/{total}", reason, restarts_cell, age(pod, now),
        pod_ip or "<none>", text(pod, "spec", "nodeName") or "<none>",
        text(pod, "status", "nominatedNodeName") or "<none>", gates_cell,
    ]  # fmt: skip


def _pod_conditions(pod: Obj) -> list[dict[str, str]]:
    phase = text(pod, "status", "phase")
    message = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}
    if phase not in message:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message[phase]}]


# ---------------------------------------------------------------------------------------------
# Deployments and ReplicaSets

DEPLOYMENT_COLUMNS = (
    NAME,
    Column("Ready", doc="Number of the pod with ready state"),
    Column("Up-to-date", doc=("apps.v1.DeploymentStatus", "updatedReplicas")),
    Column("Available", doc=("apps.v1.DeploymentStatus", "availableReplicas")),
    AGE,
    CONTAINERS,
    IMAGES,
    Column("Selector", priority=1, doc=("apps.v1.DeploymentSpec", "selector")),
)


def _deployment_cells(obj: Obj, now: datetime) -> list[Any]:
    desired = number(obj, "spec", "replicas", default=1)
    return [
        name(obj),
        f"{number(obj, 'status', 'readyReplicas')}/{desired}",
        number(obj, "status", "updatedReplicas"),
        number(obj, "status", "availableReplicas"),
        age(obj, now),
        *container_cells(items(obj, "spec", "template", "spec", "containers")),
        selector_string(get(obj, "spec", "selector")),
    ]


REPLICA_SET_COLUMNS = (
    NAME,
    Column("Desired", "integer", ("apps.v1.ReplicaSetSpec", "replicas")),
    Column("Current", "integer", ("apps.v1.ReplicaSetStatus", "replicas")),
    Column("Ready", "integer", ("apps.v1.ReplicaSetStatus", "readyReplicas")),
    AGE,
    CONTAINERS,
    IMAGES,
    Column("Selector", priority=1, doc=("apps.v1.ReplicaSetSpec", "selector")),
)


def _replica_set_cells(obj: Obj, now: datetime) -> list[Any]:
    return [
        name(obj),
        number(obj, "spec", "replicas", default=1),
        number(obj, "status", "replicas"),
        number(obj, "status", "readyReplicas"),
        age(obj, now),
        *container_cells(items(obj, "spec", "template", "spec", "containers")),
        format_selector(get(obj, "spec", "selector")),
    ]


# ---------------------------------------------------------------------------------------------
# Events (core/v1 and events.k8s.io/v1 share one printer, as they share one storage)

EVENT_COLUMNS = (
    Column("Last Seen", doc=("core.v1.Event", "lastTimestamp")),
    Column("Type", doc=("core.v1.Event", "type")),
    Column("Reason", doc=("core.v1.Event", "reason")),
    Column("Object", doc=("core.v1.Event", "involvedObject")),
    Column("Subobject", priority=1, doc=("core.v1.ObjectReference", "fieldPath")),
    Column("Source", priority=1, doc=("core.v1.Event", "source")),
    Column("Message", doc=("core.v1.Event", "message")),
    Column("First Seen", priority=1, doc=("core.v1.Event", "firstTimestamp")),
    Column("Count", priority=1, doc=("core.v1.Event", "count")),
    Column("Name", priority=1, format="name", doc=("ObjectMeta", "name")),
)


def core_event(event: Obj) -> dict[str, Any]:
    """An events.k8s.io/v1 Event in core/v1 field names (what Kubernetes prints from)."""
    return {
        "metadata": mapping(event, "metadata"),
        "involvedObject": mapping(event, "regarding"),
        "message": text(event, "note"),
        "firstTimestamp": get(event, "deprecatedFirstTimestamp"),
        "lastTimestamp": get(event, "deprecatedLastTimestamp"),
        "count": number(event, "deprecatedCount"),
        "source": mapping(event, "deprecatedSource"),
        "reportingComponent": text(event, "reportingController"),
        "reportingInstance": text(event, "reportingInstance"),
        "eventTime": get(event, "eventTime"),
        "series": get(event, "series"),
        "type": text(event, "type"),
        "reason": text(event, "reason"),
    }


def _event_cells(event: Obj, now: datetime) -> list[Any]:
    first_seen = since(get(event, "firstTimestamp"), now)
    if timestamp(get(event, "firstTimestamp")) is None:
        first_seen = since(get(event, "eventTime"), now)
    last_seen = since(get(event, "lastTimestamp"), now)
    if timestamp(get(event, "lastTimestamp")) is None:
        last_seen = first_seen
    count = number(event, "count")
    series = get(event, "series")
    if isinstance(series, dict):
        last_seen = since(get(series, "lastObservedTime"), now)
        count = number(series, "count")
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    kind = text(event, "involvedObject", "kind").lower()
    involved = text(event, "involvedObject", "name")
    component = text(event, "source", "component") or text(event, "reportingComponent")
    instance = text(event, "source", "host") or text(event, "reportingInstance")
    return [
        last_seen, text(event, "type"), text(event, "reason"),
        f"{kind}/{involved}" if involved else kind,
        text(event, "involvedObject", "fieldPath"),
        f"{component}, {instance}" if instance else component,
        text(event, "message").strip(), first_seen, count, name(event),
    ]  # fmt: skip


def _events_k8s_io_cells(event: Obj, now: datetime) -> list[Any]:
    return _event_cells(core_event(event), now)


TABLES: dict[tuple[str, str], KindTable] = {
    ("", "Pod"): KindTable(POD_COLUMNS, _pod_cells, _pod_conditions),
    ("apps", "Deployment"): KindTable(DEPLOYMENT_COLUMNS, _deployment_cells),
    ("apps", "ReplicaSet"): KindTable(REPLICA_SET_COLUMNS, _replica_set_cells),
    ("", "Event"): KindTable(EVENT_COLUMNS, _event_cells),
    ("events.k8s.io", "Event"): KindTable(EVENT_COLUMNS, _events_k8s_io_cells),
}
