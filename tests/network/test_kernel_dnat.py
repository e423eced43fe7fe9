"""The kernel data path: which routes become nftables DNAT rules (pure), and, as root with
`nft`, a real proxy's rules carrying a Service's connections without its userspace relay."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from kubeling.client.rest import Client
from kubeling.network.kerneldnat import KernelDNAT, render
from kubeling.network.proxy import ServiceProxy
from kubeling.network.servicetable import Backend, ListenKey, Route, ServicePort, ServiceTable
from kubeling.testing import TestCluster, wait_for

PORT = ServicePort("ns", "web", "", "TCP")
ONE = (Backend("127.128.9.2", 8080),)
TWO = (Backend("127.128.9.2", 8080), Backend("127.128.9.3", 8080))


def test_only_plain_tcp_routes_with_backends_become_rules() -> None:
    table = ServiceTable(
        {
            ListenKey("127.96.0.5", 80, "TCP"): Route(PORT, False, ONE),
            ListenKey("127.0.0.1", 30080, "TCP"): Route(PORT, True, TWO),
            ListenKey("127.96.0.6", 80, "TCP"): Route(PORT, False, ()),  # no backend
            ListenKey("127.96.0.7", 80, "TCP"): Route(PORT, False, TWO, affinity_seconds=60),
            ListenKey("127.96.0.8", 80, "TCP"): Route(PORT, False, TWO, local=True),
            ListenKey("127.96.0.10", 53, "UDP"): Route(PORT, False, ONE),
        }
    )

    script = render("kubeling_1_n", table)

    rules = [line.strip() for line in script.splitlines() if "dnat" in line]
    assert rules == [
        "ip daddr 127.0.0.1 tcp dport 30080 dnat ip to numgen inc mod 2 map "
        "{ 0 : 127.128.9.2 . 8080, 1 : 127.128.9.3 . 8080 }",
        "ip daddr 127.96.0.5 tcp dport 80 dnat ip to 127.128.9.2:8080",
    ]
    # One transaction that replaces whatever the table held.
    assert script.startswith("add table ip kubeling_1_n\ndelete table ip kubeling_1_n\n")


kernel = pytest.mark.skipif(not KernelDNAT.available(), reason="needs root and nft")


def tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


@kernel
def test_tables_of_processes_that_are_gone_are_removed() -> None:
    subprocess.run(["nft", "add", "table", "ip", "kubeling_4000000_node_0"], check=True)

    removed = asyncio.run(KernelDNAT.remove_stale())

    assert "kubeling_4000000_node_0" in removed
    assert "kubeling_4000000_node_0" not in tables()


class Servers:
    """TCP servers on pod-like addresses answering their name, one connection at a time."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []

    def start(self, ip: str, name: str) -> int:
        server = socket.create_server((ip, 0))
        self.sockets.append(server)

        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(name.encode())

        threading.Thread(target=serve, daemon=True).start()
        return int(server.getsockname()[1])

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def servers() -> Iterator[Servers]:
    running = Servers()
    yield running
    running.close()


def answers(ip: str, port: int, tries: int = 12) -> set[str]:
    found = set()
    for _ in range(tries):
        try:
            with socket.create_connection((ip, port), timeout=2) as sock:
                found.add(sock.recv(64).decode())
        except OSError:
            found.add("<error>")
    return found


def endpoint_slice(name: str, ip: str, port: int, ready: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}],
        "ports": [{"name": "", "port": port, "protocol": "TCP"}],
    }


@kernel
def test_a_service_is_served_by_rules_in_the_kernel(
    cluster: TestCluster,
    core: client.CoreV1Api,
    discovery: client.DiscoveryV1Api,
    servers: Servers,
) -> None:
    api = Client.from_kubeconfig(str(cluster.kubeconfig))
    proxy = ServiceProxy(api, node="kernel-node", kernel=True)
    cluster.run(proxy.start())
    try:
        svc = core.create_namespaced_service(
            "default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
        )
        ip = svc.spec.cluster_ip
        ports = {name: servers.start(f"127.128.248.{i + 2}", name) for i, name in enumerate("ab")}
        for i, name in enumerate("ab"):
            body = endpoint_slice(f"web-{name}", f"127.128.248.{i + 2}", ports[name], True)
            discovery.create_namespaced_endpoint_slice("default", body)

        assert proxy.dnat is not None
        rules = ["nft", "list", "table", "ip", proxy.dnat.name]

        def rule() -> str:
            listing = subprocess.run(rules, capture_output=True, text=True).stdout
            return next((line for line in listing.splitlines() if f"{ip} tcp" in line), "")

        wait_for(
            lambda: "127.128.248.2" in rule() and "127.128.248.3" in rule(),
            message="the Service's rule over both endpoints",
        )
        relay = proxy.listeners[ListenKey(ip, 80, "TCP")]
        relayed = relay.connections  # the relay serves until the rule is in
        assert answers(ip, 80, tries=20) == {"a", "b"}
        assert relay.connections == relayed  # since then nothing went through the relay

        not_ready = {
            "endpoints": [{"addresses": ["127.128.248.3"], "conditions": {"ready": False}}]
        }
        discovery.patch_namespaced_endpoint_slice("web-b", "default", not_ready)
        wait_for(lambda: answers(ip, 80) == {"a"}, message="only the ready one")
    finally:
        cluster.run(proxy.stop())
        cluster.run(api.close())
    assert "kernel_node" not in tables()
