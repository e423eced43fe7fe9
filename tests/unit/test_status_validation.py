"""The contracts that let status writes skip the checks of an unchanged spec (`rules.py`)."""

from __future__ import annotations

import inspect

import pytest

from kubeling.api import (
    defaults,
    rules_apps,
    rules_config,
    rules_container,
    rules_meta,
    rules_pod,
    rules_service,
    rules_volumes,
)
from kubeling.api.kinds import REGISTRY
from kubeling.apiserver import objectmeta

_STATUSES = {
    "pods": {
        "phase": "Running",
        "containerStatuses": [
            {"name": "a", "resources": {"requests": {"cpu": "1000m", "memory": 128}}}
        ],
    },
    "nodes": {"capacity": {"cpu": "2000m", "memory": "1Gi"}},
    "namespaces": {},
    "services": {"loadBalancer": {}},
}


@pytest.mark.parametrize("resource", sorted(_STATUSES))
def test_default_status_gives_the_status_full_defaulting_gives(resource: str) -> None:
    info = REGISTRY.by_path("", "v1", resource)
    assert info is not None
    full = {
        "metadata": {"name": "x", "resourceVersion": "3"},
        "spec": {},
        "status": _STATUSES[resource],
    }
    alone = objectmeta.deep_copy(full)

    defaults.apply_defaults(info, full)
    objectmeta.default_status(info, alone)

    assert alone["status"] == full["status"]


def test_only_node_rules_read_status() -> None:
    for module in (
        rules_apps,
        rules_config,
        rules_pod,
        rules_service,
        rules_volumes,
        rules_container,
        rules_meta,
    ):
        assert '"status"' not in inspect.getsource(module), module.__name__
