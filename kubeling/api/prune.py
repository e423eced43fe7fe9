"""Dropping fields the schema does not know, as Kubernetes' decoder does for built-in kinds.

With `fieldValidation=Warn` or `Ignore`, an unknown field is accepted and then silently not
stored (the typed Go structs have nowhere to put it). kubeling stores JSON documents, so it
must drop such fields explicitly, or they would round-trip where Kubernetes loses them.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.schema import Schema, resolve


def prune_unknown(value: Any, schema: Schema | None) -> Any:
    """A copy of `value` without the fields `schema` does not declare (recursively)."""
    schema = resolve(schema)
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in props:
                out[key] = prune_unknown(item, props[key])
            elif isinstance(extra, dict):
                out[key] = prune_unknown(item, extra)
            elif extra is True or (extra is None and not props):
                out[key] = item
        return out
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [prune_unknown(item, items) for item in value]
    return value
