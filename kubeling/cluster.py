"""The composition root: a whole control plane wired from its parts.

`Cluster` starts the API server, then the controller manager and the scheduler as clients
of it (over the same HTTPS API any remote component would use, DESIGN.md § 1), and stops them
in the reverse order. It is the only module that knows every part; the parts know only the API.
"""

from __future__ import annotations

from kubeling.apiserver.server import APIServer, ServerConfig
from kubeling.client.rest import Client
from kubeling.controllers.namespace import namespace_controller
from kubeling.reconcile import Manager
from kubeling.scheduler.loop import Scheduler


class Cluster:
    def __init__(self, config: ServerConfig, *, controllers: bool = True) -> None:
        self.server = APIServer(config)
        self.with_controllers = controllers
        self.client: Client | None = None
        self.manager: Manager | None = None
        self.scheduler: Scheduler | None = None

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()
        if not self.with_controllers:
            return
        self.client = Client.from_kubeconfig(
            str(self.server.kubeconfig_path), user_agent="kubeling-controller-manager"
        )
        self.manager = Manager(self.client)
        namespace_controller(self.client, self.manager)
        await self.manager.start()
        self.scheduler = Scheduler(self.client)
        self.scheduler.start()
        await self.scheduler.wait_synced(30)

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.manager is not None:
            await self.manager.stop()
        if self.client is not None:
            await self.client.close()
        await self.server.stop()
