"""Server-side Tables: the cells `kubectl get` prints, kind by kind.

Expected cells are what Kubernetes' own printers render for the same objects (checked against
the real kubectl 1.37 reading these tables from a stub server: `get pods`, `-o wide`, `-A`,
`--show-labels`, `--sort-by`, events and the generic table).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY, RESOURCES, ResourceInfo
from kubeling.apiserver.tables import (
    GENERIC,
    TABLE_CONTENT_TYPE,
    parse_table_accept,
    render_table,
    table_for,
)
from kubeling.apiserver.tables_cells import human_duration

NOW = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def info(plural: str, group: str = "") -> ResourceInfo:
    found = REGISTRY.by_path(group, "v1", plural)
    assert found is not None
    return found


def cells(plural: str, obj: dict[str, Any], group: str = "") -> list[Any]:
    table = render_table(info(plural, group), [obj], now=NOW)
    row: list[Any] = table["rows"][0]["cells"]
    assert len(row) == len(table["columnDefinitions"])
    return row


def columns(plural: str, group: str = "") -> list[tuple[str, str, int]]:
    table = render_table(info(plural, group), [], now=NOW)
    return [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]]


def meta(name: str, seconds_old: float = 30, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "uid": f"uid-{name}",
            "creationTimestamp": ago(seconds_old), **extra}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# AGE


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"), (-2, "<invalid>"), (-1.9, "0s"), (-1, "0s"), (0, "0s"), (0.9, "0s"),
        (17, "17s"), (119, "119s"), (120, "2m"), (150, "2m30s"), (599, "9m59s"), (600, "10m"),
        (659, "10m"), (10_799, "179m"), (10_800, "3h"), (12_600, "3h30m"), (28_799, "7h59m"),
        (28_800, "8h"), (47 * 3600 + 3599, "47h"), (48 * 3600, "2d"), (51 * 3600, "2d3h"),
        (8 * 86_400 - 1, "7d23h"), (8 * 86_400, "8d"), (729 * 86_400, "729d"),
        (730 * 86_400, "2y"), (731 * 86_400, "2y1d"), (8 * 365 * 86_400, "8y"),
        (20 * 365 * 86_400, "20y"),
    ],
)  # fmt: skip
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_age_cell_and_missing_timestamp() -> None:
    assert cells("configmaps", {"metadata": meta("c", 45 * 60 + 30)})[-1] == "45m"
    assert cells("configmaps", {"metadata": {"name": "c"}})[-1] == "<unknown>"
    assert cells("configmaps", {"metadata": meta("c", -30)})[-1] == "<invalid>"


# ---------------------------------------------------------------------------------------------
# Pods


def running(name: str = "web", restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": True, "restartCount": restarts, "image": "nginx",
            "imageID": "", "state": {"running": {"startedAt": ago(60)}}, **extra}  # fmt: skip


def pod(statuses: list[dict[str, Any]], phase: str = "Running", **status: Any) -> dict[str, Any]:
    names = [s["name"] for s in statuses] or ["web"]
    return {
        "metadata": meta("web-7d9f", 3 * 3600 + 300),
        "spec": {"containers": [{"name": n, "image": "nginx"} for n in names],
                 "nodeName": "node-1"},
        "status": {"phase": phase, "containerStatuses": statuses, "podIP": "10.0.0.5",
                   "podIPs": [{"ip": "10.0.0.5"}], **status},
    }  # fmt: skip


def test_pod_columns() -> None:
    assert columns("pods") == [
        ("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0),
        ("Restarts", "string", 0), ("Age", "string", 0), ("IP", "string", 1),
        ("Node", "string", 1), ("Nominated Node", "string", 1), ("Readiness Gates", "string", 1),
    ]  # fmt: skip


def test_running_pod() -> None:
    ready = [{"type": "Ready", "status": "True"}]
    assert cells("pods", pod([running()], conditions=ready)) == [
        "web-7d9f", "1/1", "Running", "0", "3h5m", "10.0.0.5", "node-1", "<none>", "<none>",
    ]  # fmt: skip


def test_crash_looping_pod_shows_reason_and_last_restart() -> None:
    status = {"name": "web", "ready": False, "restartCount": 5,
              "state": {"waiting": {"reason": "CrashLoopBackOff"}},
              "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}}  # fmt: skip
    assert cells("pods", pod([status]))[1:4] == ["0/1", "CrashLoopBackOff", "5 (5m ago)"]


def test_restarts_without_a_termination_time_have_no_suffix() -> None:
    assert cells("pods", pod([running(restarts=2)]))[3] == "2"


def test_most_recent_restart_across_containers() -> None:
    a = running("a", 1, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(7200)}})
    b = running("b", 2, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(90)}})
    assert cells("pods", pod([a, b]))[1:4] == ["2/2", "Running", "3 (90s ago)"]


def test_completed_pod_and_row_condition() -> None:
    done = {"name": "job", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}  # fmt: skip
    table = render_table(info("pods"), [pod([done], phase="Succeeded")], now=NOW)
    assert table["rows"][0]["cells"][1:3] == ["0/1", "Completed"]
    assert table["rows"][0]["conditions"] == [
        {"type": "Completed", "status": "True", "reason": "Succeeded",
         "message": "The pod has completed successfully."}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("terminated", "expected"),
    [
        ({"exitCode": 137}, "ExitCode:137"),
        ({"exitCode": 0, "signal": 9}, "Signal:9"),
        ({"exitCode": 1, "reason": "Error"}, "Error"),
        ({"exitCode": 137, "reason": "OOMKilled"}, "OOMKilled"),
    ],
)
def test_terminated_container_reasons(terminated: dict[str, Any], expected: str) -> None:
    status = {"name": "web", "ready": False, "restartCount": 0, "state": {"terminated": terminated}}
    assert cells("pods", pod([status], phase="Failed"))[2] == expected


def test_completed_container_beside_a_running_one() -> None:
    done = {"name": "a", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}  # fmt: skip
    statuses = [running("b"), done]
    assert cells("pods", pod(statuses))[1:3] == ["1/2", "NotReady"]
    ready = [{"type": "Ready", "status": "True"}]
    assert cells("pods", pod(statuses, conditions=ready))[2] == "Running"


def test_pending_pod_without_statuses() -> None:
    obj = {"metadata": meta("p"), "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Pending"}}  # fmt: skip
    assert cells("pods", obj)[1:6] == ["0/2", "Pending", "0", "30s", "<none>"]


def test_waiting_container_and_pod_reason() -> None:
    pulling = {"name": "web", "ready": False, "restartCount": 0,
               "state": {"waiting": {"reason": "ContainerCreating"}}}  # fmt: skip
    assert cells("pods", pod([pulling], phase="Pending"))[2] == "ContainerCreating"
    evicted = pod([], phase="Failed", reason="Evicted")
    assert cells("pods", evicted)[2] == "Evicted"


def test_scheduling_gated_pod() -> None:
    gated = [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    assert cells("pods", pod([], phase="Pending", conditions=gated))[2] == "SchedulingGated"


def test_terminating_pod() -> None:
    obj = pod([running()])
    obj["metadata"]["deletionTimestamp"] = ago(-30)
    assert cells("pods", obj)[2] == "Terminating"
    obj["status"]["phase"] = "Succeeded"
    obj["status"]["containerStatuses"] = []
    assert cells("pods", obj)[2] == "Succeeded"
    lost = pod([running()], reason="NodeLost")
    lost["metadata"]["deletionTimestamp"] = ago(0)
    assert cells("pods", lost)[2] == "Unknown"


def with_init(pod_obj: dict[str, Any], specs: list[dict[str, Any]],
              statuses: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    pod_obj["spec"]["initContainers"] = specs
    pod_obj["status"]["initContainerStatuses"] = statuses
    return pod_obj


def test_init_container_progress_and_failures() -> None:
    specs = [{"name": "i1"}, {"name": "i2"}]
    done = {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}
    busy = {"name": "i2", "restartCount": 0, "state": {"running": {}}}
    waiting = {"name": "web", "ready": False, "restartCount": 0,
               "state": {"waiting": {"reason": "PodInitializing"}}}  # fmt: skip
    obj = with_init(pod([waiting], phase="Pending"), specs, [done, busy])
    assert cells("pods", obj)[1:4] == ["0/1", "Init:1/2", "0"]
    failed = {"name": "i2", "restartCount": 3, "state": {"terminated": {"exitCode": 1,
              "reason": "Error"}}}  # fmt: skip
    obj = with_init(pod([waiting], phase="Pending"), specs, [done, failed])
    assert cells("pods", obj)[2:4] == ["Init:Error", "3"]
    backoff = {"name": "i1", "restartCount": 4,
               "state": {"waiting": {"reason": "CrashLoopBackOff"}}}  # fmt: skip
    obj = with_init(pod([waiting], phase="Pending"), specs, [backoff])
    assert cells("pods", obj)[2:4] == ["Init:CrashLoopBackOff", "4"]
    exited = {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}
    obj = with_init(pod([waiting], phase="Pending"), specs, [exited])
    assert cells("pods", obj)[2] == "Init:ExitCode:2"


def test_sidecar_counts_as_a_container() -> None:
    specs = [{"name": "proxy", "restartPolicy": "Always"}]
    sidecar = {"name": "proxy", "ready": True, "started": True, "restartCount": 1,
               "state": {"running": {}},
               "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}}  # fmt: skip
    obj = with_init(pod([running()]), specs, [sidecar])
    assert cells("pods", obj)[1:4] == ["2/2", "Running", "1 (10m ago)"]


def test_readiness_gates_and_nominated_node() -> None:
    obj = pod([running()], nominatedNodeName="node-2",
              conditions=[{"type": "example.com/lb", "status": "True"},
                          {"type": "example.com/dns", "status": "False"}])  # fmt: skip
    obj["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"},
                                     {"conditionType": "example.com/dns"}]  # fmt: skip
    assert cells("pods", obj)[5:] == ["10.0.0.5", "node-1", "node-2", "1/2"]


# ---------------------------------------------------------------------------------------------
# Deployments and ReplicaSets


TEMPLATE = {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"},
                                    {"name": "log", "image": "busybox"}]}}  # fmt: skip


def test_deployment() -> None:
    assert columns("deployments", "apps") == [
        ("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "string", 0),
        ("Available", "string", 0), ("Age", "string", 0), ("Containers", "string", 1),
        ("Images", "string", 1), ("Selector", "string", 1),
    ]  # fmt: skip
    obj = {
        "metadata": meta("web", 17),
        "spec": {"replicas": 3, "template": TEMPLATE,
                 "selector": {"matchLabels": {"app": "web"},
                              "matchExpressions": [
                                  {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                                  {"key": "legacy", "operator": "DoesNotExist"}]}},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                   "availableReplicas": 2},
    }  # fmt: skip
    assert cells("deployments", obj, "apps") == [
        "web", "2/3", 3, 2, "17s", "web,log", "nginx:1.25,busybox",
        "app=web,!legacy,tier in (be,fe)",
    ]  # fmt: skip


def test_new_deployment_without_status() -> None:
    obj = {"metadata": meta("web"), "spec": {"template": TEMPLATE}}
    assert cells("deployments", obj, "apps")[1:4] == ["0/1", 0, 0]


def test_replica_set() -> None:
    assert columns("replicasets", "apps")[1:4] == [
        ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0),
    ]  # fmt: skip
    obj = {"metadata": meta("web-5d8f", 120),
           "spec": {"replicas": 2, "template": TEMPLATE,
                    "selector": {"matchLabels": {"pod-template-hash": "5d8f", "app": "web"}}},
           "status": {"replicas": 2, "readyReplicas": 1}}  # fmt: skip
    assert cells("replicasets", obj, "apps") == [
        "web-5d8f", 2, 2, 1, "2m", "web,log", "nginx:1.25,busybox",
        "app=web,pod-template-hash=5d8f",
    ]  # fmt: skip
    empty = {"metadata": meta("x"), "spec": {"replicas": 0, "selector": {}}}
    assert cells("replicasets", empty, "apps")[1:4] == [0, 0, 0]
    assert cells("replicasets", empty, "apps")[-1] == "<none>"


# ---------------------------------------------------------------------------------------------
# Services and endpoints


def service(kind: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": meta("web", 86_400 * 3),
            "spec": {"type": kind, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "selector": {"app": "web", "tier": "fe"}, **spec}}  # fmt: skip


def test_cluster_ip_service() -> None:
    ports = [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]
    assert cells("services", service("ClusterIP", ports=ports)) == [
        "web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP", "3d", "app=web,tier=fe",
    ]  # fmt: skip


def test_node_port_and_external_ips() -> None:
    svc = service("NodePort", ports=[{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
                  externalIPs=["192.0.2.1", "192.0.2.2"])  # fmt: skip
    assert cells("services", svc)[2:5] == ["10.96.0.10", "192.0.2.1,192.0.2.2", "80:30080/TCP"]


def test_load_balancer_external_ip() -> None:
    ports = [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]
    pending = service("LoadBalancer", ports=ports)
    assert cells("services", pending)[3] == "<pending>"
    ready = service("LoadBalancer", ports=ports, externalIPs=["192.0.2.9"])
    ready["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"},
                                                    {"hostname": "lb.example.com"}]}}  # fmt: skip
    assert cells("services", ready)[3] == "203.0.113.7,lb.example.com,192.0.2.9"


def test_headless_external_name_and_portless_services() -> None:
    headless = service("ClusterIP", clusterIP="None", clusterIPs=["None"], selector={})
    assert cells("services", headless)[2:5] == ["None", "<none>", "<none>"]
    assert cells("services", headless)[-1] == "<none>"
    external = {"metadata": meta("db"), "spec": {"type": "ExternalName",
                                                "externalName": "db.example.com"}}  # fmt: skip
    assert cells("services", external)[1:4] == ["ExternalName", "<none>", "db.example.com"]


def test_endpoints() -> None:
    assert cells("endpoints", {"metadata": meta("web")})[1] == "<none>"
    subsets = [{"addresses": [{"ip": "10.0.0.5"}, {"ip": "10.0.0.6"}],
                "ports": [{"port": 8080}, {"port": 9090, "name": "metrics"}]}]  # fmt: skip
    assert cells("endpoints", {"metadata": meta("web"), "subsets": subsets})[1] == (
        "10.0.0.5:8080,10.0.0.6:8080,10.0.0.5:9090 + 1 more..."
    )
    v6 = [{"addresses": [{"ip": "fd00::5"}], "ports": [{"port": 80}]},
          {"addresses": [{"ip": "10.0.0.9"}]}]  # fmt: skip
    assert cells("endpoints", {"metadata": meta("web"), "subsets": v6})[1] == (
        "[fd00::5]:80,10.0.0.9"
    )


def test_endpoint_slices() -> None:
    assert columns("endpointslices", "discovery.k8s.io")[1:4] == [
        ("AddressType", "string", 0), ("Ports", "string", 0), ("Endpoints", "string", 0),
    ]  # fmt: skip
    obj = {
        "metadata": meta("web-abcde", 60),
        "addressType": "IPv4",
        "ports": [{"port": 8080, "name": "http"}, {"name": "grpc"}, {}, {"port": 1}, {"port": 2}],
        "endpoints": [{"addresses": ["10.0.0.5"]}, {"addresses": ["10.0.0.6", "10.0.0.7"]}],
    }
    assert cells("endpointslices", obj, "discovery.k8s.io") == [
        "web-abcde", "IPv4", "8080,grpc,* + 2 more...", "10.0.0.5,10.0.0.6,10.0.0.7", "60s",
    ]  # fmt: skip
    bare = {"metadata": meta("empty"), "addressType": "IPv6"}
    assert cells("endpointslices", bare, "discovery.k8s.io")[2:4] == ["<unset>", "<unset>"]


# ---------------------------------------------------------------------------------------------
# Configuration, identity, namespaces, nodes, leases


def test_config_maps_and_secrets() -> None:
    cm = {"metadata": meta("cfg", 5), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert cells("configmaps", cm) == ["cfg", 3, "5s"]
    assert cells("configmaps", {"metadata": meta("empty", 5)}) == ["empty", 0, "5s"]
    secret = {"metadata": meta("creds", 86_400 * 40), "type": "Opaque", "data": {"pw": "eA=="}}
    assert cells("secrets", secret) == ["creds", "Opaque", 1, "40d"]
    assert columns("secrets") == [("Name", "string", 0), ("Type", "string", 0),
                                  ("Data", "string", 0), ("Age", "string", 0)]  # fmt: skip


def test_service_accounts_leases_namespaces() -> None:
    sa = {"metadata": meta("default", 3600), "secrets": [{"name": "default-token"}]}
    assert cells("serviceaccounts", sa) == ["default", 1, "60m"]
    assert cells("serviceaccounts", {"metadata": meta("b", 3600)}) == ["b", 0, "60m"]
    lease = {"metadata": meta("kube-scheduler", 600), "spec": {"holderIdentity": "node-1_abc"}}
    assert cells("leases", lease, "coordination.k8s.io") == ["kube-scheduler", "node-1_abc", "10m"]
    assert cells("leases", {"metadata": meta("free", 600)}, "coordination.k8s.io")[1] == ""
    ns = {"metadata": meta("team-a", 7 * 3600), "status": {"phase": "Terminating"}}
    assert cells("namespaces", ns) == ["team-a", "Terminating", "7h"]


def node(**extra: Any) -> dict[str, Any]:
    return {
        "metadata": meta("node-1", 86_400 * 10,
                         labels={"node-role.kubernetes.io/control-plane": "",
                                 "node-role.kubernetes.io/": "", "kubernetes.io/role": "edge"}),
        "spec": {},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                  {"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                                 {"type": "Hostname", "address": "node-1"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 13",
                                "kernelVersion": "6.1.0", "containerRuntimeVersion": ""}},
        **extra,
    }  # fmt: skip


def test_nodes() -> None:
    assert cells("nodes", node()) == [
        "node-1", "Ready", "control-plane,edge", "10d", "v1.32.0", "192.168.1.10", "<none>",
        "Debian GNU/Linux 13", "6.1.0", "<unknown>",
    ]  # fmt: skip
    cordoned = node(spec={"unschedulable": True})
    cordoned["status"]["conditions"][1]["status"] = "Unknown"
    assert cells("nodes", cordoned)[1] == "NotReady,SchedulingDisabled"
    fresh = {"metadata": meta("bare"), "status": {}}
    assert cells("nodes", fresh)[1:3] == ["Unknown", "<none>"]
    assert [c[2] for c in columns("nodes")] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


# ---------------------------------------------------------------------------------------------
# Events


def test_event_columns() -> None:
    assert columns("events") == [
        ("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
        ("Object", "string", 0), ("Subobject", "string", 1), ("Source", "string", 1),
        ("Message", "string", 0), ("First Seen", "string", 1), ("Count", "string", 1),
        ("Name", "string", 1),
    ]  # fmt: skip
    assert columns("events", "events.k8s.io") == columns("events")


def test_core_event() -> None:
    event = {"metadata": meta("web.17a", 100),
             "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
             "reason": "Pulled", "message": "Image pulled\n", "type": "Normal",
             "source": {"component": "kubelet", "host": "node-1"},
             "firstTimestamp": ago(100), "lastTimestamp": ago(40), "count": 3}  # fmt: skip
    assert cells("events", event) == [
        "40s", "Normal", "Pulled", "pod/web", "spec.containers{web}", "kubelet, node-1",
        "Image pulled", "100s", 3, "web.17a",
    ]  # fmt: skip


def test_new_style_core_event() -> None:
    # eventTime 59.88s ago: ages truncate, as Go's int(d.Seconds()) does.
    event = {"metadata": meta("x", 10), "involvedObject": {"kind": "Node"},
             "reason": "Starting", "type": "Normal", "eventTime": "2026-01-10T11:59:00.123456Z",
             "reportingComponent": "kube-proxy"}  # fmt: skip
    assert cells("events", event) == [
        "59s", "Normal", "Starting", "node", "", "kube-proxy", "", "59s", 1, "x",
    ]  # fmt: skip


def test_events_k8s_io_event_with_series() -> None:
    event = {
        "metadata": meta("web.18b", 900),
        "regarding": {"kind": "Deployment", "name": "web"},
        "note": "Scaled up",
        "reason": "ScalingReplicaSet",
        "type": "Normal",
        "reportingController": "deployment-controller",
        "reportingInstance": "kubeling",
        "eventTime": ago(900),
        "series": {"count": 4, "lastObservedTime": "2026-01-10T11:58:00.000000Z"},
    }
    assert cells("events", event, "events.k8s.io") == [
        "2m", "Normal", "ScalingReplicaSet", "deployment/web", "",
        "deployment-controller, kubeling", "Scaled up", "15m", 4, "web.18b",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The Table itself


def test_table_shape_and_partial_object_metadata_rows() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": meta("cfg", labels={"app": "web"}, resourceVersion="12"),
          "data": {"a": "1"}}  # fmt: skip
    table = render_table(info("configmaps"), [cm], list_resource_version="42",
                         continue_token="abc", now=NOW)  # fmt: skip
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "abc"}
    assert table["rows"] == [{
        "cells": ["cfg", 1, "30s"],
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": cm["metadata"]},
    }]  # fmt: skip


def test_include_object_modes() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cfg")}
    whole = render_table(info("configmaps"), [cm], include_object="Object", now=NOW)
    assert whole["rows"][0]["object"] == cm
    bare = render_table(info("configmaps"), [cm], include_object="None", now=NOW)
    assert bare["rows"][0]["object"] is None
    assert render_table(info("configmaps"), [], now=NOW)["metadata"] == {}
    with pytest.raises(ApiError) as err:
        render_table(info("configmaps"), [cm], include_object="Everything")
    assert err.value.code == 400


def test_column_definitions_are_complete() -> None:
    definitions = render_table(info("pods"), [], now=NOW)["columnDefinitions"]
    assert set(definitions[0]) == {"name", "type", "format", "description", "priority"}
    assert definitions[0]["format"] == "name"
    assert definitions[0]["description"].startswith("Name must be unique within a namespace.")
    assert definitions[4]["description"].startswith("CreationTimestamp is a timestamp")
    assert definitions[5]["description"].startswith("podIP address allocated to the pod.")
    assert all(d["format"] == "" for d in definitions[1:])


def test_unknown_kinds_get_the_generic_table() -> None:
    widgets = ResourceInfo("example.com", "v1", "Widget", "widgets", True)
    table = render_table(widgets, [{"metadata": {"name": "w1",
                                                 "creationTimestamp": "2025-01-02T03:04:05Z"}},
                                   {"metadata": {"name": "w2"}}], now=NOW)  # fmt: skip
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [
        ("Name", "string"), ("Created At", "date"),
    ]  # fmt: skip
    assert [r["cells"] for r in table["rows"]] == [
        ["w1", "2025-01-02T03:04:05Z"], ["w2", "0001-01-01T00:00:00Z"],
    ]  # fmt: skip


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r.plural}.{r.group}")
def test_every_kind_has_a_printer_that_tolerates_sparse_objects(resource: ResourceInfo) -> None:
    table = render_table(resource, [{}, {"metadata": {"name": "x"}, "spec": None}], now=NOW)
    assert table_for(resource.group, resource.kind) is not GENERIC
    for row in table["rows"]:
        assert len(row["cells"]) == len(table["columnDefinitions"])


def test_default_time_is_now() -> None:
    fresh = {"metadata": {"name": "c", "creationTimestamp": datetime.now(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")}}  # fmt: skip
    assert render_table(info("configmaps"), [fresh])["rows"][0]["cells"][-1] in ("0s", "1s")


# ---------------------------------------------------------------------------------------------
# Accept negotiation

KUBECTL_GET = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (KUBECTL_GET, True),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", True),
        ("application/json; as=Table; g=meta.k8s.io; v=v1", True),
        (TABLE_CONTENT_TYPE, True),
        ("application/json", False),
        ("", False),
        ("*/*", False),
        ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", False),
        ("application/json;q=0.5, application/json;as=Table;v=v1;g=meta.k8s.io", True),
        ("application/json;as=Table;v=v1;g=meta.k8s.io;q=0", False),
        ("application/json;as=Table;v=v2;g=meta.k8s.io", False),
        ("application/json;as=Table;v=v1;g=example.com", False),
        ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,"
         "application/json;as=Table;v=v1;g=meta.k8s.io", True),
        ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io", False),
    ],
)  # fmt: skip
def test_parse_table_accept(accept: str, expected: bool) -> None:
    assert parse_table_accept(accept) is expected
