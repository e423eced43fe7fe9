import random
from collections import Counter

import pytest
from scheduler_support import expression, infos, node, pod

from kubeling.scheduler.algorithm import schedule_pod
from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo
from kubeling.scheduler.scoring import (
    WEIGHTS,
    balanced_allocation,
    least_allocated,
    normalize_default,
    normalize_spread,
    plugin_scores,
    select_host,
    total_scores,
)


def test_default_profile_weights():
    assert dict(WEIGHTS) == {
        "TaintToleration": 3,
        "NodeAffinity": 2,
        "NodeResourcesFit": 1,
        "PodTopologySpread": 2,
        "NodeResourcesBalancedAllocation": 1,
    }


def test_least_allocated_worked_example():
    busy = NodeInfo(node("a", cpu="4", memory="8Gi"), [pod("x", cpu="1", memory="2Gi")])
    assert least_allocated(PodInfo.of(pod("p", cpu="1", memory="2Gi")), busy) == 50


def test_least_allocated_charges_default_requests_to_pods_without_requests():
    # 100m of 1000m and 200Mi of 1000Mi requested: cpu 90, memory 80 -> 85.
    n = NodeInfo(node("a", cpu="1", memory="1000Mi"))
    assert least_allocated(PodInfo.of(pod("p")), n) == 85


def test_least_allocated_over_capacity_scores_zero():
    n = NodeInfo(node("a", cpu="1", memory="1Gi"))
    assert least_allocated(PodInfo.of(pod("p", cpu="2", memory="2Gi")), n) == 0


def test_balanced_allocation_prefers_equal_cpu_and_memory_fractions():
    n = NodeInfo(node("a", cpu="4", memory="4Gi"))
    assert balanced_allocation(PodInfo.of(pod("p", cpu="2", memory="2Gi")), n) == 100
    # cpu 1.0, memory 0.25 -> 1 - 0.375 = 62.5 -> 62
    assert balanced_allocation(PodInfo.of(pod("p", cpu="4", memory="1Gi")), n) == 62


def test_default_normalization():
    assert normalize_default([0, 0], reverse=True) == [100, 100]
    assert normalize_default([0, 0], reverse=False) == [0, 0]
    assert normalize_default([1, 2, 0], reverse=True) == [50, 0, 100]
    assert normalize_default([3, 7], reverse=False) == [42, 100]


def test_spread_normalization_gives_the_emptiest_node_100():
    assert normalize_spread([2, 4, 5]) == [100, 60, 40]
    assert normalize_spread([3, 3]) == [100, 100]


def test_scoring_prefers_the_emptier_node():
    nodes = [
        NodeInfo(node("busy"), [pod("x", cpu="2", memory="4Gi")]),
        NodeInfo(node("idle")),
    ]
    assert select_host(pod("p", cpu="500m", memory="1Gi"), nodes, random.Random(0)) == "idle"


def test_single_feasible_node_is_chosen_without_scoring():
    full = NodeInfo(node("only"), [pod("x", cpu="3")])
    assert select_host(pod("p"), [full], random.Random(0)) == "only"


def test_select_host_needs_a_node():
    with pytest.raises(ValueError):
        select_host(pod("p"), [], random.Random(0))


def test_ties_are_broken_at_random():
    nodes = infos(node("a"), node("b"), node("c"))
    rng = random.Random(7)
    chosen = Counter(select_host(pod("p"), nodes, rng) for _ in range(300))
    assert set(chosen) == {"a", "b", "c"}
    assert min(chosen.values()) > 60


def test_same_seed_gives_the_same_choice():
    nodes = infos(node("a"), node("b"), node("c"))
    first = [select_host(pod("p"), nodes, random.Random(3)) for _ in range(5)]
    assert len(set(first)) == 1


def test_replicas_of_one_replicaset_spread_evenly_over_three_equal_nodes():
    nodes = infos(node("a"), node("b"), node("c"))
    rng = random.Random(42)
    for i in range(6):
        replica = pod(f"web-{i}", cpu="100m", memory="128Mi", owner="web-rs")
        decision = schedule_pod(replica, nodes, rng)
        assert decision.node_name is not None
        next(n for n in nodes if n.name == decision.node_name).add_pod(replica)
    assert sorted(n.pod_count for n in nodes) == [2, 2, 2]


def test_spreading_counts_only_pods_of_the_same_controller():
    crowded = NodeInfo(node("a"), [pod(f"other-{i}", owner="other") for i in range(3)])
    crowded.add_pod(pod("sibling", owner="web"))
    empty_of_web = NodeInfo(node("b"), [pod(f"other-b{i}", owner="other") for i in range(4)])
    scores = plugin_scores(pod("p", owner="web"), [crowded, empty_of_web])
    assert scores["PodTopologySpread"][1] > scores["PodTopologySpread"][0]


def test_pods_without_controller_are_not_spread():
    assert "PodTopologySpread" not in plugin_scores(pod("p"), infos(node("a"), node("b")))


def test_prefer_no_schedule_taint_lowers_the_score_unless_tolerated():
    soft = node("soft", taints=[{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}])
    nodes = infos(soft, node("plain"))
    assert plugin_scores(pod("p"), nodes)["TaintToleration"] == [0, 100]
    assert select_host(pod("p"), nodes, random.Random(0)) == "plain"
    tolerant = pod("p", tolerations=[{"key": "spot", "operator": "Exists"}])
    assert plugin_scores(tolerant, nodes)["TaintToleration"] == [100, 100]


def test_preferred_node_affinity_weights_are_summed_and_normalized():
    preference = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 20,
                    "preference": {"matchExpressions": [expression("disk", "In", "ssd")]},
                },
                {"weight": 80, "preference": {"matchExpressions": [expression("zone", "In", "a")]}},
                {"weight": 0, "preference": {"matchExpressions": [expression("gpu", "Exists")]}},
            ]
        }
    }
    nodes = infos(
        node("ssd", labels={"disk": "ssd", "gpu": "1"}),
        node("zone-a", labels={"zone": "a"}),
        node("both", labels={"disk": "ssd", "zone": "a"}),
    )
    p = pod("p", affinity=preference)
    assert plugin_scores(p, nodes)["NodeAffinity"] == [20, 80, 100]
    assert select_host(p, nodes, random.Random(0)) == "both"


def test_total_is_the_weighted_sum_of_plugin_scores():
    nodes = infos(node("a"), node("b", cpu="8", memory="16Gi"))
    p = pod("p", cpu="1", memory="1Gi", owner="rs")
    per_plugin = plugin_scores(p, nodes)
    expected = [
        sum(WEIGHTS[name] * scores[i] for name, scores in per_plugin.items()) for i in range(2)
    ]
    assert total_scores(p, nodes) == expected
