"""Semantic rules for pod specs: Pods, and the templates of Deployments and ReplicaSets.

The checks and their order follow ValidatePodSpec in pkg/apis/core/validation. They run after
defaulting, as in Kubernetes, so a field that defaulting always fills (restartPolicy,
imagePullPolicy, ...) is only reported when a client set it to something unsupported.
Fields the schema requires and Kubernetes reports as `Required value` are reported by
`validation.check_structure` when absent; here only when present but empty (see `blank`).
"""

from __future__ import annotations

from typing import Any

import orjson

from kubeling.api import names
from kubeling.api.rules_container import container, handlers
from kubeling.api.rules_meta import (
    Causes,
    annotation_map,
    duplicate,
    each,
    enum,
    forbidden,
    go_quote,
    integer,
    invalid,
    invalid_raw,
    items,
    labels,
    not_supported,
    obj,
    required,
    text,
)
from kubeling.api.rules_volumes import volumes

_RESTART_POLICIES = ["Always", "OnFailure", "Never"]
_DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_MAX_INT32 = 2**31 - 1
UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)"
)


def pod_spec(spec: dict[str, Any], path: str, is_pod: bool) -> Causes:
    """ValidatePodSpec (plus the pod-only checks when `is_pod`)."""
    out: Causes = []
    if spec.get("terminationGracePeriodSeconds") is None:
        out.append(required(f"{path}.terminationGracePeriodSeconds"))
    grace = spec.get("terminationGracePeriodSeconds")
    valid_volumes, errs = volumes(spec.get("volumes"), f"{path}.volumes")
    out += errs
    containers = spec.get("containers")
    if not containers:
        out.append(required(f"{path}.containers"))
    names_seen: set[str] = set()
    for index, ctr in items(containers):
        here = f"{path}.containers[{index}]"
        out += container(ctr, valid_volumes, here, grace)
        name = text(ctr.get("name"))
        if name in names_seen:
            out.append(duplicate(f"{here}.name", name))
        names_seen.add(name)
        out += handlers(ctr, here, grace)
        if ctr.get("restartPolicy") is not None:
            out.append(forbidden(f"{here}.restartPolicy", "may not be set for non-init containers"))
    for index, ctr in items(spec.get("initContainers")):
        here = f"{path}.initContainers[{index}]"
        out += container(ctr, valid_volumes, here, grace)
        restart = ctr.get("restartPolicy")
        if restart is not None and restart != "Always":
            out.append(not_supported(f"{here}.restartPolicy", restart, ["Always"]))
        name = text(ctr.get("name"))
        if name in names_seen:
            out.append(duplicate(f"{here}.name", name))
        elif name:
            names_seen.add(name)
        if restart == "Always":
            out += handlers(ctr, here, grace)
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if ctr.get(key) is not None:
                    out.append(
                        forbidden(
                            f"{here}.{key}",
                            "may not be set for init containers without restartPolicy=Always",
                        )
                    )
    out += enum(spec, "restartPolicy", _RESTART_POLICIES, path)
    out += enum(spec, "dnsPolicy", _DNS_POLICIES, path)
    out += labels(f"{path}.nodeSelector", spec.get("nodeSelector"))
    for index, secret in items(spec.get("imagePullSecrets")):
        if set(secret) - {"name"}:
            out.append(
                invalid_raw(f"{path}.imagePullSecrets[{index}]", "{...}", "only name may be set")
            )
    out += _dns_config(spec, path)
    for index, gate in items(spec.get("readinessGates")):
        kind = text(gate.get("conditionType"))
        out += each(
            f"{path}.readinessGates[{index}].conditionType", kind, names.qualified_name(kind)
        )
    for key in ("serviceAccountName", "nodeName", "priorityClassName"):
        out += name_reference(spec, key, path)
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= integer(deadline) <= _MAX_INT32:
        out.append(
            invalid(
                f"{path}.activeDeadlineSeconds",
                deadline,
                names.inclusive_range_error(1, _MAX_INT32),
            )
        )
    for key in ("hostname", "subdomain"):
        value = text(spec.get(key))
        if value:
            out += each(f"{path}.{key}", value, names.dns1123_label(value))
    out += tolerations(spec.get("tolerations"), f"{path}.tolerations")
    if is_pod:
        out += _pod_only(spec, path)
    return out


def name_reference(spec: dict[str, Any], key: str, path: str = "spec") -> Causes:
    """A spec field that names another object (`nodeName`, ...): a DNS subdomain if set."""
    value = text(spec.get(key))
    return each(f"{path}.{key}", value, names.name_is_dns_subdomain(value)) if value else []


def _dns_config(spec: dict[str, Any], path: str) -> Causes:
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if config is None:
            return [
                required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None")
            ]
        if not obj(config).get("nameservers"):
            return [
                required(
                    f"{path}.dnsConfig.nameservers",
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    return []


def _pod_only(spec: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    if not text(spec.get("serviceAccountName")):
        for vi, vol in items(spec.get("volumes")):
            for si, source in items(obj(vol.get("projected")).get("sources")):
                if source.get("serviceAccountToken") is not None:
                    out.append(
                        forbidden(
                            f"{path}.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                            "must not be specified when serviceAccountName is not set",
                        )
                    )
    for key in ("containers", "initContainers"):
        for index, ctr in items(spec.get(key)):
            image = text(ctr.get("image"))
            if image != image.strip():
                out.append(
                    invalid(
                        f"{path}.{key}[{index}].image",
                        image,
                        "must not have leading or trailing whitespace",
                    )
                )
    return out


# -- tolerations -------------------------------------------------------------------------------


def tolerations(value: Any, path: str) -> Causes:
    out: Causes = []
    for index, tol in items(value):
        here = f"{path}[{index}]"
        key, operator = text(tol.get("key")), text(tol.get("operator"))
        effect, tol_value = text(tol.get("effect")), text(tol.get("value"))
        if key:
            out += each(f"{here}.key", key, names.qualified_name(key))
        if not key and operator != "Exists":
            out.append(
                invalid(
                    f"{here}.operator",
                    operator,
                    "operator must be Exists when "
                    '`key` is empty, which means "match all values and all keys"',
                )
            )
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(
                invalid(
                    f"{here}.effect",
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if operator in ("Equal", ""):
            msgs = names.label_value(tol_value)
            if msgs:
                out.append(invalid(f"{here}.operator", tol_value, ";".join(msgs)))
        elif operator == "Exists":
            if tol_value:
                out.append(
                    invalid(
                        f"{here}.operator",
                        tol_value,
                        "value must be empty when `operator` is 'Exists'",
                    )
                )
        else:
            out.append(not_supported(f"{here}.operator", operator, ["Equal", "Exists"]))
        if effect and effect not in _EFFECTS:
            out.append(not_supported(f"{here}.effect", effect, _EFFECTS))
    return out


# -- Pods --------------------------------------------------------------------------------------


def template(tpl: Any, path: str) -> Causes:
    """ValidatePodTemplateSpec (template labels are reported at `<path>.labels`)."""
    tpl = obj(tpl)
    meta = obj(tpl.get("metadata"))
    out = labels(f"{path}.labels", meta.get("labels"))
    out += annotation_map(f"{path}.annotations", meta.get("annotations"))
    spec = obj(tpl.get("spec"))
    out += pod_spec(spec, f"{path}.spec", is_pod=False)
    if spec.get("ephemeralContainers"):
        out.append(
            forbidden(
                f"{path}.spec.ephemeralContainers",
                "ephemeral containers not allowed in pod template",
            )
        )
    return out


def pod_update(new_spec: dict[str, Any], old_spec: dict[str, Any]) -> Causes:
    """ValidatePodUpdate's immutability rules for the spec.

    Binding sets `spec.nodeName` through an update here, so a pod without a node may be given
    one (Kubernetes does this in its binding registry instead).
    """
    out: Causes = []
    for key in ("containers", "initContainers"):
        new_list, old_list = new_spec.get(key) or [], old_spec.get(key) or []
        if len(new_list) != len(old_list):
            return [forbidden(f"spec.{key}", "pod updates may not add or remove containers")]
    new_deadline, old_deadline = (
        new_spec.get("activeDeadlineSeconds"),
        old_spec.get("activeDeadlineSeconds"),
    )
    if new_deadline is not None:
        if not 0 <= integer(new_deadline) <= _MAX_INT32:
            return [
                *out,
                invalid(
                    "spec.activeDeadlineSeconds",
                    new_deadline,
                    names.inclusive_range_error(0, _MAX_INT32),
                ),
            ]
        if old_deadline is not None and integer(old_deadline) < integer(new_deadline):
            return [
                *out,
                invalid(
                    "spec.activeDeadlineSeconds",
                    new_deadline,
                    "must be less than or equal to previous value",
                ),
            ]
    elif old_deadline is not None:
        out.append(
            invalid(
                "spec.activeDeadlineSeconds",
                None,
                "must not update from a positive integer to nil value",
            )
        )
    new_tolerations = [_sans_seconds(t) for _, t in items(new_spec.get("tolerations"))]
    for _, old_toleration in items(old_spec.get("tolerations")):
        if _sans_seconds(old_toleration) not in new_tolerations:
            out.append(
                forbidden(
                    "spec.tolerations",
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            )
            break
    munged = dict(new_spec)
    for key in ("containers", "initContainers"):
        if key in munged:
            munged[key] = [
                {**obj(ctr), "image": obj(old).get("image")}
                for ctr, old in zip(munged[key], old_spec.get(key) or [], strict=False)
            ]
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged.pop(key, None)
        if key in old_spec:
            munged[key] = old_spec[key]
    if not old_spec.get("nodeName"):
        munged.pop("nodeName", None)
        old_spec = {k: v for k, v in old_spec.items() if k != "nodeName"}
    if munged != old_spec:
        out.append(
            forbidden(
                "spec",
                "pod updates may not change fields other than "
                f"{UPDATABLE_POD_FIELDS}\n{_spec_diff(old_spec, munged)}",
            )
        )
    return out


def _sans_seconds(toleration: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in toleration.items() if k != "tolerationSeconds"}


def _spec_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A short account of what changed, in the spirit of the diff Kubernetes appends."""
    lines = ["  core.PodSpec{"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            for sign, side in (("-", old), ("+", new)):
                if key in side:
                    rendered = orjson.dumps(side[key]).decode()
                    lines.append(f"{sign} \t{go_quote(key)[1:-1]}: {rendered},")
    lines.append("  }")
    return "\n".join(lines) + "\n"
