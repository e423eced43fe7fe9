"""REST handlers: Kubernetes resource URLs and verbs mapped onto the object registry.

URL shapes (after `/api/v1` or `/apis/<group>/<version>`):

    <plural>                                  cluster-scoped collection, or all namespaces
    <plural>/<name>[/<subresource>]           cluster-scoped object
    namespaces/<ns>/<plural>[/<name>[/<sub>]] namespaced collection / object

HTTP method and shape give the verb (list/watch, get, create, update, patch, delete,
deletecollection). Everything the handler needs from the query string is parsed and checked
here, so the registry below sees typed values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubeling.api import errors, patch
from kubeling.api.kinds import REGISTRY, Registry, ResourceInfo
from kubeling.api.queryparams import query_bool, query_int
from kubeling.api.schema import kind_schema
from kubeling.api.selectors import parse_field_selector, parse_label_selector
from kubeling.apiserver import bodies, subresources, tables
from kubeling.apiserver.nodeproxy import NodeProxy
from kubeling.apiserver.registry import DeleteOptions, ObjectRegistry, WriteOptions
from kubeling.apiserver.watch import WatchMetrics, WatchRequest, serve_watch
from kubeling.apiserver.watchcache import WatchCaches

_FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
_PROPAGATION = ("Orphan", "Background", "Foreground")


@dataclass(frozen=True)
class Target:
    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str


def parse_target(registry: Registry, group: str, version: str, parts: list[str]) -> Target:
    """Resolve the path segments after the group-version root; 404 when nothing is there."""
    namespace: str | None = None
    if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] not in ("status", "finalize"):
        namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3 or not all(parts):
        raise errors.page_not_found()
    info = registry.by_path(group, version, parts[0])
    if info is None or (namespace is not None and not info.namespaced):
        raise errors.page_not_found()
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else ""
    if (
        sub
        and info.subresource(sub) is None
        and not (sub == "finalize" and info.kind == "Namespace")
    ):
        raise errors.page_not_found()
    return Target(info, namespace, name, sub)


def _dry_run(values: list[str]) -> bool:
    for value in values:
        if value != "All":
            raise errors.bad_request(
                f'dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    return bool(values)


def write_options(request: web.Request) -> WriteOptions:
    validation = request.query.get("fieldValidation") or "Warn"
    if validation not in _FIELD_VALIDATION:
        raise errors.bad_request(
            f"fieldValidation must be one of Strict, Warn or Ignore, got {validation!r}"
        )
    return WriteOptions(
        dry_run=_dry_run(request.query.getall("dryRun", [])),
        field_validation=validation,
        field_manager=request.query.get("fieldManager", ""),
        force=query_bool(request.query, "force"),
    )


class RestHandlers:
    def __init__(
        self,
        objects: ObjectRegistry,
        caches: WatchCaches,
        watch_metrics: WatchMetrics,
        registry: Registry = REGISTRY,
        node_proxy: NodeProxy | None = None,
    ) -> None:
        self.objects = objects
        self.caches = caches
        self.watch_metrics = watch_metrics
        self.registry = registry
        self.node_proxy = node_proxy  # pods/log and pods/exec (404 without one)

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        if target.name is None:
            if method == "GET":
                return await self._list_or_watch(request, target)
            if method == "POST":
                return await self._create(request, target)
            if method == "DELETE":
                return await self._delete_collection(request, target)
        else:
            if target.subresource == "scale":
                return await self._scale(request, target)
            if target.subresource in ("log", "exec") and target.info.kind == "Pod":
                if self.node_proxy is None:
                    raise errors.page_not_found()
                assert target.namespace is not None
                return await self.node_proxy.serve(
                    request, target.namespace, target.name, target.subresource
                )
            if target.subresource == "binding" and method == "POST":
                return await self._bind(request, target)
            if target.subresource == "finalize" and method == "PUT":
                return await self._finalize(request, target)
            if method == "GET" and target.subresource in ("", "status"):
                obj = await self.objects.get(target.info, target.namespace, target.name)
                return self._object_response(request, target.info, obj)
            if method == "PUT" and target.subresource in ("", "status"):
                return await self._update(request, target)
            if method == "PATCH" and target.subresource in ("", "status"):
                return await self._patch(request, target)
            if method == "DELETE" and not target.subresource:
                return await self._delete(request, target)
        what = target.info.plural + (f"/{target.subresource}" if target.subresource else "")
        raise errors.method_not_allowed(method, what)

    # -- reads --------------------------------------------------------------------------------

    def _object_response(
        self,
        request: web.Request,
        info: ResourceInfo,
        obj: dict[str, Any],
        status: int = 200,
        warnings: list[str] | None = None,
    ) -> web.Response:
        if tables.parse_table_accept(request.headers.get("Accept", "")):
            table = tables.render_table(
                info,
                [obj],
                include_object=request.query.get("includeObject", "Metadata"),
                list_resource_version=obj.get("metadata", {}).get("resourceVersion"),
            )
            return bodies.json_response(table, status, warnings)
        return bodies.json_response(obj, status, warnings)

    async def _list_or_watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        info = target.info
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), info.group, info.kind)
        accept = request.headers.get("Accept", "")
        want_table = tables.parse_table_accept(accept)
        include_object = request.query.get("includeObject", "Metadata")
        if query_bool(request.query, "watch"):
            timeout = query_int(request.query, "timeoutSeconds")
            req = WatchRequest(
                info=info,
                namespace=target.namespace,
                labels=labels,
                fields=fields,
                resource_version=request.query.get("resourceVersion", ""),
                timeout=float(timeout) if timeout else None,
                bookmarks=query_bool(request.query, "allowWatchBookmarks"),
                send_initial=query_bool(request.query, "sendInitialEvents"),
                table=want_table,
                include_object=include_object,
            )
            return await serve_watch(request, req, self.caches, self.watch_metrics)
        limit = query_int(request.query, "limit") or 0
        if limit < 0:
            raise errors.bad_request("limit must not be negative")
        match = request.query.get("resourceVersionMatch", "")
        if match not in ("", "Exact", "NotOlderThan"):
            raise errors.bad_request(f"resourceVersionMatch: Unsupported value: {match!r}")
        result = await self.objects.list(
            info,
            target.namespace,
            labels,
            fields,
            limit=limit,
            continue_token=request.query.get("continue", ""),
            resource_version=request.query.get("resourceVersion", ""),
            match=match,
        )
        if want_table:
            return bodies.json_response(
                tables.render_table(
                    info,
                    result.items,
                    include_object=include_object,
                    list_resource_version=result.resource_version,
                    continue_token=result.continue_token or None,
                )
            )
        meta: dict[str, Any] = {"resourceVersion": result.resource_version}
        if result.continue_token:
            meta["continue"] = result.continue_token
        if result.remaining is not None:
            meta["remainingItemCount"] = result.remaining
        return bodies.json_response(
            {
                "kind": info.list_kind,
                "apiVersion": info.api_version,
                "metadata": meta,
                "items": result.items,
            }
        )

    # -- writes -------------------------------------------------------------------------------

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        opts = write_options(request)
        body = bodies.decode(await bodies.read_body(request), bodies.media_type(request))
        obj = await self.objects.create(target.info, target.namespace, body, opts)
        return self._object_response(request, target.info, obj, 201, opts.warnings)

    async def _update(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        opts = write_options(request)
        body = bodies.decode(await bodies.read_body(request), bodies.media_type(request))
        obj, created = await self.objects.update(
            target.info, target.namespace, target.name, body, opts, subresource=target.subresource
        )
        return self._object_response(
            request, target.info, obj, 201 if created else 200, opts.warnings
        )

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        info = target.info
        opts = write_options(request)
        content_type = bodies.media_type(request)
        body = bodies.decode_patch(await bodies.read_body(request), content_type)
        schema = kind_schema(info.group, info.version, info.kind)
        create_with = None
        if content_type == bodies.APPLY_PATCH:
            if not opts.field_manager:
                raise errors.bad_request(
                    "PATCH, application/apply-patch+yaml requires fieldManager to be set"
                )
            if not isinstance(body, dict):
                raise errors.bad_request("the apply configuration must be an object")
            if not target.subresource:
                create_with = dict(body)
        mutate = _patcher(content_type, body, schema)
        obj, created = await self.objects.patch(
            info,
            target.namespace,
            target.name,
            mutate,
            opts,
            subresource=target.subresource,
            create_with=create_with,
            strategic_patch=body if content_type == bodies.STRATEGIC_PATCH else None,
        )
        return self._object_response(request, info, obj, 201 if created else 200, opts.warnings)

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        options = await self._delete_options(request)
        obj, gone = await self.objects.delete(target.info, target.namespace, target.name, options)
        # 202 Accepted: the object is only marked (graceful deletion or finalizers pending).
        return bodies.json_response(obj, 200 if gone else 202)

    async def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        info = target.info
        options = await self._delete_options(request)
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), info.group, info.kind)
        result = await self.objects.delete_collection(
            info, target.namespace, labels, fields, options
        )
        return bodies.json_response(
            {
                "kind": info.list_kind,
                "apiVersion": info.api_version,
                "metadata": {"resourceVersion": result.resource_version},
                "items": result.items,
            }
        )

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        """DeleteOptions from the body (kubectl) or the query string (Python client)."""
        raw = await bodies.read_body(request)
        body: dict[str, Any] = {}
        if raw.strip():
            parsed = bodies.decode(raw, bodies.media_type(request))
            if not isinstance(parsed, dict):
                raise errors.bad_request("DeleteOptions must be an object")
            body = parsed
        grace = body.get("gracePeriodSeconds", query_int(request.query, "gracePeriodSeconds"))
        policy = body.get("propagationPolicy") or request.query.get("propagationPolicy")
        if body.get("orphanDependents") is True or request.query.get("orphanDependents") == "true":
            policy = policy or "Orphan"
        if policy is not None and policy not in _PROPAGATION:
            raise errors.bad_request(
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                f'"Foreground", "Background", "Orphan"'
            )
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
            raise errors.bad_request("gracePeriodSeconds must be an integer")
        preconditions = body.get("preconditions") or {}
        dry_run = list(body.get("dryRun") or request.query.getall("dryRun", None) or [])
        return DeleteOptions(
            grace_period=grace,
            propagation=policy,
            precondition_uid=preconditions.get("uid"),
            precondition_rv=preconditions.get("resourceVersion"),
            dry_run=_dry_run(dry_run),
        )

    # -- subresources -------------------------------------------------------------------------

    async def _scale(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        info, name = target.info, target.name
        if request.method == "GET":
            return bodies.json_response(
                subresources.to_scale(await self.objects.get(info, target.namespace, name))
            )
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed(request.method, f"{info.plural}/scale")
        opts = write_options(request)
        content_type = bodies.media_type(request)
        raw = await bodies.read_body(request)
        if request.method == "PUT":
            body = bodies.decode(raw, content_type)
            replicas = subresources.scale_replicas(info, body, name)
            pinned = (body.get("metadata") or {}).get("resourceVersion") or ""

            def mutate(parent: dict[str, Any]) -> dict[str, Any]:
                return subresources.with_replicas(parent, replicas)
        else:
            patch_body = bodies.decode_patch(raw, content_type)
            scale_patch = _patcher(
                content_type, patch_body, kind_schema("autoscaling", "v1", "Scale")
            )
            pinned = ""

            def mutate(parent: dict[str, Any]) -> dict[str, Any]:
                scale = scale_patch(subresources.to_scale(parent))
                wanted = scale.get("metadata", {}).get("resourceVersion")
                if wanted and wanted != parent["metadata"]["resourceVersion"]:
                    raise errors.conflict(info.qualified, name, errors.STALE_OBJECT, info.group)
                return subresources.with_replicas(
                    parent, subresources.scale_replicas(info, scale, name)
                )

        obj = await self.objects.update_with(
            info, target.namespace, name, mutate, opts, pinned=pinned
        )
        return bodies.json_response(subresources.to_scale(obj), 200, opts.warnings)

    async def _bind(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        name = target.name
        opts = write_options(request)
        body = bodies.decode(await bodies.read_body(request), bodies.media_type(request))
        await self.objects.update_with(
            target.info,
            target.namespace,
            name,
            lambda pod: subresources.bind(pod, body, name),
            opts,
            subresource="binding",
        )
        return bodies.json_response(subresources.success_status(code=201), 201)

    async def _finalize(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        name = target.name
        opts = write_options(request)
        body = bodies.decode(await bodies.read_body(request), bodies.media_type(request))
        obj = await self.objects.update_with(
            target.info,
            None,
            name,
            lambda ns: subresources.finalize_namespace(ns, body, name),
            opts,
        )
        return bodies.json_response(obj)


def _patcher(content_type: str, body: Any, schema: dict[str, Any] | None) -> Any:
    def apply(current: dict[str, Any]) -> dict[str, Any]:
        if content_type == bodies.JSON_PATCH:
            return patch.apply_json_patch(current, body)
        if content_type == bodies.MERGE_PATCH:
            return patch.apply_merge_patch(current, body)
        if content_type == bodies.STRATEGIC_PATCH:
            return patch.apply_strategic_merge_patch(current, body, schema)
        return patch.apply_server_side(current, body, schema)

    return apply
