"""Fixtures shared by the controller suites. Each module provides its own `cluster` (the
controllers it needs running); these build clients and namespaces on it."""

from __future__ import annotations

import pytest
from async_client_fixtures import client, ns
from kubernetes import client as official

from kubeling.testing import TestCluster

__all__ = ["apps", "client", "core", "ns"]


@pytest.fixture(scope="module")
def core(cluster: TestCluster) -> official.CoreV1Api:
    return official.CoreV1Api(cluster.api_client())


@pytest.fixture(scope="module")
def apps(cluster: TestCluster) -> official.AppsV1Api:
    return official.AppsV1Api(cluster.api_client())
