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
from kubeling.api.rules_meta import (
    Causes,
    annotations,
    duplicate,
    each,
    forbidden,
    go_quote,
    integer,
    invalid,
    invalid_raw,
    items,
    labels,
    nonnegative,
    not_found,
    not_supported,
    obj,
    required,
    text,
)
from kubeling.api.rules_quantity import QuantityError, from_json
from kubeling.api.rules_volumes import (
    blank,
    field_selector,
    local_descending,
    resource_field_selector,
    volumes,
)

_ENV_FIELD_PATHS = ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                    "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                    "status.podIP", "status.podIPs"]
_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
_RESTART_POLICIES = ["Always", "OnFailure", "Never"]
_DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
_SCHEMES = ["HTTP", "HTTPS"]
_PROPAGATIONS = ["Bidirectional", "HostToContainer", "None"]
_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_STANDARD_RESOURCES = frozenset((
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers", "requests.storage",
))
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
    if isinstance(containers, list) and not containers:
        out.append(required(f"{path}.containers"))
    names_seen: set[str] = set()
    for index, ctr in items(containers):
        here = f"{path}.containers[{index}]"
        out += container(ctr, valid_volumes, here, grace)
        name = text(ctr.get("name"))
        if name in names_seen:
            out.append(duplicate(f"{here}.name", name))
        names_seen.add(name)
        out += _handlers(ctr, here, grace)
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
            out += _handlers(ctr, here, grace)
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if ctr.get(key) is not None:
                    out.append(forbidden(f"{here}.{key}",
                                         "may not be set for init containers without "
                                         "restartPolicy=Always"))
    out += _enum(spec, "restartPolicy", _RESTART_POLICIES, path)
    out += _enum(spec, "dnsPolicy", _DNS_POLICIES, path)
    out += labels(f"{path}.nodeSelector", spec.get("nodeSelector"))
    for index, secret in items(spec.get("imagePullSecrets")):
        if set(secret) - {"name"}:
            out.append(invalid_raw(f"{path}.imagePullSecrets[{index}]", "{...}",
                                   "only name may be set"))
    out += _dns_config(spec, path)
    for index, gate in items(spec.get("readinessGates")):
        kind = text(gate.get("conditionType"))
        out += each(f"{path}.readinessGates[{index}].conditionType", kind,
                    names.qualified_name(kind))
    for key, check in (("serviceAccountName", names.name_is_dns_subdomain),
                       ("nodeName", names.name_is_dns_subdomain),
                       ("priorityClassName", names.name_is_dns_subdomain)):
        value = text(spec.get(key))
        if value:
            out += each(f"{path}.{key}", value, check(value))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= integer(deadline) <= _MAX_INT32:
        out.append(invalid(f"{path}.activeDeadlineSeconds", deadline,
                           names.inclusive_range_error(1, _MAX_INT32)))
    for key in ("hostname", "subdomain"):
        value = text(spec.get(key))
        if value:
            out += each(f"{path}.{key}", value, names.dns1123_label(value))
    out += tolerations(spec.get("tolerations"), f"{path}.tolerations")
    if is_pod:
        out += _pod_only(spec, path)
    return out


def _enum(parent: dict[str, Any], key: str, allowed: list[str], path: str) -> Causes:
    value = parent.get(key)
    if not value:
        return [required(f"{path}.{key}")]
    if value not in allowed:
        return [not_supported(f"{path}.{key}", value, allowed)]
    return []


def _dns_config(spec: dict[str, Any], path: str) -> Causes:
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if config is None:
            return [required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not obj(config).get("nameservers"):
            return [required(f"{path}.dnsConfig.nameservers",
                             "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    return []


def _pod_only(spec: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    if not text(spec.get("serviceAccountName")):
        for vi, vol in items(spec.get("volumes")):
            for si, source in items(obj(vol.get("projected")).get("sources")):
                if source.get("serviceAccountToken") is not None:
                    out.append(forbidden(
                        f"{path}.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                        "must not be specified when serviceAccountName is not set",
                    ))
    for key in ("containers", "initContainers"):
        for index, ctr in items(spec.get(key)):
            image = text(ctr.get("image"))
            if image != image.strip():
                out.append(invalid(f"{path}.{key}[{index}].image", image,
                                   "must not have leading or trailing whitespace"))
    return out


def container(ctr: dict[str, Any], valid_volumes: set[str], path: str, grace: Any) -> Causes:
    """validateContainerCommon."""
    out: Causes = []
    name = text(ctr.get("name"))
    if blank(ctr, "name"):
        out.append(required(f"{path}.name"))
    elif name:
        out += each(f"{path}.name", name, names.dns1123_label(name))
    if not text(ctr.get("image")):
        out.append(required(f"{path}.image"))
    out += _enum(ctr, "terminationMessagePolicy", _MESSAGE_POLICIES, path)
    out += _ports(ctr.get("ports"), f"{path}.ports")
    out += _env(ctr.get("env"), f"{path}.env")
    out += _env_from(ctr.get("envFrom"), f"{path}.envFrom")
    out += _mounts(ctr, valid_volumes, f"{path}.volumeMounts")
    out += _enum(ctr, "imagePullPolicy", _PULL_POLICIES, path)
    out += resources(obj(ctr.get("resources")), f"{path}.resources")
    out += _security_context(obj(ctr.get("securityContext")), f"{path}.securityContext")
    return out


def _ports(ports: Any, path: str) -> Causes:
    out: Causes = []
    seen: set[str] = set()
    for index, port in items(ports):
        here = f"{path}[{index}]"
        name = text(port.get("name"))
        if name:
            msgs = names.port_name(name)
            if msgs:
                out += each(f"{here}.name", name, msgs)
            elif name in seen:
                out.append(duplicate(f"{here}.name", name))
            seen.add(name)
        number = port.get("containerPort")
        if number is not None:
            if integer(number) == 0:
                out.append(required(f"{here}.containerPort"))
            else:
                out += each(f"{here}.containerPort", number, names.port_number(integer(number)))
        host = integer(port.get("hostPort"))
        if host:
            out += each(f"{here}.hostPort", host, names.port_number(host))
        out += _protocol(port, here)
    return out


def _protocol(port: dict[str, Any], path: str) -> Causes:
    protocol = port.get("protocol")
    if not protocol:
        return [required(f"{path}.protocol")]
    if protocol not in _PROTOCOLS:
        return [not_supported(f"{path}.protocol", protocol, _PROTOCOLS)]
    return []


def _env(env: Any, path: str) -> Causes:
    out: Causes = []
    for index, var in items(env):
        here = f"{path}[{index}]"
        name = text(var.get("name"))
        if blank(var, "name"):
            out.append(required(f"{here}.name"))
        elif name:
            out += each(f"{here}.name", name, names.env_var_name(name))
        source = var.get("valueFrom")
        if source is not None:
            out += _value_from(obj(source), bool(var.get("value")), f"{here}.valueFrom")
    return out


def _value_from(source: dict[str, Any], has_value: bool, path: str) -> Causes:
    out: Causes = []
    count = 0
    if source.get("fieldRef") is not None:
        count += 1
        out += field_selector(obj(source["fieldRef"]), _ENV_FIELD_PATHS, f"{path}.fieldRef")
    if source.get("resourceFieldRef") is not None:
        count += 1
        out += resource_field_selector(obj(source["resourceFieldRef"]),
                                       f"{path}.resourceFieldRef")
    for key in ("configMapKeyRef", "secretKeyRef"):
        if source.get(key) is not None:
            count += 1
            ref = obj(source[key])
            ref_name = text(ref.get("name"))
            out += each(f"{path}.{key}.name", ref_name, names.name_is_dns_subdomain(ref_name))
            ref_key = text(ref.get("key"))
            if blank(ref, "key"):
                out.append(required(f"{path}.{key}.key"))
            elif ref_key:
                out += each(f"{path}.{key}.key", ref_key, names.config_map_key(ref_key))
    if count == 0:
        out.append(invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                     "`configMapKeyRef` or `secretKeyRef`"))
    elif has_value:
        out.append(invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        out.append(invalid(path, "", "may not have more than one field specified at a time"))
    return out


def _env_from(sources: Any, path: str) -> Causes:
    out: Causes = []
    for index, source in items(sources):
        here = f"{path}[{index}]"
        prefix = text(source.get("prefix"))
        if prefix:
            out += each(f"{here}.prefix", prefix, names.env_var_name(prefix))
        count = 0
        for key in ("configMapRef", "secretRef"):
            if source.get(key) is None:
                continue
            count += 1
            ref_name = text(obj(source[key]).get("name"))
            if not ref_name:
                out.append(required(f"{here}.{key}.name"))
            else:
                out += each(f"{here}.{key}.name", ref_name,
                            names.name_is_dns_subdomain(ref_name, True))
        if count == 0:
            out.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            out.append(invalid(path, "", "may not have more than one field specified at a time"))
    return out


def _mounts(ctr: dict[str, Any], valid_volumes: set[str], path: str) -> Causes:
    out: Causes = []
    mount_points: set[str] = set()
    privileged = obj(ctr.get("securityContext")).get("privileged") is True
    for index, mount in items(ctr.get("volumeMounts")):
        here = f"{path}[{index}]"
        name = text(mount.get("name"))
        if blank(mount, "name"):
            out.append(required(f"{here}.name"))
        if name not in valid_volumes:
            out.append(not_found(f"{here}.name", name))
        mount_path = text(mount.get("mountPath"))
        if blank(mount, "mountPath"):
            out.append(required(f"{here}.mountPath"))
        if mount_path in mount_points:
            out.append(invalid(f"{here}.mountPath", mount_path, "must be unique"))
        mount_points.add(mount_path)
        if text(mount.get("subPath")):
            out += local_descending(f"{path}.subPath", text(mount.get("subPath")))
        if text(mount.get("subPathExpr")):
            if text(mount.get("subPath")):
                out.append(invalid(f"{here}.subPathExpr", mount["subPathExpr"],
                                   "subPathExpr and subPath are mutually exclusive"))
            out += local_descending(f"{path}.subPathExpr", text(mount.get("subPathExpr")))
        propagation = mount.get("mountPropagation")
        if propagation is not None:
            if propagation not in _PROPAGATIONS:
                out.append(not_supported(f"{path}.mountPropagation", propagation, _PROPAGATIONS))
            elif propagation == "Bidirectional" and not privileged:
                out.append(forbidden(f"{path}.mountPropagation", "Bidirectional mount "
                                     "propagation is available only to privileged containers"))
    return out


def _security_context(context: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    for key in ("runAsUser", "runAsGroup"):
        value = context.get(key)
        if value is not None and not 0 <= integer(value) <= 0xFFFFFFFF:
            out.append(invalid(f"{path}.{key}", value, names.inclusive_range_error(0, 0xFFFFFFFF)))
    if context.get("allowPrivilegeEscalation") is False and context.get("privileged") is True:
        out.append(invalid_raw(path, "{...}", "cannot set `allowPrivilegeEscalation` to false "
                               "and `privileged` to true"))
    return out


# -- probes and lifecycle handlers -------------------------------------------------------------


def _handlers(ctr: dict[str, Any], path: str, grace: Any) -> Causes:
    out: Causes = []
    lifecycle = ctr.get("lifecycle")
    if lifecycle is not None:
        for hook in ("postStart", "preStop"):
            handler = obj(lifecycle).get(hook)
            if handler is not None:
                out += _handler(obj(handler), _LIFECYCLE_HANDLERS, f"{path}.lifecycle.{hook}",
                                grace)
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = ctr.get(key)
        if probe is None:
            continue
        probe = obj(probe)
        here = f"{path}.{key}"
        out += _handler(probe, _PROBE_HANDLERS, here, grace)
        for field in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds",
                      "successThreshold", "failureThreshold"):
            out += nonnegative(f"{here}.{field}", probe.get(field))
        term = probe.get("terminationGracePeriodSeconds")
        if term is not None and integer(term) <= 0:
            out.append(invalid(f"{here}.terminationGracePeriodSeconds", term,
                               "must be greater than 0"))
        if key == "readinessProbe":
            if term is not None:
                out.append(invalid(f"{here}.terminationGracePeriodSeconds", term,
                                   "must not be set for readinessProbes"))
        elif probe.get("successThreshold", 1) != 1:
            out.append(invalid(f"{here}.successThreshold", probe["successThreshold"],
                               "must be 1"))
    return out


def _handler(handler: dict[str, Any], kinds: tuple[str, ...], path: str, grace: Any) -> Causes:
    out: Causes = []
    count = 0
    for kind in kinds:
        action = handler.get(kind)
        if action is None:
            continue
        if count:
            out.append(forbidden(f"{path}.{kind}", "may not specify more than 1 handler type"))
            continue
        count += 1
        action = obj(action)
        here = f"{path}.{kind}"
        if kind == "exec" and not action.get("command"):
            out.append(required(f"{here}.command"))
        elif kind == "httpGet":
            if not text(action.get("path")):
                out.append(required(f"{here}.path"))
            out += port_num_or_name(action.get("port"), f"{here}.port")
            if action.get("scheme") not in _SCHEMES:
                out.append(not_supported(f"{here}.scheme", text(action.get("scheme")), _SCHEMES))
            for header in items(action.get("httpHeaders")):
                header_name = text(header[1].get("name"))
                out += each(f"{here}.httpHeaders", header_name,
                            names.http_header_name(header_name))
        elif kind in ("tcpSocket", "grpc"):
            out += port_num_or_name(action.get("port"), f"{here}.port")
        elif kind == "sleep" and isinstance(grace, int):
            seconds = integer(action.get("seconds"))
            if not 0 < seconds <= grace:
                out.append(invalid(here, seconds, "must be greater than 0 and less than "
                                   f"terminationGracePeriodSeconds ({grace}). Enable "
                                   "AllowPodLifecycleSleepActionZeroValue feature gate for zero "
                                   "sleep."))
    if not count:
        out.append(required(path, "must specify a handler type"))
    return out


def port_num_or_name(port: Any, path: str) -> Causes:
    """ValidatePortNumOrName: an IntOrString port (IntOrString errors print bare values)."""
    if isinstance(port, str):
        return [invalid_raw(path, port, msg) for msg in names.port_name(port)]
    number = integer(port)
    return [invalid_raw(path, str(number), msg) for msg in names.port_number(number)]


# -- resources ---------------------------------------------------------------------------------


def resources(requirements: dict[str, Any], path: str) -> Causes:
    """validateResourceRequirements for a container."""
    out: Causes = []
    limits = obj(requirements.get("limits"))
    parsed_limits = {}
    for name, value in limits.items():
        here = f"{path}.limits[{name}]"
        out += _resource_name(name, here)
        quantity = _quantity(value)
        if quantity is not None:
            parsed_limits[name] = quantity
            out += _quantity_value(name, quantity, here)
    for name, value in obj(requirements.get("requests")).items():
        here = f"{path}.requests[{name}]"
        out += _resource_name(name, here)
        quantity = _quantity(value)
        if quantity is None:
            continue
        out += _quantity_value(name, quantity, here)
        limit = parsed_limits.get(name)
        overcommit = _overcommit_allowed(name)
        if limit is not None:
            if quantity.value != limit.value and not overcommit:
                out.append(invalid(f"{path}.requests", str(quantity),
                                   f"must be equal to {name} limit of {limit}"))
            elif quantity.value > limit.value:
                out.append(invalid(f"{path}.requests", str(quantity),
                                   f"must be less than or equal to {name} limit of {limit}"))
        elif not overcommit:
            out.append(required(f"{path}.limits",
                                "Limit must be set for non overcommitable resources"))
    return out


def _quantity(value: Any) -> Any:
    try:
        return from_json(value)
    except QuantityError:
        return None


def _native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _overcommit_allowed(name: str) -> bool:
    return _native(name) and not name.startswith("hugepages-")


def _resource_name(name: str, path: str) -> Causes:
    out = each(path, name, names.qualified_name(name))
    if out:
        return out
    if "/" not in name:
        if name not in _STANDARD_RESOURCES and not name.startswith("hugepages-"):
            out.append(invalid(path, name, "must be a standard resource type or fully qualified"))
        if name not in _CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            out.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _native(name) and (
        name.startswith("requests.") or names.qualified_name("requests." + name)
    ):
        out.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return out


def _quantity_value(name: str, quantity: Any, path: str) -> Causes:
    out: Causes = []
    if quantity.value < 0:
        out.append(invalid(path, str(quantity), "must be greater than or equal to 0"))
    if not _native(name) and quantity.value.denominator != 1:
        out.append(invalid_raw(path, str(quantity), "must be an integer"))
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
            out.append(invalid(f"{here}.operator", operator, "operator must be Exists when "
                               '`key` is empty, which means "match all values and all keys"'))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(invalid(f"{here}.effect", effect,
                               "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("Equal", ""):
            msgs = names.label_value(tol_value)
            if msgs:
                out.append(invalid(f"{here}.operator", tol_value, ";".join(msgs)))
        elif operator == "Exists":
            if tol_value:
                out.append(invalid(f"{here}.operator", tol_value,
                                   "value must be empty when `operator` is 'Exists'"))
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
    out += annotations(f"{path}.annotations", meta.get("annotations"))
    spec = obj(tpl.get("spec"))
    out += pod_spec(spec, f"{path}.spec", is_pod=False)
    if spec.get("ephemeralContainers"):
        out.append(forbidden(f"{path}.spec.ephemeralContainers",
                             "ephemeral containers not allowed in pod template"))
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
    new_deadline, old_deadline = new_spec.get("activeDeadlineSeconds"), old_spec.get(
        "activeDeadlineSeconds")
    if new_deadline is not None:
        if not 0 <= integer(new_deadline) <= _MAX_INT32:
            return out + [invalid("spec.activeDeadlineSeconds", new_deadline,
                                  names.inclusive_range_error(0, _MAX_INT32))]
        if old_deadline is not None and integer(old_deadline) < integer(new_deadline):
            return out + [invalid("spec.activeDeadlineSeconds", new_deadline,
                                  "must be less than or equal to previous value")]
    elif old_deadline is not None:
        out.append(invalid("spec.activeDeadlineSeconds", None,
                           "must not update from a positive integer to nil value"))
    new_tolerations = [_sans_seconds(t) for _, t in items(new_spec.get("tolerations"))]
    for _, old_toleration in items(old_spec.get("tolerations")):
        if _sans_seconds(old_toleration) not in new_tolerations:
            out.append(forbidden("spec.tolerations", "existing toleration can not be modified "
                                 "except its tolerationSeconds"))
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
        out.append(forbidden("spec", "pod updates may not change fields other than "
                             f"{UPDATABLE_POD_FIELDS}\n{_spec_diff(old_spec, munged)}"))
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
