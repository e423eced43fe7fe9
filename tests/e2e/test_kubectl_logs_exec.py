"""`kubectl logs` and `kubectl exec` through the API server to a node's agent endpoint.

The node here is assembled by the test: a Node object advertising an `AgentServer` started on
the cluster's loop, over real processes started by the process runtime and registered as a pod
worker would register them (`ContainerRecord`s behind `RecordHandle`s); the Pod is bound to the
node and its status written as the agent would write it. So everything between kubectl and the
processes is the real code: routing, container defaulting, status checks, the node proxy, the
agent endpoint, the log reader and the websocket channel protocol.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubectl_support import Kubectl

from kubeling.agent.podworker import ContainerRecord
from kubeling.agent.runtime import ContainerSpec, ProcessContainer, ProcessRuntime
from kubeling.agent.server import AgentServer, ContainerHandle
from kubeling.agent.serving import RecordHandle, self_signed_context
from kubeling.apiserver.server import ServerConfig
from kubeling.cluster import Cluster
from kubeling.testing.cluster import TestCluster, pinned_kubectl, wait_for

pytestmark = pytest.mark.e2e

ENV = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": "/tmp"}
WAIT_FOR_GO = 'while [ ! -e "$GO" ]; do sleep 0.02; done'
"""Shell that blocks until the test creates the file $GO (the container polls, not the test)."""


class LocalNode:
    """A Node object plus the agent endpoint it advertises, over processes of this machine."""

    def __init__(self, cluster: TestCluster, directory: Path) -> None:
        self.cluster = cluster
        self.dir = directory
        self.name = f"local-{uuid.uuid4().hex[:6]}"
        self.runtime = ProcessRuntime()
        self.handles: dict[tuple[str, str, str], ContainerHandle] = {}
        self.started: list[ProcessContainer] = []
        credential = (cluster.data_dir / "node-token").read_text().strip().partition("::")[2]
        self.endpoint = AgentServer(
            lambda ns, pod, c: self.handles.get((ns, pod, c)),
            token=credential,
            ssl_context=self_signed_context(directory / "tls"),
            poll_interval=0.02,
        )

    def start(self) -> None:
        self.cluster.run(self.endpoint.start())
        self.cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(_node(self.name)))
        status = {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.endpoint.port}},
        }
        self.cluster.kubectl(*_status_patch("node", self.name, status))

    def stop(self) -> None:
        for container in self.started:
            self.cluster.run(container.stop(0))
        self.cluster.run(self.endpoint.stop())

    def container(self, ns: str, pod: str, name: str, script: str, attempt: int = 0) -> Any:
        """Start one instance of a container running `sh -c script`; its $GO file lets it go."""
        spec = ContainerSpec(
            pod_uid=f"{ns}-{pod}",
            namespace=ns,
            pod_name=pod,
            name=name,
            argv=["sh", "-c", script],
            env={**ENV, "GO": str(self.dir / f"{ns}-{pod}-{name}.go")},
            working_dir=str(self.dir),
            log_path=self.dir / ns / pod / name / f"{attempt}.log",
        )
        instance = self.cluster.run(self.runtime.start(spec))
        self.started.append(instance)
        return instance

    def go(self, ns: str, pod: str, name: str) -> None:
        (self.dir / f"{ns}-{pod}-{name}.go").touch()

    def run_pod(
        self, kubectl: Kubectl, pod: str, scripts: dict[str, str], restarted: str = ""
    ) -> None:
        """Run a pod of `sh -c` containers on this node, as its agent would. The container
        named `restarted` first runs to completion once (printing `first run`)."""
        ns = kubectl.ns
        statuses = []
        for name, script in scripts.items():
            record = ContainerRecord(spec={"name": name})
            status: dict[str, Any] = {"lastState": {}}
            if name == restarted:
                first = self.container(ns, pod, name, "echo first run; exit 1")
                record.instance = first
                record.last_state = self.cluster.run(first.wait())
                record.restart_count = 1
                status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
            record.instance = self.container(ns, pod, name, script, record.restart_count)
            self.handles[(ns, pod, name)] = RecordHandle(record)
            statuses.append(
                {
                    "name": name,
                    "image": "busybox",
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": record.restart_count,
                    "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
                    **status,
                }
            )
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod},
            "spec": {
                "nodeName": self.name,
                "containers": [{"name": n, "image": "busybox"} for n in scripts],
            },
        }
        kubectl("create", "-f", "-", input=yaml.safe_dump(manifest))
        kubectl(*_status_patch("pod", pod, {"phase": "Running", "containerStatuses": statuses}))


def _node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def _status_patch(kind: str, name: str, status: dict[str, Any]) -> list[str]:
    patch = json.dumps({"status": status})
    return ["patch", kind, name, "--subresource=status", "--type=merge", "-p", patch]


@pytest.fixture(scope="module")
def node(cluster: TestCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNode]:
    local = LocalNode(cluster, tmp_path_factory.mktemp("node"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


# --- logs ----------------------------------------------------------------------------------


def test_logs_of_a_single_container_pod(kubectl: Kubectl, node: LocalNode) -> None:
    node.run_pod(kubectl, "web", {"main": f"echo hello; echo to stderr >&2; {WAIT_FOR_GO}"})
    node.cluster.run(_eventually_logged(node, kubectl.ns, "web", "main", b"to stderr"))
    assert kubectl("logs", "web").stdout == "hello\nto stderr\n"
    assert kubectl("logs", "pod/web", "--tail=1").stdout == "to stderr\n"
    stamped = kubectl("logs", "web", "--timestamps").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["hello", "to stderr"]
    assert stamped[0].split(" ", 1)[0].endswith("Z")


def test_logs_follow_ends_when_the_container_exits(kubectl: Kubectl, node: LocalNode) -> None:
    node.run_pod(kubectl, "follow", {"main": f"echo started; {WAIT_FOR_GO}; echo finished"})
    follower = kubectl.watch("logs", "-f", "follow")
    follower.wait_for_line(lambda line: line == "started")
    node.go(kubectl.ns, "follow", "main")
    follower.wait_for_line(lambda line: line == "finished")
    assert follower.proc.wait(timeout=30) == 0


def test_logs_of_a_multi_container_pod_need_a_container(kubectl: Kubectl, node: LocalNode) -> None:
    node.run_pod(kubectl, "two", {"a": f"echo from a; {WAIT_FOR_GO}", "b": "echo from b"})
    node.cluster.run(_eventually_logged(node, kubectl.ns, "two", "b", b"from b"))
    assert kubectl("logs", "two", "-c", "b").stdout == "from b\n"
    # kubectl picks the first container itself (and says so); the API asks for one.
    result = kubectl("logs", "two", check=False)
    assert "from a" in result.stdout or "choose one of" in result.stderr
    direct = kubectl("get", "--raw", f"/api/v1/namespaces/{kubectl.ns}/pods/two/log", check=False)
    assert "a container name must be specified for pod two, choose one of: [a b]" in direct.stderr


def test_logs_previous_shows_the_instance_before(kubectl: Kubectl, node: LocalNode) -> None:
    node.run_pod(kubectl, "crashy", {"main": f"echo second run; {WAIT_FOR_GO}"}, restarted="main")
    node.cluster.run(_eventually_logged(node, kubectl.ns, "crashy", "main", b"second run"))
    assert kubectl("logs", "crashy", "--previous").stdout == "first run\n"
    assert kubectl("logs", "crashy").stdout == "second run\n"
    result = kubectl("logs", "web-missing", check=False)
    assert result.returncode != 0 and 'pods "web-missing" not found' in result.stderr


def create_waiting_pod(kubectl: Kubectl, name: str) -> None:
    """A pod with one container `c` that never starts (no node runs it)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    kubectl("create", "-f", "-", input=yaml.safe_dump(pod))


def test_logs_of_a_container_not_started_yet(kubectl: Kubectl, node: LocalNode) -> None:
    create_waiting_pod(kubectl, "pending")
    result = kubectl("logs", "pending", check=False)
    assert result.returncode == 1
    assert 'container "c" in pod "pending" is waiting to start: ContainerCreating' in result.stderr
    result = kubectl("logs", "pending", "--previous", check=False)
    assert 'previous terminated container "c" in pod "pending" not found' in result.stderr


# --- exec ----------------------------------------------------------------------------------


def test_exec_runs_a_command_in_the_container(kubectl: Kubectl, node: LocalNode) -> None:
    node.run_pod(kubectl, "box", {"main": WAIT_FOR_GO})
    result = kubectl("exec", "box", "--", "echo", "hi")
    assert (result.returncode, result.stdout) == (0, "hi\n")
    result = kubectl("exec", "box", "--", "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert result.returncode == 3
    assert "oops" in result.stderr
    result = kubectl("exec", "box", "--", "sh", "-c", "pwd; echo $GO", check=False)
    assert result.stdout.splitlines()[0] == str(node.dir)


def test_exec_with_stdin(kubectl: Kubectl, node: LocalNode) -> None:
    node.run_pod(kubectl, "cat", {"main": WAIT_FOR_GO})
    result = kubectl("exec", "-i", "cat", "--", "sh", "-c", "tr a-z A-Z", input="hello\nworld\n")
    assert result.stdout == "HELLO\nWORLD\n"


def test_exec_of_a_missing_program(kubectl: Kubectl, node: LocalNode) -> None:
    node.run_pod(kubectl, "nope", {"main": WAIT_FOR_GO})
    result = kubectl("exec", "nope", "--", "no-such-program", check=False)
    assert result.returncode == 127
    assert "executable file not found" in result.stderr


def test_exec_into_a_container_that_is_not_running(kubectl: Kubectl, node: LocalNode) -> None:
    create_waiting_pod(kubectl, "idle")
    result = kubectl("exec", "idle", "--", "true", check=False)
    assert result.returncode != 0
    assert 'container not found ("c")' in result.stderr


def test_exec_it_gives_the_command_a_terminal(kubectl: Kubectl, node: LocalNode) -> None:
    node.run_pod(kubectl, "term", {"main": WAIT_FOR_GO})
    env = {
        **os.environ,
        "KUBECONFIG": str(node.cluster.kubeconfig),
        "HOME": str(node.cluster.home),
    }
    env.pop("KUBE_FEATURE_WatchListClient", None)
    argv = [kubectl.binary, "--cache-dir", str(node.cluster.home / "cache"), "-n", kubectl.ns]
    argv += ["exec", "-it", "term", "--", "sh", "-c", "tty; read line; echo got $line; exit 4"]
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes kubectl
        os.execve(argv[0], argv, env)
    try:
        output = _read_until(fd, b"/dev/pts/")
        os.write(fd, b"typed\r")
        output += _read_until(fd, b"got typed")
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 4
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def _read_until(fd: int, wanted: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {wanted!r} within {timeout}s; saw {seen!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"kubectl ended before {wanted!r}; saw {seen!r}")
            seen += chunk
    return seen


async def _eventually_logged(node: LocalNode, ns: str, pod: str, name: str, text: bytes) -> None:
    """Wait until the runtime has written `text` to the container's current log."""
    from kubeling.testing import eventually

    handle = node.handles[(ns, pod, name)]

    def logged() -> bool:
        path = handle.log_path(False)
        return path is not None and path.exists() and text in path.read_bytes()

    await eventually(logged, timeout=30, message=f"{text!r} in the log of {pod}/{name}")


# --- a real node -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """`Cluster(nodes=1)` on a loop thread: the NodeAgent serves its own endpoint."""
    data_dir = tmp_path_factory.mktemp("real")
    running = Cluster(ServerConfig(data_dir=data_dir, port=0), nodes=1)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="real-cluster")
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(running.start(), loop).result(timeout=60)
        yield running, data_dir
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
        loop.close()


def test_logs_and_exec_on_a_real_node(real_cluster: tuple[Cluster, Path], tmp_path: Path) -> None:
    _, data_dir = real_cluster
    env = {**os.environ, "KUBECONFIG": str(data_dir / "kubeconfig.yaml"), "HOME": str(tmp_path)}
    env.pop("KUBE_FEATURE_WatchListClient", None)

    def kubectl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [pinned_kubectl(), *args],
            capture_output=True,
            text=True,
            env=env,
            input=input,
            timeout=60,
        )

    port = kubectl(
        "get", "nodes", "-o", "jsonpath={.items[0].status.daemonEndpoints.kubeletEndpoint.Port}"
    )
    if port.stdout.strip() in ("", "0", "10250"):
        pytest.skip("the NodeAgent does not serve its endpoint yet (see kubeling/agent/server.py)")
    pid_file = tmp_path / "pid"
    script = f"echo started; echo $$$$ > {pid_file}; exec sleep 600"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "real"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}]
        },
    }
    assert kubectl("apply", "-f", "-", input=json.dumps(pod)).returncode == 0
    assert kubectl("wait", "--for=condition=Ready", "pod/real", "--timeout=60s").returncode == 0
    logs = wait_for(lambda: kubectl("logs", "real").stdout, message="the container's log")
    assert logs == "started\n"
    result = kubectl("exec", "real", "--", "sh", "-c", "echo hi; exit 3")
    assert (result.returncode, result.stdout) == (3, "hi\n")
    assert kubectl("exec", "-i", "real", "--", "cat", input="piped\n").stdout == "piped\n"
    # Kill the container: the agent restarts it, and --previous shows the first instance.
    kubectl("exec", "real", "--", "sh", "-c", f"kill -9 $(cat {pid_file})")
    wait_for(
        lambda: (
            kubectl(
                "get", "pod", "real", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"
            ).stdout
            == "1"
            and kubectl("logs", "real").stdout == "started\n"
        ),
        message="the restarted container's log",
    )
    assert kubectl("logs", "real", "--previous").stdout == "started\n"
