"""The agent's HTTPS endpoint (the kubelet's port 10250): container logs and exec.

The API server serves `pods/log` and `pods/exec` by proxying to the agent of the pod's node
(`kubeling.apiserver.nodeproxy`), at the address and port the Node advertises
(`status.addresses[InternalIP]`, `status.daemonEndpoints.kubeletEndpoint.Port`), as Kubernetes
does. Routes, with the kubelet's shapes:

    GET /containerLogs/<namespace>/<pod>/<container>?follow&tailLines&sinceSeconds&sinceTime
                                                     &timestamps&previous&limitBytes
    GET /exec/<namespace>/<pod>/<container>?command=<argv0>&command=...&stdin&stdout&stderr&tty

Contract:

* **Auth.** Every request carries `Authorization: Bearer <token>` (the node credential, which
  the API server also knows); anything else is answered 401. The endpoint binds to loopback by
  default; the API server does not verify its certificate (it is self-signed per agent).
* **Errors** are Kubernetes `Status` bodies with their HTTP code (the API server passes them
  through to kubectl): 400 for bad options and for a container that has no log yet, 404 for a
  container this node does not run.
* **Logs** stream as `text/plain`, each chunk written as soon as it is read; with `follow` the
  response stays open until the container instance exits and its log is drained (or the client
  leaves). `previous` reads the instance before the current one. `sinceSeconds` and `sinceTime`
  are exclusive.
* **Exec** is a websocket speaking the Kubernetes channel protocol (`v5.channel.k8s.io`; also
  `v4.channel.k8s.io` and `channel.k8s.io`, binary frames only): every frame starts with its
  channel byte, 0 stdin (client to agent), 1 stdout, 2 stderr, 3 error, 4 resize (a JSON
  `{"Width": w, "Height": h}`), and in v5 255 close (`[255, 0]`: the client has closed stdin).
  Once the process has exited and its output is drained, one `metav1.Status` goes on channel 3,
  `Success`, or `Failure` with reason `NonZeroExitCode` and the code in
  `details.causes[{reason: ExitCode, message: "<code>"}]` (what client-go's v4+ error decoder
  turns into kubectl's own exit code), and the agent closes the socket. A program that cannot
  start exits 127 (not found) or 126, its reason on stderr, as a shell reports it. A client
  that goes away kills the process group. With `tty` the process runs on a pseudo-terminal and
  stderr is merged into stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import ssl
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, cast

import orjson
from aiohttp import WSMsgType, web

from kubeling.agent.logs import LogOptions, parse_timestamp, read_log
from kubeling.agent.runtime import ContainerStartError
from kubeling.api import errors
from kubeling.api.queryparams import query_bool, query_int

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
DRAIN_TIMEOUT = 2.0
"""Seconds the output of an exited exec is still read (a child it left may hold the pipe)."""

_READ = 64 * 1024


class ExecStream(Protocol):
    """A started exec process (`kubeling.agent.execprocess.ExecProcess` is one)."""

    @property
    def stdin(self) -> asyncio.StreamWriter | None: ...
    @property
    def stdout(self) -> asyncio.StreamReader | None: ...
    @property
    def stderr(self) -> asyncio.StreamReader | None: ...
    async def wait(self) -> int: ...
    def resize(self, width: int, height: int) -> None: ...
    def close(self) -> None: ...


class ContainerHandle(Protocol):
    """What the endpoint needs of one container of a pod this node runs."""

    def log_path(self, previous: bool) -> Path | None:
        """The log file of the current instance (or, with `previous`, of the one before it);
        None when there is none (not started yet, or no earlier instance)."""
        ...

    def is_running(self) -> bool:
        """Whether the current instance may still write to its log."""
        ...

    async def exec_stream(self, argv: list[str], *, tty: bool, stdin: bool) -> ExecStream:
        """Start `argv` beside the container; raises ContainerStartError when it cannot run."""
        ...


Lookup = Callable[[str, str, str], ContainerHandle | None]
"""(namespace, pod name, container name) -> the container's handle, None when not on this node."""


# --- the log options -----------------------------------------------------------------------


@dataclass(frozen=True)
class LogRequest:
    options: LogOptions
    previous: bool


def parse_log_query(query: Mapping[str, str], now: float | None = None) -> LogRequest:
    """The `pods/log` query parameters as LogOptions; ApiError 400 for a bad value."""

    def integer(name: str, minimum: int) -> int | None:
        value = query_int(query, name)
        if value is not None and value < minimum:
            raise errors.invalid(
                "PodLogOptions",
                "",
                [errors.invalid_value(name, value, f"must be greater than {minimum - 1}")],
            )
        return value

    since_seconds = integer("sinceSeconds", 1)
    since_raw = query.get("sinceTime") or ""
    if since_seconds is not None and since_raw:
        raise errors.bad_request("at most one of `sinceTime` or `sinceSeconds` may be specified")
    since: datetime | None = None
    if since_raw:
        try:
            ns = parse_timestamp(since_raw)
        except ValueError:
            raise errors.bad_request(f"invalid value for sinceTime: {since_raw!r}") from None
        since = datetime.fromtimestamp(ns / 1e9, UTC)
    elif since_seconds is not None:
        since = datetime.fromtimestamp((now or time.time()) - since_seconds, UTC)
    options = LogOptions(
        follow=query_bool(query, "follow"),
        tail_lines=integer("tailLines", 0),
        since_time=since,
        timestamps=query_bool(query, "timestamps"),
        limit_bytes=integer("limitBytes", 1),
    )
    return LogRequest(options, query_bool(query, "previous"))


# --- the server ----------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AgentServer:
    """The endpoint; `start()` binds it (`port` then holds the bound port), `stop()` ends every
    connection."""

    def __init__(
        self,
        lookup: Lookup,
        *,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        poll_interval: float = 0.1,
    ) -> None:
        if not token:
            raise ValueError("the agent endpoint needs a token")
        self.lookup = lookup
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.poll_interval = poll_interval
        self._token = token.encode()
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", self._exec)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.build(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=self.ssl_context).start()

    async def stop(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"agent stopping")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            server = runner.server
            transports = [c.transport for c in server.connections] if server else []
            await runner.cleanup()
            for transport in transports:  # see APIServer.stop: no waiting for close_notify
                if transport is not None:
                    transport.abort()
            await asyncio.sleep(0)

    # -- middleware ---------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(
                presented.strip().encode("utf-8", "surrogateescape"), self._token
            ):
                raise errors.unauthorized()
            return await handler(request)
        except errors.ApiError as err:
            return _status_response(err)

    def _handle(self, request: web.Request) -> tuple[str, str, str, ContainerHandle]:
        info = request.match_info
        namespace, pod, container = info["namespace"], info["pod"], info["container"]
        handle = self.lookup(namespace, pod, container)
        if handle is None:
            raise errors.ApiError(
                404,
                "NotFound",
                f'container "{container}" in pod "{pod}" not found on this node',
            )
        return namespace, pod, container, handle

    # -- logs ---------------------------------------------------------------------------------

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        wanted = parse_log_query(request.query)
        _, pod, container, handle = self._handle(request)
        path = handle.log_path(wanted.previous)
        if path is None:
            if wanted.previous:
                raise errors.bad_request(
                    f'previous terminated container "{container}" in pod "{pod}" not found'
                )
            raise errors.bad_request(
                f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating'
            )
        running = (lambda: False) if wanted.previous else handle.is_running
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        chunks = cast(
            AsyncGenerator[bytes, None],
            read_log(path, wanted.options, is_running=running, poll_interval=self.poll_interval),
        )
        async with contextlib.aclosing(chunks):  # the file is closed when the client leaves
            async for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
        return response

    # -- exec ---------------------------------------------------------------------------------

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        argv = list(query.getall("command", []))
        if not argv:
            raise errors.bad_request("you must specify at least 1 command")
        tty = query_bool(query, "tty")
        want_stdin = query_bool(query, "stdin")
        want = {
            STDOUT: query_bool(query, "stdout"),
            STDERR: query_bool(query, "stderr") and not tty,
        }
        _, _, _, handle = self._handle(request)
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            raise errors.bad_request("Upgrade request required")
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await self._run_exec(ws, handle, argv, tty, want_stdin, want)
        finally:
            self._sockets.discard(ws)
            if not ws.closed:
                await ws.close()
        return ws

    async def _run_exec(
        self,
        ws: web.WebSocketResponse,
        handle: ContainerHandle,
        argv: list[str],
        tty: bool,
        want_stdin: bool,
        want: dict[int, bool],
    ) -> None:
        # As the kubelet does: an empty frame on the lowest writable channel says "connected".
        first = STDOUT if want[STDOUT] else STDERR if want[STDERR] else ERROR
        await ws.send_bytes(bytes([first]))
        try:
            process = await handle.exec_stream(argv, tty=tty, stdin=want_stdin)
        except ContainerStartError as err:
            channel = STDERR if want[STDERR] else STDOUT if want[STDOUT] else None
            if channel is not None:
                await ws.send_bytes(bytes([channel]) + err.message.encode() + b"\n")
            await ws.send_bytes(bytes([ERROR]) + _exit_status(argv, err.exit_code))
            return
        pumps = [
            asyncio.create_task(_pump(stream, channel, ws, want[channel]))
            for channel, stream in ((STDOUT, process.stdout), (STDERR, process.stderr))
            if stream is not None
        ]
        client = asyncio.create_task(
            _read_client(ws, process, v5=ws.ws_protocol == "v5.channel.k8s.io")
        )
        exited = asyncio.create_task(process.wait())
        try:
            await asyncio.wait({client, exited}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                return  # the client went away: `finally` kills the process
            if pumps:
                await asyncio.wait(pumps, timeout=DRAIN_TIMEOUT)
            await ws.send_bytes(bytes([ERROR]) + _exit_status(argv, exited.result()))
        except ConnectionError:
            pass  # the client went away while we wrote
        finally:
            process.close()
            for task in (*pumps, client, exited):
                task.cancel()
            await asyncio.gather(*pumps, client, exited, return_exceptions=True)


def _exit_status(argv: list[str], code: int) -> bytes:
    """The channel-3 Status of an exec that ended with `code`, as the kubelet writes it."""
    if code == 0:
        return orjson.dumps({"metadata": {}, "status": "Success"})
    return orjson.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": (
                "command terminated with non-zero exit code: error executing command "
                f"[{' '.join(argv)}], exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    )


async def _pump(
    stream: asyncio.StreamReader, channel: int, ws: web.WebSocketResponse, forward: bool
) -> None:
    """Copy one output stream to its channel until EOF (read and dropped when not asked for, so
    the process never blocks on a full pipe). A terminal's master reads EIO at the end."""
    prefix = bytes([channel])
    while True:
        try:
            data = await stream.read(_READ)
        except OSError:
            return
        if not data:
            return
        if forward and not ws.closed:
            await ws.send_bytes(prefix + data)


async def _read_client(ws: web.WebSocketResponse, process: ExecStream, *, v5: bool) -> None:
    """Feed stdin and resizes from the client until it closes the socket."""
    stdin = process.stdin
    async for message in ws:
        if message.type != WSMsgType.BINARY or not message.data:
            continue
        data: bytes = message.data
        channel, payload = data[0], data[1:]
        if channel == STDIN and stdin is not None and payload:
            try:
                stdin.write(payload)
                await stdin.drain()
            except ConnectionError:
                stdin = None  # the process closed its stdin; later input is dropped
        elif channel == RESIZE:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                size = json.loads(payload)
                process.resize(int(size.get("Width", 0)), int(size.get("Height", 0)))
        elif channel == CLOSE and v5 and payload[:1] == bytes([STDIN]) and stdin is not None:
            with contextlib.suppress(ConnectionError):
                stdin.close()
            stdin = None


def _status_response(err: errors.ApiError) -> web.Response:
    return web.Response(
        status=err.code, body=orjson.dumps(err.status()), content_type="application/json"
    )
