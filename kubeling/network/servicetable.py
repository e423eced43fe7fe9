"""What the service proxy should serve, derived from Services and EndpointSlices (pure).

`service_table(services, slices, node)` answers two questions for one node's proxy:

* **Listeners**: every address:port/protocol to listen on, and which Service port it serves:
  the ClusterIP with each `port` (not for headless or ExternalName Services), the node address
  with each `nodePort` (NodePort and LoadBalancer Services), and each
  `status.loadBalancer.ingress[].ip` with each `port` (LoadBalancer Services).
* **Backends** of each Service port: the endpoints of its EndpointSlices whose slice port has
  the Service port's name, as `Backend(ip, port, node)`:
    - `ready` endpoints when there are any;
    - otherwise the `serving` and `terminating` ones (KEP-1669: a Service whose pods are all
      shutting down keeps answering until they stop);
    - `internalTrafficPolicy: Local` keeps only this node's endpoints for ClusterIP traffic,
      and `externalTrafficPolicy: Local` for NodePort and load-balancer traffic.

A listener's `external` flag tells which policy applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Backend:
    ip: str
    port: int
    node: str = ""


@dataclass(frozen=True, slots=True)
class ListenKey:
    ip: str
    port: int
    protocol: str  # TCP | UDP (SCTP is not served)


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of one Service, the unit that backends are chosen for."""

    namespace: str
    service: str
    port_name: str
    protocol: str


@dataclass
class Route:
    """What a listener forwards to."""

    target: ServicePort
    external: bool
    backends: tuple[Backend, ...] = ()
    affinity_seconds: int | None = None  # sessionAffinity: ClientIP timeout
    local: bool = False  # a `Local` traffic policy kept only this node's endpoints


@dataclass
class ServiceTable:
    routes: dict[ListenKey, Route] = field(default_factory=dict)


def _slice_backends(
    slices: Iterable[Mapping[str, Any]], port_name: str, protocol: str
) -> tuple[list[Backend], list[Backend]]:
    ready: list[Backend] = []
    fallback: list[Backend] = []
    for slice_ in slices:
        number = None
        for p in slice_.get("ports") or []:
            if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol:
                number = p.get("port")
        if number is None:
            continue
        for endpoint in slice_.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            node = endpoint.get("nodeName") or ""
            for address in endpoint.get("addresses") or []:
                backend = Backend(str(address), int(number), node)
                # An unset `ready` means ready (EndpointConditions' API docs).
                if conditions.get("ready", True) and not conditions.get("terminating"):
                    ready.append(backend)
                elif conditions.get("serving") and conditions.get("terminating"):
                    fallback.append(backend)
    return ready, fallback


def _choose(
    ready: list[Backend], fallback: list[Backend], local_only: str | None
) -> tuple[Backend, ...]:
    def local(items: list[Backend]) -> list[Backend]:
        return [b for b in items if local_only is None or b.node == local_only]

    chosen = local(ready) or local(fallback)
    return tuple(sorted(set(chosen), key=lambda b: (b.ip, b.port)))


def port_backends(
    slices: Iterable[Mapping[str, Any]], port_name: str, protocol: str = "TCP"
) -> tuple[Backend, ...]:
    """The backends of one Service port from that Service's slices: the ready endpoints, or
    the serving-and-terminating ones when none is ready (for the Ingress proxy, which routes
    to Services by port)."""
    ready, fallback = _slice_backends(slices, port_name, protocol)
    return _choose(ready, fallback, None)


def service_table(
    services: Iterable[Mapping[str, Any]],
    slices: Iterable[Mapping[str, Any]],
    node: str,
    node_ip: str,
) -> ServiceTable:
    by_service: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for slice_ in slices:
        meta = slice_.get("metadata") or {}
        name = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if name:
            by_service.setdefault((str(meta.get("namespace")), name), []).append(slice_)
    table = ServiceTable()
    for service in services:
        meta = service.get("metadata") or {}
        spec = service.get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        if kind == "ExternalName":
            continue
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        own_slices = by_service.get((namespace, name), [])
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP")) or {}
            affinity = int(config.get("timeoutSeconds") or 10800)
        internal_local = spec.get("internalTrafficPolicy") == "Local"
        external_local = spec.get("externalTrafficPolicy") == "Local"
        cluster_ip = spec.get("clusterIP")
        lb_ips = [
            i.get("ip")
            for i in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if i.get("ip")
        ]
        for port in spec.get("ports") or []:
            protocol = port.get("protocol") or "TCP"
            if protocol not in ("TCP", "UDP"):
                continue
            target = ServicePort(namespace, name, port.get("name") or "", protocol)
            ready, fallback = _slice_backends(own_slices, target.port_name, protocol)
            internal = _choose(ready, fallback, node if internal_local else None)
            external = _choose(ready, fallback, node if external_local else None)
            if cluster_ip and cluster_ip != "None":
                table.routes[ListenKey(cluster_ip, int(port["port"]), protocol)] = Route(
                    target, False, internal, affinity, internal_local
                )
            if kind in ("NodePort", "LoadBalancer") and port.get("nodePort"):
                table.routes[ListenKey(node_ip, int(port["nodePort"]), protocol)] = Route(
                    target, True, external, affinity, external_local
                )
            if kind == "LoadBalancer":
                for ip in lb_ips:
                    table.routes[ListenKey(str(ip), int(port["port"]), protocol)] = Route(
                        target, True, external, affinity, external_local
                    )
    return table
