"""The example app behind its Service and Ingress on two nodes, as a user reaches it:
`kubeling up --nodes 2 -f examples/`, then HTTP to the ClusterIP, the node port, the
load-balancer address and the Ingress (by host, then HTTPS with a certificate from a Secret),
each reaching Ready pods on both nodes; and the cluster DNS naming the Service."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_support import Kubeling, free_port

from kubeling.testing.cluster import wait_for
from kubeling.util.selfsigned import self_signed_certificate

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HOST = "hello.localhost"
GREETING = re.compile(r"pod (hello-\S+) at ")


class Demo(Kubeling):
    """`kubeling up --nodes 2 --ingress-ports H,S -f examples/` from the repository root."""

    def __init__(self, data_dir: Path) -> None:
        self.http_port, self.https_port = free_port(), free_port()
        super().__init__(
            "up",
            data_dir,
            free_port(),
            "--nodes",
            "2",
            "--ingress-ports",
            f"{self.http_port},{self.https_port}",
            "-f",
            "examples/",
            cwd=ROOT,
        )

    def pods_by_node(self) -> dict[str, str]:
        pods = json.loads(self.kubectl("get", "pods", "-l", "app=hello", "-o", "json"))["items"]
        return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in pods}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(tmp_path_factory.mktemp("services-up") / "data")
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def addresses(demo: Demo) -> dict[str, str]:
    """What `up` printed for the Service and the Ingress."""
    service = demo.wait_for_line("service default/hello at ", timeout=120)
    ingress = demo.wait_for_line("ingress default/hello at ", timeout=30)
    match = re.fullmatch(
        r"service default/hello at (127\.[\d.]+):80, node port (\d+), "
        r"load balancer (127\.80\.[\d.]+):80",
        service,
    )
    assert match, service
    assert ingress == f"ingress default/hello at http://{HOST}:{demo.http_port}/"
    return {
        "cluster_ip": match.group(1),
        "node_port": match.group(2),
        "load_balancer": match.group(3),
    }


def get(host: str, port: int, *, headers: dict[str, str] | None = None) -> str | None:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", "/", headers=headers or {})
        response = connection.getresponse()
        body = response.read().decode()
        return body if response.status == 200 else None
    except OSError:
        return None
    finally:
        connection.close()


def reaches_both_nodes(demo: Demo, answer: object) -> bool:
    """Twenty requests answered by Ready pods that together run on both nodes."""
    bodies = [answer() for _ in range(20)]  # type: ignore[operator]
    names = {m.group(1) for b in bodies if b and (m := GREETING.search(b))}
    if None in bodies or not names:
        return False
    nodes = demo.pods_by_node()
    return {nodes.get(name) for name in names} == {"node-0", "node-1"}


@pytest.mark.parametrize("path", ["cluster_ip", "node_port", "load_balancer", "ingress"])
def test_each_address_reaches_ready_pods_on_both_nodes(
    demo: Demo, addresses: dict[str, str], path: str
) -> None:
    if path == "cluster_ip":
        answer = lambda: get(addresses["cluster_ip"], 80)  # noqa: E731
    elif path == "node_port":
        answer = lambda: get("127.0.0.1", int(addresses["node_port"]))  # noqa: E731
    elif path == "load_balancer":
        answer = lambda: get(addresses["load_balancer"], 80)  # noqa: E731
    else:
        answer = lambda: get("127.0.0.1", demo.http_port, headers={"Host": HOST})  # noqa: E731

    wait_for(lambda: reaches_both_nodes(demo, answer), timeout=60, message=f"both nodes: {path}")


def test_an_unknown_host_gets_404_from_the_ingress(demo: Demo, addresses: dict[str, str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", demo.http_port, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": "other.localhost"})
        response = connection.getresponse()
        assert response.status == 404
        assert "no Ingress rule" in response.read().decode()
    finally:
        connection.close()


def test_https_through_the_ingress_with_a_certificate_from_a_secret(
    demo: Demo, addresses: dict[str, str], tmp_path: Path
) -> None:
    cert_pem, key_pem = self_signed_certificate(HOST)
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    demo.kubectl("create", "secret", "tls", "hello-tls", f"--cert={cert_file}", f"--key={key_file}")
    tls = {"spec": {"tls": [{"hosts": [HOST], "secretName": "hello-tls"}]}}
    demo.kubectl("patch", "ingress", "hello", "--type=merge", "-p", json.dumps(tls))
    context = ssl.create_default_context(cafile=str(cert_file))  # verifies the name too

    def answer() -> str | None:
        raw = socket.create_connection(("127.0.0.1", demo.https_port), timeout=5)
        try:
            with context.wrap_socket(raw, server_hostname=HOST) as sock:
                sock.sendall(
                    f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
                )
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
        except (OSError, ssl.SSLError):
            return None
        head, _, body = data.decode().partition("\r\n\r\n")
        return body if head.startswith("HTTP/1.1 200") else None

    body = wait_for(answer, timeout=30, message="HTTPS with the Secret's certificate")
    assert GREETING.search(body), body


def test_cluster_dns_names_the_service(demo: Demo, addresses: dict[str, str]) -> None:
    """What `dig @<kube-dns ClusterIP> hello.default.svc.cluster.local` asks and gets."""
    dns = json.loads(demo.kubectl("get", "service", "kube-dns", "-n", "kube-system", "-o", "json"))
    name = b"".join(
        bytes([len(p)]) + p.encode() for p in ["hello", "default", "svc", "cluster", "local"]
    )
    query = struct.pack("!HHHHHH", 9, 0x0100, 1, 0, 0, 0) + name + b"\0" + struct.pack("!HH", 1, 1)

    def answer() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            sock.sendto(query, (dns["spec"]["clusterIP"], 53))
            try:
                return sock.recvfrom(512)[0]
            except OSError:
                return None

    reply = wait_for(answer, timeout=30, message="an answer from kube-dns")
    assert struct.unpack("!H", reply[6:8])[0] == 1
    assert socket.inet_ntoa(reply[-4:]) == addresses["cluster_ip"]


def test_the_api_server_answers_as_the_kubernetes_service(demo: Demo) -> None:
    """`default/kubernetes`, as in-cluster clients use it: https://127.96.0.1:443, verified
    by the cluster's CA (the server's certificate names that address)."""
    service = json.loads(demo.kubectl("get", "service", "kubernetes", "-o", "json"))
    assert service["spec"]["clusterIP"] == "127.96.0.1"
    assert service["spec"]["ports"][0]["port"] == 443
    context = ssl.create_default_context(cafile=str(demo.data_dir / "tls" / "ca.crt"))
    token = (demo.data_dir / "admin-token").read_text().strip()

    def version() -> dict[str, str] | None:
        connection = http.client.HTTPSConnection("127.96.0.1", 443, context=context, timeout=5)
        try:
            connection.request("GET", "/version", headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            return json.loads(response.read()) if response.status == 200 else None
        except OSError:
            return None
        finally:
            connection.close()

    assert wait_for(version, timeout=30, message="the API through its Service")["major"] == "1"


def test_kubectl_shows_the_endpoints_as_on_kubernetes(
    demo: Demo, addresses: dict[str, str]
) -> None:
    def pod_ips() -> set[str]:
        pods = json.loads(demo.kubectl("get", "pods", "-l", "app=hello", "-o", "json"))["items"]
        return {p["status"].get("podIP") for p in pods}

    def slices() -> list[list[str]] | None:
        out = demo.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=hello")
        rows = [line.split() for line in out.splitlines()]
        return rows if len(rows) == 2 else None

    rows = wait_for(slices, message="one slice")
    assert rows[0] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    name, family, ports, endpoints, _age = rows[1]
    assert name.startswith("hello-") and family == "IPv4" and ports == "8080"
    assert set(endpoints.split(",")) == pod_ips()

    described = demo.kubectl("describe", "service", "hello")
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in described.splitlines())
        if value
    )
    assert fields["Type"] == "LoadBalancer"
    assert fields["IP"] == addresses["cluster_ip"]
    assert fields["LoadBalancer Ingress"].startswith(addresses["load_balancer"])
    assert fields["NodePort"] == f"http  {addresses['node_port']}/TCP"
    assert set(fields["Endpoints"].split(",")) == {f"{ip}:8080" for ip in pod_ips()}
