"""API errors, each one a Kubernetes `Status`.

Every failure a client can see is an `ApiError` carrying the HTTP code, the machine-readable
`reason` and a human message, exactly the fields kubectl and client libraries read:

    ApiError (code, reason)
    ├── 400 BadRequest          malformed body, bad query parameter, strict decoding error
    ├── 401 Unauthorized        missing or wrong bearer token
    ├── 403 Forbidden           the caller may not do this
    ├── 404 NotFound            object, namespace or resource type does not exist
    ├── 405 MethodNotAllowed    the resource exists but not with this verb
    ├── 409 AlreadyExists       create of an existing name
    ├── 409 Conflict            stale resourceVersion or failed precondition
    ├── 410 Expired             watch or continue token older than the history kept
    ├── 413 RequestEntityTooLarge
    ├── 415 UnsupportedMediaType
    ├── 422 Invalid             validation, with `details.causes` naming each field
    └── 500 InternalError       a bug: reported, never hidden
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One field-level problem: kubectl prints `<field>: <message>` per cause."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    name: str = ""
    group: str = ""
    kind: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> dict[str, Any]:
        """The `metav1.Status` body for this error."""
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def not_found(qualified: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        name=name,
        group=group,
        kind=qualified.split(".", 1)[0],
    )


def page_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def method_not_allowed(verb: str, what: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({verb} {what})",
    )


def already_exists(qualified: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        name=name,
        group=group,
        kind=qualified.split(".", 1)[0],
    )


def conflict(qualified: str, name: str, why: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
        name=name,
        group=group,
        kind=qualified.split(".", 1)[0],
    )


STALE_OBJECT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - "
        f"accepted media types include: application/json, application/yaml, "
        f'application/vnd.kubernetes.protobuf (got "{content_type}")',
    )


def invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> ApiError:
    """422 Invalid; the message lists every cause the way Kubernetes formats it."""
    listed = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    joined = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {joined}',
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def required(path: str) -> Cause:
    return Cause(path, "Required value", "FieldValueRequired")


def invalid_value(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, f"Invalid value: {format_value(value)}: {detail}", "FieldValueInvalid")


def forbidden_field(path: str, detail: str) -> Cause:
    return Cause(path, f"Forbidden: {detail}", "FieldValueForbidden")


def unsupported_value(path: str, value: Any, allowed: list[str]) -> Cause:
    quoted = ", ".join(f'"{a}"' for a in allowed)
    return Cause(
        path,
        f"Unsupported value: {format_value(value)}: supported values: {quoted}",
        "FieldValueNotSupported",
    )


def duplicate(path: str, value: Any) -> Cause:
    return Cause(path, f"Duplicate value: {format_value(value)}", "FieldValueDuplicate")


def format_value(value: Any) -> str:
    """Render a value as Kubernetes' field errors do: strings quoted, others as Go prints them."""
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return "{...}" if isinstance(value, dict) else "[...]"
    return str(value)
