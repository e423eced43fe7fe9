"""Create, read, list, patch, replace and delete of every kind with the official client, and
what the server fills in for each kind (defaults, allocations, conversions)."""

from __future__ import annotations

import base64
import ipaddress
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from client_support import configmap, deployment, names, pod
from kubernetes import client
from kubernetes.client.rest import ApiException

NOW = "2026-11-24T01:50:38.123456Z"


@dataclass(frozen=True)
class Kind:
    """How the client names one kind's operations, and a valid object of that kind."""

    api: type
    suffix: str  # create_<suffix>, read_<suffix>, ...
    body: Callable[[str, str], dict[str, Any]]  # (namespace, name) -> object

    @property
    def namespaced(self) -> bool:
        return self.suffix.startswith("namespaced_")

    def __str__(self) -> str:
        return self.suffix.removeprefix("namespaced_")


def _event(ns: str, name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": ns, "apiVersion": "v1"},
        "reason": "Started",
        "message": "Started container web",
        "type": "Normal",
        "source": {"component": "tests"},
        "count": 1,
        "firstTimestamp": "2026-11-24T01:50:38Z",
        "lastTimestamp": "2026-11-24T01:50:38Z",
    }


def _events_v1(ns: str, name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "eventTime": NOW,
        "reportingController": "example.com/tests",
        "reportingInstance": "tests-1",
        "action": "Starting",
        "reason": "Started",
        "note": "Started container web",
        "type": "Normal",
        "regarding": {"kind": "Pod", "name": "web", "namespace": ns, "apiVersion": "v1"},
    }


KINDS = [
    Kind(client.CoreV1Api, "namespaced_pod", lambda ns, name: pod(name)),
    Kind(
        client.AppsV1Api,
        "namespaced_replica_set",
        lambda ns, name: deployment(name, replicas=1),
    ),
    Kind(client.AppsV1Api, "namespaced_deployment", lambda ns, name: deployment(name)),
    Kind(
        client.CoreV1Api,
        "namespaced_service",
        lambda ns, name: {
            "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
        },
    ),
    Kind(
        client.CoreV1Api,
        "namespaced_endpoints",
        lambda ns, name: {
            "metadata": {"name": name},
            "subsets": [
                {"addresses": [{"ip": "127.128.0.5"}], "ports": [{"port": 80, "name": "http"}]}
            ],
        },
    ),
    Kind(
        client.DiscoveryV1Api,
        "namespaced_endpoint_slice",
        lambda ns, name: {
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.128.0.5"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    ),
    Kind(client.CoreV1Api, "namespaced_config_map", lambda ns, name: configmap(name, a="1")),
    Kind(
        client.CoreV1Api,
        "namespaced_secret",
        lambda ns, name: {"metadata": {"name": name}, "data": {"a": "MQ=="}},
    ),
    Kind(
        client.CoreV1Api,
        "node",
        lambda ns, name: {"metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}}},
    ),
    Kind(client.CoreV1Api, "namespaced_event", _event),
    Kind(client.EventsV1Api, "namespaced_event", _events_v1),
    Kind(
        client.CoordinationV1Api,
        "namespaced_lease",
        lambda ns, name: {
            "metadata": {"name": name},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40},
        },
    ),
    Kind(
        client.CoreV1Api,
        "namespaced_service_account",
        lambda ns, name: {"metadata": {"name": name}},
    ),
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.api.__name__}-{k}")
def test_crud_round_trip(api: Any, ns: str, kind: Kind) -> None:
    ops = kind.api(api)
    scope = (ns,) if kind.namespaced else ()
    name = f"crud-{uuid.uuid4().hex[:8]}"

    def call(verb: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(ops, f"{verb}_{kind.suffix}")(*args, **kwargs)

    created = call("create", *scope, kind.body(ns, name))
    assert created.metadata.name == name
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version) > 0
    if kind.namespaced:
        assert created.metadata.namespace == ns

    read = call("read", name, *scope)
    assert read.metadata.uid == created.metadata.uid
    assert read.metadata.resource_version == created.metadata.resource_version

    listing = call("list", *scope)
    assert name in names(listing)
    assert int(listing.metadata.resource_version) >= int(created.metadata.resource_version)

    patched = call("patch", name, *scope, {"metadata": {"labels": {"step": "patched"}}})
    assert patched.metadata.labels["step"] == "patched"
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    body = api.sanitize_for_serialization(patched)
    body["metadata"]["annotations"] = {"step": "replaced"}
    replaced = call("replace", name, *scope, body)
    assert replaced.metadata.annotations == {"step": "replaced"}
    assert replaced.metadata.labels["step"] == "patched"
    assert replaced.metadata.uid == created.metadata.uid

    call("delete", name, *scope)
    with pytest.raises(ApiException) as gone:
        call("read", name, *scope)
    assert gone.value.status == 404
    assert name not in names(call("list", *scope))


def test_namespace_crud_and_deletion_marks_it_terminating(core: client.CoreV1Api) -> None:
    name = f"crud-{uuid.uuid4().hex[:8]}"

    created = core.create_namespace({"metadata": {"name": name}})
    assert created.status.phase == "Active"
    assert created.spec.finalizers == ["kubernetes"]
    assert name in names(core.list_namespace())
    patched = core.patch_namespace(name, {"metadata": {"labels": {"team": "blue"}}})
    assert patched.metadata.labels["team"] == "blue"
    # Kubernetes labels every namespace with its own name.
    assert patched.metadata.labels["kubernetes.io/metadata.name"] == name

    core.delete_namespace(name)

    # The `kubernetes` finalizer keeps it, Terminating, until the namespace controller is done.
    terminating = core.read_namespace(name)
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.status.phase == "Terminating"


def test_pod_gets_kubernetes_defaults(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_pod(ns, pod("web"))

    assert created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always"
    assert created.spec.dns_policy == "ClusterFirst"
    assert created.spec.termination_grace_period_seconds == 30
    container = created.spec.containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert container.termination_message_path == "/dev/termination-log"
    assert container.ports[0].protocol == "TCP"


def test_deployment_gets_kubernetes_defaults(apps: client.AppsV1Api, ns: str) -> None:
    created = apps.create_namespaced_deployment(ns, deployment("web"))

    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    assert created.spec.strategy.rolling_update.max_unavailable == "25%"
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600


def test_replica_set_status_always_has_replicas(apps: client.AppsV1Api, ns: str) -> None:
    created = apps.create_namespaced_replica_set(ns, deployment("web", replicas=3))

    assert created.status.replicas == 0
    assert created.metadata.generation == 1


def test_service_gets_a_cluster_ip_from_the_service_range(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_service(
        ns, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )

    assert created.spec.type == "ClusterIP"
    ip = ipaddress.ip_address(created.spec.cluster_ip)
    assert ip in ipaddress.ip_network("127.96.0.0/12")
    assert created.spec.cluster_ips == [created.spec.cluster_ip]
    assert created.spec.ports[0].protocol == "TCP"
    assert created.spec.ports[0].target_port == 80
    # An update that does not mention the address keeps it.
    updated = core.patch_namespaced_service("web", ns, {"metadata": {"labels": {"a": "b"}}})
    assert updated.spec.cluster_ip == created.spec.cluster_ip


def test_services_never_share_a_cluster_ip(core: client.CoreV1Api, ns: str) -> None:
    ips = {
        core.create_namespaced_service(
            ns, {"metadata": {"name": f"web{i}"}, "spec": {"ports": [{"port": 80}]}}
        ).spec.cluster_ip
        for i in range(5)
    }
    assert len(ips) == 5


def test_node_port_service_gets_a_port_in_the_node_port_range(
    core: client.CoreV1Api, ns: str
) -> None:
    created = core.create_namespaced_service(
        ns,
        {"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
    )

    assert 30000 <= created.spec.ports[0].node_port <= 32767
    assert ipaddress.ip_address(created.spec.cluster_ip) in ipaddress.ip_network("127.96.0.0/12")


def test_secret_string_data_is_stored_as_base64_data(core: client.CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_secret(
        ns, {"metadata": {"name": "creds"}, "stringData": {"password": "hunter2"}}
    )

    assert created.type == "Opaque"
    assert created.string_data is None
    assert base64.b64decode(created.data["password"]) == b"hunter2"


def test_core_event_is_visible_as_an_events_k8s_io_event(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_event(ns, _event(ns, "started"))

    seen = client.EventsV1Api(core.api_client).read_namespaced_event("started", ns)

    assert seen.reason == "Started"
    assert seen.note == "Started container web"
    assert (seen.regarding.kind, seen.regarding.name) == ("Pod", "web")
    assert seen.type == "Normal"


def test_events_k8s_io_event_is_visible_as_a_core_event(core: client.CoreV1Api, ns: str) -> None:
    client.EventsV1Api(core.api_client).create_namespaced_event(ns, _events_v1(ns, "started"))

    seen = core.read_namespaced_event("started", ns)

    assert seen.reason == "Started"
    assert seen.message == "Started container web"
    assert (seen.involved_object.kind, seen.involved_object.name) == ("Pod", "web")
    assert seen.reporting_component == "example.com/tests"
    assert "started" in names(core.list_namespaced_event(ns))


def test_lease_renewal_is_stored(api: Any, ns: str) -> None:
    leases = client.CoordinationV1Api(api)
    created = leases.create_namespaced_lease(
        ns,
        {
            "metadata": {"name": "node-1"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": NOW},
        },
    )
    body = api.sanitize_for_serialization(created)
    # A MicroTime must carry its six fractional digits, as in Kubernetes (the client prints
    # none for a whole second).
    body["spec"]["renewTime"] = "2026-11-24T01:51:00.250000Z"

    renewed = leases.replace_namespaced_lease("node-1", ns, body)

    assert renewed.spec.holder_identity == "node-1"
    assert renewed.spec.renew_time.isoformat() == "2026-11-24T01:51:00.250000+00:00"
    assert int(renewed.metadata.resource_version) > int(created.metadata.resource_version)
