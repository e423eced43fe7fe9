"""Deletion through the official client: collections, preconditions, finalizers, and
pods (binding to a node, graceful deletion)."""

from __future__ import annotations

import pytest
from client_support import api_status, configmap, names, pod
from kubernetes import client
from kubernetes.client.rest import ApiException

# -- deletion --------------------------------------------------------------------------------


def test_delete_collection_deletes_only_matching_objects(core: client.CoreV1Api, ns: str) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        core.create_namespaced_config_map(ns, configmap(name, {"tier": tier}, x="1"))

    core.delete_collection_namespaced_config_map(ns, label_selector="tier=web")

    assert names(core.list_namespaced_config_map(ns)) == ["c"]


def test_delete_with_a_stale_resource_version_precondition_conflicts(
    core: client.CoreV1Api, ns: str
) -> None:
    created = core.create_namespaced_config_map(ns, configmap("one", a="1"))
    core.patch_namespaced_config_map("one", ns, {"data": {"a": "2"}})

    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map(
            "one",
            ns,
            body={"preconditions": {"resourceVersion": created.metadata.resource_version}},
        )

    api_status(err, 409, "Conflict")
    assert core.read_namespaced_config_map("one", ns).data == {"a": "2"}


def test_delete_with_a_matching_uid_precondition_deletes(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_config_map(ns, configmap("one", a="1"))

    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map(
            "one", ns, body={"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}
        )
    api_status(err, 409, "Conflict")
    core.delete_namespaced_config_map(
        "one", ns, body={"preconditions": {"uid": created.metadata.uid}}
    )

    assert names(core.list_namespaced_config_map(ns)) == []


def test_finalizers_keep_a_deleted_object_until_they_are_removed(
    core: client.CoreV1Api, ns: str
) -> None:
    body = configmap("one", a="1")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    core.create_namespaced_config_map(ns, body)

    core.delete_namespaced_config_map("one", ns)

    marked = core.read_namespaced_config_map("one", ns)
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.finalizers == ["example.com/keep"]
    core.patch_namespaced_config_map("one", ns, [{"op": "remove", "path": "/metadata/finalizers"}])
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("one", ns)
    assert err.value.status == 404


def test_no_finalizer_can_be_added_to_an_object_being_deleted(
    core: client.CoreV1Api, ns: str
) -> None:
    body = configmap("one", a="1")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    core.create_namespaced_config_map(ns, body)
    core.delete_namespaced_config_map("one", ns)

    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "one", ns, {"metadata": {"finalizers": ["example.com/keep", "example.com/more"]}}
        )

    api_status(err, 422, "Invalid")


# -- pods: binding and graceful deletion -----------------------------------------------------


def _bind(core: client.CoreV1Api, ns: str, name: str, node: str) -> None:
    response = core.create_namespaced_pod_binding(
        name,
        ns,
        {"metadata": {"name": name}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
        _preload_content=False,
    )
    assert response.status == 201


def test_binding_sets_the_pod_node_name(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("web"))

    _bind(core, ns, "web", "node-1")

    bound = core.read_namespaced_pod("web", ns)
    assert bound.spec.node_name == "node-1"
    scheduled = [c for c in bound.status.conditions or [] if c.type == "PodScheduled"]
    assert [c.status for c in scheduled] == ["True"]


def test_binding_a_bound_pod_again_conflicts(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("web"))
    _bind(core, ns, "web", "node-1")

    with pytest.raises(ApiException) as err:
        _bind(core, ns, "web", "node-2")

    assert err.value.status == 409
    assert core.read_namespaced_pod("web", ns).spec.node_name == "node-1"


def test_deleting_a_bound_pod_marks_it_for_graceful_deletion(
    core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_pod(ns, pod("web"))
    _bind(core, ns, "web", "node-1")

    core.delete_namespaced_pod("web", ns, grace_period_seconds=30)

    marked = core.read_namespaced_pod("web", ns)
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.deletion_grace_period_seconds == 30


def test_deleting_a_bound_pod_with_grace_period_0_removes_it(
    core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_pod(ns, pod("web"))
    _bind(core, ns, "web", "node-1")
    core.delete_namespaced_pod("web", ns)

    core.delete_namespaced_pod("web", ns, grace_period_seconds=0)

    assert names(core.list_namespaced_pod(ns)) == []


def test_deleting_an_unbound_pod_removes_it_at_once(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("web"))

    core.delete_namespaced_pod("web", ns)

    assert names(core.list_namespaced_pod(ns)) == []
