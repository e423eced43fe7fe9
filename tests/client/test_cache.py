"""The indexed cache: keys, indexes that follow every change, and shared objects that a
mutation detector guards."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.client.cache import (
    Cache,
    by_controller_uid,
    by_label,
    by_node_name,
    copy,
    object_key,
    split_key,
)


def _pod(name: str, ns: str = "default", node: str = "", owner: str = "", rv: str = "1") -> Any:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "resourceVersion": rv}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "rs",
                "uid": owner,
                "controller": True,
            }
        ]
    spec = {"nodeName": node} if node else {}
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec}


def test_keys_are_namespace_slash_name_or_just_the_name() -> None:
    assert object_key(_pod("web", "prod")) == "prod/web"
    assert object_key({"metadata": {"name": "node-1"}}) == "node-1"
    assert split_key("prod/web") == ("prod", "web")
    assert split_key("node-1") == (None, "node-1")


def test_get_and_list_see_what_was_stored() -> None:
    cache = Cache()
    cache.upsert(_pod("a", "x"))
    cache.upsert(_pod("b", "y"))

    assert cache.get("x/a") is not None
    assert cache.get_by_name("y", "b") is not None
    assert cache.get("x/b") is None
    assert len(cache) == 2
    assert [o["metadata"]["name"] for o in cache.list("y")] == ["b"]


def test_upsert_returns_the_replaced_object_and_remove_the_removed_one() -> None:
    cache = Cache()
    first = _pod("a", rv="1")
    assert cache.upsert(first) is None
    assert cache.upsert(_pod("a", rv="2")) is first
    removed = cache.remove("default/a")
    assert removed is not None and removed["metadata"]["resourceVersion"] == "2"
    assert cache.remove("default/a") is None


def test_node_name_index_follows_updates_and_deletes() -> None:
    cache = Cache({"node": by_node_name})
    cache.upsert(_pod("a", node="n1"))
    cache.upsert(_pod("b", node="n1"))
    cache.upsert(_pod("c"))

    assert [o["metadata"]["name"] for o in cache.by_index("node", "n1")] == ["a", "b"]
    cache.upsert(_pod("b", node="n2", rv="2"))
    cache.remove("default/a")

    assert cache.by_index("node", "n1") == []
    assert [o["metadata"]["name"] for o in cache.by_index("node", "n2")] == ["b"]
    assert cache.index_values("node") == ["n2"]


def test_controller_owner_index_finds_the_pods_of_a_replicaset() -> None:
    cache = Cache({"owner": by_controller_uid})
    cache.upsert(_pod("a", owner="uid-1"))
    cache.upsert(_pod("b", owner="uid-2"))
    cache.upsert(_pod("orphan"))

    assert cache.index_keys("owner", "uid-1") == ["default/a"]


def test_an_indexer_added_later_indexes_what_is_cached_already() -> None:
    cache = Cache()
    cache.upsert({"metadata": {"name": "a", "namespace": "x", "labels": {"app": "web"}}})

    cache.add_indexer("app", by_label("app"))

    assert cache.index_keys("app", "web") == ["x/a"]
    with pytest.raises(ValueError):
        cache.add_indexer("app", by_label("tier"))


def test_an_unknown_index_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        Cache().by_index("nope", "x")


def test_copy_is_deep_and_independent() -> None:
    original = _pod("a", node="n1")
    clone = copy(original)
    clone["spec"]["nodeName"] = "n2"

    assert original["spec"]["nodeName"] == "n1"


def test_the_mutation_detector_reports_an_object_changed_while_cached() -> None:
    cache = Cache(detect_mutations=True)
    shared = _pod("a", rv="1")
    cache.upsert(shared)

    shared["metadata"]["labels"] = {"oops": "true"}  # what callers must never do

    assert cache.check_mutations() == ["default/a"]
    cache.upsert(_pod("a", rv="2"))
    assert cache.mutations == ["default/a"]


def test_the_mutation_detector_is_quiet_when_callers_copy_first() -> None:
    cache = Cache(detect_mutations=True)
    cache.upsert(_pod("a"))
    cached = cache.get("default/a")
    assert cached is not None

    changed = copy(cached)
    changed["metadata"]["labels"] = {"fine": "true"}
    cache.upsert(changed)

    assert cache.check_mutations() == []
