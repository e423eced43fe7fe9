"""Conversion between API views that share one stored resource.

Kubernetes stores one Event resource and serves it as both `v1` Event (core) and
`events.k8s.io/v1` Event, converting field by field. kubeling does the same: the core form is
the storage form, and `events.k8s.io/v1` objects are converted on the way in and out, so an
event written through either API is seen through both.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.kinds import REGISTRY, ResourceInfo

# (events.k8s.io/v1 field, core/v1 field) pairs that only change name.
_RENAMED = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)
_SHARED = (
    "metadata",
    "reason",
    "type",
    "eventTime",
    "series",
    "action",
    "related",
    "reportingInstance",
)


def _is_events_v1(info: ResourceInfo) -> bool:
    return info.group == "events.k8s.io"


def storage_kind(info: ResourceInfo) -> ResourceInfo:
    """The kind whose rules (defaults, validation) apply to the stored form of `info`."""
    if _is_events_v1(info):
        core = REGISTRY.by_path("", "v1", "events")
        if core is not None:
            return core
    return info


def to_storage(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """The stored (core) form of an object received through `info`'s API."""
    if not _is_events_v1(info):
        return obj
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Event"}
    for name in _SHARED:
        if name in obj:
            out[name] = obj[name]
    for new, old in _RENAMED:
        if new in obj:
            out[old] = obj[new]
    series = obj.get("series")
    if isinstance(series, dict):
        out["series"] = {
            "count": series.get("count"),
            "lastObservedTime": series.get("lastObservedTime"),
        }
    return out


def from_storage(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as served through `info`'s API, from its stored form."""
    if not _is_events_v1(info):
        return obj
    out: dict[str, Any] = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for name in _SHARED:
        if name in obj:
            out[name] = obj[name]
    for new, old in _RENAMED:
        if old in obj:
            out[new] = obj[old]
    if "eventTime" not in out or out["eventTime"] is None:
        # events.k8s.io requires eventTime; Kubernetes fills it from the first timestamp.
        out["eventTime"] = obj.get("firstTimestamp") or obj.get("metadata", {}).get(
            "creationTimestamp"
        )
    return out
