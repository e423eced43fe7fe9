"""Validation as Kubernetes does it: bodies that cannot be decoded are 400 BadRequest, objects
that break a rule are 422 Invalid with one cause per field, and neither stores anything."""

from __future__ import annotations

from typing import Any

import pytest
from client_support import Http, deployment, is_status, pod
from kubernetes import client


def _deployment(**spec: Any) -> dict[str, Any]:
    body = deployment("web")
    body["spec"].update(spec)
    return body


CORE = "/api/v1/namespaces/{ns}"
APPS = "/apis/apps/v1/namespaces/{ns}"

# (collection path, body, the fields of the causes Kubernetes reports)
INVALID = {
    "service-name-not-a-dns-label": (
        f"{CORE}/services",
        {"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}},
        ["metadata.name"],
    ),
    "label-value-too-long": (
        f"{CORE}/configmaps",
        {"metadata": {"name": "x", "labels": {"a": "x" * 64}}},
        ["metadata.labels"],
    ),
    "missing-name": (f"{CORE}/configmaps", {"metadata": {}}, ["metadata.name"]),
    "configmap-key": (
        f"{CORE}/configmaps",
        {"metadata": {"name": "x"}, "data": {"a b": "1"}},
        ["data[a b]"],
    ),
    "negative-replicas": (f"{APPS}/deployments", _deployment(replicas=-1), ["spec.replicas"]),
    "selector-does-not-match-template": (
        f"{APPS}/deployments",
        _deployment(selector={"matchLabels": {"app": "other"}}),
        ["spec.template.metadata.labels"],
    ),
    "duplicate-container-name": (
        f"{CORE}/pods",
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "c", "image": "i"}]},
        },
        ["spec.containers[1].name"],
    ),
    "empty-containers": (
        f"{CORE}/pods",
        {"metadata": {"name": "p"}, "spec": {"containers": []}},
        ["spec.containers"],
    ),
    "pod-without-spec": (f"{CORE}/pods", {"metadata": {"name": "p"}}, ["spec.containers"]),
    "restart-policy": (
        f"{CORE}/pods",
        pod("p", restartPolicy="Sometimes"),
        ["spec.restartPolicy"],
    ),
    "service-type": (
        f"{CORE}/services",
        {"metadata": {"name": "s"}, "spec": {"type": "Bogus", "ports": [{"port": 80}]}},
        ["spec.type"],
    ),
    "namespace-name-too-long": ("/api/v1/namespaces", {"metadata": {"name": "a" * 64}}, None),
    "owner-reference-without-uid": (
        f"{CORE}/configmaps",
        {
            "metadata": {
                "name": "x",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "y"}],
            }
        },
        ["metadata.ownerReferences.uid"],
    ),
    "annotations-too-large": (
        f"{CORE}/configmaps",
        {"metadata": {"name": "x", "annotations": {"a": "x" * (256 * 1024 + 1)}}},
        ["metadata.annotations"],
    ),
}

UNDECODABLE = {
    "string-for-an-integer": (f"{APPS}/deployments", _deployment(replicas="two")),
    "bad-quantity": (
        f"{CORE}/pods",
        {
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "c", "image": "i", "resources": {"limits": {"cpu": "lots"}}}
                ]
            },
        },
    ),
    "secret-data-not-base64": (f"{CORE}/secrets", {"metadata": {"name": "s"}, "data": {"a": "!"}}),
    "number-for-a-string-map-value": (
        f"{CORE}/configmaps",
        {"metadata": {"name": "x"}, "data": {"a": 1}},
    ),
}


def _count(api: Any, ns: str) -> int:
    """Objects of the kinds above in the namespace, plus all namespaces."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    return sum(
        len(listing.items)
        for listing in (
            core.list_namespaced_config_map(ns),
            core.list_namespaced_pod(ns),
            core.list_namespaced_service(ns),
            core.list_namespaced_secret(ns),
            apps.list_namespaced_deployment(ns),
            core.list_namespace(),
        )
    )


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_object_is_422_with_a_cause_per_field(
    http: Http, api: Any, ns: str, case: str
) -> None:
    path, body, fields = INVALID[case]
    before = _count(api, ns)

    reply = http.json("POST", path.format(ns=ns), body)

    assert is_status(reply, 422, "Invalid")
    causes = reply.json()["details"]["causes"]
    assert causes, reply.json()
    if fields is not None:
        assert [c["field"] for c in causes] == fields, causes
    assert _count(api, ns) == before


@pytest.mark.parametrize("case", sorted(UNDECODABLE))
def test_undecodable_object_is_400(http: Http, api: Any, ns: str, case: str) -> None:
    path, body = UNDECODABLE[case]
    before = _count(api, ns)

    reply = http.json("POST", path.format(ns=ns), body)

    assert is_status(reply, 400, "BadRequest")
    assert _count(api, ns) == before


def test_pod_spec_may_only_change_in_the_mutable_fields(
    http: Http, core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_pod(ns, pod("web"))

    reply = http.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/pods/web",
        b'{"spec":{"restartPolicy":"Never"}}',
        {"Content-Type": "application/merge-patch+json"},
    )

    assert is_status(reply, 422, "Invalid")
    assert [c["field"] for c in reply.json()["details"]["causes"]] == ["spec"]
    image = core.patch_namespaced_pod(
        "web", ns, {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}
    )
    assert image.spec.containers[0].image == "nginx:1.26"
