"""`pods/log` and `pods/exec`: served by the agent of the pod's node, reached through the API
server, as Kubernetes' API server reaches the kubelet.

Flow of `kubectl logs web -f`: the handler reads the Pod, picks the container (the only one, or
`?container=`; 400 `a container name must be specified for pod web, choose one of: [a b]`
otherwise), checks the container's status as the kubelet would (400 `container "c" in pod "p"
is waiting to start: ContainerCreating` before it has run, 400 `previous terminated container
... not found` for `--previous` without an earlier instance), reads the Node the pod is bound
to for its `InternalIP` and `status.daemonEndpoints.kubeletEndpoint.Port`, and forwards the
request to that agent (`kubeling.agent.server`) over HTTPS with the node credential as bearer
token. Log bytes are written through as they come (`follow` keeps the response open until the
agent ends it); an agent's error `Status` is passed through with its code.

`exec` is a websocket (kubectl ≥ 1.30 asks for `v5.channel.k8s.io`): the handler dials the
agent with the subprotocols the client offered, answers the client's upgrade with the one the
agent chose, and relays frames both ways, unchanged, until either side closes. A request that
is not a websocket upgrade (an older client's SPDY, which kubectl tries only when the websocket
upgrade failed) gets 400 after the same checks, so kubectl prints the real reason.

Trust: the agents' certificates are self-signed, and not verified. That is acceptable only
because every agent address is on the loopback network of this machine (DESIGN.md § 6); the
bearer token keeps other local users out of the agents.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from kubeling.api import errors
from kubeling.api.kinds import REGISTRY, Registry
from kubeling.api.queryparams import query_bool
from kubeling.apiserver.registry import ObjectRegistry

_LOG_OPTIONS = (
    "follow",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "previous",
    "limitBytes",
)
_EXEC_OPTIONS = ("command", "stdin", "stdout", "stderr", "tty")
_CONNECT_TIMEOUT = 10.0


class NodeProxy:
    def __init__(
        self, objects: ObjectRegistry, node_credential: str, registry: Registry = REGISTRY
    ) -> None:
        self.objects = objects
        self.node_credential = node_credential
        pods, nodes = registry.by_path("", "v1", "pods"), registry.by_path("", "v1", "nodes")
        if pods is None or nodes is None:  # pragma: no cover - always registered
            raise RuntimeError("pods and nodes must be registered")
        self.pods, self.nodes = pods, nodes

    async def serve(
        self, request: web.Request, namespace: str, name: str, subresource: str
    ) -> web.StreamResponse:
        if subresource == "log":
            if request.method != "GET":
                raise errors.method_not_allowed(request.method, "pods/log")
            return await self.log(request, namespace, name)
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed(request.method, "pods/exec")
        return await self.exec(request, namespace, name)

    # -- logs ---------------------------------------------------------------------------------

    async def log(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        pod = await self.objects.get(self.pods, namespace, name)
        container = pick_container(pod, request.query.get("container", ""))
        previous = query_bool(request.query, "previous")
        check_log_status(pod, container, previous)
        url = await self._agent_url(pod, "containerLogs", namespace, name, container)
        query = [(k, v) for k, v in request.query.items() if k in _LOG_OPTIONS]
        async with self._session() as session:
            try:
                upstream = await session.get(url, params=query, headers=self._auth())
            except (aiohttp.ClientError, OSError) as err:
                raise errors.internal(f'Get "{url}": {err}') from None
            async with upstream:
                if upstream.status != 200:
                    raise await _upstream_error(upstream)
                response = web.StreamResponse(headers={"Content-Type": "text/plain"})
                await response.prepare(request)
                # The agent going away mid-stream ends the log; the status line is long sent.
                with contextlib.suppress(aiohttp.ClientError):
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                await response.write_eof()
                return response

    # -- exec ---------------------------------------------------------------------------------

    async def exec(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        pod = await self.objects.get(self.pods, namespace, name)
        container = pick_container(pod, request.query.get("container", ""))
        if not request.query.getall("command", []):
            raise errors.bad_request("you must specify at least 1 command")
        check_exec_status(pod, container)
        url = await self._agent_url(pod, "exec", namespace, name, container)
        client = web.WebSocketResponse(protocols=_offered_protocols(request))
        if not client.can_prepare(request).ok:
            raise errors.bad_request(
                "Upgrade request required: kubeling serves exec over websockets "
                "(v5.channel.k8s.io) only"
            )
        query = [(k, v) for k, v in request.query.items() if k in _EXEC_OPTIONS]
        async with self._session() as session:
            try:
                upstream = await session.ws_connect(
                    url,
                    params=query,
                    headers=self._auth(),
                    protocols=_offered_protocols(request),
                    autoping=True,
                    max_msg_size=0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                )
            except aiohttp.WSServerHandshakeError as err:
                raise errors.ApiError(
                    err.status if err.status >= 400 else 502,
                    "BadRequest" if err.status == 400 else "InternalError",
                    f"error dialing backend: {err.message}",
                ) from None
            except (aiohttp.ClientError, OSError) as err:
                raise errors.internal(f"error dialing backend: {err}") from None
            async with upstream:
                client = web.WebSocketResponse(
                    protocols=(upstream.protocol,) if upstream.protocol else ()
                )
                await client.prepare(request)
                await _relay(client, upstream)
        return client

    # -- helpers ------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False),
            timeout=aiohttp.ClientTimeout(total=None, connect=_CONNECT_TIMEOUT),
        )

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node_credential}"}

    async def _agent_url(
        self, pod: dict[str, Any], route: str, namespace: str, name: str, container: str
    ) -> str:
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        node = await self.objects.get(self.nodes, None, node_name)
        status = node.get("status") or {}
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        host = addresses.get("InternalIP") or addresses.get("Hostname")
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        if not host or not isinstance(port, int) or port <= 0:
            raise errors.bad_request(f'node "{node_name}" does not advertise an agent endpoint')
        if ":" in host:
            host = f"[{host}]"
        path = "/".join(quote(part, safe="") for part in (route, namespace, name, container))
        return f"https://{host}:{port}/{path}"


# -- the checks Kubernetes makes, in the API server and in the kubelet ------------------------


def pick_container(pod: dict[str, Any], wanted: str) -> str:
    """The container a request is about: `wanted`, or the pod's only container."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    every = [
        str(c.get("name"))
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]
    if wanted:
        if wanted not in every:
            raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted
    containers = spec.get("containers") or []
    if len(containers) == 1:
        return str(containers[0].get("name"))
    if not containers:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    raise errors.bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(every)}]"
    )


def _container_status(pod: dict[str, Any], container: str) -> dict[str, Any]:
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for entry in status.get(key) or []:
            if entry.get("name") == container:
                return dict(entry)
    return {}


def check_log_status(pod: dict[str, Any], container: str, previous: bool) -> None:
    """The kubelet's choice of instance (`validateContainerLogStatus`), as 400s."""
    name = pod["metadata"]["name"]
    status = _container_status(pod, container)
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated")
    if previous:
        if not last:
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        return
    if state.get("running") or state.get("terminated") or last:
        return
    reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
    raise errors.bad_request(
        f'container "{container}" in pod "{name}" is waiting to start: {reason}'
    )


def check_exec_status(pod: dict[str, Any], container: str) -> None:
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(
            f"cannot exec into a container in a completed pod; current phase is {phase}"
        )
    state = _container_status(pod, container).get("state") or {}
    if not state.get("running"):
        raise errors.bad_request(f'container not found ("{container}")')


def _offered_protocols(request: web.Request) -> tuple[str, ...]:
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return tuple(p.strip() for p in header.split(",") if p.strip())


async def _upstream_error(upstream: aiohttp.ClientResponse) -> errors.ApiError:
    """An agent's refusal as an ApiError: its Status when it sent one."""
    body = await upstream.read()
    try:
        status = orjson.loads(body)
        return errors.ApiError(
            int(status.get("code") or upstream.status),
            str(status.get("reason") or ""),
            str(status.get("message") or ""),
        )
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return errors.ApiError(upstream.status, "InternalError", body.decode(errors="replace"))


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Copy frames both ways until one side closes, then close the other."""

    async def copy(
        source: AsyncIterable[aiohttp.WSMessage],
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        async for message in source:
            if message.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)

    async def down() -> None:
        await copy(upstream, client)
        await client.close(code=upstream.close_code or aiohttp.WSCloseCode.OK)

    async def up() -> None:
        await copy(client, upstream)
        await upstream.close()

    tasks = {asyncio.create_task(down()), asyncio.create_task(up())}
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if pending:  # the other direction finishes what it has in flight (Status, close)
            await asyncio.wait(pending, timeout=5.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for side in (client, upstream):
            if not side.closed:
                with contextlib.suppress(Exception):
                    await side.close()
