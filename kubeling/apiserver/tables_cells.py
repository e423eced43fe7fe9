"""The building blocks of server-side tables: columns, per-kind printers and cell formats.

Why: `kubectl get` prints whatever cells the server renders, so every format here mirrors
what Kubernetes' own printers produce for the same object, string for string: ages in
`HumanDuration` form ("45s", "3m20s", "5h", "2d3h"), label maps as sorted `k=v` lists, label
selectors as Kubernetes writes them, `<none>` placeholders. Printers read JSON objects and
tolerate any missing field (a field that is absent counts as its Go zero value).

Contract: a `KindTable` names its columns and a `cells(obj, now)` function returning one cell
per column, in order, wide (priority 1) columns included: the server always renders wide rows
and kubectl hides priority-1 columns unless `-o wide`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubeling.api import schema
from kubeling.util.timefmt import parse_time

Obj = Mapping[str, Any]
Cells = Callable[[Obj, datetime], list[Any]]
Conditions = Callable[[Obj], list[dict[str, str]]]

_API = "io.k8s.api."
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."


@dataclass(frozen=True)
class Column:
    """A `TableColumnDefinition`.

    `doc` is either a literal description or `(definition, property)`: the description is then
    read from the OpenAPI schema of that field (e.g. `("core.v1.PodStatus", "podIP")`), the
    text Kubernetes' printers take from the same Go doc comments.
    """

    name: str
    type: str = "string"
    doc: str | tuple[str, str] = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": _describe(self.doc),
            "priority": self.priority,
        }


@dataclass(frozen=True)
class KindTable:
    columns: tuple[Column, ...]
    cells: Cells
    conditions: Conditions | None = None


def _describe(doc: str | tuple[str, str]) -> str:
    if isinstance(doc, str):
        return doc
    definition, prop = doc
    prefix = _META if definition == "ObjectMeta" else _API
    found = schema.definitions().get(prefix + definition, {}).get("properties", {}).get(prop, {})
    description = found.get("description", "")
    return description if isinstance(description, str) else ""


NAME = Column("Name", format="name", doc=("ObjectMeta", "name"))
AGE = Column("Age", doc=("ObjectMeta", "creationTimestamp"))
CONTAINERS = Column("Containers", priority=1, doc="Names of each container in the template.")
IMAGES = Column("Images", priority=1, doc="Images referenced by each container in the template.")


# ---------------------------------------------------------------------------------------------
# Field access


def get(obj: Any, *path: str) -> Any:
    """`obj[path[0]][path[1]]...`, or None as soon as a step is missing or not an object."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def text(obj: Any, *path: str) -> str:
    value = get(obj, *path)
    return value if isinstance(value, str) else ""


def number(obj: Any, *path: str, default: int = 0) -> int:
    value = get(obj, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def items(obj: Any, *path: str) -> list[Any]:
    value = get(obj, *path)
    return value if isinstance(value, list) else []


def mapping(obj: Any, *path: str) -> Mapping[str, Any]:
    value = get(obj, *path)
    return value if isinstance(value, Mapping) else {}


def timestamp(value: Any) -> datetime | None:
    """Parse a Time/MicroTime; None for a missing or unreadable one (Go's zero time)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Cell formats


def human_duration(seconds_total: float) -> str:
    """Kubernetes' `duration.HumanDuration`: about 2-3 significant figures, never more.

    Up to 2 minutes in seconds; then minutes (with seconds below 10 minutes); hours (with
    minutes below 8 hours); days (with hours below 8 days); years (with days below 8 years).
    A clock skew of less than 2 seconds into the future reads "0s", more is "<invalid>".
    """
    seconds = int(seconds_total)  # truncation toward zero, as Go's int(d.Seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def since(value: Any, now: datetime) -> str:
    """The age of a timestamp as kubectl shows it; `<unknown>` when there is none."""
    moment = timestamp(value)
    if moment is None:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


def age(obj: Obj, now: datetime) -> str:
    return since(get(obj, "metadata", "creationTimestamp"), now)


def name(obj: Obj) -> str:
    return text(obj, "metadata", "name")


def format_labels(labels: Mapping[str, Any]) -> str:
    """`labels.FormatLabels`: sorted `k=v` pairs, `<none>` for an empty map."""
    if not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def selector_string(selector: Any) -> str:
    """A `LabelSelector` as `labels.Selector.String()` writes it ("" when it selects all).

    Requirements are sorted by key; set operators list their values sorted:
    `app=web,tier in (a,b),!legacy`.
    """
    if not isinstance(selector, Mapping):
        return ""
    requirements: list[tuple[str, str]] = [
        (key, f"{key}={value}") for key, value in mapping(selector, "matchLabels").items()
    ]
    for expr in items(selector, "matchExpressions"):
        key = text(expr, "key")
        values = ",".join(sorted(str(v) for v in items(expr, "values")))
        rendered = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(text(expr, "operator"), "<error>")
        requirements.append((key, rendered))
    requirements.sort(key=lambda req: req[0])
    return ",".join(rendered for _, rendered in requirements)


def format_selector(selector: Any) -> str:
    """`metav1.FormatLabelSelector`: like `selector_string` but `<none>` when empty."""
    return selector_string(selector) or "<none>"


def container_cells(containers: Iterable[Any]) -> list[str]:
    """The wide `Containers` and `Images` cells of a pod template."""
    listed = [c for c in containers if isinstance(c, Mapping)]
    return [",".join(text(c, "name") for c in listed), ",".join(text(c, "image") for c in listed)]


def with_more(listed: list[str], total: int, limit: int = 3) -> str:
    """The first `limit` entries, then ` + N more...`, as Kubernetes shortens long lists."""
    shown = ",".join(listed[:limit])
    if total > limit:
        return f"{shown} + {total - limit} more..."
    return shown
