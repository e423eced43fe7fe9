"""Shared pieces of the semantic rules: field errors as Kubernetes prints them, ObjectMeta,
labels and label selectors.

Kubernetes builds each error from a field path, a bad value and a detail, and prints the value
with Go's `%v`/`%#v` verbs: strings quoted, maps as `map[string]string{"app":"web"}`,
IntOrString bare. kubectl shows these texts to users, so the helpers here render values the
same way instead of using Python's repr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kubeling.api import names
from kubeling.api.errors import Cause

Causes = list[Cause]
NameCheck = Callable[[str, bool], list[str]]

IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"


# -- Go rendering of values --------------------------------------------------------------------


def go_quote(text: str) -> str:
    """strconv.Quote for the common cases: escapes quotes, backslashes and control chars."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def go_value(value: Any) -> str:
    """A scalar as field errors print it: strings quoted, numbers and bools bare, nil null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return go_quote(value)
    return str(value)


def go_string_map(value: Any) -> str:
    """A map[string]string as `%#v` prints it (keys sorted; nil and empty differ)."""
    if not isinstance(value, dict):
        return "map[string]string(nil)"
    body = ", ".join(f"{go_quote(k)}:{go_quote(str(v))}" for k, v in sorted(value.items()))
    return "map[string]string{" + body + "}"


def go_string_list(value: Any) -> str:
    if not isinstance(value, list):
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(str(v)) for v in value) + "}"


def go_label_selector(selector: dict[str, Any]) -> str:
    """A *metav1.LabelSelector as field errors print it."""
    exprs = selector.get("matchExpressions")
    if isinstance(exprs, list):
        items = ", ".join(
            "v1.LabelSelectorRequirement{"
            f"Key:{go_quote(str(e.get('key', '')))}, "
            f"Operator:{go_quote(str(e.get('operator', '')))}, "
            f"Values:{go_string_list(e.get('values'))}}}"
            for e in exprs
            if isinstance(e, dict)
        )
        rendered = "[]v1.LabelSelectorRequirement{" + items + "}"
    else:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    return (
        f"v1.LabelSelector{{MatchLabels:{go_string_map(selector.get('matchLabels'))}, "
        f"MatchExpressions:{rendered}}}"
    )


# -- field errors ------------------------------------------------------------------------------


def required(path: str, detail: str = "") -> Cause:
    return Cause(
        path, f"Required value: {detail}" if detail else "Required value", "FieldValueRequired"
    )


def invalid(path: str, value: Any, detail: str) -> Cause:
    return invalid_raw(path, go_value(value), detail)


def invalid_raw(path: str, rendered: str, detail: str) -> Cause:
    """Invalid with a value already rendered Go-style (maps, structs, IntOrString)."""
    message = f"Invalid value: {rendered}: {detail}" if detail else f"Invalid value: {rendered}"
    return Cause(path, message, "FieldValueInvalid")


def forbidden(path: str, detail: str) -> Cause:
    return Cause(path, f"Forbidden: {detail}", "FieldValueForbidden")


def not_supported(path: str, value: Any, allowed: list[str], rendered: str = "") -> Cause:
    listed = ", ".join(go_quote(a) for a in allowed)
    return Cause(
        path,
        f"Unsupported value: {rendered or go_value(value)}: supported values: {listed}",
        "FieldValueNotSupported",
    )


def duplicate(path: str, value: Any) -> Cause:
    return Cause(path, f"Duplicate value: {go_value(value)}", "FieldValueDuplicate")


def duplicate_raw(path: str, rendered: str, detail: str = "") -> Cause:
    """Duplicate with a value already rendered Go-style, and an optional detail."""
    message = f"Duplicate value: {rendered}" + (f": {detail}" if detail else "")
    return Cause(path, message, "FieldValueDuplicate")


def not_found(path: str, value: Any) -> Cause:
    return Cause(path, f"Not found: {go_value(value)}", "FieldValueNotFound")


def too_long(path: str, limit: int) -> Cause:
    return Cause(path, f"Too long: must have at most {limit} bytes", "FieldValueTooLong")


def too_many(path: str, count: int, limit: int) -> Cause:
    return Cause(path, f"Too many: {count}: must have at most {limit} items", "FieldValueTooMany")


def each(path: str, value: Any, messages: list[str]) -> Causes:
    """One Invalid per message of a names.* check."""
    return [invalid(path, value, msg) for msg in messages]


# -- reading JSON documents defensively --------------------------------------------------------


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def items(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, element) of a list of objects; null elements read as empty objects."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield index, item if isinstance(item, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def integer(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def enum(parent: dict[str, Any], key: str, allowed: list[str], path: str) -> Causes:
    value = parent.get(key)
    if not value:
        return [required(f"{path}.{key}")]
    if value not in allowed:
        return [not_supported(f"{path}.{key}", value, allowed)]
    return []


def nonnegative(path: str, value: Any) -> Causes:
    return [invalid(path, value, NEGATIVE)] if integer(value) < 0 else []


def immutable(path: str, new: Any, old: Any, rendered: str = "") -> Causes:
    if new == old:
        return []
    return [invalid_raw(path, rendered or go_value(new), IMMUTABLE)]


# -- labels, annotations, selectors ------------------------------------------------------------


def label_name(path: str, key: str) -> Causes:
    return each(path, key, names.qualified_name(key))


def labels(path: str, value: Any) -> Causes:
    out: Causes = []
    for key, val in obj(value).items():
        out += label_name(path, key)
        out += each(path, val, names.label_value(text(val)))
    return out


def annotation_map(path: str, value: Any) -> Causes:
    value = obj(value)
    out: Causes = []
    for key in value:
        out += each(path, key, names.annotation_key(key))
    if names.annotations_size(value) > names.TOTAL_ANNOTATION_SIZE:
        out.append(too_long(path, names.TOTAL_ANNOTATION_SIZE))
    return out


def label_selector(path: str, selector: Any) -> Causes:
    selector = obj(selector)
    out = labels(f"{path}.matchLabels", selector.get("matchLabels"))
    for index, req in items(selector.get("matchExpressions")):
        here = f"{path}.matchExpressions[{index}]"
        operator, values = text(req.get("operator")), req.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                out.append(
                    required(
                        f"{here}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                out.append(
                    forbidden(
                        f"{here}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            out.append(invalid(f"{here}.operator", operator, "not a valid selector operator"))
        out += label_name(f"{here}.key", text(req.get("key")))
        for i, val in enumerate(values if isinstance(values, list) else []):
            out += each(f"{here}.values[{i}]", val, names.label_value(text(val)))
    return out


def selector_matches(selector: dict[str, Any], target: dict[str, Any]) -> bool:
    """Whether a (valid) LabelSelector matches a label set."""
    for key, val in obj(selector.get("matchLabels")).items():
        if target.get(key) != val:
            return False
    for _, req in items(selector.get("matchExpressions")):
        key, operator = text(req.get("key")), text(req.get("operator"))
        values = req.get("values") or []
        present = key in target
        if operator == "In" and not (present and target[key] in values):
            return False
        if operator == "NotIn" and present and target[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


# -- ObjectMeta --------------------------------------------------------------------------------

_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def object_meta(meta: Any, namespaced: bool, name_check: NameCheck) -> Causes:
    """ValidateObjectMeta: name (or generateName), namespace, labels, annotations, owners,
    finalizers. `name_check` is the kind's name format (a names.name_is_* function)."""
    meta = obj(meta)
    out: Causes = []
    generate = text(meta.get("generateName"))
    name = text(meta.get("name"))
    if generate:
        out += each("metadata.generateName", generate, name_check(generate, True))
    if not name:
        out.append(required("metadata.name", "name or generateName is required"))
    else:
        out += each("metadata.name", name, name_check(name, False))
    namespace = text(meta.get("namespace"))
    if namespaced:
        if not namespace:
            out.append(required("metadata.namespace"))
        else:
            out += each("metadata.namespace", namespace, names.name_is_dns_label(namespace))
    elif namespace:
        out.append(forbidden("metadata.namespace", "not allowed on this type"))
    out += nonnegative("metadata.generation", meta.get("generation"))
    out += labels("metadata.labels", meta.get("labels"))
    out += annotation_map("metadata.annotations", meta.get("annotations"))
    out += owner_references(meta.get("ownerReferences"))
    out += finalizers(meta.get("finalizers"))
    return out


def owner_references(refs: Any) -> Causes:
    out: Causes = []
    path = "metadata.ownerReferences"
    controller = ""
    for _, ref in items(refs):
        api_version = text(ref.get("apiVersion"))
        if not api_version.rpartition("/")[2]:
            out.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not text(ref.get(key)):
                out.append(invalid(f"{path}.{key}", text(ref.get(key)), "must not be empty"))
        if api_version == "v1" and ref.get("kind") == "Event":
            out.append(
                invalid_raw(path, "{...}", "/v1, Kind=Event is disallowed from being an owner")
            )
        if ref.get("controller") is True:
            current = f"{text(ref.get('kind'))}/{text(ref.get('name'))}"
            if controller:
                out.append(
                    invalid_raw(
                        path,
                        "[...]",
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {controller} and {current}",
                    )
                )
            else:
                controller = current
    return out


def finalizer_name(path: str, value: str) -> Causes:
    out = each(path, value, names.qualified_name(value))
    if "/" not in value and value not in _STANDARD_FINALIZERS:
        out.append(
            invalid(
                path, value, "name is neither a standard finalizer name nor is it fully qualified"
            )
        )
    return out


def finalizers(value: Any) -> Causes:
    path = "metadata.finalizers"
    out: Causes = []
    listed = [text(f) for f in value] if isinstance(value, list) else []
    for f in listed:
        out += each(path, f, names.qualified_name(f))
    if "orphan" in listed and "foregroundDeletion" in listed:
        out.append(
            invalid_raw(
                path,
                go_string_list(listed),
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )
    for index, f in enumerate(listed):
        if "/" not in f and f not in _STANDARD_FINALIZERS:
            out.append(
                invalid(
                    f"{path}[{index}]",
                    f,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return out


def object_meta_update(meta: Any, old_meta: Any) -> Causes:
    """ValidateObjectMetaUpdate: identity fields never change."""
    meta, old_meta = obj(meta), obj(old_meta)
    out: Causes = []
    generation, old_generation = (
        integer(meta.get("generation")),
        integer(old_meta.get("generation")),
    )
    if generation < old_generation:
        out.append(invalid("metadata.generation", generation, "must not be decremented"))
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
        out += immutable(f"metadata.{key}", meta.get(key), old_meta.get(key))
    out += immutable(
        "metadata.deletionGracePeriodSeconds",
        meta.get("deletionGracePeriodSeconds"),
        old_meta.get("deletionGracePeriodSeconds"),
    )
    return out
