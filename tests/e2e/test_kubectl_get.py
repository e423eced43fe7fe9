"""Reading with kubectl: `get` (tables, output formats, selectors, -A, -w), `get --raw`,
`api-resources`, `version`."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import pytest
import yaml
from kubectl_support import Kubectl, columns, configmap, deployment, pod, service, table
from kubernetes import client

pytestmark = pytest.mark.e2e

AGE = re.compile(r"\d+(s|m|h|d)(\d+(s|m|h))?")
SERVICE_RANGE = ipaddress.ip_network("127.96.0.0/12")


# -- tables ----------------------------------------------------------------------------------


def test_get_pods_prints_ready_status_restarts_and_age(kubectl: Kubectl) -> None:
    kubectl.create_manifest(pod("web"))

    header, rows = table(kubectl("get", "pods").stdout)

    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    _, ready, status, restarts, age = rows["web"]
    assert (ready, status, restarts) == ("0/1", "Pending", "0")
    assert AGE.fullmatch(age), age


def test_get_deployments_prints_ready_up_to_date_available(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web", replicas=2))

    header, rows = table(kubectl("get", "deployments").stdout)

    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    # No controllers run: the Deployment just sits there with no pods.
    assert rows["web"][1:4] == ["0/2", "0", "0"]
    assert AGE.fullmatch(rows["web"][4])


def test_get_pods_shows_the_status_a_node_reported(kubectl: Kubectl, api: Any) -> None:
    kubectl.create_manifest(pod("web"))
    client.CoreV1Api(api).patch_namespaced_pod_status(
        "web",
        kubectl.ns,
        {
            "status": {
                "phase": "Running",
                "podIP": "127.128.0.9",
                "containerStatuses": [
                    {
                        "name": "web",
                        "ready": True,
                        "restartCount": 2,
                        "image": "nginx:1.25",
                        "imageID": "",
                        "state": {"running": {"startedAt": "2026-11-24T01:50:38Z"}},
                    }
                ],
            }
        },
    )

    header, rows = table(kubectl("get", "pods", "-o", "wide").stdout)

    assert rows["web"][1:4] == ["1/1", "Running", "2"]
    assert rows["web"][header.index("IP")] == "127.128.0.9"


def test_get_deployments_shows_the_status_replicas(kubectl: Kubectl, api: Any) -> None:
    kubectl.create_manifest(deployment("web", replicas=3))
    client.AppsV1Api(api).patch_namespaced_deployment_status(
        "web",
        kubectl.ns,
        {
            "status": {
                "observedGeneration": 1,
                "replicas": 3,
                "readyReplicas": 2,
                "updatedReplicas": 3,
                "availableReplicas": 1,
            }
        },
    )

    _, rows = table(kubectl("get", "deployments").stdout)

    assert rows["web"][1:4] == ["2/3", "3", "1"]


def test_get_services_prints_type_cluster_ip_and_ports(kubectl: Kubectl) -> None:
    kubectl.create_manifest(service("web"))

    header, rows = table(kubectl("get", "services").stdout)

    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    _, kind, cluster_ip, external_ip, ports, _ = rows["web"]
    assert kind == "ClusterIP"
    assert ipaddress.ip_address(cluster_ip) in SERVICE_RANGE
    assert (external_ip, ports) == ("<none>", "80/TCP")


def test_get_node_port_service_prints_both_ports(kubectl: Kubectl) -> None:
    manifest = service("web")
    manifest["spec"]["type"] = "NodePort"
    kubectl.create_manifest(manifest)

    _, rows = table(kubectl("get", "services").stdout)

    assert rows["web"][1] == "NodePort"
    assert re.fullmatch(r"80:3\d{4}/TCP", rows["web"][4]), rows["web"]


def test_get_configmaps_prints_the_number_of_keys(kubectl: Kubectl) -> None:
    kubectl.create_manifest(configmap("settings", color="blue", size="L"))

    header, rows = table(kubectl("get", "configmaps").stdout)

    assert header == ["NAME", "DATA", "AGE"]
    assert rows["settings"][1] == "2"


def test_get_namespaces_prints_their_status(kubectl: Kubectl) -> None:
    header, rows = table(kubectl("get", "namespaces").stdout)

    assert header == ["NAME", "STATUS", "AGE"]
    assert rows[kubectl.ns][1] == "Active"
    assert rows["default"][1] == "Active"


def test_get_uses_short_names(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))
    kubectl.create_manifest(configmap("settings", color="blue"))

    assert "web" in table(kubectl("get", "deploy").stdout)[1]
    assert "settings" in table(kubectl("get", "cm").stdout)[1]


def test_get_wide_adds_the_priority_columns(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))
    kubectl.create_manifest(pod("solo"))

    header, rows = table(kubectl("get", "deployments", "-o", "wide").stdout)
    assert header[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert rows["web"][5:] == ["web", "nginx:1.25", "app=web"]

    header, rows = table(kubectl("get", "pods", "-o", "wide").stdout)
    assert header[5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert rows["solo"][5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_get_pods_wide_shows_the_node_of_a_bound_pod(kubectl: Kubectl) -> None:
    bound = pod("bound")
    bound["spec"]["nodeName"] = "node-1"
    kubectl.create_manifest(bound)

    header, rows = table(kubectl("get", "pods", "-o", "wide").stdout)

    assert rows["bound"][header.index("NODE")] == "node-1"


KIND_COLUMNS = {
    "secrets": ["NAME", "TYPE", "DATA", "AGE"],
    "replicasets": ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
    "endpoints": ["NAME", "ENDPOINTS", "AGE"],
    "serviceaccounts": ["NAME", "SECRETS", "AGE"],
    "leases": ["NAME", "HOLDER", "AGE"],
    "endpointslices": ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
    "events": ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
}


def _seed_every_kind(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(ns, {"metadata": {"name": "x"}, "data": {"a": "MQ=="}})
    rs = deployment("x", replicas=2)
    client.AppsV1Api(api).create_namespaced_replica_set(ns, {**rs, "kind": "ReplicaSet"})
    core.create_namespaced_endpoints(
        ns,
        {
            "metadata": {"name": "x"},
            "subsets": [{"addresses": [{"ip": "127.128.0.5"}], "ports": [{"port": 80}]}],
        },
    )
    core.create_namespaced_service_account(ns, {"metadata": {"name": "x"}})
    client.CoordinationV1Api(api).create_namespaced_lease(
        ns, {"metadata": {"name": "x"}, "spec": {"holderIdentity": "node-1"}}
    )
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(
        ns,
        {
            "metadata": {"name": "x"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.128.0.5"]}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    )
    core.create_namespaced_event(
        ns,
        {
            "metadata": {"name": "x"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": ns},
            "reason": "Started",
            "message": "Started container web",
            "type": "Normal",
            "lastTimestamp": "2026-11-24T01:50:38Z",
        },
    )


@pytest.mark.parametrize("resource", sorted(KIND_COLUMNS))
def test_get_prints_each_kinds_columns(kubectl: Kubectl, api: Any, resource: str) -> None:
    _seed_every_kind(api, kubectl.ns)

    header, rows = table(kubectl("get", resource).stdout)

    assert header == KIND_COLUMNS[resource]
    assert len(rows) == 1


def test_get_rows_of_secrets_replicasets_endpoints_and_leases(kubectl: Kubectl, api: Any) -> None:
    _seed_every_kind(api, kubectl.ns)

    assert table(kubectl("get", "secrets").stdout)[1]["x"][1:3] == ["Opaque", "1"]
    assert table(kubectl("get", "replicasets").stdout)[1]["x"][1:4] == ["2", "0", "0"]
    assert table(kubectl("get", "endpoints").stdout)[1]["x"][1] == "127.128.0.5:80"
    assert table(kubectl("get", "leases").stdout)[1]["x"][1] == "node-1"
    events = kubectl("get", "events").stdout.splitlines()
    assert columns(events[1])[1:] == ["Normal", "Started", "pod/web", "Started container web"]


# -- output formats, selectors ---------------------------------------------------------------


def test_get_yaml_prints_the_whole_object(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))

    live = yaml.safe_load(kubectl("get", "deployment", "web", "-o", "yaml").stdout)

    assert (live["apiVersion"], live["kind"]) == ("apps/v1", "Deployment")
    assert live["metadata"]["name"] == "web"
    assert live["metadata"]["namespace"] == kubectl.ns
    assert live["metadata"]["uid"]
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


def test_get_json_of_a_collection_prints_a_list(kubectl: Kubectl) -> None:
    kubectl.create_manifest(configmap("one", a="1"))
    kubectl.create_manifest(configmap("two", b="2"))

    listing = json.loads(kubectl("get", "configmaps", "-o", "json").stdout)

    assert listing["kind"] == "List"
    assert sorted(item["metadata"]["name"] for item in listing["items"]) == ["one", "two"]
    assert all(item["kind"] == "ConfigMap" for item in listing["items"])


def test_get_name_prints_resource_slash_name(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))
    kubectl.create_manifest(configmap("settings", a="1"))

    assert kubectl("get", "deployments", "-o", "name").stdout.split() == ["deployment.apps/web"]
    assert kubectl("get", "configmaps", "-o", "name").stdout.split() == ["configmap/settings"]


def test_get_with_a_label_selector_shows_only_matching_objects(kubectl: Kubectl) -> None:
    for name, tier in (("front", "web"), ("back", "db"), ("edge", "web")):
        manifest = configmap(name, a="1")
        manifest["metadata"]["labels"] = {"tier": tier}
        kubectl.create_manifest(manifest)

    out = kubectl("get", "configmaps", "-l", "tier=web", "-o", "name").stdout
    assert sorted(out.split()) == ["configmap/edge", "configmap/front"]
    out = kubectl("get", "configmaps", "-l", "tier!=web", "-o", "name").stdout
    assert out.split() == ["configmap/back"]


def test_get_with_a_field_selector(kubectl: Kubectl) -> None:
    bound = pod("bound")
    bound["spec"]["nodeName"] = "node-1"
    kubectl.create_manifest(bound)
    kubectl.create_manifest(pod("waiting"))

    out = kubectl("get", "pods", "--field-selector=spec.nodeName=node-1", "-o", "name").stdout

    assert out.split() == ["pod/bound"]


def test_get_sorted_by_a_field(kubectl: Kubectl) -> None:
    for name, size in (("b", "3"), ("a", "1"), ("c", "2")):
        kubectl.create_manifest(configmap(name, size=size))

    out = kubectl("get", "configmaps", "--sort-by=.data.size").stdout

    assert [columns(line)[0] for line in out.splitlines()[1:]] == ["a", "c", "b"]


def test_get_label_columns_and_show_labels(kubectl: Kubectl) -> None:
    manifest = configmap("settings", a="1")
    manifest["metadata"]["labels"] = {"tier": "web", "team": "blue"}
    kubectl.create_manifest(manifest)

    header, rows = table(kubectl("get", "configmaps", "-L", "tier").stdout)
    assert header == ["NAME", "DATA", "AGE", "TIER"]
    assert rows["settings"][3] == "web"
    header, rows = table(kubectl("get", "configmaps", "--show-labels").stdout)
    assert header[-1] == "LABELS"
    assert rows["settings"][-1] == "team=blue,tier=web"


def test_get_all_namespaces_adds_a_namespace_column(kubectl: Kubectl) -> None:
    kubectl.create_manifest(configmap("settings", a="1"))

    header, rows = table(kubectl("get", "configmaps", "-A").stdout)

    assert header == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert rows[f"{kubectl.ns}/settings"][2] == "1"


def test_get_of_an_empty_namespace_says_no_resources_found(kubectl: Kubectl) -> None:
    result = kubectl("get", "deployments")

    assert result.stdout == ""
    assert f"No resources found in {kubectl.ns} namespace." in result.stderr


# -- watch -----------------------------------------------------------------------------------


def test_get_watch_prints_added_modified_and_deleted_objects(kubectl: Kubectl) -> None:
    kubectl.create_manifest(configmap("existing", a="1"))
    watch = kubectl.watch("get", "configmaps", "--watch", "--output-watch-events")
    header = watch.wait_for_line(lambda line: line.startswith("EVENT"))
    assert columns(header) == ["EVENT", "NAME", "DATA", "AGE"]
    watch.wait_for_line(lambda line: columns(line)[:3] == ["ADDED", "existing", "1"])

    kubectl.create_manifest(configmap("fresh", a="1"))
    watch.wait_for_line(lambda line: columns(line)[:3] == ["ADDED", "fresh", "1"])
    kubectl("patch", "configmap", "fresh", "--type=merge", "-p", '{"data":{"b":"2"}}')
    watch.wait_for_line(lambda line: columns(line)[:3] == ["MODIFIED", "fresh", "2"])
    kubectl("delete", "configmap", "fresh")
    watch.wait_for_line(lambda line: columns(line)[:2] == ["DELETED", "fresh"])


def test_get_watch_of_one_object_prints_its_changes(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web", replicas=1))
    watch = kubectl.watch("get", "deployment", "web", "--watch")
    watch.wait_for_line(lambda line: columns(line)[:2] == ["web", "0/1"])

    kubectl("patch", "deployment", "web", "--type=merge", "-p", '{"spec":{"replicas":3}}')

    watch.wait_for_line(lambda line: columns(line)[:2] == ["web", "0/3"])


# -- raw -------------------------------------------------------------------------------------


def test_get_raw_readyz_says_ok(kubectl: Kubectl) -> None:
    assert kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"


# -- discovery -------------------------------------------------------------------------------


def test_get_all_lists_the_workloads_and_services(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))
    kubectl.create_manifest(service("web"))
    kubectl.create_manifest(pod("solo"))

    out = kubectl("get", "all", "-o", "name").stdout.split()

    assert sorted(out) == ["deployment.apps/web", "pod/solo", "service/web"]


def test_api_resources_lists_kinds_with_their_short_names(kubectl: Kubectl) -> None:
    out = kubectl("api-resources").stdout

    header, rows = table(out)
    assert header == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert rows["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert rows["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert rows["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    # No short names: that cell is blank.
    assert rows["leases"] == ["leases", "coordination.k8s.io/v1", "true", "Lease"]


def test_version_shows_the_server_version(kubectl: Kubectl) -> None:
    out = kubectl("version", "-o", "json").stdout

    server = json.loads(out)["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "32")
