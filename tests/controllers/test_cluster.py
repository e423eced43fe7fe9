"""The composed control plane (`kubeling up`): its scheduler binds what kubectl creates."""

from __future__ import annotations

import pytest

from kubeling.testing import TestCluster, wait_for

pytestmark = pytest.mark.e2e

NODE = """
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {kubernetes.io/hostname: n1}}
"""


def test_a_pod_created_with_kubectl_is_bound_to_the_ready_node() -> None:
    with TestCluster(controllers=True) as cluster:
        cluster.kubectl("apply", "-f", "-", input=NODE)
        status = (
            '{"status":{"capacity":{"cpu":"2","memory":"4Gi","pods":"110"},'
            '"allocatable":{"cpu":"2","memory":"4Gi","pods":"110"},'
            '"conditions":[{"type":"Ready","status":"True"}]}}'
        )
        cluster.kubectl("patch", "node", "n1", "--subresource=status", "--type=merge", "-p", status)
        cluster.kubectl("run", "p1", "--image=busybox", "--command", "--", "sleep", "5")

        def node_of_p1() -> str:
            result = cluster.kubectl("get", "pod", "p1", "-o", "jsonpath={.spec.nodeName}")
            return result.stdout.strip()

        assert wait_for(node_of_p1, timeout=30, message="p1 to be scheduled") == "n1"
        events = cluster.kubectl("get", "events", "--field-selector", "reason=Scheduled")
        assert "Successfully assigned default/p1 to n1" in events.stdout


REPLICASET = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"""


def test_a_replicaset_applied_with_kubectl_keeps_its_pods_and_scales() -> None:
    with TestCluster(controllers=True) as cluster:
        cluster.kubectl("apply", "-f", "-", input=REPLICASET)

        def pods() -> list[str]:
            out = cluster.kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout
            return sorted(out.split())

        first = wait_for(lambda: len(pods()) == 3 and pods(), timeout=30, message="3 pods")
        cluster.kubectl("delete", first[0], "--wait=false")
        wait_for(
            lambda: len(pods()) == 3 and first[0] not in pods(),
            timeout=30,
            message="the deleted pod to be replaced",
        )
        cluster.kubectl("scale", "rs", "web", "--replicas=1")
        wait_for(lambda: len(pods()) == 1, timeout=30, message="scale down to 1 pod")
        status = cluster.kubectl("get", "rs", "web", "-o", "jsonpath={.status.replicas}")
        wait_for(
            lambda: (
                cluster.kubectl("get", "rs", "web", "-o", "jsonpath={.status.replicas}").stdout
                == "1"
            ),
            timeout=30,
            message="status.replicas to follow",
        )
        assert status.returncode == 0


def test_on_simulated_nodes_a_replicaset_becomes_ready() -> None:
    with TestCluster(fake_nodes=2) as cluster:
        nodes = cluster.kubectl("get", "nodes", "-o", "name").stdout.split()
        assert len(nodes) == 2
        cluster.kubectl("apply", "-f", "-", input=REPLICASET)

        def ready_replicas() -> str:
            jsonpath = "jsonpath={.status.readyReplicas}"
            return cluster.kubectl("get", "rs", "web", "-o", jsonpath).stdout

        wait_for(lambda: ready_replicas() == "3", timeout=60, message="3 ready replicas")
        wide = cluster.kubectl("get", "pods", "-o", "wide").stdout
        assert wide.count("Running") == 3
        assert "fake-node-" in wide


GHOST_POD = """
apiVersion: v1
kind: Pod
metadata: {name: orphan}
spec:
  nodeName: %s
  containers: [{name: c, image: busybox}]
"""


def test_a_pod_bound_to_a_node_that_does_not_exist_is_collected() -> None:
    with TestCluster(fake_nodes=1) as cluster:
        cluster.kubectl("apply", "-f", "-", input=GHOST_POD % "fake-node-0")
        cluster.kubectl("apply", "-f", "-", input=(GHOST_POD % "ghost").replace("orphan", "lost"))

        def lost_is_gone() -> bool:
            result = cluster.kubectl("get", "pod", "lost", "--ignore-not-found", "-o", "name")
            return result.stdout.strip() == ""

        wait_for(lost_is_gone, timeout=30, message="the pod on the missing node to be deleted")
        kept = cluster.kubectl("get", "pod", "orphan", "-o", "jsonpath={.spec.nodeName}")
        assert kept.stdout == "fake-node-0"


def test_deleting_a_node_collects_the_pods_bound_to_it() -> None:
    with TestCluster(controllers=True) as cluster:
        cluster.kubectl("apply", "-f", "-", input=NODE)
        cluster.kubectl("apply", "-f", "-", input=GHOST_POD % "n1")
        assert cluster.kubectl("get", "pod", "orphan", "-o", "name").stdout.strip()

        cluster.kubectl("delete", "node", "n1")

        def orphan_is_gone() -> bool:
            result = cluster.kubectl("get", "pod", "orphan", "--ignore-not-found", "-o", "name")
            return result.stdout.strip() == ""

        wait_for(orphan_is_gone, timeout=30, message="the pod of the deleted node to go")


def test_kubectl_delete_replicaset_cascades_in_the_foreground_and_orphans_on_request() -> None:
    with TestCluster(controllers=True) as cluster:
        cluster.kubectl("apply", "-f", "-", input=REPLICASET)

        def pod_names() -> list[str]:
            out = cluster.kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout
            return out.split()

        wait_for(lambda: len(pod_names()) == 3, timeout=30, message="3 pods")
        cluster.kubectl("delete", "rs", "web", "--cascade=orphan", "--timeout=60s", timeout=90)
        orphans = pod_names()
        assert len(orphans) == 3
        refs = cluster.kubectl(
            "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.ownerReferences}"
        ).stdout
        assert refs.replace("[]", "").strip() == ""

        cluster.kubectl("apply", "-f", "-", input=REPLICASET)
        wait_for(
            lambda: (
                "ReplicaSet"
                in cluster.kubectl(
                    "get",
                    "pods",
                    "-l",
                    "app=web",
                    "-o",
                    "jsonpath={.items[*].metadata.ownerReferences[*].kind}",
                ).stdout
            ),
            timeout=30,
            message="the new ReplicaSet to adopt the orphans",
        )
        cluster.kubectl("delete", "rs", "web", "--cascade=foreground", "--timeout=60s", timeout=90)
        assert pod_names() == []
