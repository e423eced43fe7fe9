"""Writing with kubectl: `create <generator>` (protobuf bodies), `label`, `annotate`, `patch`,
`scale` and `delete`."""

from __future__ import annotations

import base64
import json
import re

import pytest
from kubectl_support import Kubectl, configmap, deployment

pytestmark = pytest.mark.e2e


def replicaset(name: str, replicas: int = 1) -> dict:
    template = deployment(name)["spec"]["template"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
    }


# -- create generators (protobuf request bodies) ---------------------------------------------


def test_create_configmap_from_literals(kubectl: Kubectl) -> None:
    out = kubectl(
        "create", "configmap", "settings", "--from-literal=color=blue", "--from-literal=size=L"
    ).stdout

    assert out.strip() == "configmap/settings created"
    live = kubectl.get_json("configmap", "settings")
    assert live["data"] == {"color": "blue", "size": "L"}
    assert live["metadata"]["uid"]


def test_create_secret_generic_stores_base64_data(kubectl: Kubectl) -> None:
    out = kubectl("create", "secret", "generic", "creds", "--from-literal=password=hunter2").stdout

    assert out.strip() == "secret/creds created"
    live = kubectl.get_json("secret", "creds")
    assert live["type"] == "Opaque"
    assert base64.b64decode(live["data"]["password"]) == b"hunter2"


def test_create_service_clusterip(kubectl: Kubectl) -> None:
    out = kubectl("create", "service", "clusterip", "web", "--tcp=80:8080").stdout

    assert out.strip() == "service/web created"
    live = kubectl.get_json("service", "web")
    assert live["spec"]["ports"][0]["port"] == 80
    assert live["spec"]["ports"][0]["targetPort"] == 8080
    assert live["spec"]["clusterIP"].startswith("127.")


def test_create_serviceaccount(kubectl: Kubectl) -> None:
    out = kubectl("create", "serviceaccount", "robot").stdout

    assert out.strip() == "serviceaccount/robot created"
    assert kubectl.get_json("serviceaccount", "robot")["metadata"]["name"] == "robot"


def test_create_namespace(kubectl: Kubectl) -> None:
    name = f"{kubectl.ns}-extra"

    out = kubectl("create", "namespace", name).stdout

    assert out.strip() == f"namespace/{name} created"
    live = kubectl.get_json("namespace", name)
    assert live["status"]["phase"] == "Active"


def test_create_ingress_with_rules_tls_class_and_default_backend(kubectl: Kubectl) -> None:
    args = (
        "create",
        "ingress",
        "shop",
        "--class=kubeling",
        "--rule=shop.example.com/cart*=cart:8080,tls=shop-cert",
        "--rule=/exact=api:http",
        "--default-backend=fallback:80",
        "--annotation=team=web",
    )
    wanted = json.loads(kubectl(*args, "--dry-run=client", "-o", "json").stdout)

    out = kubectl(*args).stdout

    assert out.strip() == "ingress.networking.k8s.io/shop created"
    live = kubectl.get_json("ingress", "shop")
    assert live["spec"] == wanted["spec"]
    assert live["spec"]["rules"][0]["http"]["paths"][0]["pathType"] == "Prefix"
    assert live["spec"]["rules"][1]["http"]["paths"][0]["backend"]["service"]["port"] == {
        "name": "http"
    }
    assert live["spec"]["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-cert"}]
    assert live["metadata"]["annotations"] == {"team": "web"}


def test_run_creates_a_pod(kubectl: Kubectl) -> None:
    out = kubectl("run", "shell", "--image=busybox:1.36", "--labels=app=shell").stdout

    assert out.strip() == "pod/shell created"
    live = kubectl.get_json("pod", "shell")
    assert live["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert live["status"]["phase"] == "Pending"


def test_expose_creates_a_service_selecting_the_deployment(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))

    out = kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080").stdout

    assert out.strip() == "service/web exposed"
    spec = kubectl.get_json("service", "web")["spec"]
    assert spec["selector"] == {"app": "web"}
    assert (spec["ports"][0]["port"], spec["ports"][0]["targetPort"]) == (80, 8080)
    assert spec["type"] == "ClusterIP"


# -- label, annotate -------------------------------------------------------------------------


def test_label_adds_a_label(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))

    out = kubectl("label", "deployment", "web", "tier=frontend").stdout

    assert out.strip() == "deployment.apps/web labeled"
    labels = kubectl.get_json("deployment", "web")["metadata"]["labels"]
    assert labels == {"app": "web", "tier": "frontend"}


def test_label_with_a_minus_removes_the_label(kubectl: Kubectl) -> None:
    manifest = configmap("settings", a="1")
    manifest["metadata"]["labels"] = {"tier": "frontend", "team": "blue"}
    kubectl.create_manifest(manifest)

    kubectl("label", "configmap", "settings", "tier-")

    assert kubectl.get_json("configmap", "settings")["metadata"]["labels"] == {"team": "blue"}


def test_annotate_adds_an_annotation(kubectl: Kubectl) -> None:
    kubectl.create_manifest(configmap("settings", a="1"))

    out = kubectl("annotate", "configmap", "settings", "owner=alice").stdout

    assert out.strip() == "configmap/settings annotated"
    annotations = kubectl.get_json("configmap", "settings")["metadata"]["annotations"]
    assert annotations["owner"] == "alice"


def test_label_does_not_bump_generation(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))

    kubectl("label", "deployment", "web", "tier=frontend")
    kubectl("annotate", "deployment", "web", "owner=alice")

    assert kubectl.get_json("deployment", "web")["metadata"]["generation"] == 1


# -- patch -----------------------------------------------------------------------------------


def test_strategic_merge_patch_merges_containers_by_name(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))

    out = kubectl(
        "patch",
        "deployment",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"},'
        '{"name":"sidecar","image":"busybox:1.36"}]}}}}',
    ).stdout

    assert out.strip() == "deployment.apps/web patched"
    live = kubectl.get_json("deployment", "web")
    containers = {c["name"]: c for c in live["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"web", "sidecar"}
    assert containers["web"]["image"] == "nginx:1.26"
    # The fields the patch did not mention are kept.
    assert containers["web"]["ports"][0]["containerPort"] == 80
    assert live["metadata"]["generation"] == 2


def test_merge_patch_replaces_lists_and_merges_maps(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))

    kubectl(
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        '{"metadata":{"labels":{"tier":"fe"}},'
        '"spec":{"template":{"spec":{"containers":[{"name":"only","image":"busybox:1.36"}]}}}}',
    )

    live = kubectl.get_json("deployment", "web")
    assert live["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    containers = live["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("only", "busybox:1.36")]


def test_json_patch_applies_its_operations(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web", replicas=2))

    kubectl(
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":4},'
        '{"op":"add","path":"/metadata/labels/tier","value":"fe"}]',
    )

    live = kubectl.get_json("deployment", "web")
    assert live["spec"]["replicas"] == 4
    assert live["metadata"]["labels"]["tier"] == "fe"


def test_set_image_updates_the_container_image(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))

    out = kubectl("set", "image", "deployment/web", "web=nginx:1.27").stdout

    assert out.strip() == "deployment.apps/web image updated"
    live = kubectl.get_json("deployment", "web")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert live["metadata"]["generation"] == 2


def test_edit_saves_what_the_editor_changed(
    kubectl: Kubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubectl.create_manifest(deployment("web"))
    monkeypatch.setenv("KUBE_EDITOR", "sed -i s/nginx:1.25/nginx:1.26/")

    out = kubectl("edit", "deployment", "web").stdout

    assert out.strip() == "deployment.apps/web edited"
    live = kubectl.get_json("deployment", "web")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"


def test_patch_of_the_status_subresource_changes_only_status(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web", replicas=2))

    kubectl(
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"spec":{"replicas":9},"status":{"replicas":1}}',
    )

    live = kubectl.get_json("deployment", "web")
    assert live["status"]["replicas"] == 1
    assert live["spec"]["replicas"] == 2
    assert live["metadata"]["generation"] == 1


# -- rollout (no controllers: only the writes kubectl makes) --------------------------------


def test_rollout_restart_stamps_the_pod_template(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))

    out = kubectl("rollout", "restart", "deployment/web").stdout

    assert out.strip() == "deployment.apps/web restarted"
    live = kubectl.get_json("deployment", "web")
    assert (
        "kubectl.kubernetes.io/restartedAt" in live["spec"]["template"]["metadata"]["annotations"]
    )
    assert live["metadata"]["generation"] == 2


def test_rollout_pause_and_resume_set_paused(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web"))

    assert kubectl("rollout", "pause", "deployment/web").stdout.strip() == (
        "deployment.apps/web paused"
    )
    assert kubectl.get_json("deployment", "web")["spec"]["paused"] is True
    assert kubectl("rollout", "resume", "deployment/web").stdout.strip() == (
        "deployment.apps/web resumed"
    )
    assert "paused" not in kubectl.get_json("deployment", "web")["spec"]


# -- scale -----------------------------------------------------------------------------------


def test_scale_deployment_sets_replicas(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web", replicas=1))

    out = kubectl("scale", "deployment", "web", "--replicas=3").stdout

    assert out.strip() == "deployment.apps/web scaled"
    live = kubectl.get_json("deployment", "web")
    assert live["spec"]["replicas"] == 3
    assert live["metadata"]["generation"] == 2


def test_scale_with_current_replicas_puts_the_scale(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web", replicas=2))

    out = kubectl("scale", "deployment", "web", "--current-replicas=2", "--replicas=5").stdout

    assert out.strip() == "deployment.apps/web scaled"
    assert kubectl.get_json("deployment", "web")["spec"]["replicas"] == 5


def test_scale_with_wrong_current_replicas_changes_nothing(kubectl: Kubectl) -> None:
    kubectl.create_manifest(deployment("web", replicas=2))

    result = kubectl(
        "scale", "deployment", "web", "--current-replicas=3", "--replicas=5", check=False
    )

    assert result.returncode == 1
    assert "Expected replicas to be 3, was 2" in result.stderr
    assert kubectl.get_json("deployment", "web")["spec"]["replicas"] == 2


def test_scale_replicaset_sets_replicas(kubectl: Kubectl) -> None:
    kubectl.create_manifest(replicaset("web", replicas=1))

    out = kubectl("scale", "rs", "web", "--replicas=2").stdout

    assert out.strip() == "replicaset.apps/web scaled"
    assert kubectl.get_json("replicaset", "web")["spec"]["replicas"] == 2


# -- delete ----------------------------------------------------------------------------------


def test_delete_removes_the_object(kubectl: Kubectl) -> None:
    kubectl.create_manifest(configmap("settings", a="1"))

    out = kubectl("delete", "configmap", "settings").stdout

    assert re.match(r'configmap "settings" deleted', out), out
    assert kubectl.absent("configmap", "settings")


@pytest.mark.parametrize("cascade", ["orphan", "foreground", "background"])
def test_delete_accepts_every_cascade_policy(kubectl: Kubectl, cascade: str) -> None:
    kubectl.create_manifest(deployment("web"))

    out = kubectl("delete", "deployment", "web", f"--cascade={cascade}", timeout=60).stdout

    assert re.match(r'deployment\.apps "web" deleted', out), out
    assert kubectl.absent("deployment", "web")


def test_delete_by_label_removes_only_matching_objects(kubectl: Kubectl) -> None:
    for name, tier in (("front", "web"), ("back", "db")):
        manifest = configmap(name, a="1")
        manifest["metadata"]["labels"] = {"tier": tier}
        kubectl.create_manifest(manifest)

    kubectl("delete", "configmaps", "-l", "tier=web")

    remaining = kubectl("get", "configmaps", "-o", "name").stdout.split()
    assert remaining == ["configmap/back"]
