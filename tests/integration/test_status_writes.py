"""Status and binding writes: only what they may change is checked again, with the same errors.

`pods/status` and `pods/binding` skip the checks of the unchanged spec (see `rules.py` and
`Registry._stored_spec`); these tests pin the errors such writes got before that change,
Status for Status, and that a status write still ignores the spec it is sent.
"""

from __future__ import annotations

import copy
from typing import Any

from client_support import Http, pod


def _created(http: Http, ns: str, name: str) -> dict[str, Any]:
    reply = http.json("POST", f"/api/v1/namespaces/{ns}/pods", pod(name))
    assert reply.status == 201, reply.json()
    return reply.json()


def _put_status(http: Http, ns: str, obj: dict[str, Any], query: str = "") -> Any:
    path = f"/api/v1/namespaces/{ns}/pods/{obj['metadata']['name']}/status{query}"
    return http.json("PUT", path, obj)


def _error(reply: Any) -> tuple[int, str, str, list[Any]]:
    status = reply.json()
    causes = (status.get("details") or {}).get("causes") or []
    return reply.status, status["reason"], status["message"], causes


def test_status_write_with_the_stored_spec_still_checks_status_types(http: Http, ns: str) -> None:
    stored = _created(http, ns, "typed")
    sent = copy.deepcopy(stored)
    sent["status"]["conditions"] = [{"type": "Ready", "status": 5}]

    reply = _put_status(http, ns, sent)

    assert _error(reply) == (
        400,
        "BadRequest",
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal number into '
        "Go struct field PodCondition.status.conditions.status of type string",
        [],
    )


def test_status_write_still_checks_the_types_of_a_spec_it_ignores(http: Http, ns: str) -> None:
    sent = _created(http, ns, "spec-typed")
    sent["spec"]["terminationGracePeriodSeconds"] = "30"

    reply = _put_status(http, ns, sent)

    assert _error(reply) == (
        400,
        "BadRequest",
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into '
        "Go struct field PodSpec.spec.terminationGracePeriodSeconds of type int64",
        [],
    )


def test_status_write_strict_unknown_fields_in_status_and_spec(http: Http, ns: str) -> None:
    sent = _created(http, ns, "strict")
    sent["status"]["bogus"] = 1
    sent["spec"]["alsoBogus"] = 1

    reply = _put_status(http, ns, sent, "?fieldValidation=Strict")

    assert _error(reply) == (
        400,
        "BadRequest",
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.alsoBogus", unknown field "status.bogus"',
        [],
    )


def test_status_write_warns_of_unknown_status_fields(http: Http, ns: str) -> None:
    sent = _created(http, ns, "warned")
    sent["status"]["bogus"] = 1

    reply = _put_status(http, ns, sent)

    assert reply.status == 200, reply.json()
    assert reply.headers.get_all("Warning") == ['299 - "unknown field \\"status.bogus\\""']
    assert "bogus" not in reply.json()["status"]


def test_status_write_ignores_the_spec_it_is_sent(http: Http, ns: str) -> None:
    stored = _created(http, ns, "ignored")
    sent = copy.deepcopy(stored)
    sent["spec"]["containers"][0]["image"] = "other:1"
    sent["spec"]["activeDeadlineSeconds"] = -5  # invalid, and ignored
    sent["metadata"]["labels"] = {"app": "changed"}
    sent["status"]["phase"] = "Running"
    sent["status"]["podIP"] = "10.0.0.7"

    reply = _put_status(http, ns, sent)

    assert reply.status == 200, reply.json()
    written = reply.json()
    assert written["spec"] == stored["spec"]
    assert written["metadata"]["labels"] == {"app": "ignored"}
    assert (written["status"]["phase"], written["status"]["podIP"]) == ("Running", "10.0.0.7")
    got = http.json("GET", f"/api/v1/namespaces/{ns}/pods/ignored").json()
    assert got["spec"] == stored["spec"]


def test_node_status_rules_still_run(http: Http) -> None:
    node = {"metadata": {"name": "status-rules-node"}, "spec": {}}
    assert http.json("POST", "/api/v1/nodes", node).status == 201
    node["status"] = {
        "capacity": {"cpu": "-1"},
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}] * 2,
    }

    reply = http.json("PUT", "/api/v1/nodes/status-rules-node/status", node)

    code, reason, message, causes = _error(reply)
    assert (code, reason) == (422, "Invalid")
    assert message == (
        'Node "status-rules-node" is invalid: [status.addresses[1]: Duplicate value: '
        'core.NodeAddress{Type:"InternalIP", Address:"10.0.0.1"}, status.capacity.cpu: '
        'Invalid value: "-1": must be greater than or equal to 0, status.allocatable.cpu: '
        'Invalid value: "-1": must be greater than or equal to 0]'
    )
    assert [c["field"] for c in causes] == [
        "status.addresses[1]",
        "status.capacity.cpu",
        "status.allocatable.cpu",
    ]


def test_namespace_status_write_still_defaults_the_phase(http: Http) -> None:
    assert http.json("POST", "/api/v1/namespaces", {"metadata": {"name": "phase-d"}}).status == 201
    body = {"metadata": {"name": "phase-d"}, "status": {}}

    reply = http.json("PUT", "/api/v1/namespaces/phase-d/status", body)

    assert reply.status == 200, reply.json()
    assert reply.json()["status"] == {"phase": "Active"}


def test_binding_to_an_invalid_node_name_is_still_invalid(http: Http, ns: str) -> None:
    _created(http, ns, "bound")
    binding = {"metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "Bad_Node"}}

    reply = http.json("POST", f"/api/v1/namespaces/{ns}/pods/bound/binding", binding)

    code, reason, message, causes = _error(reply)
    assert (code, reason) == (422, "Invalid")
    assert message.startswith('Pod "bound" is invalid: spec.nodeName: Invalid value: "Bad_Node"')
    assert {c["field"] for c in causes} == {"spec.nodeName"}
