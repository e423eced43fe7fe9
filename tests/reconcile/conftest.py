"""Fixtures for the controller framework's tests: a kubeling `Client` for the module's real
server (the `cluster` fixture of tests/conftest.py) and a fresh namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from kubeling.api.kinds import REGISTRY
from kubeling.client.rest import Client
from kubeling.testing.cluster import TestCluster


@pytest.fixture
async def client(cluster: TestCluster) -> AsyncIterator[Client]:
    api = Client.from_kubeconfig(str(cluster.kubeconfig), user_agent="kubeling-tests/reconcile")
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
async def ns(client: Client) -> str:
    """A fresh namespace for one test."""
    namespaces = REGISTRY.by_path("", "v1", "namespaces")
    assert namespaces is not None
    name = f"t-{uuid.uuid4().hex[:10]}"
    await client.create(namespaces, {"metadata": {"name": name}})
    return name
