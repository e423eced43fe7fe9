"""Semantic rules for ConfigMaps and Secrets.

Both hold key/value data under the same key grammar and the same 1 MiB limit, and both can be
made `immutable`, after which their data (and the flag itself) can no longer change: kubelets
stop watching immutable objects, so a later change would never reach running pods.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from kubeling.api import names
from kubeling.api.rules_meta import (
    Causes,
    forbidden,
    go_value,
    immutable,
    invalid,
    invalid_raw,
    obj,
    required,
    text,
    too_long,
)

MAX_SIZE = 1024 * 1024
_IMMUTABLE_SET = "field is immutable when `immutable` is set"
_SERVICE_ACCOUNT_NAME = "kubernetes.io/service-account.name"


def _decoded(value: Any) -> bytes:
    try:
        return base64.b64decode(text(value), validate=False)
    except (binascii.Error, ValueError):
        return b""


def config_map(cm: dict[str, Any]) -> Causes:
    out: Causes = []
    data, binary = obj(cm.get("data")), obj(cm.get("binaryData"))
    size = 0
    for key, value in data.items():
        out += [invalid(f"data[{key}]", key, m) for m in names.config_map_key(key)]
        if key in binary:
            out.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        size += len(text(value).encode())
    for key, value in binary.items():
        out += [invalid(f"binaryData[{key}]", key, m) for m in names.config_map_key(key)]
        size += len(_decoded(value))
    if size > MAX_SIZE:
        out.append(too_long("", MAX_SIZE))
    return out


def _immutable_data(new: dict[str, Any], old: dict[str, Any], keys: tuple[str, ...]) -> Causes:
    if old.get("immutable") is not True:
        return []
    out: Causes = []
    if new.get("immutable") is not True:
        out.append(forbidden("immutable", _IMMUTABLE_SET))
    for key in keys:
        if obj(new.get(key)) != obj(old.get(key)):
            out.append(forbidden(key, _IMMUTABLE_SET))
    return out


def config_map_update(new: dict[str, Any], old: dict[str, Any]) -> Causes:
    return _immutable_data(new, old, ("data", "binaryData"))


def secret(sec: dict[str, Any]) -> Causes:
    out: Causes = []
    data = obj(sec.get("data"))
    size = 0
    for key, value in data.items():
        out += [invalid(f"data[{key}]", key, m) for m in names.config_map_key(key)]
        size += len(_decoded(value))
    if size > MAX_SIZE:
        out.append(too_long("data", MAX_SIZE))
    kind = sec.get("type")
    if kind == "kubernetes.io/service-account-token":
        annotations = obj(obj(sec.get("metadata")).get("annotations"))
        if not text(annotations.get(_SERVICE_ACCOUNT_NAME)):
            out.append(required(f"metadata.annotations[{_SERVICE_ACCOUNT_NAME}]"))
    elif kind == "kubernetes.io/dockercfg":
        out += _json_key(data, ".dockercfg")
    elif kind == "kubernetes.io/dockerconfigjson":
        out += _json_key(data, ".dockerconfigjson")
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            out += [required("data[username]"), required("data[password]")]
    elif kind == "kubernetes.io/ssh-auth":
        if not _decoded(data.get("ssh-privatekey")):
            out.append(required("data[ssh-privatekey]"))
    elif kind == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if key not in data:
                out.append(required(f"data[{key}]"))
    return out


def _json_key(data: dict[str, Any], key: str) -> Causes:
    if key not in data:
        return [required(f"data[{key}]")]
    try:
        parsed = orjson.loads(_decoded(data[key]))
    except orjson.JSONDecodeError as err:
        return [invalid_raw(f"data[{key}]", go_value("<secret contents redacted>"), str(err))]
    if not isinstance(parsed, dict):
        return [
            invalid_raw(
                f"data[{key}]",
                go_value("<secret contents redacted>"),
                "json: cannot unmarshal array into Go value of type map[string]interface {}",
            )
        ]
    return []


def secret_update(new: dict[str, Any], old: dict[str, Any]) -> Causes:
    out = immutable("type", new.get("type"), old.get("type"))
    return out + _immutable_data(new, old, ("data",))
