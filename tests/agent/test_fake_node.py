"""Fake nodes against a real server: registration, the Lease heartbeat, pods run (as the
strict official client reads them), graceful deletion completes, pod IPs are unique."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubeling.agent.fake import FAKE_LABEL, FakeNode, FakeNodes
from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.client.rest import Client
from kubeling.testing import eventually
from kubeling.testing.cluster import TestCluster
from kubeling.util.timefmt import parse_time


def _info(group: str, plural: str) -> ResourceInfo:
    info = REGISTRY.by_path(group, "v1", plural)
    assert info is not None
    return info


PODS, NODES, NAMESPACES = _info("", "pods"), _info("", "nodes"), _info("", "namespaces")
LEASES = _info("coordination.k8s.io", "leases")


def pod(name: str, node: str, containers: tuple[str, ...] = ("c",)) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": c, "image": f"img-{c}:1"} for c in containers],
        },
    }


class Env:
    def __init__(self, client: Client, ns: str) -> None:
        self.client = client
        self.ns = ns
        self.prefix = f"fn-{uuid.uuid4().hex[:6]}-"
        self.agents: list[FakeNode | FakeNodes] = []

    async def node(self, **options: Any) -> FakeNode:
        agent = FakeNode(self.client, f"{self.prefix}0", **options)
        self.agents.append(agent)
        await agent.start()
        await agent.wait_synced(10)
        return agent

    async def get_pod(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(PODS, name, self.ns)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    async def running(self, name: str) -> dict[str, Any] | None:
        got = await self.get_pod(name)
        if got is None or (got.get("status") or {}).get("phase") != "Running":
            return None
        return got


@pytest.fixture
async def env(cluster: TestCluster) -> AsyncIterator[Env]:
    client = Client.from_kubeconfig(str(cluster.kubeconfig), user_agent="kubeling-tests/agent")
    ns = f"t-{uuid.uuid4().hex[:10]}"
    await client.create(NAMESPACES, {"metadata": {"name": ns}})
    e = Env(client, ns)
    try:
        yield e
    finally:
        for agent in e.agents:
            await agent.stop()
        for agent in e.agents:
            for node in agent if isinstance(agent, FakeNodes) else [agent]:
                try:
                    await client.delete(NODES, node.name)
                except ApiError as err:
                    assert err.code == 404
        await client.close()


async def test_the_node_registers_ready_with_capacity(env: Env) -> None:
    agent = await env.node(cpu="8", memory="16Gi", pods=50)
    node = await env.client.get(NODES, agent.name)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == agent.name
    assert labels["kubernetes.io/os"] == "linux"
    assert labels[FAKE_LABEL] == "true"
    status = node["status"]
    assert status["capacity"] == {"cpu": "8", "memory": "16Gi", "pods": "50"}
    assert status["allocatable"] == status["capacity"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "KubeletReady"
    assert {conditions[k]["status"] for k in ("MemoryPressure", "DiskPressure", "PIDPressure")} == {
        "False"
    }
    assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0-kubeling"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert node["spec"]["podCIDR"] == agent.pod_cidr


async def test_registering_again_updates_the_existing_node(env: Env) -> None:
    name = f"{env.prefix}0"
    await env.client.create(NODES, {"metadata": {"name": name, "labels": {"keep": "me"}}})
    agent = await env.node()
    node = await env.client.get(NODES, agent.name)
    assert node["metadata"]["labels"]["keep"] == "me"
    assert node["metadata"]["labels"][FAKE_LABEL] == "true"
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"


async def test_the_lease_is_renewed(env: Env) -> None:
    agent = await env.node(renew_interval=0.2, lease_duration=7)
    lease = await env.client.get(LEASES, agent.name, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == agent.name
    assert lease["spec"]["leaseDurationSeconds"] == 7
    first = lease["spec"]["renewTime"]
    assert len(first.split(".")[1]) == len("123456Z")  # MicroTime: six fractional digits
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"

    async def renewed() -> bool:
        again = await env.client.get(LEASES, agent.name, "kube-node-lease")
        return parse_time(again["spec"]["renewTime"]) > parse_time(first)

    await eventually(renewed, timeout=5, message="a renewed lease")
    # The server may show the write before the agent has counted it.
    await eventually(lambda: agent.renewals >= 2, timeout=5, message="two renewals counted")


async def test_a_lease_written_or_deleted_by_someone_else_is_read_again_and_renewed(
    env: Env,
) -> None:
    agent = await env.node(renew_interval=3600)
    lease = await env.client.get(LEASES, agent.name, "kube-node-lease")
    lease["spec"]["holderIdentity"] = "someone-else"
    await env.client.update(LEASES, lease, "kube-node-lease")  # the cached copy is now stale
    renewed = await agent.renew_lease()
    assert renewed["spec"]["holderIdentity"] == agent.name
    await env.client.delete(LEASES, agent.name, "kube-node-lease")
    recreated = await agent.renew_lease()
    assert recreated["metadata"]["uid"] != lease["metadata"]["uid"]
    assert recreated["metadata"]["ownerReferences"][0]["kind"] == "Node"
    again = await agent.renew_lease()  # from the cache: one PUT
    assert again["metadata"]["resourceVersion"] != recreated["metadata"]["resourceVersion"]
    assert agent.renewals == 4


async def test_a_bound_pod_runs_and_is_readable_by_the_official_client(
    env: Env, cluster: TestCluster
) -> None:
    agent = await env.node(ready_delay=0.1)
    await env.client.create(PODS, pod("web", agent.name, ("app", "sidecar")), env.ns)
    got = await eventually(lambda: env.running("web"), message="the pod Running")
    status = got["status"]
    assert status["hostIP"] == "127.0.0.1"
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["podIP"].startswith("127.") and status["podIP"] != "127.0.0.1"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == dict.fromkeys(
        ("PodScheduled", "Initialized", "ContainersReady", "Ready"), "True"
    )
    uid = got["metadata"]["uid"]
    statuses = {s["name"]: s for s in status["containerStatuses"]}
    assert set(statuses) == {"app", "sidecar"}
    assert statuses["app"]["containerID"] == f"kubeling://{uid}-app"
    assert statuses["app"]["image"] == "img-app:1"
    assert statuses["app"]["ready"] is True and statuses["app"]["restartCount"] == 0
    assert "startedAt" in statuses["app"]["state"]["running"]

    from kubernetes import client

    api = cluster.api_client()
    try:
        read = await asyncio.to_thread(client.CoreV1Api(api).read_namespaced_pod, "web", env.ns)
        assert read.status.phase == "Running"
        assert read.status.pod_ip == status["podIP"]
        assert read.status.container_statuses[0].ready is True
        assert read.status.start_time is not None
        node = await asyncio.to_thread(client.CoreV1Api(api).read_node, agent.name)
        assert node.status.node_info.kubelet_version == "v1.32.0-kubeling"
    finally:
        api.close()
        gc.collect()

    writes = agent.status_writes
    await asyncio.sleep(0.3)  # nothing changes: nothing is written again
    assert agent.status_writes == writes


async def test_deleting_a_pod_gracefully_completes(env: Env) -> None:
    agent = await env.node(ready_delay=0.05)
    await env.client.create(PODS, pod("doomed", agent.name), env.ns)
    await eventually(lambda: env.running("doomed"), message="the pod Running")
    marked = await env.client.delete(PODS, "doomed", env.ns)  # the default grace period
    assert marked["metadata"]["deletionTimestamp"]  # graceful: the node has to finish it

    async def gone() -> bool:
        return await env.get_pod("doomed") is None

    await eventually(gone, message="the pod gone")


async def test_pods_get_different_ips_and_nodes_different_ranges(env: Env) -> None:
    nodes = FakeNodes(env.client, 2, prefix=env.prefix, ready_delay=0.05)
    env.agents.append(nodes)
    await nodes.start()
    await nodes.wait_synced(10)
    first, second = nodes.nodes
    assert first.pod_cidr != second.pod_cidr
    names = ["a", "b", "c"]
    for name in names:
        await env.client.create(PODS, pod(name, first.name), env.ns)
    await env.client.create(PODS, pod("other", second.name), env.ns)

    async def all_running() -> list[dict[str, Any]] | None:
        got = [await env.running(n) for n in [*names, "other"]]
        return None if None in got else [g for g in got if g is not None]

    pods = await eventually(all_running, message="four pods Running")
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 4
    assert ips[3].rsplit(".", 1)[0] != ips[0].rsplit(".", 1)[0]


async def test_stop_leaves_the_node_and_stops_the_heartbeat(env: Env) -> None:
    agent = await env.node(renew_interval=0.05)
    await agent.stop()
    await agent.stop()  # idempotent
    assert not agent.running
    renewals = agent.renewals
    await asyncio.sleep(0.2)
    assert agent.renewals == renewals
    node = await env.client.get(NODES, agent.name)
    assert node["metadata"]["name"] == agent.name
