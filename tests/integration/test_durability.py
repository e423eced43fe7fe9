"""What the server acknowledged survives it: a clean stop and start, and a `kill -9` right
after the writes (the server runs as a child process so that it can really be killed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from client_support import configmap, deployment, names
from kubernetes import client

from kubeling.testing.cluster import TestCluster

WRITES = 25


@contextmanager
def connected(cluster: TestCluster) -> Iterator[Any]:
    """A client for the server as it runs now (each start picks a new port)."""
    api = cluster.api_client()
    try:
        yield api
    finally:
        api.close()


def _seed(api: Any, ns: str) -> dict[str, str]:
    """Objects of several kinds; returns {kind/name: uid}."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": ns}})
    made = [
        core.create_namespaced_config_map(ns, configmap("settings", a="1")),
        core.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "data": {"p": "MQ=="}}),
        core.create_namespaced_service(
            ns, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
        ),
        apps.create_namespaced_deployment(ns, deployment("web")),
    ]
    return {f"{type(obj).__name__}/{obj.metadata.name}": obj.metadata.uid for obj in made}


def _present(api: Any, ns: str) -> dict[str, str]:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    found = [
        core.read_namespaced_config_map("settings", ns),
        core.read_namespaced_secret("creds", ns),
        core.read_namespaced_service("web", ns),
        apps.read_namespaced_deployment("web", ns),
    ]
    return {f"{type(obj).__name__}/{obj.metadata.name}": obj.metadata.uid for obj in found}


def test_objects_survive_a_stop_and_start(tmp_path: Path) -> None:
    with TestCluster(process=True, data_dir=tmp_path) as cluster:
        with connected(cluster) as api:
            seeded = _seed(api, "durable")
            core = client.CoreV1Api(api)
            cluster_ip = core.read_namespaced_service("web", "durable").spec.cluster_ip
            last_rv = int(core.list_namespaced_config_map("durable").metadata.resource_version)

        cluster.stop()
        cluster.start()

        with connected(cluster) as api:
            core = client.CoreV1Api(api)
            assert _present(api, "durable") == seeded
            assert core.read_namespace("durable").status.phase == "Active"
            assert core.read_namespaced_config_map("settings", "durable").data == {"a": "1"}
            assert core.read_namespaced_service("web", "durable").spec.cluster_ip == cluster_ip
            # New writes continue the revision sequence: no resourceVersion is ever reused.
            created = core.create_namespaced_config_map("durable", configmap("later", a="2"))
            assert int(created.metadata.resource_version) > last_rv


def test_a_new_service_after_restart_does_not_reuse_a_cluster_ip(tmp_path: Path) -> None:
    with TestCluster(process=True, data_dir=tmp_path) as cluster:
        with connected(cluster) as api:
            core = client.CoreV1Api(api)
            before = {
                core.create_namespaced_service(
                    "default", {"metadata": {"name": f"svc{i}"}, "spec": {"ports": [{"port": 80}]}}
                ).spec.cluster_ip
                for i in range(3)
            }

        cluster.stop()
        cluster.start()

        with connected(cluster) as api:
            after = client.CoreV1Api(api).create_namespaced_service(
                "default", {"metadata": {"name": "svc-new"}, "spec": {"ports": [{"port": 80}]}}
            )
            assert after.spec.cluster_ip not in before


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    with TestCluster(process=True, data_dir=tmp_path) as cluster:
        with connected(cluster) as api:
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": "durable"}})
            acknowledged = [
                core.create_namespaced_config_map("durable", configmap(f"cm-{i}", i=str(i)))
                for i in range(WRITES)
            ]
            updated = core.patch_namespaced_config_map("cm-0", "durable", {"data": {"i": "new"}})
            core.delete_namespaced_config_map(f"cm-{WRITES - 1}", "durable")

        cluster.kill()
        cluster.start()

        with connected(cluster) as api:
            core = client.CoreV1Api(api)
            listing = core.list_namespaced_config_map("durable")
            expected = sorted(cm.metadata.name for cm in acknowledged[:-1])
            assert names(listing) == expected
            survivor = core.read_namespaced_config_map("cm-0", "durable")
            assert survivor.data == {"i": "new"}
            assert survivor.metadata.resource_version == updated.metadata.resource_version
            assert survivor.metadata.uid == acknowledged[0].metadata.uid
