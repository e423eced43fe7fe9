"""Pods, ReplicaSets and namespaces driven with the real kubectl against a cluster with three
simulated nodes: what a controller owns comes back, what nobody owns stays gone, and a deleted
namespace takes everything in it along."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubectl_support import Kubectl, configmap, pod
from workload_support import is_ready, live_pods, replicaset

from kubeling.testing.cluster import TestCluster, pinned_kubectl, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(fake_nodes=3) as running:
        yield running


@pytest.fixture
def kubectl(cluster: TestCluster, ns: str) -> Iterator[Kubectl]:
    runner = Kubectl(cluster, pinned_kubectl(), ns)
    try:
        yield runner
    finally:
        runner.kill_started()


def ready_pod_names(kubectl: Kubectl, app: str, count: int) -> set[str]:
    """Wait for exactly `count` live, ready Pods of `app`; their names."""

    def ready() -> set[str]:
        pods = live_pods(kubectl, app)
        names = {p["metadata"]["name"] for p in pods if is_ready(p)}
        return names if len(pods) == count and len(names) == count else set()

    return wait_for(ready, timeout=30, interval=0.2, message=f"{count} ready pods of {app}")


def test_deleting_a_replicaset_pod_gets_it_replaced_under_a_new_name(kubectl: Kubectl) -> None:
    kubectl.apply_manifest(replicaset("web", replicas=2))
    before = ready_pod_names(kubectl, "web", 2)
    victim = sorted(before)[0]

    kubectl("delete", "pod", victim)

    after = ready_pod_names(kubectl, "web", 2)
    assert victim not in after
    assert len(after - before) == 1, (before, after)


def test_deleting_a_bare_pod_removes_it_for_good(kubectl: Kubectl) -> None:
    kubectl.create_manifest(pod("lonely"))
    wait_for(lambda: is_ready(kubectl.get_json("pod", "lonely")), timeout=30, message="ready")

    kubectl("delete", "pod", "lonely")  # waits until the pod is gone

    assert kubectl.absent("pod", "lonely")
    assert kubectl.get_json("pods")["items"] == []


def test_deleting_a_namespace_removes_everything_in_it(kubectl: Kubectl, ns: str) -> None:
    kubectl.apply_manifest(replicaset("web", replicas=2))
    kubectl.create_manifest(pod("lonely"))
    kubectl.create_manifest(configmap("settings", mode="fast"))
    ready_pod_names(kubectl, "web", 2)

    kubectl("delete", "namespace", ns, "--timeout=60s")  # waits until the namespace is gone

    assert kubectl.absent("namespace", ns)
    for kind in ("pods", "replicasets", "configmaps"):
        assert kubectl.get_json(kind)["items"] == [], kind
