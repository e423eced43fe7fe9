"""Zero-error termination, end to end: a deleted pod gets SIGTERM only after every proxy (the
node's service proxy and the Ingress proxy) has applied the EndpointSlice change that took it
out, and steady traffic through the Service and the Ingress sees no error while pods go.

The pods are a small HTTP server that, on SIGTERM, notes the time, stops accepting and exits
half a second later: a common shutdown that fails requests when proxies still route to it."""

from __future__ import annotations

import datetime
import http.client
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from kubeling.network.drain import APPLIED_ANNOTATION, REPORT_LABEL
from kubeling.testing import TestCluster, wait_for
from kubeling.util.timefmt import parse_time

pytestmark = pytest.mark.e2e
PACE = 0.002  # seconds between one load thread's requests

SERVER = (
    "import http.server, os, pathlib, signal, threading, time\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    disable_nagle_algorithm = True\n"
    "    def reply(self):\n"
    "        n = int(self.headers.get('Content-Length') or 0)\n"
    "        if n: self.rfile.read(n)\n"
    "        body = os.environ['HOSTNAME'].encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "    do_GET = do_POST = reply\n"
    "    def log_message(self, *a): pass\n"
    "srv = http.server.ThreadingHTTPServer((os.environ['POD_IP'], 8080), H)\n"
    "srv.daemon_threads = True\n"
    "def stop():\n"
    "    srv.shutdown(); srv.server_close(); time.sleep(0.5); os._exit(0)\n"
    "def term(*_):\n"
    "    pathlib.Path(os.environ['MARKS'], os.environ['HOSTNAME']).write_text(repr(time.time()))\n"
    "    threading.Thread(target=stop).start()\n"
    "signal.signal(signal.SIGTERM, term)\n"
    "srv.serve_forever()\n"
)


def web_container(marks: Path) -> dict[str, Any]:
    """SERVER, ready once it answers, noting its SIGTERM in `marks`."""
    return {
        "name": "web",
        "image": "python",
        "command": [sys.executable, "-c", SERVER],
        "env": [{"name": "MARKS", "value": str(marks)}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(nodes=1, ingress=True) as c:
        yield c


@pytest.fixture(scope="module")
def api(cluster: TestCluster) -> client.ApiClient:
    return cluster.api_client()


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sigterm-marks")


@pytest.fixture(scope="module")
def app(cluster: TestCluster, api: client.ApiClient, marks: Path) -> str:
    """Deployment, Service and Ingress `drain`; returns the Service's ClusterIP."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "drain"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "drain"}},
            "template": {
                "metadata": {"labels": {"app": "drain"}},
                "spec": {"containers": [web_container(marks)]},
            },
        },
    }
    client.AppsV1Api(api).create_namespaced_deployment("default", deployment)
    service = {
        "metadata": {"name": "drain"},
        "spec": {
            "selector": {"app": "drain"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    created = client.CoreV1Api(api).create_namespaced_service("default", service)
    ingress = {
        "metadata": {"name": "drain"},
        "spec": {
            "defaultBackend": {"service": {"name": "drain", "port": {"number": 80}}},
        },
    }
    client.NetworkingV1Api(api).create_namespaced_ingress("default", ingress)
    wait_for(lambda: len(ready_pods(api)) == 3, timeout=60, message="3 ready pods")
    cluster_ip = str(created.spec.cluster_ip)
    wait_for(lambda: get(cluster_ip, 80) == 200, timeout=30, message="the ClusterIP answers")
    port = int(cluster.ingress_url.rsplit(":", 1)[1])
    wait_for(lambda: get("127.0.0.1", port) == 200, timeout=30, message="the Ingress answers")
    return cluster_ip


def get(host: str, port: int) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def ready_pods(api: client.ApiClient) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=drain")
    return [
        p.metadata.name
        for p in pods.items
        if not p.metadata.deletion_timestamp
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def replay(list_call: Any, namespace: str, since: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every object version written after `since`, as the watch replays it."""
    stream = watch.Watch().stream(
        list_call,
        namespace,
        resource_version=since,
        timeout_seconds=2,
        _preload_content=False,
        **kwargs,
    )
    return [event["raw_object"] for event in stream]


def test_sigterm_comes_after_every_proxy_stopped_routing(
    cluster: TestCluster, api: client.ApiClient, app: str, marks: Path
) -> None:
    core = client.CoreV1Api(api)
    discovery = client.DiscoveryV1Api(api)
    leases = client.CoordinationV1Api(api)
    reports = leases.list_namespaced_lease("kube-system", label_selector=REPORT_LABEL)
    names = {lease.metadata.labels[REPORT_LABEL] for lease in reports.items}
    assert names == {"node-0", "ingress"}
    slices_since = discovery.list_namespaced_endpoint_slice("default").metadata.resource_version
    victim = ready_pods(api)[0]

    core.delete_namespaced_pod(victim, "default")
    mark = marks / victim
    wait_for(mark.exists, timeout=30, message=f"{victim} got SIGTERM")
    sigterm_at = float(mark.read_text())

    out_at = None
    for obj in replay(discovery.list_namespaced_endpoint_slice, "default", slices_since):
        for endpoint in obj.get("endpoints") or []:
            if (endpoint.get("targetRef") or {}).get("name") == victim and (
                endpoint.get("conditions") or {}
            ).get("terminating"):
                out_at = out_at or int(obj["metadata"]["resourceVersion"])
    assert out_at is not None, "the EndpointSlice never listed the pod as terminating"

    applied_at: dict[str, float] = {}
    for obj in replay(
        leases.list_namespaced_lease,
        "kube-system",
        reports.metadata.resource_version,
        label_selector=REPORT_LABEL,
    ):
        name = obj["metadata"]["labels"][REPORT_LABEL]
        applied = int((obj["metadata"].get("annotations") or {}).get(APPLIED_ANNOTATION, 0))
        if applied >= out_at and name not in applied_at:
            applied_at[name] = parse_time(obj["spec"]["renewTime"]).timestamp()
    assert set(applied_at) == names, f"proxies that never applied revision {out_at}"
    for name, at in applied_at.items():
        assert at <= sigterm_at, f"{name} applied the change {at - sigterm_at:.3f}s after SIGTERM"
    events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={victim}")
    assert "ProxiesLagging" not in {e.reason for e in events.items}


def test_traffic_through_service_and_ingress_sees_no_error_while_pods_go(
    cluster: TestCluster, api: client.ApiClient, app: str
) -> None:
    ingress_port = int(cluster.ingress_url.rsplit(":", 1)[1])
    stop = threading.Event()
    results: list[tuple[str, str]] = []  # (path, failure) per failed request
    counts = {"service": 0, "ingress": 0}

    # The cluster runs in this process (thread mode): the load is paced so that it leaves the
    # cluster its share of the interpreter.
    def through_service() -> None:
        while not stop.wait(PACE):
            status = get(app, 80)  # a new connection per request
            counts["service"] += 1
            if status != 200:
                results.append(("service", str(status)))

    def through_ingress() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", ingress_port, timeout=10)
        while not stop.wait(PACE):
            try:  # POST is never retried by the proxy: an error here reaches the user
                connection.request("POST", "/", body=b"x" * 64)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    results.append(("ingress", f"{response.status}"))
            except (OSError, http.client.HTTPException) as err:
                results.append(("ingress", repr(err)))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", ingress_port, timeout=10)
            counts["ingress"] += 1
        connection.close()

    workers = [threading.Thread(target=f) for f in (through_service, through_ingress)]
    for worker in workers:
        worker.start()
    try:
        core = client.CoreV1Api(api)
        for _ in range(2):
            before = set(ready_pods(api))
            core.delete_namespaced_pod(sorted(before)[0], "default")
            wait_for(
                lambda b=before: len(set(ready_pods(api)) - b) == 1 and len(ready_pods(api)) == 3,
                timeout=60,
                message="a replacement pod is ready",
            )
        client.AppsV1Api(api).patch_namespaced_deployment_scale(
            "drain", "default", {"spec": {"replicas": 1}}
        )
        wait_for(
            lambda: len(core.list_namespaced_pod("default", label_selector="app=drain").items) == 1,
            timeout=60,
            message="scaled down to 1, the others gone",
        )
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert counts["service"] > 100 and counts["ingress"] > 100, counts
    assert results == [], f"{len(results)} failed requests, first: {results[:5]}"


def test_a_proxy_that_never_catches_up_holds_sigterm_half_the_grace_period(
    cluster: TestCluster, api: client.ApiClient, app: str, marks: Path
) -> None:
    """A live report stuck at an old revision: the pod waits half its grace period, then
    stops anyway, with a Warning event naming the proxy."""
    leases = client.CoordinationV1Api(api)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stuck = {
        "metadata": {
            "name": "kubeling-proxy-stuck",
            "labels": {REPORT_LABEL: "stuck"},
            "annotations": {APPLIED_ANNOTATION: "1"},
        },
        "spec": {"holderIdentity": "stuck", "leaseDurationSeconds": 300, "renewTime": now},
    }
    leases.create_namespaced_lease("kube-system", stuck)
    core = client.CoreV1Api(api)
    pod = {
        "metadata": {"name": "patient", "labels": {"app": "drain"}},
        "spec": {
            "terminationGracePeriodSeconds": 4,
            "containers": [web_container(marks)],
        },
    }
    try:
        core.create_namespaced_pod("default", pod)
        wait_for(lambda: "patient" in ready_pods(api), timeout=60, message="the pod is ready")
        core.delete_namespaced_pod("patient", "default")
        wait_for((marks / "patient").exists, timeout=30, message="SIGTERM after the wait")

        def lagging() -> list[str]:
            events = core.list_namespaced_event(
                "default", field_selector="involvedObject.name=patient"
            )
            return [e.message for e in events.items if e.reason == "ProxiesLagging"]

        assert wait_for(lagging, message="the ProxiesLagging event") == [
            "Stopping after 2s although these proxies may still route here: kubeling-proxy-stuck"
        ]
    finally:
        leases.delete_namespaced_lease("kubeling-proxy-stuck", "kube-system")
