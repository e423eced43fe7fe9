"""Semantic rules for pod volumes, as pkg/apis/core/validation checks them.

Volume sources are a union: exactly one source per volume, and each source has its own
required fields. The error paths below keep Kubernetes' historical quirks (the downward API
files of a volume are reported at `downwardAPI.path` without an item index, a second source
named `downwardAPI` is reported at `downwarAPI`), because they are what users see and search.
"""

from __future__ import annotations

from typing import Any

from kubeling.api import names
from kubeling.api.quantity import QuantityError, from_json
from kubeling.api.rules_meta import (
    Causes,
    duplicate,
    each,
    forbidden,
    integer,
    invalid,
    items,
    not_supported,
    obj,
    required,
    text,
)

FILE_MODE = "must be a number between 0 and 0777 (octal), both inclusive"

# Every volume source, in the order Kubernetes examines them, with the path segment it uses
# when a second source is found.
_SOURCES = (
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
)
_SOURCE_ORDER = {key: index for index, (key, _) in enumerate(_SOURCES)}
_SOURCE_SEGMENTS = dict(_SOURCES)
_HOST_PATH_TYPES = [
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
]
_VOLUME_FIELD_PATHS = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
]


def blank(parent: dict[str, Any], key: str) -> bool:
    """Present but empty: the case rules report, since structure reports absent fields."""
    return key in parent and parent[key] is not None and not parent[key]


def volumes(value: Any, path: str) -> tuple[set[str], Causes]:
    """ValidateVolumes: the names of the valid volumes, and the errors."""
    valid: set[str] = set()
    seen: set[str] = set()
    out: Causes = []
    for index, vol in items(value):
        here = f"{path}[{index}]"
        errs = _source(vol, here)
        name = text(vol.get("name"))
        if blank(vol, "name"):
            errs.append(required(f"{here}.name"))
        elif name:
            errs += each(f"{here}.name", name, names.dns1123_label(name))
        if name and name in seen:
            errs.append(duplicate(f"{here}.name", name))
        if name:
            seen.add(name)
        if errs:
            out += errs
        elif name:
            valid.add(name)
    return valid, out


def _source(vol: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    count = 0
    present = sorted(
        (k for k, v in vol.items() if k in _SOURCE_ORDER and v is not None),
        key=_SOURCE_ORDER.__getitem__,
    )
    for key in present:
        source, segment = vol[key], _SOURCE_SEGMENTS[key]
        if count:
            out.append(forbidden(f"{path}.{segment}", "may not specify more than 1 volume type"))
            continue
        count += 1
        out += _one_source(key, obj(source), f"{path}.{key}")
    if not count:
        out.append(required(path, "must specify a volume type"))
    return out


def _one_source(key: str, source: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    if key == "emptyDir" and source.get("sizeLimit") is not None:
        try:
            negative = from_json(source["sizeLimit"]).value < 0
        except QuantityError:
            negative = False
        if negative:
            out.append(
                forbidden(f"{path}.sizeLimit", "SizeLimit field must be a valid resource quantity")
            )
    elif key == "hostPath":
        if blank(source, "path"):
            return [required(f"{path}.path")]
        out += no_backsteps(f"{path}.path", text(source.get("path")))
        kind = source.get("type")
        if kind is not None and kind not in _HOST_PATH_TYPES:
            out.append(not_supported(f"{path}.type", kind, _HOST_PATH_TYPES))
    elif key in ("secret", "configMap"):
        name_key = "secretName" if key == "secret" else "name"
        if not text(source.get(name_key)):
            out.append(required(f"{path}.{name_key}"))
        out += file_mode(f"{path}.defaultMode", source.get("defaultMode"))
        for i, item in items(source.get("items")):
            out += key_to_path(item, f"{path}.items[{i}]")
    elif key == "persistentVolumeClaim" and blank(source, "claimName"):
        out.append(required(f"{path}.claimName"))
    elif key == "nfs":
        for field in ("server", "path"):
            if blank(source, field):
                out.append(required(f"{path}.{field}"))
        nfs_path = text(source.get("path"))
        if not nfs_path.startswith("/"):
            out.append(invalid(f"{path}.path", nfs_path, "must be an absolute path"))
    elif key == "csi" and blank(source, "driver"):
        out.append(required(f"{path}.driver"))
    elif key == "downwardAPI":
        out += file_mode(f"{path}.defaultMode", source.get("defaultMode"))
        for _, item in items(source.get("items")):
            out += _downward_file(item, path)
    elif key == "projected":
        out += file_mode(f"{path}.defaultMode", source.get("defaultMode"))
        out += _projection(source, path)
    return out


def file_mode(path: str, mode: Any) -> Causes:
    if mode is not None and not 0 <= integer(mode) <= 0o777:
        return [invalid(path, mode, FILE_MODE)]
    return []


def no_backsteps(path: str, target: str) -> Causes:
    if ".." in target.replace("\\", "/").split("/"):
        return [invalid(path, target, "must not contain '..'")]
    return []


def local_descending(path: str, target: str) -> Causes:
    out = [invalid(path, target, "must be a relative path")] if target.startswith("/") else []
    return out + no_backsteps(path, target)


def local_non_reserved(path: str, target: str) -> Causes:
    out = local_descending(path, target)
    if target.startswith("..") and not target.startswith("../"):
        out.append(invalid(path, target, "must not start with '..'"))
    return out


def key_to_path(item: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    for field in ("key", "path"):
        if blank(item, field):
            out.append(required(f"{path}.{field}"))
    out += local_non_reserved(f"{path}.path", text(item.get("path")))
    return out + file_mode(f"{path}.mode", item.get("mode"))


def _downward_file(item: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    if blank(item, "path"):
        out.append(required(f"{path}.path"))
    out += local_non_reserved(f"{path}.path", text(item.get("path")))
    if item.get("fieldRef") is not None:
        out += field_selector(obj(item["fieldRef"]), _VOLUME_FIELD_PATHS, f"{path}.fieldRef")
        if item.get("resourceFieldRef") is not None:
            out.append(
                invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )
            )
    elif item.get("resourceFieldRef") is not None:
        ref = obj(item["resourceFieldRef"])
        if not text(ref.get("containerName")):
            out.append(required(f"{path}.resourceFieldRef.containerName"))
        else:
            out += resource_field_selector(ref, f"{path}.resourceFieldRef")
    else:
        out.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    return out + file_mode(f"{path}.mode", item.get("mode"))


def _projection(source: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    paths: set[str] = set()
    for index, src in items(source.get("sources")):
        here = f"{path}.sources[{index}]"
        count = 0
        for key in ("secret", "configMap"):
            if src.get(key) is None:
                continue
            count += 1
            part = obj(src[key])
            if not text(part.get("name")):
                out.append(required(f"{here}.{key}.name"))
            for i, item in items(part.get("items")):
                out += key_to_path(item, f"{here}.{key}.items[{i}]")
                target = text(item.get("path"))
                if target and target in paths:
                    out.append(invalid(path, text(part.get("name")), "conflicting duplicate paths"))
                paths.add(target)
        if src.get("downwardAPI") is not None:
            count += 1
            for _, item in items(obj(src["downwardAPI"]).get("items")):
                out += _downward_file(item, f"{here}.downwardAPI")
        if src.get("serviceAccountToken") is not None:
            count += 1
            token = obj(src["serviceAccountToken"])
            seconds = integer(token.get("expirationSeconds"))
            if seconds < 600:
                out.append(
                    invalid(
                        f"{here}.serviceAccountToken.expirationSeconds",
                        seconds,
                        "may not specify a duration less than 10 minutes",
                    )
                )
            if seconds > 1 << 32:
                out.append(
                    invalid(
                        f"{here}.serviceAccountToken.expirationSeconds",
                        seconds,
                        "may not specify a duration larger than 2^32 seconds",
                    )
                )
            if blank(token, "path"):
                out.append(required(f"{path}.path"))
            else:
                out += local_non_reserved(f"{path}.path", text(token.get("path")))
        if src.get("clusterTrustBundle") is not None:
            count += 1
        if count > 1:
            out.append(forbidden(here, "may not specify more than 1 volume type per source"))
    return out


_CONVERTIBLE = frozenset(
    (
        "metadata.annotations",
        "metadata.labels",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "spec.schedulerName",
        "status.phase",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
        "spec.host",
    )
)


def field_selector(ref: dict[str, Any], supported: list[str], path: str) -> Causes:
    """validateObjectFieldSelector (fieldRef of env vars and downward API files)."""
    if not text(ref.get("apiVersion")):
        return [required(f"{path}.apiVersion")]
    field_path = text(ref.get("fieldPath"))
    if not field_path:
        return [required(f"{path}.fieldPath")] if blank(ref, "fieldPath") else []
    problem = ""
    base, subscript = field_path, ""
    if field_path.endswith("']") and "['" in field_path[:-2] and not field_path.startswith("['"):
        base, subscript = field_path[:-2].split("['", 1)
        if base not in ("metadata.annotations", "metadata.labels"):
            problem = "field label does not support subscript: " + field_path
    elif field_path not in _CONVERTIBLE:
        problem = "field label not supported: " + field_path
    if ref.get("apiVersion") != "v1":
        problem = "unsupported pod version: " + text(ref.get("apiVersion"))
    if problem:
        return [invalid(f"{path}.fieldPath", field_path, "error converting fieldPath: " + problem)]
    if subscript:
        key = subscript.lower() if base == "metadata.annotations" else subscript
        return each(path, key, names.qualified_name(key))
    internal = "spec.nodeName" if field_path == "spec.host" else field_path
    if internal not in supported:
        return [not_supported(f"{path}.fieldPath", internal, supported)]
    return []


_RESOURCE_FIELDS = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
]


def resource_field_selector(ref: dict[str, Any], path: str) -> Causes:
    resource = text(ref.get("resource"))
    if not resource:
        return [required(f"{path}.resource")] if blank(ref, "resource") else []
    if resource in _RESOURCE_FIELDS or resource.startswith(
        ("requests.hugepages-", "limits.hugepages-")
    ):
        return []
    return [not_supported(f"{path}.resource", resource, _RESOURCE_FIELDS)]
