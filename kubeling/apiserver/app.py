"""The HTTP application: routing, authentication, errors as Status, metrics.

Every response that is not a success is a Kubernetes `Status` with the matching HTTP code:
`ApiError`s raised anywhere below become their Status; anything else is a bug, logged with its
traceback and answered with a 500 InternalError Status (never a hung or reset connection).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kubeling.api import errors
from kubeling.api.kinds import REGISTRY, Registry
from kubeling.apiserver import bodies, discovery
from kubeling.apiserver.openapi import OpenAPI
from kubeling.apiserver.rest import RestHandlers, parse_target
from kubeling.apiserver.watch import WatchMetrics

log = logging.getLogger(__name__)

KUBERNETES_MINOR = "32"
VERSION_INFO = {
    "major": "1",
    "minor": KUBERNETES_MINOR,
    "gitVersion": f"v1.{KUBERNETES_MINOR}.0-kubeling",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-24T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# Readable without a token, as Kubernetes' default RBAC lets anonymous users read them; and
# `/cacerts`, the cluster CA, which a joining agent checks against its node token (certs.py).
_PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz", "/cacerts")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Metrics:
    def __init__(self, watch: WatchMetrics) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "apiserver_request",
            "Requests by verb, resource and code.",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "apiserver_request_duration_seconds",
            "Request latency, excluding watches.",
            ["verb", "resource"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        watchers = Gauge(
            "apiserver_registered_watchers", "Open watch streams.", registry=self.registry
        )
        watchers.set_function(lambda: watch.open)
        closed = Gauge(
            "apiserver_watch_slow_closed",
            "Watchers closed for being too slow.",
            registry=self.registry,
        )
        closed.set_function(lambda: watch.closed_slow)
        # Label lookups cost more than the increments; keep the children per label set.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def observe(self, verb: str, resource: str, code: int, started: float, watch: bool) -> None:
        counter = self._counters.get((verb, resource, code))
        if counter is None:
            counter = self.requests.labels(verb, resource, str(code))
            self._counters[(verb, resource, code)] = counter
        counter.inc()
        if watch:
            return
        histogram = self._histograms.get((verb, resource))
        if histogram is None:
            histogram = self.latency.labels(verb, resource)
            self._histograms[(verb, resource)] = histogram
        histogram.observe(time.perf_counter() - started)


class ApiApp:
    """Builds the aiohttp application over the REST handlers."""

    def __init__(
        self,
        rest: RestHandlers,
        tokens: dict[str, str],
        server_address: str,
        ready: Callable[[], bool],
        registry: Registry = REGISTRY,
        ca_pem: bytes = b"",
    ) -> None:
        self.rest = rest
        self.ca_pem = ca_pem  # served at /cacerts (404 when empty)
        self.tokens = tokens  # bearer token → user name
        self.server_address = server_address
        self.ready = ready
        self.registry = registry
        self.openapi = OpenAPI(registry)
        self.metrics = Metrics(rest.watch_metrics)

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=bodies.MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    # -- middleware ---------------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            # Compared as bytes: compare_digest refuses non-ASCII str (a 500, not a 401).
            presented = token.strip().encode("utf-8", "surrogateescape")
            if scheme.lower() != "bearer" or not any(
                secrets.compare_digest(presented, known.encode()) for known in self.tokens
            ):
                raise errors.unauthorized()
            return
        if not request.path.startswith(_PUBLIC_PATHS):
            raise errors.unauthorized()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        verb = request.method
        resource = _resource_label(request.path)
        try:
            self._authenticate(request)
            response = await handler(request)
        except errors.ApiError as err:
            response = bodies.error_response(err)
        except web.HTTPException as exc:
            # aiohttp's own refusals (e.g. a body over client_max_size) as Status too.
            refusal = errors.ApiError(
                exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason
            )
            if exc.status == 413:
                refusal = errors.too_large(bodies.MAX_BODY)
            response = bodies.error_response(refusal)
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            response = bodies.error_response(errors.internal(f"{type(exc).__name__}: {exc}"))
        self.metrics.observe(verb, resource, response.status, started, "watch" in request.query)
        return response

    # -- routing ------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        segments = [s for s in request.path.split("/") if s]
        if not segments:
            return bodies.json_response({"paths": sorted(self._root_paths())})
        head = segments[0]
        if head in ("api", "apis"):
            return await self._api(request, segments)
        if request.method != "GET":
            raise errors.method_not_allowed(request.method, request.path)
        if head == "version" and len(segments) == 1:
            return bodies.json_response(VERSION_INFO)
        if head == "cacerts" and len(segments) == 1 and self.ca_pem:
            return web.Response(body=self.ca_pem, content_type="text/plain")
        if head in ("healthz", "livez", "readyz"):
            return self._health(head)
        if head == "metrics" and len(segments) == 1:
            return web.Response(
                body=generate_latest(self.metrics.registry),
                headers={"Content-Type": CONTENT_TYPE_LATEST},
            )
        if head == "openapi":
            return self._openapi(segments[1:])
        raise errors.page_not_found()

    def _root_paths(self) -> list[str]:
        paths = [
            "/api",
            "/api/v1",
            "/apis",
            "/healthz",
            "/livez",
            "/readyz",
            "/metrics",
            "/openapi/v3",
            "/version",
        ]
        for group, versions in self.registry.group_versions().items():
            if group:
                paths.append(f"/apis/{group}")
                paths.extend(f"/apis/{group}/{v}" for v in versions)
        return paths

    def _health(self, kind: str) -> web.Response:
        if kind == "readyz" and not self.ready():
            return web.Response(
                status=500, text="[-]watch-cache failed: not ready\nreadyz check failed"
            )
        return web.Response(text="ok", content_type="text/plain")

    def _openapi(self, rest: list[str]) -> web.Response:
        if rest == ["v3"]:
            return web.Response(body=self.openapi.index, content_type="application/json")
        if len(rest) > 1 and rest[0] == "v3":
            body = self.openapi.documents.get("/".join(rest[1:]))
            if body is not None:
                return web.Response(
                    body=body,
                    content_type="application/json",
                    headers={"Cache-Control": "public, immutable"},
                )
        raise errors.page_not_found()

    async def _api(self, request: web.Request, segments: list[str]) -> web.StreamResponse:
        if segments[0] == "api":
            if len(segments) == 1:
                return self._discovery(request, core=True)
            group, version, rest = "", segments[1], segments[2:]
            if version != "v1":
                raise errors.page_not_found()
        else:
            if len(segments) == 1:
                return self._discovery(request, core=False)
            if len(segments) == 2:
                self._only_get(request)
                doc = discovery.api_group(self.registry, segments[1])
                if doc is None:
                    raise errors.page_not_found()
                return bodies.json_response(doc)
            group, version, rest = segments[1], segments[2], segments[3:]
        if not rest:
            self._only_get(request)
            listing = discovery.resource_list(self.registry, group, version)
            if listing is None:
                raise errors.page_not_found()
            return bodies.json_response(listing)
        target = parse_target(self.registry, group, version, rest)
        return await self.rest.handle(request, target)

    def _discovery(self, request: web.Request, core: bool) -> web.Response:
        self._only_get(request)
        aggregated_type = discovery.wants_aggregated(request.headers.get("Accept", ""))
        if aggregated_type:
            body: Any = discovery.aggregated(self.registry, core)
            response = web.Response(body=orjson.dumps(body))
            response.headers["Content-Type"] = aggregated_type
            response.headers["Vary"] = "Accept"
            return response
        if core:
            return bodies.json_response(discovery.api_versions(self.server_address))
        return bodies.json_response(discovery.api_group_list(self.registry))

    @staticmethod
    def _only_get(request: web.Request) -> None:
        if request.method != "GET":
            raise errors.method_not_allowed(request.method, request.path)


_KNOWN_LABELS = frozenset(
    {"", "version", "healthz", "livez", "readyz", "metrics", "openapi", "api", "apis", "cacerts"}
    | {r.plural for r in REGISTRY.resources}
)


def _resource_label(path: str) -> str:
    """A bounded label: the plural resource name, or the top-level path, else "other" (so
    requests for made-up paths cannot grow the metrics without limit)."""
    parts = [p for p in path.split("/") if p]
    label = parts[0] if parts else ""
    if label in ("api", "apis"):
        rest = parts[2:] if label == "api" else parts[3:]
        if len(rest) >= 3 and rest[0] == "namespaces":
            rest = rest[2:]
        label = rest[0] if rest else label
    return label if label in _KNOWN_LABELS else "other"
