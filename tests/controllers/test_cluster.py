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
