"""The Deployment controller in a whole cluster (controllers, scheduler, 2 simulated nodes),
driven by the official Python client: strategies, pause, deadlines, history, adoption and
idempotence. The kubectl-facing behaviour is in tests/e2e/test_deployments_kubectl.py."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from kubeling.api.kinds import REGISTRY
from kubeling.client.events import EventRecorder
from kubeling.client.informer import SharedInformerFactory
from kubeling.client.rest import Client
from kubeling.controllers.deployment import DeploymentReconciler
from kubeling.controllers.deployment.replicasets import HASH_LABEL, REVISION
from kubeling.testing import TestCluster, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(fake_nodes=2) as c:
        yield c


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    name = f"d-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def deployment(name: str, replicas: int = 2, image: str = "v1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


def set_image(apps: client.AppsV1Api, ns: str, name: str, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
    apps.patch_namespaced_deployment(name, ns, patch)


def replicasets(apps: client.AppsV1Api, ns: str) -> list[Any]:
    return list(apps.list_namespaced_replica_set(ns).items)


def rolled_out(apps: client.AppsV1Api, ns: str, name: str) -> bool:
    d = apps.read_namespaced_deployment(name, ns)
    s = d.status
    want = d.spec.replicas
    return bool(
        (s.observed_generation or 0) >= d.metadata.generation
        and (s.updated_replicas or 0) == want
        and (s.replicas or 0) == want
        and (s.available_replicas or 0) == want
    )


def condition(apps: client.AppsV1Api, ns: str, name: str, type_: str) -> Any:
    for c in apps.read_namespaced_deployment(name, ns).status.conditions or []:
        if c.type == type_:
            return c
    return None


def test_recreate_removes_every_old_pod_before_the_first_new_one(
    cluster: TestCluster, apps: client.AppsV1Api, core: client.CoreV1Api, ns: str
) -> None:
    apps.create_namespaced_deployment(ns, deployment("re", 3, strategy={"type": "Recreate"}))
    wait_for(lambda: rolled_out(apps, ns, "re"), message="first rollout")
    live: dict[str, str] = {}
    overlaps: list[set[str]] = []
    watcher = watch.Watch()
    start_rv = core.list_namespaced_pod(ns).metadata.resource_version
    ready = threading.Event()

    stopping = threading.Event()

    def observe() -> None:
        ready.set()
        try:
            for event in watcher.stream(
                core.list_namespaced_pod, ns, resource_version=start_rv, timeout_seconds=60
            ):
                pod = event["object"]
                gone = event["type"] == "DELETED" or pod.metadata.deletion_timestamp is not None
                if gone:
                    live.pop(pod.metadata.name, None)
                else:
                    live[pod.metadata.name] = pod.metadata.labels[HASH_LABEL]
                if len(set(live.values())) > 1:
                    overlaps.append(set(live.values()))
        except Exception:
            if not stopping.is_set():  # closing the stream to stop the watch is expected
                raise

    thread = threading.Thread(target=observe, daemon=True)
    for pod in core.list_namespaced_pod(ns).items:
        live[pod.metadata.name] = pod.metadata.labels[HASH_LABEL]
    thread.start()
    ready.wait(10)
    set_image(apps, ns, "re", "v2")
    wait_for(lambda: rolled_out(apps, ns, "re"), message="the recreate rollout")
    wait_for(lambda: len(live) == 3 and len(set(live.values())) == 1, message="3 new pods seen")
    stopping.set()
    watcher.stop()
    thread.join(10)
    assert overlaps == []


def test_a_paused_deployment_rolls_nothing_until_resumed(apps: client.AppsV1Api, ns: str) -> None:
    apps.create_namespaced_deployment(ns, deployment("p", 2))
    wait_for(lambda: rolled_out(apps, ns, "p"), message="first rollout")
    apps.patch_namespaced_deployment("p", ns, {"spec": {"paused": True}})
    wait_for(
        lambda: condition(apps, ns, "p", "Progressing").reason == "DeploymentPaused",
        message="Progressing=Unknown DeploymentPaused",
    )
    assert condition(apps, ns, "p", "Progressing").status == "Unknown"
    set_image(apps, ns, "p", "v2")
    wait_for(
        lambda: (
            apps.read_namespaced_deployment("p", ns).status.observed_generation
            == apps.read_namespaced_deployment("p", ns).metadata.generation
        ),
        message="the paused change observed",
    )
    assert len(replicasets(apps, ns)) == 1
    apps.patch_namespaced_deployment("p", ns, {"spec": {"paused": None}})
    wait_for(lambda: len(replicasets(apps, ns)) == 2, message="a new ReplicaSet after resume")
    wait_for(lambda: rolled_out(apps, ns, "p"), message="the resumed rollout")
    assert condition(apps, ns, "p", "Progressing").reason == "NewReplicaSetAvailable"


def test_a_stalled_rollout_reports_progress_deadline_exceeded(
    apps: client.AppsV1Api, ns: str
) -> None:
    apps.create_namespaced_deployment(ns, deployment("slow", 2, progressDeadlineSeconds=2))
    wait_for(lambda: rolled_out(apps, ns, "slow"), message="first rollout")
    patch = {"spec": {"template": {"spec": {"nodeSelector": {"no-such": "node"}}}}}
    apps.patch_namespaced_deployment("slow", ns, patch)
    wait_for(
        lambda: condition(apps, ns, "slow", "Progressing").reason == "ProgressDeadlineExceeded",
        timeout=30,
        message="the deadline to pass",
    )
    stalled = condition(apps, ns, "slow", "Progressing")
    assert stalled.status == "False"
    assert "has timed out progressing" in stalled.message
    # The old pods keep serving: at most maxUnavailable (0 of 2 rounds down... to 1 with
    # surge 1) may be gone.
    assert (apps.read_namespaced_deployment("slow", ns).status.available_replicas or 0) >= 1


def test_old_replicasets_beyond_the_history_limit_are_deleted(
    apps: client.AppsV1Api, ns: str
) -> None:
    apps.create_namespaced_deployment(ns, deployment("h", 1, revisionHistoryLimit=1))
    for image in ("v2", "v3", "v4"):
        wait_for(lambda: rolled_out(apps, ns, "h"), message=f"rollout before {image}")
        set_image(apps, ns, "h", image)
    wait_for(lambda: rolled_out(apps, ns, "h"), message="the last rollout")
    wait_for(lambda: len(replicasets(apps, ns)) == 2, message="history trimmed to 1 old RS")
    revisions = sorted(int(rs.metadata.annotations[REVISION]) for rs in replicasets(apps, ns))
    assert revisions == [3, 4]
    assert apps.read_namespaced_deployment("h", ns).metadata.annotations[REVISION] == "4"


def test_an_orphan_replicaset_with_the_template_is_adopted_not_duplicated(
    apps: client.AppsV1Api, ns: str
) -> None:
    apps.create_namespaced_deployment(ns, deployment("a", 2))
    wait_for(lambda: rolled_out(apps, ns, "a"), message="first rollout")
    first = replicasets(apps, ns)[0]
    apps.delete_namespaced_deployment("a", ns, propagation_policy="Orphan")
    wait_for(
        lambda: not replicasets(apps, ns)[0].metadata.owner_references,
        message="the ReplicaSet orphaned",
    )
    wait_for(
        lambda: all(d.metadata.name != "a" for d in apps.list_namespaced_deployment(ns).items),
        message="the Deployment gone",
    )
    apps.create_namespaced_deployment(ns, deployment("a", 2))
    wait_for(
        lambda: replicasets(apps, ns)[0].metadata.owner_references,
        message="the ReplicaSet adopted",
    )
    wait_for(lambda: rolled_out(apps, ns, "a"), message="the adopted rollout")
    found = replicasets(apps, ns)
    assert [rs.metadata.name for rs in found] == [first.metadata.name]
    owner = apps.read_namespaced_deployment("a", ns).metadata.uid
    assert found[0].metadata.owner_references[0].uid == owner


def test_reconciling_a_finished_rollout_again_writes_nothing(
    cluster: TestCluster, apps: client.AppsV1Api, core: client.CoreV1Api, ns: str
) -> None:
    apps.create_namespaced_deployment(ns, deployment("idem", 3))
    wait_for(lambda: rolled_out(apps, ns, "idem"), message="first rollout")
    set_image(apps, ns, "idem", "v2")
    wait_for(lambda: rolled_out(apps, ns, "idem"), message="second rollout")
    wait_for(
        lambda: condition(apps, ns, "idem", "Progressing").reason == "NewReplicaSetAvailable",
        message="complete",
    )

    def versions() -> dict[str, str]:
        found = {rs.metadata.name: rs.metadata.resource_version for rs in replicasets(apps, ns)}
        found["deployment"] = apps.read_namespaced_deployment("idem", ns).metadata.resource_version
        return found

    before = versions()
    pods_before = sorted(p.metadata.name for p in core.list_namespaced_pod(ns).items)

    async def reconcile_twice() -> None:
        # A second, independent controller with its own caches, as after a restart or
        # with two controller managers running.
        api = Client.from_kubeconfig(str(cluster.kubeconfig))
        informers = SharedInformerFactory(api)
        recorder = EventRecorder(api, "second-deployment-controller")
        try:
            reconciler = DeploymentReconciler(
                api,
                informers.informer(REGISTRY.resource("apps", "v1", "deployments")),
                informers.informer(REGISTRY.resource("apps", "v1", "replicasets")),
                informers.informer(REGISTRY.resource("", "v1", "pods")),
                recorder,
            )
            informers.start()
            await informers.wait_for_cache_sync(30)
            for _ in range(2):
                await reconciler.reconcile(f"{ns}/idem")
        finally:
            await recorder.close()
            await informers.shutdown()
            await api.close()

    cluster.run(reconcile_twice())
    assert versions() == before
    assert sorted(p.metadata.name for p in core.list_namespaced_pod(ns).items) == pods_before
