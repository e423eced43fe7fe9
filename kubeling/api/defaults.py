"""Kubernetes' defaulting: the fields the API server fills in when a client leaves them out.

Clients read back what Kubernetes would have stored, and some depend on it: `kubectl rollout
status` reads `spec.strategy`, `kubectl apply` diffs against defaulted fields, the python
client's models expect `imagePullPolicy` and `terminationMessagePath` on every container.
The values and conditions come from pkg/apis/core/v1/defaults.go, apps/v1/defaults.go,
discovery/v1/defaults.go and the declarative `+default` markers of the API types; like Go's
defaulting, an empty string or zero counts as unset.

`apply_defaults` runs on every create and update (the registry calls it after
server-owned metadata is set, before validation), on a fresh copy the caller owns. It also
rewrites resource quantities in canonical string form (`validation.normalise_quantities`),
which Kubernetes does while decoding. Two create-only rules are keyed on the object having no
`resourceVersion` yet: a Namespace's `spec.finalizers` gets `kubernetes` (as Kubernetes'
PrepareForCreate does; on update the finalizer must stay removable).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from kubeling.api.kinds import ResourceInfo
from kubeling.api.quantity import QuantityError, from_json
from kubeling.api.validation import normalise_quantities

Obj = dict[str, Any]

DEFAULT_FILE_MODE = 0o644  # 420: Secret, ConfigMap, DownwardAPI and projected volumes
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
METADATA_NAME_LABEL = "kubernetes.io/metadata.name"


def apply_defaults(info: ResourceInfo, obj: Obj) -> None:
    """Fill in Kubernetes' defaults of `obj` (of kind `info`), in place."""
    normalise_quantities(info, obj)
    defaulter = _DEFAULTERS.get((info.group, info.kind))
    if defaulter is not None:
        defaulter(obj)


def _set(parent: Obj, key: str, value: Any) -> None:
    """Set `key` unless it holds a non-zero value (Go's zero values count as unset)."""
    current = parent.get(key)
    if current is None or current == "" or (current == 0 and not isinstance(current, bool)):
        parent[key] = value


def _child(parent: Obj, key: str) -> Obj:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _mapping(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[Obj]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# -- pods --------------------------------------------------------------------------------------


def image_tag(image: str) -> str:
    """The tag of an image reference as Kubernetes' ParseImageName sees it: `latest` when
    neither a tag nor a digest is given, "" when only a digest is."""
    name, at, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "" if at or not image else "latest"


def _probe_handler(handler: Obj) -> None:
    http = handler.get("httpGet")
    if isinstance(http, dict):
        _set(http, "path", "/")
        _set(http, "scheme", "HTTP")
    grpc = handler.get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""


def container_defaults(ctr: Obj) -> None:
    """SetDefaults_Container and the defaults of everything a container holds."""
    image = ctr.get("image")
    tag = image_tag(image if isinstance(image, str) else "")
    _set(ctr, "imagePullPolicy", "Always" if tag == "latest" else "IfNotPresent")
    _set(ctr, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    _set(ctr, "terminationMessagePolicy", "File")
    if ctr.get("resources") is None:
        ctr["resources"] = {}
    for port in _dicts(ctr.get("ports")):
        _set(port, "protocol", "TCP")
    for var in _dicts(ctr.get("env")):
        source = var.get("valueFrom")
        if isinstance(source, dict):
            _selectors(source)
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = ctr.get(key)
        if isinstance(probe, dict):
            for field, value in (
                ("timeoutSeconds", 1),
                ("periodSeconds", 10),
                ("successThreshold", 1),
                ("failureThreshold", 3),
            ):
                _set(probe, field, value)
            _probe_handler(probe)
    lifecycle = ctr.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                _probe_handler(lifecycle[hook])


def _selectors(source: Obj) -> None:
    """fieldRef defaults to apiVersion v1; resourceFieldRef's divisor reads back as "0"."""
    field_ref = source.get("fieldRef")
    if isinstance(field_ref, dict):
        _set(field_ref, "apiVersion", "v1")
    resource_ref = source.get("resourceFieldRef")
    if isinstance(resource_ref, dict) and resource_ref.get("divisor") is None:
        resource_ref["divisor"] = "0"


_VOLUME_SOURCES = (
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)


def _volume_defaults(volume: Obj) -> None:
    if all(volume.get(key) is None for key in _VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        source = volume.get(key)
        if isinstance(source, dict) and source.get("defaultMode") is None:
            source["defaultMode"] = DEFAULT_FILE_MODE
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""
    downward = volume.get("downwardAPI")
    if isinstance(downward, dict):
        for item in _dicts(downward.get("items")):
            _selectors(item)
    projected = volume.get("projected")
    if isinstance(projected, dict):
        for source in _dicts(projected.get("sources")):
            token = source.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = 3600
            if isinstance(source.get("downwardAPI"), dict):
                for item in _dicts(source["downwardAPI"].get("items")):
                    _selectors(item)


def pod_spec_defaults(spec: Obj) -> None:
    """SetDefaults_PodSpec, for Pods and pod templates alike."""
    _set(spec, "dnsPolicy", "ClusterFirst")
    _set(spec, "restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    _set(spec, "schedulerName", "default-scheduler")
    for volume in _dicts(spec.get("volumes")):
        _volume_defaults(volume)
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for ctr in _dicts(spec.get(key)):
            container_defaults(ctr)


def _pod(pod: Obj) -> None:
    spec = _child(pod, "spec")
    pod_spec_defaults(spec)
    # SetDefaults_Pod: only real pods, not templates.
    for key in ("containers", "initContainers"):
        for ctr in _dicts(spec.get(key)):
            resources = _child(ctr, "resources")
            limits = resources.get("limits")
            if isinstance(limits, dict) and limits:
                requests = _child(resources, "requests")
                for name, value in limits.items():
                    requests.setdefault(name, value)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for ctr in _dicts(spec.get(key)):
                for port in _dicts(ctr.get("ports")):
                    _set(port, "hostPort", port.get("containerPort"))


def _template(owner: Obj) -> None:
    template = _child(_child(owner, "spec"), "template")
    pod_spec_defaults(_child(template, "spec"))


def _deployment(deployment: Obj) -> None:
    spec = _child(deployment, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _child(spec, "strategy")
    _set(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _child(strategy, "rollingUpdate")
        for key in ("maxUnavailable", "maxSurge"):
            if rolling.get(key) is None:
                rolling[key] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _template(deployment)


def _replica_set(replica_set: Obj) -> None:
    spec = _child(replica_set, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _template(replica_set)


# -- other kinds -------------------------------------------------------------------------------


def _service(service: Obj) -> None:
    spec = _child(service, "spec")
    _set(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client = _child(_child(spec, "sessionAffinityConfig"), "clientIP")
        if client.get("timeoutSeconds") is None:
            client["timeoutSeconds"] = 10800
    _set(spec, "type", "ClusterIP")
    for port in _dicts(spec.get("ports")):
        _set(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port") or 0
    kind = spec["type"]
    if kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and spec.get("externalIPs")):
        _set(spec, "externalTrafficPolicy", "Cluster")
    if (
        kind in ("ClusterIP", "NodePort", "LoadBalancer")
        and spec.get("internalTrafficPolicy") is None
    ):
        spec["internalTrafficPolicy"] = "Cluster"
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if kind != "ExternalName":
        # Kubernetes' allocator sets these on single-stack IPv4 clusters, as kubeling is.
        if spec.get("ipFamilyPolicy") is None:
            spec["ipFamilyPolicy"] = "SingleStack"
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]


def _secret(secret: Obj) -> None:
    _set(secret, "type", "Opaque")
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = _child(secret, "data")
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _namespace(namespace: Obj) -> None:
    meta = _child(namespace, "metadata")
    if meta.get("name"):
        _child(meta, "labels")[METADATA_NAME_LABEL] = meta["name"]
    if not meta.get("resourceVersion"):
        spec = _child(namespace, "spec")
        current = spec.get("finalizers")
        finalizers = current if isinstance(current, list) else []
        if "kubernetes" not in finalizers:
            spec["finalizers"] = [*finalizers, "kubernetes"]
    _set(_child(namespace, "status"), "phase", "Active")


def _node(node: Obj) -> None:
    status = node.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None:
        capacity = status.get("capacity")
        if isinstance(capacity, dict):
            status["allocatable"] = dict(capacity)


def _endpoints(endpoints: Obj) -> None:
    for subset in _dicts(endpoints.get("subsets")):
        for port in _dicts(subset.get("ports")):
            _set(port, "protocol", "TCP")


def _endpoint_slice(endpoint_slice: Obj) -> None:
    for port in _dicts(endpoint_slice.get("ports")):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


_DEFAULTERS: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "Pod"): _pod,
    ("", "Service"): _service,
    ("", "Secret"): _secret,
    ("", "Namespace"): _namespace,
    ("", "Node"): _node,
    ("", "Endpoints"): _endpoints,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replica_set,
    ("discovery.k8s.io", "EndpointSlice"): _endpoint_slice,
}


# -- quality of service ------------------------------------------------------------------------


def pod_qos_class(pod: Obj) -> str:
    """The `status.qosClass` of a pod, as Kubernetes computes it (GetPodQOS).

    Works on the pod before or after defaulting: a missing request counts as equal to its
    limit, which is what SetDefaults_Pod will make it.
    """
    spec = _mapping(pod.get("spec"))
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for ctr in _dicts(spec.get("containers")) + _dicts(spec.get("initContainers")):
        resources = _mapping(ctr.get("resources"))
        ctr_limits = _positive(resources.get("limits"))
        ctr_requests = {**ctr_limits, **_positive(resources.get("requests"), keep_zero=True)}
        for name, value in ctr_requests.items():
            if value > 0:
                requests[name] = requests.get(name, Fraction(0)) + value
        for name, value in ctr_limits.items():
            limits[name] = limits.get(name, Fraction(0)) + value
        if not {"cpu", "memory"} <= set(ctr_limits):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    matching = all(limits.get(name) == value for name, value in requests.items())
    if guaranteed and matching and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _positive(resources: Any, keep_zero: bool = False) -> dict[str, Fraction]:
    """The cpu and memory entries of a resource list (positive ones, unless `keep_zero`)."""
    out: dict[str, Fraction] = {}
    if not isinstance(resources, dict):
        return out
    for name in ("cpu", "memory"):
        if name not in resources:
            continue
        try:
            value = from_json(resources[name]).value
        except QuantityError:
            continue
        if value > 0 or keep_zero:
            out[name] = value
    return out
