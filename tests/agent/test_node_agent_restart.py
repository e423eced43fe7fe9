"""A node agent that is killed and started again: its pods' processes never run twice.

A cluster of its own, since the test replaces the node agent of node-0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_support import (
    PORT,
    PY,
    WEB,
    AgentCluster,
    container,
    env,
    pid_of,
    probe,
    processes_with,
    ready,
    script,
)

from kubeling.agent.agent import NodeAgent
from kubeling.testing.cluster import wait_for


@pytest.fixture
def kc() -> Iterator[AgentCluster]:
    cluster = AgentCluster(nodes=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_restarted_agent_kills_leftovers_and_runs_each_container_once(
    kc: AgentCluster, tmp_path: Path
) -> None:
    ns = kc.namespace()
    sidecar = {
        "name": "sidecar",
        "image": "python",
        "command": [PY, "-c", "import time; time.sleep(600)"],
    }
    for name in ("a", "b"):
        main = {
            "name": "main",
            "image": "python",
            "command": [PY, script(tmp_path, "web.py", WEB)],
            "env": env(PORT=str(PORT)),
            "readinessProbe": probe("/ready"),
        }
        kc.create_pod(ns, name, {"containers": [main, sidecar]})
    pods = {name: kc.wait_pod(ns, name, ready) for name in ("a", "b")}
    uids = {name: pod["metadata"]["uid"] for name, pod in pods.items()}
    old = {name: {pid_of(pod, "main"), pid_of(pod, "sidecar")} for name, pod in pods.items()}
    for name in pods:
        assert set(processes_with(uids[name])) == old[name]

    old_agent = kc.agents[0]
    kc.run(old_agent.abandon())  # as if killed: its processes run on, unsupervised
    for name in pods:
        assert set(processes_with(uids[name])) == old[name]

    new_agent = NodeAgent(
        old_agent.client,
        old_agent.node_name,
        data_dir=old_agent.data_dir,
        pod_cidr=old_agent.pod_cidr,
        lease_duration=old_agent.heartbeat.lease_duration,
        renew_interval=old_agent.heartbeat.renew_interval,
    )
    kc.agents[0] = new_agent  # the cluster stops this one at the end
    kc.run(new_agent.start())

    for name, pod in pods.items():

        def restarted(p: dict[str, object], name: str = name) -> bool:
            fresh = {pid_of(p, "main"), pid_of(p, "sidecar")}
            return ready(p) and not fresh & old[name]

        pod = kc.wait_pod(ns, name, restarted, message=f"{name} ready again")
        assert pod["status"]["podIP"] == pods[name]["status"]["podIP"]
        for c in ("main", "sidecar"):
            assert container(pod, c)["restartCount"] == 1
        now = {pid_of(pod, "main"), pid_of(pod, "sidecar")}
        # Exactly one process per container: the old ones are gone.
        wait_for(
            lambda uid=uids[name], now=now: set(processes_with(uid)) == now,
            timeout=10,
            message=f"only the new processes of {name}",
        )
