"""Services whose endpoint is a part of kubeling itself: `default/kubernetes` (the API server)
and `kube-system/kube-dns` (the cluster DNS).

    await publish_kubernetes_service(client, api_port=6443)

Kubernetes' API server keeps its own Service, `default/kubernetes`: the service range's first
address, port 443 (`https`) to the API server's port, so that pods reach the API at
`https://kubernetes.default.svc` (and `KUBERNETES_SERVICE_HOST`). CoreDNS is published as
`kube-dns`. Both are selector-less: their endpoints are written here, as the legacy Endpoints
object and an EndpointSlice labelled managed-by kubeling, which every service proxy then serves
like any other Service. Publishing is idempotent and runs at every start: what exists is
brought up to date (the ports may have changed), its ClusterIP kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.rest import Client
from kubeling.util.netstat import bound_addresses

SERVICES = REGISTRY.resource("", "v1", "services")
ENDPOINTS = REGISTRY.resource("", "v1", "endpoints")
SLICES = REGISTRY.resource("discovery.k8s.io", "v1", "endpointslices")
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "local-service.kubeling.dev"
KUBERNETES_SERVICE_IP = "127.96.0.1"  # the first address of DESIGN.md § 6's service range


async def publish(
    client: Client,
    namespace: str,
    name: str,
    *,
    cluster_ip: str,
    ports: list[Mapping[str, Any]],
    host: str,
    labels: Mapping[str, str],
    avoid_busy: bool = False,
) -> None:
    """A selector-less Service of `ports` (`name`, `port`, `targetPort`, `protocol`) whose one
    endpoint is `host`. When `cluster_ip` is taken by another Service, or (with `avoid_busy`)
    another cluster on this machine serves on it, any address will do."""
    spec_ports = [dict(p) for p in ports]
    spec: dict[str, Any] = {"ports": spec_ports}
    if not (avoid_busy and cluster_ip in bound_addresses()):
        spec["clusterIP"] = cluster_ip
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }
    try:
        await client.create(SERVICES, service, namespace)
    except ApiError as err:
        if err.reason == "AlreadyExists":
            current = await client.get(SERVICES, name, namespace)
            current["spec"]["ports"] = spec_ports
            current["metadata"]["labels"] = {**(current["metadata"].get("labels") or {}), **labels}
            await client.update(SERVICES, current, namespace)
        elif err.code == 422 and "clusterIP" in spec:  # the conventional address is taken
            spec.pop("clusterIP")
            await client.create(SERVICES, service, namespace)
        else:
            raise
    endpoint_ports = [
        {"name": p["name"], "port": p["targetPort"], "protocol": p.get("protocol", "TCP")}
        for p in ports
    ]
    await _put(
        client,
        ENDPOINTS,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "subsets": [{"addresses": [{"ip": host}], "ports": endpoint_ports}],
        },
        ("subsets",),
    )
    await _put(
        client,
        SLICES,
        namespace,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    **labels,
                    "kubernetes.io/service-name": name,
                    MANAGED_BY_LABEL: MANAGED_BY,
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            "ports": endpoint_ports,
        },
        ("endpoints", "ports"),
    )


async def _put(
    client: Client, info: Any, namespace: str, body: dict[str, Any], fields: tuple[str, ...]
) -> None:
    try:
        await client.create(info, body, namespace)
    except ApiError as err:
        if err.reason != "AlreadyExists":
            raise
        current = await client.get(info, body["metadata"]["name"], namespace)
        for key in fields:
            current[key] = body[key]
        await client.update(info, current, namespace)


async def publish_kubernetes_service(client: Client, api_host: str, api_port: int) -> None:
    await publish(
        client,
        "default",
        "kubernetes",
        cluster_ip=KUBERNETES_SERVICE_IP,
        ports=[{"name": "https", "port": 443, "targetPort": api_port, "protocol": "TCP"}],
        host=api_host,
        labels={"component": "apiserver", "provider": "kubernetes"},
    )
