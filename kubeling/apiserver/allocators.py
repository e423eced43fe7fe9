"""ClusterIP and NodePort allocation for Services.

The allocation state is derived, not stored twice: the Services themselves are the record of
which addresses and ports are taken (they are persisted with every write), and the allocator
is rebuilt from them when the server starts. Within the server every allocation happens on the
event loop between awaits, so two concurrent creates can never receive the same address.
Ranges are those of DESIGN.md § 6: ClusterIPs in 127.96.0.0/12 (the first address is kept for
the `kubernetes` Service, as Kubernetes does), NodePorts in 30000-32767.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from typing import Any

from kubeling.api.errors import Cause, invalid_value

SERVICE_CIDR = "127.96.0.0/12"
NODE_PORT_RANGE = (30000, 32767)
KUBERNETES_SERVICE = "default/kubernetes"  # the API server's own Service


class AllocationError(Exception):
    def __init__(self, cause: Cause) -> None:
        super().__init__(cause.message)
        self.cause = cause


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


class ServiceAllocator:
    def __init__(
        self, cidr: str = SERVICE_CIDR, node_ports: tuple[int, int] = NODE_PORT_RANGE
    ) -> None:
        self.network = ipaddress.ip_network(cidr)
        self.node_ports = node_ports
        self.used_ips: set[str] = {str(self.network.network_address + 1)}
        self.used_ports: set[int] = set()
        self._random = random.Random()

    @property
    def kubernetes_service_ip(self) -> str:
        return str(self.network.network_address + 1)

    def rebuild(self, services: Iterable[dict[str, Any]]) -> None:
        self.used_ips = {self.kubernetes_service_ip}
        self.used_ports = set()
        for svc in services:
            spec = svc.get("spec") or {}
            self.used_ips.update(_cluster_ips(spec))
            self.used_ports.update(_node_ports(spec))

    # -- whole-service operations: all or nothing -------------------------------------------

    def allocate(
        self, spec: dict[str, Any], old: dict[str, Any] | None = None, owner: str = ""
    ) -> None:
        """Fill in `clusterIP(s)` and `nodePort`s of `spec` in place, reserving them.

        `old` is the stored spec on update: what it already holds stays reserved to it.
        `owner` (`namespace/name`) may ask for the range's first address only when it is
        `default/kubernetes`. Raises AllocationError, leaving nothing reserved, when a request
        cannot be met.
        """
        old = old or {}
        taken_ips: list[str] = []
        taken_ports: list[int] = []
        try:
            if spec.get("type") != "ExternalName":
                self._allocate_ip(spec, old, taken_ips, owner == KUBERNETES_SERVICE)
            keep = set(_node_ports(old))
            for index, port in enumerate(spec.get("ports") or []):
                wanted = port.get("nodePort")
                if wanted:
                    if wanted not in keep:
                        self._reserve_port(wanted, f"spec.ports[{index}].nodePort", taken_ports)
                elif _needs_node_ports(spec):
                    port["nodePort"] = self._pick_port(taken_ports)
        except AllocationError:
            self.used_ips.difference_update(taken_ips)
            self.used_ports.difference_update(taken_ports)
            raise
        # Ports the old spec held and the new one dropped go back to the pool.
        self.used_ports.difference_update(keep - set(_node_ports(spec)))

    def release(self, spec: dict[str, Any]) -> None:
        for ip in _cluster_ips(spec):
            if ip != self.kubernetes_service_ip:
                self.used_ips.discard(ip)
        self.used_ports.difference_update(_node_ports(spec))

    def undo(self, spec: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Return what `allocate(spec, old)` reserved beyond what `old` holds."""
        old = old or {}
        for ip in set(_cluster_ips(spec)) - set(_cluster_ips(old)):
            self.used_ips.discard(ip)
        self.used_ports.difference_update(set(_node_ports(spec)) - set(_node_ports(old)))
        self.used_ports.update(_node_ports(old))

    # -- single values ----------------------------------------------------------------------

    def _allocate_ip(
        self, spec: dict[str, Any], old: dict[str, Any], taken: list[str], master: bool
    ) -> None:
        if old.get("clusterIP"):
            spec.setdefault("clusterIP", old["clusterIP"])
            spec.setdefault("clusterIPs", old.get("clusterIPs") or [old["clusterIP"]])
            return
        wanted = spec.get("clusterIP") or ""
        if wanted == "None":
            spec["clusterIPs"] = ["None"]
            return
        if wanted:
            try:
                address = ipaddress.ip_address(wanted)
            except ValueError:
                raise AllocationError(
                    invalid_value("spec.clusterIPs[0]", wanted, "must be a valid IP address")
                ) from None
            if address not in self.network:
                raise AllocationError(
                    invalid_value(
                        "spec.clusterIPs[0]",
                        wanted,
                        f"failed to allocate IP {wanted}: the provided IP ({wanted}) is not in the "
                        f"valid range. The range of valid IPs is {self.network}",
                    )
                )
            if wanted in self.used_ips and not (master and wanted == self.kubernetes_service_ip):
                raise AllocationError(
                    invalid_value(
                        "spec.clusterIPs[0]",
                        wanted,
                        f"failed to allocate IP {wanted}: provided IP is already allocated",
                    )
                )
        else:
            wanted = self._pick_ip()
        self.used_ips.add(wanted)
        taken.append(wanted)
        spec["clusterIP"] = wanted
        spec["clusterIPs"] = [wanted]

    def _pick_ip(self) -> str:
        first = int(self.network.network_address) + 2
        last = int(self.network.broadcast_address) - 1
        size = last - first + 1
        if len(self.used_ips) >= size:
            raise AllocationError(
                Cause("spec.clusterIPs", "Internal error: range is full", "FieldValueInvalid")
            )
        while True:
            candidate = str(ipaddress.ip_address(first + self._random.randrange(size)))
            if candidate not in self.used_ips:
                return candidate

    def _reserve_port(self, port: int, path: str, taken: list[int]) -> None:
        low, high = self.node_ports
        if not low <= port <= high:
            raise AllocationError(
                invalid_value(
                    path,
                    port,
                    f"provided port is not in the valid range. The range of valid "
                    f"ports is {low}-{high}",
                )
            )
        if port in self.used_ports:
            raise AllocationError(invalid_value(path, port, "provided port is already allocated"))
        self.used_ports.add(port)
        taken.append(port)

    def _pick_port(self, taken: list[int]) -> int:
        low, high = self.node_ports
        free = high - low + 1 - len(self.used_ports)
        if free <= 0:
            raise AllocationError(
                Cause("spec.ports", "Internal error: range is full", "FieldValueInvalid")
            )
        while True:
            candidate = self._random.randint(low, high)
            if candidate not in self.used_ports:
                self.used_ports.add(candidate)
                taken.append(candidate)
                return candidate


def _cluster_ips(spec: dict[str, Any]) -> list[str]:
    ips = [ip for ip in (spec.get("clusterIPs") or []) if ip and ip != "None"]
    single = spec.get("clusterIP")
    if single and single != "None" and single not in ips:
        ips.append(single)
    return ips


def _node_ports(spec: dict[str, Any]) -> list[int]:
    return [p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")]


def drop_type_dependent_fields(spec: dict[str, Any], old: dict[str, Any]) -> None:
    """When an update changes a Service's type, clear what only the old type needed.

    As Kubernetes' service strategy does: a field is cleared only when the client left it as
    it was (so a user who sets a nodePort while switching to ClusterIP still gets told off by
    validation), and only when the new type has no use for it.
    """
    new_type, old_type = spec.get("type", "ClusterIP"), old.get("type", "ClusterIP")
    if new_type == old_type:
        return
    if new_type == "ExternalName" and _cluster_ips(spec) == _cluster_ips(old):
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            spec.pop(key, None)
    if not _needs_node_ports(spec) and _node_ports(spec) == _node_ports(old):
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
        if spec.get("externalTrafficPolicy") == old.get("externalTrafficPolicy"):
            spec.pop("externalTrafficPolicy", None)
    if new_type != "LoadBalancer":
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass", "healthCheckNodePort"):
            if spec.get(key) == old.get(key):
                spec.pop(key, None)
