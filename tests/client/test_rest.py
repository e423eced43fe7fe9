"""The REST client against a real server over HTTPS: CRUD, every patch type, deletion
options, subresources, errors rebuilt from Status, and watches."""

from __future__ import annotations

import asyncio

import pytest
from layer_support import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, configmap, deployment, pod

from kubeling.api.errors import ApiError
from kubeling.client.rest import Client, DeleteOptions, PatchType
from kubeling.client.watch import WatchEvent

# -- CRUD --------------------------------------------------------------------------------------


async def test_create_get_update_delete_a_configmap(client: Client, ns: str) -> None:
    created = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    assert created["metadata"]["uid"]

    fetched = await client.get(CONFIGMAPS, "cm", ns)
    fetched["data"]["x"] = "2"
    updated = await client.update(CONFIGMAPS, fetched)
    assert updated["data"] == {"x": "2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    await client.delete(CONFIGMAPS, "cm", ns)
    with pytest.raises(ApiError) as err:
        await client.get(CONFIGMAPS, "cm", ns)
    assert (err.value.code, err.value.reason) == (404, "NotFound")


async def test_create_takes_the_namespace_from_the_object(client: Client, ns: str) -> None:
    body = configmap("cm", x="1")
    body["metadata"]["namespace"] = ns

    created = await client.create(CONFIGMAPS, body)

    assert created["metadata"]["namespace"] == ns


async def test_list_returns_items_with_kind_and_the_list_resource_version(
    client: Client, ns: str
) -> None:
    await client.create(CONFIGMAPS, configmap("a", {"tier": "web"}, x="1"), ns)
    await client.create(CONFIGMAPS, configmap("b", {"tier": "db"}, x="1"), ns)

    everything = await client.list(CONFIGMAPS, ns)
    web = await client.list(CONFIGMAPS, ns, label_selector="tier=web")
    by_name = await client.list(CONFIGMAPS, ns, field_selector="metadata.name=b")

    assert [i["metadata"]["name"] for i in everything.items] == ["a", "b"]
    assert all((i["kind"], i["apiVersion"]) == ("ConfigMap", "v1") for i in everything.items)
    assert int(everything.resource_version) > 0
    assert [i["metadata"]["name"] for i in web.items] == ["a"]
    assert [i["metadata"]["name"] for i in by_name.items] == ["b"]


async def test_list_pages_with_limit_and_continue(client: Client, ns: str) -> None:
    for name in ("a", "b", "c"):
        await client.create(CONFIGMAPS, configmap(name, x="1"), ns)

    first = await client.list(CONFIGMAPS, ns, limit=2)
    rest = await client.list(CONFIGMAPS, ns, limit=2, continue_token=first.continue_token)

    assert [i["metadata"]["name"] for i in first.items + rest.items] == ["a", "b", "c"]
    assert rest.continue_token == ""


async def test_a_cluster_scoped_resource_needs_no_namespace(client: Client, ns: str) -> None:
    namespace = await client.get(NAMESPACES, ns)
    assert namespace["metadata"]["name"] == ns


def test_an_object_call_on_a_namespaced_kind_without_namespace_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Client.path(CONFIGMAPS, None, "cm")


# -- errors ------------------------------------------------------------------------------------


async def test_create_of_an_existing_name_is_already_exists(client: Client, ns: str) -> None:
    await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)

    with pytest.raises(ApiError) as err:
        await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)

    assert (err.value.code, err.value.reason) == (409, "AlreadyExists")
    assert err.value.name == "cm"
    assert 'configmaps "cm" already exists' in err.value.message


async def test_an_update_with_a_stale_resource_version_is_a_conflict(
    client: Client, ns: str
) -> None:
    created = await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    await client.patch(CONFIGMAPS, "cm", {"data": {"x": "2"}}, ns)

    created["data"]["x"] = "3"
    with pytest.raises(ApiError) as err:
        await client.update(CONFIGMAPS, created)

    assert (err.value.code, err.value.reason) == (409, "Conflict")


async def test_an_invalid_object_names_each_field_in_its_causes(client: Client, ns: str) -> None:
    bad = deployment("web")
    bad["spec"]["replicas"] = -1

    with pytest.raises(ApiError) as err:
        await client.create(DEPLOYMENTS, bad, ns)

    assert (err.value.code, err.value.reason, err.value.kind) == (422, "Invalid", "Deployment")
    assert [c.field for c in err.value.causes] == ["spec.replicas"]


async def test_a_bad_selector_is_a_bad_request(client: Client, ns: str) -> None:
    with pytest.raises(ApiError) as err:
        await client.list(PODS, ns, field_selector="spec.nope=1")
    assert (err.value.code, err.value.reason) == (400, "BadRequest")


async def test_a_wrong_token_is_unauthorized(client: Client, ns: str) -> None:
    from dataclasses import replace

    intruder = Client(replace(client.config, token="wrong"))
    try:
        with pytest.raises(ApiError) as err:
            await intruder.get(NAMESPACES, ns)
    finally:
        await intruder.close()
    assert (err.value.code, err.value.reason) == (401, "Unauthorized")


# -- patches -----------------------------------------------------------------------------------


async def test_merge_patch(client: Client, ns: str) -> None:
    await client.create(CONFIGMAPS, configmap("cm", x="1", y="2"), ns)

    patched = await client.patch(CONFIGMAPS, "cm", {"data": {"x": None, "z": "3"}}, ns)

    assert patched["data"] == {"y": "2", "z": "3"}


async def test_strategic_merge_patch_merges_containers_by_name(client: Client, ns: str) -> None:
    await client.create(DEPLOYMENTS, deployment("web"), ns)
    change = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "v2"}]}}}}

    patched = await client.patch(DEPLOYMENTS, "web", change, ns, patch_type=PatchType.STRATEGIC)

    containers = patched["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "v2")]
    assert patched["metadata"]["generation"] == 2


async def test_json_patch(client: Client, ns: str) -> None:
    await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
    ops = [
        {"op": "replace", "path": "/data/x", "value": "9"},
        {"op": "add", "path": "/data/y", "value": "8"},
    ]

    patched = await client.patch(CONFIGMAPS, "cm", ops, ns, patch_type=PatchType.JSON)

    assert patched["data"] == {"x": "9", "y": "8"}


async def test_server_side_apply_creates_then_updates(client: Client, ns: str) -> None:
    desired = configmap("cm", x="1")

    created = await client.patch(
        CONFIGMAPS, "cm", desired, ns, patch_type=PatchType.APPLY, field_manager="tests"
    )
    desired["data"]["x"] = "2"
    updated = await client.patch(
        CONFIGMAPS, "cm", desired, ns, patch_type=PatchType.APPLY, field_manager="tests"
    )

    assert (created["data"], updated["data"]) == ({"x": "1"}, {"x": "2"})


# -- status, scale, binding --------------------------------------------------------------------


async def test_update_status_changes_only_the_status(client: Client, ns: str) -> None:
    created = await client.create(DEPLOYMENTS, deployment("web"), ns)
    created["status"] = {"replicas": 3, "observedGeneration": 1}
    created["spec"]["replicas"] = 7  # ignored by the status subresource

    updated = await client.update_status(DEPLOYMENTS, created)

    assert updated["status"]["replicas"] == 3
    assert updated["spec"]["replicas"] == 1


async def test_get_scale_and_patch_it(client: Client, ns: str) -> None:
    await client.create(DEPLOYMENTS, deployment("web", replicas=2), ns)

    scale = await client.get_scale(DEPLOYMENTS, "web", ns)
    await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 5}}, ns, subresource="scale")

    assert (scale["kind"], scale["spec"]["replicas"]) == ("Scale", 2)
    assert (await client.get(DEPLOYMENTS, "web", ns))["spec"]["replicas"] == 5


async def test_bind_assigns_a_pod_to_a_node_once(client: Client, ns: str) -> None:
    created = await client.create(PODS, pod("p"), ns)

    await client.bind(created, "node-1")
    with pytest.raises(ApiError) as err:
        await client.bind(created, "node-2")

    assert (await client.get(PODS, "p", ns))["spec"]["nodeName"] == "node-1"
    assert err.value.code == 409


# -- deletion ----------------------------------------------------------------------------------


async def test_delete_with_a_wrong_uid_precondition_is_a_conflict(client: Client, ns: str) -> None:
    await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)

    with pytest.raises(ApiError) as err:
        await client.delete(CONFIGMAPS, "cm", ns, DeleteOptions(precondition_uid="not-it"))

    assert err.value.code == 409
    assert (await client.get(CONFIGMAPS, "cm", ns))["metadata"]["name"] == "cm"


async def test_a_graceful_pod_delete_marks_it_and_grace_zero_removes_it(
    client: Client, ns: str
) -> None:
    # A pod on a node is deleted gracefully (an unbound one would go at once).
    created = await client.create(PODS, pod("p", nodeName="node-1"), ns)
    exact = DeleteOptions(
        grace_period_seconds=30,
        propagation_policy="Background",
        precondition_uid=created["metadata"]["uid"],
        precondition_resource_version=created["metadata"]["resourceVersion"],
    )

    marked = await client.delete(PODS, "p", ns, exact)
    await client.delete(PODS, "p", ns, DeleteOptions(grace_period_seconds=0))

    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    with pytest.raises(ApiError) as err:
        await client.get(PODS, "p", ns)
    assert err.value.code == 404


async def test_an_unknown_propagation_policy_is_a_bad_request(client: Client, ns: str) -> None:
    await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)

    with pytest.raises(ApiError) as err:
        await client.delete(CONFIGMAPS, "cm", ns, DeleteOptions(propagation_policy="Sideways"))

    assert err.value.code == 400


async def test_a_dry_run_delete_keeps_the_object(client: Client, ns: str) -> None:
    await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)

    await client.delete(CONFIGMAPS, "cm", ns, DeleteOptions(dry_run=True))

    assert (await client.get(CONFIGMAPS, "cm", ns))["metadata"]["name"] == "cm"


async def test_delete_collection_by_label(client: Client, ns: str) -> None:
    await client.create(CONFIGMAPS, configmap("a", {"doomed": "yes"}, x="1"), ns)
    await client.create(CONFIGMAPS, configmap("b", {"doomed": "no"}, x="1"), ns)

    deleted = await client.delete_collection(CONFIGMAPS, ns, label_selector="doomed=yes")

    assert [i["metadata"]["name"] for i in deleted.items] == ["a"]
    left = await client.list(CONFIGMAPS, ns)
    assert [i["metadata"]["name"] for i in left.items] == ["b"]


# -- watch -------------------------------------------------------------------------------------


async def test_watch_sees_added_modified_and_deleted(client: Client, ns: str) -> None:
    start = await client.list(CONFIGMAPS, ns)
    events: list[WatchEvent] = []

    async with client.watch(CONFIGMAPS, ns, resource_version=start.resource_version) as watch:
        await client.create(CONFIGMAPS, configmap("cm", x="1"), ns)
        await client.patch(CONFIGMAPS, "cm", {"data": {"x": "2"}}, ns)
        await client.delete(CONFIGMAPS, "cm", ns)
        async for event in watch:
            events.append(event)
            if len(events) == 3:
                break

    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("ADDED", "cm"),
        ("MODIFIED", "cm"),
        ("DELETED", "cm"),
    ]
    assert events[1].object["data"] == {"x": "2"}


async def test_watch_from_now_starts_with_the_current_state(client: Client, ns: str) -> None:
    await client.create(CONFIGMAPS, configmap("existing", x="1"), ns)

    async with client.watch(CONFIGMAPS, ns) as watch:
        first = await anext(watch)

    assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "existing")


async def test_a_watch_ends_cleanly_when_the_server_timeout_passes(client: Client, ns: str) -> None:
    start = await client.list(CONFIGMAPS, ns)

    watch = client.watch(CONFIGMAPS, ns, resource_version=start.resource_version, timeout_seconds=1)
    seen = [event async for event in watch]

    assert seen == []
    assert watch.closed


async def test_closing_a_watch_from_another_task_ends_its_iteration(
    client: Client, ns: str
) -> None:
    start = await client.list(CONFIGMAPS, ns)
    watch = await client.watch(CONFIGMAPS, ns, resource_version=start.resource_version).open()

    async def consume() -> list[WatchEvent]:
        return [event async for event in watch]

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await watch.close()

    assert await asyncio.wait_for(consumer, 5) == []


async def test_a_watch_of_an_unknown_namespace_path_raises_when_opened(client: Client) -> None:
    watch = client.watch(CONFIGMAPS, "ns", field_selector="nope=1")
    with pytest.raises(ApiError) as err:
        await watch.open()
    assert err.value.code == 400
