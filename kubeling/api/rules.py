"""Semantic validation of objects, per kind, with Kubernetes' messages and field paths.

`validate(info, obj, old)` is what Kubernetes' registry strategies do in `Validate` and
`ValidateUpdate`: it runs on the defaulted object about to be stored (`old` is the stored
object on update) and returns every problem as a `Cause`, which the registry turns into one
422 Invalid, printed by kubectl as

    The Deployment "web" is invalid:
    * spec.template.metadata.labels: Invalid value: map[string]string{"app":"api"}: `selector`
      does not match template `labels`

Division of labour with `validation.check_structure`: a required field that is *absent* is
reported there (from the schema, at decode time); the rules report it when it is present but
empty, and report every other rule. The registry concatenates both lists.

The rules live in one module per area: metadata (`rules_meta`), pods (`rules_pod`,
`rules_volumes`), controllers (`rules_apps`), networking (`rules_service`), configuration
(`rules_config`), and the cluster-scoped rest (`rules_cluster`).

Writes that can change only part of an object validate only that part, as Kubernetes' status
strategies do (`ValidatePodStatusUpdate`: the metadata update rules and the status):

- `validate_status_update`, for a status subresource write. The registry copies metadata and
  spec from the stored object, which passed `validate` when it was written, so rules of an
  unchanged spec cannot find anything new; only rules that read `.status` (the Node's, listed
  in `_STATUS_RULES`) run again. Pod status has no semantic rules: its types are checked when
  the body is decoded (`validation.check_structure`), as before.
- `validate_binding`, for `pods/binding`, which sets only `spec.nodeName` (once) and the
  PodScheduled condition.

A rule added later that reads `.status` must put its kind in `_STATUS_RULES`
(`tests/unit/test_status_validation.py` checks that no other kind's rules mention status).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeling.api import names
from kubeling.api.errors import Cause
from kubeling.api.kinds import ResourceInfo
from kubeling.api.rules_apps import workload_spec, workload_update
from kubeling.api.rules_cluster import event, event_update, lease, namespace, node, node_update
from kubeling.api.rules_config import config_map, config_map_update, secret, secret_update
from kubeling.api.rules_meta import (
    Causes,
    NameCheck,
    object_meta,
    object_meta_update,
    required,
    text,
)
from kubeling.api.rules_meta import obj as as_object
from kubeling.api.rules_pod import name_reference, pod_spec, pod_update
from kubeling.api.rules_service import (
    endpoint_slice,
    endpoint_slice_update,
    endpoints,
    service,
    service_update,
)

Create = Callable[[dict[str, Any]], Causes]
Update = Callable[[dict[str, Any], dict[str, Any]], Causes]


def _spec(check: Callable[[dict[str, Any]], Causes]) -> Create:
    return lambda o: check(as_object(o.get("spec")))


def _spec_update(check: Update) -> Update:
    return lambda new, old: check(as_object(new.get("spec")), as_object(old.get("spec")))


# Kinds whose update rules Kubernetes checks before the create rules (ValidateXUpdate runs
# them first, then ValidateX); for the others they come last.
_UPDATE_FIRST = frozenset((("", "ConfigMap"), ("", "Secret"), ("", "Service"), ("", "Node")))

# (group, kind) → (name format, create rules, extra update rules)
_KINDS: dict[tuple[str, str], tuple[NameCheck, Create | None, Update | None]] = {
    ("", "Namespace"): (names.name_is_dns_label, namespace, None),
    ("", "Pod"): (
        names.name_is_dns_subdomain,
        _spec(lambda spec: pod_spec(spec, "spec", is_pod=True)),
        _spec_update(pod_update),
    ),
    ("", "Service"): (names.name_is_dns1035_label, _spec(service), _spec_update(service_update)),
    ("", "Endpoints"): (names.name_is_dns_subdomain, lambda o: endpoints(o.get("subsets")), None),
    ("", "ConfigMap"): (names.name_is_dns_subdomain, config_map, config_map_update),
    ("", "Secret"): (names.name_is_dns_subdomain, secret, secret_update),
    ("", "Node"): (names.name_is_dns_subdomain, node, node_update),
    ("", "ServiceAccount"): (names.name_is_dns_subdomain, None, None),
    ("apps", "Deployment"): (
        names.name_is_dns_subdomain,
        _spec(lambda spec: workload_spec(spec, deployment=True)),
        _spec_update(workload_update),
    ),
    ("apps", "ReplicaSet"): (
        names.name_is_dns_subdomain,
        _spec(lambda spec: workload_spec(spec, deployment=False)),
        _spec_update(workload_update),
    ),
    ("discovery.k8s.io", "EndpointSlice"): (
        names.name_is_dns_subdomain,
        endpoint_slice,
        endpoint_slice_update,
    ),
    ("events.k8s.io", "Event"): (
        names.name_is_dns_subdomain,
        lambda o: event(o, strict=True),
        event_update,
    ),
    ("coordination.k8s.io", "Lease"): (names.name_is_dns_subdomain, lease, None),
}


# Kinds whose rules read `.status`: a status write runs all their rules, as before.
_STATUS_RULES = frozenset((("", "Node"),))


def validate_status_update(
    info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any]
) -> list[Cause]:
    """The problems a status write can introduce: `obj` is `old` with a new `.status`."""
    if (info.group, info.kind) in _STATUS_RULES:
        return validate(info, obj, old)
    return object_meta_update(obj.get("metadata"), old.get("metadata"))


def validate_binding(obj: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """The problems a binding can introduce: `obj` is the Pod `old` with `spec.nodeName` set
    (it had none: `pod_update` allows exactly that) and a PodScheduled condition."""
    return object_meta_update(obj.get("metadata"), old.get("metadata")) + name_reference(
        as_object(obj.get("spec")), "nodeName"
    )


def validate(info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """Every semantic problem of `obj` (a create when `old` is None, else an update)."""
    meta = obj.get("metadata")
    if (info.group, info.kind) == ("", "Event"):
        # Core Events predate ObjectMeta validation: only the legacy event checks apply.
        out = (
            []
            if text(as_object(meta).get("name"))
            else [required("metadata.name", "name or generateName is required")]
        )
        return out + event(obj, strict=False)
    entry = _KINDS.get((info.group, info.kind))
    if entry is None:
        return object_meta(meta, info.namespaced, names.name_is_dns_subdomain)
    name_check, create, update = entry
    out = []
    if old is not None:
        out += object_meta_update(meta, old.get("metadata"))
    updates = update(obj, old) if old is not None and update is not None else []
    first = (info.group, info.kind) in _UPDATE_FIRST
    out += object_meta(meta, info.namespaced, name_check)
    if first:
        out += updates
    if create is not None:
        out += create(obj)
    return out if first else out + updates
