"""Semantic rules for apps/v1 Deployments and ReplicaSets (pkg/apis/apps/validation).

A controller owns the pods its selector matches, so the selector must be non-empty, must
match the pod template's labels, and (in apps/v1) can never change: a changed selector would
orphan the existing ReplicaSets and pods. The pod template is validated as a pod spec, except
that its restart policy must be Always, since controller-managed pods are restarted in place.
"""

from __future__ import annotations

from typing import Any

from kubeling.api import names
from kubeling.api.rules_meta import (
    Causes,
    forbidden,
    go_label_selector,
    go_quote,
    go_string_map,
    immutable,
    integer,
    invalid,
    invalid_raw,
    label_selector,
    nonnegative,
    not_supported,
    obj,
    required,
    selector_matches,
    text,
)
from kubeling.api.rules_pod import template

_STRATEGIES = ["Recreate", "RollingUpdate"]


def workload_spec(spec: dict[str, Any], deployment: bool) -> Causes:
    """ValidateDeploymentSpec / ValidateReplicaSetSpec."""
    out = nonnegative("spec.replicas", spec.get("replicas"))
    if not deployment:
        out += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    selector = spec.get("selector")
    selector_ok = True
    if isinstance(selector, dict):
        errs = label_selector("spec.selector", selector)
        out += errs
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            out.append(
                invalid_raw(
                    "spec.selector",
                    go_label_selector(selector),
                    "empty selector is invalid for deployment",
                )
            )
        if errs:
            selector_ok = False
            out.append(
                invalid_raw("spec.selector", go_label_selector(selector), "invalid label selector")
            )
    if selector_ok:
        out += _template(spec, selector)
    if deployment:
        out += _strategy(obj(spec.get("strategy")))
        out += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
        out += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None:
            out += nonnegative("spec.progressDeadlineSeconds", deadline)
            if integer(deadline) <= integer(spec.get("minReadySeconds")):
                out.append(
                    invalid(
                        "spec.progressDeadlineSeconds",
                        deadline,
                        "must be greater than minReadySeconds",
                    )
                )
    return out


def _template(spec: dict[str, Any], selector: Any) -> Causes:
    """ValidatePodTemplateSpecForReplicaSet."""
    out: Causes = []
    tpl = obj(spec.get("template"))
    meta = obj(tpl.get("metadata"))
    template_labels = meta.get("labels")
    empty_selector = isinstance(selector, dict) and not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    )
    # A missing selector matches nothing (labels.Nothing()); an empty one everything.
    matches = isinstance(selector, dict) and selector_matches(selector, obj(template_labels))
    if not empty_selector and not matches:
        out.append(
            invalid_raw(
                "spec.template.metadata.labels",
                go_string_map(template_labels),
                "`selector` does not match template `labels`",
            )
        )
    out += template(tpl, "spec.template")
    pod = obj(tpl.get("spec"))
    restart = pod.get("restartPolicy")
    if restart and restart != "Always":
        out.append(not_supported("spec.template.spec.restartPolicy", restart, ["Always"]))
    if pod.get("activeDeadlineSeconds") is not None:
        out.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            )
        )
    return out


def _strategy(strategy: dict[str, Any]) -> Causes:
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [
                forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    if kind == "RollingUpdate":
        if rolling is None:
            return [
                required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")
            ]
        return _rolling_update(obj(rolling), "spec.strategy.rollingUpdate")
    rendered = f"apps.DeploymentStrategy{{Type:{go_quote(text(kind))}, RollingUpdate:" + (
        "(*apps.RollingUpdateDeployment)(nil)}" if rolling is None else "{...}}"
    )
    return [not_supported("spec.strategy", kind, _STRATEGIES, rendered=rendered)]


def _int_or_percent(value: Any) -> tuple[str, int]:
    """(bare rendering, value) of an IntOrString as getIntOrPercentValue reads it: a valid
    percent's number, an int, or a string's Atoi (0 when it is not a number)."""
    if isinstance(value, str):
        digits = value[:-1] if not names.percent(value) else value
        return value, int(digits) if digits.isdigit() and digits.isascii() else 0
    return str(integer(value)), integer(value)


def _rolling_update(rolling: dict[str, Any], path: str) -> Causes:
    out: Causes = []
    values = {}
    for key in ("maxUnavailable", "maxSurge"):
        raw = rolling.get(key)
        rendered, number = _int_or_percent(raw)
        values[key] = (rendered, number)
        here = f"{path}.{key}"
        if isinstance(raw, str):
            out += [invalid_raw(here, rendered, msg) for msg in names.percent(raw)]
        elif integer(raw) < 0:
            out.append(invalid(here, integer(raw), "must be greater than or equal to 0"))
    (unavailable, unavailable_n), (_, surge_n) = values["maxUnavailable"], values["maxSurge"]
    if unavailable_n == 0 and surge_n == 0:
        out.append(
            invalid_raw(f"{path}.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0")
        )
    raw = rolling.get("maxUnavailable")
    if isinstance(raw, str) and not names.percent(raw) and int(raw[:-1]) > 100:
        out.append(invalid_raw(f"{path}.maxUnavailable", raw, "must not be greater than 100%"))
    return out


def workload_update(spec: dict[str, Any], old_spec: dict[str, Any]) -> Causes:
    """The apps/v1 rule that a controller's selector never changes."""
    selector, old_selector = spec.get("selector"), old_spec.get("selector")
    rendered = go_label_selector(selector) if isinstance(selector, dict) else "null"
    return immutable(
        "spec.selector", _canonical_selector(selector), _canonical_selector(old_selector), rendered
    )


def _canonical_selector(selector: Any) -> tuple[Any, Any] | None:
    """Go's semantic equality: nil and empty maps and lists are equal."""
    if not isinstance(selector, dict):
        return None
    return (selector.get("matchLabels") or None, selector.get("matchExpressions") or None)
