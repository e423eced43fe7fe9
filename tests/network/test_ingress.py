"""Ingress against a real cluster: host and path rules, default backend, TLS by SNI,
forwarding headers, errors with a body, status. Pods are stand-in HTTP servers."""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import json
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubeling.client.rest import Client
from kubeling.network.ingress import IngressProxy, host_matches, path_matches, route
from kubeling.testing import TestCluster, wait_for
from kubeling.util.selfsigned import self_signed_certificate


def serve(ip: str, name: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {"backend": name, "path": self.path, "headers": dict(self.headers.items())}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((ip, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


@pytest.fixture(scope="module")
def proxy(cluster: TestCluster, networking: client.NetworkingV1Api) -> Iterator[IngressProxy]:
    networking.create_ingress_class(
        {
            "metadata": {
                "name": "kubeling",
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": "kubeling.dev/ingress"},
        }
    )
    api = Client.from_kubeconfig(str(cluster.kubeconfig))
    running = IngressProxy(api, http_port=0, https_port=0)
    cluster.run(running.start())
    yield running
    cluster.run(running.stop())
    cluster.run(api.close())


@pytest.fixture(scope="module")
def world(core: client.CoreV1Api) -> Iterator[str]:
    """Namespace with services `a` and `b` (one ready stand-in pod each) and `empty`."""
    ns = f"ing-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    node = f"quiet-{ns}"
    core.create_node({"metadata": {"name": node}})
    servers = []
    for i, app in enumerate(("a", "b")):
        ip = f"127.128.230.{i + 1}"
        server, port = serve(ip, app)
        servers.append(server)
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": app, "labels": {"app": app}},
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {
                            "name": "c",
                            "image": "x",
                            "ports": [{"name": "http", "containerPort": port}],
                        }
                    ],
                },
            },
        )
        ready = {
            "status": {
                "phase": "Running",
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        }
        core.patch_namespaced_pod_status(app, ns, ready)
    for app in ("a", "b", "empty"):
        core.create_namespaced_service(
            ns,
            {
                "metadata": {"name": app},
                "spec": {
                    "selector": {"app": app},
                    "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
                },
            },
        )
    yield ns
    for server in servers:
        server.shutdown()
        server.server_close()


def get(port: int, host: str, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def backend_of(port: int, host: str, path: str) -> str | None:
    status, body = get(port, host, path)
    return json.loads(body)["backend"] if status == 200 else None


def ingress(ns: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def backend(service: str) -> dict[str, Any]:
    return {"service": {"name": service, "port": {"number": 80}}}


def test_hosts_and_paths_route_to_their_services(
    networking: client.NetworkingV1Api, proxy: IngressProxy, world: str
) -> None:
    rules = [
        {
            "host": "shop.test",
            "http": {
                "paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": backend("a")},
                    {"path": "/api/exact", "pathType": "Exact", "backend": backend("b")},
                ]
            },
        },
        {
            "host": "*.wild.test",
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("b")}]},
        },
    ]
    networking.create_namespaced_ingress(world, ingress(world, "shop", rules=rules))
    port = proxy.http_port
    assert wait_for(lambda: backend_of(port, "shop.test", "/api/items")) == "a"
    assert backend_of(port, "shop.test", "/api/exact") == "b"
    assert backend_of(port, "shop.test", "/apiary") is None
    assert backend_of(port, "x.wild.test", "/") == "b"
    status, body = get(port, "other.test", "/")
    assert status == 404 and b"no Ingress rule" in body
    _, raw = get(port, "shop.test:8080", "/api")
    headers = json.loads(raw)["headers"]
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == "shop.test:8080"

    def published() -> bool:
        found = networking.read_namespaced_ingress("shop", world).status.load_balancer.ingress
        return bool(found) and found[0].ip == "127.0.0.1"

    wait_for(published, message="status.loadBalancer")


def test_a_service_without_ready_endpoints_answers_503_with_a_body(
    networking: client.NetworkingV1Api, proxy: IngressProxy, world: str
) -> None:
    rules = [
        {
            "host": "empty.test",
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("empty")}]},
        }
    ]
    networking.create_namespaced_ingress(world, ingress(world, "empty", rules=rules))

    def answer() -> tuple[int, bytes] | None:
        status, body = get(proxy.http_port, "empty.test", "/")
        return (status, body) if status != 404 else None

    status, body = wait_for(answer, message="the rule to take effect")
    assert status == 503 and b"no ready endpoints" in body


def test_an_endpoint_whose_connect_hangs_is_skipped_for_the_next(
    core: client.CoreV1Api,
    discovery: client.DiscoveryV1Api,
    networking: client.NetworkingV1Api,
    proxy: IngressProxy,
    world: str,
) -> None:
    """A listener whose accept queue is full drops connection requests: the connect times
    out, and an idempotent request goes on to the next endpoint instead of failing."""
    hole = socket.socket()
    hole.bind(("127.128.230.9", 0))
    hole.listen(0)
    fillers = []
    for _ in range(3):  # fill the accept queue; later connection requests are dropped
        filler = socket.socket()
        filler.settimeout(0.3)
        with contextlib.suppress(OSError):
            filler.connect(hole.getsockname())
        fillers.append(filler)
    good, good_port = serve("127.128.230.10", "good")
    core.create_namespaced_service(
        world, {"metadata": {"name": "mixed"}, "spec": {"ports": [{"name": "web", "port": 80}]}}
    )
    for name, ip, port in (("mixed-hole", "127.128.230.9", hole.getsockname()[1]),
                           ("mixed-good", "127.128.230.10", good_port)):  # fmt: skip
        discovery.create_namespaced_endpoint_slice(
            world,
            {
                "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "mixed"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
                "ports": [{"name": "web", "port": port, "protocol": "TCP"}],
            },
        )
    rules = [
        {
            "host": "mixed.test",
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("mixed")}]},
        }
    ]
    networking.create_namespaced_ingress(world, ingress(world, "mixed", rules=rules))
    try:
        # Round robin: of two requests, one tries the hanging endpoint first.
        assert wait_for(lambda: backend_of(proxy.http_port, "mixed.test", "/")) == "good"
        assert backend_of(proxy.http_port, "mixed.test", "/") == "good"
        assert backend_of(proxy.http_port, "mixed.test", "/") == "good"
    finally:
        for sock in (*fillers, hole):
            sock.close()
        good.shutdown()
        good.server_close()


def test_tls_is_terminated_with_the_certificate_chosen_by_sni(
    tmp_path: Path,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    proxy: IngressProxy,
    world: str,
) -> None:
    cert_pem, key_pem = self_signed_certificate("secure.test")
    core.create_namespaced_secret(
        world,
        {
            "metadata": {"name": "secure-tls"},
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64.b64encode(cert_pem).decode(),
                "tls.key": base64.b64encode(key_pem).decode(),
            },
        },
    )
    rules = [
        {
            "host": "secure.test",
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend("a")}]},
        }
    ]
    networking.create_namespaced_ingress(
        world,
        ingress(
            world,
            "secure",
            rules=rules,
            tls=[{"hosts": ["secure.test"], "secretName": "secure-tls"}],
        ),
    )
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert_pem)
    context = ssl.create_default_context(cafile=str(ca))

    def fetch() -> dict[str, Any] | None:
        with (
            socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="secure.test") as tls,
        ):
            tls.sendall(b"GET / HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return json.loads(body) if head.startswith(b"HTTP/1.1 200") else None

    answer = wait_for(fetch, message="an HTTPS answer")
    assert answer["backend"] == "a"
    assert answer["headers"]["X-Forwarded-Proto"] == "https"


def test_path_and_host_matching_rules() -> None:
    assert path_matches("Prefix", "/foo", "/foo/bar")
    assert path_matches("Prefix", "/foo/", "/foo")
    assert not path_matches("Prefix", "/foo", "/foobar")
    assert path_matches("Exact", "/foo", "/foo") and not path_matches("Exact", "/foo", "/foo/")
    assert host_matches("*.example.com", "a.example.com")
    assert not host_matches("*.example.com", "a.b.example.com")
    longest = [
        {
            "metadata": {"namespace": "n"},
            "spec": {
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {"path": "/", "pathType": "Prefix", "backend": backend("root")},
                                {"path": "/a/b", "pathType": "Prefix", "backend": backend("deep")},
                            ]
                        }
                    }
                ]
            },
        }
    ]
    found = route(longest, "any", "/a/b/c")
    assert found is not None and found.service == "deep"
