"""Server failures back into `ApiError`: the client's half of the `Status` contract.

The API server answers every failure with a `metav1.Status` whose `code` equals the HTTP status
(see `kubeling.api.errors`). The client turns that body back into the same `ApiError`, so a
caller checks `err.code == 404` or `err.reason == "AlreadyExists"` whichever side of the wire
it runs on. A watch's `ERROR` event carries a Status too (410 Expired after compaction) and is
raised the same way.

A body that is not a Status (a proxy in between, a crashed server) still becomes an
`ApiError`: the HTTP code, the reason Kubernetes' client-go would assign to that code
(`NewGenericServerResponse`), and the body's text as the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from kubeling.api.errors import ApiError, Cause

# client-go's reasons for bare HTTP codes (k8s.io/apimachinery/pkg/api/errors).
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    return _REASONS.get(code, "Unknown")


def error_from_status(status: Mapping[str, Any], http_code: int | None = None) -> ApiError:
    """The `ApiError` a `Status` body describes (`http_code` when the body has no code)."""
    details = status.get("details") or {}
    if not isinstance(details, Mapping):
        details = {}
    code = status.get("code") or http_code or 500
    causes = [
        Cause(str(c.get("field", "")), str(c.get("message", "")), str(c.get("reason", "")))
        for c in details.get("causes") or []
        if isinstance(c, Mapping)
    ]
    retry = details.get("retryAfterSeconds")
    return ApiError(
        code=int(code),
        reason=str(status.get("reason") or reason_for(int(code))),
        message=str(status.get("message") or ""),
        name=str(details.get("name") or ""),
        group=str(details.get("group") or ""),
        kind=str(details.get("kind") or ""),
        causes=causes,
        retry_after=int(retry) if isinstance(retry, int) else None,
    )


def error_from_response(code: int, body: bytes) -> ApiError:
    """The `ApiError` for a non-2xx response with this body."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, Mapping) and parsed.get("kind") == "Status":
        return error_from_status(parsed, code)
    text = body.decode("utf-8", "replace").strip()[:1024]
    return ApiError(code, reason_for(code), text or f"the server responded with HTTP {code}")
