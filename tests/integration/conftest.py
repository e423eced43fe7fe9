"""Fixtures for the integration suites: the official client's API groups and raw HTTPS."""

from __future__ import annotations

from typing import Any

import pytest
from client_support import Http
from kubernetes import client

from kubeling.testing.cluster import TestCluster


@pytest.fixture(scope="module")
def http(cluster: TestCluster) -> Http:
    return Http(cluster)


@pytest.fixture(scope="module")
def core(api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def apps(api: Any) -> client.AppsV1Api:
    return client.AppsV1Api(api)
