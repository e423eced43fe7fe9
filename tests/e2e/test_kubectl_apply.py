"""`kubectl apply` (client- and server-side), `create -f`, `replace` and `diff`."""

from __future__ import annotations

import re

import pytest
import yaml
from kubectl_support import Kubectl, configmap, deployment

pytestmark = pytest.mark.e2e


def _container(live: dict, name: str) -> dict:
    containers = live["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def test_apply_creates_the_object(kubectl: Kubectl) -> None:
    out = kubectl.apply_manifest(deployment("web"))

    assert out.strip() == "deployment.apps/web created"
    live = kubectl.get_json("deployment", "web")
    assert live["spec"]["replicas"] == 2
    assert _container(live, "web")["image"] == "nginx:1.25"
    annotations = live["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in annotations


def test_second_apply_patches_changes_and_merges_lists_by_name(kubectl: Kubectl) -> None:
    env_a = [{"name": "A", "value": "1"}]
    kubectl.apply_manifest(deployment("web", env=env_a))
    # Someone else adds a container: apply's three-way merge must keep it, since it never
    # was in the applied configuration.
    kubectl(
        "patch",
        "deployment",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}',
    )

    env_ab = [*env_a, {"name": "B", "value": "2"}]
    out = kubectl.apply_manifest(deployment("web", image="nginx:1.26", env=env_ab))

    assert out.strip() == "deployment.apps/web configured"
    live = kubectl.get_json("deployment", "web")
    names = [c["name"] for c in live["spec"]["template"]["spec"]["containers"]]
    assert sorted(names) == ["sidecar", "web"]
    web = _container(live, "web")
    assert web["image"] == "nginx:1.26"
    assert web["env"] == env_ab
    assert _container(live, "sidecar")["image"] == "busybox:1.36"


def test_third_apply_of_the_same_manifest_is_unchanged(kubectl: Kubectl) -> None:
    kubectl.apply_manifest(deployment("web"))
    kubectl.apply_manifest(deployment("web", image="nginx:1.26"))
    before = kubectl.get_json("deployment", "web")["metadata"]["resourceVersion"]

    out = kubectl.apply_manifest(deployment("web", image="nginx:1.26"))

    assert out.strip() == "deployment.apps/web unchanged"
    assert kubectl.get_json("deployment", "web")["metadata"]["resourceVersion"] == before


def test_server_side_apply_creates_then_updates(kubectl: Kubectl) -> None:
    out = kubectl.apply_manifest(configmap("settings", color="blue"), "--server-side")
    assert out.strip() == "configmap/settings serverside-applied"
    assert kubectl.get_json("configmap", "settings")["data"] == {"color": "blue"}

    out = kubectl.apply_manifest(configmap("settings", color="red", size="L"), "--server-side")

    assert out.strip() == "configmap/settings serverside-applied"
    assert kubectl.get_json("configmap", "settings")["data"] == {"color": "red", "size": "L"}


def test_server_side_apply_of_a_deployment_updates_the_image(kubectl: Kubectl) -> None:
    kubectl.apply_manifest(deployment("web"), "--server-side")

    kubectl.apply_manifest(deployment("web", image="nginx:1.27"), "--server-side")

    live = kubectl.get_json("deployment", "web")
    assert _container(live, "web")["image"] == "nginx:1.27"
    assert live["metadata"]["generation"] == 2


def test_create_from_a_file_creates_the_object(kubectl: Kubectl) -> None:
    out = kubectl.create_manifest(deployment("web"))

    assert out.strip() == "deployment.apps/web created"
    live = kubectl.get_json("deployment", "web")
    assert live["metadata"]["uid"]
    assert live["metadata"]["generation"] == 1


def test_replace_puts_the_edited_object(kubectl: Kubectl) -> None:
    kubectl.create_manifest(configmap("settings", color="blue"))
    live = yaml.safe_load(kubectl("get", "configmap", "settings", "-o", "yaml").stdout)
    live["data"] = {"color": "green"}

    out = kubectl("replace", "-f", "-", input=yaml.safe_dump(live)).stdout

    assert out.strip() == "configmap/settings replaced"
    assert kubectl.get_json("configmap", "settings")["data"] == {"color": "green"}


def test_diff_exits_1_and_prints_the_change_when_the_object_differs(kubectl: Kubectl) -> None:
    kubectl.apply_manifest(deployment("web"))

    result = kubectl(
        "diff",
        "-f",
        "-",
        input=yaml.safe_dump(deployment("web", image="nginx:1.26")),
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert re.search(r"^-\s+- image: nginx:1\.25$", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^\+\s+- image: nginx:1\.26$", result.stdout, re.MULTILINE), result.stdout
    # A spec change: the would-be object has the next generation.
    assert re.search(r"^\+\s+generation: 2$", result.stdout, re.MULTILINE), result.stdout
    # diff is a dry run: the live object is unchanged.
    assert _container(kubectl.get_json("deployment", "web"), "web")["image"] == "nginx:1.25"


def test_diff_exits_0_with_no_output_when_the_object_matches(kubectl: Kubectl) -> None:
    kubectl.apply_manifest(deployment("web"))

    result = kubectl("diff", "-f", "-", input=yaml.safe_dump(deployment("web")), check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def _multi_document() -> str:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    return yaml.safe_dump_all([configmap("settings", a="1"), deployment("web"), service])


def test_apply_of_a_multi_document_file_creates_every_object(kubectl: Kubectl) -> None:
    out = kubectl("apply", "-f", "-", input=_multi_document()).stdout

    assert out.splitlines() == [
        "configmap/settings created",
        "deployment.apps/web created",
        "service/web created",
    ]


def test_delete_from_a_file_deletes_every_object(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=_multi_document())

    out = kubectl("delete", "-f", "-", input=_multi_document()).stdout

    assert len(out.splitlines()) == 3
    assert kubectl.absent("configmap", "settings")
    assert kubectl.absent("deployment", "web")
    assert kubectl.absent("service", "web")


def test_apply_with_server_dry_run_stores_nothing(kubectl: Kubectl) -> None:
    out = kubectl.apply_manifest(configmap("settings", a="1"), "--dry-run=server")
    assert out.strip() == "configmap/settings created (server dry run)"
    assert kubectl.absent("configmap", "settings")

    kubectl.apply_manifest(configmap("settings", a="1"))
    kubectl.apply_manifest(configmap("settings", a="2"), "--dry-run=server")

    assert kubectl.get_json("configmap", "settings")["data"] == {"a": "1"}


def test_create_from_a_large_file(kubectl: Kubectl) -> None:
    manifest = configmap("big", blob="x" * (400 * 1024))

    out = kubectl.create_manifest(manifest)

    assert out.strip() == "configmap/big created"
    assert len(kubectl.get_json("configmap", "big")["data"]["blob"]) == 400 * 1024
