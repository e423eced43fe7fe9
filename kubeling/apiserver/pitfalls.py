"""Pitfall warnings: a write that walks into a well-known production trap is stored, with a
`Warning` header (kubectl prints "Warning: ...") that says what is wrong and what to change.

Contract:

* Advice, never a gate: no rule rejects a write, and dry-run writes warn too (as Kubernetes'
  own warnings do).
* One line per warning, naming the object, the container and the field.
* Only writes of the spec warn: a create, or an update (PUT, patch, apply) that changes what a
  rule looks at, so re-applying an unchanged manifest is silent, as Kubernetes warns about a
  Deployment's pod template only when its generation moves. Status and binding writes never
  run the rules; a scale write changes only `spec.replicas`, so it re-checks rule 5 alone.
* Pods and ReplicaSets with a controller (an ownerReference with `controller: true`) are not
  checked: their template was checked when their owner was written, and a user wants one
  warning at `kubectl apply` of the Deployment, not one per pod. That also keeps the rules off
  the hot path of bulk pod creation, where the first test is that owner reference.
* Pure: the rules see the new object, the old one (None on create) and `Neighbours`, a lookup
  of the Services and workloads of a namespace. The API server answers that lookup from the
  watch cache (memory, no store read), which trails the store by the moment an event takes
  to reach it: a Service written in that same instant can be missed.

The rules, and why each exists:

1. A Deployment or ReplicaSet whose pods a Service selects, with a serving container (one
   declaring a port the Service targets; every container when none declares it) that has no
   readinessProbe. Such a container counts as ready once its process starts, so the Service
   sends requests to pods that cannot answer them yet, on every rollout and restart. Checked
   both ways: when the workload is written and when the Service is.
2. A livenessProbe that checks exactly what the readinessProbe checks (same httpGet path and
   port, tcpSocket port, exec command or grpc port), and gives up as soon as it or sooner
   (failureThreshold × periodSeconds). Readiness checks usually cover what the pod needs to
   serve (its database, a warm cache); liveness then fails with them, and a slow dependency
   gets every pod restarted instead of only taken out of rotation, which turns a slowdown
   into an outage. Liveness should ask only "is this process stuck?". The same cheap check
   with a more patient liveness probe is a pattern the Kubernetes docs name, and is silent.
3. A livenessProbe with `initialDelaySeconds` over 30 (LONG_INITIAL_DELAY) and no
   startupProbe. A long delay is a guess at the slowest start: a start slower than the guess
   is killed, over and over, and a container that hangs soon after a fast start goes unseen
   for the whole delay. Kubernetes recommends a startupProbe for slow starters: liveness
   waits exactly as long as the start really takes. 30 s leaves the delays most charts use
   alone and flags the minute-long ones that stand in for a startupProbe.
4. A Pod created outside `kube-system` with no controller and `restartPolicy: Always`.
   Nothing recreates it when it is deleted, evicted or its node goes away. Only on create (a
   later write changes nothing about that), and not for `Never`/`OnFailure` pods: those are
   one-off tasks, for which a Deployment is the wrong advice.
5. A RollingUpdate Deployment whose `maxUnavailable`, resolved against `replicas` as the
   deployment controller does, lets a rollout take down every pod at once. Worked example:
   replicas 1, the defaults maxSurge 25 % and maxUnavailable 25 %: surge rounds up to 1,
   unavailable rounds down to 0, so one pod stays available: silent. replicas 1 with
   maxUnavailable 1 (or 100 %): 1 - 1 = 0 pods available mid-rollout: warns. And when both
   resolve to 0 (replicas 1, maxSurge 0, maxUnavailable 50 %), Kubernetes takes one pod down
   anyway so the rollout can progress: warns too. Recreate is not flagged: it stops every
   old pod before starting new ones by design, and whoever chose it chose that downtime
   (a singleton, a volume only one pod may mount).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kubeling.api.intstr import scaled_value
from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.apiserver.watchcache import WatchCaches

Obj = Mapping[str, Any]

LONG_INITIAL_DELAY = 30  # seconds; rule 3 warns above this
UNMANAGED_NAMESPACES = frozenset({"kube-system"})  # rule 4: the cluster's own pods

_POD = ("", "Pod")
_SERVICE = ("", "Service")
# The served kinds with a pod template at `spec.template`. StatefulSet, DaemonSet and Job
# belong here too once kubeling serves them (CronJob keeps its template one level deeper).
_WORKLOADS = frozenset({("apps", "Deployment"), ("apps", "ReplicaSet")})


class Neighbours(Protocol):
    """The other objects some rules look at, read-only: never mutate what they return."""

    def services(self, namespace: str) -> Iterable[Obj]: ...

    def workloads(self, namespace: str) -> Iterable[Obj]:
        """The namespace's Deployments and ReplicaSets."""
        ...


def warnings(info: ResourceInfo, new: Obj, old: Obj | None, neighbours: Neighbours) -> list[str]:
    """The pitfall warnings for writing `new` over `old` (None on create), defaults applied."""
    kind = (info.group, info.kind)
    if kind == _POD:
        return _pod(new) if old is None else []
    if kind in _WORKLOADS:
        return _workload(info.kind, new, old, neighbours)
    if kind == _SERVICE:
        return _service(new, old, neighbours)
    return []


# -- per kind ---------------------------------------------------------------------------------


def _pod(pod: Obj) -> list[str]:
    if _has_controller(pod):
        return []
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    label = f'Pod "{meta.get("name", "")}"'
    bare = (
        meta.get("namespace") not in UNMANAGED_NAMESPACES
        and spec.get("restartPolicy", "Always") == "Always"
    )
    unowned = [
        f"{label} has no controller: nothing recreates it if it is deleted, evicted or its "
        "node goes away; run it from a Deployment instead"
    ]
    return (unowned if bare else []) + _probe_rules(label, spec)


def _workload(kind: str, new: Obj, old: Obj | None, neighbours: Neighbours) -> list[str]:
    if _has_controller(new):
        return []
    meta, spec = new.get("metadata") or {}, new.get("spec") or {}
    old_spec = (old or {}).get("spec") or {}
    label = f'{kind} "{meta.get("name", "")}"'
    out: list[str] = []
    template = spec.get("template") or {}
    if old is None or template != old_spec.get("template"):
        pod_spec = template.get("spec") or {}
        out += _probe_rules(label, pod_spec)
        labels = (template.get("metadata") or {}).get("labels") or {}
        for service in neighbours.services(meta.get("namespace") or ""):
            out += _unready(label, service, labels, pod_spec)
    if kind == "Deployment" and (
        old is None or any(spec.get(key) != old_spec.get(key) for key in ("replicas", "strategy"))
    ):
        out += _rollout(label, spec)
    return out


def _service(new: Obj, old: Obj | None, neighbours: Neighbours) -> list[str]:
    spec = new.get("spec") or {}
    old_spec = (old or {}).get("spec") or {}
    if old is not None and all(spec.get(k) == old_spec.get(k) for k in ("selector", "ports")):
        return []
    out: list[str] = []
    for workload in neighbours.workloads((new.get("metadata") or {}).get("namespace") or ""):
        if _has_controller(workload):
            continue  # a Deployment's ReplicaSet: the Deployment is named instead
        template = (workload.get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        name = (workload.get("metadata") or {}).get("name", "")
        label = f'{workload.get("kind", "")} "{name}"'
        out += _unready(label, new, labels, template.get("spec") or {})
    return out


# -- rule 1: a Service sends traffic to containers with no readinessProbe --------------------


def _unready(label: str, service: Obj, labels: Obj, pod_spec: Obj) -> list[str]:
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    # An empty or absent selector selects nothing (its endpoints are managed by hand).
    if not selector or spec.get("type") == "ExternalName":
        return []
    if any(labels.get(key) != value for key, value in selector.items()):
        return []
    service_name = (service.get("metadata") or {}).get("name", "")
    return [
        f'{label}: container "{ctr.get("name", "")}" has no readinessProbe but Service '
        f'"{service_name}" selects its pods, so they get requests before they can serve them; '
        f'add a readinessProbe to container "{ctr.get("name", "")}"'
        for ctr in _serving(spec.get("ports") or [], pod_spec.get("containers") or [])
        if not ctr.get("readinessProbe")
    ]


def _serving(service_ports: list[Obj], containers: list[Obj]) -> list[Obj]:
    """The containers that declare a port the Service targets; all of them when none does
    (a numeric targetPort works without a declared containerPort)."""
    targets = {port.get("targetPort", port.get("port")) for port in service_ports}
    serving = [
        ctr
        for ctr in containers
        if any(
            port.get("containerPort") in targets or port.get("name") in targets
            for port in ctr.get("ports") or []
        )
    ]
    return serving or containers


# -- rules 2 and 3: probes of one container ---------------------------------------------------


def _probe_rules(label: str, pod_spec: Obj) -> list[str]:
    out: list[str] = []
    sidecars = [
        c for c in pod_spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
    ]
    for ctr in [*(pod_spec.get("containers") or []), *sidecars]:
        liveness = ctr.get("livenessProbe")
        if not liveness:
            continue
        where = f'{label}: container "{ctr.get("name", "")}"'
        ports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports") or []}
        check = _check(liveness, ports)
        readiness = ctr.get("readinessProbe")
        if (
            check is not None
            and readiness
            and check == _check(readiness, ports)
            and _patience(liveness) <= _patience(readiness)
        ):
            out.append(
                f"{where} has a livenessProbe that checks the same as its readinessProbe "
                f"({check[0]}): a slow dependency would get it restarted instead of only taken "
                "out of rotation; point the livenessProbe at a check of the process alone"
            )
        delay = liveness.get("initialDelaySeconds") or 0
        if delay > LONG_INITIAL_DELAY and not ctr.get("startupProbe"):
            out.append(
                f"{where} has livenessProbe.initialDelaySeconds {delay} and no startupProbe: a "
                "start slower than that is killed, and a hang after a fast start goes unseen "
                "as long; add a startupProbe that allows the slowest start and drop the delay"
            )
    return out


def _patience(probe: Obj) -> int:
    """Seconds of failing checks a probe sits through before it acts (defaults 3 × 10 s)."""
    return int(probe.get("failureThreshold") or 3) * int(probe.get("periodSeconds") or 10)


def _check(probe: Obj, ports: Mapping[Any, Any]) -> tuple[str, tuple[Any, ...]] | None:
    """What a probe checks, as (description, comparable key); named ports resolved."""

    def port(value: Any) -> Any:
        return ports.get(value, value)

    if isinstance(http := probe.get("httpGet"), Mapping):
        path = http.get("path") or "/"
        headers = tuple((h.get("name"), h.get("value")) for h in http.get("httpHeaders") or [])
        key = (http.get("host"), http.get("scheme"), path, port(http.get("port")), headers)
        return f"httpGet {path} on port {port(http.get('port'))}", ("httpGet", *key)
    if isinstance(tcp := probe.get("tcpSocket"), Mapping):
        return f"tcpSocket on port {port(tcp.get('port'))}", (
            "tcpSocket",
            tcp.get("host"),
            port(tcp.get("port")),
        )
    if isinstance(exec_ := probe.get("exec"), Mapping):
        command = tuple(exec_.get("command") or ())
        return f"exec {' '.join(map(str, command))}", ("exec", command)
    if isinstance(grpc := probe.get("grpc"), Mapping):
        return f"grpc on port {grpc.get('port')}", ("grpc", grpc.get("port"), grpc.get("service"))
    return None


# -- rule 5: a rollout that may leave no pod available ----------------------------------------


def _rollout(label: str, spec: Obj) -> list[str]:
    replicas = spec.get("replicas", 1)
    strategy = spec.get("strategy") or {}
    if not replicas or strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return []
    rolling = strategy.get("rollingUpdate") or {}
    raw_surge, raw_unavailable = (
        rolling.get("maxSurge", "25%"),
        rolling.get("maxUnavailable", "25%"),
    )
    surge = scaled_value(raw_surge, replicas, round_up=True)
    unavailable = scaled_value(raw_unavailable, replicas, round_up=False)
    why = f"maxUnavailable {raw_unavailable}"
    if surge == unavailable == 0:
        unavailable = 1  # the deployment controller's floor, so that a rollout can progress
        why = f"maxSurge {raw_surge} and maxUnavailable {raw_unavailable} both resolve to 0"
    if replicas - min(unavailable, replicas) >= 1:
        return []
    return [
        f"{label}: a rolling update may leave no pod available (replicas {replicas}, {why}); "
        "set maxUnavailable below replicas, e.g. maxUnavailable 0 with maxSurge 1"
    ]


def _has_controller(obj: Obj) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("controller") is True for ref in refs)


# -- the API server's lookup ------------------------------------------------------------------


class CachedNeighbours:
    """`Neighbours` read from the watch cache: memory only, never the store. While the cache
    reloads it answers nothing: a missed warning is better than a slower write."""

    def __init__(self, caches: WatchCaches) -> None:
        self.caches = caches
        self._services = REGISTRY.resource("", "v1", "services").storage_prefix
        self._workloads = tuple(
            info.storage_prefix
            for group, kind in sorted(_WORKLOADS)
            if (info := REGISTRY.by_kind(group, "v1", kind)) is not None
        )

    def services(self, namespace: str) -> Iterable[Obj]:
        return self.caches.current(self._services, namespace)

    def workloads(self, namespace: str) -> Iterable[Obj]:
        return [obj for prefix in self._workloads for obj in self.caches.current(prefix, namespace)]
