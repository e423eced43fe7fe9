"""`kubeling up` runs the Ingress proxy: an Ingress applied with `-f` routes a host to a
Deployment's pods through their Service."""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path

import pytest
from process_support import Kubeling, free_port

from kubeling.testing.cluster import wait_for

pytestmark = pytest.mark.e2e

SERVER = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers()\n"
    "        self.wfile.write(('hello from ' + os.environ['HOSTNAME']).encode())\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()\n"
)


def manifests() -> list[dict]:
    labels = {"app": "shop"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "python",
                                "command": [sys.executable, "-c", SERVER],
                                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {
                "rules": [
                    {
                        "host": "shop.test",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": "shop", "port": {"number": 80}}
                                    },
                                }
                            ]
                        },
                    }
                ]
            },
        },
    ]


def test_up_serves_an_ingress_on_its_ingress_ports(tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"  # JSON documents are YAML documents
    manifest.write_text("\n---\n".join(json.dumps(m) for m in manifests()))
    http_port, https_port = free_port(), free_port()
    server = Kubeling(
        "up",
        tmp_path / "data",
        free_port(),
        "--ingress-ports",
        f"{http_port},{https_port}",
        "-f",
        str(manifest),
    )
    try:
        line = server.wait_for_line("ingress at ", timeout=60)
        assert line == (
            f"ingress at http://127.0.0.1:{http_port}/ and https://127.0.0.1:{https_port}/"
        )

        def answer() -> str | None:
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            try:
                conn.request("GET", "/", headers={"Host": "shop.test"})
                response = conn.getresponse()
                body = response.read().decode()
                return body if response.status == 200 else None
            finally:
                conn.close()

        assert wait_for(answer, timeout=60, message="the pod through the Ingress").startswith(
            "hello from shop-"
        )
    finally:
        server.close()
