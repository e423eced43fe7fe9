"""A container's environment and command line, as the kubelet builds them."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from kubeling.agent.envvars import (
    EnvError,
    container_argv,
    container_env,
    expand,
    service_env,
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CONFIGMAPS: dict[tuple[str, str], dict[str, Any]] = {
    ("default", "app-config"): {"data": {"color": "blue", "size": "L"}},
    ("default", "odd-keys"): {"data": {"app.properties": "x=1", "bad=key": "v"}},
}
SECRETS: dict[tuple[str, str], dict[str, Any]] = {
    ("default", "db"): {"data": {"password": _b64("s3cret"), "user": _b64("admin")}},
    ("default", "nul"): {"data": {"blob": _b64("a\0b")}},
}


def _service(name: str, ip: str, *ports: dict[str, Any], namespace: str = "default") -> Any:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": ip, "ports": list(ports)},
    }


KUBERNETES = _service("kubernetes", "127.96.0.1", {"name": "https", "port": 443})


def _pod(*containers: Mapping[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-0",
            "namespace": "default",
            "uid": "uid-1",
            "labels": {"app": "web"},
            "annotations": {"team": "core"},
        },
        "spec": {
            "nodeName": "node-a",
            "serviceAccountName": "sa",
            "containers": list(containers),
            **spec,
        },
    }


def _env(container: Mapping[str, Any], *, pod: Mapping[str, Any] | None = None, **kw: Any) -> Any:
    kw.setdefault("services", [])
    return container_env(
        pod or _pod(container),
        container,
        pod_ip="127.128.0.5",
        host_ip="127.0.0.1",
        node_name="node-a",
        configmap=lambda ns, name: CONFIGMAPS.get((ns, name)),
        secret=lambda ns, name: SECRETS.get((ns, name)),
        **kw,
    )


def _error(container: Mapping[str, Any], **kw: Any) -> EnvError:
    with pytest.raises(EnvError) as caught:
        _env(container, **kw)
    return caught.value


# --- sources and precedence ------------------------------------------------------------------


def test_base_comes_through_and_pod_ip_is_always_exported() -> None:
    env = _env({"name": "c"}, base={"PATH": "/usr/bin", "HOSTNAME": "web-0"})
    assert env["PATH"] == "/usr/bin"
    assert env["HOSTNAME"] == "web-0"
    assert env["POD_IP"] == "127.128.0.5"


def test_the_pod_may_set_pod_ip_itself() -> None:
    env = _env({"name": "c", "env": [{"name": "POD_IP", "value": "0.0.0.0"}]})
    assert env["POD_IP"] == "0.0.0.0"


def test_env_from_configmap_and_secret_with_prefix() -> None:
    env = _env(
        {
            "name": "c",
            "envFrom": [
                {"configMapRef": {"name": "app-config"}},
                {"secretRef": {"name": "db"}, "prefix": "DB_"},
            ],
        }
    )
    assert (env["color"], env["size"]) == ("blue", "L")
    assert (env["DB_password"], env["DB_user"]) == ("s3cret", "admin")


def test_precedence_base_then_services_then_env_from_then_env() -> None:
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "app-config"}}],
        "env": [{"name": "size", "value": "XL"}],
    }
    shadow = {"KUBERNETES_SERVICE_HOST": "base", "color": "base", "size": "base", "X": "base"}
    cm = {"data": {"KUBERNETES_SERVICE_HOST": "cm", "color": "blue", "size": "L"}}
    env = container_env(
        _pod(container),
        container,
        pod_ip="127.128.0.5",
        host_ip="127.0.0.1",
        node_name="node-a",
        services=[KUBERNETES],
        configmap=lambda ns, name: cm,
        secret=lambda ns, name: None,
        base=shadow,
    )
    assert env["X"] == "base"
    assert env["KUBERNETES_SERVICE_HOST"] == "cm"  # envFrom over services over base
    assert env["color"] == "blue"  # envFrom over base
    assert env["size"] == "XL"  # env over envFrom


def test_later_env_entries_replace_earlier_ones() -> None:
    env = _env({"name": "c", "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]})
    assert env["A"] == "2"


def test_empty_value_sets_an_empty_variable() -> None:
    env = _env({"name": "c", "env": [{"name": "EMPTY"}, {"name": "ALSO", "value": ""}]})
    assert env["EMPTY"] == env["ALSO"] == ""


# --- $(VAR) expansion ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x-$(A)-$(B)", "x-1-two"),
        ("$$(A)", "$(A)"),  # escaped
        ("$$$(A)", "$1"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),  # left as is
        ("$()", "$()"),
        ("$(A", "$(A"),  # unterminated
        ("$A $", "$A $"),  # not a reference
        ("$($(A))", "$($(A))"),  # the name is "$(A" , undefined
        ("cost: $$5", "cost: $5"),
    ],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "two"}) == expected


def test_env_values_expand_against_variables_defined_so_far() -> None:
    env = _env(
        {
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "app-config"}}],
            "env": [
                {"name": "EARLY", "value": "$(LATE)"},
                {"name": "LATE", "value": "late"},
                {"name": "COMBO", "value": "$(color)/$(LATE)/$(POD_IP)/$$(color)"},
                {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST)"},
            ],
        },
        services=[KUBERNETES],
    )
    assert env["EARLY"] == "$(LATE)"
    assert env["COMBO"] == "blue/late/127.128.0.5/$(color)"
    assert env["API"] == "https://127.96.0.1"


def test_argv_is_command_then_args_expanded() -> None:
    container = {
        "name": "web",
        "command": ["python", "-m", "http.server"],
        "args": ["--bind", "$(POD_IP)", "$(PORT)", "$$(POD_IP)"],
    }
    argv = container_argv(container, {"POD_IP": "127.128.0.5"})
    assert argv == ["python", "-m", "http.server", "--bind", "127.128.0.5", "$(PORT)", "$(POD_IP)"]


def test_argv_without_command_is_a_clear_config_error() -> None:
    with pytest.raises(EnvError) as caught:
        container_argv({"name": "web", "image": "nginx", "args": ["-g"]}, {})
    assert caught.value.reason == "CreateContainerConfigError"
    assert str(caught.value) == (
        'container "web" has no command: kubeling runs processes, not images; '
        "set command (and args)"
    )


# --- service links ---------------------------------------------------------------------------


def test_service_links_for_a_multi_port_service() -> None:
    web = _service(
        "web-api",
        "127.96.0.10",
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "dns-udp", "port": 53, "protocol": "UDP"},
    )
    assert service_env([web], "default") == {
        "WEB_API_SERVICE_HOST": "127.96.0.10",
        "WEB_API_SERVICE_PORT": "80",
        "WEB_API_SERVICE_PORT_HTTP": "80",
        "WEB_API_SERVICE_PORT_DNS_UDP": "53",
        "WEB_API_PORT": "tcp://127.96.0.10:80",
        "WEB_API_PORT_80_TCP": "tcp://127.96.0.10:80",
        "WEB_API_PORT_80_TCP_PROTO": "tcp",
        "WEB_API_PORT_80_TCP_PORT": "80",
        "WEB_API_PORT_80_TCP_ADDR": "127.96.0.10",
        "WEB_API_PORT_53_UDP": "udp://127.96.0.10:53",
        "WEB_API_PORT_53_UDP_PROTO": "udp",
        "WEB_API_PORT_53_UDP_PORT": "53",
        "WEB_API_PORT_53_UDP_ADDR": "127.96.0.10",
    }


def test_service_links_only_for_the_pods_namespace_with_a_cluster_ip() -> None:
    services = [
        _service("mine", "127.96.0.2", {"port": 8080}, namespace="shop"),
        _service("theirs", "127.96.0.3", {"port": 8080}, namespace="other"),
        _service("headless", "None", {"port": 80}, namespace="shop"),
        _service("external", "", {"port": 80}, namespace="shop"),
        KUBERNETES,
    ]
    env = service_env(services, "shop")
    assert env["MINE_SERVICE_PORT"] == "8080"
    assert env["MINE_PORT"] == "tcp://127.96.0.2:8080"  # protocol defaults to TCP
    assert env["KUBERNETES_SERVICE_HOST"] == "127.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert not [k for k in env if k.startswith(("THEIRS_", "HEADLESS_", "EXTERNAL_"))]


def test_disabled_service_links_keep_only_the_kubernetes_service() -> None:
    services = [_service("mine", "127.96.0.2", {"port": 8080}, namespace="shop"), KUBERNETES]
    env = service_env(services, "shop", enable_service_links=False)
    assert {k.split("_")[0] for k in env} == {"KUBERNETES"}


def test_enable_service_links_false_on_the_pod_is_honoured() -> None:
    container = {"name": "c"}
    pod = _pod(container, enableServiceLinks=False)
    mine = _service("mine", "127.96.0.2", {"port": 8080})
    env = _env(container, pod=pod, services=[mine, KUBERNETES])
    assert "MINE_SERVICE_HOST" not in env
    assert env["KUBERNETES_SERVICE_HOST"] == "127.96.0.1"


def test_a_namespace_local_kubernetes_service_wins_over_the_default_one() -> None:
    local = _service("kubernetes", "127.96.0.9", {"port": 6443}, namespace="shop")
    for order in ([local, KUBERNETES], [KUBERNETES, local]):
        assert service_env(order, "shop")["KUBERNETES_SERVICE_HOST"] == "127.96.0.9"


# --- ConfigMap and Secret references ---------------------------------------------------------


def test_key_refs_read_configmap_and_decoded_secret() -> None:
    env = _env(
        {
            "name": "c",
            "env": [
                {
                    "name": "COLOR",
                    "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "color"}},
                },
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            ],
        }
    )
    assert (env["COLOR"], env["PW"]) == ("blue", "s3cret")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"configMapKeyRef": {"name": "app-config", "key": "nope"}},
            "couldn't find key nope in ConfigMap default/app-config",
        ),
        ({"configMapKeyRef": {"name": "missing", "key": "color"}}, 'configmap "missing" not found'),
        (
            {"secretKeyRef": {"name": "db", "key": "nope"}},
            "couldn't find key nope in Secret default/db",
        ),
        ({"secretKeyRef": {"name": "gone", "key": "password"}}, 'secret "gone" not found'),
    ],
)
def test_missing_required_references_fail_with_the_kubelets_message(
    source: dict[str, Any], message: str
) -> None:
    error = _error({"name": "c", "env": [{"name": "V", "valueFrom": source}]})
    assert error.reason == "CreateContainerConfigError"
    assert str(error) == error.message == message


@pytest.mark.parametrize(
    "source",
    [
        {"configMapKeyRef": {"name": "app-config", "key": "nope", "optional": True}},
        {"configMapKeyRef": {"name": "missing", "key": "color", "optional": True}},
        {"secretKeyRef": {"name": "db", "key": "nope", "optional": True}},
        {"secretKeyRef": {"name": "gone", "key": "password", "optional": True}},
    ],
)
def test_missing_optional_references_leave_the_variable_alone(source: dict[str, Any]) -> None:
    env = _env({"name": "c", "env": [{"name": "V", "valueFrom": source}]})
    assert "V" not in env
    env = _env(
        {"name": "c", "env": [{"name": "V", "value": "kept"}, {"name": "V", "valueFrom": source}]}
    )
    assert env["V"] == "kept"


def test_missing_env_from_sources_fail_unless_optional() -> None:
    assert str(_error({"name": "c", "envFrom": [{"configMapRef": {"name": "x"}}]})) == (
        'configmap "x" not found'
    )
    assert str(_error({"name": "c", "envFrom": [{"secretRef": {"name": "y"}}]})) == (
        'secret "y" not found'
    )
    env = _env(
        {
            "name": "c",
            "envFrom": [
                {"configMapRef": {"name": "x", "optional": True}},
                {"secretRef": {"name": "y", "optional": True}},
            ],
        }
    )
    assert set(env) == {"POD_IP"}


def test_env_from_keeps_relaxed_names_and_reports_impossible_ones() -> None:
    env = _env({"name": "c", "envFrom": [{"configMapRef": {"name": "odd-keys"}, "prefix": "P_"}]})
    assert env["P_app.properties"] == "x=1"
    assert "P_bad=key" not in env
    [skipped] = env.skipped
    assert skipped.reason == "InvalidEnvironmentVariableNames"
    assert skipped.message == (
        "Keys [P_bad=key] from the EnvFrom configMap default/odd-keys were skipped since they "
        "are considered invalid environment variable names."
    )


def test_a_nul_byte_cannot_enter_the_environment() -> None:
    error = _error({"name": "c", "envFrom": [{"secretRef": {"name": "nul"}}]})
    assert error.message == (
        'environment variable "blob" contains a NUL byte, which no process environment can hold'
    )


# --- downward API ----------------------------------------------------------------------------


def _field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def test_field_refs() -> None:
    paths = {
        "NAME": "metadata.name",
        "NS": "metadata.namespace",
        "UID": "metadata.uid",
        "APP": "metadata.labels['app']",
        "TEAM": "metadata.annotations['team']",
        "NONE": "metadata.labels['absent']",
        "NODE": "spec.nodeName",
        "SA": "spec.serviceAccountName",
        "IP": "status.podIP",
        "IPS": "status.podIPs",
        "HOST": "status.hostIP",
        "HOSTS": "status.hostIPs",
    }
    env = _env({"name": "c", "env": [{"name": n, **_field(p)} for n, p in paths.items()]})
    assert {n: env[n] for n in paths} == {
        "NAME": "web-0",
        "NS": "default",
        "UID": "uid-1",
        "APP": "web",
        "TEAM": "core",
        "NONE": "",
        "NODE": "node-a",
        "SA": "sa",
        "IP": "127.128.0.5",
        "IPS": "127.128.0.5",
        "HOST": "127.0.0.1",
        "HOSTS": "127.0.0.1",
    }


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("spec.bogus", "field label not supported: spec.bogus"),
        ("spec.nodeName['x']", "field label does not support subscript: spec.nodeName['x']"),
        ("status.phase", "unsupported fieldPath: status.phase"),
    ],
)
def test_unsupported_field_refs_fail(path: str, message: str) -> None:
    assert str(_error({"name": "c", "env": [{"name": "V", **_field(path)}]})) == message


def _resource(resource: str, divisor: str | None = None, **ref: Any) -> dict[str, Any]:
    selector = {"resource": resource, **ref, **({"divisor": divisor} if divisor else {})}
    return {"valueFrom": {"resourceFieldRef": selector}}


RESOURCES = {
    "limits": {"cpu": "1500m", "memory": "100M"},
    "requests": {"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "1Gi"},
}


@pytest.mark.parametrize(
    ("resource", "divisor", "expected"),
    [
        ("limits.cpu", None, "2"),  # 1.5 cores rounds up
        ("limits.cpu", "1m", "1500"),
        ("requests.cpu", None, "1"),
        ("requests.cpu", "1m", "250"),
        ("requests.cpu", "100m", "3"),  # 2.5 rounds up
        ("limits.memory", None, "100000000"),
        ("limits.memory", "1Mi", "96"),  # 95.37 rounds up
        ("requests.memory", "1Mi", "64"),
        ("requests.memory", "1M", "68"),  # 67.1 rounds up
        ("requests.ephemeral-storage", "1Mi", "1024"),
        ("limits.cpu", "0", "2"),  # a zero divisor means 1
    ],
)
def test_resource_field_refs_divide_and_round_up(
    resource: str, divisor: str | None, expected: str
) -> None:
    container = {
        "name": "c",
        "resources": RESOURCES,
        "env": [{"name": "V", **_resource(resource, divisor)}],
    }
    assert _env(container)["V"] == expected


def test_unset_limits_read_the_node_allocatable() -> None:
    container = {
        "name": "c",
        "env": [
            {"name": "CPU", **_resource("limits.cpu", "1m")},
            {"name": "MEM", **_resource("limits.memory", "1Mi")},
            {"name": "REQ", **_resource("requests.cpu", "1m")},
        ],
    }
    env = _env(container, node_allocatable={"cpu": "8", "memory": "16Gi"})
    assert (env["CPU"], env["MEM"], env["REQ"]) == ("8000", "16384", "0")


def test_resource_field_ref_of_another_container() -> None:
    sidecar = {"name": "side", "resources": {"limits": {"memory": "32Mi"}}}
    main = {
        "name": "main",
        "env": [{"name": "V", **_resource("limits.memory", "1Mi", containerName="side")}],
    }
    assert _env(main, pod=_pod(main, sidecar))["V"] == "32"
    lost = {"name": "main", "env": [{"name": "V", **_resource("limits.cpu", containerName="x")}]}
    assert str(_error(lost)) == "container x not found"


def test_unsupported_resource_fails() -> None:
    error = _error({"name": "c", "env": [{"name": "V", **_resource("limits.gpu")}]})
    assert error.message == "unsupported container resource : limits.gpu"
