"""Protobuf field tables for networking.k8s.io/v1 Ingress.

Why: `kubectl create ingress` POSTs its object as protobuf (see `kubeling.api.protobuf`). The
tables follow the field numbers of k8s.io/api `networking/v1` `generated.proto`; `keep_zero`
marks Go pointers (`ingressClassName`, `pathType`), whose empty value must survive. An
IngressRule embeds its IngressRuleValue inline: on the wire a message, in JSON just `http`.
"""

from __future__ import annotations

from kubeling.api.protobuf import INLINE, OBJECT_META, Field, Message, _i, _m, _msg, _s

SERVICE_BACKEND_PORT = _m(_s(1, "name"), _i(2, "number"))

INGRESS_BACKEND = _m(
    _msg(4, "service", _m(_s(1, "name"), _msg(2, "port", SERVICE_BACKEND_PORT))),
    _msg(3, "resource", _m(_s(1, "apiGroup", keep_zero=True), _s(2, "kind"), _s(3, "name"))),
)

HTTP_INGRESS_PATH = _m(
    _s(1, "path"), _s(3, "pathType", keep_zero=True), _msg(2, "backend", INGRESS_BACKEND)
)

INGRESS_RULE = _m(
    _s(1, "host"),
    (
        2,
        Field(
            "ingressRuleValue",
            INLINE,
            message=_m(_msg(1, "http", _m(_msg(1, "paths", HTTP_INGRESS_PATH, repeated=True)))),
        ),
    ),
)

INGRESS_SPEC = _m(
    _s(4, "ingressClassName", keep_zero=True),
    _msg(1, "defaultBackend", INGRESS_BACKEND),
    _msg(2, "tls", _m(_s(1, "hosts", repeated=True), _s(2, "secretName")), repeated=True),
    _msg(3, "rules", INGRESS_RULE, repeated=True),
)

LOAD_BALANCER_INGRESS = _m(
    _s(1, "ip"),
    _s(2, "hostname"),
    _msg(
        4,
        "ports",
        _m(_i(1, "port", keep_zero=True), _s(2, "protocol"), _s(3, "error")),
        repeated=True,
    ),
)

INGRESS = _m(
    _msg(1, "metadata", OBJECT_META),
    _msg(2, "spec", INGRESS_SPEC),
    _msg(
        3,
        "status",
        _m(_msg(1, "loadBalancer", _m(_msg(1, "ingress", LOAD_BALANCER_INGRESS, repeated=True)))),
    ),
)

KINDS: dict[tuple[str, str], Message] = {
    ("networking.k8s.io/v1", "Ingress"): INGRESS,
}
