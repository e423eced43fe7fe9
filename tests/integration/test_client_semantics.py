"""Kubernetes' write semantics through the official client: server-owned metadata,
status and scale subresources, generation and optimistic concurrency."""

from __future__ import annotations

import re
from typing import Any

import pytest
from client_support import api_status, configmap, deployment
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


def test_empty_metadata_collections_are_omitted_as_kubernetes_does(
    http: Any, core: client.CoreV1Api, ns: str
) -> None:
    body = configmap("empty", a="1")
    body["metadata"].update(labels={}, annotations={}, ownerReferences=[], finalizers=[])
    core.create_namespaced_config_map(ns, body)
    core.patch_namespaced_config_map("empty", ns, {"metadata": {"labels": {"x": None}}})

    stored = http.request("GET", f"/api/v1/namespaces/{ns}/configmaps/empty").json()

    assert not {"labels", "annotations", "ownerReferences", "finalizers"} & set(stored["metadata"])


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


def test_replace_of_a_missing_configmap_is_not_found(core: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("nope", ns, configmap("nope", a="1"))

    api_status(err, 404, "NotFound")


def test_replace_creates_a_missing_lease(api: Any, ns: str) -> None:
    # Leases, Endpoints and Events allow create-on-update (PUT) in Kubernetes.
    leases = client.CoordinationV1Api(api)

    leases.replace_namespaced_lease(
        "fresh", ns, {"metadata": {"name": "fresh"}, "spec": {"holderIdentity": "a"}}
    )

    assert leases.read_namespaced_lease("fresh", ns).spec.holder_identity == "a"


def test_replace_creates_missing_endpoints(core: client.CoreV1Api, ns: str) -> None:
    core.replace_namespaced_endpoints("fresh", ns, {"metadata": {"name": "fresh"}})

    assert core.read_namespaced_endpoints("fresh", ns).metadata.name == "fresh"


def test_replace_without_a_resource_version_is_unconditional(
    core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_config_map(ns, configmap("one", a="1"))

    replaced = core.replace_namespaced_config_map("one", ns, configmap("one", a="9"))

    assert replaced.data == {"a": "9"}
