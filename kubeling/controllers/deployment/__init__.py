"""The Deployment controller: rolling updates, Recreate, proportional scaling and rollback.

One module per concern, as in Kubernetes' `pkg/controller/deployment`:

    controller.py   reconcile: claim ReplicaSets, pick the path, shared actions, status writes
    rolling.py      the RollingUpdate strategy (maxSurge / maxUnavailable arithmetic)
    recreate.py     the Recreate strategy
    scaling.py      resizing mid-rollout and while paused (proportional scaling)
    progress.py     status counts, Available / Progressing conditions, the progress deadline
    replicasets.py  pure helpers: template hash, new vs old, fenceposts, annotations

`deployment_controller(client, manager)` wires it to the manager's shared informers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubeling.api.kinds import REGISTRY
from kubeling.client.cache import by_controller_uid, controller_ref
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.controllers.deployment.controller import (
    CONTROLLER_INDEX,
    KIND,
    DeploymentReconciler,
)
from kubeling.reconcile import Controller, Manager, owner_or_adopters

COMPONENT = "deployment-controller"

__all__ = ["COMPONENT", "DeploymentReconciler", "deployment_controller"]


def _pod_mapper(replicasets: Informer) -> Callable[[Mapping[str, Any]], list[str]]:
    """A deleted pod → the Deployment owning its ReplicaSet: Recreate waits for the last one."""

    def mapper(pod: Mapping[str, Any]) -> list[str]:
        ref = controller_ref(pod)
        namespace = (pod.get("metadata") or {}).get("namespace")
        if ref is None or ref.get("kind") != "ReplicaSet":
            return []
        rs = replicasets.cache.get_by_name(namespace, str(ref.get("name")))
        owner = controller_ref(rs) if rs is not None else None
        if owner is None or owner.get("kind") != KIND:
            return []
        return [f"{namespace}/{owner.get('name')}"]

    return mapper


def deployment_controller(
    client: Client, manager: Manager, recorder: EventRecorder | None = None
) -> Controller:
    """The controller on the manager's shared Deployment, ReplicaSet and Pod informers.

    Events go through `recorder` (a new one for `deployment-controller` when None; the
    caller that passes one closes it).
    """
    deployments = manager.informers.informer(REGISTRY.resource("apps", "v1", "deployments"))
    replicasets = manager.informers.informer(REGISTRY.resource("apps", "v1", "replicasets"))
    pods = manager.informers.informer(REGISTRY.resource("", "v1", "pods"))
    if not pods.cache.has_index(CONTROLLER_INDEX):
        pods.cache.add_indexer(CONTROLLER_INDEX, by_controller_uid)
    reconciler = DeploymentReconciler(
        client,
        deployments,
        replicasets,
        pods,
        recorder if recorder is not None else EventRecorder(client, COMPONENT),
    )
    controller = Controller("deployment", reconciler)
    controller.watch(deployments)
    controller.watch(replicasets, owner_or_adopters(KIND, deployments))
    controller.watch(pods, _pod_mapper(replicasets), events=("delete",))
    manager.add(controller)
    return controller
