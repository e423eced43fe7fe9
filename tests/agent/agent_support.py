"""A real cluster with real node agents, for the end-to-end tests of the node agent.

`TestCluster` runs no node agents yet, so `AgentCluster` copies its thread mode: a
`kubeling.cluster.Cluster(..., nodes=N)` on an event loop in a background thread, driven from
the test's thread with the official `kubernetes` client and the pinned kubectl, as users drive
a cluster. Pods are small Python programs run with `sys.executable` (the machine's `python3`
may be a slow shim); they bind to `$POD_IP`.

Everything here polls with deadlines (`wait_for`): nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from kubernetes import client, config

from kubeling.agent.agent import NodeAgent
from kubeling.apiserver.server import ServerConfig
from kubeling.cluster import Cluster
from kubeling.testing.cluster import pinned_kubectl, wait_for

PY = sys.executable

# The port the test web server listens on. Another kubeling cluster on this machine (a
# concurrent test run) hands out the same pod IPs from the same node CIDR; a port of our own
# keeps its pods and ours apart.
PORT = random.randint(20000, 29999)

# A web server on $POD_IP:$PORT. `/healthz` answers 200 until it has answered $SICK_AFTER
# times (if set) in this process, `/ready` answers 200 unless the file $UNREADY exists, and
# nothing answers before $DELAY seconds have passed since start. SIGTERM writes "drained" to
# $DRAIN (if set) and exits 0.
WEB = textwrap.dedent(
    """
    import http.server, os, signal, sys, time
    ip, port = os.environ["POD_IP"], int(os.environ["PORT"])
    time.sleep(float(os.environ.get("DELAY", "0")))

    def drain(*_):
        if os.environ.get("DRAIN"):
            with open(os.environ["DRAIN"], "a") as f:
                f.write("drained")
        os._exit(0)

    signal.signal(signal.SIGTERM, drain)

    checks = [0]

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code, body = 200, b"hello from " + ip.encode()
            if self.path == "/healthz":
                checks[0] += 1
                if checks[0] > int(os.environ.get("SICK_AFTER", "1000000")):
                    code, body = 500, b"sick"
            if self.path == "/ready" and os.path.exists(os.environ.get("UNREADY", "/-")):
                code, body = 503, b"unready"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer((ip, port), H).serve_forever()
    """
)


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed, as `kubeling up` and `kubeling agent` run on it (it
    is stricter than asyncio's in places: `subprocess_exec` wants a plain dict as env)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class AgentCluster:
    """A control plane and `nodes` real node agents on a background loop (see the module
    docstring); `stop()` stops every pod's processes with the agents."""

    def __init__(self, nodes: int = 1) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="kubeling-agent-test-"))
        self.home = Path(tempfile.mkdtemp(prefix="kubeling-home-"))
        self.cluster = Cluster(ServerConfig(data_dir=self.data_dir, port=0), nodes=nodes)
        self.loop = new_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, daemon=True, name="kubeling-agent-test"
        )
        self.kubectl_path = pinned_kubectl()
        self._api: client.ApiClient | None = None

    def start(self) -> AgentCluster:
        self.thread.start()
        self.run(self.cluster.start(), timeout=60)
        return self

    def stop(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
            gc.collect()  # see tests/conftest.py: leftover TLS connections must close first
        if self.thread.is_alive():
            self.run(self.cluster.stop(), timeout=60)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=15)
        self.loop.close()
        # A safety net for a test that failed between abandoning an agent and starting the
        # next: only processes started for this cluster's pods have its data dir in their env.
        for pid in processes_with(str(self.data_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    @property
    def agents(self) -> list[NodeAgent]:
        return self.cluster.agents

    # -- clients ------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def api(self) -> client.ApiClient:
        if self._api is None:
            configuration = client.Configuration()
            config.load_kube_config(
                config_file=str(self.kubeconfig), client_configuration=configuration
            )
            self._api = client.ApiClient(configuration)
        return self._api

    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home)}
        cmd = [self.kubectl_path, "--cache-dir", str(self.home / "cache"), *args]
        result = subprocess.run(
            cmd, capture_output=True, text=True, input=input, env=env, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def namespace(self) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        self.core().create_namespace({"metadata": {"name": name}})
        return name

    # -- pods ---------------------------------------------------------------------------------

    def create_pod(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        spec.setdefault("terminationGracePeriodSeconds", 1)
        self.core().create_namespaced_pod(ns, {"metadata": {"name": name}, "spec": spec})

    def pod(self, ns: str, name: str) -> dict[str, Any]:
        """The pod as JSON (camelCase, as kubectl shows it)."""
        response = self.core().read_namespaced_pod(name, ns, _preload_content=False)
        return dict(json.loads(response.data))

    def wait_pod(
        self,
        ns: str,
        name: str,
        check: Callable[[dict[str, Any]], Any],
        timeout: float = 30,
        message: str = "",
    ) -> dict[str, Any]:
        """Poll the pod until `check(pod)` is truthy; returns the pod."""
        seen: list[dict[str, Any]] = []

        def ok() -> bool:
            pod = self.pod(ns, name)
            seen[:] = [pod]
            return bool(check(pod))

        try:
            wait_for(ok, timeout=timeout, interval=0.1, message=message or f"pod {ns}/{name}")
        except TimeoutError as err:
            status = seen[0].get("status") if seen else None
            raise AssertionError(f"{err}; last status: {status}") from None
        return seen[0]

    def pod_gone(self, ns: str, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core().read_namespaced_pod(name, ns)
        except ApiException as err:
            return err.status == 404
        return False

    def events(self, ns: str, name: str) -> list[tuple[str, str]]:
        """(reason, message) of the pod's events."""
        items = self.core().list_namespaced_event(ns).items
        return [
            (e.reason, e.message or "")
            for e in items
            if e.involved_object.kind == "Pod" and e.involved_object.name == name
        ]


def container(pod: dict[str, Any], name: str = "main") -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status["name"] == name:
            return dict(status)
    return {}


def condition(pod: dict[str, Any], kind: str) -> str:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return ""


def ready(pod: dict[str, Any]) -> bool:
    return condition(pod, "Ready") == "True"


def phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def waiting_reason(pod: dict[str, Any], name: str = "main") -> str:
    return str((container(pod, name).get("state") or {}).get("waiting", {}).get("reason") or "")


def pid_of(pod: dict[str, Any], name: str = "main") -> int:
    """The main process of a container, from its id `kubeling://<pid>-<random>`."""
    cid = str(container(pod, name).get("containerID") or "")
    if not cid.startswith("kubeling://"):
        raise ValueError(f"no kubeling container id in {cid!r}")
    return int(cid.removeprefix("kubeling://").split("-")[0])


def http_get(url: str, timeout: float = 2) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def script(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def probe(path: str, port: int = PORT, **extra: Any) -> dict[str, Any]:
    """An httpGet probe with short periods, for a noisy two-core machine."""
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": 1,
        "timeoutSeconds": 2,
        **extra,
    }


def env(**values: str) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds `marker` (a pod uid, say), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker.encode() in environ and ") Z " not in stat:
            found.append(int(entry.name))
    return found
