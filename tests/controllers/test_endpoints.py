"""EndpointSlices and Endpoints follow a Service's selected pods and their readiness
(whole cluster, simulated nodes, the official client and kubectl)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from kubeling.controllers.endpointslice import desired_slices
from kubeling.testing import TestCluster, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(fake_nodes=2) as c:
        yield c


@pytest.fixture(scope="module")
def discovery(cluster: TestCluster) -> client.DiscoveryV1Api:
    return client.DiscoveryV1Api(cluster.api_client())


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    name = f"ep-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def replicaset(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "x",
                            "ports": [{"name": "http", "containerPort": 8080}],
                        }
                    ]
                },
            },
        },
    }


def service(name: str, target: Any = "http", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"tier": "web"}},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "web", "port": 80, "targetPort": target}],
            **spec,
        },
    }


def slices_of(discovery: client.DiscoveryV1Api, ns: str, name: str) -> list[Any]:
    found = discovery.list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={name}"
    )
    return list(found.items)


def ready_ips(discovery: client.DiscoveryV1Api, ns: str, name: str) -> list[str]:
    return sorted(
        e.addresses[0]
        for s in slices_of(discovery, ns, name)
        for e in s.endpoints or []
        if e.conditions.ready
    )


def test_a_service_gets_a_slice_and_endpoints_with_its_ready_pods_on_named_ports(
    cluster: TestCluster,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
    discovery: client.DiscoveryV1Api,
    ns: str,
) -> None:
    apps.create_namespaced_replica_set(ns, replicaset("web", 3))
    core.create_namespaced_service(ns, service("web"))

    wait_for(lambda: len(ready_ips(discovery, ns, "web")) == 3, message="3 ready endpoints")
    (found,) = slices_of(discovery, ns, "web")
    assert found.metadata.name.startswith("web-")
    assert found.address_type == "IPv4"
    assert found.metadata.labels["endpointslice.kubernetes.io/managed-by"] == (
        "endpointslice-controller.k8s.io"
    )
    assert found.metadata.owner_references[0].kind == "Service"
    assert [(p.name, p.port, p.protocol) for p in found.ports] == [("web", 8080, "TCP")]
    pods = {p.status.pod_ip: p for p in core.list_namespaced_pod(ns).items}
    for endpoint in found.endpoints:
        pod = pods[endpoint.addresses[0]]
        assert endpoint.target_ref.name == pod.metadata.name
        assert endpoint.node_name == pod.spec.node_name
        assert (endpoint.conditions.serving, endpoint.conditions.terminating) == (True, False)

    def legacy() -> Any:
        subsets = core.read_namespaced_endpoints("web", ns).subsets or []
        return subsets if subsets and len(subsets[0].addresses or []) == 3 else None

    (subset,) = wait_for(legacy, message="Endpoints with 3 addresses")
    assert [(p.name, p.port) for p in subset.ports] == [("web", 8080)]
    described = cluster.kubectl("describe", "svc", "web", "-n", ns).stdout
    assert ":8080" in described
    table = cluster.kubectl("get", "endpointslices", "-n", ns).stdout
    assert "IPv4" in table and "8080" in table


def test_readiness_changes_move_a_pod_between_ready_and_not_ready(
    core: client.CoreV1Api, discovery: client.DiscoveryV1Api, ns: str
) -> None:
    # A node without an agent, so that nothing but this test writes the pods' status.
    node = f"quiet-{ns}"
    core.create_node({"metadata": {"name": node}})
    try:
        core.create_namespaced_service(ns, service("web", target=8080))
        for i, ready in ((1, "True"), (2, "False")):
            core.create_namespaced_pod(
                ns,
                {
                    "metadata": {"name": f"p{i}", "labels": {"app": "web"}},
                    "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
                },
            )
            status = {
                "status": {
                    "phase": "Running",
                    "podIP": f"127.128.200.{i}",
                    "conditions": [{"type": "Ready", "status": ready}],
                }
            }
            core.patch_namespaced_pod_status(f"p{i}", ns, status)

        def both_listed() -> dict[str, Any] | None:
            endpoints = slices_of(discovery, ns, "web")[0].endpoints or []
            found = {e.addresses[0]: e.conditions for e in endpoints}
            return found if len(found) == 2 else None

        listed = wait_for(both_listed, message="both pods in the slice")
        assert (listed["127.128.200.1"].ready, listed["127.128.200.1"].serving) == (True, True)
        assert (listed["127.128.200.2"].ready, listed["127.128.200.2"].serving) == (False, False)

        def split() -> Any:
            subsets = core.read_namespaced_endpoints("web", ns).subsets or []
            if not subsets:
                return None
            ready = [a.ip for a in subsets[0].addresses or []]
            not_ready = [a.ip for a in subsets[0].not_ready_addresses or []]
            return (ready, not_ready) if ready and not_ready else None

        assert wait_for(split, message="Endpoints split") == (["127.128.200.1"], ["127.128.200.2"])
        flip = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        core.patch_namespaced_pod_status("p2", ns, flip)
        wait_for(
            lambda: ready_ips(discovery, ns, "web") == ["127.128.200.1", "127.128.200.2"],
            message="both ready",
        )
        core.delete_namespaced_pod("p1", ns)  # no agent: it stays, terminating

        def terminating() -> bool:
            found = {e.addresses[0]: e for e in slices_of(discovery, ns, "web")[0].endpoints}
            c = found["127.128.200.1"].conditions
            return (c.ready, c.serving, c.terminating) == (False, True, True)

        wait_for(terminating, message="the deleted pod terminating but serving")
    finally:
        core.delete_node(node)


def test_a_deleted_service_loses_its_slices_and_endpoints(
    core: client.CoreV1Api, discovery: client.DiscoveryV1Api, ns: str, apps: client.AppsV1Api
) -> None:
    apps.create_namespaced_replica_set(ns, replicaset("web", 1))
    core.create_namespaced_service(ns, service("web"))
    wait_for(lambda: len(ready_ips(discovery, ns, "web")) == 1, message="1 ready endpoint")
    core.delete_namespaced_service("web", ns)
    wait_for(lambda: not slices_of(discovery, ns, "web"), message="slices gone")
    wait_for(
        lambda: all(e.metadata.name != "web" for e in core.list_namespaced_endpoints(ns).items),
        message="Endpoints gone",
    )


def test_a_service_without_selector_keeps_hand_written_endpoints(
    core: client.CoreV1Api, discovery: client.DiscoveryV1Api, ns: str
) -> None:
    body = service("ext")
    del body["spec"]["selector"]
    core.create_namespaced_service(ns, body)
    manual = {
        "metadata": {"name": "ext"},
        "subsets": [{"addresses": [{"ip": "127.0.0.9"}], "ports": [{"port": 9000}]}],
    }
    core.create_namespaced_endpoints(ns, manual)
    core.patch_namespaced_service("ext", ns, {"metadata": {"labels": {"x": "y"}}})
    subsets = core.read_namespaced_endpoints("ext", ns).subsets
    assert [a.ip for a in subsets[0].addresses] == ["127.0.0.9"]
    assert not slices_of(discovery, ns, "ext")


def test_slices_hold_at_most_the_limit_and_group_by_resolved_ports() -> None:
    svc = service("web")

    def pod(i: int, port: int) -> dict[str, Any]:
        return {
            "metadata": {
                "name": f"p{i}",
                "namespace": "ns",
                "uid": str(i),
                "labels": {"app": "web"},
            },
            "spec": {
                "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}]
            },
            "status": {
                "podIP": f"127.128.0.{i + 2}",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }

    pods = [pod(i, 8080) for i in range(5)] + [pod(10 + i, 9090) for i in range(2)]
    found = desired_slices(svc, pods, limit=2)
    sizes = sorted((s["ports"][0]["port"], len(s["endpoints"])) for s in found)
    assert sizes == [(8080, 1), (8080, 2), (8080, 2), (9090, 2)]
