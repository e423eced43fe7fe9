"""OpenAPI v3 documents, generated from the kind registry.

kubectl's `apply`, `create -f`, `replace`, `edit` and `diff` fetch `/openapi/v3` and, per
group-version, look for the `fieldValidation` query parameter on the kind's PATCH operation.
When it is there, kubectl leaves validation to the server (`?fieldValidation=Strict`), which
is what kubeling wants: one validator, with Kubernetes' messages. So every operation here
declares its parameters and its `x-kubernetes-group-version-kind`.

The PATCH operations deliberately declare no `requestBody`: kubectl computes client-side apply
patches from its compiled-in types unless the document lists the strategic-merge media type,
and those compiled-in types are the reference we want it to use.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson

from kubeling.api.kinds import Registry, ResourceInfo

_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_LIST_PARAMS = (
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "resourceVersion",
    "resourceVersionMatch",
    "timeoutSeconds",
    "watch",
    "allowWatchBookmarks",
    "sendInitialEvents",
)


def _params(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True} for n in names
    ]


def _op(info: ResourceInfo, action: str, kind: str, *params: str) -> dict[str, Any]:
    return {
        "operationId": f"{action}{kind}",
        "parameters": _params(*params),
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": info.group,
            "version": info.version,
            "kind": info.kind,
        },
    }


def _paths(info: ResourceInfo) -> dict[str, Any]:
    ns = "/namespaces/{namespace}" if info.namespaced else ""
    root = f"/apis/{info.group}/{info.version}" if info.group else "/api/v1"
    collection = f"{root}{ns}/{info.plural}"
    item = f"{collection}/{{name}}"
    paths: dict[str, Any] = {
        collection: {
            "get": _op(info, "list", info.kind, *_LIST_PARAMS),
            "post": _op(info, "post", info.kind, *_WRITE_PARAMS),
            "delete": _op(
                info,
                "deletecollection",
                info.kind,
                *_LIST_PARAMS,
                "dryRun",
                "gracePeriodSeconds",
                "propagationPolicy",
            ),
        },
        item: {
            "get": _op(info, "get", info.kind),
            "put": _op(info, "put", info.kind, *_WRITE_PARAMS),
            "patch": _op(info, "patch", info.kind, *_WRITE_PARAMS, "force"),
            "delete": _op(
                info, "delete", info.kind, "dryRun", "gracePeriodSeconds", "propagationPolicy"
            ),
        },
    }
    for sub in info.subresources:
        if sub.name == "binding":
            continue
        paths[f"{item}/{sub.name}"] = {
            "get": _op(info, "get", info.kind),
            "put": _op(info, "put", info.kind, *_WRITE_PARAMS),
            "patch": _op(info, "patch", info.kind, *_WRITE_PARAMS, "force"),
        }
    return paths


def _group_version_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else "api/v1"


class OpenAPI:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @functools.cached_property
    def documents(self) -> dict[str, bytes]:
        """Encoded document per `api/v1` / `apis/<group>/<version>` key."""
        docs: dict[str, bytes] = {}
        for group, versions in self.registry.group_versions().items():
            for version in versions:
                paths: dict[str, Any] = {}
                for info in self.registry.in_group_version(group, version):
                    paths.update(_paths(info))
                doc = {
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes", "version": "v1.32.0"},
                    "paths": paths,
                    "components": {"schemas": {}},
                }
                docs[_group_version_key(group, version)] = orjson.dumps(doc)
        return docs

    @functools.cached_property
    def index(self) -> bytes:
        paths = {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(body)}"}
            for key, body in self.documents.items()
        }
        return orjson.dumps({"paths": paths})


def _hash(body: bytes) -> str:
    return hashlib.sha512(body).hexdigest().upper()[:128]
