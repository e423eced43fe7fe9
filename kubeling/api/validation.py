"""Structural validation of an incoming object against its kind's official schema.

Kubernetes decodes a request body into typed Go structs before anything else happens, and
that decoding is where three classes of mistakes surface, each with its own outcome:

    wrong JSON type (`replicas: "3"`)     → 400 BadRequest, the first Go decoder error
    field the type does not have          → fieldValidation: Strict 400 / Warn header / Ignore
    required field absent                 → 422 Invalid, `Required value` at the field path

`check_structure` reproduces that decoding step on the JSON document in one pass, with the
texts Kubernetes prints (Go type names, dotted Go field paths without indexes for type errors,
indexed paths for unknown fields). `null` is treated as absent, as Go's decoder does.

Only the required fields that Kubernetes' own validation reports as `Required value` at that
exact path are reported as missing (container names, volume names, a Deployment's selector,
...). The schemas mark many more fields required (every non-omitempty Go field, status fields
included) that Kubernetes never enforces; reporting those would reject valid objects.
`rules.validate` reports everything else, including those same fields when present but empty.

Schemas are compiled once into a small node graph (one node per schema, cached), so a check
costs one dictionary walk: about 50 µs for a typical Deployment.
"""

from __future__ import annotations

import binascii
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from kubeling.api.errors import ApiError, Cause, bad_request, required
from kubeling.api.kinds import ResourceInfo
from kubeling.api.quantity import MILLI, QuantityError, check_json, from_json
from kubeling.api.schema import Schema, definition_name, definitions, resolve

_REF = "#/$defs/"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
_MICRO_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"

# Required fields Kubernetes' validation reports as `Required value` when absent, by schema
# definition. Everything else the schemas call required is either reported differently (a
# ServicePort without `port` is `Invalid value: 0`) or not enforced at all.
_ENFORCED_REQUIRED: dict[str, tuple[str, ...]] = {
    "io.k8s.api.core.v1.PodSpec": ("containers",),
    "io.k8s.api.core.v1.Container": ("name",),
    "io.k8s.api.core.v1.EphemeralContainer": ("name",),
    "io.k8s.api.core.v1.ContainerPort": ("containerPort",),
    "io.k8s.api.core.v1.EnvVar": ("name",),
    "io.k8s.api.core.v1.ConfigMapKeySelector": ("key",),
    "io.k8s.api.core.v1.SecretKeySelector": ("key",),
    "io.k8s.api.core.v1.ResourceFieldSelector": ("resource",),
    "io.k8s.api.core.v1.ObjectFieldSelector": ("fieldPath",),
    "io.k8s.api.core.v1.VolumeMount": ("name", "mountPath"),
    "io.k8s.api.core.v1.VolumeDevice": ("name", "devicePath"),
    "io.k8s.api.core.v1.Volume": ("name",),
    "io.k8s.api.core.v1.KeyToPath": ("key", "path"),
    "io.k8s.api.core.v1.DownwardAPIVolumeFile": ("path",),
    "io.k8s.api.core.v1.HostPathVolumeSource": ("path",),
    "io.k8s.api.core.v1.PersistentVolumeClaimVolumeSource": ("claimName",),
    "io.k8s.api.core.v1.NFSVolumeSource": ("server", "path"),
    "io.k8s.api.core.v1.CSIVolumeSource": ("driver",),
    "io.k8s.api.core.v1.GitRepoVolumeSource": ("repository",),
    "io.k8s.api.core.v1.Taint": ("effect",),
    "io.k8s.api.apps.v1.DeploymentSpec": ("selector",),
    "io.k8s.api.apps.v1.ReplicaSetSpec": ("selector",),
    "io.k8s.api.discovery.v1.EndpointSlice": ("addressType",),
    "io.k8s.api.events.v1.Event": ("eventTime",),
}

# Node kinds.
_OBJECT, _MAP, _ARRAY, _ANY = "object", "map", "array", "any"
_STRING, _BYTES, _INT, _FLOAT, _BOOL = "string", "bytes", "int", "float", "bool"
_INT_STR, _QTY, _TIME_KIND, _MICRO = "intstr", "quantity", "time", "microtime"
_CONTAINERS = frozenset((_OBJECT, _ARRAY, _MAP))
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@dataclass(eq=False)
class _Node:
    kind: str
    go_type: str  # as reflect.Type.String() prints it
    struct: str = ""  # the Go struct name, for object nodes
    props: dict[str, _Node] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    child: _Node | None = None  # array items or map values
    int_range: tuple[int, int] = _INT_RANGES["int64"]
    quantity_map: bool = False  # a ResourceList: values round up to millis
    has_quantity: bool = False  # a Quantity somewhere below (for normalise_quantities)


@dataclass
class StructureReport:
    """What decoding the object into its Go type would have found."""

    type_errors: list[str] = field(default_factory=list)
    unknown_fields: list[str] = field(default_factory=list)
    missing: list[Cause] = field(default_factory=list)


# -- schema compilation ------------------------------------------------------------------------


def _go_name(definition: str) -> str:
    package, _, name = definition.rpartition(".")
    return f"{package.rpartition('.')[2]}.{name}"


def _types(schema: Schema) -> set[str]:
    t = schema.get("type")
    return {t} if isinstance(t, str) else set(t or ())


class _Compiler:
    def __init__(self) -> None:
        self.by_definition: dict[str, _Node] = {}

    def compile(self, raw: Schema) -> _Node:
        ref = raw.get("$ref")
        if ref is None and len(raw.get("allOf") or ()) == 1:
            ref = raw["allOf"][0].get("$ref")
        if ref is not None:
            return self.definition(ref[len(_REF) :])
        return self.inline(raw, "")

    def definition(self, name: str) -> _Node:
        node = self.by_definition.get(name)
        if node is not None:
            return node
        special = {
            _INT_OR_STRING: _Node(_INT_STR, "int32", int_range=_INT_RANGES["int32"]),
            _QUANTITY: _Node(_QTY, "resource.Quantity", has_quantity=True),
            _TIME: _Node(_TIME_KIND, "v1.Time"),
            _MICRO_TIME: _Node(_MICRO, "v1.MicroTime"),
        }.get(name)
        if special is not None:
            self.by_definition[name] = special
            return special
        schema = resolve(definitions()[name]) or {}
        node = _Node(_ANY, _go_name(name), struct=name.rpartition(".")[2])
        self.by_definition[name] = node  # registered first: schemas may be recursive
        compiled = self.inline(schema, name)
        node.kind, node.props, node.child = compiled.kind, compiled.props, compiled.child
        node.required = compiled.required
        node.int_range, node.quantity_map = compiled.int_range, compiled.quantity_map
        if compiled.kind not in (_OBJECT, _ANY):
            node.go_type = compiled.go_type
        return node

    def inline(self, schema: Schema, definition: str) -> _Node:
        types = _types(schema)
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return _Node(_ANY, "interface {}")
        if "array" in types:
            item = self.compile(schema.get("items") or {})
            return _Node(_ARRAY, "[]" + item.go_type, child=item)
        if "object" in types or "properties" in schema:
            props = {k: self.compile(v) for k, v in (schema.get("properties") or {}).items()}
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and not props:
                value = self.compile(extra)
                return _Node(
                    _MAP,
                    "map[string]" + value.go_type,
                    child=value,
                    quantity_map=value.kind == _QTY,
                )
            if not props:
                return _Node(_ANY, "interface {}")
            return _Node(_OBJECT, "", props=props, required=_ENFORCED_REQUIRED.get(definition, ()))
        fmt = schema.get("format")
        if "integer" in types:
            bits = fmt if fmt in _INT_RANGES else "int64"
            return _Node(_INT, bits, int_range=_INT_RANGES[bits])
        if "number" in types:
            return _Node(_FLOAT, "float64")
        if "boolean" in types:
            return _Node(_BOOL, "bool")
        if "string" in types:
            return _Node(_BYTES, "[]uint8") if fmt == "byte" else _Node(_STRING, "string")
        return _Node(_ANY, "interface {}")


def _mark_quantities(node: _Node, seen: set[int]) -> bool:
    if id(node) in seen:
        return node.has_quantity
    seen.add(id(node))
    below = [node.child] if node.child is not None else list(node.props.values())
    found = node.kind == _QTY
    for child in below:
        found = _mark_quantities(child, seen) or found
    node.has_quantity = found
    return found


@functools.cache
def _compiler() -> _Compiler:
    return _Compiler()


@functools.cache
def _root(group: str, version: str, kind: str) -> _Node | None:
    name = definition_name(group, version, kind)
    if name is None:
        return None
    root = _compiler().definition(name)
    _mark_quantities(root, set())
    return root


# -- Go decoder texts --------------------------------------------------------------------------


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


class _Walk:
    """One decoding pass; collects what Go's decoder would report, in document order."""

    def __init__(self) -> None:
        self.report = StructureReport()

    def type_error(self, what: str, owner: str, gopath: str, go_type: str) -> None:
        self.report.type_errors.append(
            f"json: cannot unmarshal {what} into Go struct field {owner}.{gopath} of type {go_type}"
        )

    def scalar(self, value: Any, node: _Node, owner: str, gopath: str) -> None:
        kind = node.kind
        if kind == _STRING:
            if type(value) is not str:
                self.type_error(_json_kind(value), owner, gopath, "string")
        elif kind in (_INT, _INT_STR):
            if kind == _INT_STR and type(value) is str:
                return
            if type(value) is int:
                low, high = node.int_range
                if low <= value <= high:
                    return
            what = _json_kind(value)
            if what == "number":
                what = "number " + _number_text(value)
            self.type_error(what, owner, gopath, node.go_type)
        elif kind == _BOOL:
            if type(value) is not bool:
                self.type_error(_json_kind(value), owner, gopath, "bool")
        elif kind == _FLOAT:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.type_error(_json_kind(value), owner, gopath, "float64")
        elif kind == _QTY:
            problem = check_json(value)
            if problem:
                self.report.type_errors.append(problem)
        elif kind in (_TIME_KIND, _MICRO):
            if type(value) is not str:
                self.type_error(_json_kind(value), owner, gopath, "string")
            else:
                problem = parse_time_error(value, micro=kind == _MICRO)
                if problem:
                    self.report.type_errors.append(problem)
        elif kind == _BYTES:
            if type(value) is not str:
                self.type_error(_json_kind(value), owner, gopath, "[]uint8")
            else:
                problem = base64_error(value)
                if problem:
                    self.report.type_errors.append(problem)

    def visit(self, value: Any, node: _Node, path: str, gopath: str, owner: str) -> None:
        kind = node.kind
        if kind == _OBJECT:
            if type(value) is not dict:
                self.type_error(_json_kind(value), owner, gopath, node.go_type)
                return
            self.visit_object(value, node, path, gopath)
        elif kind == _ARRAY:
            if type(value) is not list:
                self.type_error(_json_kind(value), owner, gopath, node.go_type)
                return
            item_node = node.child
            assert item_node is not None
            for index, item in enumerate(value):
                if item is None:
                    if item_node.kind != _OBJECT:
                        continue
                    item = {}
                self.visit(item, item_node, f"{path}[{index}]", gopath, owner)
        elif kind == _MAP:
            if type(value) is not dict:
                self.type_error(_json_kind(value), owner, gopath, node.go_type)
                return
            value_node = node.child
            assert value_node is not None
            for key, item in value.items():
                if item is not None:
                    self.visit(item, value_node, f"{path}[{key}]", gopath, owner)
        elif kind != _ANY:
            self.scalar(value, node, owner, gopath)

    def visit_object(
        self,
        value: dict[str, Any],
        node: _Node,
        path: str,
        gopath: str,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        props = node.props
        prefix = path + "." if path else ""
        goprefix = gopath + "." if gopath else ""
        for key, item in value.items():
            if key in skip:
                continue
            child = props.get(key)
            if child is None:
                self.report.unknown_fields.append(prefix + key)
            elif item is not None:
                kind = child.kind
                if kind in _CONTAINERS:
                    self.visit(item, child, prefix + key, goprefix + key, node.struct)
                elif (kind == _STRING and type(item) is str) or kind == _ANY:
                    continue
                else:
                    self.scalar(item, child, node.struct, goprefix + key)
        for name in node.required:
            if value.get(name) is None:
                self.report.missing.append(required(prefix + name))


# -- public API --------------------------------------------------------------------------------


def decode_prefix(info: ResourceInfo) -> str:
    """How Kubernetes introduces every decoding error of a kind."""
    return f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '


def check_structure(
    info: ResourceInfo, obj: dict[str, Any], known_clean: frozenset[str] = frozenset()
) -> StructureReport:
    """Type errors, unknown fields and missing required fields of `obj`, as its kind decodes.

    `known_clean` names top-level fields the caller knows would report nothing (a status
    write's `spec`, byte for byte the stored one, which passed this check when written): they
    are not walked. Each field's findings depend on that field alone, so the report is the
    same as with them walked."""
    root = _root(info.group, info.version, info.kind)
    if root is None:
        return StructureReport()
    walk = _Walk()
    walk.visit_object(obj, root, "", "", known_clean)
    report = walk.report
    if report.type_errors:
        prefix = decode_prefix(info)
        report.type_errors = [prefix + text for text in report.type_errors]
    return report


def strict_error(info: ResourceInfo, unknown_fields: list[str]) -> ApiError:
    """The 400 of fieldValidation=Strict for the given unknown fields."""
    listed = ", ".join(f'unknown field "{path}"' for path in unknown_fields)
    return bad_request(f"{decode_prefix(info)}strict decoding error: {listed}")


def warning_texts(unknown_fields: list[str]) -> list[str]:
    """The Warning headers of fieldValidation=Warn, one per unknown field."""
    return [f'unknown field "{path}"' for path in unknown_fields]


def normalise_quantities(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Rewrite every Quantity of `obj` in canonical string form, in place.

    Numbers become strings (`memory: 128` → `"128"`), strings become canonical (`"1000m"` →
    `"1"`), and entries of resource lists round up to millicores (`"0.0001"` → `"1m"`), as
    Kubernetes' decoder and SetDefaults_ResourceList do. Invalid quantities are left alone:
    `check_structure` reports them.
    """
    root = _root(info.group, info.version, info.kind)
    if root is not None and root.has_quantity:
        _normalise(obj, root)


def _normalise(value: Any, node: _Node) -> None:
    if node.kind == _OBJECT and type(value) is dict:
        for key, item in value.items():
            child = node.props.get(key)
            if child is None or item is None:
                continue
            if child.kind == _QTY:
                value[key] = _canonical(item, round_milli=False)
            elif child.has_quantity:
                _normalise(item, child)
    elif node.kind == _ARRAY and type(value) is list and node.child is not None:
        for item in value:
            _normalise(item, node.child)
    elif node.kind == _MAP and type(value) is dict and node.child is not None:
        child = node.child
        for key, item in value.items():
            if child.kind == _QTY and item is not None:
                value[key] = _canonical(item, round_milli=node.quantity_map)
            elif child.has_quantity:
                _normalise(item, child)


def _canonical(value: Any, round_milli: bool) -> Any:
    try:
        quantity = from_json(value)
    except QuantityError:
        return value
    return str(quantity.round_up(MILLI) if round_milli else quantity)


# -- Go formats: base64 and RFC 3339 timestamps ------------------------------------------------

_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_error(text: str) -> str | None:
    """Go's base64.StdEncoding error for `text` (`illegal base64 data at input byte N`)."""
    data = text.encode()
    try:
        binascii.a2b_base64(data, strict_mode=True)
        return None
    except binascii.Error:
        pass
    offset = _corrupt_offset(data)
    return None if offset is None else f"illegal base64 data at input byte {offset}"


def _corrupt_offset(src: bytes) -> int | None:
    """Where Go's decoder stops, following its quantum-by-quantum algorithm."""
    si, n = 0, len(src)
    while True:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return si - j
            ch = src[si]
            si += 1
            if ch in _B64:
                j += 1
                continue
            if ch in b"\r\n":
                continue
            if ch != ord("="):
                return si - 1
            if j < 2:
                return si - 1
            if j == 2:
                while si < n and src[si] in b"\r\n":
                    si += 1
                if si == n:
                    return n
                if src[si] != ord("="):
                    return si - 1
                si += 1
            while si < n and src[si] in b"\r\n":
                si += 1
            return si if si < n else None


_RFC3339 = "2006-01-02T15:04:05Z07:00"
_RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"
_DIGITS = re.compile(r"\d+")
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_time_error(value: str, micro: bool = False) -> str | None:
    """Go's time.Parse error for a metav1.Time (RFC 3339) or MicroTime value, or None."""
    layout = _RFC3339_MICRO if micro else _RFC3339
    steps: list[tuple[str, str]] = [
        ("2006", "year"),
        ("-", ""),
        ("01", "month"),
        ("-", ""),
        ("02", "day"),
        ("T", ""),
        ("15", "hour"),
        (":", ""),
        ("04", "minute"),
        (":", ""),
        ("05", "second"),
    ]
    if micro:
        steps.append((".000000", "micro"))
    steps.append(("Z07:00", "zone"))

    def fail(rest: str, elem: str) -> str:
        return (
            f"parsing time {_quote(value)} as {_quote(layout)}: cannot parse {_quote(rest)} as "
            f"{_quote(elem)}"
        )

    rest, fields = value, {}
    for elem, name in steps:
        if not name:
            if not rest.startswith(elem):
                return fail(rest, elem)
            rest = rest[len(elem) :]
            continue
        width = {"year": 4, "micro": 7}.get(name, 2)
        if name == "zone":
            if rest.startswith("Z"):
                rest = rest[1:]
            elif (
                len(rest) >= 6
                and rest[0] in "+-"
                and rest[3] == ":"
                and (rest[1:3] + rest[4:6]).isdigit()
            ):
                rest = rest[6:]
            else:
                return fail(rest, elem)
            continue
        if name == "micro":
            if not (rest[:1] == "." and rest[1:7].isdigit() and len(rest) >= 7):
                return fail(rest, elem)
            rest = rest[7:]
            continue
        if name == "hour" and rest[:1].isdigit() and not rest[1:2].isdigit():
            width = 1  # Go parses the "15" hour with getnum(value, false)
        chunk = rest[:width]
        if len(chunk) < width or not chunk.isdigit():
            return fail(rest, elem)
        fields[name] = int(chunk)
        rest = rest[width:]
        limit = {"month": (1, 12), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}
        if name in limit and not limit[name][0] <= fields[name] <= limit[name][1]:
            return f"parsing time {_quote(value)}: {name} out of range"
        if name == "second" and not micro and rest[:1] in (".", ","):
            digits = _DIGITS.match(rest, 1)
            if digits:
                rest = rest[digits.end() :]
    if rest:
        return f"parsing time {_quote(value)}: extra text: {_quote(rest)}"
    year, month, day = fields["year"], fields["month"], fields["day"]
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= (_DAYS[month - 1] if month != 2 or leap else 28):
        return f"parsing time {_quote(value)}: day out of range"
    return None


def _quote(text: str) -> str:
    """The time package's quote(): double quotes, backslash-escaped quotes and backslashes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
