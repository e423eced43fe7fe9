"""Node lifecycle: a node that stops heartbeating is marked unknown, tainted and emptied.

Reconcile, for one Node (Kubernetes' node lifecycle controller, tuned for one machine):

    heartbeat   the later of its Lease's `renewTime` and its Ready condition's
                `lastHeartbeatTime`
    grace       the Lease's own `leaseDurationSeconds` (the agent says how long silence
                may last: 40 s for the kubelet's defaults, a few seconds for kubeling's
                local agents), else `default_grace`
    silent      heartbeat + grace < now →
                  * every node condition becomes `Unknown` ("Kubelet stopped posting node
                    status."), lastTransitionTime now;
                  * taints `node.kubernetes.io/unreachable` NoSchedule and NoExecute are added
                    (the scheduler then places nothing there);
                  * every pod on it gets `Ready=False`, and is deleted (evicted) once its
                    toleration of the NoExecute taint runs out (at once without one), so its
                    ReplicaSet creates a replacement elsewhere; a bare pod is simply gone;
    alive       the unreachable taints are removed once the agent reports `Ready=True` again
                (the agent, not this controller, says the node is ready).

A silent node is looked at again when its grace would run out, so detection takes one grace
period, not a polling interval. The agent that comes back finds its evicted pods marked for
deletion and stops their processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.cache import Object, by_node_name, copy
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.reconcile import Controller, Manager, Result
from kubeling.util.timefmt import format_time, parse_time, utcnow

log = logging.getLogger(__name__)

UNREACHABLE = "node.kubernetes.io/unreachable"
LEASE_NAMESPACE = "kube-node-lease"
NODE_INDEX = "spec.nodeName"
DEFAULT_GRACE = 40.0


NODES = REGISTRY.resource("", "v1", "nodes")
PODS = REGISTRY.resource("", "v1", "pods")
LEASES = REGISTRY.resource("coordination.k8s.io", "v1", "leases")


def _time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(str(text))
    except ValueError:
        return None


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def toleration_seconds(pod: Mapping[str, Any], key: str, effect: str) -> float | None:
    """How long `pod` tolerates the taint `key:effect` (no value): 0 when it does not,
    None when forever."""
    best: float | None = 0.0
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if t.get("effect") and t.get("effect") != effect:
            continue
        if t.get("key") and t.get("key") != key:
            continue
        operator = t.get("operator") or "Equal"
        if operator == "Equal" and (t.get("value") or "") != "":
            continue
        if operator not in ("Equal", "Exists"):
            continue
        if not t.get("key") and operator != "Exists":
            continue
        seconds = t.get("tolerationSeconds")
        if seconds is None:
            return None
        best = max(best or 0.0, float(seconds))
    return best


class NodeLifecycleReconciler:
    def __init__(
        self,
        client: Client,
        nodes: Informer,
        leases: Informer,
        pods: Informer,
        recorder: EventRecorder,
        *,
        default_grace: float = DEFAULT_GRACE,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.leases = leases
        self.pods = pods
        self.recorder = recorder
        self.default_grace = default_grace
        self.wall = wall

    def _heartbeat(self, node: Mapping[str, Any]) -> tuple[datetime | None, float]:
        name = node["metadata"]["name"]
        lease = self.leases.cache.get(f"{LEASE_NAMESPACE}/{name}")
        grace = self.default_grace
        beats: list[datetime] = []
        if lease is not None:
            spec = lease.get("spec") or {}
            if spec.get("leaseDurationSeconds"):
                grace = float(spec["leaseDurationSeconds"])
            renewed = _time(spec.get("renewTime"))
            if renewed is not None:
                beats.append(renewed)
        ready = _condition(node, "Ready")
        if ready is not None:
            posted = _time(ready.get("lastHeartbeatTime"))
            if posted is not None:
                beats.append(posted)
        return (max(beats) if beats else None), grace

    async def reconcile(self, key: str) -> Result:
        node = self.nodes.cache.get(key)
        if node is None:
            return Result()
        now = self.wall()
        last, grace = self._heartbeat(node)
        if last is None:
            created = _time(node["metadata"].get("creationTimestamp")) or now
            last = created
        silent_for = (now - last).total_seconds()
        if silent_for <= grace:
            await self._alive(node)
            return Result(requeue_after=grace - silent_for + 0.2)
        return await self._silent(node, now)

    async def _alive(self, node: Object) -> None:
        ready = _condition(node, "Ready")
        taints = (node.get("spec") or {}).get("taints") or []
        if ready is None or ready.get("status") != "True":
            return
        if any(t.get("key") == UNREACHABLE for t in taints):
            updated = copy(node)
            updated["spec"]["taints"] = [t for t in taints if t.get("key") != UNREACHABLE]
            if not updated["spec"]["taints"]:
                del updated["spec"]["taints"]
            await self.client.update(NODES, updated)
            log.info("node %s is reachable again", node["metadata"]["name"])

    async def _silent(self, node: Object, now: datetime) -> Result:
        name = node["metadata"]["name"]
        stamp = format_time(now)
        ready = _condition(node, "Ready")
        if ready is None or ready.get("status") != "Unknown":
            updated = copy(node)
            for c in (updated.get("status") or {}).get("conditions") or []:
                if c.get("status") != "Unknown":
                    c["lastTransitionTime"] = stamp
                c["status"] = "Unknown"
                c["reason"] = "NodeStatusUnknown"
                c["message"] = "Kubelet stopped posting node status."
            node = await self.client.update_status(NODES, updated)
            self.recorder.event(
                node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
            )
            log.warning("node %s stopped heartbeating: marked unknown", name)
        taints = list((node.get("spec") or {}).get("taints") or [])
        have = {(t.get("key"), t.get("effect")) for t in taints}
        missing = [e for e in ("NoSchedule", "NoExecute") if (UNREACHABLE, e) not in have]
        if missing:
            updated = copy(node)
            updated["spec"]["taints"] = taints + [
                {"key": UNREACHABLE, "effect": e, "timeAdded": stamp} for e in missing
            ]
            node = await self.client.update(NODES, updated)
        tainted_at = now
        for t in (node.get("spec") or {}).get("taints") or []:
            if t.get("key") == UNREACHABLE and t.get("effect") == "NoExecute":
                tainted_at = _time(t.get("timeAdded")) or now
        next_look: float | None = None
        for pod in self.pods.cache.by_index(NODE_INDEX, name):
            wait = await self._evict_or_mark(pod, tainted_at, now)
            if wait is not None:
                next_look = wait if next_look is None else min(next_look, wait)
        return Result(requeue_after=next_look) if next_look else Result()

    async def _evict_or_mark(
        self, pod: Object, tainted_at: datetime, now: datetime
    ) -> float | None:
        """Mark the pod not ready; evict it when its toleration ran out. Returns seconds
        until it will, if it still tolerates the taint for a while."""
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        ready = _condition(pod, "Ready")
        if ready is not None and ready.get("status") == "True":
            updated = copy(pod)
            for c in updated["status"]["conditions"]:
                if c.get("type") == "Ready":
                    c["status"] = "False"
                    c["lastTransitionTime"] = format_time(now)
            try:
                await self.client.update_status(PODS, updated)
            except ApiError as err:
                if err.code not in (404, 409):
                    raise
        tolerated = toleration_seconds(pod, UNREACHABLE, "NoExecute")
        if tolerated is None:
            return None
        left = (tainted_at + timedelta(seconds=tolerated) - now).total_seconds()
        if left > 0:
            return left + 0.1
        try:
            await self.client.delete(PODS, meta["name"], meta.get("namespace"))
        except ApiError as err:
            if err.code not in (404, 409):
                raise
            return None
        self.recorder.event(
            pod,
            "Normal",
            "TaintManagerEviction",
            f"Marking for deletion Pod {meta.get('namespace')}/{meta['name']}",
        )
        log.info("evicted pod %s/%s from unreachable node", meta.get("namespace"), meta["name"])
        return None


def node_lifecycle_controller(
    client: Client,
    manager: Manager,
    recorder: EventRecorder | None = None,
    *,
    default_grace: float = DEFAULT_GRACE,
) -> Controller:
    """The controller on the manager's shared Node, Lease and Pod informers."""
    nodes = manager.informers.informer(NODES)
    leases = manager.informers.informer(LEASES, LEASE_NAMESPACE)
    pods = manager.informers.informer(PODS)
    if not pods.cache.has_index(NODE_INDEX):
        pods.cache.add_indexer(NODE_INDEX, by_node_name)
    reconciler = NodeLifecycleReconciler(
        client,
        nodes,
        leases,
        pods,
        recorder if recorder is not None else EventRecorder(client, "node-controller"),
        default_grace=default_grace,
    )
    controller = Controller("node-lifecycle", reconciler)
    controller.watch(nodes)
    controller.watch(leases, lambda lease: [str(lease["metadata"]["name"])])
    # A pod bound to a node that is already silent must be evicted too.
    controller.watch(pods, by_node_name, events=("add", "update"))
    manager.add(controller)
    return controller
