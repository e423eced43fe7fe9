"""Table printers for networking, configuration and cluster objects.

Why: `kubectl get svc|ep|endpointslices|cm|secrets|ns|nodes|leases|sa` print the server's
cells; these follow Kubernetes' printers: a Service's EXTERNAL-IP is `<none>`, `<pending>`
for a LoadBalancer without ingress, or the ingress and external IPs; PORT(S) reads
`80:30080/TCP`; endpoint lists show three entries then ` + N more...`; a Node's STATUS is
`Ready`, `NotReady` or `Unknown`, with `,SchedulingDisabled` when cordoned, and its ROLES come
from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.

Contract: `TABLES` maps `(group, kind)` to its `KindTable`; see `tables_cells`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubeling.apiserver.tables_cells import (
    AGE,
    NAME,
    Column,
    KindTable,
    Obj,
    age,
    format_labels,
    get,
    items,
    mapping,
    name,
    number,
    text,
    with_more,
)

# ---------------------------------------------------------------------------------------------
# Services and endpoints

SERVICE_COLUMNS = (
    NAME,
    Column("Type", doc=("core.v1.ServiceSpec", "type")),
    Column("Cluster-IP", doc=("core.v1.ServiceSpec", "clusterIP")),
    Column("External-IP", doc=("core.v1.ServiceSpec", "externalIPs")),
    Column("Port(s)", doc=("core.v1.ServiceSpec", "ports")),
    AGE,
    Column("Selector", priority=1, doc=("core.v1.ServiceSpec", "selector")),
)


def _load_balancer_addresses(svc: Obj) -> list[str]:
    found = {
        text(ingress, "ip") or text(ingress, "hostname")
        for ingress in items(svc, "status", "loadBalancer", "ingress")
    }
    return sorted(found - {""})


def external_ip(svc: Obj) -> str:
    """The EXTERNAL-IP cell (wide form: the server never shortens it)."""
    external = [str(ip) for ip in items(svc, "spec", "externalIPs")]
    kind = text(svc, "spec", "type")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        addresses = _load_balancer_addresses(svc) + external
        return ",".join(addresses) if addresses else "<pending>"
    if kind == "ExternalName":
        return text(svc, "spec", "externalName")
    return "<unknown>"


def port_string(ports: list[Any]) -> str:
    pieces = []
    for port in ports:
        protocol = text(port, "protocol")
        node_port = number(port, "nodePort")
        if node_port > 0:
            pieces.append(f"{number(port, 'port')}:{node_port}/{protocol}")
        else:
            pieces.append(f"{number(port, 'port')}/{protocol}")
    return ",".join(pieces)


def _service_cells(svc: Obj, now: datetime) -> list[Any]:
    cluster_ips = items(svc, "spec", "clusterIPs")
    cluster_ip = str(cluster_ips[0]) if cluster_ips else text(svc, "spec", "clusterIP")
    return [
        name(svc),
        text(svc, "spec", "type"),
        cluster_ip or "<none>",
        external_ip(svc),
        port_string(items(svc, "spec", "ports")) or "<none>",
        age(svc, now),
        format_labels(mapping(svc, "spec", "selector")),
    ]


ENDPOINTS_COLUMNS = (NAME, Column("Endpoints", doc=("core.v1.Endpoints", "subsets")), AGE)


def format_endpoints(endpoints: Obj) -> str:
    subsets = items(endpoints, "subsets")
    if not subsets:
        return "<none>"
    listed: list[str] = []
    for subset in subsets:
        addresses = [text(a, "ip") for a in items(subset, "addresses")]
        ports = items(subset, "ports")
        if not ports:  # headless services may have no ports
            listed.extend(addresses)
            continue
        for port in ports:
            for ip in addresses:
                host = f"[{ip}]" if ":" in ip else ip
                listed.append(f"{host}:{number(port, 'port')}")
    return with_more(listed, len(listed))


def _endpoints_cells(obj: Obj, now: datetime) -> list[Any]:
    return [name(obj), format_endpoints(obj), age(obj, now)]


ENDPOINT_SLICE_COLUMNS = (
    NAME,
    Column("AddressType", doc=("discovery.v1.EndpointSlice", "addressType")),
    Column("Ports", doc=("discovery.v1.EndpointSlice", "ports")),
    Column("Endpoints", doc=("discovery.v1.EndpointSlice", "endpoints")),
    AGE,
)


def _slice_ports(ports: list[Any]) -> str:
    listed = []
    for port in ports:
        value = get(port, "port")
        if isinstance(value, int):
            listed.append(str(value))
        else:
            listed.append(text(port, "name") if get(port, "name") is not None else "*")
    return with_more(listed, len(listed)) or "<unset>"


def _slice_endpoints(endpoints: list[Any]) -> str:
    listed = [str(a) for endpoint in endpoints for a in items(endpoint, "addresses")]
    return with_more(listed, len(listed)) or "<unset>"


def _endpoint_slice_cells(obj: Obj, now: datetime) -> list[Any]:
    return [
        name(obj),
        text(obj, "addressType"),
        _slice_ports(items(obj, "ports")),
        _slice_endpoints(items(obj, "endpoints")),
        age(obj, now),
    ]


INGRESS_COLUMNS = (
    NAME,
    Column("Class", doc=("networking.v1.IngressSpec", "ingressClassName")),
    Column("Hosts", doc=("networking.v1.IngressRule", "host")),
    Column("Address", doc=("networking.v1.IngressStatus", "loadBalancer")),
    Column("Ports", doc=("networking.v1.IngressSpec", "tls")),
    AGE,
)


def _ingress_cells(obj: Obj, now: datetime) -> list[Any]:
    hosts = [text(rule, "host") for rule in items(obj, "spec", "rules") if get(rule, "host")]
    addresses = [
        text(i, "ip") or text(i, "hostname")
        for i in items(obj, "status", "loadBalancer", "ingress")
    ]
    return [
        name(obj),
        text(obj, "spec", "ingressClassName") or "<none>",
        with_more(hosts, len(hosts), limit=4) or "*",
        ",".join(addresses),
        "80, 443" if items(obj, "spec", "tls") else "80",
        age(obj, now),
    ]


INGRESS_CLASS_COLUMNS = (
    NAME,
    Column("Controller", doc=("networking.v1.IngressClassSpec", "controller")),
    Column("Parameters", doc=("networking.v1.IngressClassSpec", "parameters")),
    AGE,
)


def _ingress_class_cells(obj: Obj, now: datetime) -> list[Any]:
    params = mapping(obj, "spec", "parameters")
    shown = "<none>"
    if params:
        group = text(params, "apiGroup")
        shown = (
            f"{text(params, 'kind')}.{group}/{text(params, 'name')}"
            if group
            else (f"{text(params, 'kind')}/{text(params, 'name')}")
        )
    return [name(obj), text(obj, "spec", "controller"), shown, age(obj, now)]


# ---------------------------------------------------------------------------------------------
# Configuration and identity

CONFIG_MAP_COLUMNS = (NAME, Column("Data", doc=("core.v1.ConfigMap", "data")), AGE)


def _config_map_cells(obj: Obj, now: datetime) -> list[Any]:
    return [name(obj), len(mapping(obj, "data")) + len(mapping(obj, "binaryData")), age(obj, now)]


SECRET_COLUMNS = (
    NAME,
    Column("Type", doc=("core.v1.Secret", "type")),
    Column("Data", doc=("core.v1.Secret", "data")),
    AGE,
)


def _secret_cells(obj: Obj, now: datetime) -> list[Any]:
    return [name(obj), text(obj, "type"), len(mapping(obj, "data")), age(obj, now)]


SERVICE_ACCOUNT_COLUMNS = (
    NAME,
    Column("Secrets", doc=("core.v1.ServiceAccount", "secrets")),
    AGE,
)


def _service_account_cells(obj: Obj, now: datetime) -> list[Any]:
    return [name(obj), len(items(obj, "secrets")), age(obj, now)]


LEASE_COLUMNS = (
    NAME,
    Column("Holder", doc=("coordination.v1.LeaseSpec", "holderIdentity")),
    AGE,
)


def _lease_cells(obj: Obj, now: datetime) -> list[Any]:
    return [name(obj), text(obj, "spec", "holderIdentity"), age(obj, now)]


# ---------------------------------------------------------------------------------------------
# Namespaces and nodes

NAMESPACE_COLUMNS = (NAME, Column("Status", doc="The status of the namespace"), AGE)


def _namespace_cells(obj: Obj, now: datetime) -> list[Any]:
    return [name(obj), text(obj, "status", "phase"), age(obj, now)]


NODE_COLUMNS = (
    NAME,
    Column("Status", doc="The status of the node"),
    Column("Roles", doc="The roles of the node"),
    AGE,
    Column("Version", doc=("core.v1.NodeSystemInfo", "kubeletVersion")),
    Column("Internal-IP", priority=1, doc=("core.v1.NodeStatus", "addresses")),
    Column("External-IP", priority=1, doc=("core.v1.NodeStatus", "addresses")),
    Column("OS-Image", priority=1, doc=("core.v1.NodeSystemInfo", "osImage")),
    Column("Kernel-Version", priority=1, doc=("core.v1.NodeSystemInfo", "kernelVersion")),
    Column(
        "Container-Runtime", priority=1, doc=("core.v1.NodeSystemInfo", "containerRuntimeVersion")
    ),
)

_ROLE_PREFIX = "node-role.kubernetes.io/"


def node_status(node: Obj) -> str:
    status = []
    ready = [c for c in items(node, "status", "conditions") if text(c, "type") == "Ready"]
    if ready:
        status.append("Ready" if text(ready[-1], "status") == "True" else "NotReady")
    else:
        status.append("Unknown")
    if get(node, "spec", "unschedulable") is True:
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_roles(node: Obj) -> str:
    roles = set()
    for key, value in mapping(node, "metadata", "labels").items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX) :]:
            roles.add(key[len(_ROLE_PREFIX) :])
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, kind: str) -> str:
    for address in items(node, "status", "addresses"):
        if text(address, "type") == kind:
            return text(address, "address")
    return "<none>"


def _node_cells(node: Obj, now: datetime) -> list[Any]:
    info = mapping(node, "status", "nodeInfo")
    return [
        name(node), node_status(node), node_roles(node), age(node, now),
        text(info, "kubeletVersion"),
        _node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
        text(info, "osImage") or "<unknown>", text(info, "kernelVersion") or "<unknown>",
        text(info, "containerRuntimeVersion") or "<unknown>",
    ]  # fmt: skip


TABLES: dict[tuple[str, str], KindTable] = {
    ("", "Service"): KindTable(SERVICE_COLUMNS, _service_cells),
    ("", "Endpoints"): KindTable(ENDPOINTS_COLUMNS, _endpoints_cells),
    ("discovery.k8s.io", "EndpointSlice"): KindTable(ENDPOINT_SLICE_COLUMNS, _endpoint_slice_cells),
    ("networking.k8s.io", "Ingress"): KindTable(INGRESS_COLUMNS, _ingress_cells),
    ("networking.k8s.io", "IngressClass"): KindTable(INGRESS_CLASS_COLUMNS, _ingress_class_cells),
    ("", "ConfigMap"): KindTable(CONFIG_MAP_COLUMNS, _config_map_cells),
    ("", "Secret"): KindTable(SECRET_COLUMNS, _secret_cells),
    ("", "ServiceAccount"): KindTable(SERVICE_ACCOUNT_COLUMNS, _service_account_cells),
    ("coordination.k8s.io", "Lease"): KindTable(LEASE_COLUMNS, _lease_cells),
    ("", "Namespace"): KindTable(NAMESPACE_COLUMNS, _namespace_cells),
    ("", "Node"): KindTable(NODE_COLUMNS, _node_cells),
}
