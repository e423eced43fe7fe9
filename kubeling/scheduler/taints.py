"""Taints and tolerations, matched exactly as Kubernetes 1.32 matches them.

Contract:

- A toleration tolerates a taint when (`Toleration.ToleratesTaint`):
  its `effect` is empty or equal to the taint's; its `key` is empty or equal to the taint's;
  and its `operator` is `Exists`, or `Equal`/empty with `value` equal to the taint's value.
  So `{operator: Exists}` (no key, no effect) tolerates every taint; an unknown operator
  tolerates nothing.
- The scheduling filter looks only at `NoSchedule` and `NoExecute` taints and reports the
  *first* untolerated one in the node's order; `PreferNoSchedule` only lowers a node's score.
- Node conditions become taints. In Kubernetes the node lifecycle controller writes them
  (`TaintNodesByCondition`): `Ready=False` -> `node.kubernetes.io/not-ready:NoSchedule`,
  `Ready=Unknown` -> `node.kubernetes.io/unreachable:NoSchedule`, `MemoryPressure`,
  `DiskPressure`, `PIDPressure` and `NetworkUnavailable` = True -> their own keys, and
  `spec.unschedulable` -> `node.kubernetes.io/unschedulable:NoSchedule`. `effective_taints`
  adds the ones that are not there yet, so a node that is not Ready is excluded with Kubernetes'
  own message (`node(s) had untolerated taint {node.kubernetes.io/not-ready: }`) whether or
  not a controller has tainted it. A node without a Ready condition gets no taint from it,
  as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
PREFER_NO_SCHEDULE = "PreferNoSchedule"

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

# (condition type, status) -> taint key, as the node lifecycle controller maps them.
_CONDITION_TAINTS = {
    ("Ready", "False"): NOT_READY,
    ("Ready", "Unknown"): UNREACHABLE,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
}


class Taint(NamedTuple):
    key: str
    value: str
    effect: str


class Toleration(NamedTuple):
    key: str
    operator: str
    value: str
    effect: str


def taint_of(raw: Mapping[str, Any]) -> Taint:
    return Taint(
        str(raw.get("key") or ""), str(raw.get("value") or ""), str(raw.get("effect") or "")
    )


def toleration_of(raw: Mapping[str, Any]) -> Toleration:
    return Toleration(
        str(raw.get("key") or ""),
        str(raw.get("operator") or ""),
        str(raw.get("value") or ""),
        str(raw.get("effect") or ""),
    )


def node_taints(node: Mapping[str, Any]) -> tuple[Taint, ...]:
    """`spec.taints` as written."""
    return tuple(taint_of(raw) for raw in (node.get("spec") or {}).get("taints") or ())


def pod_tolerations(pod: Mapping[str, Any]) -> tuple[Toleration, ...]:
    return tuple(toleration_of(raw) for raw in (pod.get("spec") or {}).get("tolerations") or ())


def condition_taints(node: Mapping[str, Any]) -> tuple[Taint, ...]:
    """The NoSchedule taints the node lifecycle controller derives from conditions."""
    taints = []
    for condition in (node.get("status") or {}).get("conditions") or ():
        key = _CONDITION_TAINTS.get((condition.get("type"), condition.get("status")))
        if key is not None:
            taints.append(Taint(key, "", NO_SCHEDULE))
    if (node.get("spec") or {}).get("unschedulable"):
        taints.append(Taint(UNSCHEDULABLE, "", NO_SCHEDULE))
    return tuple(taints)


def effective_taints(node: Mapping[str, Any]) -> tuple[Taint, ...]:
    """`spec.taints` followed by the condition taints not already present (same key+effect)."""
    written = node_taints(node)
    present = {(taint.key, taint.effect) for taint in written}
    derived = tuple(t for t in condition_taints(node) if (t.key, t.effect) not in present)
    return written + derived


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator in ("", "Equal"):
        return toleration.value == taint.value
    return toleration.operator == "Exists"


def tolerated(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    return any(tolerates(toleration, taint) for toleration in tolerations)


def first_untolerated(taints: Iterable[Taint], tolerations: tuple[Toleration, ...]) -> Taint | None:
    """The first taint in `taints` that no toleration tolerates, or None."""
    for taint in taints:
        if not tolerated(tolerations, taint):
            return taint
    return None


def count_untolerated(taints: Iterable[Taint], tolerations: tuple[Toleration, ...]) -> int:
    return sum(1 for taint in taints if not tolerated(tolerations, taint))
