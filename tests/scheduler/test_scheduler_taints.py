import pytest
from scheduler_support import node, pod

from kubeling.scheduler.filters import taint_toleration
from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo
from kubeling.scheduler.taints import Taint, Toleration, effective_taints, tolerates

GPU = Taint("gpu", "true", "NoSchedule")


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        (Toleration("gpu", "Equal", "true", "NoSchedule"), True),
        (Toleration("gpu", "", "true", "NoSchedule"), True),  # empty operator means Equal
        (Toleration("gpu", "Equal", "false", "NoSchedule"), False),
        (Toleration("gpu", "Exists", "", "NoSchedule"), True),
        (Toleration("gpu", "Exists", "", ""), True),  # empty effect matches every effect
        (Toleration("gpu", "Exists", "", "NoExecute"), False),
        (Toleration("", "Exists", "", ""), True),  # empty key with Exists tolerates all
        (Toleration("", "Exists", "", "PreferNoSchedule"), False),
        (Toleration("other", "Exists", "", ""), False),
        (Toleration("gpu", "Gt", "1", ""), False),  # unknown operators tolerate nothing
    ],
)
def test_toleration_matching(toleration, expected):
    assert tolerates(toleration, GPU) is expected


def _filter(pod_dict, node_dict):
    return taint_toleration(PodInfo.of(pod_dict), NodeInfo(node_dict))


def test_untolerated_no_schedule_taint_is_reported_with_key_and_value():
    n = node("a", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    assert _filter(pod("p"), n) == ("node(s) had untolerated taint {dedicated: db}",)


def test_no_execute_taint_also_blocks_scheduling():
    n = node("a", taints=[{"key": "evict", "effect": "NoExecute"}])
    assert _filter(pod("p"), n) == ("node(s) had untolerated taint {evict: }",)
    tolerant = pod("p", tolerations=[{"key": "evict", "operator": "Exists", "effect": "NoExecute"}])
    assert _filter(tolerant, n) == ()


def test_prefer_no_schedule_taint_does_not_filter():
    n = node("a", taints=[{"key": "soft", "effect": "PreferNoSchedule"}])
    assert _filter(pod("p"), n) == ()


def test_first_untolerated_taint_in_node_order_is_reported():
    n = node(
        "a",
        taints=[
            {"key": "one", "value": "1", "effect": "NoSchedule"},
            {"key": "two", "value": "2", "effect": "NoSchedule"},
        ],
    )
    tolerant = pod("p", tolerations=[{"key": "one", "operator": "Equal", "value": "1"}])
    assert _filter(pod("p"), n) == ("node(s) had untolerated taint {one: 1}",)
    assert _filter(tolerant, n) == ("node(s) had untolerated taint {two: 2}",)


def test_toleration_with_other_effect_does_not_tolerate():
    n = node("a", taints=[{"key": "k", "effect": "NoSchedule"}])
    p = pod("p", tolerations=[{"key": "k", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert _filter(p, n) == ("node(s) had untolerated taint {k: }",)


def test_tolerate_everything():
    n = node("a", taints=[{"key": "k", "effect": "NoSchedule"}], ready="False")
    assert _filter(pod("p", tolerations=[{"operator": "Exists"}]), n) == ()


def test_not_ready_node_gets_the_not_ready_taint():
    assert _filter(pod("p"), node("a", ready="False")) == (
        "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
    )


def test_unknown_ready_node_gets_the_unreachable_taint():
    assert _filter(pod("p"), node("a", ready="Unknown")) == (
        "node(s) had untolerated taint {node.kubernetes.io/unreachable: }",
    )


def test_default_no_execute_tolerations_do_not_tolerate_the_no_schedule_taint():
    p = pod(
        "p",
        tolerations=[
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
    )
    assert _filter(p, node("a", ready="False")) != ()


def test_node_without_ready_condition_is_not_tainted():
    assert _filter(pod("p"), node("a", ready=None)) == ()


def test_condition_taints_are_not_duplicated_when_the_controller_already_wrote_them():
    written = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
    taints = effective_taints(node("a", ready="False", taints=[written]))
    assert taints == (Taint("node.kubernetes.io/not-ready", "", "NoSchedule"),)


def test_pressure_conditions_and_unschedulable_become_taints():
    n = node("a", unschedulable=True)
    n["status"]["conditions"].append({"type": "DiskPressure", "status": "True"})
    keys = [t.key for t in effective_taints(n)]
    assert keys == ["node.kubernetes.io/disk-pressure", "node.kubernetes.io/unschedulable"]
