"""The four PATCH bodies Kubernetes accepts, applied to JSON objects.

Why: kubectl edits objects by PATCH, never by GET-modify-PUT. `apply` and `set image` send a
strategic merge patch, `scale` and `label` a merge patch, `rollout undo` a JSON patch, and
`apply --server-side` an apply configuration. The API server must reproduce each one exactly,
or kubectl's second `apply` reorders containers, duplicates env vars or drops fields.

Contract: every function is pure. It reads the live object and the patch (already decoded from
JSON or YAML), never modifies either, and returns a new object that shares nothing with them.
A bad patch raises `ApiError` with the code Kubernetes uses (see each function). Validating
the result, defaulting, preconditions and storing it are the caller's business.

    Content-Type                              function                      semantics
    application/json-patch+json               apply_json_patch              RFC 6902
    application/merge-patch+json              apply_merge_patch             RFC 7386
    application/strategic-merge-patch+json    apply_strategic_merge_patch   kubeling.api.smp
    application/apply-patch+yaml              apply_server_side             no field owners

Worked example: the strategic merge patch of kubectl's second `apply`, after the image changed
and an env var was added. The schema says `containers` merge by `name` and so does `env`:

    live  = {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}]},
                {"name": "log", "image": "busybox"}]}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                      "containers": [{"name": "web", "image": "nginx:1.26",
                                      "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                                      "env": [{"name": "B", "value": "2"}]}]}}
    apply_strategic_merge_patch(live, patch, pod_schema) ==
          {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.26",
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "log", "image": "busybox"}]}}

A merge patch of the same `containers` list would have replaced it, losing `log` and `A`.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, Final

from kubeling.api.errors import ApiError, bad_request
from kubeling.api.schema import Schema, items_schema
from kubeling.api.smp import (
    apply_strategic_merge_patch,
    clone,
    field_schema,
    ident,
    json_type,
    positions,
    rejected,
)

__all__ = [
    "apply_json_patch",
    "apply_merge_patch",
    "apply_server_side",
    "apply_strategic_merge_patch",
]

# The apiserver refuses longer JSON patches with 413 (handlers/patch.go).
MAX_JSON_PATCH_OPERATIONS: Final = 10000

_MISSING: Final = object()
_INDEX = re.compile(r"-?[0-9]+")
_LIST_TYPE: Final = "x-kubernetes-list-type"
_LIST_KEYS: Final = "x-kubernetes-list-map-keys"


def apply_json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """Apply an RFC 6902 JSON patch; all operations succeed or none is applied.

    Kubernetes' codes: a body that is not an array of objects is 400 BadRequest; more than
    10000 operations is 413; an operation that cannot be applied (failed `test`, missing
    path, bad index, unknown op) is 422 Invalid with the detail as the cause. As in Kubernetes
    (evanphx/json-patch v4), `replace` of a missing object member adds it, a `test` of a
    missing member against `null` passes, and `add`/`remove` accept negative array indices.
    """
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise bad_request("a JSON patch must be an array of operation objects")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise ApiError(
            413,
            "RequestEntityTooLarge",
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(ops)}",
        )
    root: Any = clone(doc)
    for op in ops:
        root = _apply_operation(root, op)
    if not isinstance(root, dict):
        raise rejected(f"the patched document must be an object, not {json_type(root)}")
    return root


def _apply_operation(root: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    if kind not in ("add", "remove", "replace", "move", "copy", "test"):
        raise rejected(f"Unexpected kind: {kind}")
    path = _pointer(op, "path")
    if kind in ("add", "replace", "test") and "value" not in op:
        raise rejected(f"{kind} operation, missing value field")
    if kind == "add":
        return _add(root, path, clone(op["value"]), op["path"])
    if kind == "remove":
        if not path:
            raise rejected("remove operation does not apply: cannot remove the whole document")
        _take(root, path, op["path"], "remove")
        return root
    if kind == "replace":
        return _replace(root, path, clone(op["value"]), op["path"])
    if kind == "test":
        found = _get(root, path, op["path"], "test")
        if (found is _MISSING and op["value"] is None) or (
            found is not _MISSING and ident(found) == ident(op["value"])
        ):
            return root
        raise rejected(f"testing value {op['path']} failed: test failed")
    source = _pointer(op, "from")
    if kind == "copy":
        value = _get(root, source, op["from"], "copy")
        if value is _MISSING:
            raise rejected(f"copy operation does not apply: doc is missing from path: {op['from']}")
        return _add(root, path, clone(value), op["path"])
    if path[: len(source)] == source and len(path) > len(source):
        raise rejected(f"move operation cannot move {op['from']} into its own child {op['path']}")
    if not source:
        return root  # moving the whole document onto itself
    return _add(root, path, _take(root, source, op["from"], "move"), op["path"])


def _pointer(op: dict[str, Any], field: str) -> list[str]:
    """The reference tokens of an RFC 6901 pointer: `""` is the root, `~1` is `/`, `~0` is `~`."""
    text = op.get(field)
    if not isinstance(text, str):
        raise rejected(f"{op.get('op')} operation, missing {field} field")
    if text == "":
        return []
    if not text.startswith("/"):
        raise rejected(f"{op.get('op')} operation: {field} {text!r} is not a JSON pointer")
    return [t.replace("~1", "/").replace("~0", "~") for t in text[1:].split("/")]


def _container(root: Any, path: list[str], text: str, kind: str) -> Any:
    """The object or array holding the last token of `path`."""
    node = root
    for token in path[:-1]:
        node = _child(node, token)
        if not isinstance(node, dict | list):
            raise rejected(f'{kind} operation does not apply: doc is missing path: "{text}"')
    if not isinstance(node, dict | list):
        raise rejected(f'{kind} operation does not apply: doc is missing path: "{text}"')
    return node


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token, _MISSING)
    if isinstance(node, list) and _INDEX.fullmatch(token) and 0 <= int(token) < len(node):
        return node[int(token)]
    return _MISSING


def _index(token: str, size: int, text: str, negative: bool) -> int:
    """An array index in `[0, size)`; negative ones count from the end when allowed."""
    if not _INDEX.fullmatch(token):
        raise rejected(f"value was not a proper array index: '{token}' in {text}")
    index = int(token)
    if negative and -size <= index < 0:
        index += size
    if not 0 <= index < size:
        raise rejected(f"Unable to access invalid index: {token} in {text}")
    return index


def _get(root: Any, path: list[str], text: str, kind: str) -> Any:
    if not path:
        return root
    node = _container(root, path, text, kind)
    if isinstance(node, dict):
        return node.get(path[-1], _MISSING)
    return node[_index(path[-1], len(node), text, negative=False)]


def _add(root: Any, path: list[str], value: Any, text: str) -> Any:
    if not path:
        return value
    node = _container(root, path, text, "add")
    if isinstance(node, dict):
        node[path[-1]] = value
    elif path[-1] == "-":
        node.append(value)
    else:
        node.insert(_index(path[-1], len(node) + 1, text, negative=True), value)
    return root


def _replace(root: Any, path: list[str], value: Any, text: str) -> Any:
    if not path:
        return value
    node = _container(root, path, text, "replace")
    if isinstance(node, dict):
        node[path[-1]] = value
    else:
        node[_index(path[-1], len(node), text, negative=False)] = value
    return root


def _take(root: Any, path: list[str], text: str, kind: str) -> Any:
    """Remove and return the value at `path`, which is not the root."""
    node = _container(root, path, text, kind)
    if isinstance(node, list):
        return node.pop(_index(path[-1], len(node), text, negative=True))
    if path[-1] not in node:
        raise rejected(
            f"error in {kind} for path: '{text}': Unable to remove nonexistent key: {path[-1]}"
        )
    return node.pop(path[-1])


def apply_merge_patch(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 7386 JSON merge patch: objects merge, `null` deletes, anything else replaces.

    The patch must be an object, since the result must stay one; Kubernetes answers any other
    body with 400 BadRequest "Invalid JSON Patch".
    """
    if not isinstance(patch, dict):
        raise bad_request(
            f"Invalid JSON Patch: a merge patch must be an object, not {json_type(patch)}"
        )
    return _merge(clone(doc), patch)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            target[key] = _merge(current if isinstance(current, dict) else {}, value)
        else:
            target[key] = clone(value)
    return target


def apply_server_side(
    live: dict[str, Any] | None, applied: dict[str, Any], schema: Schema | None
) -> dict[str, Any]:
    """Merge a server-side apply configuration onto the live object.

    With `live` None (the object does not exist yet) the result is the applied configuration.

    Maps merge key by key (unless `x-kubernetes-map-type: atomic`); lists follow
    `x-kubernetes-list-type`: `map` lists merge their items by `x-kubernetes-list-map-keys`,
    `set` lists take the union, other lists are atomic and replaced. A `null` removes the
    field. Without a schema (custom resources), maps merge and lists are replaced.

    Limitation: there is no field ownership (`managedFields`). Real server-side apply removes
    the fields a manager applied before and no longer applies; here a field left out of the
    configuration keeps its live value, and there are no conflicts between managers. Key
    fields missing from an applied item (a `protocol` left to its default) match the live item
    that agrees on the keys both carry, so re-applying does not duplicate defaulted items.
    """
    if not isinstance(applied, dict):
        raise bad_request(
            f"error decoding YAML: the configuration must be an object, not {json_type(applied)}"
        )
    return _apply_map({} if live is None else clone(live), applied, schema)


def _apply_map(
    live: dict[str, Any], applied: dict[str, Any], schema: Schema | None
) -> dict[str, Any]:
    for key, value in applied.items():
        if value is None:
            live.pop(key, None)
            continue
        sub, ext = field_schema(schema, key)
        current = live.get(key)
        if (
            isinstance(value, dict)
            and isinstance(current, dict)
            and ext.get("x-kubernetes-map-type") != "atomic"
        ):
            live[key] = _apply_map(current, value, sub)
        elif isinstance(value, list) and isinstance(current, list) and ext.get(_LIST_TYPE) == "map":
            live[key] = _apply_map_list(
                current, value, items_schema(sub), ext.get(_LIST_KEYS) or []
            )
        elif isinstance(value, list) and isinstance(current, list) and ext.get(_LIST_TYPE) == "set":
            live[key] = _apply_set(current, value)
        else:
            live[key] = _applied_value(value, sub)
    return live


def _applied_value(value: Any, schema: Schema | None) -> Any:
    if isinstance(value, dict):
        return _apply_map({}, value, schema)
    if isinstance(value, list):
        item = items_schema(schema)
        return [_applied_value(v, item) for v in value]
    return value


def _apply_map_list(
    live: list[Any], applied: list[Any], item_schema: Schema | None, keys: list[str]
) -> list[Any]:
    used: set[int] = set()
    match: list[int | None] = []
    values: list[Any] = []
    for item in applied:
        at = _find_item(live, item, keys, used) if isinstance(item, dict) else None
        match.append(at)
        if at is None:
            values.append(_applied_value(item, item_schema))
        else:
            used.add(at)
            values.append(_apply_map(live[at], item, item_schema))
    return _apply_order(live, match, values)


def _find_item(
    live: list[Any], item: dict[str, Any], keys: list[str], used: set[int]
) -> int | None:
    """The live item with the same keys, or failing that one agreeing on the keys both carry."""
    candidates = [
        (at, other) for at, other in enumerate(live) if at not in used and isinstance(other, dict)
    ]
    for at, other in candidates:
        if all(ident(item.get(k, _MISSING)) == ident(other.get(k, _MISSING)) for k in keys):
            return at
    for at, other in candidates:
        shared = [k for k in keys if k in item and k in other]
        if shared and all(ident(item[k]) == ident(other[k]) for k in shared):
            return at
    return None


def _apply_set(live: list[Any], applied: list[Any]) -> list[Any]:
    live_at = positions(live, ident)
    seen: set[Hashable] = set()
    match: list[int | None] = []
    values: list[Any] = []
    for value in applied:
        if ident(value) not in seen:
            seen.add(ident(value))
            match.append(live_at.get(ident(value)))
            values.append(_applied_value(value, None))
    return _apply_order(live, match, values)


def _apply_order(live: list[Any], match: list[int | None], values: list[Any]) -> list[Any]:
    """Order a merged list the way structured-merge-diff does for server-side apply.

    `values[j]` is the merged applied item `j` and `match[j]` the live index it merged with.
    Both lists are walked together: live-only items stay where they are, applied items come
    in applied order, and a live item that is also applied waits until the applied order
    reaches it (so applying a new order reorders the list).
    """
    owner = {at: j for j, at in enumerate(match) if at is not None}
    shared = [at for at in match if at is not None]
    out: list[Any] = []
    done: set[int] = set()
    i = j = s = 0
    while i < len(live) or j < len(values):
        if i < len(live) and j < len(values):
            if match[j] == i:
                out.append(values[j])
                done.add(j)
                s += 1
                i += 1
                j += 1
                continue
            if i in owner and s < len(shared) and shared[s] != i:
                i += 1  # applied later in the applied order
                continue
        if i < len(live) and i not in owner:
            out.append(live[i])
            i += 1
        elif i < len(live) and owner[i] in done:
            i += 1
        else:
            out.append(values[j])
            done.add(j)
            if s < len(shared) and shared[s] == match[j]:
                s += 1
            j += 1
    return out
