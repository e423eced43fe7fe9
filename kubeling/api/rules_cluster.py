"""Semantic rules for Namespaces, Nodes, Events and Leases.

Events keep Kubernetes' two regimes: core/v1 Events only get the legacy checks (the event's
namespace must agree with its involved object's), while events.k8s.io/v1 Events, the API
newer recorders use, are validated strictly (reporting controller, action, reason required).
Rules receive Events in their stored core/v1 form, so field paths use the core names, exactly
as Kubernetes (which validates its internal, core-shaped type) prints them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from kubeling.api import names
from kubeling.api.quantity import QuantityError, from_json
from kubeling.api.rules_meta import (
    Causes,
    duplicate_raw,
    finalizer_name,
    forbidden,
    go_quote,
    immutable,
    integer,
    invalid,
    items,
    label_name,
    not_supported,
    obj,
    required,
    text,
)

_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_PODCIDR_CHANGE = 'node updates may not change podCIDR except from "" to valid'


def namespace(ns: dict[str, Any]) -> Causes:
    out: Causes = []
    for value in obj(ns.get("spec")).get("finalizers") or []:
        out += finalizer_name("spec.finalizers", text(value))
    return out


# -- Nodes -------------------------------------------------------------------------------------


def node(nd: dict[str, Any]) -> Causes:
    spec, status = obj(nd.get("spec")), obj(nd.get("status"))
    out = _taints(spec.get("taints"))
    for section in ("capacity", "allocatable"):
        for name, value in obj(status.get(section)).items():
            try:
                negative = from_json(value).value < 0
            except QuantityError:
                continue
            if negative:
                out.append(
                    invalid(
                        f"status.{section}.{name}",
                        str(from_json(value)),
                        "must be greater than or equal to 0",
                    )
                )
    for index, cidr in enumerate(spec.get("podCIDRs") or []):
        try:
            ipaddress.ip_network(text(cidr), strict=False)
        except ValueError:
            out.append(
                invalid(
                    f"spec.podCIDRs[{index}]",
                    cidr,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                )
            )
    return out


def _taints(taints: Any) -> Causes:
    # Kubernetes reports node taints under metadata (fldPath.Child("taints") of "metadata").
    out: Causes = []
    seen: set[tuple[str, str]] = set()
    for index, taint in items(taints):
        here = f"metadata.taints[{index}]"
        key, value, effect = (text(taint.get(k)) for k in ("key", "value", "effect"))
        out += label_name(f"{here}.key", key)
        msgs = names.label_value(value)
        if msgs:
            out.append(invalid(f"{here}.value", value, ";".join(msgs)))
        if "effect" in taint and taint["effect"] is not None and not effect:
            out.append(required(f"{here}.effect"))
        elif effect and effect not in _EFFECTS:
            out.append(not_supported(f"{here}.effect", effect, _EFFECTS))
        if (key, effect) in seen:
            rendered = (
                f"core.Taint{{Key:{go_quote(key)}, Value:{go_quote(value)}, "
                f"Effect:{go_quote(effect)}, TimeAdded:(*v1.Time)(nil)}}"
            )
            out.append(
                duplicate_raw(here, rendered, "taints must be unique by key and effect pair")
            )
            continue
        seen.add((key, effect))
    return out


def node_update(new: dict[str, Any], old: dict[str, Any]) -> Causes:
    out: Causes = []
    spec, old_spec = obj(new.get("spec")), obj(old.get("spec"))
    old_cidrs = old_spec.get("podCIDRs") or []
    if old_cidrs and old_cidrs != (spec.get("podCIDRs") or []):
        out.append(forbidden("spec.podCIDRs", _PODCIDR_CHANGE))
    old_provider = text(old_spec.get("providerID"))
    if old_provider and old_provider != text(spec.get("providerID")):
        out.append(
            forbidden(
                "spec.providerID", 'node updates may not change providerID except from "" to valid'
            )
        )
    seen: set[Any] = set()
    for index, address in items(obj(new.get("status")).get("addresses")):
        key = (text(address.get("type")), text(address.get("address")))
        if key in seen:
            rendered = f"core.NodeAddress{{Type:{go_quote(key[0])}, Address:{go_quote(key[1])}}}"
            out.append(duplicate_raw(f"status.addresses[{index}]", rendered))
        seen.add(key)
    return out


# -- Events ------------------------------------------------------------------------------------


def event(ev: dict[str, Any], strict: bool) -> Causes:
    """ValidateEventCreate; `strict` for events written through events.k8s.io/v1."""
    out: Causes = []
    if strict:
        series = ev.get("series")
        if series is not None:
            series = obj(series)
            if integer(series.get("count")) < 2:
                out.append(invalid("series.count", "", "should be at least 2"))
            if not series.get("lastObservedTime"):
                out.append(required("series.lastObservedTime"))
        if ev.get("type") not in ("Normal", "Warning"):
            out.append(invalid("type", "", f"has invalid value: {text(ev.get('type'))}"))
        for key in ("firstTimestamp", "lastTimestamp"):
            if ev.get(key):
                out.append(invalid(key, "", "needs to be unset"))
        if integer(ev.get("count")):
            out.append(invalid("count", "", "needs to be unset"))
        source = obj(ev.get("source"))
        if source.get("component") or source.get("host"):
            out.append(invalid("source", "", "needs to be unset"))
    return _legacy_event(ev) + out


def _legacy_event(ev: dict[str, Any]) -> Causes:
    out: Causes = []
    event_ns = text(obj(ev.get("metadata")).get("namespace"))
    involved_ns = text(obj(ev.get("involvedObject")).get("namespace"))
    mismatch = invalid("involvedObject.namespace", involved_ns, "does not match event.namespace")
    if not ev.get("eventTime"):
        if (not involved_ns and event_ns not in ("", "default")) or (
            involved_ns and involved_ns != event_ns
        ):
            out.append(mismatch)
    else:
        if not involved_ns and event_ns not in ("default", "kube-system"):
            out.append(mismatch)
        controller = text(ev.get("reportingComponent"))
        if not controller:
            out.append(required("reportingController"))
        out += [
            invalid("reportingController", controller, m) for m in names.qualified_name(controller)
        ]
        for key, path, limit in (
            ("reportingInstance", "reportingInstance", 128),
            ("action", "action", 128),
            ("reason", "reason", 128),
        ):
            value = text(ev.get(key))
            if not value:
                out.append(required(path))
            if len(value) > limit:
                out.append(invalid(path, "", f"can have at most {limit} characters"))
        if len(text(ev.get("message"))) > 1024:
            out.append(invalid("message", "", "can have at most 1024 characters"))
    out += [invalid("namespace", event_ns, m) for m in names.dns1123_subdomain(event_ns)]
    return out


def event_update(new: dict[str, Any], old: dict[str, Any]) -> Causes:
    """The events.k8s.io/v1 rule that what an event reports never changes."""
    out: Causes = []
    for key in (
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    ):
        path = "reportingController" if key == "reportingComponent" else key
        out += immutable(
            path,
            new.get(key),
            old.get(key),
            rendered="{...}" if isinstance(new.get(key), dict) else "",
        )
    return out


# -- Leases ------------------------------------------------------------------------------------


def lease(ls: dict[str, Any]) -> Causes:
    spec = obj(ls.get("spec"))
    out: Causes = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and integer(duration) <= 0:
        out.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and integer(transitions) < 0:
        out.append(
            invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
        )
    return out
