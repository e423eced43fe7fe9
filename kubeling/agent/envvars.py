"""A container's environment and command line, built as the kubelet builds them.

The node agent calls `container_env` then `container_argv` just before it starts a container's
process; both are pure (the agent passes in its caches), so a container is started from exactly
the objects the agent saw. Anything that stops the container from being configured raises
`EnvError`, which the agent reports as the container's waiting state (reason
`CreateContainerConfigError`) and retries on its next sync, as the kubelet does: a missing
ConfigMap may yet be created.

**Layers**, lowest first; a later layer replaces a name an earlier one set:

1. `base`: what the agent provides, the counterpart of an image's `ENV` in Kubernetes. The agent
   is expected to pass `PATH`, `HOME`, `HOSTNAME` (the pod's name, as a container runtime sets
   it), `POD_IP` and `KUBELING_VOLUME_<name>` paths; `POD_IP` is added from `pod_ip` when `base`
   lacks it (DESIGN.md § 5). A variable the agent must force over the pod's own goes on *after*
   `container_env` returns.
2. Service links (`service_env`): the Services of the pod's namespace, when
   `spec.enableServiceLinks` is not false, and always `default/kubernetes`.
3. `envFrom`, in order: every key of each ConfigMap / Secret, with its `prefix`.
4. `env`, in order: `value` (with `$(VAR)` expanded against everything defined so far) or
   `valueFrom` (`fieldRef`, `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef`). An
   `optional` reference whose object or key is missing leaves the name as the layers below set
   it.

**One deliberate difference**: the kubelet expands `$(VAR)` against layers 2-4 only, since it
cannot see the image's `ENV`; kubeling also expands against `base`, so `--bind=$(POD_IP)` works
without declaring `POD_IP` through the downward API.

**Names**: kubeling validates names with Kubernetes' relaxed rule (printable ASCII except `=`,
`kubeling.api.names.env_var_name`), and Kubernetes 1.32+ kubelets no longer drop `envFrom` keys
such as `app.properties`. A key that breaks even that rule (possible only for objects written
around validation) is skipped and listed in `Environment.skipped`, whose entries carry the
kubelet's `InvalidEnvironmentVariableNames` event text for the agent to record.

Error texts are the kubelet's: `configmap "app-config" not found`,
`couldn't find key color in ConfigMap default/app-config`, `secret "db" not found`, ...
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kubeling.api import quantity
from kubeling.api.names import env_var_name

CONFIG_ERROR = "CreateContainerConfigError"
INVALID_NAMES_REASON = "InvalidEnvironmentVariableNames"

Lookup = Callable[[str, str], Mapping[str, Any] | None]
"""(namespace, name) -> the ConfigMap or Secret from the agent's cache, or None if absent."""


class EnvError(Exception):
    """The container cannot be configured; `reason` is its waiting reason, `message` the
    kubelet's text."""

    def __init__(self, message: str, reason: str = CONFIG_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class SkippedKeys:
    """Keys of one `envFrom` source left out because they cannot be variable names."""

    kind: str  # "configMap" or "secret", as the kubelet's event spells it
    namespace: str
    name: str
    keys: tuple[str, ...]  # sorted, with the prefix

    type = "Warning"
    reason = INVALID_NAMES_REASON

    @property
    def message(self) -> str:
        return (
            f"Keys [{', '.join(self.keys)}] from the EnvFrom {self.kind} "
            f"{self.namespace}/{self.name} were skipped since they are considered invalid "
            "environment variable names."
        )


class Environment(dict[str, str]):
    """The container's variables, plus what was skipped on the way (for Warning events)."""

    skipped: tuple[SkippedKeys, ...] = ()


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- $(VAR) expansion --------------------------------------------------------------------


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' `expansion.Expand`: `$(NAME)` becomes the variable's value when it is
    defined and stays as written when not; `$$` is a literal `$`; any other `$` is kept.

    `"$(A)-$$(A)-$(B)-$"` with A=1 and B undefined gives `"1-$(A)-$(B)-$"`.
    """
    out: list[str] = []
    checkpoint = cursor = 0
    end = len(text)
    while cursor < end:
        if text[cursor] == "$" and cursor + 1 < end:
            out.append(text[checkpoint:cursor])
            after = text[cursor + 1]
            if after == "$":  # escaped operator
                out.append("$")
                cursor += 1
            elif after == "(":
                close = text.find(")", cursor + 2)
                if close < 0:  # unterminated: keep "$(" and read on after it
                    out.append("$(")
                    cursor += 1
                else:
                    name = text[cursor + 2 : close]
                    out.append(variables.get(name, f"$({name})"))
                    cursor = close
            else:
                out.append("$" + after)
                cursor += 1
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """`command` + `args`, each `$(VAR)`-expanded against the container's environment.

    Kubernetes falls back to the image's entrypoint when `command` is empty; kubeling runs the
    command itself and has no image to ask, so that is a configuration error (retried on the
    next sync, like a missing ConfigMap) rather than a crash loop.
    """
    command = [str(part) for part in _list(container.get("command"))]
    if not command:
        name = container.get("name", "")
        raise EnvError(
            f'container "{name}" has no command: kubeling runs processes, not images; '
            "set command (and args)"
        )
    args = [str(part) for part in _list(container.get("args"))]
    return [expand(part, env) for part in command + args]


# --- service links -----------------------------------------------------------------------

_MASTER_SERVICES = frozenset({"kubernetes"})


def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def _cluster_ip(service: Mapping[str, Any]) -> str:
    ip = _obj(service.get("spec")).get("clusterIP")
    return ip if isinstance(ip, str) and ip not in ("", "None") else ""


def service_env(
    services: Sequence[Mapping[str, Any]], namespace: str, enable_service_links: bool = True
) -> dict[str, str]:
    """Service link variables for a pod in `namespace`, as the kubelet's `FromServices`.

    `services` may hold every Service the agent knows. Those without a ClusterIP (headless,
    ExternalName) are skipped. `default/kubernetes` is always linked, but a Service of the same
    name in the pod's own namespace wins when links are enabled. For a Service `web-api` at
    127.96.0.10 with ports `http` 80/TCP and `metrics` 9090/TCP:

        WEB_API_SERVICE_HOST=127.96.0.10         WEB_API_PORT=tcp://127.96.0.10:80
        WEB_API_SERVICE_PORT=80                  WEB_API_PORT_80_TCP=tcp://127.96.0.10:80
        WEB_API_SERVICE_PORT_HTTP=80             WEB_API_PORT_80_TCP_PROTO=tcp
        WEB_API_SERVICE_PORT_METRICS=9090        WEB_API_PORT_80_TCP_PORT=80
                                                 WEB_API_PORT_80_TCP_ADDR=127.96.0.10
                                                 (and the same four for 9090)
    """
    chosen: dict[str, Mapping[str, Any]] = {}
    for service in services:
        if not _cluster_ip(service):
            continue
        meta = _obj(service.get("metadata"))
        name, ns = str(meta.get("name", "")), str(meta.get("namespace", ""))
        if ns == "default" and name in _MASTER_SERVICES:
            chosen.setdefault(name, service)
        elif ns == namespace and enable_service_links:
            chosen[name] = service
    out: dict[str, str] = {}
    for name in sorted(chosen):  # sorted, so that a (rare) name clash resolves the same way
        out.update(_links(name, chosen[name]))
    return out


def _links(name: str, service: Mapping[str, Any]) -> dict[str, str]:
    ip = _cluster_ip(service)
    prefix = _env_name(name)
    ports = [_obj(p) for p in _list(_obj(service.get("spec")).get("ports"))]
    out = {f"{prefix}_SERVICE_HOST": ip}
    if not ports:  # validation requires ports; do not fail a pod over someone else's object
        return out
    out[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port", ""))
    for port in ports:
        if port.get("name"):
            out[f"{prefix}_SERVICE_PORT_{_env_name(str(port['name']))}"] = str(port.get("port"))
    host = f"[{ip}]" if ":" in ip else ip
    for index, port in enumerate(ports):
        number = str(port.get("port", ""))
        protocol = str(port.get("protocol") or "TCP")
        url = f"{protocol.lower()}://{host}:{number}"
        if index == 0:  # Docker special-cases the first port
            out[f"{prefix}_PORT"] = url
        each = f"{prefix}_PORT_{number}_{protocol.upper()}"
        out[each] = url
        out[f"{each}_PROTO"] = protocol.lower()
        out[f"{each}_PORT"] = number
        out[f"{each}_ADDR"] = ip
    return out


# --- downward API --------------------------------------------------------------------------

_SUBSCRIPTABLE = ("metadata.annotations", "metadata.labels")
_KNOWN_FIELDS = frozenset(
    {
        *_SUBSCRIPTABLE,
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "spec.schedulerName",
        "status.phase",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    }
)


def _split_subscript(path: str) -> tuple[str, str] | None:
    """`metadata.labels['app']` -> ("metadata.labels", "app"), as SplitMaybeSubscriptedPath."""
    if not path.endswith("']"):
        return None
    head, sep, key = path[:-2].partition("['")
    return (head, key) if sep and head else None


def _field_value(
    ref: Mapping[str, Any], pod: Mapping[str, Any], pod_ip: str, host_ip: str, node_name: str
) -> str:
    version = ref.get("apiVersion") or "v1"
    if version != "v1":
        raise EnvError(f"unsupported pod version: {version}")
    path = str(ref.get("fieldPath", ""))
    if path == "spec.host":  # old v1 clients' name for spec.nodeName
        path = "spec.nodeName"
    meta, spec = _obj(pod.get("metadata")), _obj(pod.get("spec"))
    subscripted = _split_subscript(path)
    if subscripted is not None:
        head, key = subscripted
        if head not in _SUBSCRIPTABLE:
            raise EnvError(f"field label does not support subscript: {path}")
        return str(_obj(meta.get(head.partition(".")[2])).get(key, ""))
    if path not in _KNOWN_FIELDS:
        raise EnvError(f"field label not supported: {path}")
    # One IP per pod and per node in kubeling, so the plural fields hold a single address.
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    if path in _SUBSCRIPTABLE:
        return _format_map(_obj(meta.get(path.partition(".")[2])))
    raise EnvError(f"unsupported fieldPath: {path}")  # restartPolicy etc.: volumes only


def _format_map(values: Mapping[str, Any]) -> str:
    """`key="value"` lines sorted by key (fieldpath.FormatMap; JSON quoting stands in for Go's,
    they agree on everything but rare control characters)."""
    return "\n".join(
        f"{k}={json.dumps(str(values[k]), ensure_ascii=False)}" for k in sorted(values)
    )


_DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")


def _resource_value(
    ref: Mapping[str, Any],
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    allocatable: Mapping[str, Any],
) -> str:
    """ceil(quantity / divisor), the kubelet's `ExtractContainerResourceValue`.

    A limit that is unset (or zero) reads as the node's allocatable, as the kubelet's
    `defaultPodLimitsForDownwardAPI` does. `limits.cpu` of `250m` with divisor `1` gives `1`;
    with divisor `1m`, `250`. `limits.memory` of `100M` with divisor `1Mi` gives
    ceil(100000000 / 1048576) = `96`.
    """
    target = container
    wanted = ref.get("containerName")
    if wanted:
        spec = _obj(pod.get("spec"))
        found = [
            c
            for c in _list(spec.get("containers")) + _list(spec.get("initContainers"))
            if _obj(c).get("name") == wanted
        ]
        if not found:
            raise EnvError(f"container {wanted} not found")
        target = _obj(found[0])
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not (
        name in _DEFAULTED_LIMITS or name.startswith("hugepages-")
    ):
        raise EnvError(f"unsupported container resource : {resource}")
    raw = _obj(_obj(target.get("resources")).get(kind)).get(name)
    try:
        value = quantity.from_json(raw).value if raw is not None else Fraction(0)
        if kind == "limits" and name in _DEFAULTED_LIMITS and not value and name in allocatable:
            value = quantity.from_json(allocatable[name]).value
        divisor = Fraction(1)
        if ref.get("divisor") is not None:
            divisor = quantity.from_json(ref["divisor"]).value or Fraction(1)
    except quantity.QuantityError as err:
        raise EnvError(f"{resource}: {err}") from None
    return str(math.ceil(value / divisor))


# --- ConfigMaps and Secrets ----------------------------------------------------------------


class _Sources:
    """ConfigMaps and Secrets read once per call, so every reference sees the same object."""

    def __init__(self, namespace: str, configmap: Lookup, secret: Lookup) -> None:
        self.namespace = namespace
        self._lookups = {"configmap": configmap, "secret": secret}
        self._seen: dict[tuple[str, str], Mapping[str, str] | None] = {}

    def data(self, kind: str, name: str, optional: bool) -> Mapping[str, str] | None:
        """The object's data as text, None when it is absent and optional, else EnvError."""
        if (kind, name) not in self._seen:
            found = self._lookups[kind](self.namespace, name)
            self._seen[kind, name] = None if found is None else self._decode(kind, name, found)
        data = self._seen[kind, name]
        if data is None and not optional:
            raise EnvError(f'{kind} "{name}" not found')
        return data

    def _decode(self, kind: str, name: str, found: Mapping[str, Any]) -> dict[str, str]:
        raw = _obj(found.get("data"))
        if kind == "configmap":
            return {str(k): str(v) for k, v in raw.items()}
        out = {}
        for key, value in raw.items():
            try:
                decoded = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                raise EnvError(
                    f"secret {self.namespace}/{name} key {key}: data is not base64"
                ) from None
            # surrogateescape keeps non-UTF-8 bytes intact through os.execve's own encoding
            out[str(key)] = decoded.decode("utf-8", "surrogateescape")
        return out


# --- the whole environment -----------------------------------------------------------------


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    pod_ip: str,
    host_ip: str,
    node_name: str,
    services: Sequence[Mapping[str, Any]],
    configmap: Lookup,
    secret: Lookup,
    base: Mapping[str, str] | None = None,
    node_allocatable: Mapping[str, Any] | None = None,
) -> Environment:
    """The environment of `container` in `pod`, layered as the module docstring describes.

    `services` are the agent's Services (any namespaces); `node_allocatable` is the Node's
    `status.allocatable`, read by `resourceFieldRef` when a limit is unset. Raises EnvError.
    """
    namespace = str(_obj(pod.get("metadata")).get("namespace") or "default")
    links = _obj(pod.get("spec")).get("enableServiceLinks")
    env = Environment(base or {})
    if pod_ip and "POD_IP" not in env:
        env["POD_IP"] = pod_ip
    env.update(service_env(services, namespace, links is not False))
    sources = _Sources(namespace, configmap, secret)
    skipped: list[SkippedKeys] = []

    for source in _list(container.get("envFrom")):
        source = _obj(source)
        prefix = str(source.get("prefix") or "")
        for field, kind, event_kind in (
            ("configMapRef", "configmap", "configMap"),
            ("secretRef", "secret", "secret"),
        ):
            ref = source.get(field)
            if not isinstance(ref, Mapping):
                continue
            name = str(ref.get("name", ""))
            data = sources.data(kind, name, ref.get("optional") is True)
            if data is None:
                continue
            bad = []
            for key, value in data.items():
                if env_var_name(prefix + key):
                    bad.append(prefix + key)
                else:
                    env[prefix + key] = value
            if bad:
                skipped.append(SkippedKeys(event_kind, namespace, name, tuple(sorted(bad))))

    for var in _list(container.get("env")):
        var = _obj(var)
        literal = var.get("value")
        source = _obj(var.get("valueFrom"))
        if literal:  # "" falls through to valueFrom, as in the kubelet
            resolved: str | None = expand(str(literal), env)
        elif source:
            resolved = _value_from(
                source, pod, container, pod_ip, host_ip, node_name, node_allocatable or {}, sources
            )
        else:
            resolved = ""
        if resolved is not None:
            env[str(var.get("name", ""))] = resolved

    for name, value in env.items():
        if "\0" in name or "\0" in value:
            raise EnvError(
                f'environment variable "{name.replace(chr(0), "")}" contains a NUL byte, '
                "which no process environment can hold"
            )
    env.skipped = tuple(skipped)
    return env


def _value_from(
    source: Mapping[str, Any],
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    pod_ip: str,
    host_ip: str,
    node_name: str,
    allocatable: Mapping[str, Any],
    sources: _Sources,
) -> str | None:
    """One `valueFrom`; None when an optional reference is missing (the name is left alone)."""
    if isinstance(source.get("fieldRef"), Mapping):
        return _field_value(source["fieldRef"], pod, pod_ip, host_ip, node_name)
    if isinstance(source.get("resourceFieldRef"), Mapping):
        return _resource_value(source["resourceFieldRef"], pod, container, allocatable)
    for field, kind, title in (
        ("configMapKeyRef", "configmap", "ConfigMap"),
        ("secretKeyRef", "secret", "Secret"),
    ):
        ref = source.get(field)
        if not isinstance(ref, Mapping):
            continue
        name, key = str(ref.get("name", "")), str(ref.get("key", ""))
        optional = ref.get("optional") is True
        data = sources.data(kind, name, optional)
        if data is None:
            return None
        if key not in data:
            if optional:
                return None
            raise EnvError(f"couldn't find key {key} in {title} {sources.namespace}/{name}")
        return data[key]
    return ""  # a source kubeling does not know (fileKeyRef): the kubelet also yields ""
