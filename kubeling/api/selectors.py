"""Label and field selectors: parsed once per request, matched against many objects.

Label selectors follow k8s.io/apimachinery/pkg/labels: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
`a notin (x,y)`, `a`, `!a`, `a>1`, `a<1`, joined by commas (all must hold). The structured
form (`matchLabels` + `matchExpressions`, as in `spec.selector`) compiles to the same
requirements. Field selectors support `=`, `==`, `!=` on a per-kind set of fields; asking for
any other field is a 400, as in Kubernetes, so a typo never silently matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeling.api.errors import ApiError, bad_request

_KEY = re.compile(
    r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9](/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        if op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return labels.get(self.key) not in self.values
        if self.key not in labels:
            return False
        try:
            have = int(labels[self.key])
        except ValueError:
            return False
        want = int(self.values[0])
        return have > want if op == "gt" else have < want


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


EVERYTHING = LabelSelector()


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _parse_error(text: str, why: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {why}: {text!r}")


def _check_key(key: str, text: str) -> str:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise _parse_error(text, f"invalid label key {key!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise _parse_error(text, f"invalid label value {value!r}")
    return value


_SET_OP = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_BINARY_OP = re.compile(r"^\s*([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*?)\s*$")


def _parse_requirement(text: str) -> Requirement:
    stripped = text.strip()
    if not stripped:
        raise _parse_error(text, "found '', expected: identifier")
    match = _SET_OP.match(stripped)
    if match:
        key, op, inner = match.groups()
        values = tuple(_check_value(v.strip(), text) for v in inner.split(",") if v.strip())
        return Requirement(_check_key(key, text), op, values)
    match = _BINARY_OP.match(stripped)
    if match:
        key, op, value = match.groups()
        _check_key(key, text)
        if op in (">", "<"):
            try:
                int(value)
            except ValueError:
                raise _parse_error(
                    text, f"for 'gt', 'lt' operators, the value must be an integer: {value!r}"
                ) from None
            return Requirement(key, "gt" if op == ">" else "lt", (value,))
        return Requirement(key, "!=" if op == "!=" else "=", (_check_value(value, text),))
    if stripped.startswith("!"):
        return Requirement(_check_key(stripped[1:].strip(), text), "!")
    return Requirement(_check_key(stripped, text), "exists")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the `labelSelector` query parameter; raises a 400 ApiError when malformed."""
    if not text or not text.strip():
        return EVERYTHING
    return LabelSelector(tuple(_parse_requirement(part) for part in _split_top_level(text)))


_EXPRESSION_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Compile a `metav1.LabelSelector` (`matchLabels`, `matchExpressions`).

    Inputs are expected to be validated already; an unknown operator raises ValueError.
    """
    if not spec:
        return EVERYTHING
    reqs = [Requirement(k, "=", (v,)) for k, v in sorted((spec.get("matchLabels") or {}).items())]
    for expr in spec.get("matchExpressions") or []:
        op = _EXPRESSION_OPS.get(expr.get("operator", ""))
        if op is None:
            raise ValueError(f"unknown selector operator {expr.get('operator')!r}")
        reqs.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


def selector_to_string(spec: Mapping[str, Any] | None) -> str:
    """Render a structured selector in the string form (`a=b,c in (d)`), as Scale shows it."""
    if not spec:
        return ""
    out = [f"{k}={v}" for k, v in sorted((spec.get("matchLabels") or {}).items())]
    for expr in spec.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            out.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            out.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            out.append(key)
        elif op == "DoesNotExist":
            out.append(f"!{key}")
    return ",".join(out)


# --- field selectors -------------------------------------------------------------------------

FieldGetter = Callable[[Mapping[str, Any]], str]


def _path(*keys: str) -> FieldGetter:
    def get(obj: Mapping[str, Any]) -> str:
        cur: Any = obj
        for key in keys:
            if not isinstance(cur, Mapping):
                return ""
            cur = cur.get(key)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


_COMMON_FIELDS: dict[str, FieldGetter] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}

_EVENT_FIELDS: dict[str, FieldGetter] = {
    **{
        f"involvedObject.{f}": _path("involvedObject", f)
        for f in (
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        )
    },
    "reason": _path("reason"),
    "reportingComponent": _path("reportingComponent"),
    "source": _path("source", "component"),
    "type": _path("type"),
}

# Extra fields per (group, kind), as registered by Kubernetes' strategies (GetAttrs).
KIND_FIELDS: dict[tuple[str, str], dict[str, FieldGetter]] = {
    ("", "Pod"): {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: (
            "true" if (o.get("spec") or {}).get("hostNetwork") else "false"
        ),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    ("", "Event"): _EVENT_FIELDS,
    ("", "Namespace"): {"status.phase": _path("status", "phase")},
    ("", "Node"): {
        "spec.unschedulable": lambda o: (
            "true" if (o.get("spec") or {}).get("unschedulable") else "false"
        )
    },
    ("", "Secret"): {"type": _path("type")},
    ("", "Service"): {
        "spec.clusterIP": _path("spec", "clusterIP"),
        "spec.type": _path("spec", "type"),
    },
    ("apps", "ReplicaSet"): {"status.replicas": _path("status", "replicas")},
    ("events.k8s.io", "Event"): {
        "regarding.kind": _path("regarding", "kind"),
        "regarding.name": _path("regarding", "name"),
        "regarding.namespace": _path("regarding", "namespace"),
        "regarding.uid": _path("regarding", "uid"),
        "reason": _path("reason"),
        "type": _path("type"),
        "reportingController": _path("reportingController"),
    },
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    getter: FieldGetter
    value: str
    negate: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (self.getter(obj) == self.value) != self.negate


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def exact_name(self) -> str | None:
        """The name when the selector pins `metadata.name=...` (kubectl's single-object watch)."""
        for r in self.requirements:
            if r.field == "metadata.name" and not r.negate:
                return r.value
        return None


def parse_field_selector(text: str | None, group: str, kind: str) -> FieldSelector:
    """Parse `fieldSelector` for a kind; unknown fields and bad syntax are 400 errors."""
    if not text or not text.strip():
        return FieldSelector()
    fields = {**_COMMON_FIELDS, **KIND_FIELDS.get((group, kind), {})}
    reqs: list[FieldRequirement] = []
    for part in text.split(","):
        for op in ("!=", "==", "="):
            if op in part:
                name, value = part.split(op, 1)
                name = name.strip()
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        getter = fields.get(name)
        if getter is None:
            raise bad_request(f"field label not supported: {name}")
        reqs.append(FieldRequirement(name, getter, value.strip(), op == "!="))
    return FieldSelector(tuple(reqs))
