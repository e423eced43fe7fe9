"""Loading a kubeconfig into a ClientConfig, as kubectl reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from layer_support import NAMESPACES

from kubeling.client.kubeconfig import ClientConfig, KubeconfigError, load_kubeconfig
from kubeling.client.rest import Client
from kubeling.testing.cluster import TestCluster


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def _doc(current: str = "dev", **user: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [
            {
                "name": "c1",
                "cluster": {"server": "https://10.0.0.1:6443/", "certificate-authority": "ca.crt"},
            },
            {
                "name": "c2",
                "cluster": {"server": "https://10.0.0.2:6443", "insecure-skip-tls-verify": True},
            },
        ],
        "users": [{"name": "u1", "user": user or {"token": "secret"}}],
        "contexts": [
            {"name": "dev", "context": {"cluster": "c1", "user": "u1", "namespace": "team"}},
            {"name": "prod", "context": {"cluster": "c2", "user": "u1"}},
        ],
    }


def test_the_current_context_gives_server_ca_token_and_namespace(tmp_path: Path) -> None:
    config = load_kubeconfig(_write(tmp_path / "config", _doc()))

    assert config.server == "https://10.0.0.1:6443"
    assert config.ca_file == str(tmp_path / "ca.crt")  # relative to the kubeconfig
    assert config.bearer_token() == "secret"
    assert config.namespace == "team"


def test_a_named_context_overrides_the_current_one(tmp_path: Path) -> None:
    config = load_kubeconfig(_write(tmp_path / "config", _doc()), context="prod")

    assert config.server == "https://10.0.0.2:6443"
    assert config.insecure_skip_tls_verify
    assert config.namespace == "default"


def test_a_token_file_is_read_when_the_token_is_asked_for(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    config = load_kubeconfig(_write(tmp_path / "config", _doc(tokenFile="token")))

    assert config.bearer_token() == "first"
    token.write_text("rotated\n")
    assert config.bearer_token() == "rotated"


def test_kubeconfig_env_lists_several_files_and_the_first_definition_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _write(
        tmp_path / "a",
        {"current-context": "prod", "users": [{"name": "u1", "user": {"token": "from-a"}}]},
    )
    second = _write(tmp_path / "b", _doc())
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")

    config = load_kubeconfig()

    assert config.server == "https://10.0.0.2:6443"
    assert config.bearer_token() == "from-a"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"current-context": ""}, "no current-context"),
        ({"current-context": "nope"}, "context 'nope'"),
        ({"users": [{"name": "u1", "user": {"exec": {"command": "x"}}}]}, "exec"),
    ],
)
def test_unusable_kubeconfigs_are_clear_errors(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = _write(tmp_path / "config", {**_doc(), **change})
    with pytest.raises(KubeconfigError, match=message):
        load_kubeconfig(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="does not exist"):
        load_kubeconfig(tmp_path / "nope")


def test_a_server_must_be_a_url() -> None:
    with pytest.raises(KubeconfigError):
        ClientConfig(server="10.0.0.1:6443")


async def test_the_clusters_own_kubeconfig_reaches_it_verified_by_its_ca(
    cluster: TestCluster,
) -> None:
    config = load_kubeconfig(cluster.kubeconfig)
    assert config.ca_data is not None and config.ca_data.startswith(b"-----BEGIN CERTIFICATE")

    async with Client(config) as client:
        assert (await client.get(NAMESPACES, "default"))["metadata"]["name"] == "default"


async def test_a_ca_file_and_a_token_file_work_as_well_as_inline_data(
    cluster: TestCluster, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(cluster.token)
    doc = {
        "current-context": "x",
        "clusters": [
            {
                "name": "x",
                "cluster": {"server": cluster.url, "certificate-authority": str(cluster.ca_file)},
            }
        ],
        "users": [{"name": "x", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
    }
    config = load_kubeconfig(_write(tmp_path / "config", doc))

    async with Client(config) as client:
        assert (await client.get(NAMESPACES, "default"))["metadata"]["name"] == "default"


def test_bad_base64_ca_data_is_a_clear_error(tmp_path: Path) -> None:
    doc = _doc()
    doc["clusters"][0]["cluster"] = {"server": "https://x", "certificate-authority-data": "!!"}
    with pytest.raises(KubeconfigError, match="base64"):
        load_kubeconfig(_write(tmp_path / "config", doc))
