"""Deployment rollouts driven with the real kubectl, checked against Kubernetes' documented
behaviour (kubernetes.io, "Deployments"): rolling updates within maxSurge / maxUnavailable,
history and undo, pause / resume / restart, proportional scaling, the progress deadline,
cascading deletion, events and conditions, and a server restart mid-rollout.

The cluster has three simulated nodes: Pods become Running and Ready about half a second
after they are bound. A Pod that must never run gets a nodeSelector that no node matches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubectl_support import Kubectl, configmap, deployment, pod, table
from workload_support import (
    image,
    is_ready,
    live_pods,
    pod_census,
    replicasets,
    revision,
    rollout_status,
)

from kubeling.testing.cluster import TestCluster, pinned_kubectl, wait_for

pytestmark = pytest.mark.e2e

NOWHERE = {"kubeling.test/node": "none"}  # a nodeSelector that matches no node


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(fake_nodes=3) as running:
        yield running


@pytest.fixture
def kubectl(cluster: TestCluster, ns: str) -> Iterator[Kubectl]:
    runner = Kubectl(cluster, pinned_kubectl(), ns)
    try:
        yield runner
    finally:
        runner.kill_started()


def web(replicas: int, surge: int | str = "25%", unavailable: int | str = "25%") -> dict:
    """The Deployment `web` (image nginx:1.25) with a RollingUpdate strategy."""
    manifest = deployment("web", replicas=replicas)
    manifest["spec"]["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }
    return manifest


def rolled_out(kubectl: Kubectl, manifest: dict[str, Any]) -> dict[str, Any]:
    """Apply `manifest`, wait for `kubectl rollout status` to succeed; the ReplicaSet."""
    kubectl.apply_manifest(manifest)
    rollout_status(kubectl, manifest["metadata"]["name"])
    (rs,) = replicasets(kubectl, manifest["metadata"]["name"]).values()
    return rs


def new_and_old(kubectl: Kubectl, first: dict[str, Any]) -> tuple[dict, dict]:
    """After a template change: (the one new ReplicaSet, the first one as it is now)."""
    sets = replicasets(kubectl, "web")
    assert len(sets) == 2, sorted(sets)
    old = sets.pop(first["metadata"]["name"])
    (new,) = sets.values()
    return new, old


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


def observed(kubectl: Kubectl, name: str = "web") -> dict[str, Any]:
    """The Deployment once its controller has seen its latest spec."""

    def current() -> dict[str, Any]:
        d = kubectl.get_json("deployment", name)
        return d if d["status"].get("observedGeneration") == d["metadata"]["generation"] else {}

    return wait_for(current, timeout=30, interval=0.1, message=f"deployment {name} observed")


def spec_replicas(kubectl: Kubectl) -> dict[str, int]:
    return {n: rs["spec"]["replicas"] for n, rs in replicasets(kubectl, "web").items()}


# -- rolling out ----------------------------------------------------------------------------


def test_applied_deployment_rolls_out_and_rollout_status_reports_success(
    kubectl: Kubectl,
) -> None:
    kubectl.apply_manifest(web(replicas=5))

    out = rollout_status(kubectl, "web")

    assert 'deployment "web" successfully rolled out' in out, out
    pods = live_pods(kubectl, "web")
    assert len(pods) == 5 and all(is_ready(p) for p in pods)
    status = kubectl.get_json("deployment", "web")["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (5, 5, 5)


@pytest.mark.parametrize(
    ("surge", "unavailable", "most", "fewest_ready"),
    [("25%", "25%", 5, 3), (0, 1, 4, 3), (1, 0, 5, 4)],
    ids=["surge-25%-unavailable-25%", "surge-0-unavailable-1", "surge-1-unavailable-0"],
)
def test_set_image_rolls_out_a_new_replicaset_within_surge_and_unavailability(
    kubectl: Kubectl,
    api: Any,
    ns: str,
    surge: int | str,
    unavailable: int | str,
    most: int,
    fewest_ready: int,
) -> None:
    # 4 replicas: 25% surge rounds up to 1, 25% unavailable rounds down to 1.
    first = rolled_out(kubectl, web(replicas=4, surge=surge, unavailable=unavailable))

    with pod_census(api, ns, "web") as census:
        kubectl("set", "image", "deployment/web", "web=nginx:1.26")
        rollout_status(kubectl, "web")
        wait_for(lambda: census.counts() == (4, 4), timeout=30, message="4 ready pods seen")

    new, old = new_and_old(kubectl, first)
    assert (image(new), new["spec"]["replicas"]) == ("nginx:1.26", 4)
    assert old["spec"]["replicas"] == 0
    assert {image(p) for p in live_pods(kubectl, "web")} == {"nginx:1.26"}
    assert census.max_live <= most, census.history
    assert census.min_ready >= fewest_ready, census.history
    assert len(census.history) > 2, census.history  # the census did see the rollout


# -- history and undo -----------------------------------------------------------------------


def test_rollout_history_lists_both_revisions(kubectl: Kubectl) -> None:
    rolled_out(kubectl, web(replicas=2))
    kubectl("set", "image", "deployment/web", "web=nginx:1.26")
    rollout_status(kubectl, "web")

    out = kubectl("rollout", "history", "deployment/web").stdout

    header, rows = table(out.split("\n", 1)[1])  # after the "deployment.apps/web" line
    assert header == ["REVISION", "CHANGE-CAUSE"], out
    assert sorted(rows) == ["1", "2"], out


def test_rollout_undo_scales_the_previous_replicaset_back_up(kubectl: Kubectl) -> None:
    first = rolled_out(kubectl, web(replicas=2))
    kubectl("set", "image", "deployment/web", "web=nginx:1.26")
    rollout_status(kubectl, "web")

    kubectl("rollout", "undo", "deployment/web")
    rollout_status(kubectl, "web")

    new, old = new_and_old(kubectl, first)  # no third ReplicaSet: the first one came back
    assert (old["spec"]["replicas"], revision(old), image(old)) == (2, "3", "nginx:1.25")
    assert (new["spec"]["replicas"], revision(new)) == (0, "2")
    assert image(kubectl.get_json("deployment", "web")) == "nginx:1.25"
    assert {image(p) for p in live_pods(kubectl, "web")} == {"nginx:1.25"}


# -- pause, resume, restart -----------------------------------------------------------------


def test_paused_deployment_rolls_out_a_template_change_only_when_resumed(
    kubectl: Kubectl,
) -> None:
    first = rolled_out(kubectl, web(replicas=2))
    kubectl("rollout", "pause", "deployment/web")
    kubectl("set", "image", "deployment/web", "web=nginx:1.26")

    paused = observed(kubectl)
    assert condition(paused, "Progressing").get("reason") == "DeploymentPaused", paused["status"]
    assert list(replicasets(kubectl, "web")) == [first["metadata"]["name"]]

    kubectl("rollout", "resume", "deployment/web")
    rollout_status(kubectl, "web")

    new, old = new_and_old(kubectl, first)
    assert (image(new), new["spec"]["replicas"], old["spec"]["replicas"]) == ("nginx:1.26", 2, 0)


def test_rollout_restart_replaces_every_pod_through_a_new_replicaset(kubectl: Kubectl) -> None:
    first = rolled_out(kubectl, web(replicas=2))
    before = {p["metadata"]["name"] for p in live_pods(kubectl, "web")}

    kubectl("rollout", "restart", "deployment/web")
    rollout_status(kubectl, "web")

    new, old = new_and_old(kubectl, first)
    restarted = new["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in restarted
    assert (new["spec"]["replicas"], old["spec"]["replicas"]) == (2, 0)
    wait_for(lambda: len(live_pods(kubectl, "web")) == 2, timeout=30, message="old pods deleted")
    after = {p["metadata"]["name"] for p in live_pods(kubectl, "web")}
    assert not before & after, (before, after)


def test_scaling_a_paused_rollout_scales_old_and_new_replicasets_proportionally(
    kubectl: Kubectl,
) -> None:
    # The example of kubernetes.io "Proportional scaling": 10 replicas, maxSurge 3,
    # maxUnavailable 2, and a new template that cannot become available (here: its Pods
    # cannot be scheduled). The rollout stalls with 8 old and 5 new, 13 = 10 + 3 in all.
    first = rolled_out(kubectl, web(replicas=10, surge=3, unavailable=2))
    patch = {"spec": {"template": {"spec": {"nodeSelector": NOWHERE}}}}
    kubectl("patch", "deployment", "web", "--type=merge", "-p", json.dumps(patch))
    old_name = first["metadata"]["name"]

    def stalled() -> dict[str, int]:
        counts = spec_replicas(kubectl)
        new = [n for name, n in counts.items() if name != old_name]
        return counts if (counts.get(old_name), new) == (8, [5]) else {}

    wait_for(stalled, timeout=30, interval=0.2, message="8 old and 5 new replicas")
    kubectl("rollout", "pause", "deployment/web")
    observed(kubectl)

    kubectl("scale", "deployment/web", "--replicas=15")

    # 15 + 3 = 18 allowed, 5 to add: old 8 * 18 / 13 = 11.08 → 11, new 5 * 18 / 13 = 6.9 → 7.
    def scaled() -> dict[str, int]:
        counts = spec_replicas(kubectl)
        return counts if sum(counts.values()) == 18 else {}

    counts = wait_for(scaled, timeout=30, interval=0.2, message="18 replicas in all")
    new_name = next(name for name in counts if name != old_name)
    assert (counts[old_name], counts[new_name]) == (11, 7), counts


# -- progress deadline ----------------------------------------------------------------------


def test_rollout_that_cannot_progress_exceeds_its_progress_deadline(kubectl: Kubectl) -> None:
    manifest = web(replicas=1)
    manifest["spec"]["progressDeadlineSeconds"] = 3
    manifest["spec"]["template"]["spec"]["nodeSelector"] = NOWHERE
    kubectl.apply_manifest(manifest)

    def exceeded() -> dict[str, Any]:
        c = condition(kubectl.get_json("deployment", "web"), "Progressing")
        return c if c.get("reason") == "ProgressDeadlineExceeded" else {}

    progressing = wait_for(exceeded, timeout=30, interval=0.2, message="deadline exceeded")
    assert progressing["status"] == "False", progressing

    result = kubectl("rollout", "status", "deployment/web", "--timeout=30s", check=False)
    assert result.returncode != 0, result
    assert 'deployment "web" exceeded its progress deadline' in result.stderr, result.stderr


# -- deletion -------------------------------------------------------------------------------


@pytest.mark.parametrize("cascade", ["background", "foreground"])
def test_deleting_a_deployment_removes_its_replicasets_and_pods(
    kubectl: Kubectl, cascade: str
) -> None:
    rolled_out(kubectl, web(replicas=2))

    kubectl("delete", "deployment", "web", f"--cascade={cascade}")

    def all_gone() -> bool:
        return not replicasets(kubectl, "web") and not kubectl.get_json("pods")["items"]

    wait_for(all_gone, timeout=30, interval=0.2, message="replicasets and pods deleted")


def test_orphan_deletion_leaves_the_replicaset_and_pods_without_an_owner(
    kubectl: Kubectl,
) -> None:
    first = rolled_out(kubectl, web(replicas=2))
    pods = {p["metadata"]["name"] for p in live_pods(kubectl, "web")}

    kubectl("delete", "deployment", "web", "--cascade=orphan")  # waits until it is gone

    assert kubectl.absent("deployment", "web")
    (rs,) = replicasets(kubectl, "web").values()
    assert rs["metadata"]["uid"] == first["metadata"]["uid"]
    assert not rs["metadata"].get("ownerReferences"), rs["metadata"]
    assert rs["spec"]["replicas"] == 2
    assert {p["metadata"]["name"] for p in live_pods(kubectl, "web")} == pods


def test_deleting_a_namespace_removes_its_deployments_replicasets_and_pods(
    kubectl: Kubectl, ns: str
) -> None:
    rolled_out(kubectl, web(replicas=2))
    kubectl.create_manifest(pod("lonely"))
    kubectl.create_manifest(configmap("settings", mode="fast"))

    kubectl("delete", "namespace", ns, "--timeout=60s")  # waits until the namespace is gone

    assert kubectl.absent("namespace", ns)
    for kind in ("deployments", "replicasets", "pods", "configmaps"):
        assert kubectl.get_json(kind)["items"] == [], kind


# -- events and conditions ------------------------------------------------------------------


def test_describe_deployment_shows_its_scaling_replicaset_events(kubectl: Kubectl) -> None:
    rs = rolled_out(kubectl, web(replicas=2))
    scaled_up = f"Scaled up replica set {rs['metadata']['name']}"

    def described() -> str:
        out = kubectl("describe", "deployment", "web").stdout
        return out if "ScalingReplicaSet" in out and scaled_up in out else ""

    out = wait_for(described, timeout=30, interval=0.3, message="ScalingReplicaSet event")
    assert "Events:" in out, out


def test_wait_for_condition_available_succeeds(kubectl: Kubectl) -> None:
    kubectl.apply_manifest(web(replicas=2))

    result = kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=60s")

    assert result.stdout.strip() == "deployment.apps/web condition met", result.stdout


# -- restart --------------------------------------------------------------------------------


def test_server_restart_mid_rollout_finishes_the_rollout_without_extra_pods(
    tmp_path: Path,
) -> None:
    with TestCluster(tmp_path / "data", process=True, fake_nodes=3) as cluster:
        kubectl = Kubectl(cluster, pinned_kubectl(), "default")
        first = rolled_out(kubectl, web(replicas=4, surge=1, unavailable=0))
        kubectl("set", "image", "deployment/web", "web=nginx:1.26")

        def mid_rollout() -> dict[str, int]:
            counts = spec_replicas(kubectl)
            return counts if len(counts) == 2 else {}

        counts = wait_for(mid_rollout, timeout=30, interval=0.05, message="a new replicaset")
        cluster.kill()
        assert counts[first["metadata"]["name"]] > 0, counts  # killed mid-rollout

        cluster.start()
        api = cluster.api_client()
        try:
            with pod_census(api, "default", "web") as census:
                rollout_status(kubectl, "web")
                wait_for(lambda: census.counts() == (4, 4), timeout=30, message="4 ready pods")
        finally:
            api.close()

        new, old = new_and_old(kubectl, first)
        assert (new["spec"]["replicas"], old["spec"]["replicas"]) == (4, 0)
        assert census.max_live <= 5, census.history  # replicas + maxSurge, across the restart
        pods = live_pods(kubectl, "web")
        assert len(pods) == 4 and {image(p) for p in pods} == {"nginx:1.26"}
        assert all(
            p["metadata"]["ownerReferences"][0]["name"] == new["metadata"]["name"] for p in pods
        )
