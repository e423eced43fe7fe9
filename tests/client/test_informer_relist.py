"""After compaction a resumed watch gets 410 Expired: the informer relists and carries on.

The server here keeps only KEEP revisions of history. The informer asks the server to end its
watches after one second, so it keeps resuming from the last resourceVersion it saw; once
that revision is compacted away, the resume is answered with an ERROR event holding a 410
Expired Status, exactly as Kubernetes does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from layer_support import CONFIGMAPS, NAMESPACES, configmap

from kubeling.api.errors import ApiError
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.testing import eventually
from kubeling.testing.cluster import TestCluster

KEEP = 3


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(compaction_keep=KEEP) as running:
        yield running


async def _churn_elsewhere_and_compact(cluster: TestCluster, client: Client, rv: str) -> None:
    """Write enough in another namespace that `rv` falls out of the kept window; compact."""
    other = await client.create(NAMESPACES, {"metadata": {"generateName": "churn-"}})
    for i in range(KEEP + 3):
        await client.create(CONFIGMAPS, configmap(f"filler-{i}", x="1"), other["metadata"]["name"])
    compacted = cluster.run(cluster.server.compact_now())
    assert compacted > int(rv)


async def test_a_watch_from_a_compacted_resource_version_raises_expired(
    cluster: TestCluster, client: Client, ns: str
) -> None:
    old = await client.create(CONFIGMAPS, configmap("old", x="1"), ns)
    await _churn_elsewhere_and_compact(cluster, client, old["metadata"]["resourceVersion"])

    watch = client.watch(CONFIGMAPS, ns, resource_version=old["metadata"]["resourceVersion"])
    with pytest.raises(ApiError) as err:
        async for _ in watch:
            pass

    assert (err.value.code, err.value.reason) == (410, "Expired")
    assert watch.closed


async def test_the_informer_relists_after_410_and_keeps_following_changes(
    cluster: TestCluster, client: Client, ns: str
) -> None:
    await client.create(CONFIGMAPS, configmap("first", x="1"), ns)
    informer = Informer(client, CONFIGMAPS, ns, watch_timeout=lambda: 1)
    added: list[str] = []
    updated: list[tuple[str, str]] = []

    def on_update(old: Any, new: Any) -> None:
        updated.append((new["metadata"]["name"], new["data"]["x"]))

    informer.add_handlers(on_add=lambda o: added.append(o["metadata"]["name"]), on_update=on_update)
    informer.start()
    try:
        await informer.wait_synced(10)
        assert informer.lists == 1

        await _churn_elsewhere_and_compact(cluster, client, informer.resource_version)
        await eventually(
            lambda: informer.expired >= 1 and informer.lists >= 2,
            timeout=15,
            message="a 410 and a relist",
        )

        await client.patch(CONFIGMAPS, "first", {"data": {"x": "2"}}, ns)
        await client.create(CONFIGMAPS, configmap("second", x="1"), ns)
        await eventually(lambda: "second" in added, message="the add after the relist")
    finally:
        await informer.stop()

    assert added == ["first", "second"]  # the relist found nothing new: no duplicate add
    assert updated == [("first", "2")]
    cached = informer.cache.get(f"{ns}/first")
    assert cached is not None and cached["data"] == {"x": "2"}
