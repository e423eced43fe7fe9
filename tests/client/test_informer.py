"""Informers against a real server: the cache follows every change, handlers see each once,
late handlers get the current state, shared informers are shared, resyncs and reconnects run
on an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from layer_support import CONFIGMAPS, PODS, CuttableProxy, configmap, pod

from kubeling.client.cache import by_node_name
from kubeling.client.informer import Informer, SharedInformerFactory
from kubeling.client.rest import Client
from kubeling.testing import eventually
from kubeling.testing.cluster import TestCluster
from kubeling.util.clock import FakeClock


class Recorder:
    """Handlers that write down what they were told, as `(event, name)` pairs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.updates: list[tuple[Any, Any]] = []

    def on_add(self, obj: Any) -> None:
        self.seen.append(("add", obj["metadata"]["name"]))

    def on_update(self, old: Any, new: Any) -> None:
        self.seen.append(("update", new["metadata"]["name"]))
        self.updates.append((old, new))

    def on_delete(self, obj: Any) -> None:
        self.seen.append(("delete", obj["metadata"]["name"]))

    def register(self, informer: Informer) -> None:
        informer.add_handlers(self.on_add, self.on_update, self.on_delete)


@pytest.fixture
async def informers() -> AsyncIterator[list[Informer]]:
    """Informers a test starts; all stopped at the end."""
    started: list[Informer] = []
    try:
        yield started
    finally:
        for informer in started:
            await informer.stop()


def _names(objs: list[Any]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


async def test_the_cache_and_handlers_follow_create_update_and_delete(
    client: Client, ns: str, informers: list[Informer]
) -> None:
    await client.create(CONFIGMAPS, configmap("before", x="1"), ns)
    informer = Informer(client, CONFIGMAPS, ns)
    recorder = Recorder()
    recorder.register(informer)
    informer.start()
    informers.append(informer)
    await informer.wait_synced(10)
    assert informer.has_synced

    await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    await client.patch(CONFIGMAPS, "cm", {"data": {"x": "2"}}, ns)
    await client.delete(CONFIGMAPS, "before", ns)
    await eventually(lambda: len(recorder.seen) == 4, message="four handler calls")

    assert recorder.seen == [
        ("add", "before"),
        ("add", "cm"),
        ("update", "cm"),
        ("delete", "before"),
    ]
    old, new = recorder.updates[0]
    assert (old["data"], new["data"]) == ({"x": "1"}, {"x": "2"})
    assert _names(informer.cache.list()) == ["cm"]
    cached = informer.cache.get(f"{ns}/cm")
    assert cached is not None and cached["data"] == {"x": "2"}


async def test_a_handler_added_after_sync_first_gets_the_cached_objects(
    client: Client, ns: str, informers: list[Informer]
) -> None:
    for name in ("a", "b"):
        await client.create(CONFIGMAPS, configmap(name, x="1"), ns)
    informer = Informer(client, CONFIGMAPS, ns)
    informer.start()
    informers.append(informer)
    await informer.wait_synced(10)

    late = Recorder()
    late.register(informer)
    await client.create(CONFIGMAPS, configmap("c", x="1"), ns)
    await eventually(lambda: len(late.seen) == 3, message="replay plus one add")

    assert sorted(late.seen) == [("add", "a"), ("add", "b"), ("add", "c")]


async def test_an_object_leaving_the_label_selector_is_deleted_from_the_cache(
    client: Client, ns: str, informers: list[Informer]
) -> None:
    await client.create(CONFIGMAPS, configmap("cm", {"team": "a"}, x="1"), ns)
    informer = Informer(client, CONFIGMAPS, ns, label_selector="team=a")
    recorder = Recorder()
    recorder.register(informer)
    informer.start()
    informers.append(informer)
    await informer.wait_synced(10)

    await client.patch(CONFIGMAPS, "cm", {"metadata": {"labels": {"team": "b"}}}, ns)
    await eventually(lambda: ("delete", "cm") in recorder.seen, message="the delete")

    assert len(informer.cache) == 0


async def test_an_index_on_node_name_finds_the_pods_bound_to_a_node(
    client: Client, ns: str, informers: list[Informer]
) -> None:
    informer = Informer(client, PODS, ns, indexers={"node": by_node_name})
    informer.start()
    informers.append(informer)
    await informer.wait_synced(10)

    for name in ("a", "b", "c"):
        created = await client.create(PODS, pod(name), ns)
        if name != "c":
            await client.bind(created, "node-1")
    await eventually(lambda: len(informer.cache) == 3, message="three pods")
    await eventually(
        lambda: len(informer.cache.by_index("node", "node-1")) == 2, message="two bound pods"
    )

    assert _names(informer.cache.by_index("node", "node-1")) == ["a", "b"]
    assert _names(informer.cache.list(ns)) == ["a", "b", "c"]


async def test_a_failing_handler_does_not_stop_the_others(
    client: Client, ns: str, informers: list[Informer]
) -> None:
    informer = Informer(client, CONFIGMAPS, ns)

    def broken(obj: Any) -> None:
        raise RuntimeError("handler bug")

    informer.add_handlers(on_add=broken)
    recorder = Recorder()
    recorder.register(informer)
    informer.start()
    informers.append(informer)
    await informer.wait_synced(10)

    await client.create(CONFIGMAPS, configmap("a", x="1"), ns)
    await client.create(CONFIGMAPS, configmap("b", x="1"), ns)

    await eventually(lambda: len(recorder.seen) == 2, message="both adds")


async def test_resync_redelivers_every_cached_object_as_an_update_to_itself(
    client: Client, ns: str, informers: list[Informer]
) -> None:
    await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    clock = FakeClock()
    informer = Informer(client, CONFIGMAPS, ns, resync=30.0, clock=clock)
    recorder = Recorder()
    recorder.register(informer)
    informer.start()
    informers.append(informer)
    await informer.wait_synced(10)
    await eventually(lambda: clock.sleepers >= 1, message="the resync timer")

    clock.advance(30.0)
    await eventually(lambda: recorder.updates, message="a resync")

    old, new = recorder.updates[0]
    assert old is new
    assert recorder.seen == [("add", "cm"), ("update", "cm")]


async def test_a_lost_connection_backs_off_then_relists_and_reports_what_was_missed(
    cluster: TestCluster, client: Client, ns: str, informers: list[Informer]
) -> None:
    await client.create(CONFIGMAPS, configmap("kept", x="1"), ns)
    await client.create(CONFIGMAPS, configmap("doomed", x="1"), ns)
    url = urlsplit(cluster.url)
    assert url.hostname is not None and url.port is not None
    proxy = await CuttableProxy(url.hostname, url.port).start()
    remote = Client(replace(client.config, server=f"https://127.0.0.1:{proxy.port}"))
    clock = FakeClock()
    informer = Informer(remote, CONFIGMAPS, ns, clock=clock)
    recorder = Recorder()
    recorder.register(informer)
    try:
        informer.start()
        informers.append(informer)
        await informer.wait_synced(10)
        await eventually(lambda: informer.watching, message="the watch")

        await proxy.cut()
        await eventually(lambda: clock.sleepers >= 1, message="the informer backing off")
        await client.delete(CONFIGMAPS, "doomed", ns)
        await client.create(CONFIGMAPS, configmap("born", x="1"), ns)
        assert ("delete", "doomed") not in recorder.seen
        await proxy.restore()
        clock.advance(60.0)
        await eventually(lambda: informer.lists == 2, message="a relist")

        await eventually(lambda: len(recorder.seen) == 4, message="the missed changes")
        assert sorted(recorder.seen[2:]) == [("add", "born"), ("delete", "doomed")]
        assert _names(informer.cache.list()) == ["born", "kept"]
    finally:
        await informer.stop()
        await remote.close()
        await proxy.close()


async def test_stop_ends_the_informer_and_can_be_called_twice(client: Client, ns: str) -> None:
    informer = Informer(client, CONFIGMAPS, ns)
    informer.start()
    await informer.wait_synced(10)
    assert informer.running

    await informer.stop()
    await informer.stop()

    assert not informer.running


async def test_the_factory_shares_one_informer_per_resource_namespace_and_selectors(
    client: Client, ns: str
) -> None:
    factory = SharedInformerFactory(client)
    first = factory.informer(CONFIGMAPS, ns)
    again = factory.informer(CONFIGMAPS, ns)
    labelled = factory.informer(CONFIGMAPS, ns, label_selector="a=b")
    everywhere = factory.informer(CONFIGMAPS)
    try:
        factory.start()
        await factory.wait_for_cache_sync(10)
        late = factory.informer(PODS, ns)  # handed out after start: started at once
        await late.wait_synced(10)
    finally:
        await factory.shutdown()

    assert first is again
    assert labelled is not first and everywhere is not first
    assert len(factory.informers) == 4
    assert all(not i.running for i in factory.informers)
