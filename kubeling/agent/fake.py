"""Simulated nodes, as kwok's: a Node that registers, heartbeats and "runs" its pods on paper.

    node = FakeNode(client, "fake-node-0")
    await node.start()
    ...
    await node.stop()

Contract:

- **Registration** (`start()`): the Node is created, or updated when it exists (labels merged),
  with labels `kubernetes.io/hostname`, `kubernetes.io/os: linux`, `kubernetes.io/arch` and
  `kubeling.dev/fake: "true"`, `spec.podCIDR(s)`, then its status is written through
  `nodes/status`: capacity and allocatable (`cpu`, `memory`, `pods`), the `InternalIP` and
  `Hostname` addresses (127.0.0.1, DESIGN §6: node ports live on the node address), a complete
  `nodeInfo` (kubelet `v1.32.0-kubeling`) and the conditions `Ready=True`, `MemoryPressure`,
  `DiskPressure`, `PIDPressure` `False`.
- **Heartbeat**: the Lease `kube-node-lease/<node>` (owned by the Node, as the kubelet's) is
  created or renewed at once and then every `renew_interval` seconds: `holderIdentity`,
  `leaseDurationSeconds`, `renewTime` as a MicroTime.
- **Pods**: an informer watches the Pods with `spec.nodeName=<node>`. `ready_delay` seconds
  after the agent first sees a Pod, it writes (`pods/status`, and only when something
  changes) phase `Running`, `hostIP(s)`, `podIP(s)` from the node's `/24`, `startTime`, the
  conditions `PodScheduled`, `Initialized`, `ContainersReady`, `Ready` all `True`, and a running,
  ready `containerStatuses` entry per container (`containerID kubeling://<uid>-<name>`).
  Timestamps already written are kept, so a resync writes nothing. Pod IPs are unique per
  Pod on this node; one already recorded in the Pod's status (an agent restart) is kept.
  Finished Pods (`Succeeded`/`Failed`) are left alone.
- **Deletion**: a Pod with `deletionTimestamp` has "stopped" at once: it is deleted with grace
  period 0 (precondition: its uid), so `kubectl delete pod` completes.
- `stop()` ends the heartbeat, the informer and the worker; the Node and Lease stay (a silent
  node, for the node lifecycle controller to notice). `start()`/`stop()` are idempotent.

The pod CIDR, unless given, is derived from the node name (crc32) within `127.128.0.0/9`;
`FakeNodes` numbers its nodes' ranges instead, so they never collide.

**One watch for many nodes.** A lone `FakeNode` watches its own Pods (`spec.nodeName=<node>`),
as a kubelet does. `FakeNodes` instead opens one watch on every bound Pod
(`spec.nodeName!=`) and hands each event to the node it names, as kwok's single pod controller
does: a thousand per-node watches would make the API server match every Pod event against a
thousand field selectors, which cost more than the rest of a 1 000-node benchmark together.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from kubeling.agent.node import (
    LEASE_NAMESPACE,
    NODE_ADDRESS,
    NodeIdentity,
    PodIPs,
    node_owner,
    node_status,
    register,
)
from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.cache import object_key
from kubeling.client.informer import Informer
from kubeling.client.lease import Lease
from kubeling.client.rest import Client, DeleteOptions, Object
from kubeling.client.workqueue import ShutDown, WorkQueue
from kubeling.util.clock import REAL_CLOCK, Clock
from kubeling.util.timefmt import now_rfc3339

log = logging.getLogger(__name__)

FAKE_LABEL = "kubeling.dev/fake"
POD_NETWORK = ipaddress.ip_network("127.128.0.0/9")
FINISHED = ("Succeeded", "Failed")


PODS = REGISTRY.resource("", "v1", "pods")
NODES = REGISTRY.resource("", "v1", "nodes")


def pod_cidr_for(index: int) -> str:
    """The `index`-th /24 of `127.128.0.0/9` (wrapping around)."""
    base = int(POD_NETWORK.network_address) + (index % 32768) * 256
    return f"{ipaddress.ip_address(base)}/24"


def default_pod_cidr(name: str) -> str:
    return pod_cidr_for(zlib.crc32(name.encode()))


class FakeNode:
    """One simulated node; see the module docstring."""

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        cpu: str = "4",
        memory: str = "8Gi",
        pods: int = 110,
        ready_delay: float = 0.5,
        lease_duration: int = 40,
        renew_interval: float = 10.0,
        clock: Clock = REAL_CLOCK,
        pod_cidr: str | None = None,
        informer: Informer | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.cpu = cpu
        self.memory = memory
        self.pods = pods
        self.ready_delay = ready_delay
        self.lease_duration = lease_duration
        self.renew_interval = renew_interval
        self.clock = clock
        self.pod_cidr = pod_cidr or default_pod_cidr(name)
        self.pod_ips = PodIPs(name, self.pod_cidr)
        self._first_seen: dict[str, float] = {}  # pod key -> clock time
        self._uids: dict[str, str] = {}  # pod key -> uid
        # A shared `informer` (FakeNodes') is started and stopped by its owner, who routes
        # this node's events to `_enqueue` and `_gone`; its cache holds other nodes' Pods too.
        self._own_informer = informer is None
        if informer is None:
            informer = Informer(client, PODS, field_selector=f"spec.nodeName={name}", clock=clock)
            informer.add_handlers(self._enqueue, lambda _old, new: self._enqueue(new), self._gone)
        self.informer = informer
        self.queue: WorkQueue[str] = WorkQueue(f"fake-node {name}", clock=clock)
        self.identity = NodeIdentity(
            name=name,
            pod_cidr=self.pod_cidr,
            data_dir=Path("."),
            labels={FAKE_LABEL: "true"},
            pods=pods,
            os_image="kubeling fake node",
            capacity_override={"cpu": cpu, "memory": memory, "pods": str(pods)},
        )
        self._lease = Lease(client, name, lease_duration, namespace=LEASE_NAMESPACE)
        self._tasks: list[asyncio.Task[None]] = []
        self.renewals = 0  # lease writes, for tests
        self.status_writes = 0  # pod status writes, for tests

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        """Register the Node, take the Lease, and start running the pods bound to it."""
        if self._tasks:
            return
        await self.register()
        await self.renew_lease()
        loop = asyncio.get_running_loop()
        if self._own_informer:
            self.informer.start()
        self._tasks = [loop.create_task(self._heartbeat()), loop.create_task(self._work())]

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.informer.wait_synced(), timeout)

    async def stop(self) -> None:
        self.queue.shutdown()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_informer:
            await self.informer.stop()

    # -- the Node -----------------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        return self.identity.all_labels()

    def node_status(self, now: str, old: Mapping[str, Any] | None = None) -> Object:
        """The status written at registration (transition times kept from `old`)."""
        return node_status(self.identity, now, old)

    async def register(self) -> Object:
        """Create the Node, or update the existing one; then write its status."""
        node = await register(self.client, self.identity)
        self._lease.owner = node_owner(node)
        return node

    # -- the Lease ----------------------------------------------------------------------------

    async def renew_lease(self) -> Object:
        """Create or renew the Lease (one PUT of the Lease last written; see client.lease)."""
        lease = await self._lease.renew()
        self.renewals += 1
        return lease

    async def _heartbeat(self) -> None:
        while True:
            await self.clock.sleep(self.renew_interval)
            try:
                await self.renew_lease()
            except (ApiError, aiohttp.ClientError, TimeoutError) as err:
                log.warning("renewing the lease of %s: %s", self.name, err)

    # -- pods ---------------------------------------------------------------------------------

    def _enqueue(self, pod: Object) -> None:
        key = object_key(pod)
        self._first_seen.setdefault(key, self.clock.now())
        self.queue.add(key)

    def _gone(self, pod: Object) -> None:
        self.queue.add(object_key(pod))

    async def _work(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.sync_pod(key)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not (isinstance(err, ApiError) and err.code == 409):
                    log.exception("fake node %s: syncing pod %s failed", self.name, key)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)

    def _release(self, key: str) -> None:
        self._first_seen.pop(key, None)
        uid = self._uids.pop(key, None)
        if uid is not None:
            self.pod_ips.release(uid)

    def _ip_for(self, key: str, pod: Mapping[str, Any]) -> str:
        uid = str(pod["metadata"].get("uid") or key)
        old_uid = self._uids.get(key)
        if old_uid is not None and old_uid != uid:  # same name, new pod
            self._release(key)
            self._first_seen[key] = self.clock.now()
        self._uids[key] = uid
        return self.pod_ips.allocate(uid, str((pod.get("status") or {}).get("podIP") or ""))

    async def sync_pod(self, key: str) -> None:
        pod = self.informer.cache.get(key)
        if pod is not None and (pod.get("spec") or {}).get("nodeName") != self.name:
            pod = None  # a shared cache: this name is now a Pod on another node
        if pod is None:
            self._release(key)
            return
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            options = DeleteOptions(grace_period_seconds=0, precondition_uid=meta.get("uid"))
            try:
                await self.client.delete(PODS, meta["name"], meta.get("namespace"), options)
            except ApiError as err:
                if err.code not in (404, 409):
                    raise
            return
        status = pod.get("status") or {}
        if status.get("phase") in FINISHED:
            return
        first = self._first_seen.setdefault(key, self.clock.now())
        waited = self.clock.now() - first
        if waited < self.ready_delay:
            self.queue.add_after(key, self.ready_delay - waited)
            return
        desired = running_status(pod, self._ip_for(key, pod), now_rfc3339())
        if desired == status:
            return
        await self.client.update_status(PODS, {**pod, "status": desired}, meta.get("namespace"))
        self.status_writes += 1


def running_status(pod: Mapping[str, Any], pod_ip: str, now: str) -> Object:
    """The status of `pod` running and ready on a fake node; times already set are kept."""
    meta = pod["metadata"]
    old = dict(pod.get("status") or {})
    uid = str(meta.get("uid") or "")
    previous = {c.get("type"): c for c in old.get("conditions") or []}

    def condition(kind: str) -> Object:
        before = previous.get(kind) or {}
        kept = before.get("lastTransitionTime") if before.get("status") == "True" else None
        out: Object = {"type": kind, "status": "True", "lastTransitionTime": kept or now}
        if "lastProbeTime" in before:
            out["lastProbeTime"] = before["lastProbeTime"]
        return out

    conditions = [
        condition(kind) for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    known = {c["type"] for c in conditions}
    conditions += [c for c in old.get("conditions") or [] if c.get("type") not in known]
    start = old.get("startTime") or now
    statuses_before = {s.get("name"): s for s in old.get("containerStatuses") or []}
    statuses = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        name = str(container.get("name"))
        before = statuses_before.get(name) or {}
        running = (before.get("state") or {}).get("running") or {}
        statuses.append(
            {
                "name": name,
                "image": container.get("image") or "",
                "imageID": "",
                "containerID": f"kubeling://{uid}-{name}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": running.get("startedAt") or start}},
            }
        )
    return {
        **old,
        "phase": "Running",
        "hostIP": NODE_ADDRESS,
        "hostIPs": [{"ip": NODE_ADDRESS}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start,
        "conditions": conditions,
        "containerStatuses": statuses,
    }


class FakeNodes:
    """`count` fake nodes named `<prefix><i>`, each with its own `/24` (the
    `first_index + i`-th, so that real nodes can take the first ones), sharing one Pod watch
    (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        count: int,
        prefix: str = "fake-node-",
        *,
        first_index: int = 0,
        **options: Any,
    ) -> None:
        self.informer = Informer(
            client, PODS, field_selector="spec.nodeName!=", clock=options.get("clock", REAL_CLOCK)
        )
        self.nodes = [
            FakeNode(
                client,
                f"{prefix}{i}",
                pod_cidr=pod_cidr_for(first_index + i),
                informer=self.informer,
                **options,
            )
            for i in range(count)
        ]
        self._by_name = {node.name: node for node in self.nodes}
        self.informer.add_handlers(self._added, lambda _old, new: self._added(new), self._deleted)

    def _node_of(self, pod: Mapping[str, Any]) -> FakeNode | None:
        return self._by_name.get(str((pod.get("spec") or {}).get("nodeName") or ""))

    def _added(self, pod: Object) -> None:
        node = self._node_of(pod)
        if node is not None:
            node._enqueue(pod)

    def _deleted(self, pod: Object) -> None:
        node = self._node_of(pod)
        if node is not None:
            node._gone(pod)

    def __iter__(self) -> Iterator[FakeNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    async def start(self) -> None:
        await asyncio.gather(*(node.start() for node in self.nodes))
        self.informer.start()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.informer.wait_synced(), timeout)

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))
        await self.informer.stop()
