"""Reading with kubectl: `get` (tables, output formats, selectors, -A, -w), `describe`,
`get --raw`."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
import yaml
from kubectl_support import Kubectl, columns, configmap, deployment, table

pytestmark = pytest.mark.e2e

AGE = re.compile(r"\d+(s|m|h|d)(\d+(s|m|h))?")
SERVICE_RANGE = ipaddress.ip_network("127.96.0.0/12")


def pod(name: str, image: str = "nginx:1.25") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]},
    }


def service(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


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


def test_get_services_prints_type_cluster_ip_and_ports(kubectl: Kubectl) -> None:
    kubectl.create_manifest(service("web"))

    header, rows = table(kubectl("get", "services").stdout)

    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    _, kind, cluster_ip, external_ip, ports, _ = rows["web"]
    assert kind == "ClusterIP"
    assert ipaddress.ip_address(cluster_ip) in SERVICE_RANGE
    assert (external_ip, ports) == ("<none>", "80/TCP")


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


# -- describe --------------------------------------------------------------------------------


def _fields(output: str) -> dict[str, str]:
    """The top-level `Key:   value` lines of kubectl describe."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"^([A-Za-z][\w ]*?):\s+(.*)$", line)
        if match:
            found.setdefault(match.group(1), match.group(2).strip())
    return found


def test_describe_deployment_shows_replicas_strategy_and_template(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web", replicas=2))

    out = kubectl("describe", "deployment", "web").stdout

    fields = _fields(out)
    assert fields["Name"] == "web"
    assert fields["Namespace"] == kubectl.ns
    assert fields["Selector"] == "app=web"
    assert fields["Replicas"].startswith("2 desired")
    # Kubernetes' defaults, which describe prints.
    assert fields["StrategyType"] == "RollingUpdate"
    assert fields["RollingUpdateStrategy"] == "25% max unavailable, 25% max surge"
    assert re.search(r"^\s+Image:\s+nginx:1\.25$", out, re.MULTILINE), out
    assert re.search(r"^\s+Port:\s+80/TCP$", out, re.MULTILINE), out
    assert "Events:" in out


def test_describe_pod_shows_status_containers_and_qos(kubectl: Kubectl) -> None:
    kubectl.create_manifest(pod("web"))

    out = kubectl("describe", "pod", "web").stdout

    fields = _fields(out)
    assert fields["Name"] == "web"
    assert fields["Namespace"] == kubectl.ns
    assert fields["Status"] == "Pending"
    assert fields["QoS Class"] == "BestEffort"
    assert re.search(r"^\s+Image:\s+nginx:1\.25$", out, re.MULTILINE), out
    assert re.search(r"^\s+Port:\s+80/TCP$", out, re.MULTILINE), out


def test_describe_service_shows_type_ip_and_ports(kubectl: Kubectl) -> None:
    kubectl.create_manifest(service("web"))

    out = kubectl("describe", "service", "web").stdout

    fields = _fields(out)
    assert fields["Name"] == "web"
    assert fields["Type"] == "ClusterIP"
    assert fields["Selector"] == "app=web"
    assert ipaddress.ip_address(fields["IP"]) in SERVICE_RANGE
    assert fields["Port"] == "<unset>  80/TCP"
    assert fields["TargetPort"] == "8080/TCP"


def test_describe_configmap_shows_its_data(kubectl: Kubectl) -> None:
    kubectl.create_manifest(configmap("settings", color="blue"))

    out = kubectl("describe", "configmap", "settings").stdout

    assert _fields(out)["Name"] == "settings"
    assert re.search(r"^color:\n-+\nblue$", out, re.MULTILINE), out


# -- raw -------------------------------------------------------------------------------------


def test_get_raw_readyz_says_ok(kubectl: Kubectl) -> None:
    assert kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
