"""The patch engines against the bodies kubectl really sends and Kubernetes' error codes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api.errors import ApiError
from kubeling.api.patch import (
    MAX_JSON_PATCH_OPERATIONS,
    apply_json_patch,
    apply_merge_patch,
    apply_server_side,
    apply_strategic_merge_patch,
)
from kubeling.api.schema import kind_schema

DEPLOYMENT = kind_schema("apps", "v1", "Deployment")
POD = kind_schema("", "v1", "Pod")
SERVICE = kind_schema("", "v1", "Service")
PDB = kind_schema("policy", "v1", "PodDisruptionBudget")


def deployment() -> dict[str, Any]:
    """A live Deployment as the server stores it after `kubectl apply`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0f5e",
            "resourceVersion": "112",
            "generation": 1,
            "labels": {"app": "web"},
            "annotations": {
                "deployment.kubernetes.io/revision": "1",
                "kubectl.kubernetes.io/last-applied-configuration": "{}\n",
            },
            "finalizers": ["example.com/a"],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "args": ["--a", "--b"],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        },
                        {"name": "log", "image": "busybox"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
        "status": {"replicas": 2, "observedGeneration": 1},
    }


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return result


def web(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in containers(obj) if c["name"] == "web")


def error_of(fn: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        fn(*args)
    return caught.value


# JSON patch (RFC 6902)


def test_json_patch_add_sets_members_and_inserts_into_arrays():
    doc = {"a": {"b": 1}, "list": [1, 2, 3]}
    out = apply_json_patch(
        doc,
        [
            {"op": "add", "path": "/a/c", "value": 2},
            {"op": "add", "path": "/a/b", "value": 5},
            {"op": "add", "path": "/list/1", "value": 9},
            {"op": "add", "path": "/list/-", "value": 4},
            {"op": "add", "path": "/list/-1", "value": 7},
        ],
    )
    assert out == {"a": {"b": 5, "c": 2}, "list": [1, 9, 2, 3, 4, 7]}


def test_json_patch_remove_deletes_members_and_array_items():
    out = apply_json_patch(
        {"a": {"b": 1, "c": 2}, "list": [1, 2, 3, 4]},
        [
            {"op": "remove", "path": "/a/b"},
            {"op": "remove", "path": "/list/0"},
            {"op": "remove", "path": "/list/-1"},
        ],
    )
    assert out == {"a": {"c": 2}, "list": [2, 3]}


def test_json_patch_replace_changes_values():
    out = apply_json_patch(
        {"a": 1, "list": ["x", "y"]},
        [
            {"op": "replace", "path": "/a", "value": {"n": 1}},
            {"op": "replace", "path": "/list/1", "value": "z"},
        ],
    )
    assert out == {"a": {"n": 1}, "list": ["x", "z"]}


def test_json_patch_replace_of_missing_member_adds_it_like_kubernetes():
    out = apply_json_patch(
        {"metadata": {}}, [{"op": "replace", "path": "/metadata/annotations", "value": {}}]
    )
    assert out == {"metadata": {"annotations": {}}}


def test_json_patch_move_and_copy():
    out = apply_json_patch(
        {"a": {"x": [1]}, "b": {}},
        [
            {"op": "copy", "from": "/a/x", "path": "/b/y"},
            {"op": "move", "from": "/a/x", "path": "/b/z"},
            {"op": "move", "from": "/b/y/0", "path": "/b/z/-"},
        ],
    )
    assert out == {"a": {}, "b": {"y": [], "z": [1, 1]}}


def test_json_patch_copy_does_not_alias_the_copied_value():
    out = apply_json_patch({"a": {"x": 1}}, [{"op": "copy", "from": "/a", "path": "/b"}])
    out["b"]["x"] = 2
    assert out["a"] == {"x": 1}


def test_json_patch_test_passes_on_equal_json_values():
    doc = {"n": 1, "f": 1.0, "m": {"a": [1, "x"]}, "t": True}
    ops = [
        {"op": "test", "path": "/n", "value": 1.0},
        {"op": "test", "path": "/m", "value": {"a": [1, "x"]}},
        {"op": "test", "path": "/t", "value": True},
        {"op": "test", "path": "/absent", "value": None},
        {"op": "test", "path": "", "value": doc},
    ]
    assert apply_json_patch(doc, ops) == doc


@pytest.mark.parametrize(
    ("path", "value"), [("/t", 1), ("/n", True), ("/n", "1"), ("/m", {"a": [1]}), ("/absent", 0)]
)
def test_json_patch_failed_test_is_422_invalid_with_the_detail_as_cause(path, value):
    doc = {"n": 1, "t": True, "m": {"a": [1, "x"]}}
    err = error_of(apply_json_patch, doc, [{"op": "test", "path": path, "value": value}])
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.message == "the server rejected our request due to an error in our request"
    assert err.causes[0].reason == "UnexpectedServerResponse"
    assert err.causes[0].message == f"testing value {path} failed: test failed"


def test_json_patch_pointer_escapes_tilde_and_slash():
    doc = {"metadata": {"annotations": {"a/b": "1", "c~d": "2"}}}
    out = apply_json_patch(
        doc,
        [
            {"op": "remove", "path": "/metadata/annotations/a~1b"},
            {"op": "replace", "path": "/metadata/annotations/c~0d", "value": "3"},
            {"op": "add", "path": "/metadata/annotations/e~01", "value": "4"},
        ],
    )
    assert out["metadata"]["annotations"] == {"c~d": "3", "e~1": "4"}


def test_json_patch_on_the_root_replaces_the_document():
    assert apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}]) == {
        "b": 2
    }
    assert apply_json_patch({"a": 1}, [{"op": "add", "path": "", "value": {"c": 3}}]) == {"c": 3}


@pytest.mark.parametrize(
    ("op", "detail"),
    [
        ({"op": "remove", "path": "/a/missing"}, "Unable to remove nonexistent key: missing"),
        ({"op": "add", "path": "/missing/x", "value": 1}, 'doc is missing path: "/missing/x"'),
        ({"op": "add", "path": "/a/b/c", "value": 1}, "doc is missing path"),
        ({"op": "replace", "path": "/list/5", "value": 1}, "Unable to access invalid index: 5"),
        ({"op": "replace", "path": "/list/-1", "value": 1}, "Unable to access invalid index: -1"),
        ({"op": "add", "path": "/list/9", "value": 1}, "Unable to access invalid index: 9"),
        ({"op": "add", "path": "/list/x", "value": 1}, "value was not a proper array index: 'x'"),
        ({"op": "remove", "path": "/list/3"}, "Unable to access invalid index: 3"),
        ({"op": "remove", "path": ""}, "cannot remove the whole document"),
        ({"op": "copy", "from": "/nope", "path": "/b"}, "doc is missing from path: /nope"),
        ({"op": "move", "from": "/nope", "path": "/b"}, "Unable to remove nonexistent key: nope"),
        ({"op": "move", "from": "/a", "path": "/a/b/c"}, "into its own child"),
        ({"op": "frobnicate", "path": "/a"}, "Unexpected kind: frobnicate"),
        ({"path": "/a"}, "Unexpected kind: None"),
        ({"op": "add", "path": "/a/c"}, "add operation, missing value field"),
        ({"op": "remove"}, "remove operation, missing path field"),
        ({"op": "copy", "path": "/b"}, "copy operation, missing from field"),
        ({"op": "add", "path": "a", "value": 1}, "is not a JSON pointer"),
        ({"op": "replace", "path": "", "value": [1]}, "must be an object, not an array"),
    ],
)
def test_json_patch_operation_that_cannot_apply_is_422(op, detail):
    err = error_of(apply_json_patch, {"a": {"b": 1}, "list": [1, 2, 3]}, [op])
    assert (err.code, err.reason) == (422, "Invalid")
    assert detail in err.causes[0].message


@pytest.mark.parametrize(
    "ops", [{"op": "add"}, "[]", None, [["op"]], [{"op": "add", "path": "/a", "value": 1}, 3]]
)
def test_json_patch_body_that_is_not_an_array_of_objects_is_400(ops):
    err = error_of(apply_json_patch, {}, ops)
    assert (err.code, err.reason) == (400, "BadRequest")


def test_json_patch_with_too_many_operations_is_413():
    ops = [{"op": "test", "path": "", "value": {}}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    err = error_of(apply_json_patch, {}, ops)
    assert (err.code, err.reason) == (413, "RequestEntityTooLarge")
    assert "10000" in err.message


def test_json_patch_failure_leaves_the_input_untouched():
    doc = {"a": {"b": 1}}
    ops = [{"op": "add", "path": "/a/c", "value": 2}, {"op": "test", "path": "/a/b", "value": 3}]
    error_of(apply_json_patch, doc, ops)
    assert doc == {"a": {"b": 1}}


def test_json_patch_does_not_mutate_or_alias_its_inputs():
    doc = deployment()
    value = {"x": ["1"]}
    ops = [{"op": "add", "path": "/metadata/labels/extra", "value": value}]
    before_doc, before_ops = copy.deepcopy(doc), copy.deepcopy(ops)
    out = apply_json_patch(doc, ops)
    out["metadata"]["labels"]["extra"]["x"].append("2")
    out["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    assert doc == before_doc
    assert ops == before_ops


def test_json_patch_of_rollout_undo_replaces_template_and_annotations():
    live = deployment()
    old_template = copy.deepcopy(live["spec"]["template"])
    containers(live)[0]["image"] = "nginx:1.26"
    annotations = {"deployment.kubernetes.io/revision": "3"}
    ops = [
        {"op": "replace", "path": "/spec/template", "value": old_template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    out = apply_json_patch(live, ops)
    assert out["spec"]["template"] == old_template
    assert out["metadata"]["annotations"] == annotations
    assert out["status"] == live["status"]


# JSON merge patch (RFC 7386)


def test_merge_patch_merges_objects_and_null_deletes():
    doc = {"a": {"b": 1, "c": 2}, "d": 3, "e": [1, 2]}
    out = apply_merge_patch(doc, {"a": {"b": None, "x": {"y": None, "z": 1}}, "d": None, "e": [3]})
    assert out == {"a": {"c": 2, "x": {"z": 1}}, "e": [3]}


def test_merge_patch_replaces_arrays_and_scalars_wholesale():
    doc = {"list": [{"name": "a", "v": 1}], "s": "x", "o": {"k": 1}}
    out = apply_merge_patch(doc, {"list": [{"name": "b"}], "s": {"n": None, "m": 1}, "o": "flat"})
    assert out == {"list": [{"name": "b"}], "s": {"m": 1}, "o": "flat"}


def test_merge_patch_of_kubectl_scale_and_label():
    out = apply_merge_patch(deployment(), {"spec": {"replicas": 3}})
    out = apply_merge_patch(out, {"metadata": {"labels": {"tier": "fe"}}})
    assert out["spec"]["replicas"] == 3
    assert out["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert containers(out) == containers(deployment())


@pytest.mark.parametrize("patch", [None, [1], "x", 3])
def test_merge_patch_that_is_not_an_object_is_400(patch):
    err = error_of(apply_merge_patch, {"a": 1}, patch)
    assert (err.code, err.reason) == (400, "BadRequest")
    assert err.message.startswith("Invalid JSON Patch")


def test_merge_patch_does_not_mutate_or_alias_its_inputs():
    doc, patch = deployment(), {"metadata": {"labels": {"x": "1"}}, "spec": {"extra": {"k": [1]}}}
    before_doc, before_patch = copy.deepcopy(doc), copy.deepcopy(patch)
    out = apply_merge_patch(doc, patch)
    out["spec"]["extra"]["k"].append(2)
    out["metadata"]["labels"]["y"] = "2"
    assert (doc, patch) == (before_doc, before_patch)


# Strategic merge patch


def test_smp_second_kubectl_apply_body_from_the_wire():
    live = deployment()
    del containers(live)[1]
    last_applied = '{"apiVersion":"apps/v1","kind":"Deployment"}\n'
    patch = {
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}
        },
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"image": "nginx:1.26", "name": "web"}],
                }
            }
        },
    }
    out = apply_strategic_merge_patch(live, patch, DEPLOYMENT)
    expected = copy.deepcopy(live)
    containers(expected)[0]["image"] = "nginx:1.26"
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = (
        last_applied
    )
    assert out == expected


def test_smp_worked_example_of_the_patch_module_docstring():
    live = {
        "spec": {
            "containers": [
                {"name": "web", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}]},
                {"name": "log", "image": "busybox"},
            ]
        }
    }
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.26",
                    "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                    "env": [{"name": "B", "value": "2"}],
                }
            ],
        }
    }
    assert apply_strategic_merge_patch(live, patch, POD) == {
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.26",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                },
                {"name": "log", "image": "busybox"},
            ]
        }
    }
    assert apply_merge_patch(live, patch)["spec"]["containers"] == patch["spec"]["containers"]


def test_smp_kubectl_set_image_body():
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"image": "nginx:1.27", "name": "web"}],
                }
            }
        }
    }
    live = deployment()
    del containers(live)[1]
    out = apply_strategic_merge_patch(live, patch, DEPLOYMENT)
    assert containers(out) == [{**containers(live)[0], "image": "nginx:1.27"}]


def test_smp_rollout_restart_pause_and_resume():
    restarted = {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}}
        }
    }
    out = apply_strategic_merge_patch(deployment(), restarted, DEPLOYMENT)
    assert out["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": "t"},
    }
    paused = apply_strategic_merge_patch(out, {"spec": {"paused": True}}, DEPLOYMENT)
    assert paused["spec"]["paused"] is True
    resumed = apply_strategic_merge_patch(paused, {"spec": {"paused": None}}, DEPLOYMENT)
    assert "paused" not in resumed["spec"]
    assert resumed == out


def test_smp_apply_adding_a_container_and_env_var_follows_set_element_order():
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [
                        {"name": "web"},
                        {"name": "side"},
                        {"name": "log"},
                    ],
                    "containers": [
                        {
                            "name": "web",
                            "$setElementOrder/env": [{"name": "A"}, {"name": "C"}, {"name": "B"}],
                            "env": [{"name": "C", "value": "3"}],
                        },
                        {"name": "side", "image": "envoy"},
                    ],
                }
            }
        }
    }
    out = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert [c["name"] for c in containers(out)] == ["web", "side", "log"]
    assert web(out)["env"] == [
        {"name": "A", "value": "1"},
        {"name": "C", "value": "3"},
        {"name": "B", "value": "2"},
    ]
    assert web(out)["image"] == "nginx:1.25"


def test_smp_set_element_order_alone_reorders_the_live_list():
    patch = {
        "spec": {
            "template": {
                "spec": {"$setElementOrder/containers": [{"name": "log"}, {"name": "web"}]}
            }
        }
    }
    out = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert [c["name"] for c in containers(out)] == ["log", "web"]


def test_smp_without_set_element_order_keeps_live_order_around_patch_order():
    # The example of the "preserve order in strategic merge patch" design proposal.
    live = {"spec": {"containers": [{"name": "B"}, {"name": "C"}, {"name": "A"}]}}
    patch = {
        "spec": {
            "containers": [{"name": "A", "image": "a"}, {"name": "B", "image": "b"}, {"name": "D"}]
        }
    }
    out = apply_strategic_merge_patch(live, patch, POD)
    assert out["spec"]["containers"] == [
        {"name": "C"},
        {"name": "A", "image": "a"},
        {"name": "B", "image": "b"},
        {"name": "D"},
    ]


def test_smp_merges_ports_volume_mounts_and_volumes_by_their_merge_keys():
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "ports": [
                                {"containerPort": 80, "name": "http"},
                                {"containerPort": 443},
                            ],
                            "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                        }
                    ],
                    "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory"}}],
                }
            }
        }
    }
    out = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert web(out)["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
        {"containerPort": 443},
    ]
    assert web(out)["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert [v["name"] for v in out["spec"]["template"]["spec"]["volumes"]] == ["cache", "data"]


def test_smp_merges_pod_conditions_by_type_and_owner_references_by_uid():
    live = {
        "metadata": {"ownerReferences": [{"uid": "u1", "name": "rs-1", "kind": "ReplicaSet"}]},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"},
            ]
        },
    }
    patch = {
        "metadata": {
            "ownerReferences": [{"uid": "u1", "controller": True}, {"uid": "u2", "name": "rs-2"}]
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    out = apply_strategic_merge_patch(live, patch, POD)
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]
    assert out["metadata"]["ownerReferences"] == [
        {"uid": "u1", "name": "rs-1", "kind": "ReplicaSet", "controller": True},
        {"uid": "u2", "name": "rs-2"},
    ]


def test_smp_merges_service_ports_by_port():
    live = {
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}
    }
    patch = {"spec": {"ports": [{"port": 443, "name": "https"}]}}
    out = apply_strategic_merge_patch(live, patch, SERVICE)
    assert out["spec"]["ports"] == [
        {"port": 80, "targetPort": 8080},
        {"port": 443, "targetPort": 8443, "name": "https"},
    ]


def test_smp_merges_finalizers_as_a_set_and_deletes_from_primitive_list():
    live = {"metadata": {"finalizers": ["a", "b"]}}
    out = apply_strategic_merge_patch(live, {"metadata": {"finalizers": ["b", "c", "c"]}}, POD)
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "x"], "finalizers": ["d"]}}
    out = apply_strategic_merge_patch(live, patch, POD)
    assert out["metadata"]["finalizers"] == ["d", "b"]


def test_smp_orders_finalizers_by_set_element_order():
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["c", "a"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "finalizers": ["c"],
        }
    }
    out = apply_strategic_merge_patch({"metadata": {"finalizers": ["a", "b"]}}, patch, POD)
    assert out["metadata"]["finalizers"] == ["c", "a"]


def test_smp_replaces_lists_without_a_merge_strategy():
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["--c"]}]}}}}
    out = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert web(out)["args"] == ["--c"]
    assert web(out)["env"] == web(deployment())["env"]


def test_smp_without_schema_replaces_lists_but_honours_directives():
    live = {"spec": {"items": [{"name": "a"}, {"name": "b"}], "keep": {"x": 1, "y": 2}}}
    patch = {
        "spec": {
            "items": [{"name": "c"}],
            "keep": {"$retainKeys": ["x"], "x": 3},
            "new": {"$setElementOrder/l": [1], "l": [1], "$patch": "merge"},
        }
    }
    out = apply_strategic_merge_patch(live, patch, None)
    assert out == {"spec": {"items": [{"name": "c"}], "keep": {"x": 3}, "new": {"l": [1]}}}


def test_smp_patch_replace_directive_on_a_map():
    patch = {"spec": {"selector": {"$patch": "replace", "matchLabels": {"app": "api"}}}}
    live = deployment()
    live["spec"]["selector"]["matchExpressions"] = [{"key": "a", "operator": "Exists"}]
    out = apply_strategic_merge_patch(live, patch, DEPLOYMENT)
    assert out["spec"]["selector"] == {"matchLabels": {"app": "api"}}


def test_smp_patch_delete_directive_on_a_map_removes_it():
    out = apply_strategic_merge_patch(
        deployment(), {"spec": {"strategy": {"$patch": "delete"}}}, DEPLOYMENT
    )
    assert "strategy" not in out["spec"]


def test_smp_patch_replace_directive_in_a_list():
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}
            }
        }
    }
    out = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert containers(out) == [{"name": "only", "image": "x"}]


def test_smp_patch_delete_directive_in_a_list_removes_the_keyed_item():
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "log", "$patch": "delete"},
                        {"name": "web", "env": [{"name": "A", "$patch": "delete"}]},
                    ]
                }
            }
        }
    }
    out = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert [c["name"] for c in containers(out)] == ["web"]
    assert web(out)["env"] == [{"name": "B", "value": "2"}]


def test_smp_retain_keys_clears_the_replaced_deployment_strategy():
    patch = {
        "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}
    }
    out = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_smp_retain_keys_switches_a_volume_source():
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/volumes": [{"name": "data"}],
                    "volumes": [
                        {
                            "$retainKeys": ["configMap", "name"],
                            "configMap": {"name": "cm"},
                            "name": "data",
                        }
                    ],
                }
            }
        }
    }
    out = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert out["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "configMap": {"name": "cm"}}
    ]


def test_smp_replace_strategy_replaces_the_pdb_selector():
    live = {"spec": {"selector": {"matchLabels": {"app": "web", "tier": "fe"}}, "minAvailable": 1}}
    out = apply_strategic_merge_patch(
        live, {"spec": {"selector": {"matchLabels": {"app": "api"}}}}, PDB
    )
    assert out["spec"] == {"selector": {"matchLabels": {"app": "api"}}, "minAvailable": 1}


def test_smp_strips_directives_from_values_new_to_the_object():
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [
                        {"name": "gone", "$patch": "delete"},
                        {"name": "init", "image": "x"},
                    ],
                    "securityContext": {
                        "$retainKeys": ["runAsUser"],
                        "runAsUser": 1,
                        "fsGroup": None,
                    },
                }
            }
        }
    }
    out = apply_strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    pod_spec = out["spec"]["template"]["spec"]
    assert pod_spec["initContainers"] == [{"name": "init", "image": "x"}]
    assert pod_spec["securityContext"] == {"runAsUser": 1}


def test_smp_replaces_a_value_of_another_json_type():
    out = apply_strategic_merge_patch(
        {"a": [1], "b": "x"}, {"a": {"k": None, "v": 1}, "b": [{"$patch": "delete"}, 2]}, None
    )
    assert out == {"a": {"v": 1}, "b": [2]}


def test_smp_top_level_replace_directive():
    out = apply_strategic_merge_patch({"a": 1}, {"$patch": "replace", "b": {"c": None}}, None)
    assert out == {"b": {}}


@pytest.mark.parametrize(
    ("patch", "code", "reason", "detail"),
    [
        (
            {"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}},
            400,
            "BadRequest",
            'map: {"image":"nginx"} does not contain declared merge key: name',
        ),
        (
            {"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}},
            400,
            "BadRequest",
            "does not contain declared merge key: name",
        ),
        ({"spec": {"$patch": "frobnicate"}}, 400, "BadRequest", "unknown patch type: frobnicate"),
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "web", "$patch": "x"}]}}}},
            400,
            "BadRequest",
            "unknown patch type: x",
        ),
        (
            {
                "spec": {
                    "template": {
                        "spec": {
                            "$setElementOrder/containers": [{"name": "log"}],
                            "containers": [{"name": "web", "image": "x"}],
                        }
                    }
                }
            },
            400,
            "BadRequest",
            "doesn't match $setElementOrder/containers list",
        ),
        (
            {"spec": {"template": {"spec": {"$setElementOrder/containers": "web"}}}},
            400,
            "BadRequest",
            "expected a list",
        ),
        (
            {"metadata": {"finalizers": [{"a": 1}]}},
            400,
            "BadRequest",
            "list element types are not identical",
        ),
        (
            {"spec": {"$setElementOrder": []}},
            400,
            "BadRequest",
            "invalid patch format of setElementOrder list",
        ),
        (
            {"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}},
            400,
            "BadRequest",
            "invalid patch format of primitive list",
        ),
        (
            {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
            400,
            "BadRequest",
            "invalid patch format of primitive list",
        ),
        (
            {"spec": {"strategy": {"$retainKeys": "type"}}},
            400,
            "BadRequest",
            "invalid patch format of retainKeys",
        ),
        (
            {
                "spec": {
                    "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}
                }
            },
            400,
            "BadRequest",
            "'rollingUpdate' is not in $retainKeys",
        ),
        ([{"op": "add"}], 400, "BadRequest", "must be a JSON object, not an array"),
    ],
)
def test_smp_errors_carry_kubernetes_codes(patch, code, reason, detail):
    err = error_of(apply_strategic_merge_patch, deployment(), patch, DEPLOYMENT)
    assert (err.code, err.reason) == (code, reason)
    assert detail in err.message


def test_smp_list_of_lists_is_422():
    live = {"metadata": {"finalizers": ["a"]}}
    err = error_of(apply_strategic_merge_patch, live, {"metadata": {"finalizers": [["b"]]}}, POD)
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.causes[0].message == "lists of lists are not supported"


def test_smp_does_not_mutate_or_alias_its_inputs():
    live = deployment()
    patch = {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]},
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "new"}],
                    "containers": [
                        {"name": "web", "env": [{"name": "A", "$patch": "delete"}]},
                        {"name": "new", "image": "x", "args": ["a"]},
                    ],
                }
            },
        },
    }
    before_live, before_patch = copy.deepcopy(live), copy.deepcopy(patch)
    out = apply_strategic_merge_patch(live, patch, DEPLOYMENT)
    containers(out)[1]["args"].append("b")
    containers(out)[0]["env"][0]["value"] = "changed"
    assert (live, patch) == (before_live, before_patch)


# Server-side apply


def test_ssa_creates_from_the_applied_configuration():
    applied = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": None},
        "data": {"k": "v"},
    }
    out = apply_server_side(None, applied, kind_schema("", "v1", "ConfigMap"))
    assert out == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"k": "v"},
    }


def test_ssa_merges_onto_the_live_object_keeping_server_fields():
    applied = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"tier": "fe"}},
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.26",
                            "env": [{"name": "C", "value": "3"}],
                        },
                        {"name": "side", "image": "envoy"},
                    ]
                }
            },
        },
    }
    out = apply_server_side(deployment(), applied, DEPLOYMENT)
    assert out["metadata"]["uid"] == "0f5e"
    assert out["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert out["status"] == deployment()["status"]
    assert out["spec"]["replicas"] == 3
    assert [c["name"] for c in containers(out)] == ["web", "log", "side"]
    assert web(out)["image"] == "nginx:1.26"
    assert [e["name"] for e in web(out)["env"]] == ["A", "B", "C"]


def test_ssa_matches_items_whose_defaulted_key_was_left_out():
    applied = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "web", "ports": [{"containerPort": 80, "name": "http"}]}
                    ]
                }
            }
        }
    }
    out = apply_server_side(deployment(), applied, DEPLOYMENT)
    assert web(out)["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]
    again = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "web", "ports": [{"containerPort": 80, "protocol": "UDP"}]}
                    ]
                }
            }
        }
    }
    out = apply_server_side(out, again, DEPLOYMENT)
    assert web(out)["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
        {"containerPort": 80, "protocol": "UDP"},
    ]


def test_ssa_unions_sets_and_replaces_atomic_lists_and_maps():
    live = deployment()
    live["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd", "zone": "a"}
    applied = {
        "metadata": {"finalizers": ["example.com/b", "example.com/a"]},
        "spec": {
            "template": {
                "spec": {
                    "nodeSelector": {"zone": "b"},
                    "containers": [{"name": "web", "args": ["--c"]}],
                }
            }
        },
    }
    out = apply_server_side(live, applied, DEPLOYMENT)
    assert out["metadata"]["finalizers"] == ["example.com/b", "example.com/a"]
    assert out["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "b"}
    assert web(out)["args"] == ["--c"]


def test_ssa_null_removes_a_field():
    out = apply_server_side(deployment(), {"spec": {"strategy": None}}, DEPLOYMENT)
    assert "strategy" not in out["spec"]


def test_ssa_does_not_remove_fields_left_out_of_the_configuration():
    # The documented limitation: without managedFields nothing says `log` was applied before.
    applied = {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}
    }
    out = apply_server_side(deployment(), applied, DEPLOYMENT)
    assert [c["name"] for c in containers(out)] == ["web", "log"]


def test_ssa_without_schema_merges_maps_and_replaces_lists():
    live = {"spec": {"list": [1, 2], "map": {"a": 1}}}
    out = apply_server_side(live, {"spec": {"list": [3], "map": {"b": 2}}}, None)
    assert out == {"spec": {"list": [3], "map": {"a": 1, "b": 2}}}


def test_ssa_configuration_that_is_not_an_object_is_400():
    err = error_of(apply_server_side, None, ["x"], None)
    assert (err.code, err.reason) == (400, "BadRequest")


def test_ssa_does_not_mutate_or_alias_its_inputs():
    live = deployment()
    applied = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "new", "args": ["a"]},
                        {"name": "web", "env": [{"name": "Z"}]},
                    ]
                }
            }
        }
    }
    before_live, before_applied = copy.deepcopy(live), copy.deepcopy(applied)
    out = apply_server_side(live, applied, DEPLOYMENT)
    containers(out)[0]["args"].append("b")
    web(out)["env"].append({"name": "Y"})
    out["status"]["replicas"] = 9
    assert (live, applied) == (before_live, before_applied)
    assert apply_server_side(None, applied, DEPLOYMENT) == applied


def test_ssa_orders_lists_like_structured_merge_diff():
    # Live-only items keep their place; items both live and applied follow the applied order.
    live = {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}
    applied = {"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "a"}, {"name": "d"}]}}
    out = apply_server_side(live, applied, POD)
    assert out["spec"]["containers"] == [
        {"name": "b"},
        {"name": "c", "image": "x"},
        {"name": "a"},
        {"name": "d"},
    ]
