"""Which pods back a Service, on which ports, and how ready they are (pure functions).

Shared by the EndpointSlice and Endpoints controllers, so both answer the same way:

* **Selected pods**: pods in the Service's namespace whose labels match `spec.selector`, that
  have a pod IP and have not finished (`Succeeded`/`Failed`). Services without a selector and
  `ExternalName` Services select nothing: their endpoints are written by hand.
* **Conditions** (KEP-1672): `serving` = the pod's Ready condition is True; `terminating` =
  the pod has a `deletionTimestamp`; `ready` = serving and not terminating. With
  `publishNotReadyAddresses` every selected pod is ready and serving.
* **Ports**: each Service port's `targetPort` resolved against the pod: a number is used as
  is, a name is looked up among the pod's container ports (a pod without that port name is
  left out of that port's endpoints, as Kubernetes does); an unset targetPort is `port`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubeling.api.selectors import LabelSelector, selector_from_spec
from kubeling.client.informer import Informer

Object = dict[str, Any]


def selector_of(service: Mapping[str, Any]) -> LabelSelector | None:
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName" or not spec.get("selector"):
        return None
    return selector_from_spec({"matchLabels": spec["selector"]})


def selected_pods(
    service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    selector = selector_of(service)
    if selector is None:
        return []
    found = []
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed") or not status.get("podIP"):
            continue
        if selector.matches((pod.get("metadata") or {}).get("labels")):
            found.append(pod)
    return sorted(found, key=lambda p: (p["status"]["podIP"], p["metadata"]["name"]))


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def conditions(service: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, bool]:
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    if (service.get("spec") or {}).get("publishNotReadyAddresses"):
        return {"ready": True, "serving": True, "terminating": terminating}
    serving = pod_ready(pod)
    return {"ready": serving and not terminating, "serving": serving, "terminating": terminating}


def target_port(service_port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def pod_ports(service: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[tuple[Any, ...], ...]:
    """The pod's resolved ports for the Service: (name, protocol, port, appProtocol) each,
    ports the pod lacks left out; pods with equal tuples share EndpointSlices."""
    out = []
    for port in (service.get("spec") or {}).get("ports") or []:
        number = target_port(port, pod)
        if number is None:
            continue
        out.append(
            (port.get("name", ""), port.get("protocol") or "TCP", number, port.get("appProtocol"))
        )
    return tuple(out)


def target_ref(pod: Mapping[str, Any]) -> Object:
    meta = pod["metadata"]
    return {
        "kind": "Pod",
        "namespace": meta.get("namespace"),
        "name": meta["name"],
        "uid": meta.get("uid"),
    }


def services_of_pod(services: Informer) -> Callable[[Mapping[str, Any]], list[str]]:
    """A mapper: a pod → the keys (`ns/name`) of the Services whose selector matches it."""

    def mapper(pod: Mapping[str, Any]) -> list[str]:
        meta = pod.get("metadata") or {}
        keys = []
        for service in services.cache.list(meta.get("namespace")):
            selector = selector_of(service)
            if selector is not None and selector.matches(meta.get("labels")):
                keys.append(f"{service['metadata'].get('namespace')}/{service['metadata']['name']}")
        return keys

    return mapper
