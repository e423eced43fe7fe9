"""The DefaultIngressClass admission: an Ingress created without a class gets the newest
IngressClass marked default; an explicit class, or the legacy annotation, is left alone."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client

from kubeling.testing.cluster import wait_for

DEFAULT = {"ingressclass.kubernetes.io/is-default-class": "true"}


def ingress(name: str, **spec: Any) -> dict[str, Any]:
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    return {"metadata": {"name": name}, "spec": {"defaultBackend": backend, **spec}}


def test_an_ingress_without_class_gets_the_newest_default(api: Any) -> None:
    networking = client.NetworkingV1Api(api)
    core = client.CoreV1Api(api)
    ns = f"ingress-class-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    older, newer, plain = (f"{ns}-{n}" for n in ("older", "newer", "plain"))
    for name, marks in ((older, DEFAULT), (plain, {})):
        body = {
            "metadata": {"name": name, "annotations": marks},
            "spec": {"controller": "x/y"},
        }
        networking.create_ingress_class(body)
    # Another default, created in a later second: the newest wins.
    wait_for(
        lambda: (
            networking.create_namespaced_ingress(
                ns, ingress("probe"), dry_run="All"
            ).spec.ingress_class_name
            == older
        ),
        message="the first default class in the server's cache",
    )
    first = networking.read_ingress_class(older).metadata.creation_timestamp
    wait_for(lambda: _now_after(api, first), timeout=5, message="a later second")
    body = {"metadata": {"name": newer, "annotations": DEFAULT}, "spec": {"controller": "x/y"}}
    networking.create_ingress_class(body)

    def defaulted() -> str | None:
        probe = networking.create_namespaced_ingress(ns, ingress("probe"), dry_run="All")
        return str(probe.spec.ingress_class_name)

    wait_for(lambda: defaulted() == newer, message="the newest default class")

    created = networking.create_namespaced_ingress(ns, ingress("web"))
    assert created.spec.ingress_class_name == newer
    explicit = networking.create_namespaced_ingress(ns, ingress("own", ingressClassName=plain))
    assert explicit.spec.ingress_class_name == plain
    legacy = ingress("legacy")
    legacy["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
    assert networking.create_namespaced_ingress(ns, legacy).spec.ingress_class_name is None
    for name in (older, newer, plain):
        networking.delete_ingress_class(name)


def _now_after(api: Any, moment: Any) -> bool:
    probe = client.CoreV1Api(api).create_namespace(
        {"metadata": {"generateName": "clock-"}}, dry_run="All"
    )
    return bool(probe.metadata.creation_timestamp > moment)
