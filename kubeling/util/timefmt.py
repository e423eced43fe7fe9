"""Timestamps as Kubernetes writes them: RFC 3339, UTC, whole seconds, `Z` suffix.

Clients are strict about this (the Python client rejects `""`), so every timestamp kubeling
emits goes through `format_time`; every one it reads goes through `parse_time`, which also
accepts the `+00:00` offsets and fractions that the Python client sends back.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime) -> str:
    """`MicroTime` (events' `eventTime`, leases' `renewTime`): six fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc3339() -> str:
    return format_time(utcnow())


def parse_time(text: str) -> datetime:
    """Parse RFC 3339 (`Z` or numeric offset, optional fraction); raises ValueError."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return moment.astimezone(UTC)
