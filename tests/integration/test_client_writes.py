"""Writes with options through the official client: patch types, server-side apply,
dry runs, field validation, immutable fields and terminating namespaces."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from client_support import Http, api_status, configmap, deployment, names
from kubernetes import client
from kubernetes.client.rest import ApiException

# -- immutability and namespaces ------------------------------------------------------------


def test_immutable_configmap_data_cannot_change(core: client.CoreV1Api, ns: str) -> None:
    body = {**configmap("one", a="1"), "immutable": True}
    core.create_namespaced_config_map(ns, body)

    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("one", ns, {"data": {"a": "2"}})

    status = api_status(err, 422, "Invalid")
    assert [c["field"] for c in status["details"]["causes"]] == ["data"]
    assert core.read_namespaced_config_map("one", ns).data == {"a": "1"}


def test_deployment_selector_is_immutable(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("web"))
    changed = {
        "spec": {
            "selector": {"matchLabels": {"app": "other"}},
            "template": {"metadata": {"labels": {"app": "other"}}},
        }
    }

    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", ns, changed)

    status = api_status(err, 422, "Invalid")
    assert "spec.selector" in [c["field"] for c in status["details"]["causes"]]


def test_service_cluster_ip_cannot_change(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_service(
        ns, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )
    other = "127.96.0.77" if created.spec.cluster_ip != "127.96.0.77" else "127.96.0.78"

    with pytest.raises(ApiException) as err:
        core.patch_namespaced_service(
            "web", ns, {"spec": {"clusterIP": other, "clusterIPs": [other]}}
        )

    api_status(err, 422, "Invalid")
    assert core.read_namespaced_service("web", ns).spec.cluster_ip == created.spec.cluster_ip


def test_writing_into_a_terminating_namespace_is_forbidden(core: client.CoreV1Api) -> None:
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    core.delete_namespace(name)

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(name, configmap("late", a="1"))

    status = api_status(err, 403, "Forbidden")
    assert "is being terminated" in status["message"]


# -- patch types -----------------------------------------------------------------------------


def test_merge_patch_replaces_lists(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("web"))
    containers = [{"name": "only", "image": "busybox:1.36"}]

    patched = apps.patch_namespaced_deployment(
        "web",
        ns,
        {"spec": {"template": {"spec": {"containers": containers}}}},
        _content_type="application/merge-patch+json",
    )

    assert [c.name for c in patched.spec.template.spec.containers] == ["only"]


def test_strategic_merge_patch_merges_lists_by_key(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("web"))
    sidecar = {"name": "sidecar", "image": "busybox:1.36"}

    patched = apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"template": {"spec": {"containers": [sidecar]}}}}
    )

    # Kubernetes' order: without $setElementOrder, items new to the list come first.
    assert [c.name for c in patched.spec.template.spec.containers] == ["sidecar", "web"]
    assert patched.spec.template.spec.containers[1].image == "nginx:1.25"


def test_server_side_apply_creates_then_updates(core: client.CoreV1Api, ns: str) -> None:
    def apply(data: dict[str, str]) -> Any:
        return core.patch_namespaced_config_map(
            "applied",
            ns,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "applied"},
                "data": data,
            },
            field_manager="tests",
            _content_type="application/apply-patch+yaml",
        )

    created = apply({"a": "1"})
    updated = apply({"a": "2", "b": "3"})

    assert created.data == {"a": "1"}
    assert updated.data == {"a": "2", "b": "3"}
    assert updated.metadata.uid == created.metadata.uid


def test_server_side_apply_without_a_field_manager_is_a_bad_request(
    core: client.CoreV1Api, ns: str
) -> None:
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "applied",
            ns,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}},
            _content_type="application/apply-patch+yaml",
        )

    api_status(err, 400, "BadRequest")


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
    # A quoted-string: the field name's quotes are escaped.
    assert warnings == ['299 - "unknown field \\"colour\\""'], warnings
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


def test_concurrent_patches_without_a_resource_version_all_apply(
    core: client.CoreV1Api, ns: str
) -> None:
    """Patches that do not name a resourceVersion are retried by the server on a
    conflicting write (as Kubernetes does), so none of them fails with 409."""
    from concurrent.futures import ThreadPoolExecutor

    core.create_namespaced_config_map(ns, configmap("shared", start="0"))

    def patch(i: int) -> None:
        core.patch_namespaced_config_map("shared", ns, {"data": {f"k{i}": str(i)}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(patch, range(40)))

    data = core.read_namespaced_config_map("shared", ns).data
    assert {f"k{i}" for i in range(40)} <= set(data)
