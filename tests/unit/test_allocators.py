import ipaddress

import pytest

from kubeling.apiserver.allocators import (
    AllocationError,
    ServiceAllocator,
    drop_type_dependent_fields,
)


def test_cluster_ip_is_allocated_from_the_service_range_and_never_twice():
    alloc = ServiceAllocator()
    seen = set()
    for _ in range(200):
        spec = {"type": "ClusterIP", "ports": [{"port": 80}]}
        alloc.allocate(spec)
        assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("127.96.0.0/12")
        assert spec["clusterIPs"] == [spec["clusterIP"]]
        seen.add(spec["clusterIP"])
    assert len(seen) == 200
    assert alloc.kubernetes_service_ip not in seen


def test_requested_cluster_ip_conflict_is_rejected_and_nothing_leaks():
    alloc = ServiceAllocator()
    alloc.allocate({"clusterIP": "127.96.0.10", "ports": [{"port": 80}]})
    spec = {"clusterIP": "127.96.0.10", "type": "NodePort", "ports": [{"port": 80}]}
    with pytest.raises(AllocationError) as err:
        alloc.allocate(spec)
    assert "already allocated" in err.value.cause.message
    assert not alloc.used_ports


def test_only_the_kubernetes_service_gets_the_first_address():
    alloc = ServiceAllocator()
    first = alloc.kubernetes_service_ip
    with pytest.raises(AllocationError):
        alloc.allocate({"clusterIP": first, "ports": [{"port": 443}]}, owner="default/web")
    spec = {"clusterIP": first, "ports": [{"port": 443}]}
    alloc.allocate(spec, owner="default/kubernetes")
    assert spec["clusterIPs"] == [first]


def test_out_of_range_cluster_ip_is_rejected():
    with pytest.raises(AllocationError) as err:
        ServiceAllocator().allocate({"clusterIP": "10.0.0.1"})
    assert err.value.cause.field == "spec.clusterIPs[0]"


def test_node_ports_are_allocated_for_nodeport_and_released_on_delete():
    alloc = ServiceAllocator()
    spec = {"type": "NodePort", "ports": [{"port": 80}, {"port": 443, "nodePort": 30443}]}
    alloc.allocate(spec)
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
    assert spec["ports"][1]["nodePort"] == 30443
    with pytest.raises(AllocationError):
        alloc.allocate({"type": "NodePort", "ports": [{"port": 1, "nodePort": 30443}]})
    alloc.release(spec)
    alloc.allocate({"type": "NodePort", "ports": [{"port": 1, "nodePort": 30443}]})


def test_headless_service_gets_no_address():
    spec = {"clusterIP": "None", "ports": [{"port": 80}]}
    ServiceAllocator().allocate(spec)
    assert spec["clusterIPs"] == ["None"]


def test_update_keeps_existing_allocation_and_releases_dropped_node_ports():
    alloc = ServiceAllocator()
    old = {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}
    alloc.allocate(old)
    new = {"type": "ClusterIP", "ports": [{"port": 80}]}
    alloc.allocate(new, old)
    assert new["clusterIP"] == old["clusterIP"]
    assert 30080 not in alloc.used_ports


def test_rebuild_restores_state_from_stored_services():
    alloc = ServiceAllocator()
    alloc.rebuild([{"spec": {"clusterIP": "127.96.0.20", "ports": [{"nodePort": 31000}]}}])
    with pytest.raises(AllocationError):
        alloc.allocate({"clusterIP": "127.96.0.20"})
    with pytest.raises(AllocationError):
        alloc.allocate({"type": "NodePort", "ports": [{"port": 1, "nodePort": 31000}]})


def test_switching_to_cluster_ip_clears_untouched_node_ports():
    old = {
        "type": "NodePort",
        "externalTrafficPolicy": "Cluster",
        "ports": [{"port": 80, "nodePort": 30080}],
    }
    new = {
        "type": "ClusterIP",
        "externalTrafficPolicy": "Cluster",
        "ports": [{"port": 80, "nodePort": 30080}],
    }
    drop_type_dependent_fields(new, old)
    assert new == {"type": "ClusterIP", "ports": [{"port": 80}]}


def test_a_node_port_changed_while_switching_type_is_kept_for_validation():
    old = {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}
    new = {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30081}]}
    drop_type_dependent_fields(new, old)
    assert new["ports"][0]["nodePort"] == 30081
