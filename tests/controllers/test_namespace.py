"""The namespace controller, end to end: `kubectl delete namespace` empties and removes it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubeling.testing import TestCluster, wait_for

pytestmark = pytest.mark.e2e

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(controllers=True) as c:
        yield c


@pytest.fixture
def core(cluster: TestCluster) -> Iterator[client.CoreV1Api]:
    api = client.ApiClient(cluster.api_client().configuration)
    yield client.CoreV1Api(api)
    api.close()


def _gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as err:
        return err.status == 404
    return False


def test_kubectl_delete_namespace_removes_its_contents_and_then_the_namespace(
    cluster: TestCluster, core: client.CoreV1Api
) -> None:
    cluster.kubectl("create", "namespace", "doomed")
    cluster.kubectl("-n", "doomed", "create", "configmap", "settings", "--from-literal=a=1")
    cluster.kubectl("-n", "doomed", "create", "secret", "generic", "creds", "--from-literal=p=x")
    cluster.kubectl("-n", "doomed", "apply", "-f", "-", input=DEPLOYMENT)
    cluster.kubectl("-n", "doomed", "create", "service", "clusterip", "web", "--tcp=80:8080")

    result = cluster.kubectl("delete", "namespace", "doomed", "--timeout=60s", timeout=90)

    assert 'namespace "doomed" deleted' in result.stdout
    assert _gone(core, "doomed")
    assert core.list_namespaced_config_map("doomed").items == []
    assert core.list_namespaced_service("doomed").items == []


def test_a_namespace_waits_in_terminating_for_a_finalizer_of_its_contents(
    cluster: TestCluster, core: client.CoreV1Api
) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="held")))
    held = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="held", finalizers=["example.com/hold"])
    )
    core.create_namespaced_config_map("held", held)

    core.delete_namespace("held")

    def terminating_with_the_configmap_marked() -> bool:
        namespace = core.read_namespace("held")
        configmap = core.read_namespaced_config_map("held", "held")
        return (
            namespace.status.phase == "Terminating"
            and configmap.metadata.deletion_timestamp is not None
        )

    wait_for(terminating_with_the_configmap_marked, timeout=30, message="Terminating namespace")
    assert not _gone(core, "held")

    core.patch_namespaced_config_map("held", "held", {"metadata": {"finalizers": None}})

    wait_for(lambda: _gone(core, "held"), timeout=30, message="the namespace to be removed")


def test_creating_in_a_terminating_namespace_is_forbidden(
    cluster: TestCluster, core: client.CoreV1Api
) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="closing")))
    keeper = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="keeper", finalizers=["example.com/hold"])
    )
    core.create_namespaced_config_map("closing", keeper)
    core.delete_namespace("closing")
    wait_for(lambda: core.read_namespace("closing").status.phase == "Terminating", timeout=30)

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(
            "closing", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="late"))
        )
    assert err.value.status == 403

    core.patch_namespaced_config_map("keeper", "closing", {"metadata": {"finalizers": None}})
    wait_for(lambda: _gone(core, "closing"), timeout=30, message="the namespace to be removed")
