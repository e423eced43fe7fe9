"""Fixtures for the network suites. `cluster` is a control plane with controllers (the
EndpointSlice controller), no nodes; a module whose pods must really run overrides it with
its own `TestCluster(nodes=1, ...)`. The API groups follow whichever `cluster` is in force."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from kubeling.testing import TestCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(controllers=True) as c:
        yield c


@pytest.fixture(scope="module")
def core(cluster: TestCluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client())


@pytest.fixture(scope="module")
def discovery(cluster: TestCluster) -> client.DiscoveryV1Api:
    return client.DiscoveryV1Api(cluster.api_client())


@pytest.fixture(scope="module")
def networking(cluster: TestCluster) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(cluster.api_client())
