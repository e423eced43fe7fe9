"""The Endpoints controller: the legacy `Endpoints` object of every Service with a selector.

Older clients and `kubectl describe svc` still read `Endpoints`. Reconcile, for one Service:

    service gone            → delete the Endpoints of that name
    no selector / External  → leave the Endpoints alone (hand-written ones are the user's)
    otherwise               → one Endpoints named after the Service, labelled like it, with
                              `subsets` grouping pods by their resolved ports: ready pods
                              under `addresses`, the others under `notReadyAddresses`;
                              terminating pods are left out (with `publishNotReadyAddresses`
                              every pod counts as ready, as in Kubernetes)

The object is written only when it differs from the cached one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.cache import Object, copy
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.network.serviceendpoints import (
    conditions,
    pod_ports,
    selected_pods,
    selector_of,
    services_of_pod,
    target_ref,
)
from kubeling.reconcile import Controller, Manager, Result

SERVICES = REGISTRY.resource("", "v1", "services")
PODS = REGISTRY.resource("", "v1", "pods")
ENDPOINTS = REGISTRY.resource("", "v1", "endpoints")


def desired_subsets(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Object]:
    groups: dict[tuple[Any, ...], Object] = {}
    for pod in selected_pods(service, pods):
        state = conditions(service, pod)
        if state["terminating"] and not (service.get("spec") or {}).get("publishNotReadyAddresses"):
            continue
        ports = pod_ports(service, pod)
        if not ports:
            continue
        subset = groups.setdefault(
            ports,
            {
                "ports": [
                    {
                        k: v
                        for k, v in (
                            ("name", name or None),
                            ("port", number),
                            ("protocol", protocol),
                            ("appProtocol", app),
                        )
                        if v is not None
                    }
                    for name, protocol, number, app in ports
                ]
            },
        )
        address: Object = {"ip": pod["status"]["podIP"], "targetRef": target_ref(pod)}
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        subset.setdefault("addresses" if state["ready"] else "notReadyAddresses", []).append(
            address
        )
    return list(groups.values())


class EndpointsReconciler:
    def __init__(
        self, client: Client, services: Informer, pods: Informer, endpoints: Informer
    ) -> None:
        self.client = client
        self.services = services
        self.pods = pods
        self.endpoints = endpoints

    async def reconcile(self, key: str) -> Result:
        service = self.services.cache.get(key)
        current = self.endpoints.cache.get(key)
        try:
            if service is None:
                if current is not None:
                    meta = current["metadata"]
                    await self.client.delete(ENDPOINTS, meta["name"], meta.get("namespace"))
                return Result()
            if selector_of(service) is None:
                return Result()
            await self._write(service, current)
        except ApiError as err:
            if err.code in (404, 409):
                return Result()
            raise
        return Result()

    async def _write(self, service: Mapping[str, Any], current: Object | None) -> None:
        meta = service["metadata"]
        labels = dict(meta.get("labels") or {})
        if (service.get("spec") or {}).get("clusterIP") == "None":
            labels["service.kubernetes.io/headless"] = ""
        subsets = desired_subsets(service, self.pods.cache.list(meta.get("namespace")))
        if current is not None:
            same = (current.get("subsets") or []) == subsets and (
                current["metadata"].get("labels") or {}
            ) == labels
            if same:
                return
            updated = copy(current)
            updated["metadata"]["labels"] = labels
            updated["subsets"] = subsets
            if not subsets:
                updated.pop("subsets")
            await self.client.update(ENDPOINTS, updated)
            return
        body: Object = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "labels": labels,
            },
        }
        if subsets:
            body["subsets"] = subsets
        await self.client.create(ENDPOINTS, body, meta.get("namespace"))


def endpoints_controller(client: Client, manager: Manager) -> Controller:
    """The controller on the manager's shared Service, Pod and Endpoints informers."""
    services = manager.informers.informer(SERVICES)
    pods = manager.informers.informer(PODS)
    endpoints = manager.informers.informer(ENDPOINTS)
    controller = Controller("endpoints", EndpointsReconciler(client, services, pods, endpoints))
    controller.watch(services)
    controller.watch(endpoints)

    controller.watch(pods, services_of_pod(services))
    manager.add(controller)
    return controller
