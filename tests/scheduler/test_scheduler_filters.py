from scheduler_support import container, expression, infos, node, pod, required_terms

from kubeling.scheduler.filters import (
    FILTERS,
    node_name,
    node_resources_fit,
    node_unschedulable,
    num_feasible_nodes_to_find,
    run_filters,
)
from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo


def _check(check, pod_dict, node_dict, bound=()):
    return check(PodInfo.of(pod_dict), NodeInfo(node_dict, bound))


def test_filters_run_in_the_default_profile_order():
    assert [f.name for f in FILTERS] == [
        "NodeUnschedulable",
        "NodeName",
        "TaintToleration",
        "NodeAffinity",
        "NodeResourcesFit",
    ]
    assert [f.name for f in FILTERS if f.resolvable] == ["NodeResourcesFit"]


def test_unschedulable_node_rejects_pods():
    assert _check(node_unschedulable, pod("p"), node("a", unschedulable=True)) == (
        "node(s) were unschedulable",
    )
    assert _check(node_unschedulable, pod("p"), node("a")) == ()


def test_pod_tolerating_the_unschedulable_taint_may_use_a_cordoned_node():
    toleration = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}
    p = pod("p", tolerations=[toleration])
    assert _check(node_unschedulable, p, node("a", unschedulable=True)) == ()


def test_node_name_filter():
    assert _check(node_name, pod("p", node_name="b"), node("a")) == (
        "node(s) didn't match the requested node name",
    )
    assert _check(node_name, pod("p", node_name="a"), node("a")) == ()
    assert _check(node_name, pod("p"), node("a")) == ()


def test_resources_fit_when_requests_fit_in_what_is_left():
    bound = [pod("x", cpu="3", memory="6Gi")]
    assert _check(node_resources_fit, pod("p", cpu="1", memory="2Gi"), node("a"), bound) == ()


def test_insufficient_cpu_and_memory_are_both_reported():
    bound = [pod("x", cpu="3500m", memory="7Gi")]
    assert _check(node_resources_fit, pod("p", cpu="1", memory="2Gi"), node("a"), bound) == (
        "Insufficient cpu",
        "Insufficient memory",
    )


def test_too_many_pods_counts_bound_pods_against_allocatable_pods():
    bound = [pod("x"), pod("y")]
    assert _check(node_resources_fit, pod("p"), node("a", pods=2), bound) == ("Too many pods",)
    assert _check(node_resources_fit, pod("p", cpu="5"), node("a", pods=2), bound) == (
        "Too many pods",
        "Insufficient cpu",
    )


def test_node_without_pods_allocatable_fits_no_pod():
    assert _check(node_resources_fit, pod("p"), node("a", pods=None)) == ("Too many pods",)


def test_pod_without_requests_fits_a_full_node():
    bound = [pod("x", cpu="4", memory="8Gi")]
    assert _check(node_resources_fit, pod("p"), node("a"), bound) == ()


def test_init_container_request_decides_fit():
    p = pod("p", cpu="100m", init_containers=[container("init", cpu="3")])
    bound = [pod("x", cpu="2")]
    assert _check(node_resources_fit, p, node("a"), bound) == ("Insufficient cpu",)
    assert _check(node_resources_fit, p, node("a")) == ()


def test_ephemeral_storage_and_extended_resources():
    disk = pod("p", containers=[container(resources={"requests": {"ephemeral-storage": "2Gi"}})])
    gpu = pod("p", containers=[container(resources={"requests": {"example.com/gpu": "1"}})])
    small = node("a", extra={"ephemeral-storage": "1Gi"})
    assert _check(node_resources_fit, disk, small) == ("Insufficient ephemeral-storage",)
    assert _check(node_resources_fit, gpu, small) == ("Insufficient example.com/gpu",)
    assert _check(node_resources_fit, gpu, node("b", extra={"example.com/gpu": "2"})) == ()


def test_node_is_rejected_by_the_first_failing_filter_only():
    n = node("a", cpu="1", unschedulable=True, taints=[{"key": "k", "effect": "NoSchedule"}])
    feasible, diagnosis = run_filters(pod("p", cpu="2"), infos(n))
    assert feasible == []
    assert diagnosis.node_reasons == {"a": ("node(s) were unschedulable",)}
    assert diagnosis.unresolvable == {"a"}
    assert diagnosis.rejected_by == {"NodeUnschedulable"}


def test_run_filters_returns_feasible_nodes_in_scan_order():
    nodes = infos(node("a"), node("b", cpu="1"), node("c"))
    feasible, diagnosis = run_filters(pod("p", cpu="2"), nodes, start=1)
    assert [n.name for n in feasible] == ["c", "a"]
    assert diagnosis.node_reasons == {"b": ("Insufficient cpu",)}
    assert diagnosis.unresolvable == set()
    assert diagnosis.examined == 3


def test_selector_mismatch_is_counted_per_node():
    nodes = infos(node("a", labels={"disk": "ssd"}), node("b"))
    feasible, diagnosis = run_filters(pod("p", node_selector={"disk": "ssd"}), nodes)
    assert [n.name for n in feasible] == ["a"]
    assert diagnosis.node_reasons == {"b": ("node(s) didn't match Pod's node affinity/selector",)}


def test_pinned_pod_examines_only_its_nodes_and_marks_the_rest_absent():
    daemon = required_terms({"matchFields": [expression("metadata.name", "In", "b")]})
    nodes = infos(node("a"), node("b"), node("c"))
    feasible, diagnosis = run_filters(pod("p", affinity=daemon), nodes)
    assert [n.name for n in feasible] == ["b"]
    assert diagnosis.examined == 1
    assert diagnosis.absent_count == 2
    assert diagnosis.reasons_of("a") == ("node(s) didn't satisfy plugin(s) [NodeAffinity]",)


def test_num_feasible_nodes_to_find_follows_kube_scheduler():
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(99) == 99
    assert num_feasible_nodes_to_find(100) == 100
    assert num_feasible_nodes_to_find(1000) == 420
    assert num_feasible_nodes_to_find(5000) == 500
    assert num_feasible_nodes_to_find(10000) == 500  # floor of 5 %
    assert num_feasible_nodes_to_find(1000, percentage=5) == 100  # never under 100


def test_percentage_stops_the_scan_early():
    nodes = infos(*(node(f"n{i}") for i in range(1000)))
    feasible, diagnosis = run_filters(pod("p"), nodes, start=990, percentage=0)
    assert len(feasible) == 420
    assert feasible[0].name == "n990"
    assert diagnosis.examined == 420
