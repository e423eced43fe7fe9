"""Pitfall warnings (kubeling/apiserver/pitfalls.py): a write that walks into a well-known
production trap is stored, and kubectl prints one "Warning: ..." line saying what to change;
a manifest without the trap is applied in silence."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubectl_support import Kubectl, deployment, pod, service

from kubeling.testing.cluster import wait_for

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
READY = {"readinessProbe": {"httpGet": {"path": "/healthz", "port": 80}}}
LIVE = {"livenessProbe": {"httpGet": {"path": "/livez", "port": 80}}}


def printed_warnings(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The warnings kubectl printed; anything else on its stderr fails the test."""
    lines = result.stderr.splitlines()
    assert all(line.startswith("Warning: ") for line in lines), result.stderr
    return [line.removeprefix("Warning: ") for line in lines]


def apply(kubectl: Kubectl, *manifests: dict[str, Any], args: tuple[str, ...] = ()) -> list[str]:
    """`kubectl apply -f -` of `manifests`; the warnings it printed."""
    result = kubectl("apply", "-f", "-", *args, input=yaml.safe_dump_all(manifests))
    return printed_warnings(result)


def in_watch_cache(kubectl: Kubectl, path: str, name: str) -> None:
    """Wait until the API server's watch cache, which the Service rule reads, holds `name`
    (a list at resourceVersion 0 is served from that cache)."""

    def cached() -> bool:
        raw = kubectl("get", "--raw", f"{path}?resourceVersion=0").stdout
        return name in [item["metadata"]["name"] for item in json.loads(raw)["items"]]

    wait_for(cached, message=f"{name} in the watch cache")


def with_strategy(replicas: int, strategy: dict[str, Any]) -> dict[str, Any]:
    manifest = deployment("web", replicas=replicas)
    manifest["spec"]["strategy"] = strategy
    return manifest


def owned_pod(name: str) -> dict[str, Any]:
    manifest = pod(name)
    manifest["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web-1",
            "uid": "00000000-0000-0000-0000-000000000001",
            "controller": True,
        }
    ]
    return manifest


# -- 1. a Service sends traffic to a container without a readinessProbe ----------------------


def test_a_deployment_a_service_selects_without_readiness_probe_warns_and_is_stored(
    kubectl: Kubectl,
) -> None:
    apply(kubectl, service("web"))
    in_watch_cache(kubectl, f"/api/v1/namespaces/{kubectl.ns}/services", "web")

    warned = apply(kubectl, deployment("web", **LIVE))

    assert len(warned) == 1, warned
    assert warned[0].startswith('Deployment "web": container "web" has no readinessProbe but ')
    assert 'Service "web" selects its pods' in warned[0]
    assert warned[0].endswith('add a readinessProbe to container "web"')
    stored = kubectl.get_json("deployment", "web")
    assert stored["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]


def test_a_deployment_with_a_readiness_probe_under_a_service_is_silent(kubectl: Kubectl) -> None:
    apply(kubectl, service("web"))
    in_watch_cache(kubectl, f"/api/v1/namespaces/{kubectl.ns}/services", "web")

    assert apply(kubectl, deployment("web", **READY, **LIVE)) == []


def test_a_service_warns_of_the_deployment_it_selects_without_readiness_probe(
    kubectl: Kubectl,
) -> None:
    assert apply(kubectl, deployment("web")) == []
    in_watch_cache(kubectl, f"/apis/apps/v1/namespaces/{kubectl.ns}/deployments", "web")

    warned = apply(kubectl, service("web"))

    # The Deployment is named, not its ReplicaSet (which has a controller).
    assert len(warned) == 1, warned
    assert warned[0].startswith('Deployment "web": container "web" has no readinessProbe')
    assert 'Service "web" selects its pods' in warned[0]


def test_only_containers_serving_the_service_need_a_readiness_probe(kubectl: Kubectl) -> None:
    web = deployment("web", **READY)
    web["spec"]["template"]["spec"]["containers"].append({"name": "logs", "image": "busybox"})
    apply(kubectl, web)
    in_watch_cache(kubectl, f"/apis/apps/v1/namespaces/{kubectl.ns}/deployments", "web")
    front = service("web")
    front["spec"]["ports"][0]["targetPort"] = 80  # the "web" container's port, not "logs"'s

    assert apply(kubectl, front) == []


# -- 2. liveness checks what readiness checks ---------------------------------------------------


def test_a_liveness_probe_identical_to_the_readiness_probe_warns(kubectl: Kubectl) -> None:
    # The same check, once by port name and once by number.
    manifest = deployment(
        "web",
        ports=[{"name": "http", "containerPort": 80}],
        readinessProbe={"httpGet": {"path": "/healthz", "port": 80}},
        livenessProbe={"httpGet": {"path": "/healthz", "port": "http"}, "failureThreshold": 3},
    )

    warned = apply(kubectl, manifest)

    assert len(warned) == 1, warned
    assert warned[0].startswith(
        'Deployment "web": container "web" has a livenessProbe that checks the same as its '
        "readinessProbe (httpGet /healthz on port 80)"
    )
    assert warned[0].endswith("point the livenessProbe at a check of the process alone")


def test_a_liveness_probe_with_its_own_check_is_silent(kubectl: Kubectl) -> None:
    assert apply(kubectl, deployment("web", **READY, **LIVE)) == []


def test_the_same_check_with_a_more_patient_liveness_probe_is_silent(kubectl: Kubectl) -> None:
    """The pattern the Kubernetes docs name: liveness gives up only long after readiness."""
    manifest = deployment(
        "web",
        readinessProbe={"httpGet": {"path": "/healthz", "port": 80}},
        livenessProbe={"httpGet": {"path": "/healthz", "port": 80}, "failureThreshold": 10},
    )

    assert apply(kubectl, manifest) == []


# -- 3. a long initialDelaySeconds instead of a startupProbe -----------------------------------


@pytest.mark.parametrize(
    ("delay", "startup", "warns"),
    [
        (60, None, True),
        (30, None, False),  # the threshold: over 30 s
        (60, {"httpGet": {"path": "/livez", "port": 80}, "failureThreshold": 30}, False),
    ],
)
def test_a_long_liveness_delay_without_startup_probe_warns(
    kubectl: Kubectl, delay: int, startup: dict[str, Any] | None, warns: bool
) -> None:
    probes: dict[str, Any] = {
        "livenessProbe": {**LIVE["livenessProbe"], "initialDelaySeconds": delay},
        **({"startupProbe": startup} if startup else {}),
    }

    warned = apply(kubectl, deployment("web", **READY, **probes))

    if not warns:
        assert warned == []
        return
    assert len(warned) == 1, warned
    assert warned[0].startswith(
        'Deployment "web": container "web" has livenessProbe.initialDelaySeconds 60 and no '
        "startupProbe"
    )
    assert "add a startupProbe" in warned[0]


# -- 4. a bare Pod --------------------------------------------------------------------------------


def test_a_bare_pod_warns_at_create_only(kubectl: Kubectl) -> None:
    warned = apply(kubectl, pod("solo"))

    assert warned == [
        'Pod "solo" has no controller: nothing recreates it if it is deleted, evicted or its '
        "node goes away; run it from a Deployment instead"
    ]
    assert printed_warnings(kubectl("label", "pod", "solo", "tier=web")) == []
    assert kubectl.get_json("pod", "solo")["metadata"]["labels"]["tier"] == "web"


def test_a_pod_with_a_controller_is_not_checked(kubectl: Kubectl) -> None:
    # Identical probes too: the owner's template was checked when the owner was written.
    manifest = owned_pod("owned")
    probe = {"tcpSocket": {"port": 80}}
    manifest["spec"]["containers"][0].update(livenessProbe=probe, readinessProbe=probe)

    assert printed_warnings(kubectl("create", "-f", "-", input=yaml.safe_dump(manifest))) == []


def test_a_run_once_pod_and_a_kube_system_pod_are_silent(kubectl: Kubectl) -> None:
    once = pod("once")
    once["spec"]["restartPolicy"] = "Never"
    assert apply(kubectl, once) == []

    name = f"system-{kubectl.ns}"
    try:
        result = kubectl(
            "create", "-f", "-", namespace="kube-system", input=yaml.safe_dump(pod(name))
        )
        assert printed_warnings(result) == []
    finally:
        kubectl("delete", "pod", name, "--wait=false", namespace="kube-system")


# -- 5. a rollout that may leave no pod available ---------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "rolling", "why"),
    [
        (1, {"maxUnavailable": 1}, "maxUnavailable 1"),
        (1, {"maxUnavailable": "100%"}, "maxUnavailable 100%"),
        (3, {"maxUnavailable": 3, "maxSurge": 0}, "maxUnavailable 3"),
        # Both round to 0: the controller takes one pod down anyway, so the rollout can move.
        (1, {"maxSurge": 0, "maxUnavailable": "50%"}, "both resolve to 0"),
    ],
)
def test_a_rollout_that_may_leave_no_pod_available_warns(
    kubectl: Kubectl, replicas: int, rolling: dict[str, Any], why: str
) -> None:
    manifest = with_strategy(replicas, {"type": "RollingUpdate", "rollingUpdate": rolling})

    warned = apply(kubectl, manifest)

    assert len(warned) == 1, warned
    assert warned[0].startswith(
        f'Deployment "web": a rolling update may leave no pod available (replicas {replicas}, '
    )
    assert why in warned[0]
    assert warned[0].endswith("e.g. maxUnavailable 0 with maxSurge 1")


@pytest.mark.parametrize(
    ("replicas", "strategy"),
    [
        (1, {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
        (1, None),  # the defaults: 25 % each, unavailable rounds down to 0
        (3, {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}),
        (1, {"type": "Recreate"}),  # downtime by choice
    ],
)
def test_a_rollout_that_keeps_a_pod_available_is_silent(
    kubectl: Kubectl, replicas: int, strategy: dict[str, Any] | None
) -> None:
    manifest = (
        with_strategy(replicas, strategy) if strategy else deployment("web", replicas=replicas)
    )

    assert apply(kubectl, manifest) == []


def test_scaling_down_rechecks_the_rollout_alone(kubectl: Kubectl) -> None:
    manifest = with_strategy(2, {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})
    manifest["spec"]["template"]["spec"]["containers"][0].update(
        livenessProbe={"tcpSocket": {"port": 80}}, readinessProbe={"tcpSocket": {"port": 80}}
    )
    assert len(apply(kubectl, manifest)) == 1  # the probes; 2 - 1 leaves a pod available

    warned = printed_warnings(kubectl("scale", "deployment/web", "--replicas=1"))

    assert len(warned) == 1, warned
    assert "a rolling update may leave no pod available (replicas 1" in warned[0]


# -- which writes warn --------------------------------------------------------------------------


def test_a_dry_run_warns_and_stores_nothing(kubectl: Kubectl) -> None:
    warned = apply(kubectl, pod("solo"), args=("--dry-run=server",))

    assert len(warned) == 1 and warned[0].startswith('Pod "solo" has no controller'), warned
    assert kubectl.absent("pod", "solo")


def test_only_writes_that_change_what_a_rule_reads_warn_again(kubectl: Kubectl) -> None:
    probe = {"httpGet": {"path": "/healthz", "port": 80}}
    manifest = deployment("web", livenessProbe=probe, readinessProbe=probe)
    assert len(apply(kubectl, manifest)) == 1

    assert apply(kubectl, manifest) == []  # unchanged
    assert printed_warnings(kubectl("annotate", "deployment", "web", "team=a")) == []
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert len(apply(kubectl, manifest)) == 1  # a new pod template is checked again


def test_status_writes_never_warn(kubectl: Kubectl) -> None:
    apply(kubectl, pod("solo"))

    result = kubectl(
        "patch",
        "pod",
        "solo",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"message": "checked"}}',
    )

    assert printed_warnings(result) == []


def test_applying_the_examples_prints_no_warning(kubectl: Kubectl) -> None:
    result = kubectl("apply", "-f", str(EXAMPLES))

    assert "deployment.apps/hello created" in result.stdout, result.stdout
    assert printed_warnings(result) == []
