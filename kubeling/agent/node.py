"""A real node's registration and heartbeat, as the kubelet does them.

* **Registration**: the Node is created (or, when it exists, its labels are merged and its
  pod CIDR kept), then its status is written through `nodes/status`: capacity from this machine
  (CPUs, memory from /proc/meminfo, 110 pods, the data dir's disk), allocatable = capacity, the
  `InternalIP` and `Hostname` addresses, `nodeInfo`, and the conditions `Ready=True` and the
  three pressure conditions `False`. Transition times already recorded are kept.
* **Heartbeat**: the Lease `kube-node-lease/<node>` (owned by the Node) is renewed every
  `renew_interval` seconds; the Node's status is rewritten only when it changes or every
  `status_interval` seconds (the kubelet's 5 minutes, here shorter), so a busy cluster does
  not pay for heartbeats in Node writes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import platform
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.lease import Lease
from kubeling.client.rest import Client, Object
from kubeling.util.clock import REAL_CLOCK, Clock
from kubeling.util.netstat import bound_addresses
from kubeling.util.tasks import cancel_and_wait
from kubeling.util.timefmt import now_rfc3339

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0-kubeling"
NODE_ADDRESS = "127.0.0.1"
LEASE_NAMESPACE = "kube-node-lease"


NODES = REGISTRY.resource("", "v1", "nodes")


def arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def machine_memory() -> str:
    """Total memory as a quantity (`16314560Ki`), from /proc/meminfo where there is one."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1])}Ki"
    except OSError:
        pass
    return "8Gi"


@dataclass
class NodeIdentity:
    """What a node says about itself when it registers."""

    name: str
    pod_cidr: str
    data_dir: Path
    labels: dict[str, str] = field(default_factory=dict)
    pods: int = 110
    os_image: str = "kubeling node"
    agent_port: int = 0  # the agent's HTTPS endpoint (logs, exec); 0 when it has none
    capacity_override: dict[str, str] | None = None  # what a simulated node claims to have

    def all_labels(self) -> dict[str, str]:
        return {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch(),
            **self.labels,
        }

    def capacity(self) -> dict[str, str]:
        if self.capacity_override is not None:
            return dict(self.capacity_override)
        disk = shutil.disk_usage(self.data_dir if self.data_dir.exists() else Path("/"))
        return {
            "cpu": str(os.cpu_count() or 1),
            "memory": machine_memory(),
            "pods": str(self.pods),
            "ephemeral-storage": f"{disk.total // 1024}Ki",
        }


def node_status(identity: NodeIdentity, now: str, old: Mapping[str, Any] | None = None) -> Object:
    """The Node's status (transition times kept from `old` when a condition did not change)."""
    previous = {c.get("type"): c for c in (old or {}).get("conditions") or []}

    def condition(kind: str, status: str, reason: str, message: str) -> Object:
        before = previous.get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": since or now,
        }

    capacity = identity.capacity()
    return {
        "capacity": dict(capacity),
        "allocatable": dict(capacity),
        "addresses": [
            {"type": "InternalIP", "address": NODE_ADDRESS},
            {"type": "Hostname", "address": identity.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": identity.agent_port}},
        "nodeInfo": {
            "architecture": arch(),
            "bootID": "",
            "containerRuntimeVersion": "kubeling-process://0.1.0",
            "kernelVersion": platform.release(),
            "kubeProxyVersion": KUBELET_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "machineID": "",
            "operatingSystem": "linux",
            "osImage": identity.os_image,
            "systemUUID": "",
        },
        "conditions": [
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
    }


def _ready(node: Mapping[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


async def register(client: Client, identity: NodeIdentity) -> Object:
    """Create the Node, or update the existing one; then write its status."""
    body: Object = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": identity.name, "labels": identity.all_labels()},
        "spec": {"podCIDR": identity.pod_cidr, "podCIDRs": [identity.pod_cidr]},
    }
    try:
        node = await client.create(NODES, body)
    except ApiError as err:
        if err.code != 409:
            raise
        node = await client.get(NODES, identity.name)
        labels = {**(node["metadata"].get("labels") or {}), **identity.all_labels()}
        node["metadata"]["labels"] = labels
        spec = node.setdefault("spec", {})
        spec.setdefault("podCIDR", identity.pod_cidr)
        spec.setdefault("podCIDRs", [spec["podCIDR"]])
        node = await client.update(NODES, node)
    node["status"] = node_status(identity, now_rfc3339(), node.get("status"))
    updated: Object = await client.update_status(NODES, node)
    return updated


class PodIPs:
    """A node's pod addresses: its pod CIDR but the network and `.1`, one per pod uid. A pod
    keeps the address its status already records when that one is free (an agent restart).

    With `skip_busy` (real nodes), an address some process on this machine already listens
    on (TCP) or is bound to (UDP) is passed over: a pod left running by another cluster, or by
    an agent that was killed with another data dir, would otherwise make the new pod's server
    fail with "address already in use". Reading /proc/net/tcp costs milliseconds (more with
    many connections in TIME_WAIT), so what it says is reused for BUSY_MAX_AGE seconds: a
    burst of pod starts reads it once."""

    BUSY_MAX_AGE = 5.0

    def __init__(self, node: str, cidr: str, *, skip_busy: bool = False) -> None:
        self.node = node
        self.cidr = cidr
        self.skip_busy = skip_busy
        self._busy: set[str] = set()
        self._busy_read_at = float("-inf")
        self._free = [str(ip) for ip in list(ipaddress.ip_network(cidr).hosts())[1:]]
        self._taken: dict[str, str] = {}  # pod uid -> IP

    def allocate(self, uid: str, recorded: str = "") -> str:
        ip = self._taken.get(uid)
        if ip is not None:
            return ip
        if recorded in self._free:
            self._free.remove(recorded)
            ip = recorded
        elif self._free:
            busy = self._bound() if self.skip_busy else set()
            ip = next((a for a in self._free if a not in busy), self._free[0])
            self._free.remove(ip)
        else:
            raise RuntimeError(f"node {self.node}: no pod IP left in {self.cidr}")
        self._taken[uid] = ip
        return ip

    def _bound(self) -> set[str]:
        now = time.monotonic()
        if now - self._busy_read_at > self.BUSY_MAX_AGE:
            self._busy, self._busy_read_at = bound_addresses(), now
        return self._busy

    def release(self, uid: str) -> None:
        ip = self._taken.pop(uid, None)
        if ip is not None:
            self._free.append(ip)


def node_owner(node: Mapping[str, Any]) -> Object:
    """The ownerReference that ties a node's Lease to its Node (deleted with it)."""
    meta = node["metadata"]
    return {"apiVersion": "v1", "kind": "Node", "name": meta["name"], "uid": meta.get("uid", "")}


class NodeHeartbeat:
    """Registers the node, then keeps its Lease (and, less often, its status) fresh."""

    def __init__(
        self,
        client: Client,
        identity: NodeIdentity,
        *,
        lease_duration: int = 40,
        renew_interval: float = 10.0,
        status_interval: float = 60.0,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.client = client
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_interval = renew_interval
        self.status_interval = status_interval
        self.clock = clock
        self.node: Object = {}
        self.lease = Lease(client, identity.name, lease_duration, namespace=LEASE_NAMESPACE)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.node = await register(self.client, self.identity)
        self.lease.owner = node_owner(self.node)
        await self.lease.renew()
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _beat(self) -> None:
        last_status = self.clock.now()
        while True:
            await self.clock.sleep(self.renew_interval)
            try:
                await self.lease.renew()
                if self.clock.now() - last_status >= self.status_interval or not _ready(
                    await self.client.get(NODES, self.identity.name)
                ):
                    # Periodically, and at once when the node lifecycle controller marked
                    # this node Unknown while it was silent: say it is ready again.
                    self.node = await register(self.client, self.identity)
                    last_status = self.clock.now()
            except (ApiError, aiohttp.ClientError, TimeoutError, OSError) as err:
                log.warning("heartbeat of node %s: %s", self.identity.name, err)
