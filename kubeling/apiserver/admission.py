"""Mutating admission that looks at other objects: the default IngressClass.

Kubernetes' `DefaultIngressClass` admission plugin gives an Ingress created without
`spec.ingressClassName` (and without the legacy `kubernetes.io/ingress.class` annotation) the
IngressClass marked `ingressclass.kubernetes.io/is-default-class: "true"`; with several marked,
the newest one. So `kubectl get ingress` shows the class that serves it, and a later change of
the default does not silently move existing Ingresses. Only on create, like the plugin.

The IngressClasses are read from the watch cache (memory, no store read); while the cache
reloads nothing is defaulted, and the Ingress is served as class-less, which the Ingress proxy
treats the same way while its class is the default.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.apiserver.watchcache import WatchCaches

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
CLASSES = REGISTRY.resource("networking.k8s.io", "v1", "ingressclasses")


class Admission:
    def __init__(self, caches: WatchCaches) -> None:
        self.caches = caches

    def on_create(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        if info.group == "networking.k8s.io" and info.kind == "Ingress":
            self._default_ingress_class(obj)

    def _default_ingress_class(self, ingress: dict[str, Any]) -> None:
        spec = ingress.setdefault("spec", {})
        annotations = (ingress.get("metadata") or {}).get("annotations") or {}
        if spec.get("ingressClassName") or LEGACY_CLASS_ANNOTATION in annotations:
            return
        defaults = [
            cls
            for cls in self.caches.current(CLASSES.storage_prefix)
            if (cls["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
        ]
        if defaults:
            newest = max(
                defaults,
                key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"]),
            )
            spec["ingressClassName"] = newest["metadata"]["name"]
