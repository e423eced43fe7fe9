"""`kubectl describe`: what it prints for the kinds users describe most."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from kubectl_support import Kubectl, configmap, deployment, pod, service
from kubernetes import client

pytestmark = pytest.mark.e2e

SERVICE_RANGE = ipaddress.ip_network("127.96.0.0/12")


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


def test_describe_pod_lists_the_pods_events(kubectl: Kubectl, api: Any) -> None:
    kubectl.create_manifest(pod("web"))
    uid = kubectl.get_json("pod", "web")["metadata"]["uid"]
    core = client.CoreV1Api(api)
    for name, target_uid in (("mine", uid), ("stale", "00000000-0000-0000-0000-000000000000")):
        core.create_namespaced_event(
            kubectl.ns,
            {
                "metadata": {"name": name},
                "involvedObject": {
                    "kind": "Pod",
                    "name": "web",
                    "namespace": kubectl.ns,
                    "uid": target_uid,
                },
                "reason": "Pulled" if name == "mine" else "Killing",
                "message": f"event {name}",
                "type": "Normal",
                "source": {"component": "kubelet"},
                "count": 1,
                "firstTimestamp": "2026-11-24T01:50:38Z",
                "lastTimestamp": "2026-11-24T01:50:38Z",
            },
        )

    out = kubectl("describe", "pod", "web").stdout

    events = out[out.index("Events:") :]
    assert re.search(r"Normal\s+Pulled\s+.*kubelet\s+event mine", events), events
    # describe selects the events by the pod's uid: an earlier pod's events are not shown.
    assert "event stale" not in events


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
