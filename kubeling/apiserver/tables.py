"""Server-side printing: `meta.k8s.io/v1` Tables for `kubectl get`.

Why: kubectl asks every `get` for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`
and prints the cells the server renders; without a Table it falls back to a bare NAME/AGE
listing. So the server owns the columns users know (READY, STATUS, RESTARTS, PORT(S), ...),
rendered as Kubernetes' own printers render them (`tables_workloads`, `tables_cluster`).

Contract:
- `render_table(info, objects, ...)` returns the Table for a list (or, with one object, for a
  GET or a watch event). `metadata.resourceVersion` is `list_resource_version` when given: the
  list's for a list (kubectl starts `get -w` from it), the object's for a GET, as Kubernetes
  does; `metadata.continue` is `continue_token`. Columns are those of the kind; kinds without
  a printer get the generic Kubernetes table (Name, Created At). Rows always carry every cell,
  wide (priority 1) columns included, exactly as the Kubernetes API server does; kubectl hides
  them unless `-o wide`. Each row's `object` is the object's `PartialObjectMetadata` for
  `include_object="Metadata"` (the default, which kubectl needs for `-A`, `-L`, `--sort-by`),
  the object itself for `"Object"`, and null for `"None"`; any other value is a 400.
- `parse_table_accept(accept)` tells whether an Accept header asks for a Table.
- `TABLE_CONTENT_TYPE` is the Content-Type of a Table response.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubeling.api.errors import bad_request
from kubeling.api.kinds import ResourceInfo
from kubeling.apiserver import tables_cluster, tables_workloads
from kubeling.apiserver.tables_cells import NAME, Column, KindTable, Obj, get, timestamp
from kubeling.util.timefmt import utcnow

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
INCLUDE_OBJECT = ("Metadata", "Object", "None")

_TABLES: dict[tuple[str, str], KindTable] = {**tables_workloads.TABLES, **tables_cluster.TABLES}


def _created_at(obj: Obj, _now: datetime) -> list[Any]:
    """The generic table: the name, and the creation time in RFC 3339 (Go's zero time if unset)."""
    moment = timestamp(get(obj, "metadata", "creationTimestamp"))
    created = moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "0001-01-01T00:00:00Z"
    return [get(obj, "metadata", "name") or "", created]


GENERIC = KindTable(
    (NAME, Column("Created At", "date", ("ObjectMeta", "creationTimestamp"))), _created_at
)


def table_for(group: str, kind: str) -> KindTable:
    return _TABLES.get((group, kind), GENERIC)


@functools.cache
def _column_definitions(group: str, kind: str) -> tuple[dict[str, Any], ...]:
    return tuple(column.definition() for column in table_for(group, kind).columns)


def _row_object(obj: Obj, include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return dict(obj)
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(get(obj, "metadata") or {}),
    }


def render_table(
    info: ResourceInfo,
    objects: list[dict[str, Any]],
    *,
    include_object: str = "Metadata",
    list_resource_version: str | None = None,
    continue_token: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `meta.k8s.io/v1` Table of `objects` (all of kind `info`), one row per object."""
    mode = include_object or "Metadata"
    if mode not in INCLUDE_OBJECT:
        raise bad_request(
            f"includeObject must be one of {', '.join(INCLUDE_OBJECT)}, not {include_object!r}"
        )
    moment = (now or utcnow()).astimezone(UTC)
    table = table_for(info.group, info.kind)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": table.cells(obj, moment)}
        conditions = table.conditions(obj) if table.conditions else []
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(obj, mode)
        rows.append(row)
    metadata: dict[str, Any] = {}
    if list_resource_version is not None:
        metadata["resourceVersion"] = list_resource_version
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [dict(d) for d in _column_definitions(info.group, info.kind)],
        "rows": rows,
    }


def _media_range(clause: str) -> tuple[str, Mapping[str, str], float]:
    media, *raw_params = (part.strip() for part in clause.split(";"))
    params: dict[str, str] = {}
    for raw in raw_params:
        key, _, value = raw.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    try:
        quality = float(params.pop("q", "1"))
    except ValueError:
        quality = 0.0
    return media.lower(), params, quality


def _is_table(media: str, params: Mapping[str, str]) -> bool:
    return (
        media == "application/json"
        and params.get("as") == "Table"
        and params.get("g") == "meta.k8s.io"
        and params.get("v") in TABLE_VERSIONS
    )


@functools.lru_cache(maxsize=256)
def parse_table_accept(accept: str) -> bool:
    """Whether the preferred acceptable media range of `accept` is a `meta.k8s.io` Table.

    Ranges are ranked by `q` (ties keep header order, as clients list their preference
    first); ranges with `q=0` are refused. The first range that is a Table (`as=Table`,
    `g=meta.k8s.io`, `v=v1` or `v1beta1`) wins, unless a plain range (no `as=`) ranks before it.
    """
    ranked = sorted(
        (_media_range(clause) for clause in accept.split(",") if clause.strip()),
        key=lambda parsed: -parsed[2],
    )
    for media, params, quality in ranked:
        if quality <= 0:
            continue
        if _is_table(media, params):
            return True
        if "as" not in params:
            return False
    return False
