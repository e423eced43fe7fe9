"""Helpers for driving kubeling with real kubectl binaries: running kubectl, watching its
output, reading its tables, and the manifests the tests apply."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from typing import Any

import yaml
from process_support import LineReader

from kubeling.testing.cluster import TestCluster


class Kubectl:
    """Runs one kubectl binary against the cluster, in the test's namespace by default."""

    def __init__(self, cluster: TestCluster, binary: str, namespace: str) -> None:
        self.cluster = cluster
        self.binary = binary
        self.ns = namespace
        self.started: list[WatchedProcess] = []

    def __call__(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        namespace: str | None = None,
        timeout: float = 90,
    ) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(
            f"--namespace={namespace or self.ns}",
            *args,
            check=check,
            input=input,
            timeout=timeout,
            kubectl=self.binary,
        )

    def apply_manifest(self, manifest: dict[str, Any], *args: str) -> str:
        """`kubectl apply -f -` of one object; returns stdout."""
        return self("apply", "-f", "-", *args, input=yaml.safe_dump(manifest)).stdout

    def create_manifest(self, manifest: dict[str, Any]) -> str:
        return self("create", "-f", "-", input=yaml.safe_dump(manifest)).stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json").stdout)

    def absent(self, *what: str) -> bool:
        """Whether `kubectl get <what>` finds nothing (and does not fail)."""
        result = self("get", *what, "--ignore-not-found", "-o", "name", check=False)
        return result.returncode == 0 and result.stdout.strip() == ""

    def watch(self, *args: str) -> WatchedProcess:
        """Start a long-running kubectl (e.g. `get -w`) whose stdout lines can be awaited."""
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "HOME": str(self.cluster.home),
        }
        env.pop("KUBE_FEATURE_WatchListClient", None)
        cmd = [
            self.binary,
            "--cache-dir",
            str(self.cluster.home / "cache"),
            f"--namespace={self.ns}",
            *args,
        ]
        process = WatchedProcess(cmd, env)
        self.started.append(process)
        return process

    def kill_started(self) -> None:
        """Kill every long-running kubectl this helper started."""
        while self.started:
            self.started.pop().kill()


class WatchedProcess(LineReader):
    """A kubectl child in its own process group.

    The machine's kubectl is a wrapper (the Cloud SDK dispatcher): the whole process group
    is killed when the test is done, whatever it started."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        super().__init__(cmd, env=env, new_session=True)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the whole group may be gone
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)
        self._release()


def columns(line: str) -> list[str]:
    """The cells of one line of kubectl's table output (columns are 2+ spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


def table(output: str) -> tuple[list[str], dict[str, list[str]]]:
    """kubectl's table output as (header, {first cell: row}); the first cell is NAME, or
    NAMESPACE with `-A`."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "empty table"
    header = columns(lines[0])
    rows = {}
    for line in lines[1:]:
        cells = columns(line)
        rows[cells[0] if header[0] != "NAMESPACE" else f"{cells[0]}/{cells[1]}"] = cells
    return header, rows


def deployment(
    name: str, image: str = "nginx:1.25", replicas: int = 2, **container: Any
) -> dict[str, Any]:
    """An apps/v1 Deployment manifest with one container `web` listening on port 80."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "ports": [{"containerPort": 80}],
                            **container,
                        }
                    ]
                },
            },
        },
    }


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def pod(name: str, image: str = "nginx:1.25") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]},
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
