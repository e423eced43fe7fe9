"""The EndpointSlice controller: a Service's selected pods, as EndpointSlices.

Slices are created with generated names, so a create the cache has not shown yet could be
repeated by the next pass: creations are counted as expectations (as the ReplicaSet
controller counts pods) and the Service waits until the informer has seen them.

Reconcile, for one Service key:

    desired   the selected pods (serviceendpoints.py), grouped by their resolved ports
              (pods whose named targetPort resolves differently get different slices),
              each group cut into slices of at most `max_per_slice` (100) endpoints
    existing  the slices labelled `kubernetes.io/service-name=<svc>` and managed by this
              controller (`endpointslice.kubernetes.io/managed-by`)
    act       update existing slices in place where one exists for the same ports, create
              the missing ones (generateName `<svc>-`, owned by the Service so the garbage
              collector removes them with it), delete the surplus; a slice is written only
              when its endpoints, ports or labels differ

Each endpoint carries `addresses` (the pod IP), `conditions` (ready, serving, terminating),
`nodeName` and a `targetRef` to its pod. Services without a selector get no slices from this
controller. Writes are compare-and-swap on the cached slice, so a stale cache gives a 409 and
the watch event that made it stale queues the Service again.
"""

from __future__ import annotations

import logging
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
from kubeling.reconcile import Controller, Expectations, Manager, Result

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
MAX_PER_SLICE = 100
SERVICE_INDEX = "service-name"


SERVICES = REGISTRY.resource("", "v1", "services")
PODS = REGISTRY.resource("", "v1", "pods")
SLICES = REGISTRY.resource("discovery.k8s.io", "v1", "endpointslices")


def _by_service(obj: Mapping[str, Any]) -> list[str]:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or SERVICE_NAME_LABEL not in labels:
        return []
    return [f"{meta.get('namespace')}/{labels[SERVICE_NAME_LABEL]}"]


def desired_slices(
    service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], limit: int
) -> list[Object]:
    """The slices' bodies (without names), in a stable order."""
    groups: dict[tuple[Any, ...], list[Object]] = {}
    for pod in selected_pods(service, pods):
        ports = pod_ports(service, pod)
        endpoint: Object = {
            "addresses": [pod["status"]["podIP"]],
            "conditions": conditions(service, pod),
            "targetRef": target_ref(pod),
        }
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            endpoint["nodeName"] = node
        groups.setdefault(ports, []).append(endpoint)
    if not groups and (service.get("spec") or {}).get("ports") is not None:
        groups[()] = []  # Kubernetes keeps one empty slice for a Service with no endpoints
    out = []
    for ports, endpoints in groups.items():
        for start in range(0, max(len(endpoints), 1), limit):
            out.append(
                {
                    "ports": [
                        {
                            k: v
                            for k, v in (
                                ("name", name),
                                ("protocol", protocol),
                                ("port", number),
                                ("appProtocol", app),
                            )
                            if v is not None
                        }
                        for name, protocol, number, app in ports
                    ],
                    "endpoints": endpoints[start : start + limit],
                }
            )
    return out


class EndpointSliceReconciler:
    def __init__(
        self,
        client: Client,
        services: Informer,
        pods: Informer,
        slices: Informer,
        expectations: Expectations,
        *,
        max_per_slice: int = MAX_PER_SLICE,
    ) -> None:
        self.client = client
        self.expectations = expectations
        self.services = services
        self.pods = pods
        self.slices = slices
        self.max_per_slice = max_per_slice

    async def reconcile(self, key: str) -> Result:
        if not self.expectations.satisfied(key):
            # Slices created by the last pass are not in the cache yet: acting now would
            # create them twice. Their arrival queues the Service again.
            return Result(requeue_after=1.0)
        service = self.services.cache.get(key)
        existing = sorted(
            self.slices.cache.by_index(SERVICE_INDEX, key), key=lambda s: s["metadata"]["name"]
        )
        if service is None or selector_of(service) is None:
            # Gone (the garbage collector removes owned slices) or selector-less: ours go.
            for stale in existing:
                await self._delete(stale)
            return Result()
        namespace = service["metadata"].get("namespace")
        wanted = desired_slices(service, self.pods.cache.list(namespace), self.max_per_slice)
        labels = self._labels(service)
        unused = list(existing)
        try:
            for body in wanted:
                match = next(
                    (s for s in unused if (s.get("ports") or []) == body["ports"]), None
                ) or (unused[0] if unused else None)
                if match is not None:
                    unused.remove(match)
                    await self._update(match, body, labels)
                else:
                    self.expectations.expect_creations(key, 1)
                    try:
                        await self._create(service, body, labels)
                    except BaseException:
                        self.expectations.creation_observed(key)
                        raise
            for stale in unused:
                await self._delete(stale)
        except ApiError as err:
            if err.code in (404, 409):
                return Result()  # a newer event queues this Service again
            raise
        return Result()

    def _labels(self, service: Mapping[str, Any]) -> dict[str, str]:
        labels = dict(service["metadata"].get("labels") or {})
        labels[SERVICE_NAME_LABEL] = service["metadata"]["name"]
        labels[MANAGED_BY_LABEL] = MANAGED_BY
        if (service.get("spec") or {}).get("clusterIP") == "None":
            labels["service.kubernetes.io/headless"] = ""
        return labels

    async def _create(
        self, service: Mapping[str, Any], body: Object, labels: dict[str, str]
    ) -> None:
        meta = service["metadata"]
        slice_: Object = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta.get("namespace"),
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": "IPv4",
            **body,
        }
        await self.client.create(SLICES, slice_, meta.get("namespace"))

    async def _update(self, current: Object, body: Object, labels: dict[str, str]) -> None:
        same = (
            (current.get("endpoints") or []) == body["endpoints"]
            and (current.get("ports") or []) == body["ports"]
            and (current["metadata"].get("labels") or {}) == labels
        )
        if same:
            return
        updated = copy(current)
        updated["metadata"]["labels"] = labels
        updated["endpoints"] = body["endpoints"]
        updated["ports"] = body["ports"]
        await self.client.update(SLICES, updated)

    async def _delete(self, stale: Object) -> None:
        meta = stale["metadata"]
        try:
            await self.client.delete(SLICES, meta["name"], meta.get("namespace"))
        except ApiError as err:
            if err.code != 404:
                raise


def endpointslice_controller(client: Client, manager: Manager) -> Controller:
    """The controller on the manager's shared Service, Pod and EndpointSlice informers."""
    services = manager.informers.informer(SERVICES)
    pods = manager.informers.informer(PODS)
    slices = manager.informers.informer(SLICES)
    if not slices.cache.has_index(SERVICE_INDEX):
        slices.cache.add_indexer(SERVICE_INDEX, _by_service)
    expectations = Expectations(manager.clock)

    def slice_added(obj: Mapping[str, Any]) -> None:
        for key in _by_service(obj):
            expectations.creation_observed(key)

    slices.add_handlers(slice_added)
    controller = Controller(
        "endpointslice", EndpointSliceReconciler(client, services, pods, slices, expectations)
    )
    controller.watch(services)
    controller.watch(slices, _by_service)

    controller.watch(pods, services_of_pod(services))
    manager.add(controller)
    return controller
