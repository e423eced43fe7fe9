"""LoadBalancer Services get an address from the local pool (DESIGN.md § 6: 127.80.0.0/16).

Reconcile, for one Service (the job a cloud controller manager does elsewhere):

    type LoadBalancer, no `loadBalancerClass`, no address yet
        → the `spec.loadBalancerIP` it asks for when that is in the pool and free, else the
          lowest free address that no process on this machine listens on (another cluster's
          load balancer); written to `status.loadBalancer.ingress: [{ip, ipMode: VIP}]`
    any other type, or another class, but an address of ours recorded
        → `status.loadBalancer` cleared

Every agent's service proxy then listens on that address with the Service's ports. An
address is free when no other Service's status holds it; the first writer wins a race (the
status write is a compare-and-swap) and the loser picks again on its next pass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.cache import Object, copy
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.reconcile import Controller, Manager, Result
from kubeling.util.netstat import bound_addresses

POOL = ipaddress.ip_network("127.80.0.0/16")
_SERVICES = REGISTRY.by_path("", "v1", "services")
if _SERVICES is None:  # pragma: no cover
    raise RuntimeError("services are not registered")
SERVICES = _SERVICES


def _ours(service: Mapping[str, Any]) -> bool:
    spec = service.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def _addresses(service: Mapping[str, Any]) -> list[str]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress if i.get("ip")]


def _in_pool(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in POOL
    except ValueError:
        return False


class LoadBalancerReconciler:
    def __init__(self, client: Client, services: Informer) -> None:
        self.client = client
        self.services = services

    def _taken(self, key: str) -> set[str]:
        taken = set()
        for other in self.services.cache.list():
            if f"{other['metadata'].get('namespace')}/{other['metadata']['name']}" != key:
                taken.update(_addresses(other))
        return taken

    def _pick(self, service: Mapping[str, Any], taken: set[str]) -> str | None:
        wanted = (service.get("spec") or {}).get("loadBalancerIP")
        if wanted and _in_pool(wanted) and wanted not in taken:
            return str(wanted)
        busy = bound_addresses()  # another cluster's load balancers, on this machine
        for ip in POOL.hosts():
            if str(ip) not in taken and str(ip) not in busy:
                return str(ip)
        return None

    async def reconcile(self, key: str) -> Result:
        service = self.services.cache.get(key)
        if service is None:
            return Result()
        recorded = [ip for ip in _addresses(service) if _in_pool(ip)]
        if _ours(service):
            taken = self._taken(key)
            if recorded and not set(recorded) & taken:
                return Result()
            ip = self._pick(service, taken)
            if ip is None:
                raise RuntimeError(f"{key}: the load-balancer pool {POOL} is exhausted")
            status: Object = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
        elif recorded:
            status = {}
        else:
            return Result()
        updated = copy(service)
        updated.setdefault("status", {})["loadBalancer"] = status
        try:
            await self.client.update_status(SERVICES, updated)
        except ApiError as err:
            if err.code not in (404, 409):
                raise
        return Result()


def loadbalancer_controller(client: Client, manager: Manager) -> Controller:
    services = manager.informers.informer(SERVICES)
    controller = Controller("service-lb", LoadBalancerReconciler(client, services))
    controller.watch(services)
    manager.add(controller)
    return controller
