"""Decoding of Kubernetes protobuf request bodies into JSON-style objects.

Why: `kubectl create configmap|secret|namespace|serviceaccount|service|deployment|ingress` uses
the typed client, which POSTs `application/vnd.kubernetes.protobuf` and does not fall back to
JSON on a 415. To serve those commands we read the few kinds they send; everything else in
kubeling speaks JSON. The core/v1 tables live here; the apps/v1 ones (Deployment and the pod
template it embeds) are in `protobuf_workloads` and the networking/v1 Ingress in
`protobuf_networking`, built from the primitives below.

The body is the Kubernetes envelope: the magic `k8s\\x00`, then a `runtime.Unknown` message

    1: TypeMeta {1: apiVersion, 2: kind}   2: raw (the object)   3: contentEncoding   4: contentType

and `raw` is the object in the protobuf form of `k8s.io/api` (`generated.proto`). A small wire
decoder (varint, 64-bit, length-delimited, 32-bit) is driven by per-kind field tables; the
result is what the same object looks like in JSON, with Go's `omitempty` applied: Go marshals
every non-pointer field, so a `""`, `0` or `false` scalar read from the wire is dropped unless
the field is a pointer in Go or has no `omitempty` (`keep_zero`), while a present sub-message
becomes a (possibly empty) object. `bytes` become base64 strings, `Time` an RFC 3339 string (the
zero time is dropped, as JSON's `null` would be), `IntOrString` an int or a string, `Quantity`
its canonical string. An embedded Go struct (`json:",inline"`, e.g. the LocalObjectReference in
a ConfigMapKeySelector) is its own message on the wire and merges into its parent in JSON.
Repeated integers are read both unpacked (what gogo-protobuf writes) and packed.

Contract: `decode(body)` returns a fresh dict whose `apiVersion` and `kind` come from the
envelope. It raises ApiError 415 (UnsupportedMediaType) for a kind it has no table for or an
encoded `raw`, and 400 (BadRequest) for a body that is not a well-formed envelope or message.
Unknown field numbers are skipped, as protobuf readers do.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubeling.api.errors import ApiError, bad_request
from kubeling.util.timefmt import format_time

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


class _Corrupt(Exception):
    """The bytes are not a valid protobuf message of the expected shape."""


# ---------------------------------------------------------------------------------------------
# Wire format


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Corrupt("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise _Corrupt("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield `(field number, wire type, value)`; value is an int or, for LEN, the bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Corrupt("field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > len(buf):
                raise _Corrupt("truncated fixed-width field")
            value = int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Corrupt("length-delimited field runs past the end")
            value = buf[pos : pos + size]
            pos += size
        else:
            raise _Corrupt(f"unsupported wire type {wire}")
        yield number, wire, value


def _signed(value: int) -> int:
    """int32/int64 fields are two's complement in 64 bits (negative int32s sign-extend)."""
    return value - (1 << 64) if value >= 1 << 63 else value


# ---------------------------------------------------------------------------------------------
# Field tables

# Scalar and composite field kinds.
STRING, BYTES, INT, BOOL, MESSAGE, MAP, TIME, INT_OR_STRING, QUANTITY, INLINE = (
    "string", "bytes", "int", "bool", "message", "map", "time", "intorstring", "quantity",
    "inline",
)  # fmt: skip
_WIRE_OF = {STRING: _LEN, BYTES: _LEN, INT: _VARINT, BOOL: _VARINT, MESSAGE: _LEN, MAP: _LEN,
            TIME: _LEN, INT_OR_STRING: _LEN, QUANTITY: _LEN, INLINE: _LEN}  # fmt: skip


@dataclass(frozen=True)
class Field:
    """One field of a message: its JSON name and how its wire value becomes JSON.

    `keep_zero` marks Go pointer fields (`*bool`, `*string`, ...) and fields without `omitempty`:
    an explicit zero value on the wire is meaningful and kept. `map_value` is the value kind of a
    `map<string, V>` (STRING, BYTES or QUANTITY). An INLINE field's `message` is merged into the
    enclosing object instead of nesting under `name`.
    """

    name: str
    kind: str
    repeated: bool = False
    message: Message | None = None
    map_value: str = STRING
    keep_zero: bool = False


@dataclass(frozen=True)
class Message:
    fields: dict[int, Field] = field(default_factory=dict)


def _m(*fields: tuple[int, Field]) -> Message:
    return Message(dict(fields))


def _s(
    number: int, name: str, *, repeated: bool = False, keep_zero: bool = False
) -> tuple[int, Field]:
    return number, Field(name, STRING, repeated=repeated, keep_zero=keep_zero)


def _msg(number: int, name: str, message: Message, *, repeated: bool = False) -> tuple[int, Field]:
    return number, Field(name, MESSAGE, repeated=repeated, message=message)


def _i(
    number: int, name: str, *, repeated: bool = False, keep_zero: bool = False
) -> tuple[int, Field]:
    return number, Field(name, INT, repeated=repeated, keep_zero=keep_zero)


def _b(number: int, name: str, *, keep_zero: bool = False) -> tuple[int, Field]:
    return number, Field(name, BOOL, keep_zero=keep_zero)


OWNER_REFERENCE = _m(
    _s(5, "apiVersion"), _s(1, "kind"), _s(3, "name"), _s(4, "uid"),
    (6, Field("controller", BOOL, keep_zero=True)),
    (7, Field("blockOwnerDeletion", BOOL, keep_zero=True)),
)  # fmt: skip

OBJECT_META = _m(
    _s(1, "name"), _s(2, "generateName"), _s(3, "namespace"), _s(4, "selfLink"), _s(5, "uid"),
    _s(6, "resourceVersion"), (7, Field("generation", INT)),
    (8, Field("creationTimestamp", TIME)), (9, Field("deletionTimestamp", TIME)),
    (10, Field("deletionGracePeriodSeconds", INT, keep_zero=True)),
    (11, Field("labels", MAP)), (12, Field("annotations", MAP)),
    _msg(13, "ownerReferences", OWNER_REFERENCE, repeated=True),
    _s(14, "finalizers", repeated=True),
)  # fmt: skip

OBJECT_REFERENCE = _m(
    _s(1, "kind"), _s(2, "namespace"), _s(3, "name"), _s(4, "uid"), _s(5, "apiVersion"),
    _s(6, "resourceVersion"), _s(7, "fieldPath"),
)  # fmt: skip

LOCAL_OBJECT_REFERENCE = _m(_s(1, "name"))

CONFIG_MAP = _m(
    _msg(1, "metadata", OBJECT_META),
    (2, Field("data", MAP)),
    (3, Field("binaryData", MAP, map_value=BYTES)),
    (4, Field("immutable", BOOL, keep_zero=True)),
)

SECRET = _m(
    _msg(1, "metadata", OBJECT_META),
    (2, Field("data", MAP, map_value=BYTES)),
    _s(3, "type"),
    (4, Field("stringData", MAP)),
    (5, Field("immutable", BOOL, keep_zero=True)),
)

NAMESPACE_CONDITION = _m(
    _s(1, "type"), _s(2, "status"), (4, Field("lastTransitionTime", TIME)), _s(5, "reason"),
    _s(6, "message"),
)  # fmt: skip

NAMESPACE = _m(
    _msg(1, "metadata", OBJECT_META),
    _msg(2, "spec", _m(_s(1, "finalizers", repeated=True))),
    _msg(3, "status", _m(_s(1, "phase"), _msg(2, "conditions", NAMESPACE_CONDITION,
                                               repeated=True))),
)  # fmt: skip

SERVICE_ACCOUNT = _m(
    _msg(1, "metadata", OBJECT_META),
    _msg(2, "secrets", OBJECT_REFERENCE, repeated=True),
    _msg(3, "imagePullSecrets", LOCAL_OBJECT_REFERENCE, repeated=True),
    (4, Field("automountServiceAccountToken", BOOL, keep_zero=True)),
)

SERVICE_PORT = _m(
    _s(1, "name"), _s(2, "protocol"), _s(6, "appProtocol", keep_zero=True),
    (3, Field("port", INT, keep_zero=True)), (4, Field("targetPort", INT_OR_STRING)),
    (5, Field("nodePort", INT)),
)  # fmt: skip

SERVICE_SPEC = _m(
    _msg(1, "ports", SERVICE_PORT, repeated=True),
    (2, Field("selector", MAP)),
    _s(3, "clusterIP"), _s(18, "clusterIPs", repeated=True), _s(4, "type"),
    _s(5, "externalIPs", repeated=True), _s(7, "sessionAffinity"), _s(8, "loadBalancerIP"),
    _s(9, "loadBalancerSourceRanges", repeated=True), _s(10, "externalName"),
    _s(11, "externalTrafficPolicy"), (12, Field("healthCheckNodePort", INT)),
    (13, Field("publishNotReadyAddresses", BOOL)),
    _msg(14, "sessionAffinityConfig",
         _m(_msg(1, "clientIP", _m((1, Field("timeoutSeconds", INT, keep_zero=True)))))),
    _s(19, "ipFamilies", repeated=True), _s(17, "ipFamilyPolicy", keep_zero=True),
    (20, Field("allocateLoadBalancerNodePorts", BOOL, keep_zero=True)),
    _s(21, "loadBalancerClass", keep_zero=True), _s(22, "internalTrafficPolicy", keep_zero=True),
    _s(23, "trafficDistribution", keep_zero=True),
)  # fmt: skip

LOAD_BALANCER_INGRESS = _m(_s(1, "ip"), _s(2, "hostname"))

SERVICE = _m(
    _msg(1, "metadata", OBJECT_META),
    _msg(2, "spec", SERVICE_SPEC),
    _msg(3, "status", _m(_msg(1, "loadBalancer", _m(_msg(1, "ingress", LOAD_BALANCER_INGRESS,
                                                             repeated=True))))),
)  # fmt: skip

KINDS: dict[tuple[str, str], Message] = {
    ("v1", "ConfigMap"): CONFIG_MAP,
    ("v1", "Secret"): SECRET,
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
    ("v1", "Service"): SERVICE,
}

_TYPE_META = _m(_s(1, "apiVersion"), _s(2, "kind"))
_QUANTITY = _m(_s(1, "string"))


# ---------------------------------------------------------------------------------------------
# Decoding


def _text(value: int | bytes) -> str:
    assert isinstance(value, bytes)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Corrupt("string field is not valid UTF-8") from exc


def _b64(value: int | bytes) -> str:
    assert isinstance(value, bytes)
    return base64.b64encode(value).decode("ascii")


def _time(value: bytes) -> str | None:
    parts = _decode_message(value, _m((1, Field("seconds", INT)), (2, Field("nanos", INT))))
    seconds = parts.get("seconds", 0)
    if seconds == 0 and parts.get("nanos", 0) == 0:
        return None
    try:
        return format_time(datetime.fromtimestamp(seconds, UTC))
    except (OverflowError, OSError, ValueError) as exc:
        raise _Corrupt("timestamp out of range") from exc


def _int_or_string(value: bytes) -> int | str:
    spec = _m((1, Field("type", INT)), (2, Field("intVal", INT)), _s(3, "strVal"))
    parts = _decode_message(value, spec)
    if parts.get("type", 0) == 1:
        return str(parts.get("strVal", ""))
    return int(parts.get("intVal", 0))


def _quantity(value: bytes) -> str:
    """`resource.Quantity` travels as a message holding its canonical string (`"500m"`)."""
    return str(_decode_message(value, _QUANTITY).get("string", ""))


def _packed(value: bytes) -> Iterator[int]:
    """The varints of a packed repeated integer field."""
    pos = 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        yield _signed(item)


def _map_entry(value: bytes, value_kind: str) -> tuple[str, str]:
    key = ""
    item = ""
    for number, wire, raw in _fields(value):
        if wire != _LEN or number not in (1, 2):
            continue
        assert isinstance(raw, bytes)
        if number == 1:
            key = _text(raw)
        elif value_kind == BYTES:
            item = _b64(raw)
        elif value_kind == QUANTITY:
            item = _quantity(raw)
        else:
            item = _text(raw)
    return key, item


def _scalar(spec: Field, wire: int, raw: int | bytes) -> Any:
    if wire != _WIRE_OF[spec.kind]:
        raise _Corrupt(f"field {spec.name!r} has wire type {wire}")
    if spec.kind == STRING:
        return _text(raw)
    if spec.kind == BYTES:
        return _b64(raw)
    if spec.kind == INT:
        assert isinstance(raw, int)
        return _signed(raw)
    if spec.kind == BOOL:
        return bool(raw)
    assert isinstance(raw, bytes)
    if spec.kind == TIME:
        return _time(raw)
    if spec.kind == INT_OR_STRING:
        return _int_or_string(raw)
    if spec.kind == QUANTITY:
        return _quantity(raw)
    assert spec.message is not None
    return _decode_message(raw, spec.message)


def _is_zero(value: Any) -> bool:
    return value is None or (not isinstance(value, dict) and value in ("", 0, False))


def _decode_message(buf: bytes, message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, wire, raw in _fields(buf):
        spec = message.fields.get(number)
        if spec is None:
            continue
        if spec.kind == MAP:
            if wire != _LEN:
                raise _Corrupt(f"field {spec.name!r} has wire type {wire}")
            assert isinstance(raw, bytes)
            key, item = _map_entry(raw, spec.map_value)
            out.setdefault(spec.name, {})[key] = item
            continue
        if spec.kind == INT and spec.repeated and wire == _LEN:
            assert isinstance(raw, bytes)
            out.setdefault(spec.name, []).extend(_packed(raw))
            continue
        value = _scalar(spec, wire, raw)
        if spec.kind == INLINE:
            out.update(value)
            continue
        if spec.repeated:
            out.setdefault(spec.name, []).append(value)
        elif spec.keep_zero and value is not None:
            out[spec.name] = value
        elif _is_zero(value):
            out.pop(spec.name, None)
        else:
            out[spec.name] = value
    return out


def _unsupported(what: str) -> ApiError:
    return ApiError(
        415, "UnsupportedMediaType",
        f"the body of the request was in an unknown format - {what} cannot be read from "
        f"{CONTENT_TYPE}; accepted media types include: application/json, application/yaml "
        f"(for kubectl, write the object with `--dry-run=client -o yaml` and `kubectl apply -f`)",
    )  # fmt: skip


def _envelope(buf: bytes) -> tuple[dict[str, Any], bytes, str]:
    """Split `runtime.Unknown` into its TypeMeta, raw object bytes and content encoding."""
    type_meta: dict[str, Any] = {}
    raw = b""
    encoding = ""
    for number, wire, value in _fields(buf):
        if wire != _LEN or not isinstance(value, bytes):
            continue
        if number == 1:
            type_meta = _decode_message(value, _TYPE_META)
        elif number == 2:
            raw = value
        elif number == 3:
            encoding = _text(value)
    return type_meta, raw, encoding


def _table(api_version: str, kind: str) -> Message | None:
    """The field table of a kind, or None.

    The workload tables are imported here rather than at the top because they are built from
    this module's primitives; a top-level import either way round would be circular.
    """
    from kubeling.api import protobuf_networking, protobuf_workloads

    key = (api_version, kind)
    return KINDS.get(key) or protobuf_workloads.KINDS.get(key) or protobuf_networking.KINDS.get(key)


def decode(body: bytes) -> dict[str, Any]:
    """Decode a `k8s\\x00`-prefixed protobuf body into a JSON-style object.

    Raises ApiError 415 for kinds without a field table (or an encoded payload) and
    ApiError 400 for bodies that are not well-formed.
    """
    if not body.startswith(MAGIC):
        raise bad_request(f"the {CONTENT_TYPE} body does not start with the k8s protobuf magic")
    try:
        type_meta, raw, encoding = _envelope(body[len(MAGIC) :])
    except _Corrupt as exc:
        raise bad_request(f"unable to decode the protobuf envelope: {exc}") from exc
    api_version = type_meta.get("apiVersion", "")
    kind = type_meta.get("kind", "")
    if not api_version or not kind:
        raise bad_request("the protobuf envelope does not name the object's apiVersion and kind")
    if encoding:
        raise _unsupported(f"a payload with content encoding {encoding!r}")
    message = _table(api_version, kind)
    if message is None:
        raise _unsupported(f"{api_version}, Kind={kind}")
    try:
        obj = _decode_message(raw, message)
    except _Corrupt as exc:
        raise bad_request(
            f"unable to decode {api_version}, Kind={kind} from protobuf: {exc}"
        ) from exc
    return {"apiVersion": api_version, "kind": kind, **obj}
