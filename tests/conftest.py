"""Fixtures shared by the end-to-end (kubectl) and integration (Python client) suites.

One real kubeling server per test module keeps the suites fast; every test gets a fresh
namespace of its own, so tests in a module never see each other's objects.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubeling.testing.cluster import TestCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster() as running:
        yield running


@pytest.fixture(scope="module")
def api(cluster: TestCluster) -> Iterator[Any]:
    """A `kubernetes.client.ApiClient` for the module's cluster (TLS verified by its CA)."""
    client = cluster.api_client()
    try:
        yield client
    finally:
        client.close()
        # Failed requests leave their connection in a reference cycle (exception, traceback,
        # response); collect it so that the client closes its side before the server stops.
        # TestCluster.stop() does not close TLS connections that clients leave open: they
        # would leak as ResourceWarnings (errors here).
        gc.collect()


@pytest.fixture
def ns(api: Any) -> str:
    """A fresh namespace for one test."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name
