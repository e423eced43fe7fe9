"""Fixtures for the client layer's tests: a kubeling `Client` for the module's real server
(the `cluster` fixture of tests/conftest.py), and a fresh namespace per test made through it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from layer_support import NAMESPACES

from kubeling.client.rest import Client
from kubeling.testing.cluster import TestCluster


@pytest.fixture
async def client(cluster: TestCluster) -> AsyncIterator[Client]:
    api = Client.from_kubeconfig(str(cluster.kubeconfig), user_agent="kubeling-tests/client")
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
async def ns(client: Client) -> str:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name
