"""Fixtures for suites that drive the module's real server with kubeling's own async client
(client, reconcile, controllers): the `Client`, and a fresh namespace per test made with it.
A suite's conftest imports them by name, which is how pytest shares fixtures across folders
that are not nested."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from kubeling.api.kinds import REGISTRY
from kubeling.client.rest import Client
from kubeling.testing.cluster import TestCluster

NAMESPACES = REGISTRY.resource("", "v1", "namespaces")


@pytest.fixture
async def client(cluster: TestCluster) -> AsyncIterator[Client]:
    api = Client.from_kubeconfig(str(cluster.kubeconfig), user_agent="kubeling-tests")
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
async def ns(client: Client) -> str:
    """A fresh namespace for one test (modules on the official client override it)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name
