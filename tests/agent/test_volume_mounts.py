"""As root, volumes appear at their real mountPath inside the container's private mount
namespace (and for `kubectl exec` into it), updated in place, read-only when asked, and
invisible outside the container."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_support import AgentCluster, ready

from kubeling.agent import mountns
from kubeling.testing.cluster import wait_for

pytestmark = pytest.mark.skipif(not mountns.available(), reason="needs root on Linux")

PROGRAM = """
import pathlib, sys, time
mount, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
try:
    (mount / "probe").write_text("x")
    writable = "yes"
except OSError:
    writable = "no"
while True:
    out.write_text(f"{(mount / 'greeting').read_text()} writable={writable}")
    time.sleep(0.2)
"""


@pytest.fixture(scope="module")
def kc() -> Iterator[AgentCluster]:
    cluster = AgentCluster(nodes=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_configmap_is_mounted_read_only_at_its_mount_path_only_inside_the_container(
    kc: AgentCluster, tmp_path: Path
) -> None:
    ns = kc.namespace()
    kc.core().create_namespaced_config_map(
        ns, {"metadata": {"name": "settings"}, "data": {"greeting": "hello"}}
    )
    mount_path = f"/tmp/kubeling-mount-{uuid.uuid4().hex[:8]}/config"
    out = tmp_path / "out"
    main = {
        "name": "main",
        "image": "python",
        "command": [sys.executable, "-c", PROGRAM, mount_path, str(out)],
        # Relative: taken from the agent's directory, and kept for exec in the namespace.
        "workingDir": "tests",
        "volumeMounts": [{"name": "config", "mountPath": mount_path, "readOnly": True}],
    }
    volumes = [{"name": "config", "configMap": {"name": "settings"}}]
    kc.create_pod(ns, "reader", {"containers": [main], "volumes": volumes})
    try:
        wait_for(
            lambda: out.exists() and out.read_text() == "hello writable=no",
            timeout=30,
            message="the file read at its mount path",
        )
        # Outside the container's namespace the mount point is an empty directory.
        assert os.listdir(mount_path) == []
        wait_for(lambda: ready(kc.pod(ns, "reader")), timeout=30, message="ready")
        seen = kc.kubectl("exec", "reader", "-n", ns, "--", "cat", f"{mount_path}/greeting")
        assert seen.stdout == "hello"
        where = kc.kubectl("exec", "reader", "-n", ns, "--", "pwd")
        assert where.stdout.strip() == os.path.abspath("tests")

        kc.kubectl("patch", "configmap", "settings", "-n", ns, "-p", '{"data":{"greeting":"bye"}}')
        wait_for(
            lambda: out.read_text() == "bye writable=no", timeout=30, message="updated in place"
        )
    finally:
        kc.core().delete_namespace(ns)
        os.rmdir(mount_path)
        os.rmdir(os.path.dirname(mount_path))
