"""Helpers for the workload tests driven with the real kubectl: reading Pods and ReplicaSets
back, and `PodCensus`, which watches a Deployment's Pods through a rollout and remembers the
extremes it saw.

Why a watch and not polling: a rollout passes through many states in a second, and polling
would miss most of them. The census lists the Pods once and then applies every watch event in
order, so it checks the bounds in every state the API server went through.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubectl_support import Kubectl
from kubernetes import client, watch

REVISION = "deployment.kubernetes.io/revision"


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def live_pods(kubectl: Kubectl, app: str) -> list[dict[str, Any]]:
    """The Pods labelled `app=<app>` that are not being deleted."""
    items = kubectl.get_json("pods", "-l", f"app={app}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def replicasets(kubectl: Kubectl, app: str) -> dict[str, dict[str, Any]]:
    """The ReplicaSets labelled `app=<app>`, by name."""
    items = kubectl.get_json("replicasets", "-l", f"app={app}")["items"]
    return {rs["metadata"]["name"]: rs for rs in items}


def revision(rs: dict[str, Any]) -> str:
    return str((rs["metadata"].get("annotations") or {}).get(REVISION, ""))


def image(obj: dict[str, Any]) -> str:
    """The first container's image of a Pod, or of a ReplicaSet's or Deployment's template."""
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    return str(spec["containers"][0]["image"])


def rollout_status(kubectl: Kubectl, name: str, timeout: str = "60s") -> str:
    """`kubectl rollout status` to success; returns its output."""
    return kubectl("rollout", "status", f"deployment/{name}", f"--timeout={timeout}").stdout


class PodCensus:
    """Counts the live (not being deleted) and the ready Pods of one label selector, after
    every watch event, and keeps the largest live count and the smallest ready count.

    A thread runs the watch in rounds of `round_seconds` (the server ends each stream), so
    that `stop()` returns within one round and the connection is closed, not leaked."""

    def __init__(
        self, api: client.ApiClient, namespace: str, selector: str, round_seconds: int = 1
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.selector = selector
        self.round_seconds = round_seconds
        self.pods: dict[str, dict[str, Any]] = {}
        self.max_live = 0
        self.min_ready = 0
        self.history: list[tuple[int, int]] = []  # (live, ready) after each change
        self.error: BaseException | None = None
        self._lock = threading.Lock()  # the watch thread writes, the test reads
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._resource_version = ""

    def counts(self) -> tuple[int, int]:
        """(live, ready) Pods now, as far as the watch has seen."""
        with self._lock:
            pods = list(self.pods.values())
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(live), sum(1 for p in live if is_ready(p))

    def _record(self) -> None:
        live, ready = self.counts()
        if not self.history or self.history[-1] != (live, ready):
            self.history.append((live, ready))
        self.max_live = max(self.max_live, live)
        self.min_ready = min(self.min_ready, ready)

    def start(self) -> None:
        listed = self.core.api_client.sanitize_for_serialization(
            self.core.list_namespaced_pod(self.namespace, label_selector=self.selector)
        )
        self.pods = {p["metadata"]["name"]: p for p in listed["items"]}
        self._resource_version = listed["metadata"]["resourceVersion"]
        self.max_live, self.min_ready = self.counts()
        self.history = [(self.max_live, self.min_ready)]
        self._thread = threading.Thread(target=self._run, daemon=True, name="pod-census")
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._one_round()
        except BaseException as err:  # reported by stop()
            self.error = err

    def _one_round(self) -> None:
        stream = watch.Watch().stream(
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=self.selector,
            resource_version=self._resource_version,
            timeout_seconds=self.round_seconds,
            _request_timeout=self.round_seconds + 30,
        )
        for event in stream:
            pod = event["raw_object"]
            if event["type"] == "ERROR":
                raise RuntimeError(f"watch error: {pod}")
            self._resource_version = pod["metadata"]["resourceVersion"]
            if event["type"] == "BOOKMARK":
                continue
            name = pod["metadata"]["name"]
            with self._lock:
                if event["type"] == "DELETED":
                    self.pods.pop(name, None)
                else:
                    self.pods[name] = pod
            self._record()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.round_seconds + 35)
            if self._thread.is_alive():
                raise AssertionError("the pod census did not stop")
        if self.error is not None:
            raise AssertionError(f"the pod census failed: {self.error!r}")


@contextmanager
def pod_census(api: client.ApiClient, namespace: str, app: str) -> Iterator[PodCensus]:
    """A running `PodCensus` of the Pods labelled `app=<app>`; stopped at the end."""
    census = PodCensus(api, namespace, f"app={app}")
    census.start()
    try:
        yield census
    finally:
        census.stop()


def replicaset(name: str, replicas: int = 2, image: str = "nginx:1.25") -> dict[str, Any]:
    """An apps/v1 ReplicaSet manifest of `replicas` Pods labelled `app=<name>`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }
