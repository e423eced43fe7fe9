"""LoadBalancer Services get addresses from the local pool, and give them back."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from kubeling.testing import TestCluster, wait_for


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(controllers=True) as c:
        yield c


def lb(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"port": 80}],
            **spec,
        },
    }


def address(core: client.CoreV1Api, ns: str, name: str) -> str | None:
    ingress = core.read_namespaced_service(name, ns).status.load_balancer.ingress or []
    return ingress[0].ip if ingress else None


def test_load_balancers_get_distinct_pool_addresses_and_release_them(
    core: client.CoreV1Api,
) -> None:
    ns = f"lb-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_service(ns, lb("a"))
    core.create_namespaced_service(ns, lb("b"))
    first = wait_for(lambda: address(core, ns, "a"), message="an address for a")
    second = wait_for(lambda: address(core, ns, "b"), message="an address for b")
    assert first != second
    assert first.startswith("127.80.") and second.startswith("127.80.")

    core.patch_namespaced_service("a", ns, {"spec": {"type": "ClusterIP"}})
    wait_for(lambda: address(core, ns, "a") is None, message="a's address released")


def test_a_requested_pool_address_is_honoured(cluster: TestCluster, core: client.CoreV1Api) -> None:
    ns = f"lb-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_service(ns, lb("c", loadBalancerIP="127.80.9.9"))
    assert wait_for(lambda: address(core, ns, "c"), message="c's address") == "127.80.9.9"
    listing = cluster.kubectl("get", "svc", "c", "-n", ns).stdout
    assert "127.80.9.9" in listing


def test_an_address_another_cluster_serves_on_is_passed_over(core: client.CoreV1Api) -> None:
    """Another cluster's load balancers on this machine (here: listening sockets on the first
    pool addresses) are not handed out again."""
    squatters = []
    try:
        for last in range(1, 21):
            squatter = socket.socket()
            squatter.bind((f"127.80.0.{last}", 0))
            squatter.listen()
            squatters.append(squatter)
        ns = f"lb-{uuid.uuid4().hex[:8]}"
        core.create_namespace({"metadata": {"name": ns}})
        core.create_namespaced_service(ns, lb("d"))
        got = wait_for(lambda: address(core, ns, "d"), message="an address for d")
        assert got.startswith("127.80.")
        assert got not in {s.getsockname()[0] for s in squatters}
    finally:
        for squatter in squatters:
            squatter.close()
