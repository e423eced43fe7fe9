"""The garbage collector against a real server with propagation finalizers enabled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.client.events import EventRecorder
from kubeling.client.rest import Client, DeleteOptions
from kubeling.controllers.garbagecollector import garbage_collector
from kubeling.controllers.replicaset import replicaset_controller
from kubeling.reconcile import Manager
from kubeling.testing import TestCluster, eventually


def _info(group: str, plural: str) -> ResourceInfo:
    info = REGISTRY.by_path(group, "v1", plural)
    assert info is not None
    return info


PODS = _info("", "pods")
CONFIGMAPS = _info("", "configmaps")
NAMESPACES = _info("", "namespaces")
REPLICASETS = _info("apps", "replicasets")


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(controllers=False) as c:
        assert c.server.objects is not None
        c.server.objects.gc_enabled = True
        yield c


@pytest.fixture
async def gc(client: Client) -> AsyncIterator[Manager]:
    manager = Manager(client)
    garbage_collector(client, manager)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()


async def _get(client: Client, info: ResourceInfo, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return await client.get(info, name, ns)
    except ApiError as err:
        if err.code == 404:
            return None
        raise


def _ref(owner: dict[str, Any], kind: str = "ReplicaSet", block: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": owner.get("apiVersion", "apps/v1"),
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": kind == "ReplicaSet",
        "blockOwnerDeletion": block,
    }


async def _replicaset(client: Client, ns: str, name: str = "web") -> dict[str, Any]:
    labels = {"app": name}
    body = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    return await client.create(REPLICASETS, body)


async def _pod(client: Client, ns: str, name: str, refs: list[dict[str, Any]]) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": refs},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }
    return await client.create(PODS, body)


async def test_background_delete_removes_the_dependents(
    client: Client, ns: str, gc: Manager
) -> None:
    rs = await _replicaset(client, ns)
    for name in ("p1", "p2"):
        await _pod(client, ns, name, [_ref(rs)])

    await client.delete(REPLICASETS, "web", ns, DeleteOptions(propagation_policy="Background"))

    async def pods_gone() -> bool:
        return not (await client.list(PODS, ns)).items

    await eventually(pods_gone)


async def test_foreground_delete_waits_for_the_dependents(
    client: Client, ns: str, gc: Manager
) -> None:
    rs = await _replicaset(client, ns)
    # A finalizer holds the pod, so the owner must wait for it.
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "held",
            "namespace": ns,
            "ownerReferences": [_ref(rs)],
            "finalizers": ["example.com/hold"],
        },
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }
    await client.create(PODS, body)

    await client.delete(REPLICASETS, "web", ns, DeleteOptions(propagation_policy="Foreground"))

    async def pod_marked() -> bool:
        pod = await _get(client, PODS, ns, "held")
        return pod is not None and bool(pod["metadata"].get("deletionTimestamp"))

    await eventually(pod_marked)
    await asyncio.sleep(0.3)
    owner = await _get(client, REPLICASETS, ns, "web")
    assert owner is not None and owner["metadata"].get("deletionTimestamp")
    assert "foregroundDeletion" in owner["metadata"]["finalizers"]

    await client.patch(PODS, "held", {"metadata": {"finalizers": None}}, ns)

    async def owner_gone() -> bool:
        return await _get(client, REPLICASETS, ns, "web") is None

    await eventually(owner_gone)
    assert await _get(client, PODS, ns, "held") is None


async def test_orphan_delete_keeps_the_dependents_without_the_reference(
    client: Client, ns: str, gc: Manager
) -> None:
    rs = await _replicaset(client, ns)
    await _pod(client, ns, "p1", [_ref(rs)])

    await client.delete(REPLICASETS, "web", ns, DeleteOptions(propagation_policy="Orphan"))

    async def owner_gone() -> bool:
        return await _get(client, REPLICASETS, ns, "web") is None

    await eventually(owner_gone)
    await asyncio.sleep(0.3)
    pod = await _get(client, PODS, ns, "p1")
    assert pod is not None
    assert not pod["metadata"].get("ownerReferences")


async def test_a_dependent_with_a_remaining_owner_keeps_only_that_reference(
    client: Client, ns: str, gc: Manager
) -> None:
    rs = await _replicaset(client, ns)
    keeper = await client.create(CONFIGMAPS, {"metadata": {"name": "keeper", "namespace": ns}})
    keeper_ref = _ref({**keeper, "apiVersion": "v1"}, kind="ConfigMap", block=False)
    await _pod(client, ns, "shared", [_ref(rs), keeper_ref])

    await client.delete(REPLICASETS, "web", ns, DeleteOptions(propagation_policy="Background"))

    async def one_reference_left() -> bool:
        pod = await _get(client, PODS, ns, "shared")
        assert pod is not None
        return len(pod["metadata"].get("ownerReferences") or []) == 1

    await eventually(one_reference_left)
    pod = await _get(client, PODS, ns, "shared")
    assert pod is not None
    assert pod["metadata"]["ownerReferences"][0]["uid"] == keeper["metadata"]["uid"]


async def test_an_object_whose_owner_never_existed_is_removed(
    client: Client, ns: str, gc: Manager
) -> None:
    ghost = {"apiVersion": "apps/v1", "metadata": {"name": "ghost", "uid": str(uuid.uuid4())}}
    await _pod(client, ns, "orphaned", [_ref(ghost)])

    async def gone() -> bool:
        return await _get(client, PODS, ns, "orphaned") is None

    await eventually(gone)


async def test_an_object_whose_owner_exists_stays(client: Client, ns: str, gc: Manager) -> None:
    rs = await _replicaset(client, ns)
    await _pod(client, ns, "kept", [_ref(rs)])
    await asyncio.sleep(0.5)
    pod = await _get(client, PODS, ns, "kept")
    assert pod is not None and len(pod["metadata"]["ownerReferences"]) == 1


async def test_foreground_delete_of_a_replicaset_run_by_its_controller(
    client: Client, ns: str
) -> None:
    recorder = EventRecorder(client, "replicaset-controller")
    manager = Manager(client)
    replicaset_controller(client, manager, recorder)
    garbage_collector(client, manager)
    await manager.start()
    try:
        await _replicaset(client, ns)

        async def two_pods() -> bool:
            return len((await client.list(PODS, ns)).items) == 2

        await eventually(two_pods)
        await client.delete(REPLICASETS, "web", ns, DeleteOptions(propagation_policy="Foreground"))

        async def all_gone() -> bool:
            rs = await _get(client, REPLICASETS, ns, "web")
            return rs is None and not (await client.list(PODS, ns)).items

        await eventually(all_gone)
    finally:
        await manager.stop()
        await recorder.close()
