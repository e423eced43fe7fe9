"""Semantic validation: each rule with a valid and an invalid case, Kubernetes' exact texts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api import defaults, rules
from kubeling.api.kinds import REGISTRY

Obj = dict[str, Any]
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
PORT_RANGE = "must be between 1 and 65535, inclusive"


def defaulted(obj: Obj) -> Obj:
    """The object as stored: what clients read back and modify."""
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None
    stored = copy.deepcopy(obj)
    defaults.apply_defaults(info, stored)
    return stored


def check(obj: Obj, old: Obj | None = None) -> list[tuple[str, str]]:
    """Default, then validate, as the registry does; returns (field, message) pairs."""
    info = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert info is not None
    if old is not None:
        obj, old = copy.deepcopy(obj), copy.deepcopy(old)
        obj["metadata"].setdefault("resourceVersion", "5")
        old["metadata"].setdefault("resourceVersion", "5")
        old = defaulted(old)
    return [(c.field, c.message) for c in rules.validate(info, defaulted(obj), old)]


def simple(kind: str, api_version: str = "v1", **fields: Any) -> Obj:
    meta = {"name": "x", "namespace": "default"}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


def pod(**spec: Any) -> Obj:
    return simple("Pod", spec={"containers": [{"name": "app", "image": "busybox"}], **spec})


def deployment(**spec: Any) -> Obj:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }
    return simple(
        "Deployment",
        "apps/v1",
        spec={"selector": {"matchLabels": {"app": "web"}}, "template": template, **spec},
    )


def service(**spec: Any) -> Obj:
    return simple("Service", spec={"selector": {"app": "web"}, "ports": [{"port": 80}], **spec})


VALID = [
    pod(),
    deployment(),
    service(),
    {**deployment(), "kind": "ReplicaSet"},
    simple("ConfigMap", data={"a.conf": "x"}),
    simple("Secret", data={"k": "dg=="}),
    simple("ServiceAccount"),
    simple("Endpoints", subsets=[{"addresses": [{"ip": "127.128.0.5"}], "ports": [{"port": 80}]}]),
    simple(
        "EndpointSlice",
        "discovery.k8s.io/v1",
        addressType="IPv4",
        endpoints=[{"addresses": ["127.128.0.5"]}],
        ports=[{"port": 80}],
    ),
    simple("Lease", "coordination.k8s.io/v1", spec={"leaseDurationSeconds": 40}),
    simple("Event", involvedObject={"kind": "Pod", "name": "p", "namespace": "default"}),
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}},
]


@pytest.mark.parametrize("obj", VALID, ids=lambda o: o["kind"])
def test_valid_objects_of_every_kind_pass(obj: Obj) -> None:
    assert check(obj) == []


# -- pods --------------------------------------------------------------------------------------


def test_a_pod_needs_containers() -> None:
    assert check(pod(containers=[])) == [("spec.containers", "Required value")]


def test_container_names_are_dns_labels_unique_across_init_containers() -> None:
    obj = pod(
        containers=[{"name": "App", "image": "x"}, {"name": "b", "image": "x"}],
        initContainers=[{"name": "b", "image": "x"}],
    )
    assert check(obj) == [
        ("spec.containers[0].name", f'Invalid value: "App": {LABEL_MSG}'),
        ("spec.initContainers[0].name", 'Duplicate value: "b"'),
    ]


def test_containers_need_an_image() -> None:
    assert check(pod(containers=[{"name": "a"}])) == [
        ("spec.containers[0].image", "Required value")
    ]


def test_container_ports_are_checked() -> None:
    ports = [
        {"containerPort": 8080, "name": "http"},
        {"containerPort": 70000, "protocol": "HTTP"},
        {"containerPort": 0, "name": "http"},
    ]
    assert check(pod(containers=[{"name": "a", "image": "x", "ports": ports}])) == [
        ("spec.containers[0].ports[1].containerPort", f"Invalid value: 70000: {PORT_RANGE}"),
        (
            "spec.containers[0].ports[1].protocol",
            'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        ),
        ("spec.containers[0].ports[2].name", 'Duplicate value: "http"'),
        ("spec.containers[0].ports[2].containerPort", "Required value"),
    ]


def test_restart_and_dns_policies_have_fixed_values() -> None:
    assert check(pod(restartPolicy="OnFailure", dnsPolicy="Default")) == []
    assert check(pod(restartPolicy="Sometimes", dnsPolicy="Local")) == [
        (
            "spec.restartPolicy",
            'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
        ),
        (
            "spec.dnsPolicy",
            'Unsupported value: "Local": supported values: '
            '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"',
        ),
    ]


def probe_pod(probe: Obj, key: str = "readinessProbe") -> Obj:
    return pod(containers=[{"name": "a", "image": "x", key: probe}])


def test_probes_need_exactly_one_handler() -> None:
    assert check(probe_pod({"exec": {"command": ["true"]}})) == []
    assert check(probe_pod({"periodSeconds": 5})) == [
        ("spec.containers[0].readinessProbe", "Required value: must specify a handler type")
    ]
    assert check(probe_pod({"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}})) == [
        (
            "spec.containers[0].readinessProbe.tcpSocket",
            "Forbidden: may not specify more than 1 handler type",
        )
    ]


def test_probe_ports_and_thresholds_are_checked() -> None:
    assert check(
        probe_pod({"httpGet": {"port": "web_http"}, "successThreshold": 2}, "livenessProbe")
    ) == [
        (
            "spec.containers[0].livenessProbe.httpGet.port",
            "Invalid value: web_http: must contain only alpha-numeric characters (a-z, 0-9), and "
            "hyphens (-)",
        ),
        ("spec.containers[0].livenessProbe.successThreshold", "Invalid value: 2: must be 1"),
    ]


def test_init_containers_may_not_have_probes() -> None:
    obj = pod(
        initContainers=[
            {"name": "i", "image": "x", "livenessProbe": {"exec": {"command": ["true"]}}}
        ]
    )
    assert check(obj) == [
        (
            "spec.initContainers[0].livenessProbe",
            "Forbidden: may not be set for init containers without restartPolicy=Always",
        )
    ]


def test_requests_may_not_exceed_limits() -> None:
    ok = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}
    bad = {"limits": {"cpu": "500m"}, "requests": {"cpu": 2}}
    assert check(pod(containers=[{"name": "a", "image": "x", "resources": ok}])) == []
    assert check(pod(containers=[{"name": "a", "image": "x", "resources": bad}])) == [
        (
            "spec.containers[0].resources.requests",
            'Invalid value: "2": must be less than or equal to cpu limit of 500m',
        )
    ]


def test_resource_names_must_be_standard_or_qualified() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"gpu": "1", "example.com/gpu": "1"}
    }
    path = "spec.template.spec.containers[0].resources.limits[gpu]"
    assert check(obj) == [
        (path, 'Invalid value: "gpu": must be a standard resource type or fully qualified'),
        (path, 'Invalid value: "gpu": must be a standard resource for containers'),
    ]


def test_volume_names_are_unique_and_mounts_must_refer_to_them() -> None:
    obj = pod(
        volumes=[{"name": "data"}, {"name": "data"}],
        containers=[
            {
                "name": "a",
                "image": "x",
                "volumeMounts": [
                    {"name": "data", "mountPath": "/d"},
                    {"name": "logs", "mountPath": "/d"},
                ],
            }
        ],
    )
    assert check(obj) == [
        ("spec.volumes[1].name", 'Duplicate value: "data"'),
        ("spec.containers[0].volumeMounts[1].name", 'Not found: "logs"'),
        ("spec.containers[0].volumeMounts[1].mountPath", 'Invalid value: "/d": must be unique'),
    ]


def test_config_map_volumes_need_a_name() -> None:
    obj = pod(volumes=[{"name": "cfg", "configMap": {}}])
    assert check(obj) == [("spec.volumes[0].configMap.name", "Required value")]


def test_env_value_from_needs_exactly_one_source() -> None:
    env = [
        {"name": "A", "valueFrom": {}},
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "spec.foo"}}},
    ]
    assert check(pod(containers=[{"name": "a", "image": "x", "env": env}])) == [
        (
            "spec.containers[0].env[0].valueFrom",
            'Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, '
            "`configMapKeyRef` or `secretKeyRef`",
        ),
        (
            "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath",
            'Invalid value: "spec.foo": error converting fieldPath: field label not supported: '
            "spec.foo",
        ),
    ]


def test_pod_updates_may_only_change_images() -> None:
    old = defaulted(pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:2"
    assert check(new, old) == []
    new["spec"]["containers"][0]["command"] = ["sleep"]
    ((field, message),) = check(new, old)
    assert field == "spec"
    assert message.startswith(
        "Forbidden: pod updates may not change fields other than "
        "`spec.containers[*].image`,`spec.initContainers[*].image`"
    )


def test_binding_may_set_the_node_of_an_unscheduled_pod() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["nodeName"] = "node-1"
    assert check(new, old) == []
    assert [f for f, _ in check(pod(nodeName="node-2"), new)] == ["spec"]


# -- deployments and replica sets --------------------------------------------------------------


def test_selector_must_match_template_labels() -> None:
    obj = deployment()
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "api", "tier": "x"}
    assert check(obj) == [
        (
            "spec.template.metadata.labels",
            'Invalid value: map[string]string{"app":"api", "tier":"x"}: '
            "`selector` does not match template `labels`",
        )
    ]


def test_missing_selector_matches_nothing() -> None:
    obj = deployment()
    del obj["spec"]["selector"]
    assert check(obj) == [
        (
            "spec.template.metadata.labels",
            'Invalid value: map[string]string{"app":"web"}: `selector` does not '
            "match template `labels`",
        )
    ]


def test_empty_selector_is_invalid() -> None:
    assert check(deployment(selector={})) == [
        (
            "spec.selector",
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
            "deployment",
        )
    ]


def test_selector_expressions_work_and_are_validated() -> None:
    exprs = [{"key": "app", "operator": "In", "values": ["web", "api"]}]
    assert check(deployment(selector={"matchExpressions": exprs})) == []
    bad = [{"key": "app", "operator": "In"}]
    assert check(deployment(selector={"matchExpressions": bad}))[0] == (
        "spec.selector.matchExpressions[0].values",
        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
    )


def test_replicas_may_not_be_negative() -> None:
    assert check(deployment(replicas=0)) == []
    assert check(deployment(replicas=-1)) == [
        ("spec.replicas", "Invalid value: -1: must be greater than or equal to 0")
    ]


def test_strategy_type_has_fixed_values() -> None:
    assert check(deployment(strategy={"type": "Recreate"})) == []
    assert check(deployment(strategy={"type": "BlueGreen"})) == [
        (
            "spec.strategy",
            'Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", '
            'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", '
            '"RollingUpdate"',
        )
    ]


@pytest.mark.parametrize(
    ("rolling", "expected"),
    [
        ({"maxSurge": 1, "maxUnavailable": 0}, []),
        (
            {"maxSurge": 0, "maxUnavailable": "0%"},
            [
                (
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "Invalid value: 0%: may not be 0 when `maxSurge` is 0",
                )
            ],
        ),
        (
            {"maxSurge": "25", "maxUnavailable": "150%"},
            [
                (
                    "spec.strategy.rollingUpdate.maxSurge",
                    "Invalid value: 25: a valid percent string must be a numeric string followed "
                    "by an ending '%' (e.g. '1%',  or '93%', regex used for validation is "
                    "'[0-9]+%')",
                ),
                (
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "Invalid value: 150%: must not be greater than 100%",
                ),
            ],
        ),
    ],
)
def test_rolling_update_parameters(rolling: Obj, expected: list[tuple[str, str]]) -> None:
    assert check(deployment(strategy={"type": "RollingUpdate", "rollingUpdate": rolling})) == (
        expected
    )


def test_template_restart_policy_must_be_always() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert check(obj) == [
        (
            "spec.template.spec.restartPolicy",
            'Unsupported value: "Never": supported values: "Always"',
        )
    ]


def test_progress_deadline_must_exceed_min_ready_seconds() -> None:
    assert check(deployment(minReadySeconds=600)) == [
        ("spec.progressDeadlineSeconds", "Invalid value: 600: must be greater than minReadySeconds")
    ]


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_selector_is_immutable(kind: str) -> None:
    old = {**deployment(), "kind": kind}
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    assert check(new, old) == []
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    new["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert check(new, old) == [
        (
            "spec.selector",
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"
            '"app":"web", "v":"2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is '
            "immutable",
        )
    ]


# -- services ----------------------------------------------------------------------------------


def test_ports_are_required_unless_headless_or_external_name() -> None:
    assert check(service(ports=[])) == [("spec.ports", "Required value")]
    assert check(service(ports=[], clusterIP="None")) == []
    assert check(service(ports=[], type="ExternalName", externalName="db.example.com")) == []


def test_service_ports_need_names_when_there_are_several() -> None:
    assert check(service(ports=[{"port": 80, "name": "http"}, {"port": 443}])) == [
        ("spec.ports[1].name", "Required value")
    ]


def test_service_port_numbers_and_target_ports() -> None:
    ports = [{"port": 0, "name": "a"}, {"port": 80, "name": "b", "targetPort": "Web"}]
    assert check(service(ports=ports)) == [
        ("spec.ports[0].port", f"Invalid value: 0: {PORT_RANGE}"),
        ("spec.ports[0].targetPort", f"Invalid value: 0: {PORT_RANGE}"),
        (
            "spec.ports[1].targetPort",
            "Invalid value: Web: must contain only alpha-numeric characters (a-z, 0-9), and "
            "hyphens (-)",
        ),
    ]


def test_service_type_has_fixed_values_and_node_ports_need_the_right_type() -> None:
    assert check(service(type="Public")) == [
        (
            "spec.type",
            'Unsupported value: "Public": '
            'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
        )
    ]
    assert check(service(ports=[{"port": 80, "nodePort": 30080}])) == [
        ("spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")
    ]
    assert check(service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])) == []


def test_cluster_ip_cannot_change_once_set() -> None:
    old = service(clusterIP="127.96.0.10", clusterIPs=["127.96.0.10"])
    assert check(service(), old) == []
    assert check(service(clusterIP="127.96.0.11"), old) == [
        ("spec.clusterIPs[0]", 'Invalid value: []string{"127.96.0.11"}: may not change once set')
    ]


def test_service_selector_and_external_name_are_checked() -> None:
    assert check(service(selector={"app": "web!"}))[0][0] == "spec.selector"
    assert check(service(type="ExternalName", ports=[])) == [
        ("spec.externalName", "Required value")
    ]


# -- endpoints ---------------------------------------------------------------------------------


def test_endpoints_need_valid_addresses() -> None:
    obj = simple(
        "Endpoints",
        subsets=[
            {"ports": [{"port": 80}]},
            {"addresses": [{"ip": "10.0.0.300"}, {"ip": "0.0.0.0"}]},
        ],
    )
    assert check(obj) == [
        ("subsets[0]", "Required value: must specify `addresses` or `notReadyAddresses`"),
        (
            "subsets[1].addresses[0].ip",
            'Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or '
            "2001:db8::ffff)",
        ),
        ("subsets[1].addresses[0].ip", 'Invalid value: "10.0.0.300": must be a valid IP address'),
        (
            "subsets[1].addresses[1].ip",
            'Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)',
        ),
    ]


def test_endpoint_slices_check_address_type_and_addresses() -> None:
    obj = simple("EndpointSlice", "discovery.k8s.io/v1", addressType="IPv5", endpoints=[])
    assert check(obj) == [
        ("addressType", 'Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"')
    ]
    obj = simple(
        "EndpointSlice",
        "discovery.k8s.io/v1",
        addressType="IPv4",
        endpoints=[{"addresses": []}, {"addresses": ["::1"]}],
    )
    assert check(obj) == [
        ("endpoints[0].addresses", "Required value: must contain at least 1 address"),
        ("endpoints[1].addresses[0]", 'Invalid value: "::1": must be a valid IPv4 address'),
    ]


# -- configuration -----------------------------------------------------------------------------


def test_config_map_keys_and_overlap() -> None:
    obj = simple("ConfigMap", data={"bad key": "x", "a": "y"}, binaryData={"a": "eQ=="})
    assert check(obj) == [
        (
            "data[bad key]",
            'Invalid value: "bad key": a valid config key must consist of '
            "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
            "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ),
        ("data[a]", 'Invalid value: "a": duplicate of key present in binaryData'),
    ]


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret"])
def test_immutable_objects_cannot_change_data(kind: str) -> None:
    old = simple(kind, data={"a": "dg=="}, immutable=True)
    assert check(copy.deepcopy(old), old) == []
    new = simple(kind, data={"a": "dw=="})
    assert check(new, old) == [
        ("immutable", "Forbidden: field is immutable when `immutable` is set"),
        ("data", "Forbidden: field is immutable when `immutable` is set"),
    ]


def test_secret_type_is_immutable_and_tls_secrets_need_their_keys() -> None:
    old = simple("Secret")
    new = simple("Secret", type="kubernetes.io/tls", data={"tls.crt": "eA=="})
    assert check(new, old) == [
        ("type", 'Invalid value: "kubernetes.io/tls": field is immutable'),
        ("data[tls.key]", "Required value"),
    ]


def test_data_is_limited_to_one_mebibyte() -> None:
    assert check(simple("ConfigMap", data={"a": "x" * (1 << 20 + 1)})) == [
        ("", "Too long: must have at most 1048576 bytes")
    ]


# -- cluster objects ---------------------------------------------------------------------------


def test_namespace_finalizers_must_be_standard_or_qualified() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "a"},
        "spec": {"finalizers": ["kubernetes", "mine"]},
    }
    assert check(obj) == [
        (
            "spec.finalizers",
            'Invalid value: "mine": name is neither a standard '
            "finalizer name nor is it fully qualified",
        )
    ]


def test_node_taints_are_reported_under_metadata() -> None:
    taints = [
        {"key": "a", "effect": "NoSchedule"},
        {"key": "a", "effect": "NoSchedule"},
        {"key": "b", "effect": "Sometimes"},
    ]
    obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n"},
        "spec": {"taints": taints},
    }
    assert check(obj) == [
        (
            "metadata.taints[1]",
            'Duplicate value: core.Taint{Key:"a", Value:"", '
            'Effect:"NoSchedule", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and '
            "effect pair",
        ),
        (
            "metadata.taints[2].effect",
            'Unsupported value: "Sometimes": supported values: '
            '"NoSchedule", "PreferNoSchedule", "NoExecute"',
        ),
    ]


def test_node_pod_cidrs_cannot_change() -> None:
    old: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n"},
        "spec": {"podCIDRs": ["127.128.1.0/24"]},
    }
    new = copy.deepcopy(old)
    new["spec"]["podCIDRs"] = ["127.128.2.0/24"]
    assert check(new, old) == [
        ("spec.podCIDRs", 'Forbidden: node updates may not change podCIDR except from "" to valid')
    ]


def test_core_events_must_agree_with_their_involved_object() -> None:
    obj = simple("Event", involvedObject={"kind": "Pod", "name": "p", "namespace": "other"})
    assert check(obj) == [
        ("involvedObject.namespace", 'Invalid value: "other": does not match event.namespace')
    ]
    assert check(simple("Event")) == []  # no involved namespace: tolerated in "default"
    orphan = simple("Event")
    orphan["metadata"]["namespace"] = "team"
    assert check(orphan) == [
        ("involvedObject.namespace", 'Invalid value: "": does not match event.namespace')
    ]


def test_events_v1_require_reporting_fields() -> None:
    obj = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e", "namespace": "default"},
        "eventTime": "2024-05-01T10:00:00.000000Z",
        "type": "Normal",
        "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
    }
    assert check(obj) == [
        ("reportingController", "Required value"),
        ("reportingController", 'Invalid value: "": name part must be non-empty'),
        (
            "reportingController",
            'Invalid value: "": name part must consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        ("reportingInstance", "Required value"),
        ("action", "Required value"),
        ("reason", "Required value"),
    ]


def test_lease_duration_must_be_positive() -> None:
    assert check(simple("Lease", "coordination.k8s.io/v1", spec={"leaseDurationSeconds": 0})) == [
        ("spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0")
    ]
