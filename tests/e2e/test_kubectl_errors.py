"""What kubectl prints when the server refuses a request: the same as against Kubernetes."""

from __future__ import annotations

import pytest
import yaml
from kubectl_support import Kubectl, configmap, deployment

pytestmark = pytest.mark.e2e


def _create(kubectl: Kubectl, manifest: dict, **kwargs: str):
    return kubectl("create", "-f", "-", input=yaml.safe_dump(manifest), check=False, **kwargs)


def test_unknown_field_is_a_bad_request_under_default_validation(kubectl: Kubectl) -> None:
    manifest = deployment("web")
    manifest["spec"]["frobnicate"] = True

    result = kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)

    assert result.returncode == 1
    assert "Error from server (BadRequest)" in result.stderr
    assert 'unknown field "spec.frobnicate"' in result.stderr
    assert kubectl.absent("deployment", "web")


def test_missing_required_field_is_invalid_with_its_field_path(kubectl: Kubectl) -> None:
    manifest = deployment("web")
    del manifest["spec"]["template"]["spec"]["containers"][0]["image"]

    result = _create(kubectl, manifest)

    assert result.returncode == 1
    assert 'The Deployment "web" is invalid' in result.stderr
    assert "spec.template.spec.containers[0].image: Required value" in result.stderr
    assert kubectl.absent("deployment", "web")


def test_every_invalid_field_is_listed(kubectl: Kubectl) -> None:
    manifest = deployment("web")
    manifest["spec"]["replicas"] = -1
    del manifest["spec"]["template"]["spec"]["containers"][0]["image"]

    result = _create(kubectl, manifest)

    assert result.returncode == 1
    assert 'The Deployment "web" is invalid:' in result.stderr
    assert "* spec.replicas: Invalid value: -1: must be greater than or equal to 0" in (
        result.stderr
    )
    assert "* spec.template.spec.containers[0].image: Required value" in result.stderr


def test_bad_name_is_invalid(kubectl: Kubectl) -> None:
    result = _create(kubectl, configmap("Bad_Name", a="1"))

    assert result.returncode == 1
    assert 'The ConfigMap "Bad_Name" is invalid' in result.stderr
    assert 'metadata.name: Invalid value: "Bad_Name"' in result.stderr
    assert "RFC 1123" in result.stderr


def test_get_of_a_missing_object_is_not_found(kubectl: Kubectl) -> None:
    result = kubectl("get", "configmap", "nope", check=False)

    assert result.returncode == 1
    assert 'Error from server (NotFound): configmaps "nope" not found' in result.stderr


def test_get_of_a_missing_deployment_names_the_group(kubectl: Kubectl) -> None:
    result = kubectl("get", "deployment", "nope", check=False)

    assert result.returncode == 1
    assert 'Error from server (NotFound): deployments.apps "nope" not found' in result.stderr


def test_unknown_resource_type_is_reported(kubectl: Kubectl) -> None:
    result = kubectl("get", "widgets", check=False)

    assert result.returncode == 1
    assert 'the server doesn\'t have a resource type "widgets"' in result.stderr


def test_create_of_an_existing_object_already_exists(kubectl: Kubectl) -> None:
    _create(kubectl, configmap("settings", a="1"))

    result = _create(kubectl, configmap("settings", a="2"))

    assert result.returncode == 1
    assert "Error from server (AlreadyExists)" in result.stderr
    assert 'configmaps "settings" already exists' in result.stderr
    assert kubectl.get_json("configmap", "settings")["data"] == {"a": "1"}


def test_create_generator_of_an_existing_object_already_exists(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "settings", "--from-literal=a=1")

    result = kubectl("create", "configmap", "settings", "--from-literal=a=2", check=False)

    # The generators print the server's message in their own words.
    assert result.returncode == 1
    assert 'error: failed to create configmap: configmaps "settings" already exists' in (
        result.stderr
    )


def test_writing_into_a_missing_namespace_is_not_found(kubectl: Kubectl) -> None:
    missing = f"{kubectl.ns}-missing"

    result = _create(kubectl, configmap("settings", a="1"), namespace=missing)

    assert result.returncode == 1
    assert "Error from server (NotFound)" in result.stderr
    assert f'namespaces "{missing}" not found' in result.stderr
