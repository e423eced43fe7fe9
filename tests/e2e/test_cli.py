"""The `kubeling` command line as users run it: real child processes (`python -m kubeling`)
on temporary data dirs and free ports, driven with the pinned kubectl and stopped by signals."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_support import START_TIMEOUT, Child, Kubeling, free_port, running

from kubeling import __version__
from kubeling.testing.cluster import TestCluster, wait_for

pytestmark = pytest.mark.e2e

SYSTEM_NAMESPACES = ["default", "kube-node-lease", "kube-public", "kube-system"]
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def _namespaces(server: Kubeling, kubeconfig: Path | None = None) -> list[str]:
    out = server.kubectl("get", "namespaces", "-o", "name", kubeconfig=kubeconfig)
    return sorted(line.removeprefix("namespace/") for line in out.split())


def _fails_to_start(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "kubeling", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, result
    assert "ready at" not in result.stdout, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result


# -- version ---------------------------------------------------------------------------------


def test_version_prints_kubeling_and_kubernetes_api_versions() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubeling", "version"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(__version__ in line and "Kubernetes API v1.32" in line for line in lines), lines


# -- up / server, signals --------------------------------------------------------------------


def test_up_prints_the_kubeconfig_export_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = Kubeling("up", data_dir, free_port())
    try:
        export = server.wait_for_line("export KUBECONFIG=")
        assert export == f"export KUBECONFIG={data_dir}/kubeconfig.yaml"
        assert server.lines[0].startswith("kubeling API server ready at https://127.0.0.1:")
        join = server.wait_for_line("join a node: ")
        assert join == (
            f"join a node: kubeling agent --server https://127.0.0.1:{server.port}"
            f" --token-file {data_dir}/node-token"
        )

        assert _namespaces(server) == SYSTEM_NAMESPACES

        assert server.stop(signal.SIGINT) == 0, server.stderr()
        assert "Traceback" not in server.stderr()
    finally:
        server.close()


def test_server_stops_cleanly_on_sigterm_even_with_an_open_watch(tmp_path: Path) -> None:
    with running("server", tmp_path / "data") as server:
        assert _namespaces(server) == SYSTEM_NAMESPACES
        watch = server.connect()
        try:
            watch.request(
                "GET",
                "/api/v1/namespaces?watch=true&fieldSelector=metadata.name%3Ddefault",
                headers={"Authorization": f"Bearer {server.token}"},
            )
            response = watch.getresponse()
            assert response.status == 200
            assert json.loads(response.readline())["type"] == "ADDED"

            assert server.stop(signal.SIGTERM) == 0, server.stderr()
        finally:
            watch.close()
        assert "Traceback" not in server.stderr()


def test_restart_on_the_same_data_dir_keeps_objects_and_credentials(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    with running("server", data_dir, port) as server:
        server.kubectl("create", "configmap", "kept", "--from-literal=k=v")
        token = (data_dir / "admin-token").read_text()
        ca = (data_dir / "tls" / "ca.crt").read_bytes()
        old_kubeconfig = tmp_path / "kubeconfig-before-restart.yaml"
        old_kubeconfig.write_bytes(server.kubeconfig.read_bytes())
        assert server.stop(signal.SIGTERM) == 0, server.stderr()

    with running("server", data_dir, port) as server:
        assert (data_dir / "admin-token").read_text() == token
        assert (data_dir / "tls" / "ca.crt").read_bytes() == ca
        # The kubeconfig handed out before the restart still works (same CA, same token).
        kept = json.loads(
            server.kubectl("get", "configmap", "kept", "-o", "json", kubeconfig=old_kubeconfig)
        )
        assert kept["data"] == {"k": "v"}
        assert _namespaces(server, old_kubeconfig) == SYSTEM_NAMESPACES


# -- start-up errors -------------------------------------------------------------------------


def test_server_on_a_port_in_use_exits_with_one_readable_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        result = _fails_to_start(
            "server", "--data-dir", str(tmp_path / "data"), "--port", str(port)
        )

    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "address already in use" in lines[0].lower(), lines[0]


def test_server_with_an_unknown_datastore_exits_with_one_readable_line(tmp_path: Path) -> None:
    result = _fails_to_start(
        "server",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(free_port()),
        "--datastore",
        "bogus://x",
    )

    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "datastore" in lines[0] and "bogus" in lines[0], lines[0]


# -- authentication --------------------------------------------------------------------------


def test_requests_without_or_with_a_wrong_token_are_unauthorized(tmp_path: Path) -> None:
    with running("server", tmp_path / "data") as server:
        token = server.token
        assert server.request("/api/v1/namespaces", token)[0] == 200

        for bad in (None, "not-the-token", token + "x"):
            code, status = server.request("/api/v1/namespaces", bad)
            assert code == 401, (bad, status)
            assert (status["kind"], status["apiVersion"]) == ("Status", "v1"), status
            assert (status["status"], status["code"], status["reason"]) == (
                "Failure",
                401,
                "Unauthorized",
            ), status


# -- nodes: up --nodes / --fake-nodes, agent --fake ------------------------------------------


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _ready_nodes(server: Kubeling) -> list[str]:
    """The names of the nodes whose Ready condition is True."""
    nodes = json.loads(server.kubectl("get", "nodes", "-o", "json"))["items"]
    return sorted(
        node["metadata"]["name"]
        for node in nodes
        for condition in node.get("status", {}).get("conditions", [])
        if condition["type"] == "Ready" and condition["status"] == "True"
    )


@contextlib.contextmanager
def agent(*args: str) -> Iterator[Child]:
    """A `kubeling agent` child; killed at the end of the block if it is still running."""
    child = Child("agent", *args)
    try:
        yield child
    finally:
        child.close()


def _pod_cidrs(server: Kubeling) -> dict[str, str]:
    nodes = json.loads(server.kubectl("get", "nodes", "-o", "json"))["items"]
    return {node["metadata"]["name"]: node["spec"].get("podCIDR", "") for node in nodes}


def test_up_runs_one_real_node_by_default(tmp_path: Path) -> None:
    with running("up", tmp_path / "data") as server:
        # `up` prints that it is ready once its nodes have registered.
        assert _ready_nodes(server) == ["node-0"]
        assert _pod_cidrs(server) == {"node-0": "127.128.0.0/24"}
        assert (tmp_path / "data" / "nodes" / "node-0").is_dir()


def test_up_gives_real_and_fake_nodes_different_pod_cidrs(tmp_path: Path) -> None:
    with running("up", tmp_path / "data", None, "--nodes", "2", "--fake-nodes", "1") as server:
        assert _ready_nodes(server) == ["fake-node-0", "node-0", "node-1"]
        assert _pod_cidrs(server) == {
            "node-0": "127.128.0.0/24",
            "node-1": "127.128.1.0/24",
            "fake-node-0": "127.128.2.0/24",
        }


def test_up_with_fake_nodes_registers_ready_nodes(tmp_path: Path) -> None:
    with running("up", tmp_path / "data", None, "--nodes", "0", "--fake-nodes", "2") as server:
        # `up` prints that it is ready once the fake nodes have registered.
        assert _ready_nodes(server) == ["fake-node-0", "fake-node-1"]


def _sleeper(name: str, node: str) -> str:
    """A pod bound to `node` whose one container sleeps (this Python, no shell shim)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 5,
                "containers": [
                    {
                        "name": "app",
                        "image": "sleeper",
                        "command": [sys.executable, "-c", "import time; time.sleep(600)"],
                    }
                ],
            },
        }
    )


def _process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_agent_joins_as_a_real_node_runs_its_pods_and_stops_them_on_sigterm(
    tmp_path: Path,
) -> None:
    hostname = socket.gethostname().lower()
    agent_dir = tmp_path / "agent"
    with running("up", tmp_path / "data") as server:
        join = [
            "--server",
            f"https://127.0.0.1:{server.port}",
            "--token-file",
            str(server.data_dir / "node-token"),
            "--data-dir",
            str(agent_dir),
        ]
        with agent(*join) as node:
            # Named after the machine, with the lowest pod CIDR no node has (node-0 has .0).
            ready = node.wait_for_line("kubeling agent: node ")
            assert ready == f"kubeling agent: node {hostname} ready, pod CIDR 127.128.1.0/24"
            assert hostname in _ready_nodes(server)
            assert _pod_cidrs(server)[hostname] == "127.128.1.0/24"

            path = tmp_path / "sleeper.json"
            path.write_text(_sleeper("sleeper", hostname))
            server.kubectl("apply", "-f", str(path))

            def running_pod() -> dict:
                pod = json.loads(server.kubectl("get", "pod", "sleeper", "-o", "json"))
                return pod if pod["status"].get("phase") == "Running" else {}

            pod = wait_for(running_pod, timeout=30, message="pod sleeper Running")
            assert pod["status"]["podIP"].startswith("127.128.1."), pod["status"]
            pid_file = agent_dir / "pods" / pod["metadata"]["uid"] / "pids" / "app"
            pgid = int(pid_file.read_text())
            assert _process_group_alive(pgid)

            assert node.stop(signal.SIGTERM) == 0, node.stderr()
            assert "Traceback" not in node.stderr(), node.stderr()
            assert not _process_group_alive(pgid)

        # Started again, the node keeps the pod CIDR its Node records.
        with agent(*join) as node:
            ready = node.wait_for_line("kubeling agent: node ")
            assert ready.endswith("pod CIDR 127.128.1.0/24"), ready
            assert node.stop(signal.SIGTERM) == 0, node.stderr()


def test_agent_without_a_cluster_to_join_exits_with_one_readable_line(tmp_path: Path) -> None:
    result = _fails_to_start("agent", "--fake", "--data-dir", str(tmp_path / "agent"))

    assert result.returncode == 2
    line = _one_line(result)
    assert "--server" in line and "--token-file" in line and "--kubeconfig" in line, line


def test_agent_against_an_unreachable_server_exits_with_one_readable_line(tmp_path: Path) -> None:
    with running("server", tmp_path / "data") as server:
        kubeconfig = server.kubeconfig.read_text()
        assert server.stop(signal.SIGTERM) == 0, server.stderr()
    (tmp_path / "kubeconfig.yaml").write_text(kubeconfig)

    result = _fails_to_start(
        "agent",
        "--fake",
        "--kubeconfig",
        str(tmp_path / "kubeconfig.yaml"),
        "--data-dir",
        str(tmp_path / "agent"),
    )

    line = _one_line(result)
    assert "cannot reach the API server" in line, line


def test_agent_fake_registers_its_nodes_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with (
        running("server", tmp_path / "data") as server,
        agent(
            "--fake",
            "--count",
            "2",
            "--name-prefix",
            "edge-",
            "--kubeconfig",
            str(server.kubeconfig),
            "--data-dir",
            str(tmp_path / "agent"),
        ) as nodes,
    ):
        assert nodes.wait_for_line("kubeling agent: fake nodes ready:").endswith("edge-0 edge-1")
        assert _ready_nodes(server) == ["edge-0", "edge-1"]

        assert nodes.stop(signal.SIGTERM) == 0, nodes.stderr()
        assert "Traceback" not in nodes.stderr(), nodes.stderr()
        # As a stopped kubelet's, the Node stays: the node lifecycle controller's to judge.
        assert "edge-0" in server.kubectl("get", "nodes", "-o", "name")


def test_agent_fake_runs_the_pods_scheduled_to_its_node(tmp_path: Path) -> None:
    with (
        running("up", tmp_path / "data", None, "--nodes", "0") as server,
        agent(
            "--fake", "--kubeconfig", str(server.kubeconfig), "--data-dir", str(tmp_path / "agent")
        ) as nodes,
    ):
        nodes.wait_for_line("kubeling agent: fake nodes ready:")
        server.kubectl("run", "web", "--image=nginx:1.25")

        def running_pod() -> dict:
            pod = json.loads(server.kubectl("get", "pod", "web", "-o", "json"))
            return pod if pod["status"].get("phase") == "Running" else {}

        pod = wait_for(running_pod, timeout=30, message="pod web Running")
        assert pod["spec"]["nodeName"] == "fake-node-0"
        assert nodes.stop(signal.SIGINT) == 0, nodes.stderr()


def test_agent_joins_with_the_node_token_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with running("server", tmp_path / "data") as server:
        url = f"https://127.0.0.1:{server.port}"
        token_file = server.data_dir / "node-token"
        with agent(
            "--fake",
            "--server",
            url,
            "--token-file",
            str(token_file),
            "--name",
            "n1",
            "--data-dir",
            str(tmp_path / "agent"),
        ) as node:
            assert node.wait_for_line("kubeling agent: fake nodes ready:").endswith(" n1")
            code, n1 = server.request("/api/v1/nodes/n1", server.token)
            assert code == 200, n1
            ready = [c for c in n1["status"]["conditions"] if c["type"] == "Ready"]
            assert [c["status"] for c in ready] == ["True"], n1["status"]
            assert (tmp_path / "agent").is_dir()

            assert node.stop(signal.SIGTERM) == 0, node.stderr()
            assert "Traceback" not in node.stderr(), node.stderr()


def test_agent_with_a_token_for_another_ca_exits_with_one_readable_line(tmp_path: Path) -> None:
    with running("server", tmp_path / "data") as server:
        real = (server.data_dir / "node-token").read_text().strip()
        credential = real.partition("::")[2]
        other_ca = hashlib.sha256(b"some other cluster's CA").hexdigest()
        forged = tmp_path / "node-token"
        forged.write_text(f"K10{other_ca}::{credential}\n")

        result = _fails_to_start(
            "agent",
            "--fake",
            "--server",
            f"https://127.0.0.1:{server.port}",
            "--token-file",
            str(forged),
            "--name",
            "n1",
            "--data-dir",
            str(tmp_path / "agent"),
        )

        assert result.returncode == 1
        assert _one_line(result) == "kubeling: the server's CA does not match the token's hash"
        code, _ = server.request("/api/v1/nodes/n1", server.token)
        assert code == 404  # it never talked to the server with its credential


def test_agent_with_a_malformed_token_file_exits_with_one_readable_line(tmp_path: Path) -> None:
    token_file = tmp_path / "node-token"
    token_file.write_text("not-a-token\n")

    result = _fails_to_start(
        "agent",
        "--fake",
        "--server",
        "https://127.0.0.1:1",
        "--token-file",
        str(token_file),
        "--data-dir",
        str(tmp_path / "agent"),
    )

    assert result.returncode == 2
    line = _one_line(result)
    assert str(token_file) in line and "not a node token" in line, line


def test_test_cluster_in_process_mode_runs_its_fake_nodes() -> None:
    with TestCluster(process=True, fake_nodes=2) as cluster:
        nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]

        assert sorted(node["metadata"]["name"] for node in nodes) == [
            "fake-node-0",
            "fake-node-1",
        ]


def test_test_cluster_runs_real_nodes_in_thread_and_process_mode() -> None:
    for process in (False, True):
        with TestCluster(process=process, nodes=1) as cluster:
            nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]

            assert [node["metadata"]["name"] for node in nodes] == ["node-0"], process


# -- up -f ---------------------------------------------------------------------------------


def test_up_with_a_file_that_is_not_a_manifest_exits_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n")

    result = _fails_to_start(
        "up", "--data-dir", str(tmp_path / "data"), "--port", str(free_port()), "-f", str(bad)
    )

    assert result.returncode == 2
    line = _one_line(result)
    assert str(bad) in line and "not valid YAML" in line, line
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_up_with_a_manifest_the_server_refuses_stops_with_one_line(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "a-config.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {k: v}\n"
    )
    (manifests / "b-web.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec:\n  selector: {matchLabels: {app: web}}\n"
        "  template:\n    metadata: {labels: {app: other}}\n"
        "    spec: {containers: [{name: c, image: i}]}\n"
    )
    server = Kubeling("up", tmp_path / "data", free_port(), "--nodes", "0", "-f", str(manifests))
    try:
        assert server.proc.wait(timeout=START_TIMEOUT) == 1
        # Besides the server's log lines, the refusal is one line naming the file and object.
        errors = [line for line in server.stderr().splitlines() if not LOG_LINE.match(line)]
        assert len(errors) == 1, server.stderr()
        assert errors[0].startswith(f"kubeling: {manifests / 'b-web.yaml'}: deployment.apps/web:")
        assert "selector" in errors[0], errors[0]
    finally:
        server.close()
