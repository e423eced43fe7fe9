"""The scheduling loop: informers in, `schedule_pod` decisions, bindings and statuses out.

    scheduler = Scheduler(client)
    scheduler.start()
    await scheduler.wait_synced(10)
    ...
    await scheduler.stop()

Contract:

- **Which Pods**: a Pod is queued (by `namespace/name`) while `podinfo.needs_scheduling` holds
  for it and `scheduler_name`: unbound, addressed to this scheduler, not being deleted, not
  finished, no scheduling gates. Pods with `spec.nodeName` set are never touched; they only
  count on their node.
- **The cache**: one `NodeInfo` per Node, holding every bound, unfinished Pod
  (`podinfo.occupies_node`), kept up to date by the Node and Pod informers. Pods bound to a
  Node not seen yet are kept aside and added when the Node appears.
- **Two cycles, as kube-scheduler's**: the *scheduling cycle* is serial: one key at a time,
  decide (`schedule_pod`, adaptive sample of the nodes from a rotating start, as
  `percentageOfNodesToScore`) and, on a fit, add the Pod to the chosen `NodeInfo` at once
  ("assume"), so the next decision counts it before the informer reports the binding. The
  *binding cycle* (`client.bind`, the `pods/binding` subresource) then runs as its own task,
  with at most `max_in_flight` bindings outstanding; while all slots are taken the scheduling
  cycle waits for one. The assumption is dropped when the informer shows the Pod bound (the
  real object replaces it), or "forgotten" (its resources released) when the binding fails.
  The status write of a failed decision runs in a binding slot too: the scheduling cycle
  itself never waits on the API.
- **A Pod is bound at most once**: a key stays *processing* in the work queue (which never
  hands out a key twice concurrently) until its binding cycle has ended, and an assumed Pod
  is not scheduled again. A binding answered 409 Conflict means someone else (another
  scheduler, a user) bound it: the key is dropped and the informer brings the truth. A 404
  (Pod gone) is dropped too. Any other failure un-assumes the Pod and retries the key with
  the queue's back-off.
- **Ordering**: bindings of different Pods may complete in any order; decisions are made in
  queue order, each seeing every earlier assumption.
- **Success** records a Normal `Scheduled` event "Successfully assigned ns/pod to node".
- **No fit** writes `PodScheduled=False` (reason `Unschedulable`, message from the decision;
  `lastTransitionTime` kept when the condition was already False; no write when nothing
  changed) to `pods/status`, records a Warning `FailedScheduling` event, and retries the key
  with the work queue's per-key exponential back-off. As kube-scheduler's "move to active"
  on cluster events, every Node add or update re-queues all unschedulable Pods at once.
  Updates to an unschedulable Pod that leave its spec and labels alone (such as the status
  this loop writes) do not re-queue it, so a failure never spins.
- `start()` needs a running loop; `await stop()` stops the worker, cancels the bindings in
  flight (a cancelled binding may or may not have reached the server: the next scheduler
  reads the truth from the API), and stops the informers and the event recorder. Both are
  idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Coroutine, Mapping
from typing import Any

import aiohttp

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.cache import object_key
from kubeling.client.events import NORMAL, WARNING, EventRecorder
from kubeling.client.informer import Informer
from kubeling.client.rest import Client, Object
from kubeling.client.workqueue import RateLimiter, ShutDown, WorkQueue
from kubeling.scheduler.algorithm import (
    EVENT_REASON,
    event_note,
    schedule_pod,
    unschedulable_condition,
)
from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import (
    DEFAULT_SCHEDULER,
    PodInfo,
    needs_scheduling,
    occupies_node,
    pod_key,
)
from kubeling.util.clock import REAL_CLOCK, Clock
from kubeling.util.timefmt import now_rfc3339

log = logging.getLogger(__name__)


PODS = REGISTRY.resource("", "v1", "pods")
NODES = REGISTRY.resource("", "v1", "nodes")

# Bindings outstanding at once. kube-scheduler runs every binding cycle in its own goroutine,
# bounded only by its client's QPS (scheduler_perf runs it at 5 000); here each one costs a
# connection and a coroutine, and 32 keep the API server busy without queueing behind it.
DEFAULT_MAX_IN_FLIGHT = 32


class Scheduler:
    """kube-scheduler's loop for one scheduler name; see the module docstring."""

    def __init__(
        self,
        client: Client,
        *,
        clock: Clock = REAL_CLOCK,
        rng: random.Random | None = None,
        scheduler_name: str = DEFAULT_SCHEDULER,
        namespace: str | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        percentage: int | None = 0,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self.client = client
        self.clock = clock
        self.rng = rng or random.Random()
        self.scheduler_name = scheduler_name
        self.pods = Informer(client, PODS, namespace, clock=clock)
        self.nodes = Informer(client, NODES, clock=clock)
        self.queue: WorkQueue[str] = WorkQueue("scheduler", clock=clock, rate_limiter=rate_limiter)
        self.recorder = EventRecorder(client, scheduler_name, clock=clock)
        self.node_infos: dict[str, NodeInfo] = {}
        self._nodes: list[NodeInfo] | None = None  # node_infos' values, until a node comes or goes
        self._next_start = 0  # kube-scheduler's rotating nextStartNodeIndex
        self.percentage = percentage  # percentageOfNodesToScore; 0 adaptive, None all nodes
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._orphans: dict[str, dict[str, Object]] = {}  # node name -> pod key -> Pod
        self._placed: dict[str, str] = {}  # pod key (uid) -> node name, as in the cache
        self._assumed: dict[str, str] = {}  # queue key -> node name
        self._unschedulable: set[str] = set()
        self._worker: asyncio.Task[None] | None = None
        self.scheduled = 0  # bindings made, for tests and metrics
        self.failed = 0  # decisions without a fit
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes.add_handlers(self._node_added, self._node_updated, self._node_deleted)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is not None:
            return
        self.nodes.start()
        self.pods.start()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(
            asyncio.gather(self.nodes.wait_synced(), self.pods.wait_synced()), timeout
        )

    async def stop(self) -> None:
        self.queue.shutdown()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        bindings = list(self._in_flight)
        for task in bindings:
            task.cancel()
        await asyncio.gather(*bindings, return_exceptions=True)
        await asyncio.gather(self.pods.stop(), self.nodes.stop())
        await self.recorder.close()

    # -- the cache ----------------------------------------------------------------------------

    def _place(self, pod: Object, parsed: PodInfo | None = None) -> None:
        """Put a bound Pod on its node (moving it if it was elsewhere).

        A Pod is parsed (`PodInfo.of`) only when what the parse reads changed: each Pod is
        updated on its node several times (assumed, bound, Running) with the same spec."""
        key, node = pod_key(pod), str(pod["spec"]["nodeName"])
        info = self.node_infos.get(node)
        if parsed is None and info is not None and self._placed.get(key) == node:
            current = info.pods.get(key)
            if current is not None and _parses_alike(current.pod, pod):
                parsed = dataclasses.replace(current, pod=pod)
        self._unplace(key)
        self._placed[key] = node
        if info is not None:
            info.add_pod(parsed or pod)
        else:
            self._orphans.setdefault(node, {})[key] = pod

    def _unplace(self, key: str) -> None:
        node = self._placed.pop(key, None)
        if node is None:
            return
        info = self.node_infos.get(node)
        if info is not None:
            info.remove_pod(key)
        orphans = self._orphans.get(node)
        if orphans is not None:
            orphans.pop(key, None)
            if not orphans:
                del self._orphans[node]

    # -- informer handlers (synchronous; only bookkeeping and queue adds) -----------------------

    def _pod_added(self, pod: Object) -> None:
        self._pod_changed(None, pod)

    def _pod_updated(self, old: Object, new: Object) -> None:
        self._pod_changed(old, new)

    def _pod_changed(self, old: Object | None, pod: Object) -> None:
        key = object_key(pod)
        if occupies_node(pod):
            self._assumed.pop(key, None)
            self._unschedulable.discard(key)
            self._place(pod)
            return
        if key in self._assumed:
            return  # the binding is on its way; the informer has not seen it yet
        self._unplace(pod_key(pod))
        if not needs_scheduling(pod, self.scheduler_name):
            self._unschedulable.discard(key)
            return
        if old is not None and key in self._unschedulable and not _relevant_change(old, pod):
            return  # our own status write, for instance: wait for the back-off
        self.queue.add(key)

    def _pod_deleted(self, pod: Object) -> None:
        key = object_key(pod)
        self._unplace(pod_key(pod))
        self._assumed.pop(key, None)
        self._unschedulable.discard(key)
        self.queue.forget(key)

    def _node_added(self, node: Object) -> None:
        name = str(node["metadata"]["name"])
        info = self.node_infos.get(name)
        if info is None:
            info = self.node_infos[name] = NodeInfo(node)
            self._nodes = None
            for pod in self._orphans.pop(name, {}).values():
                info.add_pod(pod)
        else:
            info.set_node(node)
        self._move_unschedulable_to_active()

    def _node_updated(self, old: Object, new: Object) -> None:
        self._node_added(new)

    def _node_deleted(self, node: Object) -> None:
        name = str(node["metadata"]["name"])
        info = self.node_infos.pop(name, None)
        self._nodes = None
        if info is not None and info.pods:
            self._orphans[name] = {k: dict(p.pod) for k, p in info.pods.items()}

    def _move_unschedulable_to_active(self) -> None:
        for key in self._unschedulable:
            self.queue.add(key)

    # -- the scheduling cycle (serial) ----------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # decide only when the decision can be bound at once
            try:
                key = await self.queue.get()
            except ShutDown:
                self._slots.release()
                return
            try:
                binding = self._scheduling_cycle(key)
            except Exception:
                log.exception("scheduling %s failed", key)
                self.queue.add_rate_limited(key)
                binding = None
            if binding is None:
                self._slots.release()
                self.queue.done(key)
                continue
            task = loop.create_task(self._binding_cycle(key, binding))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _scheduling_cycle(self, key: str) -> Coroutine[Any, Any, None] | None:
        """Decide for `key` and assume; the I/O left to do, or None when there is none."""
        pod = self.pods.cache.get(key)
        if pod is None or key in self._assumed or not needs_scheduling(pod, self.scheduler_name):
            self.queue.forget(key)
            return None
        nodes = self._node_list()
        start = self._next_start % len(nodes) if nodes else 0
        parsed = PodInfo.of(pod)
        decision = schedule_pod(parsed, nodes, self.rng, start=start, percentage=self.percentage)
        if nodes:
            self._next_start = (start + decision.examined) % len(nodes)
        if decision.node_name is None:
            return self._fail(key, pod, decision.message)
        node = decision.node_name
        assumed = dict(pod)
        assumed["spec"] = {**(pod.get("spec") or {}), "nodeName": node}
        self._assumed[key] = node
        self._place(assumed, dataclasses.replace(parsed, pod=assumed, node_name=node))
        return self._bind(key, pod, node)

    def _node_list(self) -> list[NodeInfo]:
        if self._nodes is None:
            self._nodes = list(self.node_infos.values())
        return self._nodes

    # -- the binding cycle (concurrent, at most max_in_flight) --------------------------------

    async def _binding_cycle(self, key: str, binding: Coroutine[Any, Any, None]) -> None:
        try:
            await binding
        except asyncio.CancelledError:
            raise
        except (ApiError, aiohttp.ClientError, TimeoutError) as err:
            log.warning("binding %s failed, will retry: %r", key, err)
            self.queue.add_rate_limited(key)
        except Exception:
            log.exception("binding %s failed", key)
            self.queue.add_rate_limited(key)
        finally:
            self.queue.done(key)
            self._slots.release()

    async def _bind(self, key: str, pod: Object, node: str) -> None:
        try:
            await self.client.bind(pod, node)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self._forget_assumed(key, pod)
            if isinstance(err, ApiError) and err.code in (404, 409):
                log.info("binding %s to %s: %s; dropped", key, node, err.reason)
                self.queue.forget(key)
                return
            raise
        self._unschedulable.discard(key)
        self.queue.forget(key)
        self.scheduled += 1
        meta = pod.get("metadata") or {}
        self.recorder.event(
            pod,
            NORMAL,
            "Scheduled",
            f"Successfully assigned {meta.get('namespace')}/{meta.get('name')} to {node}",
        )

    def _forget_assumed(self, key: str, pod: Mapping[str, Any]) -> None:
        """Release what the Pod was assumed to hold, unless the informer has seen it bound."""
        if self._assumed.pop(key, None) is not None:
            current = self.pods.cache.get(key)
            if current is None or not occupies_node(current):
                self._unplace(pod_key(pod))

    def _fail(self, key: str, pod: Object, message: str) -> Coroutine[Any, Any, None] | None:
        """Record a decision without a fit; the PodScheduled write to make, if any."""
        self.failed += 1
        self._unschedulable.add(key)
        self.queue.add_rate_limited(key)
        self.recorder.event(pod, WARNING, EVENT_REASON, event_note(message))
        conditions = list((pod.get("status") or {}).get("conditions") or [])
        old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        condition = unschedulable_condition(message, now_rfc3339())
        if old is not None and old.get("status") == "False":
            if old.get("reason") == condition["reason"] and old.get("message") == message:
                return None  # nothing to write
            condition["lastTransitionTime"] = old.get("lastTransitionTime")
        conditions = [c for c in conditions if c.get("type") != "PodScheduled"] + [condition]
        return self._write_unschedulable(key, pod, conditions)

    async def _write_unschedulable(
        self, key: str, pod: Object, conditions: list[dict[str, Any]]
    ) -> None:
        meta = pod["metadata"]
        try:
            await self.client.patch(
                PODS,
                meta["name"],
                {"status": {"conditions": conditions}},
                meta.get("namespace"),
                subresource="status",
            )
        except ApiError as err:
            if err.code != 404:
                log.warning("writing PodScheduled of %s: %s", key, err)


def _parses_alike(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Would `PodInfo.of` read the same from both? It reads the spec and, of the metadata,
    only these fields (a Pod's status never matters to its node's accounting)."""
    if old.get("spec") != new.get("spec"):
        return False
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    return all(before.get(field) == after.get(field) for field in _PARSED_METADATA)


_PARSED_METADATA = ("uid", "name", "namespace", "ownerReferences", "deletionTimestamp")


def _relevant_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Could this update change a scheduling decision (spec or labels)?"""
    return bool(
        old.get("spec") != new.get("spec")
        or (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
    )
