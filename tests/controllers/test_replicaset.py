"""The ReplicaSet controller against a real server (no other controllers, no scheduler):
it creates, replaces, scales, adopts and releases pods and reports their status."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import pytest

from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.client.events import EventRecorder
from kubeling.client.rest import Client
from kubeling.controllers.replicaset import deletion_rank, is_active, replicaset_controller
from kubeling.reconcile import Controller, Manager
from kubeling.testing import TestCluster, eventually
from kubeling.util.timefmt import format_time, utcnow

T = TypeVar("T")


def _info(group: str, plural: str) -> ResourceInfo:
    info = REGISTRY.by_path(group, "v1", plural)
    assert info is not None
    return info


PODS = _info("", "pods")
NODES = _info("", "nodes")
EVENTS = _info("", "events")
NAMESPACES = _info("", "namespaces")
REPLICASETS = _info("apps", "replicasets")


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(controllers=False) as c:
        yield c


@pytest.fixture
async def recorder(client: Client) -> AsyncIterator[EventRecorder]:
    events = EventRecorder(client, "replicaset-controller")
    try:
        yield events
    finally:
        await events.close()


@pytest.fixture
async def controller(client: Client, recorder: EventRecorder) -> AsyncIterator[Controller]:
    manager = Manager(client)
    rs_controller = replicaset_controller(client, manager, recorder)
    await manager.start()
    try:
        yield rs_controller
        assert rs_controller.running
    finally:
        await manager.stop()
    assert rs_controller.health().terminal_errors == 0, rs_controller.health().last_error


def replicaset(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
            **spec,
        },
    }


async def active_pods(client: Client, ns: str) -> list[dict[str, Any]]:
    return [p for p in (await client.list(PODS, ns)).items if is_active(p)]


async def wait_pods(client: Client, ns: str, n: int) -> list[dict[str, Any]]:
    async def exactly_n() -> bool:
        return len(await active_pods(client, ns)) == n

    await eventually(exactly_n, message=f"{n} active pods")
    return await active_pods(client, ns)


async def wait_status(client: Client, ns: str, name: str, **want: int) -> None:
    async def matches() -> bool:
        status = (await client.get(REPLICASETS, name, ns)).get("status") or {}
        return all(status.get(k, 0) == v for k, v in want.items())

    await eventually(matches, message=f"status {want}")


async def test_creates_the_replicas_with_labels_and_an_owner_reference(
    client: Client, ns: str, controller: Controller, recorder: EventRecorder
) -> None:
    rs = await client.create(REPLICASETS, replicaset("web", 3), ns)

    pods = await wait_pods(client, ns, 3)

    for pod in pods:
        meta = pod["metadata"]
        assert meta["name"].startswith("web-") and len(meta["name"]) == len("web-") + 5
        assert meta["labels"] == {"app": "web", "tier": "web"}
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web",
                "uid": rs["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    await wait_status(client, ns, "web", replicas=3, fullyLabeledReplicas=3, observedGeneration=1)

    async def created_events() -> bool:
        await recorder.flush()
        events = (await client.list(EVENTS, ns)).items
        return sum(e["reason"] == "SuccessfulCreate" for e in events) == 3

    await eventually(created_events, message="3 SuccessfulCreate events")


async def test_a_second_controller_over_the_same_state_creates_nothing(
    client: Client, ns: str, controller: Controller, recorder: EventRecorder
) -> None:
    await client.create(REPLICASETS, replicaset("web", 3), ns)
    before = sorted(p["metadata"]["name"] for p in await wait_pods(client, ns, 3))
    await wait_status(client, ns, "web", replicas=3)

    second_manager = Manager(client)
    second = replicaset_controller(client, second_manager, recorder)
    await second_manager.start()
    try:
        for _ in range(2):  # its caches are synced once the manager has started
            await second.reconciler.reconcile(f"{ns}/web")
    finally:
        await second_manager.stop()

    assert sorted(p["metadata"]["name"] for p in await active_pods(client, ns)) == before


async def test_a_deleted_pod_is_replaced(client: Client, ns: str, controller: Controller) -> None:
    await client.create(REPLICASETS, replicaset("web", 2), ns)
    victim = (await wait_pods(client, ns, 2))[0]["metadata"]["name"]

    await client.delete(PODS, victim, ns)

    async def replaced() -> bool:
        names = {p["metadata"]["name"] for p in await active_pods(client, ns)}
        return len(names) == 2 and victim not in names

    await eventually(replaced, message="a replacement pod")


async def test_scaling_down_deletes_unscheduled_pods_first_and_scaling_up_adds(
    client: Client, ns: str, controller: Controller
) -> None:
    await client.create(REPLICASETS, replicaset("web", 3), ns)
    pods = await wait_pods(client, ns, 3)
    node = f"node-{uuid.uuid4().hex[:6]}"
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    for pod in pods[:2]:
        await client.bind(pod, node)
    scheduled = {p["metadata"]["name"] for p in pods[:2]}

    await client.patch(REPLICASETS, "web", {"spec": {"replicas": 2}}, ns)

    async def unscheduled_gone() -> bool:
        return {p["metadata"]["name"] for p in await active_pods(client, ns)} == scheduled

    await eventually(unscheduled_gone, message="the unscheduled pod to be deleted")
    await wait_status(client, ns, "web", replicas=2, observedGeneration=2)

    await client.patch(REPLICASETS, "web", {"spec": {"replicas": 4}}, ns)

    await wait_pods(client, ns, 4)
    await wait_status(client, ns, "web", replicas=4, observedGeneration=3)


async def test_ready_pods_count_as_ready_and_available(
    client: Client, ns: str, controller: Controller
) -> None:
    await client.create(REPLICASETS, replicaset("web", 2), ns)
    pods = await wait_pods(client, ns, 2)
    await wait_status(client, ns, "web", replicas=2, readyReplicas=0, availableReplicas=0)

    ready = {"type": "Ready", "status": "True", "lastTransitionTime": format_time(utcnow())}
    status = {"status": {"phase": "Running", "conditions": [ready]}}
    await client.patch(PODS, pods[0]["metadata"]["name"], status, ns, subresource="status")

    await wait_status(client, ns, "web", replicas=2, readyReplicas=1, availableReplicas=1)


async def test_a_matching_orphan_pod_is_adopted_instead_of_creating_one(
    client: Client, ns: str, controller: Controller
) -> None:
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }
    await client.create(PODS, orphan, ns)

    rs = await client.create(REPLICASETS, replicaset("web", 1), ns)

    async def adopted() -> bool:
        refs = (await client.get(PODS, "orphan", ns))["metadata"].get("ownerReferences") or []
        return [r["uid"] for r in refs if r.get("controller")] == [rs["metadata"]["uid"]]

    await eventually(adopted, message="the orphan to be adopted")
    await wait_status(client, ns, "web", replicas=1, fullyLabeledReplicas=0)
    assert [p["metadata"]["name"] for p in await active_pods(client, ns)] == ["orphan"]


async def test_a_pod_whose_labels_stop_matching_is_released_and_replaced(
    client: Client, ns: str, controller: Controller
) -> None:
    await client.create(REPLICASETS, replicaset("web", 1), ns)
    name = (await wait_pods(client, ns, 1))[0]["metadata"]["name"]

    await client.patch(PODS, name, {"metadata": {"labels": {"app": "other"}}}, ns)

    async def released() -> bool:
        pod = await client.get(PODS, name, ns)
        return not pod["metadata"].get("ownerReferences")

    await eventually(released, message="the pod to be released")
    await wait_pods(client, ns, 2)
    await wait_status(client, ns, "web", replicas=1)


async def test_deleting_the_replicaset_leaves_the_controller_healthy(
    client: Client, ns: str, controller: Controller
) -> None:
    await client.create(REPLICASETS, replicaset("web", 2), ns)
    await wait_pods(client, ns, 2)

    await client.delete(REPLICASETS, "web", ns)

    async def gone() -> bool:
        return not (await client.list(REPLICASETS, ns)).items

    await eventually(gone, message="the ReplicaSet to be deleted")
    await client.create(REPLICASETS, replicaset("next", 1), ns)  # still reconciling
    await wait_status(client, ns, "next", replicas=1)
    assert controller.running


def _pod(name: str, phase: str, *, node: str = "", ready: bool = False, **extra: Any) -> Any:
    conditions = [{"type": "Ready", "status": "True"}] if ready else []
    return {
        "metadata": {"name": name, **extra},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions},
    }


def test_the_deletion_order_is_unscheduled_not_ready_restarted_then_younger_first() -> None:
    old, young = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
    pods = [
        _pod("a", "Running", node="n1", ready=True, creationTimestamp=old),
        _pod("young", "Running", node="n1", ready=True, creationTimestamp=young),
        _pod("b", "Pending"),
        _pod("c", "Running", node="n1"),
        _pod("u", "Unknown", node="n1"),
    ]

    ranked = [p["metadata"]["name"] for p in sorted(pods, key=deletion_rank)]

    assert ranked == ["b", "u", "c", "young", "a"]
