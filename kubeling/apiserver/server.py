"""The API server's lifecycle: open the store, fill the watch cache, bootstrap, serve, stop.

Start-up order matters: the watch cache is loaded before the first request is accepted, the
system namespaces exist before anyone can write into them, and the Service allocator is
rebuilt from the stored Services before any Service is created. `/readyz` answers `ok` only
when all of that is done and the storage watch is healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from kubeling.api import errors
from kubeling.api.kinds import REGISTRY
from kubeling.apiserver import certs
from kubeling.apiserver.allocators import ServiceAllocator
from kubeling.apiserver.app import ApiApp
from kubeling.apiserver.nodeproxy import NodeProxy
from kubeling.apiserver.registry import ObjectRegistry, WriteOptions
from kubeling.apiserver.rest import RestHandlers
from kubeling.apiserver.watch import WatchMetrics
from kubeling.apiserver.watchcache import WatchCaches
from kubeling.storage import Store, open_store
from kubeling.storage.encryption import EncryptedStore, Keyring

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class ServerConfig:
    data_dir: Path
    bind: str = "127.0.0.1"
    port: int = 6443
    datastore: str = ""  # default: sqlite:///<data_dir>/state.db
    tls: bool = True
    compaction_interval: float = 300.0
    compaction_keep: int = 10_000  # revisions of history kept for watches and continue tokens
    watch_cache_capacity: int = 10_000  # events per resource
    encrypt_secrets: bool = True  # AES-GCM at rest, keys in <data_dir>/encryption-keys

    @property
    def datastore_url(self) -> str:
        return self.datastore or f"sqlite://{(self.data_dir / 'state.db').resolve()}"


class APIServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store: Store | None = None
        self.caches: WatchCaches | None = None
        self.objects: ObjectRegistry | None = None
        self.credentials: certs.Credentials | None = None
        self._runner: web.AppRunner | None = None
        self._compactor: asyncio.Task[None] | None = None
        self.port = config.port

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        host = "127.0.0.1" if self.config.bind in ("0.0.0.0", "") else self.config.bind
        return f"{scheme}://{host}:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.config.data_dir / "kubeconfig.yaml"

    def ready(self) -> bool:
        return self.caches is not None and self.caches.healthy

    async def start(self) -> None:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(config.datastore_url)
        if config.encrypt_secrets:
            keyring = Keyring.load_or_create(config.data_dir / "encryption-keys")
            store = EncryptedStore(store, keyring)
        self.store = store
        self.caches = WatchCaches(self.store, config.watch_cache_capacity)
        await self.caches.start()
        allocator = ServiceAllocator()
        services = REGISTRY.by_path("", "v1", "services")
        assert services is not None
        allocator.rebuild(self.caches.cache_for(services.storage_prefix).objects.values())
        self.objects = ObjectRegistry(self.store, self.caches, allocator)
        await self._bootstrap()

        sock = _listen(config.bind, config.port)
        self.port = sock.getsockname()[1]
        self.credentials = certs.ensure_credentials(config.data_dir, [config.bind])
        watch_metrics = WatchMetrics()
        credentials = self.credentials
        rest = RestHandlers(
            self.objects,
            self.caches,
            watch_metrics,
            node_proxy=NodeProxy(self.objects, credentials.node_credential),
        )
        app = ApiApp(
            rest,
            {
                credentials.admin_token: "admin",
                credentials.node_credential: certs.NODE_USER_NAME,
            },
            f"{_host(config.bind)}:{self.port}",
            self.ready,
            ca_pem=credentials.ca_cert.read_bytes(),
        ).build()
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        ssl_context = self.credentials.ssl_context() if config.tls else None
        await web.SockSite(self._runner, sock, ssl_context=ssl_context).start()
        certs.write_kubeconfig(self.kubeconfig_path, self.url, self.credentials)
        self._compactor = asyncio.create_task(self._compact_forever(), name="compactor")
        log.info("API server listening on %s", self.url)

    async def _bootstrap(self) -> None:
        assert self.objects is not None
        namespaces = REGISTRY.by_path("", "v1", "namespaces")
        assert namespaces is not None
        for name in SYSTEM_NAMESPACES:
            with contextlib.suppress(errors.ApiError):
                await self.objects.create(
                    namespaces, None, {"metadata": {"name": name}}, WriteOptions()
                )

    async def compact_now(self) -> int:
        """Forget history older than the last `compaction_keep` revisions; returns the
        compacted revision (0 when there was nothing to compact)."""
        assert self.store is not None and self.caches is not None
        target = await self.store.current_revision() - self.config.compaction_keep
        if target <= await self.store.compacted_revision():
            return 0
        await self.store.compact(target)
        self.caches.forget_before(target)
        return target

    async def _compact_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.compaction_interval)
            try:
                await self.compact_now()
            except Exception:
                log.exception("compaction failed")

    async def stop(self) -> None:
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        if self._runner is not None:
            server = self._runner.server
            transports = [c.transport for c in server.connections] if server else []
            await self._runner.cleanup()
            # A closed TLS connection waits for the client's close_notify, which an idle
            # keep-alive client never sends: end those connections now, not 30 s later.
            for transport in transports:
                if transport is not None:
                    transport.abort()
            # Aborted transports release their sockets on the next loop iteration.
            await asyncio.sleep(0)
        if self.caches is not None:
            await self.caches.stop()
        if self.store is not None:
            await self.store.close()


def _host(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "") else bind


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    sock.setblocking(False)
    return sock
