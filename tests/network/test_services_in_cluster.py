"""Services in a whole cluster with a real node: a Deployment's processes answer through
their Service's ClusterIP and NodePort (the node's proxy), only while Ready, and the cluster
DNS answers through the kube-dns Service."""

from __future__ import annotations

import socket
import struct
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from kubeling.testing import TestCluster, wait_for

pytestmark = pytest.mark.e2e

SERVER = (
    "import http.server, os, pathlib\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        ok = not pathlib.Path(os.environ['HOME'], 'sick').exists()\n"
    "        self.send_response(200 if ok or self.path != '/healthz' else 500)\n"
    "        self.end_headers(); self.wfile.write(os.environ['HOSTNAME'].encode())\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()\n"
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(nodes=1) as c:
        yield c


@pytest.fixture(scope="module")
def web(cluster: TestCluster, core: client.CoreV1Api) -> Any:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "python",
                            "command": [sys.executable, "-c", SERVER],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ]
                },
            },
        },
    }
    client.AppsV1Api(cluster.api_client()).create_namespaced_deployment("default", deployment)
    service = {
        "metadata": {"name": "web"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    return core.create_namespaced_service("default", service)


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


def pod_names(core: client.CoreV1Api) -> set[str]:
    return {
        p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=web").items
    }


def test_the_cluster_ip_and_node_port_reach_both_ready_pods(
    core: client.CoreV1Api, web: Any
) -> None:
    cluster_ip, node_port = web.spec.cluster_ip, web.spec.ports[0].node_port

    def both(url: str) -> bool:
        seen = {get(url) for _ in range(12)}
        return seen == pod_names(core) and len(seen) == 2

    wait_for(lambda: both(f"http://{cluster_ip}/"), timeout=60, message="both pods via ClusterIP")
    wait_for(lambda: both(f"http://127.0.0.1:{node_port}/"), timeout=30, message="via NodePort")


def test_a_pod_that_stops_being_ready_stops_getting_traffic(
    cluster: TestCluster, core: client.CoreV1Api, web: Any
) -> None:
    cluster_ip = web.spec.cluster_ip
    wait_for(lambda: len({get(f"http://{cluster_ip}/") for _ in range(12)}) == 2, timeout=60)
    sick = sorted(pod_names(core))[0]
    uid = core.read_namespaced_pod(sick, "default").metadata.uid
    home = cluster.server.config.data_dir / "nodes" / "node-0" / "pods" / uid
    (home / "sick").write_text("")
    try:
        wait_for(
            lambda: {get(f"http://{cluster_ip}/") for _ in range(12)} == pod_names(core) - {sick},
            timeout=30,
            message="traffic only to the ready pod",
        )
    finally:
        (home / "sick").unlink()


def test_cluster_dns_answers_through_the_kube_dns_service(core: client.CoreV1Api, web: Any) -> None:
    dns_ip = core.read_namespaced_service("kube-dns", "kube-system").spec.cluster_ip
    name = b"".join(
        bytes([len(p)]) + p.encode() for p in ["web", "default", "svc", "cluster", "local"]
    )
    query = (
        struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + name + b"\x00" + struct.pack("!HH", 1, 1)
    )

    def answer() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            sock.sendto(query, (dns_ip, 53))
            try:
                return sock.recvfrom(512)[0]
            except OSError:
                return None

    reply = wait_for(answer, timeout=30, message="a DNS answer from kube-dns")
    assert struct.unpack("!H", reply[6:8])[0] == 1  # one answer
    assert socket.inet_ntoa(reply[-4:]) == web.spec.cluster_ip
