"""Query parameters as the API reads them: booleans and integers, with a 400 `Status` for a
value that is neither. Shared by the API server and the node agent's endpoint, which both
answer requests kubectl shapes the same way."""

from __future__ import annotations

from collections.abc import Mapping

from kubeling.api import errors
from kubeling.util.parse import parse_bool


def query_bool(query: Mapping[str, str], name: str) -> bool:
    """Absent or empty is false; otherwise Go's strconv.ParseBool spellings."""
    raw = query.get(name)
    if raw is None or raw == "":
        return False
    try:
        return parse_bool(raw)
    except ValueError:
        raise errors.bad_request(f"invalid value for {name}: {raw!r}") from None


def query_int(query: Mapping[str, str], name: str) -> int | None:
    """Absent or empty is None."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f"invalid value for {name}: {raw!r}: must be an integer") from None
