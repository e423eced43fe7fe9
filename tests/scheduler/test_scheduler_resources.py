from scheduler_support import container, node, pod

from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo, needs_scheduling, occupies_node
from kubeling.scheduler.resources import (
    DEFAULT_MEMORY_REQUEST,
    Resources,
    node_allocatable,
    pod_non_zero_requests,
    pod_requests,
)


def test_requests_sum_all_containers_in_millicores_and_bytes():
    p = pod(
        "p",
        containers=[
            container("a", cpu="250m", memory="64Mi"),
            container("b", cpu="1", memory="1G"),
        ],
    )
    assert pod_requests(p) == Resources(milli_cpu=1250, memory=64 * 2**20 + 10**9)


def test_fractional_quantities_round_up():
    assert pod_requests(pod("p", cpu="0.0001", memory="1.5")).milli_cpu == 1
    assert pod_requests(pod("p", memory="1500m")).memory == 2


def test_init_container_larger_than_sum_of_containers_sets_the_request():
    p = pod(
        "p",
        containers=[container("a", cpu="200m"), container("b", cpu="300m")],
        init_containers=[container("i1", cpu="800m", memory="1Gi"), container("i2", cpu="100m")],
    )
    requests = pod_requests(p)
    assert requests.milli_cpu == 800
    assert requests.memory == 2**30


def test_init_containers_smaller_than_sum_do_not_add():
    p = pod("p", cpu="1", init_containers=[container("i", cpu="500m")])
    assert pod_requests(p).milli_cpu == 1000


def test_sidecar_adds_to_containers_and_to_later_init_containers():
    sidecar = container("log", cpu="50m", restartPolicy="Always")
    p = pod(
        "p",
        containers=[container("a", cpu="200m"), container("b", cpu="300m")],
        init_containers=[sidecar, container("setup", cpu="800m")],
    )
    assert pod_requests(p).milli_cpu == 850
    only_sidecar = pod("p", cpu="500m", init_containers=[sidecar])
    assert pod_requests(only_sidecar).milli_cpu == 550


def test_overhead_is_added():
    p = pod("p", cpu="100m", overhead={"cpu": "250m", "memory": "120Mi"})
    assert pod_requests(p) == Resources(milli_cpu=350, memory=120 * 2**20)


def test_extended_resources_are_scalars():
    p = pod("p", containers=[container(resources={"requests": {"example.com/gpu": "2"}})])
    assert pod_requests(p).scalars == (("example.com/gpu", 2),)


def test_non_zero_requests_default_missing_cpu_and_memory_but_keep_explicit_zero():
    assert pod_non_zero_requests(pod("p")) == (100, DEFAULT_MEMORY_REQUEST)
    assert pod_non_zero_requests(pod("p", cpu="0", memory="1Gi")) == (0, 2**30)
    two = pod("p", containers=[container("a"), container("b", cpu="1")])
    assert pod_non_zero_requests(two) == (1100, 2 * DEFAULT_MEMORY_REQUEST)


def test_malformed_quantity_counts_as_absent():
    assert pod_requests(pod("p", cpu="lots", memory="1Ki")) == Resources(memory=1024)


def test_node_allocatable_uses_allocatable_not_capacity():
    n = node("a", cpu="3500m", memory="1Gi", pods=20)
    n["status"]["capacity"] = {"cpu": "4", "memory": "2Gi", "pods": "110"}
    assert node_allocatable(n) == Resources(milli_cpu=3500, memory=2**30, pods=20)


def test_node_without_allocatable_offers_nothing():
    assert node_allocatable({"metadata": {"name": "bare"}}) == Resources()


def test_node_info_sums_requests_and_counts_owners():
    info = NodeInfo(node("a"), [pod("p1", cpu="1", owner="rs"), pod("p2", cpu="500m", owner="rs")])
    assert info.requested_cpu == 1500
    assert info.non_zero_memory == 2 * DEFAULT_MEMORY_REQUEST
    assert info.requested_memory == 0
    assert info.owner_counts == {"uid-rs": 2}
    assert info.pod_count == 2


def test_node_info_remove_pod_subtracts_and_unknown_pod_is_a_no_op():
    p1 = pod("p1", cpu="1", owner="rs")
    info = NodeInfo(node("a"), [p1, pod("p2", cpu="500m")])
    assert info.remove_pod(p1)
    assert not info.remove_pod(p1)
    assert info.requested_cpu == 500
    assert info.owner_counts == {}
    assert info.pod_count == 1


def test_node_info_adding_the_same_pod_again_replaces_it():
    info = NodeInfo(node("a"), [pod("p", cpu="1")])
    info.add_pod(pod("p", cpu="2"))
    assert info.pod_count == 1
    assert info.requested_cpu == 2000


def test_terminating_pods_hold_resources_but_do_not_count_for_spreading():
    leaving = pod("p", cpu="1", owner="rs")
    leaving["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    info = NodeInfo(node("a"), [leaving])
    assert info.requested_cpu == 1000
    assert info.owner_counts == {}


def test_set_node_keeps_pods():
    info = NodeInfo(node("a", cpu="1"), [pod("p", cpu="1")])
    info.set_node(node("a", cpu="2", labels={"disk": "ssd"}))
    assert info.allocatable.milli_cpu == 2000
    assert info.labels["disk"] == "ssd"
    assert info.requested_cpu == 1000


def test_pod_info_reads_priority_and_controller():
    info = PodInfo.of(pod("p", owner="rs", priority=1000, preemptionPolicy="Never"))
    assert (info.owner_uid, info.priority, info.preemption_never) == ("uid-rs", 1000, True)


def test_needs_scheduling_only_unbound_live_ungated_pods_of_this_scheduler():
    assert needs_scheduling(pod("p"))
    assert not needs_scheduling(pod("p", node_name="a"))
    assert not needs_scheduling(pod("p", schedulerName="other"))
    assert needs_scheduling(pod("p", schedulerName="other"), scheduler_name="other")
    assert not needs_scheduling(pod("p", schedulingGates=[{"name": "wait"}]))
    finished = pod("p")
    finished["status"]["phase"] = "Succeeded"
    assert not needs_scheduling(finished)


def test_finished_pods_do_not_occupy_their_node():
    bound = pod("p", node_name="a")
    assert occupies_node(bound)
    bound["status"]["phase"] = "Failed"
    assert not occupies_node(bound)
    assert not occupies_node(pod("p"))
