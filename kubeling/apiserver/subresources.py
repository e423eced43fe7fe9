"""Subresources that are views of their parent: `scale`, `pods/binding`, `namespaces/finalize`.

Each one is a translation to and from the parent object followed by an ordinary update of the
parent, so every rule of the registry (conflicts, generation, no-op writes) applies to them too.
"""

from __future__ import annotations

from typing import Any

from kubeling.api import errors
from kubeling.api.kinds import ResourceInfo
from kubeling.api.selectors import selector_to_string
from kubeling.util.timefmt import now_rfc3339


def to_scale(parent: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale of a Deployment or ReplicaSet."""
    meta = parent.get("metadata", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int((parent.get("spec") or {}).get("replicas", 0))},
        "status": {
            "replicas": int((parent.get("status") or {}).get("replicas", 0)),
            "selector": selector_to_string((parent.get("spec") or {}).get("selector")),
        },
    }


def scale_replicas(info: ResourceInfo, scale: Any, name: str) -> int:
    """Validate a Scale body and return its `spec.replicas`."""
    if not isinstance(scale, dict):
        raise errors.bad_request("the request body must be a Scale object")
    if scale.get("kind") not in (None, "Scale") or scale.get("apiVersion") not in (
        None,
        "autoscaling/v1",
    ):
        raise errors.bad_request(
            f"the API version in the data ({scale.get('apiVersion')}) does not match the "
            f"expected API version (autoscaling/v1)"
        )
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.bad_request(
            f'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
            f"{type(replicas).__name__} into Go struct field ScaleSpec.spec.replicas of type int32"
        )
    if replicas < 0:
        raise errors.invalid(
            "Scale",
            name,
            [errors.invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")],
            "autoscaling",
        )
    return replicas


def with_replicas(parent: dict[str, Any], replicas: int) -> dict[str, Any]:
    parent.setdefault("spec", {})["replicas"] = replicas
    parent.get("metadata", {}).pop("resourceVersion", None)
    return parent


def bind(pod: dict[str, Any], binding: Any, name: str) -> dict[str, Any]:
    """Apply a Binding to a Pod: set `spec.nodeName` once, and mark it scheduled."""
    if not isinstance(binding, dict):
        raise errors.bad_request("the request body must be a Binding object")
    node = (binding.get("target") or {}).get("name")
    if not node:
        raise errors.invalid("Binding", name, [errors.required("target.name")])
    meta = pod.get("metadata", {})
    if meta.get("deletionTimestamp"):
        raise errors.conflict(
            "pods/binding", name, f"pod {name} is being deleted, cannot be assigned to a host"
        )
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise errors.conflict(
            "pods/binding", name, f'pod {name} is already assigned to node "{current}"'
        )
    pod.setdefault("spec", {})["nodeName"] = node
    status = pod.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(),
        }
    )
    status["conditions"] = conditions
    meta.pop("resourceVersion", None)
    return pod


def finalize_namespace(namespace: dict[str, Any], body: Any, name: str) -> dict[str, Any]:
    """PUT namespaces/<name>/finalize: replace `spec.finalizers` only."""
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a Namespace object")
    finalizers = (body.get("spec") or {}).get("finalizers") or []
    namespace.setdefault("spec", {})["finalizers"] = list(finalizers)
    namespace.get("metadata", {}).pop("resourceVersion", None)
    return namespace


def success_status(details: dict[str, Any] | None = None, code: int = 200) -> dict[str, Any]:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": code,
    }
    if details:
        status["details"] = details
    return status
