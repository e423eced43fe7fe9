"""The event recorder writes core/v1 Events that kubectl shows, folding repeats into one
Event with a growing count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from layer_support import CONFIGMAPS, EVENTS, NODES, configmap

from kubeling.client.events import EventRecorder
from kubeling.client.rest import Client
from kubeling.testing.cluster import TestCluster
from kubeling.util.clock import FakeClock


class WallClock:
    """A settable wall clock for the timestamps Events carry."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
async def recorders() -> AsyncIterator[list[EventRecorder]]:
    made: list[EventRecorder] = []
    try:
        yield made
    finally:
        for recorder in made:
            await recorder.close()


async def _events(client: Client, ns: str) -> list[dict[str, Any]]:
    return (await client.list(EVENTS, ns)).items


async def test_an_event_names_the_object_and_the_component(
    client: Client, ns: str, recorders: list[EventRecorder]
) -> None:
    cm = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    recorder = EventRecorder(client, "test-controller", host="node-1")
    recorders.append(recorder)

    recorder.event(cm, "Normal", "Synced", "configmap synced")
    await recorder.flush()

    [event] = await _events(client, ns)
    assert event["metadata"]["name"].startswith("cm.")
    assert event["involvedObject"] == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "name": "cm",
        "namespace": ns,
        "uid": cm["metadata"]["uid"],
        "resourceVersion": cm["metadata"]["resourceVersion"],
    }
    assert (event["type"], event["reason"], event["message"]) == (
        "Normal",
        "Synced",
        "configmap synced",
    )
    assert event["source"] == {"component": "test-controller", "host": "node-1"}
    assert event["reportingComponent"] == "test-controller"
    assert event["count"] == 1
    assert event["firstTimestamp"] == event["lastTimestamp"]


async def test_a_repeated_event_is_one_event_with_count_2_and_a_later_last_timestamp(
    client: Client, ns: str, recorders: list[EventRecorder]
) -> None:
    cm = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    wall = WallClock()
    recorder = EventRecorder(client, "test-controller", wall=wall)
    recorders.append(recorder)

    recorder.event(cm, "Warning", "Failed", "could not sync")
    await recorder.flush()
    wall.moment += timedelta(seconds=42)
    recorder.event(cm, "Warning", "Failed", "could not sync")
    await recorder.flush()

    [event] = await _events(client, ns)
    assert event["count"] == 2
    assert event["firstTimestamp"] == "2026-11-24T10:00:00Z"
    assert event["lastTimestamp"] == "2026-11-24T10:00:42Z"
    assert recorder.writes == 2  # one create, one patch


async def test_a_burst_of_the_same_event_is_written_with_its_final_count(
    client: Client, ns: str, recorders: list[EventRecorder]
) -> None:
    cm = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    recorder = EventRecorder(client, "test-controller")
    recorders.append(recorder)

    for _ in range(50):
        recorder.event(cm, "Normal", "Tick", "again")
    await recorder.flush()

    [event] = await _events(client, ns)
    assert event["count"] == 50
    assert recorder.writes <= 3  # the create, then at most a patch or two with the total


async def test_different_messages_make_different_events(
    client: Client, ns: str, recorders: list[EventRecorder]
) -> None:
    cm = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    recorder = EventRecorder(client, "test-controller")
    recorders.append(recorder)

    recorder.event(cm, "Normal", "Scaled", "scaled up to 2")
    recorder.event(cm, "Normal", "Scaled", "scaled up to 3")
    await recorder.flush()

    events = await _events(client, ns)
    assert sorted(e["message"] for e in events) == ["scaled up to 2", "scaled up to 3"]
    assert all(e["count"] == 1 for e in events)


async def test_after_the_window_a_repeat_starts_a_new_event(
    client: Client, ns: str, recorders: list[EventRecorder]
) -> None:
    cm = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    clock = FakeClock()
    recorder = EventRecorder(client, "test-controller", clock=clock, window=600)
    recorders.append(recorder)

    recorder.event(cm, "Normal", "Synced", "ok")
    await recorder.flush()
    clock.advance(601)
    recorder.event(cm, "Normal", "Synced", "ok")
    await recorder.flush()

    events = await _events(client, ns)
    assert [e["count"] for e in events] == [1, 1]


async def test_a_repeat_of_a_deleted_event_creates_it_again(
    client: Client, ns: str, recorders: list[EventRecorder]
) -> None:
    cm = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    recorder = EventRecorder(client, "test-controller")
    recorders.append(recorder)
    recorder.event(cm, "Normal", "Synced", "ok")
    await recorder.flush()
    [first] = await _events(client, ns)
    await client.delete(EVENTS, first["metadata"]["name"], ns)

    recorder.event(cm, "Normal", "Synced", "ok")
    await recorder.flush()

    [again] = await _events(client, ns)
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert again["count"] == 2


async def test_events_about_cluster_scoped_objects_go_to_the_default_namespace(
    client: Client, recorders: list[EventRecorder]
) -> None:
    node = await client.create(
        NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"generateName": "event-node-"}}
    )
    name = node["metadata"]["name"]
    recorder = EventRecorder(client, "node-controller")
    recorders.append(recorder)
    try:
        recorder.event(node, "Normal", "RegisteredNode", f"Node {name} event")
        await recorder.flush()

        found = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
        assert [e["reason"] for e in found.items] == ["RegisteredNode"]
    finally:
        await client.delete(NODES, name)


async def test_a_full_backlog_drops_events_instead_of_blocking(
    client: Client, ns: str, recorders: list[EventRecorder]
) -> None:
    cm = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    recorder = EventRecorder(client, "test-controller", max_pending=2)
    recorders.append(recorder)

    for i in range(5):  # no await in between: the writer has not run yet
        recorder.event(cm, "Normal", "Step", f"step {i}")
    await recorder.flush()

    assert recorder.dropped == 3
    assert len(await _events(client, ns)) == 2


async def test_an_unknown_event_type_or_an_object_without_kind_is_a_value_error(
    client: Client, recorders: list[EventRecorder]
) -> None:
    recorder = EventRecorder(client, "test-controller")
    recorders.append(recorder)
    cm = configmap("cm")

    with pytest.raises(ValueError):
        recorder.event(cm, "Info", "Reason", "message")
    with pytest.raises(ValueError):
        recorder.event({"metadata": {"name": "cm"}}, "Normal", "Reason", "message")


async def test_kubectl_get_events_shows_the_aggregated_count(
    cluster: TestCluster, client: Client, ns: str, recorders: list[EventRecorder]
) -> None:
    cm = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    recorder = EventRecorder(client, "test-controller")
    recorders.append(recorder)
    recorder.event(cm, "Warning", "BackOff", "restarting")
    await recorder.flush()
    recorder.event(cm, "Warning", "BackOff", "restarting")
    await recorder.flush()

    out = cluster.kubectl(
        "get",
        "events",
        "-n",
        ns,
        "-o",
        "custom-columns=REASON:.reason,COUNT:.count,OBJECT:.involvedObject.name",
    )

    assert out.stdout.split() == ["REASON", "COUNT", "OBJECT", "BackOff", "2", "cm"]
