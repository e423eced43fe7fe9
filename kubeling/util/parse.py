"""Parsing of query-string values the way Go's strconv does, because clients differ.

kubectl and the Python client 37 send `watch=true`, older Python clients `watch=True`;
Kubernetes accepts both because it parses with `strconv.ParseBool`.
"""

from __future__ import annotations

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool; raises ValueError on anything else."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"invalid boolean {text!r}")
