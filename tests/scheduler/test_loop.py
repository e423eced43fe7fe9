"""The scheduling loop against a real server: pending Pods get bound, a controller's Pods
spread, an unschedulable Pod gets PodScheduled=False and an event and is bound once a big
enough Node appears, nodeSelector is respected, bound Pods are left alone; bindings run
concurrently (bounded), assumed Pods count against later decisions, and a failed binding
releases what its Pod was assumed to hold."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.client.kubeconfig import load_kubeconfig
from kubeling.client.rest import Client
from kubeling.client.workqueue import ExponentialFailureRateLimiter
from kubeling.scheduler.loop import Scheduler
from kubeling.testing import eventually
from kubeling.testing.cluster import TestCluster

T = TypeVar("T")


def _info(plural: str) -> ResourceInfo:
    info = REGISTRY.by_path("", "v1", plural)
    assert info is not None
    return info


PODS, NODES, EVENTS, NAMESPACES = (
    _info("pods"),
    _info("nodes"),
    _info("events"),
    _info("namespaces"),
)


def node(name: str, cpu: str = "2", labels: dict[str, str] | None = None) -> dict[str, Any]:
    capacity = {"cpu": cpu, "memory": "4Gi", "pods": "110"}
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def pod(name: str, cpu: str = "100m", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}
            ],
            **spec,
        },
    }


class Env:
    def __init__(self, client: Client, ns: str) -> None:
        self.client = client
        self.ns = ns
        self.node_names: list[str] = []
        self.prefix = uuid.uuid4().hex[:6]

    async def add_node(self, name: str, **kwargs: Any) -> str:
        full = f"{self.prefix}-{name}"
        self.node_names.append(full)
        created = await self.client.create(NODES, node(full, **kwargs))
        # the API server ignores status on create: write it through nodes/status
        created["status"] = node(full, **kwargs)["status"]
        await self.client.update_status(NODES, created)
        return full

    async def get_pod(self, name: str) -> dict[str, Any]:
        return await self.client.get(PODS, name, self.ns)

    async def node_of(self, name: str) -> str:
        return str((await self.get_pod(name))["spec"].get("nodeName") or "")


@pytest.fixture
async def env(cluster: TestCluster) -> AsyncIterator[Env]:
    client = Client.from_kubeconfig(str(cluster.kubeconfig), user_agent="kubeling-tests/sched")
    ns = f"t-{uuid.uuid4().hex[:10]}"
    await client.create(NAMESPACES, {"metadata": {"name": ns}})
    e = Env(client, ns)
    try:
        yield e
    finally:
        for name in e.node_names:
            await client.delete(NODES, name)
        await client.close()


@pytest.fixture
async def scheduler(env: Env) -> AsyncIterator[Scheduler]:
    s = Scheduler(env.client, rng=random.Random(1), namespace=env.ns)
    s.start()
    try:
        await s.wait_synced(10)
        yield s
    finally:
        await s.stop()


async def test_pending_pods_are_bound_to_a_ready_node(env: Env, scheduler: Scheduler) -> None:
    n = await env.add_node("a")
    for i in range(3):
        await env.client.create(PODS, pod(f"p{i}"), env.ns)

    async def all_bound() -> bool:
        return all([await env.node_of(f"p{i}") == n for i in range(3)])

    await eventually(all_bound, message="three pods bound")
    got = await env.get_pod("p0")
    scheduled = [c for c in got["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled[0]["status"] == "True"

    async def scheduled_event() -> list[Any]:
        events = (await env.client.list(EVENTS, env.ns)).items
        return [e for e in events if e["reason"] == "Scheduled"]

    events = await eventually(scheduled_event, message="a Scheduled event")
    assert any(
        e["message"] == f"Successfully assigned {env.ns}/{e['involvedObject']['name']} to {n}"
        for e in events
    )


async def test_a_controllers_pods_spread_evenly(env: Env, scheduler: Scheduler) -> None:
    nodes = [await env.add_node(x) for x in "abc"]
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "rs",
        "uid": "0f8a3c1e-0000-4000-8000-000000000001",
        "controller": True,
    }
    await eventually(lambda: asyncio.sleep(0, len(scheduler.node_infos) >= 3), message="nodes seen")
    for i in range(6):
        body = pod(f"rs-{i}")
        body["metadata"]["ownerReferences"] = [owner]
        await env.client.create(PODS, body, env.ns)

    async def placements() -> Counter[str] | None:
        where = Counter([await env.node_of(f"rs-{i}") for i in range(6)])
        return None if "" in where else where

    where = await eventually(placements, message="six pods bound")
    assert where == Counter(dict.fromkeys(nodes, 2))


async def test_an_unschedulable_pod_waits_for_a_big_enough_node(
    env: Env, scheduler: Scheduler
) -> None:
    await env.add_node("small-1")
    await env.add_node("small-2")
    await eventually(lambda: asyncio.sleep(0, len(scheduler.node_infos) >= 2), message="nodes seen")
    await env.client.create(PODS, pod("big", cpu="3"), env.ns)

    async def unschedulable() -> dict[str, Any] | None:
        got = await env.get_pod("big")
        for c in (got.get("status") or {}).get("conditions") or []:
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return dict(c)
        return None

    condition = await eventually(unschedulable, message="PodScheduled=False")
    assert condition["reason"] == "Unschedulable"
    # kube-scheduler's wording, with its preemption part after the filter part
    assert condition["message"].startswith("0/2 nodes are available: 2 Insufficient cpu. ")

    async def failed_event() -> list[Any]:
        events = (await env.client.list(EVENTS, env.ns)).items
        return [e for e in events if e["reason"] == "FailedScheduling"]

    events = await eventually(failed_event, message="a FailedScheduling event")
    assert events[0]["type"] == "Warning"
    assert events[0]["message"] == condition["message"]
    assert await env.node_of("big") == ""
    await asyncio.sleep(0.2)  # retries back off exponentially: a handful, not a spin
    assert 1 <= scheduler.failed < 15

    big = await env.add_node("big", cpu="4")

    async def bound() -> bool:
        return await env.node_of("big") == big

    await eventually(bound, message="bound to the big node")


async def test_node_selector_is_respected(env: Env, scheduler: Scheduler) -> None:
    await env.add_node("plain")
    ssd = await env.add_node("ssd", labels={"disk": "ssd"})
    for i in range(3):
        await env.client.create(PODS, pod(f"s{i}", nodeSelector={"disk": "ssd"}), env.ns)

    async def all_on_ssd() -> bool:
        return all([await env.node_of(f"s{i}") == ssd for i in range(3)])

    await eventually(all_on_ssd, message="pods on the ssd node")


async def test_a_pod_with_node_name_is_left_alone(env: Env, scheduler: Scheduler) -> None:
    await env.add_node("a")
    await env.add_node("b")
    await env.client.create(PODS, pod("pinned", nodeName="elsewhere"), env.ns)
    await env.client.create(PODS, pod("marker"), env.ns)

    async def marker_bound() -> bool:
        return bool(await env.node_of("marker"))

    await eventually(marker_bound, message="the marker pod bound")
    got = await env.get_pod("pinned")
    assert got["spec"]["nodeName"] == "elsewhere"
    conditions = (got.get("status") or {}).get("conditions") or []
    assert not [c for c in conditions if c["type"] == "PodScheduled"]


# -- the binding cycle ---------------------------------------------------------------------


class GatedClient(Client):
    """A real client whose bindings wait at a gate (open by default) and can be made to fail;
    it counts the bindings outstanding."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing: set[str] = set()  # pod names whose bindings answer 500
        self.in_flight = 0
        self.peak = 0
        self.calls: list[str] = []

    async def bind(self, pod: Any, node: str) -> None:
        self.calls.append(pod["metadata"]["name"])
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.gate.wait()
            if pod["metadata"]["name"] in self.failing:
                raise ApiError(500, "InternalError", "injected binding failure")
            await super().bind(pod, node)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def gated(cluster: TestCluster, env: Env) -> AsyncIterator[GatedClient]:
    config = load_kubeconfig(str(cluster.kubeconfig))
    client = GatedClient(config, user_agent="kubeling-tests/gate")
    try:
        yield client
    finally:
        client.gate.set()
        await client.close()


async def _started(scheduler: Scheduler, nodes: int) -> Scheduler:
    scheduler.start()
    await scheduler.wait_synced(10)
    await eventually(
        lambda: asyncio.sleep(0, len(scheduler.node_infos) >= nodes), message="nodes seen"
    )
    return scheduler


async def test_bindings_run_concurrently_up_to_the_limit(env: Env, gated: GatedClient) -> None:
    n = await env.add_node("a", cpu="8")
    scheduler = Scheduler(gated, rng=random.Random(1), namespace=env.ns, max_in_flight=4)
    try:
        await _started(scheduler, 1)
        gated.gate.clear()
        for i in range(10):
            await env.client.create(PODS, pod(f"p{i}"), env.ns)
        await eventually(lambda: gated.in_flight == 4, message="four bindings in flight")
        # The scheduling cycle waits for a free slot instead of deciding ahead: nothing more
        # than the four in flight has been decided or assumed.
        assert len(gated.calls) == 4
        assert scheduler.node_infos[n].requested_cpu == 400
        gated.gate.set()

        async def all_bound() -> bool:
            return all([await env.node_of(f"p{i}") == n for i in range(10)])

        await eventually(all_bound, message="ten pods bound")
        await eventually(lambda: scheduler.scheduled == 10, message="ten bindings counted")
        assert gated.peak == 4
        assert sorted(gated.calls) == sorted(f"p{i}" for i in range(10))  # each bound once
    finally:
        await scheduler.stop()


async def test_assumed_pods_count_against_the_next_decision(env: Env, gated: GatedClient) -> None:
    n = await env.add_node("small", cpu="1")
    scheduler = Scheduler(gated, rng=random.Random(1), namespace=env.ns, max_in_flight=8)
    try:
        await _started(scheduler, 1)
        gated.gate.clear()
        for i in range(4):
            await env.client.create(PODS, pod(f"q{i}", cpu="300m"), env.ns)
        # Three fit in 1 CPU; their bindings hang, yet the fourth is refused at once because
        # the node's tally already holds the three assumed Pods.
        await eventually(
            lambda: scheduler.failed >= 1 and gated.in_flight == 3,
            message="three bindings in flight and the fourth pod refused",
        )
        assert scheduler.node_infos[n].requested_cpu == 900
        gated.gate.set()

        async def bound() -> list[str]:
            return [name for i in range(4) if await env.node_of(name := f"q{i}") == n]

        await eventually(lambda: asyncio.sleep(0, scheduler.scheduled == 3), message="3 bound")
        assert len(await bound()) == 3
    finally:
        await scheduler.stop()


async def test_a_failed_binding_releases_the_assumed_pod_and_backs_off(
    env: Env, gated: GatedClient
) -> None:
    n = await env.add_node("one", cpu="1")
    # A long back-off, so that the released state can be looked at before the retry.
    slow = ExponentialFailureRateLimiter(60.0, 60.0)
    scheduler = Scheduler(
        gated, rng=random.Random(1), namespace=env.ns, max_in_flight=8, rate_limiter=slow
    )
    try:
        await _started(scheduler, 1)
        gated.failing.add("doomed")
        await env.client.create(PODS, pod("doomed", cpu="800m"), env.ns)
        key = f"{env.ns}/doomed"
        await eventually(
            lambda: asyncio.sleep(0, scheduler.queue.num_requeues(key) == 1),
            message="the failed binding requeued with back-off",
        )
        info = scheduler.node_infos[n]
        assert info.requested_cpu == 0 and info.pod_count == 0
        assert scheduler.scheduled == 0
        # The freed CPU is really free: a Pod that needs it is placed on that node.
        await env.client.create(PODS, pod("next", cpu="800m"), env.ns)

        async def next_bound() -> bool:
            return await env.node_of("next") == n

        await eventually(next_bound, message="the next pod bound where the failed one was")
        assert gated.calls.count("doomed") == 1  # still backing off, not spinning
        assert await env.node_of("doomed") == ""
    finally:
        await scheduler.stop()


async def test_stop_cancels_bindings_in_flight(env: Env, gated: GatedClient) -> None:
    await env.add_node("a")
    scheduler = Scheduler(gated, rng=random.Random(1), namespace=env.ns, max_in_flight=2)
    await _started(scheduler, 1)
    gated.gate.clear()
    for i in range(3):
        await env.client.create(PODS, pod(f"s{i}"), env.ns)
    await eventually(lambda: gated.in_flight == 2, message="two bindings in flight")
    await scheduler.stop()
    assert gated.in_flight == 0
    await scheduler.stop()  # idempotent


async def test_the_node_cache_follows_a_bound_pods_updates(env: Env) -> None:
    """Updates that leave the spec alone reuse the parsed Pod; a deletion or a new spec does
    not: a terminating Pod stops counting for its owner's spreading, a new request counts."""
    s = Scheduler(env.client, namespace=env.ns)  # handlers fed by hand; never started
    s._node_added(node("n1"))
    owner = [{"kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": True}]
    bound = pod("p", cpu="100m", nodeName="n1")
    bound["metadata"].update(namespace=env.ns, uid="p-uid", ownerReferences=owner)
    s._pod_added(bound)
    info = s.node_infos["n1"]
    assert (info.requested_cpu, info.owner_counts) == (100, {"rs-uid": 1})

    running = {**bound, "status": {"phase": "Running"}}
    s._pod_updated(bound, running)
    assert info.pods["p-uid"].pod is running
    assert (info.requested_cpu, info.owner_counts) == (100, {"rs-uid": 1})

    resized = pod("p", cpu="300m", nodeName="n1")
    resized["metadata"] = running["metadata"]
    s._pod_updated(running, resized)
    assert info.requested_cpu == 300

    terminating = {**resized, "metadata": {**resized["metadata"], "deletionTimestamp": "x"}}
    s._pod_updated(resized, terminating)
    assert (info.requested_cpu, info.owner_counts) == (300, {})
    await s.stop()
