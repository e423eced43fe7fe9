"""Strategic merge patch (`application/strategic-merge-patch+json`), the patch kubectl sends.

A strategic merge patch is a JSON merge patch whose lists know how to merge. The schema of the
kind says, per list field, whether the list is replaced wholesale (the default) or merged
(`x-kubernetes-patch-strategy: merge`), and by which field its items are matched
(`x-kubernetes-patch-merge-key`, e.g. containers by `name`). Lists of primitives with the merge
strategy (finalizers) are merged as sets. `null` deletes a key, as in merge patch.

The patch may carry directives, which never reach the stored object:

    $patch: replace                 in a map: the map becomes the rest of this patch map;
                                    as a list item: the list becomes the other patch items
    $patch: delete                  in a map: the key holding the map is removed; as a list
                                    item: the live items with this merge key are removed
    $patch: merge                   the default; accepted and ignored (Kubernetes rejects it)
    $retainKeys: [k, ...]           keys of the live map not listed are cleared first
    $setElementOrder/<f>: [...]     the final order of list <f> (kubectl apply sends it)
    $deleteFromPrimitiveList/<f>    values to remove from primitive list <f>

Ordering follows k8s.io/apimachinery `strategicpatch`: items named by `$setElementOrder` come in
that order; other live items keep their relative order and are slotted in by their live
position; without the directive the patch's own order plays that role.

Errors carry the code Kubernetes returns (k8s.io/apiserver handlers/patch.go): 400 for a
malformed directive (`$retainKeys` not a list or not naming every patched key, a directive
key without `/<field>`), 422 for lists of lists, and 500 with no reason where Kubernetes lets
the raw error through: a list item without its merge key, an unknown `$patch` value, a patch
list out of step with its `$setElementOrder`, list items of mixed types.

Deliberate differences from Kubernetes, each where it would otherwise store junk or fail:
`$patch: merge` is accepted; `$patch: delete` on a map removes the key instead of leaving
`{}`; directives inside values new to the object are applied rather than stored verbatim; and
a `$deleteFromPrimitiveList` that is not a list is a 400 rather than silently ignored.

The helpers at the bottom (cloning, identity, the schema lookup, the ordering merge and the
error constructors) are shared with `kubeling.api.patch`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final

import orjson

from kubeling.api.errors import ApiError, Cause, bad_request
from kubeling.api.schema import Schema, items_schema, resolve

PATCH: Final = "$patch"
RETAIN_KEYS: Final = "$retainKeys"
SET_ORDER: Final = "$setElementOrder"
DELETE_PRIMITIVES: Final = "$deleteFromPrimitiveList"
MERGE_KEY: Final = "x-kubernetes-patch-merge-key"
STRATEGY: Final = "x-kubernetes-patch-strategy"

_ABSENT: Final = object()

Key = Callable[[Any], Hashable]


def apply_strategic_merge_patch(
    doc: dict[str, Any], patch: Any, schema: Schema | None
) -> dict[str, Any]:
    """Apply a strategic merge patch to `doc` and return the patched copy.

    `schema` is the root schema of the kind (`kind_schema(...)`); with None every list is
    replaced, as for a JSON merge patch, but directives are still honoured and stripped.
    """
    if not isinstance(patch, dict):
        raise bad_request(f"a strategic merge patch must be a JSON object, not {json_type(patch)}")
    return _merge_map(clone(doc), patch, schema)


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], schema: Schema | None
) -> dict[str, Any]:
    """Merge `patch` into `original`, which this call owns and modifies; `patch` is only read."""
    if PATCH in patch:
        directive = patch[PATCH]
        if directive == "replace":
            return _merge_map({}, {k: v for k, v in patch.items() if k != PATCH}, schema)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise unmapped(f"unknown patch type: {directive} in map: {dump(patch)}")
    if RETAIN_KEYS in patch:
        _retain_keys(original, patch)
    ordered: set[str] = set()
    for key, value in patch.items():
        if key.startswith(SET_ORDER):
            ordered.add(_set_element_order(original, patch, key, value, schema))
    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key in ordered or key in (PATCH, RETAIN_KEYS) or key.startswith(SET_ORDER):
            continue
        if key.startswith(DELETE_PRIMITIVES):
            deletions.append((key, value))
        else:
            _merge_field(original, key, value, schema)
    for key, value in deletions:
        _delete_primitives(original, key, value)
    return original


def _merge_field(original: dict[str, Any], key: str, value: Any, schema: Schema | None) -> None:
    if value is None or (isinstance(value, dict) and value.get(PATCH) == "delete"):
        original.pop(key, None)
        return
    sub, ext = field_schema(schema, key)
    strategy = _strategies(ext)
    current = original.get(key, _ABSENT)
    if isinstance(current, dict) and isinstance(value, dict) and "replace" not in strategy:
        original[key] = _merge_map(current, value, sub)
    elif isinstance(current, list) and isinstance(value, list) and "merge" in strategy:
        original[key] = _merge_list(current, value, items_schema(sub), ext.get(MERGE_KEY))
    else:
        original[key] = _fresh(value, sub)


def _fresh(value: Any, schema: Schema | None) -> Any:
    """A patch value for a place with nothing to merge into: a copy with directives applied."""
    if isinstance(value, dict):
        return _merge_map({}, value, schema)
    if isinstance(value, list):
        item = items_schema(schema)
        return [_fresh(v, item) for v in value if not (isinstance(v, dict) and PATCH in v)]
    return value


def _merge_list(
    original: list[Any], patch: list[Any], item_schema: Schema | None, merge_key: str | None
) -> list[Any]:
    if not original and not patch:
        return original
    key = keyer(merge_key)
    if _element_kind(original, patch) == "scalar":
        seen: set[Hashable] = set()
        merged = []
        for value in [*original, *patch]:
            if key(value) not in seen:
                seen.add(key(value))
                merged.append(value)
        return _reorder(merged, patch, original, key)
    if not merge_key:
        raise unmapped("cannot merge lists without merge key")
    original, rest = _special_items(original, patch, merge_key, item_schema)
    merged = list(original)
    where = positions(merged, key)
    for item in rest:
        if merge_key not in item:
            raise unmapped(no_merge_key(item, merge_key))
        at = where.get(key(item))
        if at is None:
            where[key(item)] = len(merged)
            merged.append(_fresh(item, item_schema))
        else:
            merged[at] = _merge_map(merged[at], item, item_schema)
    return _reorder(merged, rest, original, key)


def _special_items(
    original: list[Any], patch: list[Any], merge_key: str, item_schema: Schema | None
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Apply the `$patch` list items; return the live list left and the ordinary patch items."""
    rest: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        if PATCH not in item:
            rest.append(item)
        elif item[PATCH] == "delete":
            if merge_key not in item:
                raise unmapped(no_merge_key(item, merge_key))
            gone = ident(item[merge_key])
            original = [o for o in original if not (merge_key in o and ident(o[merge_key]) == gone)]
        elif item[PATCH] == "replace":
            replace = True
        elif item[PATCH] != "merge":
            raise unmapped(f"unknown patch type: {item[PATCH]} in map: {dump(item)}")
    if replace:
        return [_fresh(item, item_schema) for item in rest], []
    return original, rest


def _element_kind(*lists: list[Any]) -> str | None:
    kinds = set()
    for values in lists:
        for value in values:
            if isinstance(value, list):
                raise rejected("lists of lists are not supported")
            kinds.add("map" if isinstance(value, dict) else "scalar")
    if len(kinds) > 1:
        raise unmapped(f"list element types are not identical: {dump(list(lists))}")
    return kinds.pop() if kinds else None


def _reorder(merged: list[Any], order: list[Any], live: list[Any], key: Key) -> list[Any]:
    """Items named in `order` in that order, the others by their live position around them."""
    wanted = positions(order, key)
    live_at = positions(live, key)
    named = sorted((m for m in merged if key(m) in wanted), key=lambda m: wanted[key(m)])
    others = sorted(
        (m for m in merged if key(m) not in wanted), key=lambda m: live_at.get(key(m), len(live))
    )
    return interleave(
        [(live_at.get(key(m)), m) for m in others], [(live_at.get(key(m)), m) for m in named]
    )


def _set_element_order(
    original: dict[str, Any],
    patch: dict[str, Any],
    directive: str,
    order: Any,
    schema: Schema | None,
) -> str:
    """Merge list field `<f>` of `$setElementOrder/<f>` now and order it; return `<f>`."""
    name = _directive_field(directive, SET_ORDER, "invalid patch format of setElementOrder list")
    current = original.get(name, _ABSENT)
    incoming = patch.get(name, _ABSENT)
    for value in (order, current, incoming):
        if value is not _ABSENT and not isinstance(value, list):
            raise unmapped(f"expected a list for {name!r}, but received {json_type(value)}")
    sub, ext = field_schema(schema, name)
    merge_key = ext.get(MERGE_KEY)
    if incoming is not _ABSENT:
        _check_order(incoming, order, keyer(merge_key), directive)
    if current is _ABSENT and incoming is _ABSENT:
        return name
    if incoming is _ABSENT:
        merged = current
    elif current is not _ABSENT and "merge" in _strategies(ext):
        merged = _merge_list(current, incoming, items_schema(sub), merge_key)
    else:
        merged = _fresh(incoming, sub)
    original[name] = _reorder(
        merged, order, [] if current is _ABSENT else current, keyer(merge_key)
    )
    return name


def _check_order(patch_list: list[Any], order: list[Any], key: Key, directive: str) -> None:
    """The ordinary patch items must appear in `$setElementOrder` and in the same order."""
    if not order or not patch_list:
        return
    wanted = [key(o) for o in order]
    at = 0
    for item in patch_list:
        if isinstance(item, dict) and PATCH in item:
            continue
        while at < len(wanted) and wanted[at] != key(item):
            at += 1
        if at == len(wanted):
            raise unmapped(
                f"the order in patch list {dump(patch_list)} doesn't match {directive} list "
                f"{dump(order)}"
            )
        at += 1


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    keep = patch[RETAIN_KEYS]
    if not isinstance(keep, list):
        raise bad_request("invalid patch format of retainKeys: $retainKeys must be a list")
    allowed = {k for k in keep if isinstance(k, str)}
    for key, value in patch.items():
        if (
            value is None
            or key in (PATCH, RETAIN_KEYS)
            or key.startswith((SET_ORDER, DELETE_PRIMITIVES))
        ):
            continue
        if key not in allowed:
            raise bad_request(f"invalid patch format of retainKeys: {key!r} is not in $retainKeys")
    for key in [k for k in original if k not in allowed]:
        del original[key]


def _delete_primitives(original: dict[str, Any], directive: str, values: Any) -> None:
    message = "invalid patch format of primitive list"
    name = _directive_field(directive, DELETE_PRIMITIVES, message)
    if not isinstance(values, list):
        raise bad_request(f"{message}: {directive} must be a list")
    current = original.get(name)
    if isinstance(current, list):
        gone = {ident(v) for v in values}
        original[name] = [v for v in current if ident(v) not in gone]


def _directive_field(directive: str, prefix: str, message: str) -> str:
    if not directive.startswith(prefix + "/"):
        raise bad_request(f"{message}: {directive!r} must have the form {prefix}/<field>")
    return directive[len(prefix) + 1 :]


def _strategies(ext: dict[str, Any]) -> set[str]:
    return set(str(ext.get(STRATEGY, "")).split(","))


# Helpers shared with kubeling.api.patch.


def clone(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, scalars), much faster than `copy.deepcopy`."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def ident(value: Any) -> Hashable:
    """A hashable identity with JSON equality: `true` differs from `1`, `1` equals `1.0`."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, dict):
        return ("map", tuple(sorted((k, ident(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", tuple(ident(v) for v in value))
    return (type(value).__name__, value)


def keyer(merge_key: str | None) -> Key:
    """Identity of list items: the merge key's value for maps, else the value itself."""

    def key(item: Any) -> Hashable:
        if merge_key and isinstance(item, dict):
            # An item without its merge key matches nothing.
            return ident(item[merge_key]) if merge_key in item else ("unkeyed", id(item))
        return ident(item)

    return key


def positions(items: Iterable[Any], key: Key) -> dict[Hashable, int]:
    """Where each identity first occurs in `items`."""
    out: dict[Hashable, int] = {}
    for at, item in enumerate(items):
        out.setdefault(key(item), at)
    return out


def interleave(
    live_only: Sequence[tuple[int | None, Any]], from_patch: Sequence[tuple[int | None, Any]]
) -> list[Any]:
    """Merge two ordered runs of `(live position, item)`, keeping the order within each.

    A live-only item goes before the next patch item only when both have a live position and
    its own is smaller, which is Kubernetes' rule: new items gravitate to the front.
    """
    out: list[Any] = []
    i = j = 0
    while i < len(live_only) and j < len(from_patch):
        left, right = live_only[i][0], from_patch[j][0]
        if left is not None and right is not None and left < right:
            out.append(live_only[i][1])
            i += 1
        else:
            out.append(from_patch[j][1])
            j += 1
    out.extend(item for _, item in live_only[i:])
    out.extend(item for _, item in from_patch[j:])
    return out


def field_schema(schema: Schema | None, name: str) -> tuple[Schema | None, dict[str, Any]]:
    """The resolved schema of field `name` and its `x-kubernetes-*` extensions.

    Unlike `schema.property_schema`, this keeps the extensions written next to a `$ref`
    (Deployment `strategy` is `{"$ref": ..., "x-kubernetes-patch-strategy": "retainKeys"}`).
    """
    parent = resolve(schema)
    if parent is None:
        return None, {}
    raw = (parent.get("properties") or {}).get(name)
    if raw is None and isinstance(parent.get("additionalProperties"), dict):
        raw = parent["additionalProperties"]
    if not isinstance(raw, dict):
        return None, {}
    resolved = resolve(raw)
    ext = {k: v for k, v in (resolved or {}).items() if k.startswith("x-kubernetes-")}
    ext.update((k, v) for k, v in raw.items() if k.startswith("x-kubernetes-"))
    return resolved, ext


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def dump(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def no_merge_key(item: Any, merge_key: str) -> str:
    return f"map: {dump(item)} does not contain declared merge key: {merge_key}"


def rejected(detail: str) -> ApiError:
    """422 as Kubernetes reports a patch it cannot apply: a generic message, the detail as cause."""
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        causes=[Cause("", detail, "UnexpectedServerResponse")],
    )


def unmapped(message: str) -> ApiError:
    """A malformed patch. Kubernetes passes these through as a reason-less 500; they are the
    client's mistake, so kubeling answers 400 BadRequest (500 is kept for server bugs)."""
    return ApiError(400, "BadRequest", message)
