"""The HTTP surface around the resources: discovery, version, health, metrics, authentication,
and bad requests. Every refusal is a `Status` with the matching code, and a refused write
leaves the store exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from client_support import Http, api_status, configmap, is_status
from kubernetes import client
from kubernetes.client.rest import ApiException

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@contextmanager
def store_unchanged(core: client.CoreV1Api, ns: str) -> Iterator[None]:
    """Asserts that the namespace's ConfigMaps are the same after the block."""
    before = core.api_client.sanitize_for_serialization(core.list_namespaced_config_map(ns))
    yield
    after = core.api_client.sanitize_for_serialization(core.list_namespaced_config_map(ns))
    assert after["items"] == before["items"]


@pytest.fixture
def seeded(core: client.CoreV1Api, ns: str) -> str:
    """A namespace holding one ConfigMap `seed`, for the before/after comparisons."""
    core.create_namespaced_config_map(ns, configmap("seed", a="1"))
    return ns


# -- unknown paths and verbs -----------------------------------------------------------------


def test_unknown_resource_is_a_404_status(http: Http) -> None:
    reply = http.request("GET", "/api/v1/namespaces/default/widgets")

    assert is_status(reply, 404, "NotFound")


def test_unknown_group_is_a_404_status(http: Http) -> None:
    reply = http.request("GET", "/apis/example.com/v1/widgets")

    assert is_status(reply, 404, "NotFound")


def test_unsupported_verb_is_a_405_status(http: Http, core: client.CoreV1Api, seeded: str) -> None:
    with store_unchanged(core, seeded):
        # POST creates in a collection; on an object's path it is not allowed.
        reply = http.json(
            "POST", f"/api/v1/namespaces/{seeded}/configmaps/seed", configmap("seed", a="2")
        )

    assert is_status(reply, 405, "MethodNotAllowed")


def test_put_on_a_collection_is_a_405_status(
    http: Http, core: client.CoreV1Api, seeded: str
) -> None:
    with store_unchanged(core, seeded):
        reply = http.json("PUT", f"/api/v1/namespaces/{seeded}/configmaps", configmap("x", a="1"))

    assert is_status(reply, 405, "MethodNotAllowed")


def test_missing_object_is_a_404_status_naming_it(http: Http, seeded: str) -> None:
    reply = http.request("GET", f"/apis/apps/v1/namespaces/{seeded}/deployments/nope")

    assert is_status(reply, 404, "NotFound")
    status = reply.json()
    assert status["message"] == 'deployments.apps "nope" not found'
    assert status["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_openapi_v2_is_not_served(http: Http) -> None:
    reply = http.request(
        "GET",
        "/openapi/v2",
        headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"},
    )

    assert reply.status == 404


def test_openapi_v3_lists_every_group_version(http: Http) -> None:
    reply = http.request("GET", "/openapi/v3")

    assert reply.status == 200
    paths = reply.json()["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1"} <= set(paths)
    document = http.request("GET", paths["apis/apps/v1"]["serverRelativeURL"])
    assert document.status == 200


# -- discovery and version -------------------------------------------------------------------


def test_legacy_core_discovery(api: Any) -> None:
    versions = client.CoreApi(api).get_api_versions()

    assert versions.versions == ["v1"]
    resources = client.CoreV1Api(api).get_api_resources()
    by_name = {r.name: r for r in resources.resources}
    assert by_name["pods"].namespaced is True
    assert by_name["pods"].kind == "Pod"
    assert "po" in by_name["pods"].short_names
    assert by_name["namespaces"].namespaced is False
    assert "pods/status" in by_name
    assert "pods/binding" in by_name


def test_legacy_group_discovery(api: Any) -> None:
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}

    assert {"apps", "discovery.k8s.io", "events.k8s.io", "coordination.k8s.io"} <= set(groups)
    assert groups["apps"].preferred_version.group_version == "apps/v1"
    resources = client.AppsV1Api(api).get_api_resources()
    by_name = {r.name: r for r in resources.resources}
    assert by_name["deployments"].short_names == ["deploy"]
    assert by_name["deployments/scale"].kind == "Scale"
    assert by_name["deployments/scale"].group == "autoscaling"


@pytest.mark.parametrize("path", ["/api", "/apis"])
def test_aggregated_discovery_has_its_content_type(http: Http, path: str) -> None:
    reply = http.request("GET", path, headers={"Accept": f"{AGGREGATED},application/json"})

    assert reply.status == 200
    assert reply.content_type == AGGREGATED
    listing = reply.json()
    assert listing["kind"] == "APIGroupDiscoveryList"
    resources = [
        resource
        for group in listing["items"]
        for version in group["versions"]
        for resource in version["resources"]
    ]
    assert resources
    assert all(r["responseKind"]["kind"] and r["scope"] for r in resources)


def test_aggregated_discovery_describes_deployments(http: Http) -> None:
    reply = http.request("GET", "/apis", headers={"Accept": AGGREGATED})

    apps = next(g for g in reply.json()["items"] if g["metadata"]["name"] == "apps")
    v1 = next(v for v in apps["versions"] if v["version"] == "v1")
    deployments = next(r for r in v1["resources"] if r["resource"] == "deployments")
    assert deployments["responseKind"]["kind"] == "Deployment"
    assert deployments["scope"] == "Namespaced"
    assert deployments["shortNames"] == ["deploy"]
    assert "all" in deployments["categories"]
    assert {s["subresource"] for s in deployments["subresources"]} == {"scale", "status"}


def test_version_reports_kubernetes_1_32(api: Any) -> None:
    info = client.VersionApi(api).get_code()

    assert (info.major, info.minor) == ("1", "32")
    assert info.git_version.startswith("v1.32.")


# -- health and metrics ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/readyz", "/livez", "/healthz"])
def test_health_endpoints_say_ok_without_a_token(http: Http, path: str) -> None:
    reply = http.request("GET", path, token=None)

    assert (reply.status, reply.body) == (200, b"ok")


def test_metrics_count_requests(http: Http, core: client.CoreV1Api, ns: str) -> None:
    core.list_namespaced_config_map(ns)

    reply = http.request("GET", "/metrics")

    assert reply.status == 200
    assert reply.content_type.startswith("text/plain")
    text = reply.body.decode()
    assert "apiserver_request" in text
    assert 'resource="configmaps"' in text


# -- authentication --------------------------------------------------------------------------


def test_a_request_without_a_token_is_unauthorized(
    http: Http, core: client.CoreV1Api, seeded: str
) -> None:
    with store_unchanged(core, seeded):
        reply = http.json(
            "POST", f"/api/v1/namespaces/{seeded}/configmaps", configmap("x", a="1"), token=None
        )

    assert is_status(reply, 401, "Unauthorized")


def test_a_request_with_a_wrong_token_is_unauthorized(
    http: Http, core: client.CoreV1Api, seeded: str
) -> None:
    with store_unchanged(core, seeded):
        reply = http.json(
            "POST", f"/api/v1/namespaces/{seeded}/configmaps", configmap("x", a="1"), token="nope"
        )

    assert is_status(reply, 401, "Unauthorized")


def test_a_read_without_a_token_is_unauthorized(http: Http) -> None:
    reply = http.request("GET", "/api/v1/namespaces", token=None)

    assert is_status(reply, 401, "Unauthorized")


# -- bad bodies ------------------------------------------------------------------------------


def test_oversized_body_is_a_413_status(http: Http, core: client.CoreV1Api, seeded: str) -> None:
    big = configmap("big", blob="x" * (3 * 1024 * 1024 + 10))

    with store_unchanged(core, seeded):
        reply = http.json("POST", f"/api/v1/namespaces/{seeded}/configmaps", big)

    assert is_status(reply, 413, "RequestEntityTooLarge")


@pytest.mark.parametrize("size", [200 * 1024, 1000 * 1024])
def test_a_large_body_under_the_limit_is_accepted(
    core: client.CoreV1Api, ns: str, size: int
) -> None:
    # Kubernetes reads request bodies up to 3 MiB; a ConfigMap may hold up to 1 MiB.
    blob = "x" * size

    created = core.create_namespaced_config_map(ns, configmap("big", blob=blob))

    assert created.data["blob"] == blob
    assert core.read_namespaced_config_map("big", ns).data["blob"] == blob


def test_malformed_json_is_a_400_status(http: Http, core: client.CoreV1Api, seeded: str) -> None:
    with store_unchanged(core, seeded):
        reply = http.request(
            "POST",
            f"/api/v1/namespaces/{seeded}/configmaps",
            b'{"metadata": {"name": "x"}, "data": {',
            {"Content-Type": "application/json"},
        )

    assert is_status(reply, 400, "BadRequest")


def test_malformed_yaml_is_a_400_status(http: Http, core: client.CoreV1Api, seeded: str) -> None:
    with store_unchanged(core, seeded):
        reply = http.request(
            "POST",
            f"/api/v1/namespaces/{seeded}/configmaps",
            b"metadata:\n  name: x\n data: [unclosed\n",
            {"Content-Type": "application/yaml"},
        )

    assert is_status(reply, 400, "BadRequest")


def test_yaml_body_is_accepted(http: Http, core: client.CoreV1Api, ns: str) -> None:
    reply = http.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: '1'\n",
        {"Content-Type": "application/yaml"},
    )

    assert reply.status == 201, reply.body
    assert core.read_namespaced_config_map("from-yaml", ns).data == {"a": "1"}


def test_malformed_patch_is_a_400_status(http: Http, core: client.CoreV1Api, seeded: str) -> None:
    with store_unchanged(core, seeded):
        reply = http.request(
            "PATCH",
            f"/api/v1/namespaces/{seeded}/configmaps/seed",
            b'{"data": ',
            {"Content-Type": "application/merge-patch+json"},
        )

    assert is_status(reply, 400, "BadRequest")


def test_unknown_patch_type_is_a_415_status(
    http: Http, core: client.CoreV1Api, seeded: str
) -> None:
    with store_unchanged(core, seeded):
        reply = http.request(
            "PATCH",
            f"/api/v1/namespaces/{seeded}/configmaps/seed",
            b'{"data": {"a": "2"}}',
            {"Content-Type": "application/json"},
        )

    assert is_status(reply, 415, "UnsupportedMediaType")


def test_json_patch_on_a_missing_path_is_rejected(core: client.CoreV1Api, seeded: str) -> None:
    with store_unchanged(core, seeded), pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "seed", seeded, [{"op": "replace", "path": "/data/missing/deeper", "value": "x"}]
        )

    # Kubernetes: a JSON patch that cannot be applied is 422 Unprocessable Entity.
    api_status(err, 422, "Invalid")


def test_body_of_the_wrong_kind_is_a_400_status(
    http: Http, core: client.CoreV1Api, seeded: str
) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}

    with store_unchanged(core, seeded):
        reply = http.json("POST", f"/api/v1/namespaces/{seeded}/configmaps", body)

    assert is_status(reply, 400, "BadRequest")


def test_namespace_mismatch_between_body_and_url_is_a_400_status(
    http: Http, core: client.CoreV1Api, seeded: str
) -> None:
    body = {"metadata": {"name": "x", "namespace": "elsewhere"}, "data": {"a": "1"}}

    with store_unchanged(core, seeded):
        reply = http.json("POST", f"/api/v1/namespaces/{seeded}/configmaps", body)

    assert is_status(reply, 400, "BadRequest")


def test_wrong_field_type_is_rejected(http: Http, core: client.CoreV1Api, seeded: str) -> None:
    body = {"metadata": {"name": "x"}, "data": {"a": 1}}

    with store_unchanged(core, seeded):
        reply = http.json("POST", f"/api/v1/namespaces/{seeded}/configmaps", body)

    assert is_status(reply, 400, "BadRequest")


def test_invalid_object_is_a_422_status_with_causes(
    http: Http, core: client.CoreV1Api, seeded: str
) -> None:
    body = {"metadata": {"name": "Not_Valid"}, "data": {"a": "1"}}

    with store_unchanged(core, seeded):
        reply = http.json("POST", f"/api/v1/namespaces/{seeded}/configmaps", body)

    assert is_status(reply, 422, "Invalid")
    details = reply.json()["details"]
    assert (details["name"], details["kind"]) == ("Not_Valid", "ConfigMap")
    assert [c["field"] for c in details["causes"]] == ["metadata.name"]


def test_invalid_dry_run_value_is_a_400_status(core: client.CoreV1Api, seeded: str) -> None:
    with store_unchanged(core, seeded), pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(seeded, configmap("x", a="1"), dry_run="Some")

    api_status(err, 400, "BadRequest")
