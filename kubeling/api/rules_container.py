"""Semantic rules for one container: ports, environment, mounts, probes and resources.

These are validateContainerCommon and its helpers in pkg/apis/core/validation, shared by
regular and init containers of Pods and pod templates. Paths keep Kubernetes' historical
quirks (a `subPath` problem is reported at `volumeMounts.subPath`, without the mount's index).
"""

from __future__ import annotations

from typing import Any

from kubeling.api import names
from kubeling.api.quantity import Quantity, QuantityError, from_json
from kubeling.api.rules_meta import (
    Causes,
    duplicate,
    each,
    enum,
    forbidden,
    integer,
    invalid,
    invalid_raw,
    items,
    nonnegative,
    not_found,
    not_supported,
    obj,
    required,
    text,
)
from kubeling.api.rules_volumes import (
    blank,
    field_selector,
    local_descending,
    resource_field_selector,
)

_ENV_FIELD_PATHS = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
]
_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
_SCHEMES = ["HTTP", "HTTPS"]
_PROPAGATIONS = ["Bidirectional", "HostToContainer", "None"]
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_STANDARD_RESOURCES = frozenset(
    (
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
        "requests.storage",
    )
)


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
    out += enum(ctr, "terminationMessagePolicy", _MESSAGE_POLICIES, path)
    out += _ports(ctr.get("ports"), f"{path}.ports")
    out += _env(ctr.get("env"), f"{path}.env")
    out += _env_from(ctr.get("envFrom"), f"{path}.envFrom")
    out += _mounts(ctr, valid_volumes, f"{path}.volumeMounts")
    out += enum(ctr, "imagePullPolicy", _PULL_POLICIES, path)
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
        out += resource_field_selector(obj(source["resourceFieldRef"]), f"{path}.resourceFieldRef")
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
        out.append(
            invalid(
                path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, "
                "`configMapKeyRef` or `secretKeyRef`",
            )
        )
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
                out += each(
                    f"{here}.{key}.name", ref_name, names.name_is_dns_subdomain(ref_name, True)
                )
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
                out.append(
                    invalid(
                        f"{here}.subPathExpr",
                        mount["subPathExpr"],
                        "subPathExpr and subPath are mutually exclusive",
                    )
                )
            out += local_descending(f"{path}.subPathExpr", text(mount.get("subPathExpr")))
        propagation = mount.get("mountPropagation")
        if propagation is not None:
            if propagation not in _PROPAGATIONS:
                out.append(not_supported(f"{path}.mountPropagation", propagation, _PROPAGATIONS))
            elif propagation == "Bidirectional" and not privileged:
                out.append(
                    forbidden(
                        f"{path}.mountPropagation",
                        "Bidirectional mount "
                        "propagation is available only to privileged containers",
                    )
                )
    return out


def _security_context(context: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    for key in ("runAsUser", "runAsGroup"):
        value = context.get(key)
        if value is not None and not 0 <= integer(value) <= 0xFFFFFFFF:
            out.append(invalid(f"{path}.{key}", value, names.inclusive_range_error(0, 0xFFFFFFFF)))
    if context.get("allowPrivilegeEscalation") is False and context.get("privileged") is True:
        out.append(
            invalid_raw(
                path,
                "{...}",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            )
        )
    return out


# -- probes and lifecycle handlers -------------------------------------------------------------


def handlers(ctr: dict[str, Any], path: str, grace: Any) -> Causes:
    out: Causes = []
    lifecycle = ctr.get("lifecycle")
    if lifecycle is not None:
        for hook in ("postStart", "preStop"):
            handler = obj(lifecycle).get(hook)
            if handler is not None:
                out += _handler(
                    obj(handler), _LIFECYCLE_HANDLERS, f"{path}.lifecycle.{hook}", grace
                )
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = ctr.get(key)
        if probe is None:
            continue
        probe = obj(probe)
        here = f"{path}.{key}"
        out += _handler(probe, _PROBE_HANDLERS, here, grace)
        for field in (
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ):
            out += nonnegative(f"{here}.{field}", probe.get(field))
        term = probe.get("terminationGracePeriodSeconds")
        if term is not None and integer(term) <= 0:
            out.append(
                invalid(f"{here}.terminationGracePeriodSeconds", term, "must be greater than 0")
            )
        if key == "readinessProbe":
            if term is not None:
                out.append(
                    invalid(
                        f"{here}.terminationGracePeriodSeconds",
                        term,
                        "must not be set for readinessProbes",
                    )
                )
        elif probe.get("successThreshold", 1) != 1:
            out.append(invalid(f"{here}.successThreshold", probe["successThreshold"], "must be 1"))
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
                out += each(f"{here}.httpHeaders", header_name, names.http_header_name(header_name))
        elif kind in ("tcpSocket", "grpc"):
            out += port_num_or_name(action.get("port"), f"{here}.port")
        elif kind == "sleep" and isinstance(grace, int):
            seconds = integer(action.get("seconds"))
            if not 0 < seconds <= grace:
                out.append(
                    invalid(
                        here,
                        seconds,
                        "must be greater than 0 and less than "
                        f"terminationGracePeriodSeconds ({grace}). Enable "
                        "AllowPodLifecycleSleepActionZeroValue feature gate for zero "
                        "sleep.",
                    )
                )
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
                out.append(
                    invalid(
                        f"{path}.requests",
                        str(quantity),
                        f"must be equal to {name} limit of {limit}",
                    )
                )
            elif quantity.value > limit.value:
                out.append(
                    invalid(
                        f"{path}.requests",
                        str(quantity),
                        f"must be less than or equal to {name} limit of {limit}",
                    )
                )
        elif not overcommit:
            out.append(
                required(f"{path}.limits", "Limit must be set for non overcommitable resources")
            )
    return out


def _quantity(value: Any) -> Quantity | None:
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


def _quantity_value(name: str, quantity: Quantity, path: str) -> Causes:
    out: Causes = []
    if quantity.value < 0:
        out.append(invalid(path, str(quantity), "must be greater than or equal to 0"))
    if not _native(name) and quantity.value.denominator != 1:
        out.append(invalid_raw(path, str(quantity), "must be an integer"))
    return out
