"""Pod garbage collection: pods bound to a Node that no longer exists are deleted.

Such pods have nobody left to finish them: the agent that would run (or stop) them is gone
with its Node. Kubernetes' pod GC force-deletes them (grace period 0) so their ReplicaSets
create replacements elsewhere. Contract: a pod is deleted only when its Node is absent from
the node cache *and* a fresh GET of the Node from the API server says 404, so a cache that
lags behind a node registration never costs a pod; the delete carries the pod's uid as a
precondition, so a newer pod of the same name is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.cache import by_node_name
from kubeling.client.informer import Informer
from kubeling.client.rest import Client, DeleteOptions
from kubeling.reconcile import Controller, Manager, Result

log = logging.getLogger(__name__)

PODS = REGISTRY.by_path("", "v1", "pods")
NODES = REGISTRY.by_path("", "v1", "nodes")
NODE_INDEX = "spec.nodeName"


class PodGCReconciler:
    def __init__(self, client: Client, pods: Informer, nodes: Informer) -> None:
        self.client = client
        self.pods = pods
        self.nodes = nodes

    async def reconcile(self, key: str) -> Result:
        pod = self.pods.cache.get(key)
        if pod is None:
            return Result()
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or self.nodes.cache.get(node) is not None:
            return Result()
        assert NODES is not None and PODS is not None
        try:
            await self.client.get(NODES, node, None)
            return Result()
        except ApiError as err:
            if err.code != 404:
                raise
        meta = pod["metadata"]
        try:
            await self.client.delete(
                PODS,
                meta["name"],
                meta.get("namespace"),
                DeleteOptions(grace_period_seconds=0, precondition_uid=meta.get("uid")),
            )
        except ApiError as err:
            if err.code not in (404, 409):
                raise
            return Result()
        log.info("deleted pod %s: its node %s no longer exists", key, node)
        return Result()


def podgc_controller(client: Client, manager: Manager) -> Controller:
    """The controller on the manager's shared pod and node informers."""
    assert PODS is not None and NODES is not None
    pods = manager.informers.informer(PODS)
    nodes = manager.informers.informer(NODES)
    pods.cache.add_indexer(NODE_INDEX, by_node_name)
    controller = Controller("pod-garbage-collector", PodGCReconciler(client, pods, nodes))
    controller.watch(pods)

    def pods_of_node(node: Mapping[str, Any]) -> list[str]:
        name = (node.get("metadata") or {}).get("name", "")
        return pods.cache.index_keys(NODE_INDEX, name)

    controller.watch(nodes, pods_of_node)
    manager.add(controller)
    return controller
