"""Helpers for the client layer's tests: resource infos, small objects, polling with a
deadline (never a bare sleep), and a TCP proxy that a test can cut to simulate a network
failure between a client and the server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from kubeling.api.kinds import REGISTRY, ResourceInfo

T = TypeVar("T")


def _info(group: str, plural: str) -> ResourceInfo:
    info = REGISTRY.by_path(group, "v1", plural)
    assert info is not None
    return info


NAMESPACES = _info("", "namespaces")
CONFIGMAPS = _info("", "configmaps")
PODS = _info("", "pods")
NODES = _info("", "nodes")
EVENTS = _info("", "events")
DEPLOYMENTS = _info("apps", "deployments")


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec},
    }


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }


class CuttableProxy:
    """A TCP forwarder to `target`: `cut()` drops every connection and stops listening (new
    connections are refused, as by a server that is down) until `restore()`. TLS passes
    through untouched."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0  # bumped by cut(): connections of older generations are dropped

    async def start(self) -> CuttableProxy:
        generation = self._generation

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(generation, reader, writer)

        self._server = await asyncio.start_server(serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(
        self, generation: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if generation != self._generation:  # accepted before a cut(), served after it
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
        dst.transport.abort()
        self._writers.discard(dst)

    async def cut(self) -> None:
        self._generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
