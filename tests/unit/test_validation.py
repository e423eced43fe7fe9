"""Decoding-time checks (type errors, unknown fields, missing required fields, quantities),
and the name formats and object metadata rules every kind shares."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from kubeling.api import names, rules, validation
from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.api.quantity import QuantityError, parse


def info(api_version: str, kind: str) -> ResourceInfo:
    found = REGISTRY.by_api_version(api_version, kind)
    assert found is not None
    return found


DEPLOYMENT = info("apps/v1", "Deployment")
POD = info("v1", "Pod")
PREFIX = 'Deployment in version "v1" cannot be handled as a Deployment: '


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "args": ["-g", "daemon off;"],
                            "ports": [{"containerPort": 80}],
                            "env": [{"name": "A", "value": "1"}],
                            "resources": {"limits": {"cpu": "500m", "memory": 128}},
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        }
                    ]
                },
            },
        },
    }


def container(obj: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return result


def test_valid_deployment_has_nothing_to_report() -> None:
    report = validation.check_structure(DEPLOYMENT, deployment())
    assert (report.type_errors, report.unknown_fields, report.missing) == ([], [], [])


def test_wrong_scalar_type_reads_like_the_go_decoder() -> None:
    obj = deployment()
    obj["spec"]["replicas"] = "3"
    assert validation.check_structure(DEPLOYMENT, obj).type_errors == [
        PREFIX + "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas"
        " of type int32"
    ]


@pytest.mark.parametrize(
    ("value", "what"), [(1.5, "number 1.5"), (3_000_000_000, "number 3000000000"), (True, "bool")]
)
def test_integers_must_be_whole_and_in_range(value: object, what: str) -> None:
    obj = deployment()
    obj["spec"]["replicas"] = value
    assert validation.check_structure(DEPLOYMENT, obj).type_errors == [
        f"{PREFIX}json: cannot unmarshal {what} into Go struct field DeploymentSpec.spec.replicas"
        " of type int32"
    ]


def test_type_error_paths_have_no_indexes_and_name_the_innermost_struct() -> None:
    obj = deployment()
    container(obj)["env"][0]["value"] = 5
    container(obj)["args"] = [1]
    assert validation.check_structure(DEPLOYMENT, obj).type_errors == [
        PREFIX + "json: cannot unmarshal number into Go struct field "
        "Container.spec.template.spec.containers.args of type string",
        PREFIX + "json: cannot unmarshal number into Go struct field "
        "EnvVar.spec.template.spec.containers.env.value of type string",
    ]


def test_containers_given_as_an_object_name_the_slice_type() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"] = {"name": "web"}
    assert validation.check_structure(DEPLOYMENT, obj).type_errors == [
        PREFIX + "json: cannot unmarshal object into Go struct field "
        "PodSpec.spec.template.spec.containers of type []v1.Container"
    ]


def test_map_values_are_checked_against_the_map_element_type() -> None:
    obj = deployment()
    obj["metadata"]["labels"]["tier"] = 3
    assert validation.check_structure(DEPLOYMENT, obj).type_errors == [
        PREFIX + "json: cannot unmarshal number into Go struct field "
        "ObjectMeta.metadata.labels of type string"
    ]


def test_unknown_fields_are_listed_with_indexes_in_document_order() -> None:
    obj = deployment()
    obj["metadata"]["colour"] = "blue"
    container(obj)["imagePullPolcy"] = "Always"
    obj["spec"]["foo"] = 1
    report = validation.check_structure(DEPLOYMENT, obj)
    assert report.unknown_fields == [
        "metadata.colour",
        "spec.template.spec.containers[0].imagePullPolcy",
        "spec.foo",
    ]
    assert report.type_errors == []


def test_field_names_are_case_sensitive() -> None:
    obj = deployment()
    obj["spec"]["Replicas"] = 3
    assert validation.check_structure(DEPLOYMENT, obj).unknown_fields == ["spec.Replicas"]


def test_strict_error_is_kubernetes_400() -> None:
    err = validation.strict_error(DEPLOYMENT, ["spec.foo", "spec.bar"])
    assert (err.code, err.reason) == (400, "BadRequest")
    assert err.message == (
        PREFIX + 'strict decoding error: unknown field "spec.foo", unknown field "spec.bar"'
    )


def test_warning_texts_name_each_unknown_field() -> None:
    assert validation.warning_texts(["spec.foo"]) == ['unknown field "spec.foo"']


def test_null_means_absent() -> None:
    obj = deployment()
    obj["spec"]["replicas"] = None
    obj["spec"]["selector"] = None
    report = validation.check_structure(DEPLOYMENT, obj)
    assert report.type_errors == []
    assert [(c.field, c.message) for c in report.missing] == [("spec.selector", "Required value")]


def test_missing_required_fields_get_indexed_paths() -> None:
    obj = deployment()
    del container(obj)["name"]
    obj["spec"]["template"]["spec"]["volumes"] = [{"configMap": {"name": "cfg"}}]
    report = validation.check_structure(DEPLOYMENT, obj)
    assert [(c.field, c.message, c.reason) for c in report.missing] == [
        ("spec.template.spec.containers[0].name", "Required value", "FieldValueRequired"),
        ("spec.template.spec.volumes[0].name", "Required value", "FieldValueRequired"),
    ]


def test_null_list_items_are_decoded_as_empty_objects() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"].append(None)
    report = validation.check_structure(DEPLOYMENT, obj)
    assert [c.field for c in report.missing] == ["spec.template.spec.containers[1].name"]


def test_schema_required_fields_kubernetes_does_not_enforce_are_not_reported() -> None:
    slice_: dict[str, Any] = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "s"},
        "addressType": "IPv4",
    }
    event: dict[str, Any] = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}}
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": {"containerStatuses": [{"name": "c", "ready": True}]},
    }
    for api_version, obj in (("discovery.k8s.io/v1", slice_), ("v1", event), ("v1", pod)):
        assert validation.check_structure(info(api_version, obj["kind"]), obj).missing == []


def test_int_or_string_accepts_both_and_reports_other_types_as_int32() -> None:
    obj = deployment()
    obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 2
    assert validation.check_structure(DEPLOYMENT, obj).type_errors == []
    obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = False
    assert validation.check_structure(DEPLOYMENT, obj).type_errors == [
        PREFIX + "json: cannot unmarshal bool into Go struct field "
        "RollingUpdateDeployment.spec.strategy.rollingUpdate.maxSurge of type int32"
    ]


@pytest.mark.parametrize("value", ["1Gb", "abc", True, {"a": 1}])
def test_malformed_quantities_are_rejected_with_the_parser_message(value: object) -> None:
    obj = deployment()
    container(obj)["resources"]["limits"]["memory"] = value
    (message,) = validation.check_structure(DEPLOYMENT, obj).type_errors
    assert message == PREFIX + (
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


def test_unknown_quantity_suffix_has_its_own_message() -> None:
    obj = deployment()
    container(obj)["resources"]["limits"]["memory"] = "1e"
    assert validation.check_structure(DEPLOYMENT, obj).type_errors == [
        PREFIX + "unable to parse quantity's suffix"
    ]


def test_timestamps_must_be_rfc3339() -> None:
    obj = deployment()
    obj["metadata"]["creationTimestamp"] = "2024-13-01T00:00:00Z"
    assert validation.check_structure(DEPLOYMENT, obj).type_errors == [
        PREFIX + 'parsing time "2024-13-01T00:00:00Z": month out of range'
    ]


@pytest.mark.parametrize(
    ("value", "micro", "problem"),
    [
        ("2024-05-01T10:00:00Z", False, None),
        ("2024-05-01T10:00:00.5+02:00", False, None),
        ("2024-05-01T10:00:00.000000Z", True, None),
        (
            "abc",
            False,
            'parsing time "abc" as "2006-01-02T15:04:05Z07:00": cannot parse "abc" as "2006"',
        ),
        (
            "2024-05-01 10:00:00Z",
            False,
            'parsing time "2024-05-01 10:00:00Z" as '
            '"2006-01-02T15:04:05Z07:00": cannot parse " 10:00:00Z" as "T"',
        ),
        ("2024-02-30T00:00:00Z", False, 'parsing time "2024-02-30T00:00:00Z": day out of range'),
        ("2024-05-01T10:00:00Zx", False, 'parsing time "2024-05-01T10:00:00Zx": extra text: "x"'),
        (
            "2024-05-01T10:00:00Z",
            True,
            'parsing time "2024-05-01T10:00:00Z" as '
            '"2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"',
        ),
    ],
)
def test_time_parse_errors_match_go(value: str, micro: bool, problem: str | None) -> None:
    assert validation.parse_time_error(value, micro=micro) == problem


def test_events_v1_event_time_needs_microseconds() -> None:
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e"},
        "eventTime": "2024-05-01T10:00:00Z",
    }
    (message,) = validation.check_structure(info("events.k8s.io/v1", "Event"), event).type_errors
    assert message.endswith('cannot parse "Z" as ".000000"')
    del event["eventTime"]
    report = validation.check_structure(info("events.k8s.io/v1", "Event"), event)
    assert [(c.field, c.message) for c in report.missing] == [("eventTime", "Required value")]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("YWRtaW4=", None),
        ("YWRt\naW4=", None),
        ("", None),
        ("abc$", "illegal base64 data at input byte 3"),
        ("abc", "illegal base64 data at input byte 0"),
        ("YQ==YQ==", "illegal base64 data at input byte 4"),
        ("Y===", "illegal base64 data at input byte 1"),
    ],
)
def test_secret_data_must_be_base64_as_go_decodes_it(data: str, problem: str | None) -> None:
    assert validation.base64_error(data) == problem


def test_secret_with_bad_base64_is_a_decoding_error() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": "abc$"},
    }
    assert validation.check_structure(info("v1", "Secret"), secret).type_errors == [
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3'
    ]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1000m", "1"),
        ("0.5", "500m"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("128Mi", "128Mi"),
        ("1024Ki", "1Mi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Ki", "512"),
        ("1e3", "1e3"),
        ("12e2", "1200"),
        ("0.1", "100m"),
        ("-1", "-1"),
        ("0.0000000001", "1n"),
        ("+5", "+5"),
    ],
)
def test_quantities_print_in_kubernetes_canonical_form(text: str, canonical: str) -> None:
    assert str(parse(text)) == canonical


@pytest.mark.parametrize("text", ["", "1..", "1KI", "1.5.5", " 1"])
def test_quantity_parser_rejects_malformed_input(text: str) -> None:
    with pytest.raises(QuantityError):
        parse(text)


def test_normalise_quantities_turns_numbers_into_canonical_strings() -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "resources": {
                        "limits": {"cpu": 0.5, "memory": 128},
                        "requests": {"cpu": "0.0001"},
                    },
                }
            ],
            "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "0.0001"}}],
        },
    }
    validation.normalise_quantities(POD, pod)
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "500m", "memory": "128"}, "requests": {"cpu": "1m"}}
    assert pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "100u"


def test_normalise_quantities_leaves_invalid_values_for_the_decoder_to_report() -> None:
    pod = {"spec": {"containers": [{"resources": {"limits": {"cpu": "lots"}}}]}}
    validation.normalise_quantities(POD, pod)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "lots"


def test_checking_a_deployment_takes_well_under_a_millisecond() -> None:
    obj = deployment()
    validation.check_structure(DEPLOYMENT, obj)  # compile the schema first
    runs = 200
    start = time.perf_counter()
    for _ in range(runs):
        validation.check_structure(DEPLOYMENT, obj)
    assert (time.perf_counter() - start) / runs < 0.001


def test_checking_does_not_modify_the_object() -> None:
    obj = deployment()
    before = copy.deepcopy(obj)
    validation.check_structure(DEPLOYMENT, obj)
    assert obj == before


# -- names and object metadata -----------------------------------------------------------------

CONFIG_MAP = info("v1", "ConfigMap")
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def config_map(**meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "default", **meta},
    }


def meta_causes(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in rules.validate(CONFIG_MAP, obj, old)]


@pytest.mark.parametrize(
    ("check", "value", "messages"),
    [
        (names.dns1123_subdomain, "my.config", []),
        (names.dns1123_subdomain, "My_Config", [SUBDOMAIN_MSG]),
        (
            names.dns1123_subdomain,
            "a" * 254,
            [
                "must be no more than 253 characters",
            ],
        ),
        (names.dns1123_label, "a.b", ["must not contain dots"]),
        (
            names.dns1035_label,
            "1web",
            [
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
                "with an alphabetic character, and end with an alphanumeric character (e.g. "
                "'my-name',  or 'abc-123', regex used for validation is "
                "'[a-z]([-a-z0-9]*[a-z0-9])?')"
            ],
        ),
        (names.qualified_name, "example.com/My_Name", []),
        (names.qualified_name, "a" * 64, ["name part must be no more than 63 characters"]),
        (names.label_value, "", []),
        (
            names.label_value,
            "-x",
            [
                "a valid label must be an empty string or consist of alphanumeric characters, '-', "
                "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',"
                "  or 'my_value',  or '12345', regex used for validation is "
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ],
        ),
        (names.port_name, "http-web", []),
        (
            names.port_name,
            "-web--tls-",
            ["must not contain consecutive hyphens", "must not begin or end with a hyphen"],
        ),
    ],
)
def test_name_formats_return_kubernetes_messages(
    check: Any, value: str, messages: list[str]
) -> None:
    assert check(value) == messages


def test_name_is_required_unless_generated() -> None:
    obj = config_map()
    del obj["metadata"]["name"]
    assert meta_causes(obj) == [
        ("metadata.name", "Required value: name or generateName is required")
    ]


def test_generate_name_may_end_with_a_dash_but_must_otherwise_be_a_name() -> None:
    assert meta_causes(config_map(generateName="web-")) == []
    assert meta_causes(config_map(generateName="Web-")) == [
        ("metadata.generateName", f'Invalid value: "Web-": {SUBDOMAIN_MSG}')
    ]


def test_name_cannot_change_on_update() -> None:
    assert meta_causes(config_map(name="y"), config_map()) == [
        ("metadata.name", 'Invalid value: "y": field is immutable')
    ]


def test_namespace_is_required_for_namespaced_kinds_and_forbidden_otherwise() -> None:
    obj = config_map()
    del obj["metadata"]["namespace"]
    assert meta_causes(obj) == [("metadata.namespace", "Required value")]
    node = {"metadata": {"name": "n", "namespace": "x"}}
    assert [(c.field, c.message) for c in rules.validate(info("v1", "Node"), node, None)] == [
        ("metadata.namespace", "Forbidden: not allowed on this type")
    ]


def test_labels_and_annotations_are_checked() -> None:
    obj = config_map(
        labels={"app": "web", "bad key": "v", "ok": "-bad"},
        annotations={"example.com/Note": "fine", "/x": "bad"},
    )
    causes = meta_causes(obj)
    assert [field for field, _ in causes] == [
        "metadata.labels",
        "metadata.labels",
        "metadata.annotations",
    ]
    assert causes[2][1] == 'Invalid value: "/x": prefix part must be non-empty'


def test_annotations_are_limited_to_256_kib_in_total() -> None:
    assert meta_causes(config_map(annotations={"a": "x" * 262_144})) == [
        ("metadata.annotations", "Too long: must have at most 262144 bytes")
    ]


def test_finalizers_must_be_standard_or_qualified() -> None:
    assert meta_causes(config_map(finalizers=["example.com/cleanup", "cleanup"])) == [
        (
            "metadata.finalizers[1]",
            'Invalid value: "cleanup": name is neither a standard finalizer name nor is it fully '
            "qualified",
        )
    ]


def test_owner_references_need_a_uid() -> None:
    refs = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": ""}]
    assert meta_causes(config_map(ownerReferences=refs)) == [
        ("metadata.ownerReferences.uid", 'Invalid value: "": must not be empty')
    ]
