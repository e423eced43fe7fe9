"""Ingress: one HTTP(S) address in front of many Services, routed by host and path.

    ingress = IngressProxy(client, http_port=8080, https_port=8443)
    await ingress.start()

Which Ingresses: those whose `ingressClassName` names an IngressClass with controller
`kubeling.dev/ingress`, and those without a class when such an IngressClass is marked
default (`ingressclass.kubernetes.io/is-default-class: "true"`).

Routing (the Ingress API's rules):

* the rule whose `host` equals the request's host (without port) wins; a wildcard host
  `*.example.com` matches one extra label; a rule without host matches any host;
* within it, paths: `Exact` must equal the request path; `Prefix` matches whole path
  elements (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`); `ImplementationSpecific`
  is treated as `Prefix`; the longest match wins, `Exact` before `Prefix` on ties;
* nothing matched → `spec.defaultBackend` of the Ingresses, else 404.

Forwarding goes straight to the Service's **ready** endpoints (from EndpointSlices; the
serving-and-terminating ones when none is ready, as the service proxy chooses them), round
robin, with `X-Forwarded-For`, `-Proto`, `-Host` and `-Port` added. A connection
failure retries the next endpoint for idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE);
errors are answered with a short body: 503 when the Service has no ready endpoint, 502 when
no endpoint could be reached, 504 when the backend did not answer in `timeout` seconds.
Each endpoint has its own connection pool, retired when the endpoint stops being ready (no
new request uses it; it closes once its requests in flight have finished), so a terminating
pod gets no new requests over kept-alive connections. With a `report` (`drain.ProxyReport`)
the EndpointSlice revision routing reflects is published, so that agents hold a deleted pod's
SIGTERM until this proxy no longer sends it requests.

TLS: `spec.tls` entries name Secrets (`tls.crt`, `tls.key`) for their hosts; the HTTPS
listener picks the certificate by SNI. Each served Ingress gets
`status.loadBalancer.ingress: [{ip: <listen address>}]`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.cache import copy
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.network.drain import ProxyReport, revision_of
from kubeling.network.servicetable import Backend, port_backends

log = logging.getLogger(__name__)

CONTROLLER = "kubeling.dev/ingress"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


INGRESSES = REGISTRY.resource("networking.k8s.io", "v1", "ingresses")
CLASSES = REGISTRY.resource("networking.k8s.io", "v1", "ingressclasses")
SERVICES = REGISTRY.resource("", "v1", "services")
SLICES = REGISTRY.resource("discovery.k8s.io", "v1", "endpointslices")
SECRETS = REGISTRY.resource("", "v1", "secrets")


@dataclass(frozen=True)
class Target:
    namespace: str
    service: str
    port: Mapping[str, Any]  # {"number": n} or {"name": s}


def path_matches(kind: str, rule_path: str, path: str) -> bool:
    if kind == "Exact":
        return path == rule_path
    prefix = rule_path.rstrip("/")
    if not prefix:
        return True
    return path == prefix or path.startswith(prefix + "/")


def host_matches(rule_host: str, host: str) -> bool:
    if not rule_host:
        return True
    if rule_host.startswith("*."):
        suffix = rule_host[1:]
        return host.endswith(suffix) and "." not in host[: -len(suffix)]
    return host == rule_host


def route(ingresses: list[Mapping[str, Any]], host: str, path: str) -> Target | None:
    """The backend for a request (see the module docstring)."""
    best: tuple[int, int, int, Target] | None = None  # (host specificity, length, exact)
    for ingress in ingresses:
        namespace = str(ingress["metadata"].get("namespace"))
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            rule_host = rule.get("host") or ""
            if not host_matches(rule_host, host):
                continue
            specificity = (
                2 if rule_host and not rule_host.startswith("*") else (1 if rule_host else 0)
            )
            for p in (rule.get("http") or {}).get("paths") or []:
                kind = p.get("pathType") or "Prefix"
                rule_path = p.get("path") or "/"
                if not path_matches(kind, rule_path, path):
                    continue
                service = (p.get("backend") or {}).get("service") or {}
                if not service:
                    continue
                target = Target(namespace, service["name"], service.get("port") or {})
                key = (specificity, len(rule_path.rstrip("/")), 1 if kind == "Exact" else 0)
                if best is None or key > best[:3]:
                    best = (*key, target)
    if best is not None:
        return best[3]
    for ingress in ingresses:
        default = ((ingress.get("spec") or {}).get("defaultBackend") or {}).get("service")
        if default:
            namespace = str(ingress["metadata"].get("namespace"))
            return Target(namespace, default["name"], default.get("port") or {})
    return None


class Endpoints:
    """Ready endpoints of Service ports, with one connection pool per endpoint."""

    def __init__(self, services: Informer, slices: Informer) -> None:
        self.services = services
        self.slices = slices
        self._turn = itertools.count()
        self._pools: dict[Backend, aiohttp.ClientSession] = {}
        self._busy: dict[aiohttp.ClientSession, int] = {}  # requests in flight per pool

    def ready(self, target: Target) -> list[Backend]:
        service = self.services.cache.get(f"{target.namespace}/{target.service}")
        if service is None:
            return []
        port_name = None
        for port in (service.get("spec") or {}).get("ports") or []:
            if ("number" in target.port and port.get("port") == target.port["number"]) or (
                "name" in target.port and port.get("name") == target.port["name"]
            ):
                port_name = port.get("name") or ""
        if port_name is None:
            return []
        own = [
            slice_
            for slice_ in self.slices.cache.list(target.namespace)
            if (slice_["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
            == target.service
        ]
        return list(port_backends(own, port_name))

    def order(self, backends: list[Backend]) -> list[Backend]:
        if not backends:
            return []
        start = next(self._turn) % len(backends)
        return backends[start:] + backends[:start]

    def pool(self, backend: Backend, timeout: float) -> aiohttp.ClientSession:
        session = self._pools.get(backend)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, force_close=False),
                timeout=aiohttp.ClientTimeout(total=None, connect=2.0, sock_read=timeout),
                auto_decompress=False,
            )
            self._pools[backend] = session
        return session

    @contextlib.asynccontextmanager
    async def using(self, backend: Backend, timeout: float) -> AsyncIterator[aiohttp.ClientSession]:
        """The endpoint's pool for one request; a pool retired meanwhile closes after it."""
        session = self.pool(backend, timeout)
        self._busy[session] = self._busy.get(session, 0) + 1
        try:
            yield session
        finally:
            left = self._busy[session] - 1
            if left:
                self._busy[session] = left
            else:
                del self._busy[session]
                if self._pools.get(backend) is not session:
                    await session.close()

    async def prune(self, live: set[Backend]) -> None:
        """Retire the pools of endpoints no longer ready; idle ones close now."""
        for backend in [b for b in self._pools if b not in live]:
            session = self._pools.pop(backend)
            if session not in self._busy:
                await session.close()

    async def close(self) -> None:
        for session in [*self._pools.values(), *self._busy]:
            await session.close()
        self._pools.clear()
        self._busy.clear()


async def ensure_default_ingress_class(client: Client, name: str = "kubeling") -> None:
    """The IngressClass this proxy serves, marked default (so Ingresses without a class are
    served too), unless it exists already."""
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "spec": {"controller": CONTROLLER},
    }
    try:
        await client.create(CLASSES, body)
    except ApiError as err:
        if err.reason != "AlreadyExists":
            raise


class IngressProxy:
    def __init__(
        self,
        client: Client,
        *,
        host: str = "127.0.0.1",
        http_port: int = 8080,
        https_port: int | None = 8443,
        timeout: float = 60.0,
        report: ProxyReport | None = None,
    ) -> None:
        self.client = client
        self.report = report
        self.host = host
        self.http_port = http_port
        self.https_port = https_port
        self.timeout = timeout
        self.ingresses = Informer(client, INGRESSES)
        self.classes = Informer(client, CLASSES)
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, SLICES)
        self.secrets = Informer(client, SECRETS)
        self.endpoints = Endpoints(self.services, self.slices)
        self._runner: web.AppRunner | None = None
        self._tls_dir = tempfile.TemporaryDirectory(prefix="kubeling-ingress-")
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._default_context: ssl.SSLContext | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        informers = (self.ingresses, self.classes, self.services, self.slices, self.secrets)
        for informer in informers:
            informer.start()
        await asyncio.gather(*(i.wait_synced() for i in informers))
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        plain = _listen(self.host, self.http_port)
        self.http_port = int(plain.getsockname()[1])
        await web.SockSite(self._runner, plain).start()
        if self.https_port is not None:
            secure = _listen(self.host, self.https_port)
            self.https_port = int(secure.getsockname()[1])
            await web.SockSite(self._runner, secure, ssl_context=self._server_context()).start()
        for informer in (self.ingresses, self.classes):
            informer.add_handlers(self._changed, lambda _o, n: self._changed(n), None)
        self.slices.add_handlers(
            self._slices_changed, lambda _o, n: self._slices_changed(n), self._slices_changed
        )
        self._changed(None)
        if self.report is not None:
            self.report.advance(revision_of(self.slices.resource_version))
            await self.report.start()

    async def stop(self) -> None:
        if self.report is not None:
            await self.report.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.endpoints.close()
        for informer in (self.ingresses, self.classes, self.services, self.slices, self.secrets):
            await informer.stop()
        self._tls_dir.cleanup()

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _changed(self, _obj: Any) -> None:
        self._spawn(self._publish_status())

    def _slices_changed(self, obj: Any) -> None:
        """Requests are routed from the caches, so a slice change applies as it arrives."""
        live: set[Backend] = set()
        for ingress in self.served():
            for target in _targets(ingress):
                live.update(self.endpoints.ready(target))
        self._spawn(self.endpoints.prune(live))
        if self.report is not None:
            self.report.advance(revision_of(obj["metadata"].get("resourceVersion")))

    # -- which Ingresses ----------------------------------------------------------------------

    def _our_classes(self) -> tuple[set[str], bool]:
        names, default = set(), False
        for cls in self.classes.cache.list():
            if (cls.get("spec") or {}).get("controller") == CONTROLLER:
                names.add(cls["metadata"]["name"])
                annotations = cls["metadata"].get("annotations") or {}
                default = default or annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
        return names, default

    def served(self) -> list[Mapping[str, Any]]:
        names, default = self._our_classes()
        out = []
        for ingress in self.ingresses.cache.list():
            wanted = (ingress.get("spec") or {}).get("ingressClassName")
            if (wanted and wanted in names) or (not wanted and default):
                out.append(ingress)
        return sorted(out, key=lambda i: i["metadata"].get("creationTimestamp") or "")

    async def _publish_status(self) -> None:
        for ingress in self.served():
            wanted = [{"ip": self.host}]
            current = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            if current == wanted:
                continue
            updated = copy(ingress)
            updated["status"] = {"loadBalancer": {"ingress": wanted}}
            try:
                await self.client.update_status(INGRESSES, updated)
            except ApiError as err:
                if err.code not in (404, 409):
                    log.warning("ingress status of %s: %s", ingress["metadata"]["name"], err)

    # -- TLS ----------------------------------------------------------------------------------

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.sni_callback = self._sni
        return context

    def _sni(
        self, sock: ssl.SSLSocket | ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext
    ) -> int | None:
        context = self._context_for((name or "").lower())
        if context is not None:
            sock.context = context
        return None

    def _context_for(self, host: str) -> ssl.SSLContext | None:
        for ingress in self.served():
            namespace = ingress["metadata"].get("namespace")
            for tls in (ingress.get("spec") or {}).get("tls") or []:
                hosts = tls.get("hosts") or []
                if hosts and not any(host_matches(h, host) for h in hosts):
                    continue
                secret = self.secrets.cache.get(f"{namespace}/{tls.get('secretName')}")
                if secret is None:
                    continue
                return self._load(secret)
        return None

    def _load(self, secret: Mapping[str, Any]) -> ssl.SSLContext | None:
        meta = secret["metadata"]
        key = f"{meta.get('namespace')}/{meta['name']}@{meta.get('resourceVersion')}"
        if key in self._contexts:
            return self._contexts[key]
        data = secret.get("data") or {}
        try:
            cert = base64.b64decode(data["tls.crt"])
            private = base64.b64decode(data["tls.key"])
        except (KeyError, ValueError):
            return None
        base = Path(self._tls_dir.name) / key.replace("/", "_")
        (base.with_suffix(".crt")).write_bytes(cert)
        (base.with_suffix(".key")).write_bytes(private)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(base.with_suffix(".crt"), base.with_suffix(".key"))
        except (ssl.SSLError, OSError) as err:
            log.warning("ingress: TLS secret %s is unusable: %s", key, err)
            return None
        self._contexts[key] = context
        return context

    # -- proxying -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").split(":")[0].lower()
        target = route(self.served(), host, request.path)
        if target is None:
            return _error(404, "no Ingress rule matches this host and path")
        backends = self.endpoints.ready(target)
        if not backends:
            return _error(
                503, f"service {target.namespace}/{target.service} has no ready endpoints"
            )
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        peer = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = request.host or ""
        headers["X-Forwarded-Port"] = str(
            self.https_port if request.scheme == "https" else self.http_port
        )
        headers["Host"] = request.host or ""
        attempts = self.endpoints.order(backends)
        if request.method not in IDEMPOTENT:
            attempts = attempts[:1]
        for backend in attempts:
            url = f"http://{backend.ip}:{backend.port}{request.rel_url}"
            async with self.endpoints.using(backend, self.timeout) as session:
                try:
                    upstream = await session.request(
                        request.method, url, headers=headers, data=body, allow_redirects=False
                    )
                except (
                    aiohttp.ClientConnectorError,
                    aiohttp.ConnectionTimeoutError,  # a TimeoutError, but not an answer's
                    aiohttp.ServerDisconnectedError,
                ):
                    continue
                except TimeoutError:
                    return _error(504, f"{backend.ip}:{backend.port} did not answer in time")
                except aiohttp.ClientError as err:
                    return _error(502, f"{backend.ip}:{backend.port}: {err}")
                try:
                    return await _relay(request, upstream)
                except TimeoutError:
                    return _error(504, f"{backend.ip}:{backend.port} did not answer in time")
                finally:
                    upstream.release()
        return _error(
            502, f"no endpoint of service {target.namespace}/{target.service} could be reached"
        )


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for name, value in upstream.headers.items():
        if name.lower() not in HOP_BY_HOP:
            response.headers.add(name, value)
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    await response.prepare(request)
    async for chunk in upstream.content.iter_any():
        await response.write(chunk)
    await response.write_eof()
    return response


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}: {message}\n")


def _targets(ingress: Mapping[str, Any]) -> list[Target]:
    namespace = str(ingress["metadata"].get("namespace"))
    out = []
    spec = ingress.get("spec") or {}
    default = (spec.get("defaultBackend") or {}).get("service")
    if default:
        out.append(Target(namespace, default["name"], default.get("port") or {}))
    for rule in spec.get("rules") or []:
        for p in (rule.get("http") or {}).get("paths") or []:
            service = (p.get("backend") or {}).get("service")
            if service:
                out.append(Target(namespace, service["name"], service.get("port") or {}))
    return out


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock
