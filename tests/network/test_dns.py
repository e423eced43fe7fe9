"""Cluster DNS against a real cluster, queried over real UDP and TCP sockets with queries
built by hand here (independently of the server's own encoder)."""

from __future__ import annotations

import socket
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from kubeling.client.rest import Client
from kubeling.network.dns import ClusterDNS, publish_kube_dns
from kubeling.testing import TestCluster, wait_for

A, SRV, PTR, AAAA, CNAME = 1, 33, 12, 28, 5


def query(name: str, qtype: int, ident: int = 0x1234) -> bytes:
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return (
        struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, 1)
    )


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels, end = [], None
    while data[offset]:
        if data[offset] & 0xC0 == 0xC0:
            end = end or offset + 2
            offset = ((data[offset] & 0x3F) << 8) | data[offset + 1]
            continue
        labels.append(data[offset + 1 : offset + 1 + data[offset]].decode())
        offset += 1 + data[offset]
    return ".".join(labels), end or offset + 1


def parse(reply: bytes) -> tuple[int, list[tuple[int, Any]]]:
    _, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    offset = 12
    for _ in range(qd):
        _, offset = read_name(reply, offset)
        offset += 4
    answers = []
    for _ in range(an):
        _, offset = read_name(reply, offset)
        rtype, _, _, length = struct.unpack("!HHIH", reply[offset : offset + 10])
        offset += 10
        rdata = reply[offset : offset + length]
        if rtype == A:
            answers.append((rtype, socket.inet_ntoa(rdata)))
        elif rtype == SRV:
            _priority, _weight, port = struct.unpack("!HHH", rdata[:6])
            answers.append((rtype, (port, read_name(reply, offset + 6)[0])))
        elif rtype in (PTR, CNAME):
            answers.append((rtype, read_name(reply, offset)[0]))
        offset += length
    return flags & 0xF, answers


def ask_udp(port: int, name: str, qtype: int = A) -> tuple[int, list[tuple[int, Any]]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query(name, qtype), ("127.0.0.1", port))
        return parse(sock.recvfrom(4096)[0])


def ask_tcp(port: int, name: str, qtype: int = A) -> tuple[int, list[tuple[int, Any]]]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        message = query(name, qtype)
        conn.sendall(struct.pack("!H", len(message)) + message)
        length = struct.unpack("!H", conn.recv(2))[0]
        data = b""
        while len(data) < length:
            data += conn.recv(length - len(data))
        return parse(data)


@pytest.fixture(scope="module")
def dns(cluster: TestCluster) -> Iterator[ClusterDNS]:
    api = Client.from_kubeconfig(str(cluster.kubeconfig))
    server = ClusterDNS(api)
    cluster.run(server.start())
    yield server
    cluster.run(server.stop())
    cluster.run(api.close())


@pytest.fixture(scope="module")
def ns(core: client.CoreV1Api) -> str:
    name = f"dns-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_node({"metadata": {"name": f"quiet-{name}"}})
    core.create_namespaced_service(
        name,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
        },
    )
    core.create_namespaced_service(
        name,
        {
            "metadata": {"name": "db"},
            "spec": {
                "clusterIP": "None",
                "selector": {"app": "db"},
                "ports": [{"name": "sql", "port": 5432}],
            },
        },
    )
    core.create_namespaced_service(
        name,
        {
            "metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.test"},
        },
    )
    for i in (1, 2):
        core.create_namespaced_pod(
            name,
            {
                "metadata": {"name": f"db-{i}", "labels": {"app": "db"}},
                "spec": {"nodeName": f"quiet-{name}", "containers": [{"name": "c", "image": "x"}]},
            },
        )
        status = {
            "status": {
                "phase": "Running",
                "podIP": f"127.128.240.{i}",
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        }
        core.patch_namespaced_pod_status(f"db-{i}", name, status)
    return name


def test_a_service_name_resolves_to_its_cluster_ip_over_udp_and_tcp(
    core: client.CoreV1Api, dns: ClusterDNS, ns: str
) -> None:
    cluster_ip = core.read_namespaced_service("web", ns).spec.cluster_ip
    name = f"web.{ns}.svc.cluster.local"
    assert wait_for(lambda: ask_udp(dns.port, name)) == (0, [(A, cluster_ip)])
    assert ask_tcp(dns.port, name) == (0, [(A, cluster_ip)])
    assert ask_udp(dns.port, name, AAAA) == (0, [])
    assert ask_udp(dns.port, f"_http._tcp.web.{ns}.svc.cluster.local", SRV) == (
        0,
        [(SRV, (80, f"web.{ns}.svc.cluster.local"))],
    )
    in_addr = ".".join(reversed(cluster_ip.split("."))) + ".in-addr.arpa"
    assert ask_udp(dns.port, in_addr, PTR) == (0, [(PTR, f"web.{ns}.svc.cluster.local")])


def test_a_headless_service_resolves_to_its_ready_pods(dns: ClusterDNS, ns: str) -> None:
    name = f"db.{ns}.svc.cluster.local"

    def both() -> Any:
        _rcode, answers = ask_udp(dns.port, name)
        return answers if len(answers) == 2 else None

    assert sorted(wait_for(both, message="two pod addresses")) == [
        (A, "127.128.240.1"),
        (A, "127.128.240.2"),
    ]
    assert ask_udp(dns.port, f"127-128-240-1.db.{ns}.svc.cluster.local") == (
        0,
        [(A, "127.128.240.1")],
    )
    _rcode, srv = ask_udp(dns.port, f"_sql._tcp.db.{ns}.svc.cluster.local", SRV)
    assert sorted(srv) == [
        (SRV, (5432, f"127-128-240-1.db.{ns}.svc.cluster.local")),
        (SRV, (5432, f"127-128-240-2.db.{ns}.svc.cluster.local")),
    ]


def test_other_names_get_nxdomain_pods_by_address_and_outside_names_are_refused(
    dns: ClusterDNS, ns: str
) -> None:
    assert ask_udp(dns.port, f"nope.{ns}.svc.cluster.local")[0] == 3
    assert ask_udp(dns.port, f"127-128-9-9.{ns}.pod.cluster.local") == (0, [(A, "127.128.9.9")])
    assert ask_udp(dns.port, "example.com")[0] == 5
    assert ask_udp(dns.port, f"ext.{ns}.svc.cluster.local") == (0, [(CNAME, "example.test")])


def test_kube_dns_passes_over_an_address_another_cluster_serves_on(
    cluster: TestCluster, core: client.CoreV1Api
) -> None:
    """Another cluster's kube-dns on this machine (here: a socket on 127.96.0.10) keeps this
    cluster's off that address, so that its pods never get the other's answers."""
    api = Client.from_kubeconfig(str(cluster.kubeconfig))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.96.0.10", 0))
        cluster.run(publish_kube_dns(api, "127.0.0.1", 5353))
    cluster.run(api.close())
    service = core.read_namespaced_service("kube-dns", "kube-system")
    assert service.spec.cluster_ip != "127.96.0.10"
    assert service.spec.cluster_ip.startswith("127.")
    core.delete_namespaced_service("kube-dns", "kube-system")
