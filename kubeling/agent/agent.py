"""The node agent (the kubelet's job): runs the pods bound to its node as local processes.

    agent = NodeAgent(client, "node-1", data_dir=Path("~/.kubeling/nodes/node-1"))
    await agent.start()
    ...
    await agent.stop()

Contract:

* **One node.** `start()` registers the Node and keeps its Lease fresh (`node.py`), then
  watches only the Pods with `spec.nodeName=<node>` and runs one `PodWorker` per pod. It also
  watches ConfigMaps, Secrets and Services, which pods read as environment and files: a
  changed ConfigMap or Secret refreshes the volumes of the pods that use it, in place.
* **Pod IPs** come from the node's pod CIDR (DESIGN.md § 6: a /24 of 127.128.0.0/9); `.1` is
  never handed out. A pod keeps its IP for its lifetime; a new pod (new uid) gets a new one.
* **Leftovers of an earlier run.** Every container's process group id is written to
  `<data-dir>/pods/<uid>/pids/<container>`. A starting agent kills the groups it finds there
  (a previous agent was killed and its processes outlived it) and removes the directories of
  pods no longer bound to it, so processes never run twice and a pod moved elsewhere stops here.
* **Services**: the node's `ServiceProxy` serves every Service address and publishes what
  it has applied; a deleted pod is stopped only once every proxy has stopped routing to it
  (`network/drain.py`).
* `stop()` stops every pod's containers (SIGTERM, then SIGKILL after their grace period) and
  the heartbeat; the Node and its Lease stay, for the node lifecycle controller to judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubeling.agent.node import NODE_ADDRESS, NodeHeartbeat, NodeIdentity, PodIPs
from kubeling.agent.podworker import PodWorker, pod_env_defaults
from kubeling.agent.runtime import ContainerRuntime, ProcessRuntime
from kubeling.agent.server import AgentServer
from kubeling.agent.serving import self_signed_context, workers_lookup
from kubeling.agent.volumes import PodVolumes
from kubeling.api.kinds import REGISTRY
from kubeling.client.cache import Object
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.network.drain import DrainGate, ProxyReport
from kubeling.network.proxy import ServiceProxy
from kubeling.util.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)


PODS = REGISTRY.resource("", "v1", "pods")
CONFIGMAPS = REGISTRY.resource("", "v1", "configmaps")
SECRETS = REGISTRY.resource("", "v1", "secrets")
SERVICES = REGISTRY.resource("", "v1", "services")
SLICES = REGISTRY.resource("discovery.k8s.io", "v1", "endpointslices")


class NodeAgent:
    def __init__(
        self,
        client: Client,
        name: str,
        *,
        data_dir: Path,
        pod_cidr: str,
        runtime: ContainerRuntime | None = None,
        clock: Clock = REAL_CLOCK,
        lease_duration: int = 40,
        renew_interval: float = 10.0,
        endpoint_token: str = "",
        proxy: bool = True,
    ) -> None:
        self.client = client
        self.node_name = name
        self.host_ip = NODE_ADDRESS
        self.data_dir = data_dir
        self.pods_dir = data_dir / "pods"
        self.runtime: ContainerRuntime = runtime or ProcessRuntime()
        self.clock = clock
        self.pod_cidr = pod_cidr
        self.pod_ips = PodIPs(name, pod_cidr, skip_busy=True)
        self.identity = NodeIdentity(name=name, pod_cidr=pod_cidr, data_dir=data_dir)
        # The endpoint the API server reaches for `kubectl logs` and `exec`, authenticated
        # with the node credential (which the API server also knows).
        self.endpoint: AgentServer | None = None
        if endpoint_token:
            self.endpoint = AgentServer(
                workers_lookup(lambda: self.workers.values()),
                token=endpoint_token,
                host=self.host_ip,
                ssl_context=self_signed_context(data_dir / "tls"),
            )
        # Every node serves the Services' addresses (ClusterIP, NodePort, load balancer).
        self.proxy = (
            ServiceProxy(
                client,
                node=name,
                node_ip=self.host_ip,
                report=ProxyReport(client, name, duration=lease_duration),
            )
            if proxy
            else None
        )
        self.heartbeat = NodeHeartbeat(
            client,
            self.identity,
            lease_duration=lease_duration,
            renew_interval=renew_interval,
            clock=clock,
        )
        self.recorder = EventRecorder(client, "kubelet", host=name)
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={name}", clock=clock)
        self.configmaps = Informer(client, CONFIGMAPS, clock=clock)
        self.secrets = Informer(client, SECRETS, clock=clock)
        self.service_informer = Informer(client, SERVICES, clock=clock)
        # A deleted pod's SIGTERM waits until no proxy routes to it (network/drain.py).
        self.slices = self.proxy.slices if self.proxy is not None else Informer(client, SLICES)
        self.drain = DrainGate(client, self.service_informer, self.slices)
        self.workers: dict[str, PodWorker] = {}  # pod uid -> worker
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        kill_leftovers(self.pods_dir)
        if self.endpoint is not None:
            await self.endpoint.start()
            self.identity.agent_port = self.endpoint.port
        await self.heartbeat.start()
        if self.proxy is not None:
            await self.proxy.start()
        for informer in (self.configmaps, self.secrets, self.service_informer, self.slices):
            informer.start()
        await self.drain.start()
        # Created (a pod waiting for it starts now) or changed (files are refreshed).
        for informer, kind in ((self.configmaps, "configmap"), (self.secrets, "secret")):
            changed = functools.partial(self._source_changed, kind)
            informer.add_handlers(changed, functools.partial(_newer, changed))
        await asyncio.gather(
            *(
                i.wait_synced()
                for i in (self.configmaps, self.secrets, self.service_informer, self.slices)
            )
        )
        self.pods.add_handlers(
            self._pod_seen, lambda _old, new: self._pod_seen(new), self._pod_gone
        )
        self.pods.start()
        await self.pods.wait_synced()
        bound = {str(p["metadata"].get("uid")) for p in self.pods.cache.list()}
        remove_stale_pod_dirs(self.pods_dir, keep=bound)

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.pods.wait_synced(), timeout)

    async def stop(self) -> None:
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        await self._disconnect()

    async def abandon(self) -> None:
        """Stop as if this agent's process were killed: no more watches, heartbeats or
        supervision, but every pod's processes run on. A new agent with the same data dir
        kills them when it starts (see the module docstring). For tests of agent restarts."""
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.abandon() for w in workers), return_exceptions=True)
        await self._disconnect()

    async def _disconnect(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop()
        if self.endpoint is not None:
            await self.endpoint.stop()
        await self.heartbeat.stop()
        await self.drain.stop()
        for informer in (self.pods, self.configmaps, self.secrets, self.service_informer):
            await informer.stop()
        if self.proxy is None:
            await self.slices.stop()
        await self.recorder.close()
        self._started = False

    # -- pods ---------------------------------------------------------------------------------

    def _pod_seen(self, pod: Object) -> None:
        uid = str(pod["metadata"].get("uid"))
        worker = self.workers.get(uid)
        if worker is None:
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
                return  # finished before this agent saw it
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.start()
            asyncio.get_running_loop().create_task(self._reap(uid, worker))
        else:
            worker.update(pod)

    def _pod_gone(self, pod: Object) -> None:
        worker = self.workers.get(str(pod["metadata"].get("uid")))
        if worker is not None:
            worker.update(None)

    async def _reap(self, uid: str, worker: PodWorker) -> None:
        await worker.finished.wait()
        if self.workers.get(uid) is worker:
            del self.workers[uid]

    def _source_changed(self, kind: str, obj: Mapping[str, Any]) -> None:
        name = obj["metadata"]["name"]
        namespace = obj["metadata"].get("namespace")
        for worker in self.workers.values():
            if worker.pod["metadata"].get("namespace") != namespace:
                continue
            if (kind, name) in PodVolumes.referenced_objects(worker.pod):
                worker.sources_changed()

    # -- what pod workers ask of their node ---------------------------------------------------

    def configmap(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.configmaps.cache.get(f"{namespace}/{name}")

    def secret(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.secrets.cache.get(f"{namespace}/{name}")

    def services(self, namespace: str) -> Sequence[Mapping[str, Any]]:
        found = self.service_informer.cache.list(namespace)
        if namespace != "default":
            master = self.service_informer.cache.get("default/kubernetes")
            if master is not None:
                found = [*found, master]
        return found

    def allocate_ip(self, pod: Mapping[str, Any]) -> str:
        recorded = str((pod.get("status") or {}).get("podIP") or "")
        return self.pod_ips.allocate(str(pod["metadata"].get("uid")), recorded)

    def release_ip(self, uid: str) -> None:
        self.pod_ips.release(uid)

    def base_env(self, pod: Mapping[str, Any], pod_ip: str) -> dict[str, str]:
        home = self.pods_dir / str(pod["metadata"].get("uid"))
        return pod_env_defaults(pod, pod_ip, home)

    async def wait_unrouted(self, pod: Mapping[str, Any], timeout: float) -> list[str]:
        return await self.drain.wait(pod, timeout)

    def record_pid(self, uid: str, container: str, pgid: int) -> None:
        path = self.pods_dir / uid / "pids" / container
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(pgid))


def _newer(handle: Callable[[Object], None], _old: Object, new: Object) -> None:
    """An update handler that looks at the new object only."""
    handle(new)


def kill_leftovers(pods_dir: Path) -> int:
    """Kill process groups recorded by an earlier run of this agent; returns how many."""
    killed = 0
    for pid_file in pods_dir.glob("*/pids/*"):
        with contextlib.suppress(ValueError, OSError):
            pgid = int(pid_file.read_text().strip())
            if pgid > 1 and pgid != os.getpgid(0) and _is_ours(pgid, pid_file):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                    killed += 1
        with contextlib.suppress(OSError):
            pid_file.unlink()
    return killed


def _is_ours(pgid: int, pid_file: Path) -> bool:
    """Whether the process `pgid` is the one recorded in `pid_file`, not one that got the same
    number later (after a reboot, say): ours started before the file was written. Without
    /proc there is no telling, and the recorded group is trusted."""
    try:
        stat = Path(f"/proc/{pgid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no such process, or no /proc at all
    except (OSError, StopIteration, ValueError):
        return True
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks
    started = boot + ticks / os.sysconf("SC_CLK_TCK")
    return started <= pid_file.stat().st_mtime + 2.0  # btime is whole seconds


def remove_stale_pod_dirs(pods_dir: Path, keep: set[str]) -> None:
    for path in pods_dir.iterdir():
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
