"""The official Kubernetes object schemas, as shipped by `kubernetes-validate`.

The package carries the OpenAPI-derived JSON schema of every built-in type, in a strict flavour
(`additionalProperties: false`), together with the extensions the API server itself uses:
`x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy` for strategic merge patch and
`x-kubernetes-list-map-keys` for server-side apply. We read them once, lazily, and offer two
things: the root schema of a kind and `resolve()` to follow `$ref`s. Validation, patching and
the OpenAPI documents are all built on these two calls.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson

# The schema set matching the Kubernetes minor we report in /version.
SCHEMA_VERSION = "v1.32.0-local-strict"
_REF_PREFIX = "#/$defs/"

Schema = dict[str, Any]


@functools.cache
def definitions() -> dict[str, Schema]:
    """All definitions by their OpenAPI name (e.g. `io.k8s.api.apps.v1.Deployment`)."""
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema" / SCHEMA_VERSION
    data = orjson.loads((root / "_definitions.json").read_bytes())
    defs: dict[str, Schema] = data["$defs"]
    return defs


@functools.cache
def _by_gvk() -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            out[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return out


def definition_name(group: str, version: str, kind: str) -> str | None:
    """The definition name of a top-level kind, or None when the schemas do not know it."""
    return _by_gvk().get((group, version, kind))


def kind_schema(group: str, version: str, kind: str) -> Schema | None:
    name = definition_name(group, version, kind)
    return definitions()[name] if name else None


def resolve(schema: Schema | None) -> Schema | None:
    """Follow `$ref` links (and single-entry `allOf` wrappers) to the schema they name."""
    while schema is not None:
        ref = schema.get("$ref")
        if ref is None:
            all_of = schema.get("allOf")
            if all_of and len(all_of) == 1:
                schema = all_of[0]
                continue
            return schema
        if not ref.startswith(_REF_PREFIX):
            raise ValueError(f"unsupported schema reference {ref!r}")
        schema = definitions().get(ref[len(_REF_PREFIX) :])
    return None


def property_schema(schema: Schema | None, name: str) -> Schema | None:
    """The resolved schema of field `name` of an object schema, or None if unknown."""
    schema = resolve(schema)
    if schema is None:
        return None
    props = schema.get("properties")
    if props and name in props:
        return resolve(props[name])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return resolve(extra)
    return None


def items_schema(schema: Schema | None) -> Schema | None:
    """The resolved schema of the items of an array schema."""
    schema = resolve(schema)
    if schema is None:
        return None
    items = schema.get("items")
    return resolve(items) if isinstance(items, dict) else None


def types_of(schema: Schema) -> set[str]:
    """The JSON types a schema admits (`null` included when the schema allows it)."""
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return set(t)
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        out: set[str] = set()
        for alt in alternatives:
            resolved = resolve(alt)
            if resolved is not None:
                out |= types_of(resolved)
        return out
    return set()
