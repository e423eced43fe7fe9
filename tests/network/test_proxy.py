"""The service proxy against a real cluster: Services and EndpointSlices from the API, real
sockets on loopback addresses standing in for pods, real client connections."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from kubeling.client.rest import Client
from kubeling.network.proxy import ServiceProxy
from kubeling.network.servicetable import Backend, service_table
from kubeling.testing import TestCluster, wait_for


class Backends:
    """Threaded TCP and UDP servers on pod-like addresses that answer `<name>:<data>`."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.stop = threading.Event()

    def tcp(self, ip: str, name: str, *, read_to_eof: bool = False) -> int:
        server = socket.create_server((ip, 0))
        self.sockets.append(server)

        def serve() -> None:
            while not self.stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    data = b""
                    while True:
                        chunk = conn.recv(65536)
                        data += chunk
                        if not chunk or (not read_to_eof and data.endswith(b"\n")):
                            break
                    conn.sendall(name.encode() + b":" + data)

        threading.Thread(target=serve, daemon=True).start()
        return int(server.getsockname()[1])

    def udp(self, ip: str, name: str) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((ip, 0))
        self.sockets.append(sock)

        def serve() -> None:
            while not self.stop.is_set():
                try:
                    data, addr = sock.recvfrom(65536)
                except OSError:
                    return
                sock.sendto(name.encode() + b":" + data, addr)

        threading.Thread(target=serve, daemon=True).start()
        return int(sock.getsockname()[1])

    def close(self) -> None:
        self.stop.set()
        for sock in self.sockets:
            sock.close()


@pytest.fixture(scope="module")
def proxy(cluster: TestCluster) -> Iterator[ServiceProxy]:
    api = Client.from_kubeconfig(str(cluster.kubeconfig))
    running = ServiceProxy(api, node="quiet-node", kernel=False)  # the Protocol relay
    cluster.run(running.start())
    yield running
    cluster.run(running.stop())
    cluster.run(api.close())


@pytest.fixture
def backends() -> Iterator[Backends]:
    servers = Backends()
    yield servers
    servers.close()


@pytest.fixture
def ns(core: client.CoreV1Api) -> Iterator[str]:
    name = f"px-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name


@pytest.fixture(scope="module")
def node(core: client.CoreV1Api) -> Iterator[str]:
    # A node without an agent: only the tests write its pods' status.
    core.create_node({"metadata": {"name": "quiet-node"}})
    yield "quiet-node"
    core.delete_node("quiet-node")


_next_ip = iter(range(2, 250))


def add_pod(
    core: client.CoreV1Api,
    ns: str,
    node: str,
    app: str,
    ip: str,
    port: int,
    *,
    ready: bool = True,
    protocol: str = "TCP",
) -> str:
    name = f"{app}-{uuid.uuid4().hex[:5]}"
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {
                "nodeName": node,
                "containers": [
                    {
                        "name": "c",
                        "image": "x",
                        "ports": [{"name": "p", "containerPort": port, "protocol": protocol}],
                    }
                ],
            },
        },
    )
    status = {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
    }
    core.patch_namespaced_pod_status(name, ns, status)
    return name


def add_service(
    core: client.CoreV1Api, ns: str, app: str, *, protocol: str = "TCP", **spec: Any
) -> Any:
    body = {
        "metadata": {"name": app},
        "spec": {
            "selector": {"app": app},
            "ports": [{"name": "web", "port": 80, "targetPort": "p", "protocol": protocol}],
            **spec,
        },
    }
    return core.create_namespaced_service(ns, body)


def ask(ip: str, port: int, payload: bytes = b"hi\n") -> bytes:
    with socket.create_connection((ip, port), timeout=5) as conn:
        conn.sendall(payload)
        out = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return out
            out += chunk


def pod_ip() -> str:
    return f"127.128.250.{next(_next_ip)}"


def answers(ip: str, port: int, tries: int = 12) -> set[str]:
    found = set()
    for _ in range(tries):
        try:
            found.add(ask(ip, port).split(b":")[0].decode())
        except OSError:
            found.add("<error>")
    return found


def test_a_cluster_ip_is_balanced_over_ready_pods_only(
    core: client.CoreV1Api, proxy: ServiceProxy, backends: Backends, ns: str, node: str
) -> None:
    ips = [pod_ip() for _ in range(3)]
    for i, ip in enumerate(ips):
        add_pod(core, ns, node, "web", ip, backends.tcp(ip, f"b{i}"), ready=i < 2)
    svc = add_service(core, ns, "web")
    cluster_ip = svc.spec.cluster_ip

    wait_for(lambda: answers(cluster_ip, 80) == {"b0", "b1"}, message="b0 and b1 answering")


def test_a_node_port_and_client_ip_affinity(
    core: client.CoreV1Api, proxy: ServiceProxy, backends: Backends, ns: str, node: str
) -> None:
    for i in range(2):
        ip = pod_ip()
        add_pod(core, ns, node, "web", ip, backends.tcp(ip, f"b{i}"))
    svc = add_service(core, ns, "web", type="NodePort", sessionAffinity="ClientIP")
    node_port = svc.spec.ports[0].node_port

    def one_sticky_backend() -> bool:
        found = answers("127.0.0.1", node_port, tries=8)
        return len(found) == 1 and "<error>" not in found

    wait_for(one_sticky_backend, message="one backend for this client")


def test_a_refusing_backend_is_skipped(
    core: client.CoreV1Api, proxy: ServiceProxy, backends: Backends, ns: str, node: str
) -> None:
    alive = pod_ip()
    add_pod(core, ns, node, "web", alive, backends.tcp(alive, "alive"))
    dead = pod_ip()
    closed = socket.create_server((dead, 0))
    port = closed.getsockname()[1]
    closed.close()
    add_pod(core, ns, node, "web", dead, port)
    # Named port "p" resolves per pod, so the pods land in different slices: both count.
    svc = add_service(core, ns, "web")
    wait_for(lambda: answers(svc.spec.cluster_ip, 80) == {"alive"}, message="only the live one")


def test_when_no_pod_is_ready_terminating_serving_pods_still_answer(
    core: client.CoreV1Api, proxy: ServiceProxy, backends: Backends, ns: str, node: str
) -> None:
    ip = pod_ip()
    name = add_pod(core, ns, node, "web", ip, backends.tcp(ip, "leaving"))
    svc = add_service(core, ns, "web")
    wait_for(lambda: answers(svc.spec.cluster_ip, 80) == {"leaving"}, message="answering")
    core.delete_namespaced_pod(name, ns)  # no agent: it stays terminating, still serving
    wait_for(
        lambda: core.read_namespaced_pod(name, ns).metadata.deletion_timestamp is not None,
        message="terminating",
    )
    assert answers(svc.spec.cluster_ip, 80) == {"leaving"}


def test_a_half_close_reaches_the_backend_and_the_reply_comes_back(
    core: client.CoreV1Api, proxy: ServiceProxy, backends: Backends, ns: str, node: str
) -> None:
    ip = pod_ip()
    add_pod(core, ns, node, "web", ip, backends.tcp(ip, "eof", read_to_eof=True))
    svc = add_service(core, ns, "web")

    def reply() -> bytes:
        with socket.create_connection((svc.spec.cluster_ip, 80), timeout=5) as conn:
            conn.sendall(b"x" * 200_000)
            conn.shutdown(socket.SHUT_WR)
            out = b""
            while chunk := conn.recv(65536):
                out += chunk
            return out

    out = wait_for(lambda: reply() or None, message="a reply after EOF")
    assert out == b"eof:" + b"x" * 200_000


def test_udp_is_forwarded_both_ways(
    core: client.CoreV1Api, proxy: ServiceProxy, backends: Backends, ns: str, node: str
) -> None:
    ip = pod_ip()
    add_pod(core, ns, node, "dns", ip, backends.udp(ip, "u"), protocol="UDP")
    svc = add_service(core, ns, "dns", protocol="UDP")

    def exchange() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            sock.sendto(b"q", (svc.spec.cluster_ip, 80))
            try:
                return sock.recvfrom(65536)[0]
            except OSError:
                return None

    assert wait_for(exchange, message="a UDP reply") == b"u:q"


def test_local_traffic_policy_keeps_only_this_nodes_endpoints() -> None:
    services = [
        {
            "metadata": {"namespace": "n", "name": "s"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "127.96.0.9",
                "externalTrafficPolicy": "Local",
                "ports": [{"name": "", "port": 80, "nodePort": 30080, "protocol": "TCP"}],
            },
        }
    ]
    slices = [
        {
            "metadata": {"namespace": "n", "labels": {"kubernetes.io/service-name": "s"}},
            "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["127.128.0.2"], "nodeName": "a", "conditions": {"ready": True}},
                {"addresses": ["127.128.1.2"], "nodeName": "b", "conditions": {"ready": True}},
            ],
        }
    ]
    table = service_table(services, slices, "a", "127.0.0.1")
    routes = {(k.ip, k.port): r for k, r in table.routes.items()}
    assert set(routes[("127.96.0.9", 80)].backends) == {
        Backend("127.128.0.2", 8080, "a"),
        Backend("127.128.1.2", 8080, "b"),
    }
    assert routes[("127.0.0.1", 30080)].backends == (Backend("127.128.0.2", 8080, "a"),)
