"""Kubernetes' write semantics through the official client: server-owned metadata, status
and scale subresources, generation, optimistic concurrency, dry runs, field validation,
deletion (collections, preconditions, finalizers, graceful pod deletion) and pod binding."""

from __future__ import annotations

import re
from typing import Any

import pytest
from client_support import Http, api_status, configmap, deployment, names, pod
from kubernetes import client
from kubernetes.client.rest import ApiException

# -- server-owned metadata -------------------------------------------------------------------


def test_create_sets_uid_creation_timestamp_and_resource_version(
    core: client.CoreV1Api, ns: str
) -> None:
    first = core.create_namespaced_config_map(ns, configmap("one", a="1"))
    second = core.create_namespaced_config_map(ns, configmap("two", a="1"))

    assert first.metadata.uid != second.metadata.uid
    assert re.fullmatch(r"[0-9a-f-]{36}", first.metadata.uid)
    assert first.metadata.creation_timestamp.tzinfo is not None
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)


def test_client_supplied_server_fields_are_ignored(core: client.CoreV1Api, ns: str) -> None:
    body = configmap("one", a="1")
    body["metadata"].update(uid="not-a-uid", creationTimestamp="2001-01-01T00:00:00Z")

    created = core.create_namespaced_config_map(ns, body)

    assert created.metadata.uid != "not-a-uid"
    assert created.metadata.creation_timestamp.year > 2001


def test_generate_name_appends_a_random_suffix(core: client.CoreV1Api, ns: str) -> None:
    body = {"metadata": {"generateName": "job-"}, "data": {"a": "1"}}

    first = core.create_namespaced_config_map(ns, body)
    second = core.create_namespaced_config_map(ns, body)

    assert re.fullmatch(r"job-[a-z0-9]{5}", first.metadata.name)
    assert first.metadata.name != second.metadata.name
    assert first.metadata.generate_name == "job-"
    assert core.read_namespaced_config_map(first.metadata.name, ns).data == {"a": "1"}


# -- status and generation -------------------------------------------------------------------


def test_status_update_changes_status_only(api: Any, apps: client.AppsV1Api, ns: str) -> None:
    created = apps.create_namespaced_deployment(ns, deployment("web", replicas=2))
    body = api.sanitize_for_serialization(created)
    body["spec"]["replicas"] = 7
    body["metadata"]["labels"]["sneaky"] = "yes"
    body["status"] = {"observedGeneration": 1, "replicas": 2, "readyReplicas": 1}

    updated = apps.replace_namespaced_deployment_status("web", ns, body)

    assert updated.status.replicas == 2
    assert updated.status.ready_replicas == 1
    assert updated.spec.replicas == 2
    assert "sneaky" not in updated.metadata.labels
    assert updated.metadata.generation == 1
    assert apps.read_namespaced_deployment("web", ns).status.observed_generation == 1


def test_main_update_does_not_change_status(api: Any, apps: client.AppsV1Api, ns: str) -> None:
    created = apps.create_namespaced_deployment(ns, deployment("web", replicas=2))
    status = {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2}
    with_status = api.sanitize_for_serialization(created)
    with_status["status"] = status
    stored = apps.replace_namespaced_deployment_status("web", ns, with_status)
    body = api.sanitize_for_serialization(stored)
    body["spec"]["replicas"] = 3
    body["status"] = {"replicas": 99}

    updated = apps.replace_namespaced_deployment("web", ns, body)

    assert updated.spec.replicas == 3
    assert updated.status.replicas == 2
    assert updated.status.ready_replicas == 2


def test_patch_status_changes_status_only(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("web", replicas=2))

    patched = apps.patch_namespaced_deployment_status(
        "web", ns, {"spec": {"replicas": 9}, "status": {"availableReplicas": 1}}
    )

    assert patched.status.available_replicas == 1
    assert patched.spec.replicas == 2


def test_generation_moves_on_spec_changes_only(api: Any, apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("web", replicas=2))

    labelled = apps.patch_namespaced_deployment("web", ns, {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    annotated = apps.patch_namespaced_deployment(
        "web", ns, {"metadata": {"annotations": {"note": "hi"}}}
    )
    assert annotated.metadata.generation == 1
    status = apps.patch_namespaced_deployment_status("web", ns, {"status": {"replicas": 1}})
    assert status.metadata.generation == 1

    scaled = apps.patch_namespaced_deployment("web", ns, {"spec": {"replicas": 4}})
    assert scaled.metadata.generation == 2
    body = api.sanitize_for_serialization(scaled)
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert apps.replace_namespaced_deployment("web", ns, body).metadata.generation == 3


def test_a_write_that_changes_nothing_keeps_the_resource_version(
    core: client.CoreV1Api, ns: str
) -> None:
    created = core.create_namespaced_config_map(ns, configmap("one", a="1"))

    patched = core.patch_namespaced_config_map("one", ns, {"data": {"a": "1"}})

    assert patched.metadata.resource_version == created.metadata.resource_version


# -- scale -----------------------------------------------------------------------------------


def test_read_scale_shows_replicas_and_selector(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("web", replicas=2))

    scale = apps.read_namespaced_deployment_scale("web", ns)

    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert scale.metadata.name == "web"
    assert scale.spec.replicas == 2
    assert scale.status.replicas == 0
    assert scale.status.selector == "app=web"


def test_patch_scale_sets_the_deployment_replicas(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("web", replicas=2))

    scale = apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}})

    assert scale.spec.replicas == 5
    live = apps.read_namespaced_deployment("web", ns)
    assert live.spec.replicas == 5
    assert live.metadata.generation == 2


def test_replace_scale_with_a_stale_resource_version_conflicts(
    api: Any, apps: client.AppsV1Api, ns: str
) -> None:
    apps.create_namespaced_deployment(ns, deployment("web", replicas=2))
    stale = api.sanitize_for_serialization(apps.read_namespaced_deployment_scale("web", ns))
    apps.patch_namespaced_deployment("web", ns, {"metadata": {"labels": {"x": "y"}}})
    stale["spec"]["replicas"] = 6

    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment_scale("web", ns, stale)

    api_status(err, 409, "Conflict")
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 2


def test_patch_replica_set_scale(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_replica_set(ns, deployment("web", replicas=1))

    apps.patch_namespaced_replica_set_scale("web", ns, {"spec": {"replicas": 3}})

    assert apps.read_namespaced_replica_set("web", ns).spec.replicas == 3


# -- optimistic concurrency ------------------------------------------------------------------


def test_replace_with_a_stale_resource_version_conflicts(
    api: Any, core: client.CoreV1Api, ns: str
) -> None:
    created = core.create_namespaced_config_map(ns, configmap("one", a="1"))
    core.patch_namespaced_config_map("one", ns, {"data": {"a": "2"}})
    stale = api.sanitize_for_serialization(created)
    stale["data"] = {"a": "3"}

    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("one", ns, stale)

    status = api_status(err, 409, "Conflict")
    assert "the object has been modified" in status["message"]
    assert core.read_namespaced_config_map("one", ns).data == {"a": "2"}


def test_replace_without_a_resource_version_is_unconditional(
    core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_config_map(ns, configmap("one", a="1"))

    replaced = core.replace_namespaced_config_map("one", ns, configmap("one", a="9"))

    assert replaced.data == {"a": "9"}


# -- dry run and field validation ------------------------------------------------------------


def test_dry_run_create_returns_the_object_without_storing_it(
    core: client.CoreV1Api, ns: str
) -> None:
    returned = core.create_namespaced_config_map(ns, configmap("one", a="1"), dry_run="All")

    assert returned.metadata.name == "one"
    assert returned.data == {"a": "1"}
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("one", ns)
    assert err.value.status == 404


def test_dry_run_patch_and_delete_do_not_persist(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_config_map(ns, configmap("one", a="1"))

    patched = core.patch_namespaced_config_map("one", ns, {"data": {"a": "2"}}, dry_run="All")
    core.delete_namespaced_config_map("one", ns, dry_run="All")

    assert patched.data == {"a": "2"}
    live = core.read_namespaced_config_map("one", ns)
    assert live.data == {"a": "1"}
    assert live.metadata.resource_version == created.metadata.resource_version


def test_strict_field_validation_rejects_a_create_with_unknown_fields(
    http: Http, core: client.CoreV1Api, ns: str
) -> None:
    body = {**configmap("one", a="1"), "colour": "red"}

    reply = http.json("POST", f"/api/v1/namespaces/{ns}/configmaps?fieldValidation=Strict", body)

    assert reply.status == 400, reply.body
    status = reply.json()
    assert status["reason"] == "BadRequest"
    assert 'unknown field "colour"' in status["message"]
    assert names(core.list_namespaced_config_map(ns)) == []


def test_strict_field_validation_rejects_a_patch_with_unknown_fields(
    core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_config_map(ns, configmap("one", a="1"))

    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "one", ns, {"data": {"a": "2"}, "colour": "red"}, field_validation="Strict"
        )

    # Kubernetes reports unknown fields of a patch as an invalid `patch` (422), where a
    # create or update gets 400.
    status = api_status(err, 422, "Invalid")
    assert 'unknown field "colour"' in status["message"]
    assert core.read_namespaced_config_map("one", ns).data == {"a": "1"}


def test_warn_field_validation_on_a_patch_drops_unknown_fields(
    core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_config_map(ns, configmap("one", a="1"))

    patched = core.patch_namespaced_config_map(
        "one", ns, {"data": {"a": "2"}, "colour": "red"}, field_validation="Warn"
    )

    assert patched.data == {"a": "2"}
    stored = core.api_client.sanitize_for_serialization(core.read_namespaced_config_map("one", ns))
    assert "colour" not in stored


def test_warn_field_validation_drops_unknown_fields_with_a_warning(
    http: Http, core: client.CoreV1Api, ns: str
) -> None:
    body = {**configmap("one", a="1"), "colour": "red"}

    reply = http.json("POST", f"/api/v1/namespaces/{ns}/configmaps?fieldValidation=Warn", body)

    assert reply.status == 201, reply.body
    assert "colour" not in reply.json()
    warnings = reply.headers.get_all("Warning") or []
    assert any('unknown field "colour"' in w and w.startswith("299 ") for w in warnings), warnings
    stored = core.api_client.sanitize_for_serialization(core.read_namespaced_config_map("one", ns))
    assert "colour" not in stored
    assert stored["data"] == {"a": "1"}


def test_strict_create_with_unknown_nested_field_names_its_path(
    http: Http, core: client.CoreV1Api, ns: str
) -> None:
    body = deployment("web")
    body["spec"]["template"]["spec"]["containers"][0]["colour"] = "red"

    reply = http.json(
        "POST", f"/apis/apps/v1/namespaces/{ns}/deployments?fieldValidation=Strict", body
    )

    assert reply.status == 400, reply.body
    assert 'unknown field "spec.template.spec.containers[0].colour"' in reply.json()["message"]


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
