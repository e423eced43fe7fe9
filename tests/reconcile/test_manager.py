"""Against a real server: informer events reach the reconciler as keys only, and a manager
runs a tiny level-based controller (label every ConfigMap `seen=true`) and stops it."""

from __future__ import annotations

from typing import Any

from reconcile_support import Recording

from kubeling.api.kinds import REGISTRY
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.reconcile import Controller, Manager, Result
from kubeling.testing import eventually

CONFIGMAPS = REGISTRY.by_path("", "v1", "configmaps")
assert CONFIGMAPS is not None


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def test_the_reconciler_gets_only_the_key_for_create_update_and_delete(
    client: Client, ns: str
) -> None:
    manager = Manager(client)
    reconciler = Recording()
    controller = Controller("record", reconciler)
    controller.watch(manager.informers.informer(CONFIGMAPS, ns))
    manager.add(controller)
    await manager.start()
    try:
        key = f"{ns}/cm"
        await client.create(CONFIGMAPS, configmap("cm", a="1"), ns)
        await eventually(lambda: reconciler.keys.count(key) >= 1, message="create")
        seen = len(reconciler.keys)
        await client.patch(CONFIGMAPS, "cm", {"data": {"a": "2"}}, ns)
        await eventually(lambda: len(reconciler.keys) > seen, message="update")
        seen = len(reconciler.keys)
        await client.delete(CONFIGMAPS, "cm", ns)
        await eventually(lambda: len(reconciler.keys) > seen, message="delete")
        assert set(reconciler.keys) == {key}
    finally:
        await manager.stop()


class LabelSeen:
    """Labels every ConfigMap `seen=true`: compares the cached object, patches only if needed."""

    def __init__(self, client: Client, informer: Informer) -> None:
        self.client, self.informer = client, informer
        self.patched: list[str] = []
        self.reconciles = 0

    async def reconcile(self, key: str) -> Result:
        self.reconciles += 1
        cm = self.informer.cache.get(key)
        if cm is None:
            return Result()  # gone: nothing to do
        if (cm["metadata"].get("labels") or {}).get("seen") == "true":
            return Result()
        meta = cm["metadata"]
        patch = {"metadata": {"labels": {"seen": "true"}}}
        await self.client.patch(CONFIGMAPS, meta["name"], patch, meta["namespace"])
        self.patched.append(key)
        return Result()


def _labelled(informer: Informer, name: str) -> bool:
    cm = informer.cache.get_by_name(informer.namespace, name)
    return cm is not None and (cm["metadata"].get("labels") or {}).get("seen") == "true"


async def test_a_manager_runs_a_level_based_controller_and_stops_it(
    client: Client, ns: str
) -> None:
    await client.create(CONFIGMAPS, configmap("before"), ns)  # exists before the start
    manager = Manager(client)
    informer = manager.informers.informer(CONFIGMAPS, ns)
    reconciler = LabelSeen(client, informer)
    controller = Controller("label-seen", reconciler, workers=2)
    controller.watch(informer)
    manager.add(controller)
    assert not manager.healthy().ok
    await manager.start()
    try:
        assert manager.healthy().informers_synced
        assert manager.healthy().ok
        await client.create(CONFIGMAPS, configmap("after"), ns)
        await eventually(lambda: _labelled(informer, "before") and _labelled(informer, "after"))
        # The patch's own update event reconciles again and finds nothing to do.
        await eventually(lambda: reconciler.reconciles >= 4, message="the no-op reconciles")
        assert sorted(reconciler.patched) == [f"{ns}/after", f"{ns}/before"]
        health = manager.healthy().controllers[0]
        assert (health.name, health.errors, health.last_error) == ("label-seen", 0, None)
    finally:
        await manager.stop()
    assert not manager.healthy().controllers_running
    assert not informer.running
