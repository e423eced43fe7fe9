"""Request bodies in, JSON out: the media types Kubernetes clients send and expect.

In: JSON (also when no Content-Type is given: the Python client 37 sends none), YAML,
the protobuf envelope (only `kubectl create <generator>` sends it), and the four patch types.
Out: always JSON, with `Warning: 299 - "..."` headers for every warning collected.
A body larger than Kubernetes' 3 MiB limit is refused with 413 before it is read whole.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from aiohttp import web

from kubeling.api import errors, protobuf

MAX_BODY = 3 * 1024 * 1024

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

try:
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _YamlLoader = yaml.SafeLoader


def media_type(request: web.Request) -> str:
    raw = request.headers.get("Content-Type", "")
    return raw.split(";", 1)[0].strip().lower() or JSON


async def read_body(request: web.Request) -> bytes:
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise errors.too_large(MAX_BODY)
    # The whole body, up to the limit (aiohttp's client_max_size): a bigger one is a 413.
    return await request.read()


def parse_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise errors.bad_request(f"the request body is not valid JSON: {err}") from None


def parse_yaml(data: bytes) -> Any:
    try:
        return yaml.load(data, Loader=_YamlLoader)
    except yaml.YAMLError as err:
        raise errors.bad_request(f"the request body is not valid YAML: {err}") from None


def decode(data: bytes, content_type: str) -> Any:
    """The object in a create/update body."""
    if not data.strip():
        raise errors.bad_request("the request body is empty")
    if content_type in (JSON, "application/json-seq", "*/*"):
        return parse_json(data)
    if content_type in (YAML, "application/x-yaml", "text/yaml"):
        return parse_yaml(data)
    if content_type == PROTOBUF:
        return protobuf.decode(data)
    raise errors.unsupported_media_type(content_type)


def decode_patch(data: bytes, content_type: str) -> Any:
    if content_type not in PATCH_TYPES:
        raise errors.ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - "
            f"accepted media types include: {', '.join(PATCH_TYPES)}",
        )
    if not data.strip():
        raise errors.bad_request("the request body is empty")
    if content_type == APPLY_PATCH:
        return parse_yaml(data)
    return parse_json(data)


def json_response(
    body: Any, status: int = 200, warnings: list[str] | None = None, content_type: str = JSON
) -> web.Response:
    response = web.Response(body=orjson.dumps(body), status=status, content_type=content_type)
    add_warnings(response, warnings)
    return response


def add_warnings(response: web.StreamResponse, warnings: list[str] | None) -> None:
    seen: set[str] = set()
    for text in warnings or ():
        if text in seen:
            continue
        seen.add(text)
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')


def error_response(err: errors.ApiError) -> web.Response:
    response = json_response(err.status(), status=err.code)
    if err.retry_after is not None:
        response.headers["Retry-After"] = str(err.retry_after)
    return response
