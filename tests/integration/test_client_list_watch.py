"""Lists (label and field selectors, paging) and watches (live events, resuming from a
resourceVersion) through the official client."""

from __future__ import annotations

from typing import Any

import pytest
from client_support import api_status, configmap, names, pod
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

WATCH_TIMEOUT = 30  # seconds the server keeps a test's watch open at most


def _tiers(core: client.CoreV1Api, ns: str) -> None:
    for name, labels in (
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "web", "env": "dev"}),
        ("c", {"tier": "db", "env": "prod"}),
        ("d", {"tier": "cache"}),
    ):
        core.create_namespaced_config_map(ns, configmap(name, labels, x="1"))


# -- selectors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "b"]),
        ("tier==web,env=prod", ["a"]),
        ("tier!=web", ["c", "d"]),
        ("tier in (db,cache)", ["c", "d"]),
        ("env notin (prod)", ["b", "d"]),
        ("env", ["a", "b", "c"]),
        ("!env", ["d"]),
    ],
)
def test_list_with_a_label_selector(
    core: client.CoreV1Api, ns: str, selector: str, expected: list[str]
) -> None:
    _tiers(core, ns)

    assert names(core.list_namespaced_config_map(ns, label_selector=selector)) == expected


def test_list_with_a_field_selector_on_the_name(core: client.CoreV1Api, ns: str) -> None:
    _tiers(core, ns)

    listing = core.list_namespaced_config_map(ns, field_selector="metadata.name=b")
    assert names(listing) == ["b"]
    listing = core.list_namespaced_config_map(ns, field_selector="metadata.name!=b")
    assert names(listing) == ["a", "c", "d"]


def test_list_pods_by_node_name_field_selector(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, pod("bound", nodeName="node-1"))
    core.create_namespaced_pod(ns, pod("pending"))

    assert names(core.list_namespaced_pod(ns, field_selector="spec.nodeName=node-1")) == ["bound"]
    assert names(core.list_namespaced_pod(ns, field_selector="spec.nodeName=")) == ["pending"]
    phase = core.list_namespaced_pod(ns, field_selector="status.phase=Pending")
    assert names(phase) == ["bound", "pending"]


def test_list_events_by_involved_object(core: client.CoreV1Api, ns: str) -> None:
    for name, target in (("e1", "web"), ("e2", "db"), ("e3", "web")):
        core.create_namespaced_event(
            ns,
            {
                "metadata": {"name": name},
                "involvedObject": {"kind": "Pod", "name": target, "namespace": ns},
                "reason": "Started",
                "message": "started",
                "type": "Normal",
            },
        )

    selector = f"involvedObject.name=web,involvedObject.kind=Pod,involvedObject.namespace={ns}"
    assert names(core.list_namespaced_event(ns, field_selector=selector)) == ["e1", "e3"]
    assert names(core.list_namespaced_event(ns, field_selector="reason=Started")) == [
        "e1",
        "e2",
        "e3",
    ]


def test_list_with_an_unsupported_field_selector_is_a_bad_request(
    core: client.CoreV1Api, ns: str
) -> None:
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(ns, field_selector="data.a=1")

    api_status(err, 400, "BadRequest")


def test_list_across_namespaces_with_a_label_selector(core: client.CoreV1Api, ns: str) -> None:
    other = f"{ns}-b"
    core.create_namespace({"metadata": {"name": other}})
    marker = {"suite": ns}
    core.create_namespaced_config_map(ns, configmap("one", marker, x="1"))
    core.create_namespaced_config_map(other, configmap("two", marker, x="1"))

    listing = core.list_config_map_for_all_namespaces(label_selector=f"suite={ns}")

    assert sorted((i.metadata.namespace, i.metadata.name) for i in listing.items) == [
        (ns, "one"),
        (other, "two"),
    ]


# -- paging ----------------------------------------------------------------------------------


def test_list_paging_with_limit_and_continue(core: client.CoreV1Api, ns: str) -> None:
    for i in range(7):
        core.create_namespaced_config_map(ns, configmap(f"cm-{i}", x="1"))

    pages = []
    token = None
    while True:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        pages.append([item.metadata.name for item in page.items])
        token = page.metadata._continue
        if not token:
            break

    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(name for page in pages for name in page) == [f"cm-{i}" for i in range(7)]


def test_paged_list_reports_the_remaining_item_count(core: client.CoreV1Api, ns: str) -> None:
    for i in range(5):
        core.create_namespaced_config_map(ns, configmap(f"cm-{i}", x="1"))

    page = core.list_namespaced_config_map(ns, limit=2)

    assert page.metadata.remaining_item_count == 3


def test_list_paging_is_a_consistent_snapshot(core: client.CoreV1Api, ns: str) -> None:
    for i in range(4):
        core.create_namespaced_config_map(ns, configmap(f"cm-{i}", x="1"))
    first = core.list_namespaced_config_map(ns, limit=2)

    core.create_namespaced_config_map(ns, configmap("cm-9", x="1"))
    core.delete_namespaced_config_map("cm-3", ns)
    rest = core.list_namespaced_config_map(ns, limit=10, _continue=first.metadata._continue)

    # Pages after the first are read at the first page's resourceVersion.
    assert [i.metadata.name for i in rest.items] == ["cm-2", "cm-3"]
    assert rest.metadata.resource_version == first.metadata.resource_version
    assert not rest.metadata._continue


# -- watch -----------------------------------------------------------------------------------


def _next_event(stream: Any) -> tuple[str, str, Any]:
    event = next(stream)
    return event["type"], event["object"].metadata.name, event["object"]


def test_watch_sees_added_modified_and_deleted_in_order(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, configmap("first", x="1"))
    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        ns,
        timeout_seconds=WATCH_TIMEOUT,
        _request_timeout=WATCH_TIMEOUT * 2,
    )
    try:
        # Without a resourceVersion the watch starts with the current objects.
        assert _next_event(stream)[:2] == ("ADDED", "first")

        core.create_namespaced_config_map(ns, configmap("live", x="1"))
        kind, name, obj = _next_event(stream)
        assert (kind, name) == ("ADDED", "live")
        created_rv = int(obj.metadata.resource_version)
        core.patch_namespaced_config_map("live", ns, {"data": {"x": "2"}})
        kind, name, obj = _next_event(stream)
        assert (kind, name, obj.data) == ("MODIFIED", "live", {"x": "2"})
        assert int(obj.metadata.resource_version) > created_rv
        core.delete_namespaced_config_map("live", ns)
        assert _next_event(stream)[:2] == ("DELETED", "live")
    finally:
        w.stop()
        stream.close()


def test_watch_resumes_from_a_resource_version(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, configmap("before", x="1"))
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, configmap("one", x="1"))
    core.patch_namespaced_config_map("one", ns, {"data": {"x": "2"}})
    core.delete_namespaced_config_map("one", ns)
    core.create_namespaced_config_map(ns, configmap("two", x="1"))

    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=start,
        timeout_seconds=WATCH_TIMEOUT,
        _request_timeout=WATCH_TIMEOUT * 2,
    )
    try:
        seen = [_next_event(stream)[:2] for _ in range(4)]
    finally:
        w.stop()
        stream.close()

    # Exactly the changes after `start`, in order; "before" is not replayed.
    assert seen == [("ADDED", "one"), ("MODIFIED", "one"), ("DELETED", "one"), ("ADDED", "two")]


def test_watch_with_a_label_selector_sees_only_matching_objects(
    core: client.CoreV1Api, ns: str
) -> None:
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, configmap("other", {"app": "db"}, x="1"))
    core.create_namespaced_config_map(ns, configmap("mine", {"app": "web"}, x="1"))

    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        ns,
        label_selector="app=web",
        resource_version=start,
        timeout_seconds=WATCH_TIMEOUT,
        _request_timeout=WATCH_TIMEOUT * 2,
    )
    try:
        first = _next_event(stream)[:2]
    finally:
        w.stop()
        stream.close()

    assert first == ("ADDED", "mine")


def test_watch_with_a_label_selector_sees_objects_leave_and_join(
    core: client.CoreV1Api, ns: str
) -> None:
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, configmap("one", {"app": "web"}, x="1"))
    core.patch_namespaced_config_map("one", ns, {"metadata": {"labels": {"app": "db"}}})
    core.patch_namespaced_config_map("one", ns, {"metadata": {"labels": {"app": "web"}}})

    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        ns,
        label_selector="app=web",
        resource_version=start,
        timeout_seconds=WATCH_TIMEOUT,
        _request_timeout=WATCH_TIMEOUT * 2,
    )
    try:
        seen = [_next_event(stream) for _ in range(3)]
    finally:
        w.stop()
        stream.close()

    # Leaving the selector is a DELETED carrying the state the watcher knew (the previous
    # one, at the revision of the change), as Kubernetes' watch cache sends; joining is ADDED.
    assert [(kind, obj.metadata.labels["app"]) for kind, _, obj in seen] == [
        ("ADDED", "web"),
        ("DELETED", "web"),
        ("ADDED", "web"),
    ]
    revisions = [int(obj.metadata.resource_version) for _, _, obj in seen]
    assert revisions == sorted(revisions) and len(set(revisions)) == 3


def test_watch_sees_a_finalized_deletion_as_modified_then_deleted(
    core: client.CoreV1Api, ns: str
) -> None:
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    body = configmap("kept", x="1")
    body["metadata"]["finalizers"] = ["example.com/keep"]
    core.create_namespaced_config_map(ns, body)
    core.delete_namespaced_config_map("kept", ns)
    core.patch_namespaced_config_map("kept", ns, {"metadata": {"finalizers": None}})

    w = watch.Watch()
    stream = w.stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=start,
        timeout_seconds=WATCH_TIMEOUT,
        _request_timeout=WATCH_TIMEOUT * 2,
    )
    try:
        seen = [_next_event(stream) for _ in range(3)]
    finally:
        w.stop()
        stream.close()

    assert [kind for kind, _, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert seen[1][2].metadata.deletion_timestamp is not None
    versions = [int(obj.metadata.resource_version) for _, _, obj in seen]
    assert versions == sorted(set(versions))


def test_watch_ends_after_timeout_seconds(core: client.CoreV1Api, ns: str) -> None:
    w = watch.Watch()
    events = list(
        w.stream(core.list_namespaced_config_map, ns, timeout_seconds=1, _request_timeout=30)
    )

    assert events == []


def test_watch_events_carry_kind_and_api_version(api: Any, ns: str) -> None:
    apps = client.AppsV1Api(api)
    start = apps.list_namespaced_deployment(ns).metadata.resource_version
    apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                },
            },
        },
    )

    w = watch.Watch()
    stream = w.stream(
        apps.list_namespaced_deployment,
        ns,
        resource_version=start,
        timeout_seconds=WATCH_TIMEOUT,
        _request_timeout=WATCH_TIMEOUT * 2,
    )
    try:
        event = next(stream)
    finally:
        w.stop()
        stream.close()

    assert event["raw_object"]["kind"] == "Deployment"
    assert event["raw_object"]["apiVersion"] == "apps/v1"
