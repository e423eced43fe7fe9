"""Defaulting: the fields Kubernetes fills in, checked on real manifests."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kubeling.api import defaults
from kubeling.api.kinds import REGISTRY

Obj = dict[str, Any]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80, name: http}]
        env:
        - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
        resources: {limits: {cpu: 0.5, memory: 134217728}, requests: {cpu: "250m"}}
        readinessProbe: {httpGet: {port: http}}
        livenessProbe: {grpc: {port: 9000}, periodSeconds: 5}
        lifecycle: {preStop: {httpGet: {port: 80}}}
      volumes:
      - {name: cfg, configMap: {name: web}}
      - {name: token, secret: {secretName: token, defaultMode: 256}}
      - {name: scratch}
      - {name: host, hostPath: {path: /var/log}}
      - name: info
        downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
      - name: proj
        projected: {sources: [{serviceAccountToken: {path: token}}]}
"""


def apply(obj: Obj | str) -> Obj:
    if isinstance(obj, str):
        obj = yaml.safe_load(obj)
    assert isinstance(obj, dict)
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None
    defaults.apply_defaults(info, obj)
    return obj


def test_deployment_spec_defaults() -> None:
    spec = apply(DEPLOYMENT)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600


def test_recreate_strategy_gets_no_rolling_update_parameters() -> None:
    obj = yaml.safe_load(DEPLOYMENT)
    obj["spec"]["strategy"] = {"type": "Recreate"}
    assert apply(obj)["spec"]["strategy"] == {"type": "Recreate"}


def test_explicit_values_are_kept() -> None:
    obj = yaml.safe_load(DEPLOYMENT)
    obj["spec"].update(replicas=0, revisionHistoryLimit=0)
    spec = apply(obj)["spec"]
    assert (spec["replicas"], spec["revisionHistoryLimit"]) == (0, 0)


def test_pod_template_spec_defaults() -> None:
    pod_spec = apply(DEPLOYMENT)["spec"]["template"]["spec"]
    assert {
        k: pod_spec[k]
        for k in (
            "dnsPolicy",
            "restartPolicy",
            "securityContext",
            "terminationGracePeriodSeconds",
            "schedulerName",
        )
    } == {
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
    }
    assert "enableServiceLinks" not in pod_spec  # pods only, not templates


def test_container_defaults() -> None:
    ctr = apply(DEPLOYMENT)["spec"]["template"]["spec"]["containers"][0]
    assert ctr["imagePullPolicy"] == "IfNotPresent"
    assert ctr["terminationMessagePath"] == "/dev/termination-log"
    assert ctr["terminationMessagePolicy"] == "File"
    assert ctr["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}]
    assert ctr["env"][0]["valueFrom"]["fieldRef"] == {
        "fieldPath": "metadata.name",
        "apiVersion": "v1",
    }
    assert ctr["env"][1]["valueFrom"]["resourceFieldRef"]["divisor"] == "0"


def test_resource_quantities_become_canonical_strings() -> None:
    ctr = apply(DEPLOYMENT)["spec"]["template"]["spec"]["containers"][0]
    # A plain number is a decimal quantity: it is never rewritten with a binary suffix.
    assert ctr["resources"] == {
        "limits": {"cpu": "500m", "memory": "134217728"},
        "requests": {"cpu": "250m"},
    }


def test_probe_defaults() -> None:
    ctr = apply(DEPLOYMENT)["spec"]["template"]["spec"]["containers"][0]
    assert ctr["readinessProbe"] == {
        "httpGet": {"port": "http", "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert ctr["livenessProbe"]["periodSeconds"] == 5
    assert ctr["livenessProbe"]["grpc"] == {"port": 9000, "service": ""}
    assert ctr["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}


def test_volume_defaults() -> None:
    volumes = {v["name"]: v for v in apply(DEPLOYMENT)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["cfg"]["configMap"]["defaultMode"] == 420
    assert volumes["token"]["secret"]["defaultMode"] == 256
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert volumes["host"]["hostPath"] == {"path": "/var/log", "type": ""}
    assert volumes["info"]["downwardAPI"] == {
        "defaultMode": 420,
        "items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels", "apiVersion": "v1"}}
        ],
    }
    assert volumes["proj"]["projected"] == {
        "defaultMode": 420,
        "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}],
    }


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("registry:5000/team/app", "Always"),
        ("registry:5000/team/app:v2", "IfNotPresent"),
        ("nginx@sha256:abcd", "IfNotPresent"),
        ("nginx:latest@sha256:abcd", "Always"),
    ],
)
def test_image_pull_policy_follows_the_tag(image: str, policy: str) -> None:
    pod = apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }
    )
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_pods_get_requests_from_limits_and_service_links() -> None:
    pod = apply("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  hostNetwork: true
  containers:
  - name: c
    image: x
    ports: [{containerPort: 8080}]
    resources: {limits: {cpu: "1", memory: 1Gi}, requests: {cpu: 100m}}
""")
    ctr = pod["spec"]["containers"][0]
    assert ctr["resources"]["requests"] == {"cpu": "100m", "memory": "1Gi"}
    assert ctr["ports"][0]["hostPort"] == 8080
    assert pod["spec"]["enableServiceLinks"] is True
    assert pod["spec"]["containers"][0]["resources"] is not None


def test_containers_without_resources_read_back_an_empty_object() -> None:
    pod = apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        }
    )
    assert pod["spec"]["containers"][0]["resources"] == {}


def test_cluster_ip_service_defaults() -> None:
    spec = apply("""
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}, {port: 8443, targetPort: https}]}
""")["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [
        {"port": 80, "protocol": "TCP", "targetPort": 80},
        {"port": 8443, "targetPort": "https", "protocol": "TCP"},
    ]
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
def test_externally_reachable_services_get_a_traffic_policy(kind: str) -> None:
    spec = apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"type": kind, "ports": [{"port": 80}]},
        }
    )["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec.get("allocateLoadBalancerNodePorts") is (True if kind == "LoadBalancer" else None)


def test_external_name_services_get_no_ip_families() -> None:
    spec = apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"},
        }
    )["spec"]
    assert "ipFamilies" not in spec and "internalTrafficPolicy" not in spec


def test_client_ip_affinity_gets_a_timeout() -> None:
    spec = apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]},
        }
    )["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_secret_defaults_type_and_merges_string_data() -> None:
    secret = apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"user": "YWRtaW4=", "password": "b2xk"},
            "stringData": {"password": "hunter2"},
        }
    )
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "type": "Opaque",
        "data": {"user": "YWRtaW4=", "password": "aHVudGVyMg=="},
    }


def test_new_namespaces_get_the_kubernetes_finalizer_name_label_and_phase() -> None:
    ns = apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["status"] == {"phase": "Active"}


def test_namespace_finalizer_stays_removable_on_update() -> None:
    ns = apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "resourceVersion": "7"},
            "spec": {"finalizers": []},
            "status": {"phase": "Terminating"},
        }
    )
    assert ns["spec"] == {"finalizers": []}
    assert ns["status"] == {"phase": "Terminating"}


def test_node_allocatable_defaults_to_capacity() -> None:
    node = apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": 4, "memory": "8Gi"}},
        }
    )
    assert node["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi"}


def test_endpoint_ports_default_to_tcp() -> None:
    endpoints = apply(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "e"},
            "subsets": [{"ports": [{"port": 80}]}],
        }
    )
    assert endpoints["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    endpoint_slice = apply(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "e"},
            "addressType": "IPv4",
            "ports": [{"port": 80}],
        }
    )
    assert endpoint_slice["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]


def test_kinds_without_defaults_are_left_alone() -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "b"},
    }
    assert apply(dict(config)) == config


def qos(*containers: Obj) -> str:
    return defaults.pod_qos_class({"spec": {"containers": list(containers)}})


def test_qos_best_effort_without_requests_or_limits() -> None:
    assert qos({"name": "a"}, {"name": "b", "resources": {}}) == "BestEffort"


def test_qos_guaranteed_when_limits_equal_requests_for_cpu_and_memory() -> None:
    full = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert qos({"resources": full}) == "Guaranteed"
    assert qos({"resources": {**full, "requests": {"cpu": "1000m", "memory": 1073741824}}}) == (
        "Guaranteed"
    )


def test_qos_burstable_otherwise() -> None:
    assert qos({"resources": {"requests": {"cpu": "100m"}}}) == "Burstable"
    assert qos({"resources": {"limits": {"cpu": "1"}}}) == "Burstable"
    assert (
        qos({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}})
        == "Burstable"
    )
    assert qos({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}, {"name": "b"}) == (
        "Burstable"
    )
