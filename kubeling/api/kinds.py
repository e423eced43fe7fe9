"""The registry of kinds kubeling serves.

Everything that varies per resource and is pure data lives here: where it is served (group,
version, plural), how users name it (short names, categories), whether it is namespaced, which
subresources it has, and how writes treat it (status subresource, generation, storage key). The
apiserver, discovery, OpenAPI and table printers are generic over this table, so adding a kind
is one entry, not a change in every layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    """A subresource such as `status` or `scale`, served at `<object path>/<name>`."""

    name: str
    kind: str
    group: str = ""
    version: str = "v1"
    verbs: tuple[str, ...] = SUBRESOURCE_VERBS


@dataclass(frozen=True)
class ResourceInfo:
    """One REST resource: `/apis/<group>/<version>/[namespaces/<ns>/]<plural>[/<name>]`."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # The status subresource owns `.status`: main-resource writes keep the stored status and
    # status writes keep everything but status, as in Kubernetes.
    has_status: bool = False
    # `metadata.generation` moves on changes to everything except metadata and status.
    tracks_generation: bool = False
    # Storage is shared by kinds that are views of one resource (core and events.k8s.io Events).
    storage_resource: str = ""
    # A PUT of a missing object creates it (Kubernetes' AllowCreateOnUpdate).
    create_on_update: bool = False
    singular: str = field(default="")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """`deployments.apps`, or `pods` for the core group: how Kubernetes names it in errors."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def storage_prefix(self) -> str:
        return f"/registry/{self.storage_resource or self.qualified}/"

    def storage_key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return f"{self.storage_prefix}{name}"

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)

    def base_path(self, namespace: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


def _status(kind: str, group: str = "", version: str = "v1") -> Subresource:
    return Subresource("status", kind, group, version)


def _scale() -> Subresource:
    return Subresource("scale", "Scale", "autoscaling", "v1")


def _build() -> tuple[ResourceInfo, ...]:
    core: list[ResourceInfo] = [
        ResourceInfo(
            "",
            "v1",
            "Namespace",
            "namespaces",
            False,
            ("ns",),
            subresources=(_status("Namespace"),),
            has_status=True,
        ),
        ResourceInfo(
            "",
            "v1",
            "Pod",
            "pods",
            True,
            ("po",),
            ("all",),
            subresources=(
                _status("Pod"),
                Subresource("binding", "Binding", verbs=("create",)),
                # Served by the pod's node agent, through the API server (nodeproxy.py).
                Subresource("log", "Pod", verbs=("get",)),
                Subresource("exec", "PodExecOptions", verbs=("create", "get")),
            ),
            has_status=True,
        ),
        ResourceInfo(
            "",
            "v1",
            "Service",
            "services",
            True,
            ("svc",),
            ("all",),
            subresources=(_status("Service"),),
            has_status=True,
        ),
        ResourceInfo(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            True,
            ("ep",),
            singular="endpoints",
            create_on_update=True,
        ),
        ResourceInfo("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
        ResourceInfo("", "v1", "Secret", "secrets", True),
        ResourceInfo(
            "",
            "v1",
            "Node",
            "nodes",
            False,
            ("no",),
            subresources=(_status("Node"),),
            has_status=True,
        ),
        ResourceInfo("", "v1", "Event", "events", True, ("ev",), create_on_update=True),
        ResourceInfo("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    ]
    apps = [
        ResourceInfo(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            True,
            ("deploy",),
            ("all",),
            subresources=(_status("Deployment", "apps"), _scale()),
            has_status=True,
            tracks_generation=True,
        ),
        ResourceInfo(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            True,
            ("rs",),
            ("all",),
            subresources=(_status("ReplicaSet", "apps"), _scale()),
            has_status=True,
            tracks_generation=True,
        ),
    ]
    others = [
        ResourceInfo("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
        ResourceInfo(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            True,
            ("ev",),
            storage_resource="events",
            create_on_update=True,
        ),
        ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", True, create_on_update=True),
        ResourceInfo(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            True,
            ("ing",),
            subresources=(_status("Ingress", "networking.k8s.io"),),
            has_status=True,
            tracks_generation=True,
        ),
        ResourceInfo("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    ]
    return (*core, *apps, *others)


RESOURCES: tuple[ResourceInfo, ...] = _build()


class Registry:
    """Lookups over RESOURCES by path segments, kind and user-facing names."""

    def __init__(self, resources: Iterable[ResourceInfo] = RESOURCES) -> None:
        self.resources = tuple(resources)
        self._by_path = {(r.group, r.version, r.plural): r for r in self.resources}
        self._by_kind = {(r.group, r.version, r.kind): r for r in self.resources}

    def by_path(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_path.get((group, version, plural))

    def resource(self, group: str, version: str, plural: str) -> ResourceInfo:
        """A resource this registry serves (for code that names one): LookupError if not."""
        info = self._by_path.get((group, version, plural))
        if info is None:
            raise LookupError(f"no resource {plural} in {group or 'core'}/{version}")
        return info

    def by_kind(self, group: str, version: str, kind: str) -> ResourceInfo | None:
        return self._by_kind.get((group, version, kind))

    def by_api_version(self, api_version: str, kind: str) -> ResourceInfo | None:
        group, _, version = api_version.rpartition("/")
        return self.by_kind(group, version, kind)

    def group_versions(self) -> dict[str, list[str]]:
        """Group name → its versions, in registration order (core group is "")."""
        out: dict[str, list[str]] = {}
        for r in self.resources:
            versions = out.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [r for r in self.resources if r.group == group and r.version == version]


REGISTRY = Registry()
