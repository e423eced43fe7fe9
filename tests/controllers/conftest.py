"""Fixtures shared by the controller suites. Each module provides its own `cluster` (the
controllers it needs running); these build clients and namespaces on it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from kubernetes import client as official

from kubeling.api.kinds import REGISTRY
from kubeling.client.rest import Client
from kubeling.testing import TestCluster

NAMESPACES = REGISTRY.resource("", "v1", "namespaces")


@pytest.fixture
async def client(cluster: TestCluster) -> AsyncIterator[Client]:
    """kubeling's own async client."""
    api = Client.from_kubeconfig(str(cluster.kubeconfig), user_agent="kubeling-tests")
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
async def ns(client: Client) -> str:
    """A fresh namespace (modules on the official client override this one)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def core(cluster: TestCluster) -> official.CoreV1Api:
    return official.CoreV1Api(cluster.api_client())


@pytest.fixture(scope="module")
def apps(cluster: TestCluster) -> official.AppsV1Api:
    return official.AppsV1Api(cluster.api_client())
