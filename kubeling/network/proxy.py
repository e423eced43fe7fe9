"""The service proxy: every Service's addresses, forwarded to ready endpoints.

    proxy = ServiceProxy(client, node="node-0", node_ip="127.0.0.1")
    await proxy.start()        # watches Services and EndpointSlices, opens listeners
    ...
    await proxy.stop()

Contract:

* **What it serves** is `servicetable.service_table(...)` recomputed on every Service or
  EndpointSlice change (coalesced): listeners that appear are opened, those that disappear
  closed, and every listener's backends swapped in place, so a connection accepted after a
  change already uses the new endpoints. `applied_revision` is the EndpointSlice watch
  revision the listeners reflect; with a `report` (`drain.ProxyReport`) it is published, so
  that agents hold a deleted pod's SIGTERM until this proxy no longer routes to it.
* **TCP** (asyncio Protocols; DESIGN.md § 8): a connection is accepted, its reading paused,
  and a backend chosen — round robin over the ready endpoints, or by client address with
  `sessionAffinity: ClientIP`. If the backend refuses, the next one is tried (each once); with
  none left the client is closed. Bytes are relayed both ways with flow control (a side whose
  peer cannot keep up stops being read). A half-close (EOF) is passed on with a socket
  `shutdown(SHUT_WR)` once the other side's buffer is written, not with `write_eof()`, which
  crashes uvloop 0.23 under connection churn. A client that leaves while the backend connect
  is in flight never leaks that connection.
* **UDP**: one upstream socket per client address and listener, forgotten after
  `udp_idle` seconds without traffic; replies go back to that client.
* **The kernel data path**: as root with `nft` installed, TCP routes without session
  affinity or `Local` traffic policy are also programmed as nftables DNAT rules
  (`kerneldnat.py`, as kube-proxy's nftables mode), which take new connections before any
  listener sees them; the Protocol relay serves the rest, and everything when `nft` fails.
  `applied_revision` counts only once the rules are in.
* Listeners bind with `SO_REUSEADDR` and `SO_REUSEPORT`, so the proxies of several local nodes
  can serve the same ClusterIP (they forward to the same endpoints).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from typing import Any, cast

from kubeling.api.kinds import REGISTRY
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.network.drain import ProxyReport, revision_of
from kubeling.network.kerneldnat import KernelDNAT, NftError
from kubeling.network.servicetable import Backend, ListenKey, Route, service_table
from kubeling.util.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
UDP_IDLE = 30.0


SERVICES = REGISTRY.resource("", "v1", "services")
SLICES = REGISTRY.resource("discovery.k8s.io", "v1", "endpointslices")


class Balancer:
    """Picks backends for one listener: round robin, or sticky per client address."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self._turn = itertools.count()
        self._sticky: dict[str, tuple[Backend, float]] = {}

    def update(self, route: Route) -> None:
        self.route = route
        live = set(route.backends)
        self._sticky = {ip: v for ip, v in self._sticky.items() if v[0] in live}

    def candidates(self, client_ip: str) -> list[Backend]:
        """Backends to try, in order: the chosen one first, then the others."""
        backends = list(self.route.backends)
        if not backends:
            return []
        timeout = self.route.affinity_seconds
        if timeout is not None:
            now = time.monotonic()
            sticky = self._sticky.get(client_ip)
            if sticky is not None and sticky[1] > now and sticky[0] in backends:
                first = sticky[0]
            else:
                first = backends[next(self._turn) % len(backends)]
            self._sticky[client_ip] = (first, now + timeout)
        else:
            first = backends[next(self._turn) % len(backends)]
        start = backends.index(first)
        return backends[start:] + backends[:start]


# -- TCP ------------------------------------------------------------------------------------


def _shutdown_write(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        transport.close()
        return
    with contextlib.suppress(OSError):
        # A socket object over the transport's own descriptor, detached again so that it
        # never closes it: shutdown(2) without the dup(2) and close(2) of a copy.
        own = socket.socket(fileno=sock.fileno())
        try:
            own.shutdown(socket.SHUT_WR)
        finally:
            own.detach()


class _Side(asyncio.Protocol):
    """One end of a relayed connection; `peer` is the other end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.closed = False
        self.early: list[bytes] = []
        self.early_eof = False
        self.eof_in = False  # the remote end has half-closed towards us

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            self.early.append(data)  # a backend that speaks first, before the pairing
        elif peer.transport is not None and not peer.closed:
            peer.transport.write(data)

    def pair(self, peer: _Side) -> None:
        self.peer = peer
        early, self.early = self.early, []
        for data in early:
            self.data_received(data)
        if self.early_eof:
            self.eof_received()

    def eof_received(self) -> bool:
        peer = self.peer
        if peer is None:
            self.early_eof = True
            return True
        self.eof_in = True
        if peer.transport is None or peer.closed:
            return False
        if peer.eof_in:  # both directions are finished: close both ends
            peer.transport.close()
            return False
        peer.forward_eof()
        return True  # keep our side open for the other direction

    def forward_eof(self) -> None:
        """The peer half-closed: shut our writing down once our buffer is written."""
        transport = self.transport
        if transport is None or self.closed:
            return
        if transport.get_write_buffer_size() == 0:
            _shutdown_write(transport)
        else:
            asyncio.get_running_loop().call_later(0.01, self.forward_eof)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            peer.transport.close()


class _Upstream(_Side):
    pass


class _Downstream(_Side):
    """The client's connection to a listener."""

    def __init__(self, listener: TcpListener) -> None:
        super().__init__()
        self.listener = listener
        self._connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        client_ip = ""
        if self.listener.balancer.route.affinity_seconds is not None:
            client_ip = str((self.transport.get_extra_info("peername") or ("",))[0])
        self._connecting = asyncio.get_running_loop().create_task(self._connect(client_ip))

    async def _connect(self, client_ip: str) -> None:
        loop = asyncio.get_running_loop()
        for backend in self.listener.balancer.candidates(client_ip):
            if self.closed:
                return
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):  # no extra Task, as wait_for has
                    upstream_transport, upstream = await loop.create_connection(
                        _Upstream, backend.ip, backend.port
                    )
            except (OSError, TimeoutError):
                continue
            if self.closed:  # the client left while we connected
                upstream_transport.close()
                return
            self.pair(upstream)
            upstream.pair(self)
            assert self.transport is not None
            self.transport.resume_reading()
            self.listener.connections += 1
            return
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()


class TcpListener:
    def __init__(self, key: ListenKey, route: Route) -> None:
        self.key = key
        self.balancer = Balancer(route)
        self.server: asyncio.AbstractServer | None = None
        self.connections = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _Downstream(self),
            self.key.ip,
            self.key.port,
            reuse_address=True,
            reuse_port=True,
            backlog=1024,
        )

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


# -- UDP ------------------------------------------------------------------------------------


class _UdpUpstream(asyncio.DatagramProtocol):
    def __init__(self, listener: UdpListener, client: tuple[str, int]) -> None:
        self.listener = listener
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.last = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.last = time.monotonic()
        if self.listener.transport is not None:
            self.listener.transport.sendto(data, self.client)


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, key: ListenKey, route: Route, idle: float = UDP_IDLE) -> None:
        self.key = key
        self.balancer = Balancer(route)
        self.idle = idle
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], _UdpUpstream] = {}
        self._pending: dict[tuple[str, int], list[bytes]] = {}

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.key.ip, self.key.port), reuse_port=True
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._expire()
        session = self.sessions.get(addr)
        if session is not None and session.transport is not None:
            session.last = time.monotonic()
            session.transport.sendto(data)
            return
        if addr in self._pending:
            self._pending[addr].append(data)
            return
        self._pending[addr] = [data]
        asyncio.get_running_loop().create_task(self._open_session(addr))

    async def _open_session(self, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        backlog = self._pending.get(addr, [])
        for backend in self.balancer.candidates(addr[0]):
            try:
                _, session = await loop.create_datagram_endpoint(
                    lambda: _UdpUpstream(self, addr), remote_addr=(backend.ip, backend.port)
                )
            except OSError:
                continue
            self.sessions[addr] = session
            assert session.transport is not None
            for data in self._pending.pop(addr, backlog):
                session.transport.sendto(data)
            return
        self._pending.pop(addr, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for addr, session in list(self.sessions.items()):
            if now - session.last > self.idle:
                if session.transport is not None:
                    session.transport.close()
                del self.sessions[addr]

    async def close(self) -> None:
        for session in self.sessions.values():
            if session.transport is not None:
                session.transport.close()
        self.sessions.clear()
        if self.transport is not None:
            self.transport.close()
            self.transport = None


# -- the proxy ------------------------------------------------------------------------------


class ServiceProxy:
    def __init__(
        self,
        client: Client,
        *,
        node: str,
        node_ip: str = "127.0.0.1",
        report: ProxyReport | None = None,
        kernel: bool | None = None,
    ) -> None:
        self.client = client
        self.report = report
        # The kernel data path (kerneldnat.py) where it can be had, unless asked not to.
        use_kernel = KernelDNAT.available() if kernel is None else kernel
        self.dnat: KernelDNAT | None = KernelDNAT(node) if use_kernel else None
        self.node = node
        self.node_ip = node_ip
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, SLICES)
        self.listeners: dict[ListenKey, TcpListener | UdpListener] = {}
        self.applied_revision = 0
        self.failed: dict[ListenKey, str] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.dnat is not None:
            try:
                await KernelDNAT.remove_stale()
            except (NftError, OSError) as err:
                self._kernel_off(err)
        for informer in (self.services, self.slices):
            informer.add_handlers(self._changed, lambda _o, new: self._changed(new), self._changed)
            informer.start()
        await asyncio.gather(self.services.wait_synced(), self.slices.wait_synced())
        await self.sync()
        if self.report is not None:
            await self.report.start()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self.report is not None:
            await self.report.stop()
        if self.dnat is not None:
            with contextlib.suppress(NftError, OSError):
                await self.dnat.remove()
        for listener in self.listeners.values():
            await listener.close()
        self.listeners.clear()
        for informer in (self.services, self.slices):
            await informer.stop()

    def _changed(self, _obj: Any) -> None:
        self._dirty.set()

    def _kernel_off(self, err: Exception) -> None:
        log.warning(
            "service proxy %s: no kernel data path (%s); relaying in userspace", self.node, err
        )
        self.dnat = None

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.sync()
            except Exception:
                log.exception("service proxy %s: sync failed", self.node)

    async def sync(self) -> None:
        """Bring the listeners and their backends in line with the caches."""
        revision = revision_of(self.slices.resource_version)
        table = service_table(
            self.services.cache.list(), self.slices.cache.list(), self.node, self.node_ip
        )
        for key in list(self.listeners):
            if key not in table.routes:
                await self.listeners.pop(key).close()
        for key, route in table.routes.items():
            listener = self.listeners.get(key)
            if listener is not None:
                listener.balancer.update(route)
                continue
            created: TcpListener | UdpListener = (
                TcpListener(key, route) if key.protocol == "TCP" else UdpListener(key, route)
            )
            try:
                await created.open()
            except OSError as err:
                if self.failed.get(key) != str(err):
                    log.warning("service proxy: cannot listen on %s: %s", key, err)
                self.failed[key] = str(err)
                continue
            self.failed.pop(key, None)
            self.listeners[key] = created
        if (dnat := self.dnat) is not None:
            try:
                await dnat.apply(table)
            except (NftError, OSError) as err:
                self._kernel_off(err)
                with contextlib.suppress(NftError, OSError):
                    await dnat.remove()
        self.applied_revision = max(self.applied_revision, revision)
        if self.report is not None:
            self.report.advance(self.applied_revision)
