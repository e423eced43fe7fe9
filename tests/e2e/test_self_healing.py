"""Self-healing with real processes: a server and two agents, each its own `kubeling`
process. Killing one agent and all its pods' processes moves its Deployment pods to the other
node; its bare pod is not recreated. Killing only an agent and starting it again runs each
pod once. The time to heal is printed (the speed target lives in docs/performance.md)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from process_support import Child, Kubeling, free_port, running

from kubeling.testing.cluster import wait_for

pytestmark = pytest.mark.e2e

SERVER = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer((os.environ['POD_IP'], int(os.environ['PORT'])), H)"
    ".serve_forever()\n"
)


def deployment(replicas: int, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "web",
                            "image": "python",
                            "command": [sys.executable, "-c", SERVER],
                            "env": [{"name": "PORT", "value": str(port)}],
                            "readinessProbe": {
                                "tcpSocket": {"port": port},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def bare_pod(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "command": [sys.executable, "-c", "import time; time.sleep(600)"],
                }
            ],
        },
    }


def apply(server: Kubeling, tmp_path: Path, obj: dict[str, Any]) -> None:
    path = tmp_path / f"{obj['kind']}-{obj['metadata']['name']}.json"
    path.write_text(json.dumps(obj))
    server.kubectl("apply", "-f", str(path))


def pods(server: Kubeling) -> list[dict[str, Any]]:
    return list(json.loads(server.kubectl("get", "pods", "-o", "json"))["items"])


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@contextlib.contextmanager
def agent(server: Kubeling, tmp_path: Path, name: str, lease: int) -> Iterator[Child]:
    child = Child(
        "agent",
        "--server",
        f"https://127.0.0.1:{server.port}",
        "--token-file",
        str(server.data_dir / "node-token"),
        "--name",
        name,
        "--data-dir",
        str(tmp_path / name),
        "--lease-seconds",
        str(lease),
    )
    try:
        child.wait_for_line(f"kubeling agent: node {name} ready")
        yield child
    finally:
        if child.proc.poll() is None:
            child.stop(signal.SIGTERM)  # a stopping agent stops its pods' processes
        child.close()
        kill_pods_of(tmp_path / name)  # and those of an agent a test killed


def kill_pods_of(data_dir: Path) -> int:
    """SIGKILL every pod process group the agent recorded (what a machine crash does)."""
    killed = 0
    for pid_file in data_dir.glob("pods/*/pids/*"):
        with contextlib.suppress(ValueError, ProcessLookupError, OSError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            killed += 1
    return killed


def processes_with_pod_ip(ip: str) -> int:
    """Processes whose environment says POD_IP=<ip> (one per container of that pod)."""
    count = 0
    needle = f"POD_IP={ip}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                count += 1
    return count


def test_a_dead_node_s_deployment_pods_move_to_the_other_node_and_its_bare_pod_stays_gone(
    tmp_path: Path,
) -> None:
    with (
        running("server", tmp_path / "server") as server,
        agent(server, tmp_path, "node-a", lease=4) as node_a,
        agent(server, tmp_path, "node-b", lease=4),
    ):
        apply(server, tmp_path, deployment(4, free_port()))
        apply(server, tmp_path, bare_pod("node-a"))

        def spread_and_ready() -> bool:
            found = [p for p in pods(server) if p["metadata"]["name"] != "bare"]
            nodes = {p["spec"].get("nodeName") for p in found}
            return (
                len(found) == 4 and all(ready(p) for p in found) and nodes == {"node-a", "node-b"}
            )

        wait_for(spread_and_ready, timeout=90, message="4 ready pods on both nodes")
        node_a.proc.kill()
        node_a.proc.wait(timeout=10)
        assert kill_pods_of(tmp_path / "node-a") >= 2
        killed_at = time.monotonic()

        def healed() -> bool:
            serving = [
                p
                for p in pods(server)
                if p["metadata"]["name"].startswith("web-")
                and not p["metadata"].get("deletionTimestamp")
                and ready(p)
            ]
            return len(serving) == 4 and all(p["spec"]["nodeName"] == "node-b" for p in serving)

        wait_for(healed, timeout=90, message="4 ready pods on node-b")
        print(f"healed {time.monotonic() - killed_at:.1f} s after the node died")
        bare = [p for p in pods(server) if p["metadata"]["name"] == "bare"]
        # Evicted from the dead node (it stays Terminating until the node comes back), and
        # nobody makes a new one.
        assert len(bare) <= 1
        assert all(p["metadata"].get("deletionTimestamp") for p in bare)
        node = json.loads(server.kubectl("get", "node", "node-a", "-o", "json"))
        taints = {t["key"] for t in node["spec"].get("taints") or []}
        assert "node.kubernetes.io/unreachable" in taints


def test_restarting_only_the_agent_runs_each_pod_once(tmp_path: Path) -> None:
    with running("server", tmp_path / "server") as server:
        # A lease long enough that the restart is not mistaken for a dead node.
        with agent(server, tmp_path, "node-a", lease=60) as first:
            apply(server, tmp_path, deployment(2, free_port()))

            def two_ready() -> list[dict[str, Any]] | None:
                found = pods(server)
                return found if len(found) == 2 and all(ready(p) for p in found) else None

            before = wait_for(two_ready, timeout=90, message="2 ready pods")
            first.proc.kill()  # the agent only: its pods' processes live on
            first.proc.wait(timeout=10)
            for pod in before:
                assert processes_with_pod_ip(pod["status"]["podIP"]) == 1
        with agent(server, tmp_path, "node-a", lease=60):

            def same_pods_ready_again() -> list[dict[str, Any]] | None:
                found = two_ready()
                if found is None:
                    return None
                names = sorted(p["metadata"]["name"] for p in found)
                restarted = all(
                    p["status"]["containerStatuses"][0]["restartCount"] >= 1 for p in found
                )
                return (
                    found
                    if restarted and names == sorted(p["metadata"]["name"] for p in before)
                    else None
                )

            after = wait_for(same_pods_ready_again, timeout=90, message="the same 2 pods ready")
            for pod in after:
                assert processes_with_pod_ip(pod["status"]["podIP"]) == 1
