"""Resource arithmetic of the scheduler: what a Pod requests and what a Node offers.

Contract (Kubernetes 1.32, `resourcehelper.PodRequests` and the scheduler's `Resource`):

- Units are integers: `cpu` in millicores (`500m` -> 500, `1` -> 1000), every other resource
  in whole units (`memory` and `ephemeral-storage` in bytes, extended resources in items).
  Fractions round *up*, as `Quantity.MilliValue()` and `Quantity.Value()` do.
- A Pod's request is, per resource,
  `max(sum(containers) + sum(sidecars), max over init containers of (init + sidecars before it))`
  plus `spec.overhead` when present. Sidecars are init containers with `restartPolicy: Always`:
  they keep running, so they add to the steady-state sum and to every later init container.
  Worked example: containers 200m + 300m, init containers 800m and 100m -> max(500, 800) = 800m;
  with a 50m sidecar before the 800m init container -> max(550, 850) = 850m.
- Only `requests` count. Limits reach requests through API defaulting (a container with only
  limits gets requests equal to them), never here.
- "Non-zero" requests are what scoring sees: a container that does not mention `cpu` counts as
  100m and one that does not mention `memory` as 200 MiB, so that many request-less Pods still
  spread out instead of piling onto one node. An explicit `0` stays 0.
- A Node offers `status.allocatable`; `capacity` is never consulted. A missing resource is 0,
  so a node without `allocatable.pods` takes no Pods at all ("Too many pods"), as in Kubernetes.
- A malformed quantity counts as absent: the API server rejects them on write, and a
  scheduler must not stop on one bad object.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeling.api.quantity import QuantityError, from_json

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

DEFAULT_MILLI_CPU_REQUEST = 100  # schedutil.DefaultMilliCPURequest
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024  # schedutil.DefaultMemoryRequest

_NON_ZERO_DEFAULTS = {CPU: DEFAULT_MILLI_CPU_REQUEST, MEMORY: DEFAULT_MEMORY_REQUEST}


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of every resource the scheduler tracks, in integer units (see module doc)."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    pods: int = 0  # allowed pod count; only meaningful for a node's allocatable
    scalars: tuple[tuple[str, int], ...] = ()  # extended resources, hugepages; sorted by name

    def scalar(self, name: str) -> int:
        for key, value in self.scalars:
            if key == name:
                return value
        return 0

    @property
    def is_zero(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage or self.scalars)


def is_scalar_resource(name: str) -> bool:
    """Extended (`example.com/gpu`), prefixed native, hugepages and attachable volumes."""
    if name.startswith(("hugepages-", "attachable-volumes-")):
        return True
    return "/" in name and not name.startswith("requests.")


def to_units(name: str, value: object) -> int | None:
    """One quantity in the scheduler's unit for `name`, or None when it does not parse."""
    try:
        quantity = from_json(value)
    except QuantityError:
        return None
    amount = quantity.value * 1000 if name == CPU else quantity.value
    return math.ceil(amount)


def resource_list(raw: Mapping[str, Any] | None) -> dict[str, int]:
    """A `ResourceList` (`{"cpu": "500m", ...}`) as integer units; malformed entries dropped."""
    if not raw:
        return {}
    result: dict[str, int] = {}
    for name, value in raw.items():
        units = to_units(name, value)
        if units is not None:
            result[name] = units
    return result


def as_resources(amounts: Mapping[str, int]) -> Resources:
    scalars = tuple(
        sorted((name, value) for name, value in amounts.items() if is_scalar_resource(name))
    )
    return Resources(
        milli_cpu=amounts.get(CPU, 0),
        memory=amounts.get(MEMORY, 0),
        ephemeral_storage=amounts.get(EPHEMERAL_STORAGE, 0),
        pods=amounts.get(PODS, 0),
        scalars=scalars,
    )


def _add(into: dict[str, int], amounts: Mapping[str, int]) -> None:
    for name, value in amounts.items():
        into[name] = into.get(name, 0) + value


def _max_into(into: dict[str, int], amounts: Mapping[str, int]) -> None:
    for name, value in amounts.items():
        if value > into.get(name, 0):
            into[name] = value


def _container_requests(
    container: Mapping[str, Any], defaults: Mapping[str, int] | None
) -> dict[str, int]:
    requests = resource_list((container.get("resources") or {}).get("requests"))
    if defaults:
        for name, value in defaults.items():
            requests.setdefault(name, value)
    return requests


def pod_request_amounts(
    pod: Mapping[str, Any], defaults: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Per-resource requests of a whole Pod (the module doc's formula), as a plain dict.

    `defaults` fills resources a container does not mention (the non-zero rule for scoring).
    """
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    for container in spec.get("containers") or ():
        _add(total, _container_requests(container, defaults))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or ():
        requests = _container_requests(container, defaults)
        if container.get("restartPolicy") == "Always":
            _add(total, requests)
            _add(sidecars, requests)
            running = dict(sidecars)
        else:
            running = dict(requests)
            _add(running, sidecars)
        _max_into(init_peak, running)
    _max_into(total, init_peak)
    _add(total, resource_list(spec.get("overhead")))
    return total


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """What the Pod needs from a node to fit (`NodeResourcesFit`)."""
    return as_resources(pod_request_amounts(pod))


def pod_non_zero_requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(millicores, bytes) that scoring charges for the Pod, with the 100m / 200Mi defaults."""
    amounts = pod_request_amounts(pod, _NON_ZERO_DEFAULTS)
    return amounts.get(CPU, 0), amounts.get(MEMORY, 0)


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    """`status.allocatable` of a Node (capacity is never used)."""
    return as_resources(resource_list((node.get("status") or {}).get("allocatable")))
