"""Self-healing: a node that stops heartbeating is marked Unknown, tainted and emptied, and
its ReplicaSet pods come back on a live node; a bare pod does not come back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubeling.agent import FakeNode
from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.client.rest import Client
from kubeling.controllers.nodelifecycle import UNREACHABLE, toleration_seconds
from kubeling.testing import TestCluster, eventually


def _info(group: str, plural: str) -> ResourceInfo:
    info = REGISTRY.by_path(group, "v1", plural)
    assert info is not None
    return info


PODS = _info("", "pods")
NODES = _info("", "nodes")
NAMESPACES = _info("", "namespaces")
REPLICASETS = _info("apps", "replicasets")


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(controllers=True) as c:
        yield c


def _pod(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
    }


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def test_a_silent_node_is_tainted_and_its_pods_move_to_a_live_node(client: Client) -> None:
    suffix = uuid.uuid4().hex[:6]
    ns = f"heal-{suffix}"
    await client.create(NAMESPACES, {"metadata": {"name": ns}})
    doomed = FakeNode(
        client, f"doomed-{suffix}", lease_duration=2, renew_interval=0.5, ready_delay=0
    )
    await doomed.start()
    await client.create(PODS, _pod("bare", doomed.name), ns)
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    await client.create(REPLICASETS, rs, ns)

    async def running_on_doomed() -> bool:
        pods = (await client.list(PODS, ns)).items
        return len(pods) == 3 and all(
            (p.get("status") or {}).get("phase") == "Running" for p in pods
        )

    await eventually(running_on_doomed, timeout=20, message="3 pods running on the node")
    live = FakeNode(client, f"live-{suffix}", ready_delay=0)
    await live.start()
    await doomed.stop()

    async def node_unknown() -> dict[str, Any] | None:
        node = await client.get(NODES, doomed.name)
        unknown = _condition(node, "Ready")["status"] == "Unknown"
        return node if unknown and len(node["spec"].get("taints") or []) == 2 else None

    node = await eventually(node_unknown, timeout=20, message="the node marked Unknown and tainted")
    assert _condition(node, "Ready")["reason"] == "NodeStatusUnknown"
    taints = {(t["key"], t["effect"]) for t in node["spec"]["taints"]}
    assert taints == {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}

    async def all_evicted() -> bool:
        pods = (await client.list(PODS, ns)).items
        return all(
            p["metadata"].get("deletionTimestamp")
            for p in pods
            if p["spec"].get("nodeName") == doomed.name
        )

    await eventually(all_evicted, timeout=20, message="the node's pods evicted")

    # The ReplicaSet replaces its two pods on the live node; the bare pod is only evicted.
    async def replaced() -> bool:
        pods = (await client.list(PODS, ns)).items
        running = [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") == "Running"
        ]
        return len(running) == 2 and all(
            p["metadata"]["name"].startswith("web-") and p["spec"]["nodeName"] == live.name
            for p in running
        )

    await eventually(replaced, timeout=20, message="two replacement pods on the live node")

    back = FakeNode(client, doomed.name, lease_duration=2, renew_interval=0.5, ready_delay=0)
    await back.start()
    try:

        async def untainted() -> bool:
            taints = (await client.get(NODES, doomed.name))["spec"].get("taints") or []
            return not any(t["key"] == UNREACHABLE for t in taints)

        await eventually(untainted, timeout=20, message="the taints removed when it is back")
    finally:
        await back.stop()
        await live.stop()
        await client.delete(NODES, doomed.name)
        await client.delete(NODES, live.name)


def test_tolerations_of_the_unreachable_taint() -> None:
    def pod(*tolerations: dict[str, Any]) -> dict[str, Any]:
        return {"spec": {"tolerations": list(tolerations)}}

    assert toleration_seconds(pod(), UNREACHABLE, "NoExecute") == 0
    forever = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    assert toleration_seconds(pod(forever), UNREACHABLE, "NoExecute") is None
    timed = {**forever, "tolerationSeconds": 30}
    assert toleration_seconds(pod(timed), UNREACHABLE, "NoExecute") == 30
    assert toleration_seconds(pod({"operator": "Exists"}), UNREACHABLE, "NoExecute") is None
    other = {"key": "other", "operator": "Exists"}
    assert toleration_seconds(pod(other), UNREACHABLE, "NoExecute") == 0
