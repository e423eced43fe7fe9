"""The composition root: a whole control plane wired from its parts.

`Cluster` starts the API server, then the controller manager, the scheduler, its real nodes
(`NodeAgent`s named `node-0`, ... with the pod CIDRs `pod_cidr_for(0..N-1)`) and any simulated
nodes (the CIDRs after those) as clients of it (over the same HTTPS API any remote component
would use, DESIGN.md § 1), and stops them in the reverse order. It is the only module that
knows every part; the parts know only the API.
"""

from __future__ import annotations

import logging

from kubeling.agent import FakeNodes
from kubeling.agent.agent import NodeAgent
from kubeling.agent.fake import pod_cidr_for
from kubeling.apiserver.server import APIServer, ServerConfig
from kubeling.client.events import EventRecorder
from kubeling.client.kubeconfig import ClientConfig
from kubeling.client.rest import Client
from kubeling.controllers.deployment import deployment_controller
from kubeling.controllers.endpoints import endpoints_controller
from kubeling.controllers.endpointslice import endpointslice_controller
from kubeling.controllers.garbagecollector import garbage_collector
from kubeling.controllers.loadbalancer import loadbalancer_controller
from kubeling.controllers.namespace import namespace_controller
from kubeling.controllers.nodelifecycle import node_lifecycle_controller
from kubeling.controllers.podgc import podgc_controller
from kubeling.controllers.replicaset import replicaset_controller
from kubeling.network.dns import ClusterDNS, publish_kube_dns
from kubeling.network.drain import ProxyReport
from kubeling.network.ingress import IngressProxy, ensure_default_ingress_class
from kubeling.network.localservice import KUBERNETES_SERVICE_IP, publish_kubernetes_service
from kubeling.reconcile import Manager
from kubeling.scheduler.loop import Scheduler
from kubeling.util.netstat import bound_addresses

log = logging.getLogger(__name__)

# Local agents heartbeat often and are judged fast: on one machine a silent agent is dead, not
# slow, and its pods should come back elsewhere within seconds (Kubernetes: 40 s, then 5 min).
LOCAL_LEASE_DURATION = 5


def node_name(index: int) -> str:
    """The name of `up`'s `index`-th real node: `node-0`, `node-1`, ... (not the hostname, which
    `kubeling agent` uses by default, so an agent started on the same machine does not collide
    with `up`'s own node)."""
    return f"node-{index}"


class Cluster:
    def __init__(
        self,
        config: ServerConfig,
        *,
        controllers: bool = True,
        nodes: int = 0,
        fake_nodes: int = 0,
        node_lease_duration: int = LOCAL_LEASE_DURATION,
        ingress_ports: tuple[int, int] | None = None,
    ) -> None:
        self.server = APIServer(config)
        self.with_controllers = controllers
        self.node_count = nodes
        self.node_lease_duration = node_lease_duration
        self.fake_node_count = fake_nodes
        self.fake_nodes: FakeNodes | None = None
        self.agents: list[NodeAgent] = []
        self.node_client: Client | None = None
        self.dns: ClusterDNS | None = None
        self.ingress_ports = ingress_ports
        self.ingress: IngressProxy | None = None
        self.client: Client | None = None
        self.manager: Manager | None = None
        self.scheduler: Scheduler | None = None
        self.recorders: list[EventRecorder] = []

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
        # With a collector running, Foreground/Orphan deletes get their finalizers.
        assert self.server.objects is not None
        self.server.objects.gc_enabled = True
        garbage_collector(self.client, self.manager)
        namespace_controller(self.client, self.manager)
        podgc_controller(self.client, self.manager)
        nodes = EventRecorder(self.client, "node-controller")
        self.recorders.append(nodes)
        node_lifecycle_controller(self.client, self.manager, nodes)
        replicasets = EventRecorder(self.client, "replicaset-controller")
        self.recorders.append(replicasets)
        replicaset_controller(self.client, self.manager, replicasets)
        deployments = EventRecorder(self.client, "deployment-controller")
        self.recorders.append(deployments)
        deployment_controller(self.client, self.manager, deployments)
        # The API server's own Service, default/kubernetes, as Kubernetes keeps it.
        api_host = (
            "127.0.0.1" if self.server.config.bind in ("0.0.0.0", "") else self.server.config.bind
        )
        await publish_kubernetes_service(self.client, api_host, self.server.port)
        endpointslice_controller(self.client, self.manager)
        endpoints_controller(self.client, self.manager)
        loadbalancer_controller(self.client, self.manager)
        await self.manager.start()
        self.scheduler = Scheduler(self.client)
        self.scheduler.start()
        await self.scheduler.wait_synced(30)
        credentials = self.server.credentials
        assert credentials is not None  # the server has started
        if self.node_count:
            # Nodes authenticate as nodes (the join token's credential), not as the admin.
            self.node_client = Client(
                ClientConfig(
                    server=self.server.url,
                    ca_file=str(credentials.ca_cert),
                    token=credentials.node_credential,
                ),
                user_agent="kubeling-agent",
            )
        if self.node_count and KUBERNETES_SERVICE_IP in bound_addresses():
            # Before this cluster's proxies open: someone else serves default/kubernetes here.
            log.warning(
                "another kubeling cluster runs real nodes on this machine: both use the same"
                " address ranges, so Service addresses (kube-dns, load balancers) may answer"
                " for either cluster; stop one of them"
            )
        if self.node_count:
            # Cluster DNS for the pods, published as kube-system/kube-dns like CoreDNS.
            self.dns = ClusterDNS(self.client)
            await self.dns.start()
            await publish_kube_dns(self.client, self.dns.host, self.dns.port)
        for index in range(self.node_count):
            name = node_name(index)
            assert self.node_client is not None
            agent = NodeAgent(
                self.node_client,
                name,
                data_dir=self.server.config.data_dir / "nodes" / name,
                pod_cidr=pod_cidr_for(index),
                lease_duration=self.node_lease_duration,
                endpoint_token=credentials.node_credential,
                renew_interval=max(self.node_lease_duration / 4, 0.5),
            )
            await agent.start()
            self.agents.append(agent)
        if self.ingress_ports is not None:
            await self._start_ingress(*self.ingress_ports)
        if self.fake_node_count:
            self.fake_nodes = FakeNodes(
                self.client, self.fake_node_count, first_index=self.node_count
            )
            await self.fake_nodes.start()
            await self.fake_nodes.wait_synced(30)

    async def _start_ingress(self, http_port: int, https_port: int) -> None:
        """The Ingress proxy on the node address, with the default IngressClass `kubeling`. A
        port that cannot be had is a warning, not a failure: the rest of the cluster runs."""
        assert self.client is not None
        await ensure_default_ingress_class(self.client)
        ingress = IngressProxy(
            self.client,
            http_port=http_port,
            https_port=https_port,
            report=ProxyReport(self.client, "ingress", duration=self.node_lease_duration),
        )
        try:
            await ingress.start()
        except OSError as err:
            await ingress.stop()
            log.warning("no Ingress proxy: ports %s/%s: %s", http_port, https_port, err)
            return
        self.ingress = ingress

    async def stop(self) -> None:
        if self.ingress is not None:
            await self.ingress.stop()
            self.ingress = None
        for agent in reversed(self.agents):
            await agent.stop()
        self.agents.clear()
        if self.fake_nodes is not None:
            await self.fake_nodes.stop()
        if self.dns is not None:
            await self.dns.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.manager is not None:
            await self.manager.stop()
        for recorder in self.recorders:
            await recorder.close()
        if self.client is not None:
            await self.client.close()
        if self.node_client is not None:
            await self.node_client.close()
        await self.server.stop()
