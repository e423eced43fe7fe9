"""Compaction: history older than the kept window is gone, and clients are told so with 410
Gone (reason Expired), exactly as etcd compaction surfaces through Kubernetes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from client_support import api_status, configmap
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubeling.testing.cluster import TestCluster

KEEP = 3


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(compaction_keep=KEEP) as running:
        yield running


def _compact_past(cluster: TestCluster, core: client.CoreV1Api, ns: str, rv: str) -> None:
    """Write enough that `rv` falls out of the kept window, then compact."""
    for i in range(KEEP + 3):
        core.create_namespaced_config_map(ns, configmap(f"filler-{i}", x="1"))
    compacted = cluster.run(cluster.server.compact_now())
    assert compacted > int(rv)


def test_watch_from_a_compacted_resource_version_is_gone(
    cluster: TestCluster, core: client.CoreV1Api, ns: str
) -> None:
    old = core.create_namespaced_config_map(ns, configmap("old", x="1")).metadata.resource_version
    core.patch_namespaced_config_map("old", ns, {"data": {"x": "2"}})
    _compact_past(cluster, core, ns, old)

    w = watch.Watch()
    with pytest.raises(ApiException) as err:
        # With timeout_seconds the client does not retry: a 410 (HTTP status or ERROR
        # event) surfaces as ApiException(410).
        for _ in w.stream(
            core.list_namespaced_config_map,
            ns,
            resource_version=old,
            timeout_seconds=10,
            _request_timeout=30,
        ):
            pass

    assert err.value.status == 410


def test_watch_error_event_for_a_compacted_resource_version_says_expired(
    cluster: TestCluster, core: client.CoreV1Api, ns: str
) -> None:
    old = core.create_namespaced_config_map(ns, configmap("old", x="1")).metadata.resource_version
    _compact_past(cluster, core, ns, old)

    response = core.list_namespaced_config_map(
        ns, watch=True, resource_version=old, timeout_seconds=10, _preload_content=False
    )
    try:
        body = response.read().decode()
    finally:
        response.release_conn()

    # Kubernetes answers 200 and sends one ERROR event holding a 410 Expired Status.
    assert response.status == 200
    event = json.loads(body.splitlines()[0])
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")


def test_list_at_an_exact_compacted_resource_version_is_gone(
    cluster: TestCluster, core: client.CoreV1Api, ns: str
) -> None:
    old = core.create_namespaced_config_map(ns, configmap("old", x="1")).metadata.resource_version
    _compact_past(cluster, core, ns, old)

    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(ns, resource_version=old, resource_version_match="Exact")

    api_status(err, 410, "Expired")


def test_continue_token_from_before_a_compaction_is_gone(
    cluster: TestCluster, core: client.CoreV1Api, ns: str
) -> None:
    for i in range(3):
        core.create_namespaced_config_map(ns, configmap(f"cm-{i}", x="1"))
    first = core.list_namespaced_config_map(ns, limit=1)
    _compact_past(cluster, core, ns, first.metadata.resource_version)

    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(ns, limit=1, _continue=first.metadata._continue)

    api_status(err, 410, "Expired")


def test_watch_from_a_recent_resource_version_still_works_after_compaction(
    cluster: TestCluster, core: client.CoreV1Api, ns: str
) -> None:
    old = core.create_namespaced_config_map(ns, configmap("old", x="1")).metadata.resource_version
    _compact_past(cluster, core, ns, old)
    recent = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, configmap("new", x="1"))

    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=recent,
        timeout_seconds=10,
        _request_timeout=30,
    )
    try:
        event = next(stream)
    finally:
        w.stop()
        stream.close()

    assert (event["type"], event["object"].metadata.name) == ("ADDED", "new")
