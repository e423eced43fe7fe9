"""Pod volumes as files: each volume type, the kubelet's error texts and the atomic writer."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from kubeling.agent import volumes as volumes_module
from kubeling.agent.volumes import DATA_DIR, PLACEHOLDER_TOKEN, PodVolumes, VolumeError


class Objects:
    """ConfigMaps and Secrets by (namespace, name), as the agent's cache would serve them."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def put(self, name: str, **fields: Any) -> None:
        self.items[("ns", name)] = {"metadata": {"name": name, "namespace": "ns"}, **fields}

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.items.get((namespace, name))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def make_pod(volumes: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-0", "namespace": "ns", "uid": "u-1", **meta},
        "spec": {
            "volumes": volumes,
            "containers": [
                {
                    "name": "app",
                    "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "250m"}},
                }
            ],
        },
    }


def make(
    tmp_path: Path,
    volumes: list[dict[str, Any]],
    configmaps: Objects | None = None,
    secrets: Objects | None = None,
    **meta: Any,
) -> PodVolumes:
    return PodVolumes(
        tmp_path / "pod",
        make_pod(volumes, **meta),
        configmap=(configmaps or Objects()).get,
        secret=(secrets or Objects()).get,
        pod_ip="127.128.0.5",
        host_ip="127.0.0.1",
        allocatable={"cpu": "4", "memory": "8Gi"},
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def config_volume(**source: Any) -> dict[str, Any]:
    return {"name": "config", "configMap": {"name": "app", **source}}


# -- emptyDir and hostPath ---------------------------------------------------------------------


def test_empty_dir_is_a_directory_that_survives_a_second_setup(tmp_path: Path) -> None:
    vols = make(tmp_path, [{"name": "cache", "emptyDir": {"medium": "Memory"}}])
    path = vols.setup()["cache"]
    assert path == tmp_path / "pod/volumes/kubernetes.io~empty-dir/cache"
    (path / "kept").write_text("x")
    vols.setup()
    assert (path / "kept").read_text() == "x"
    assert vols.env() == {"KUBELING_VOLUME_CACHE": str(path)}


def test_volume_without_a_source_is_an_empty_dir_as_the_api_defaults_it(tmp_path: Path) -> None:
    assert make(tmp_path, [{"name": "scratch"}]).setup()["scratch"].is_dir()


def test_env_names_are_upper_cased_with_dashes_and_dots_as_underscores(tmp_path: Path) -> None:
    vols = make(tmp_path, [{"name": "my-data.v1", "emptyDir": {}}])
    assert list(vols.env()) == ["KUBELING_VOLUME_MY_DATA_V1"]


def test_host_path_directory_or_create_creates_and_teardown_leaves_it(tmp_path: Path) -> None:
    host = tmp_path / "host/data"
    vols = make(
        tmp_path, [{"name": "h", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}}]
    )
    assert vols.setup() == {"h": host}
    assert host.is_dir()
    assert vols.env() == {"KUBELING_VOLUME_H": str(host)}
    vols.teardown()
    assert host.is_dir()


def test_host_path_file_or_create_creates_an_empty_file(tmp_path: Path) -> None:
    host = tmp_path / "lock"
    make(tmp_path, [{"name": "h", "hostPath": {"path": str(host), "type": "FileOrCreate"}}]).setup()
    assert host.is_file()
    assert host.read_bytes() == b""


@pytest.mark.parametrize(
    ("kind", "exists", "message"),
    [
        ("Directory", None, "is not a directory"),
        ("Directory", "file", "is not a directory"),
        ("File", "dir", "is not a file"),
        ("Socket", "file", "is not a socket file"),
        ("Nonsense", "file", "Nonsense is an invalid volume type"),
    ],
)
def test_host_path_type_checks_fail_as_the_kubelet_does(
    tmp_path: Path, kind: str, exists: str | None, message: str
) -> None:
    host = tmp_path / "target"
    if exists == "file":
        host.write_text("")
    elif exists == "dir":
        host.mkdir()
    vols = make(tmp_path, [{"name": "h", "hostPath": {"path": str(host), "type": kind}}])
    with pytest.raises(VolumeError, match=message) as caught:
        vols.setup()
    assert caught.value.reason == "FailedMount"
    assert 'for volume "h"' in str(caught.value)


def test_unsupported_volume_types_fail_mount_naming_the_type(tmp_path: Path) -> None:
    vols = make(tmp_path, [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}])
    with pytest.raises(VolumeError) as caught:
        vols.setup()
    assert caught.value.reason == "FailedMount"
    assert caught.value.volume == "data"
    assert 'kubeling does not support volume type "persistentVolumeClaim"' in str(caught.value)


# -- configMap and secret ----------------------------------------------------------------------


def test_config_map_keys_become_files_behind_the_atomic_writer_layout(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"app.conf": "port=80\n"}, binaryData={"logo": b64("\x89PNG")})
    path = make(tmp_path, [config_volume()], cms).setup()["config"]
    assert path == tmp_path / "pod/volumes/kubernetes.io~configmap/config"
    assert (path / "app.conf").read_text() == "port=80\n"
    assert (path / "logo").read_bytes() == "\x89PNG".encode()
    assert os.readlink(path / "app.conf") == "..data/app.conf"
    assert os.readlink(path / DATA_DIR).startswith("..20")
    assert mode(path / "app.conf") == 0o644
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith("..")) == [
        "app.conf",
        "logo",
    ]


def test_items_map_keys_to_paths_with_their_own_modes(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"a": "A", "b": "B", "c": "C"})
    volume = config_volume(
        defaultMode=0o600,
        items=[{"key": "a", "path": "conf/a.txt", "mode": 0o400}, {"key": "b", "path": "b"}],
    )
    path = make(tmp_path, [volume], cms).setup()["config"]
    assert (path / "conf/a.txt").read_text() == "A"
    assert mode(path / "conf/a.txt") == 0o400
    assert mode(path / "b") == 0o600
    assert not (path / "c").exists()
    assert os.readlink(path / "conf") == "..data/conf"


def test_missing_config_map_fails_unless_optional(tmp_path: Path) -> None:
    with pytest.raises(VolumeError) as caught:
        make(tmp_path, [config_volume()]).setup()
    assert str(caught.value) == (
        'MountVolume.SetUp failed for volume "config" : configmap "app" not found'
    )
    path = make(tmp_path, [config_volume(optional=True)]).setup()["config"]
    assert [p.name for p in path.iterdir() if not p.name.startswith("..")] == []


def test_missing_item_key_fails_unless_optional(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"a": "A"})
    items = [{"key": "a", "path": "a"}, {"key": "nope", "path": "n"}]
    with pytest.raises(VolumeError, match="configmap references non-existent config key: nope"):
        make(tmp_path, [config_volume(items=items)], cms).setup()
    path = make(tmp_path, [config_volume(items=items, optional=True)], cms).setup()["config"]
    assert (path / "a").read_text() == "A"
    assert not (path / "n").exists()


def test_secret_data_is_decoded_and_default_mode_applies(tmp_path: Path) -> None:
    secrets = Objects()
    secrets.put("db", data={"password": b64("s3cr3t"), "user": b64("admin")})
    volume = {"name": "creds", "secret": {"secretName": "db", "defaultMode": 0o400}}
    path = make(tmp_path, [volume], secrets=secrets).setup()["creds"]
    assert path == tmp_path / "pod/volumes/kubernetes.io~secret/creds"
    assert (path / "password").read_text() == "s3cr3t"
    assert mode(path / "user") == 0o400


def test_secret_errors_name_the_secret_and_the_key(tmp_path: Path) -> None:
    volume = {"name": "creds", "secret": {"secretName": "db"}}
    with pytest.raises(VolumeError, match='secret "db" not found'):
        make(tmp_path, [volume]).setup()
    secrets = Objects()
    secrets.put("db", data={"password": "not base64!"})
    with pytest.raises(VolumeError, match="'password' is not valid base64"):
        make(tmp_path, [volume], secrets=secrets).setup()
    secrets.put("db", data={"password": b64("pw")})
    volume["secret"]["items"] = [{"key": "user", "path": "u"}]
    with pytest.raises(VolumeError, match="references non-existent secret key: user"):
        make(tmp_path, [volume], secrets=secrets).setup()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../escape", "must not contain '..'"),
        ("a/../../escape", "must not contain '..'"),
        ("/etc/passwd", "must be relative path"),
        ("..data", "must not start with '..'"),
    ],
)
def test_item_paths_that_leave_the_volume_are_rejected(
    tmp_path: Path, path: str, message: str
) -> None:
    cms = Objects()
    cms.put("app", data={"a": "A"})
    with pytest.raises(VolumeError, match=f"invalid path: {message}"):
        make(tmp_path, [config_volume(items=[{"key": "a", "path": path}])], cms).setup()
    assert not (tmp_path / "escape").exists()


# -- downward API and projected ----------------------------------------------------------------


def downward(*items: dict[str, Any]) -> dict[str, Any]:
    return {"name": "info", "downwardAPI": {"items": list(items)}}


def field(path: str, field_path: str) -> dict[str, Any]:
    return {"path": path, "fieldRef": {"fieldPath": field_path}}


def resource(path: str, name: str, divisor: str | None = None) -> dict[str, Any]:
    ref = {"containerName": "app", "resource": name}
    return {"path": path, "resourceFieldRef": ref | ({"divisor": divisor} if divisor else {})}


def test_downward_api_writes_metadata_as_the_kubelet_formats_it(tmp_path: Path) -> None:
    volume = downward(
        field("name", "metadata.name"),
        field("namespace", "metadata.namespace"),
        field("uid", "metadata.uid"),
        field("labels", "metadata.labels"),
        field("annotations", "metadata.annotations"),
        field("tier", "metadata.labels['tier']"),
        field("ip", "status.podIP"),
    )
    labels = {"tier": "web", "app": "shop"}
    annotations = {"note": 'say "hi"\nbye', "z": "é"}
    vols = make(tmp_path, [volume], labels=labels, annotations=annotations)
    path = vols.setup()["info"]
    assert path == tmp_path / "pod/volumes/kubernetes.io~downward-api/info"
    read = {name: (path / name).read_text() for name in ("name", "namespace", "uid", "tier", "ip")}
    assert read == {
        "name": "web-0",
        "namespace": "ns",
        "uid": "u-1",
        "tier": "web",
        "ip": "127.128.0.5",
    }
    assert (path / "labels").read_text() == 'app="shop"\ntier="web"'
    assert (path / "annotations").read_text() == 'note="say \\"hi\\"\\nbye"\nz="é"'


def test_downward_api_resources_round_up_to_the_divisor(tmp_path: Path) -> None:
    volume = downward(
        resource("cpu_req", "requests.cpu"),
        resource("cpu_req_m", "requests.cpu", "1m"),
        resource("mem_limit_mi", "limits.memory", "1Mi"),
        resource("cpu_limit", "limits.cpu"),
        resource("mem_req", "requests.memory"),
    )
    path = make(tmp_path, [volume]).setup()["info"]
    values = {p.name: p.read_text() for p in path.iterdir() if not p.name.startswith("..")}
    # 250m rounds up to one CPU; the unset cpu limit is the node's allocatable (4).
    assert values == {
        "cpu_req": "1",
        "cpu_req_m": "250",
        "mem_limit_mi": "128",
        "cpu_limit": "4",
        "mem_req": "0",
    }


def test_downward_api_errors_name_what_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(VolumeError, match=r"unsupported fieldPath: metadata\.generation"):
        make(tmp_path, [downward(field("g", "metadata.generation"))]).setup()
    bad = resource("x", "limits.cpu") | {"resourceFieldRef": {"containerName": "db"}}
    with pytest.raises(VolumeError, match="container db not found"):
        make(tmp_path, [downward(bad)]).setup()
    with pytest.raises(VolumeError, match=r"unsupported container resource : limits\.gpu"):
        make(tmp_path, [downward(resource("x", "limits.gpu"))]).setup()


def test_projected_combines_sources_and_writes_a_placeholder_token(tmp_path: Path) -> None:
    cms, secrets = Objects(), Objects()
    cms.put("kube-root-ca.crt", data={"ca.crt": "CA"})
    secrets.put("db", data={"password": b64("pw")})
    volume = {
        "name": "kube-api-access",
        "projected": {
            "defaultMode": 0o440,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {"secret": {"name": "db"}},
                {"downwardAPI": {"items": [field("namespace", "metadata.namespace")]}},
                {"configMap": {"name": "absent", "optional": True}},
            ],
        },
    }
    path = make(tmp_path, [volume], cms, secrets).setup()["kube-api-access"]
    assert path == tmp_path / "pod/volumes/kubernetes.io~projected/kube-api-access"
    assert (path / "token").read_text() == PLACEHOLDER_TOKEN
    assert (path / "ca.crt").read_text() == "CA"
    assert (path / "password").read_text() == "pw"
    assert (path / "namespace").read_text() == "ns"
    assert mode(path / "ca.crt") == 0o440


def test_projected_source_missing_fails_unless_optional(tmp_path: Path) -> None:
    volume = {"name": "p", "projected": {"sources": [{"secret": {"name": "gone"}}]}}
    with pytest.raises(VolumeError, match='volume "p" : secret "gone" not found'):
        make(tmp_path, [volume]).setup()


# -- refresh -----------------------------------------------------------------------------------


def test_refresh_swaps_content_atomically_through_the_same_path(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"a": "old-a", "b": "old-b"})
    vols = make(tmp_path, [config_volume(), {"name": "cache", "emptyDir": {}}], cms)
    path = vols.setup()["config"]
    old_target = os.readlink(path / DATA_DIR)
    with (path / "a").open() as held_a, (path / "b").open() as held_b:
        cms.put("app", data={"a": "new-a", "b": "new-b"})
        assert vols.refresh() == ["config"]
        # A reader that opened the old files still reads one consistent old snapshot.
        assert (held_a.read(), held_b.read()) == ("old-a", "old-b")
    assert ((path / "a").read_text(), (path / "b").read_text()) == ("new-a", "new-b")
    assert os.readlink(path / DATA_DIR) != old_target
    assert not (path / old_target).exists()  # the stale timestamped directory is gone
    assert sorted(p.name for p in path.iterdir() if p.name.startswith("..20")) == [
        os.readlink(path / DATA_DIR)
    ]


def test_refresh_writes_the_new_content_whole_before_the_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cms = Objects()
    cms.put("app", data={"a": "old-a", "b": "old-b"})
    vols = make(tmp_path, [config_volume()], cms)
    path = vols.setup()["config"]
    seen: list[tuple[str, str, str, str]] = []
    real_replace = os.replace

    def observe(src: Any, dst: Any) -> None:
        new_dir = path / os.readlink(src)
        seen.append(
            (
                (path / "a").read_text(),
                (path / "b").read_text(),
                (new_dir / "a").read_text(),
                (new_dir / "b").read_text(),
            )
        )
        real_replace(src, dst)

    monkeypatch.setattr(volumes_module.os, "replace", observe)
    cms.put("app", data={"a": "new-a", "b": "new-b"})
    vols.refresh()
    assert seen == [("old-a", "old-b", "new-a", "new-b")]


def test_refresh_of_unchanged_content_swaps_nothing(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"a": "A"})
    vols = make(tmp_path, [config_volume()], cms)
    path = vols.setup()["config"]
    before = os.readlink(path / DATA_DIR)
    cms.put("app", data={"a": "A"}, metadata={"name": "app", "resourceVersion": "2"})
    assert vols.refresh() == []
    assert os.readlink(path / DATA_DIR) == before


def test_refresh_removes_files_gone_from_the_source_and_adds_new_ones(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"a": "A", "b": "B"})
    vols = make(tmp_path, [config_volume()], cms)
    path = vols.setup()["config"]
    cms.put("app", data={"b": "B", "c": "C"})
    assert vols.refresh() == ["config"]
    assert not os.path.lexists(path / "a")
    assert (path / "c").read_text() == "C"


def test_refresh_with_new_labels_rewrites_only_the_downward_api_volume(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"a": "A"})
    vols = make(tmp_path, [config_volume(), downward(field("labels", "metadata.labels"))], cms)
    path = vols.setup()["info"]
    pod = make_pod(vols.pod["spec"]["volumes"], labels={"version": "2"})
    assert vols.refresh(pod) == ["info"]
    assert (path / "labels").read_text() == 'version="2"'


def test_refresh_keeps_old_content_when_the_source_disappears(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"a": "A"})
    vols = make(tmp_path, [config_volume()], cms)
    path = vols.setup()["config"]
    cms.items.clear()
    with pytest.raises(VolumeError, match='configmap "app" not found'):
        vols.refresh()
    assert (path / "a").read_text() == "A"


# -- mounts, teardown, references --------------------------------------------------------------


def test_mount_path_env_resolves_each_mount_path_with_sub_paths(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"app.conf": "x"})
    vols = make(tmp_path, [config_volume(), {"name": "cache", "emptyDir": {}}], cms)
    paths = vols.setup()
    container = {
        "name": "app",
        "env": [{"name": "POD", "value": "web-0"}],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/config"},
            {"name": "config", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
            {"name": "cache", "mountPath": "/var/cache/app", "subPathExpr": "pods/$(POD)"},
        ],
    }
    assert vols.mount_path_env(container) == {
        "KUBELING_MOUNT_ETC_CONFIG": str(paths["config"]),
        "KUBELING_MOUNT_ETC_APP_CONF": str(paths["config"] / "app.conf"),
        "KUBELING_MOUNT_VAR_CACHE_APP": str(paths["cache"] / "pods/web-0"),
    }
    assert (paths["cache"] / "pods/web-0").is_dir()  # created, as the kubelet does
    assert vols.mounts(container)["/etc/app.conf"].read_text() == "x"


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ({"name": "nope", "mountPath": "/x"}, 'cannot find volume "nope"'),
        ({"name": "cache", "mountPath": "/x", "subPath": "../up"}, "must not contain '..'"),
        ({"name": "cache", "mountPath": "/x", "subPath": "/abs"}, "must not be an absolute path"),
    ],
)
def test_bad_volume_mounts_are_container_config_errors(
    tmp_path: Path, mount: dict[str, Any], message: str
) -> None:
    vols = make(tmp_path, [{"name": "cache", "emptyDir": {}}])
    vols.setup()
    with pytest.raises(VolumeError, match=message) as caught:
        vols.mount_path_env({"name": "app", "volumeMounts": [mount]})
    assert caught.value.reason == "CreateContainerConfigError"


def test_teardown_removes_every_volume_even_read_only_directories(tmp_path: Path) -> None:
    cms = Objects()
    cms.put("app", data={"a": "A"})
    vols = make(tmp_path, [config_volume(), {"name": "cache", "emptyDir": {}}], cms)
    paths = vols.setup()
    locked = paths["cache"] / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner/file").write_text("x")
    locked.chmod(0o500)
    vols.teardown()
    assert not (tmp_path / "pod/volumes").exists()
    assert (tmp_path / "pod").is_dir()
    vols.teardown()  # idempotent


def test_referenced_objects_lists_volume_and_env_sources() -> None:
    pod = make_pod(
        [
            config_volume(),
            {"name": "s", "secret": {"secretName": "db"}},
            {
                "name": "p",
                "projected": {
                    "sources": [{"configMap": {"name": "ca"}}, {"secret": {"name": "tls"}}]
                },
            },
            {"name": "e", "emptyDir": {}},
        ]
    )
    pod["spec"]["containers"][0]["env"] = [
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "api", "key": "k"}}}
    ]
    pod["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    assert PodVolumes.referenced_objects(pod) == {
        ("configmap", "app"),
        ("secret", "db"),
        ("configmap", "ca"),
        ("secret", "tls"),
        ("secret", "api"),
        ("configmap", "settings"),
    }
