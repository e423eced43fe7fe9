"""The node agent end to end: what a Kubernetes user expects of the kubelet, on a real cluster
with one real node agent (node-0), driven with the official client and the real kubectl.

One cluster for the module; each test has a namespace of its own, deleted at its end (which
stops its pods).
"""

from __future__ import annotations

import base64
import os
import signal
import time
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
    http_get,
    phase,
    pid_of,
    probe,
    ready,
    script,
    waiting_reason,
)

from kubeling.testing.cluster import wait_for


@pytest.fixture(scope="module")
def kc() -> Iterator[AgentCluster]:
    cluster = AgentCluster(nodes=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def ns(kc: AgentCluster) -> Iterator[str]:
    name = kc.namespace()
    yield name
    kc.core().delete_namespace(name)


def web(tmp_path: Path, **extra_env: str) -> dict[str, object]:
    """A container that runs the test web server (agent_support.WEB)."""
    return {
        "name": "main",
        "image": "python",
        "command": [PY, script(tmp_path, "web.py", WEB)],
        "env": env(PORT=str(PORT), **extra_env),
    }


def stays(condition: object, seconds: float) -> None:
    """Check that `condition()` holds on every poll for `seconds` (a bounded observation, not
    a synchronising sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), "condition stopped holding"  # type: ignore[operator]
        time.sleep(0.2)


# -- 1 ----------------------------------------------------------------------------------------


def test_pod_serving_http_becomes_ready_and_answers_on_its_ip(
    kc: AgentCluster, ns: str, tmp_path: Path
) -> None:
    main = web(tmp_path)
    main["readinessProbe"] = probe("/ready")
    main["ports"] = [{"containerPort": PORT}]
    kc.create_pod(ns, "web", {"containers": [main]})

    pod = kc.wait_pod(ns, "web", ready, message="web Ready")
    status = pod["status"]
    assert status["phase"] == "Running"
    ip = status["podIP"]
    assert ip.startswith("127.128.")
    assert status["podIPs"] == [{"ip": ip}]
    assert status["hostIP"] == "127.0.0.1"
    main_status = container(pod)
    assert main_status["ready"] is True and main_status["started"] is True
    assert main_status["restartCount"] == 0, main_status
    assert "running" in main_status["state"]
    assert main_status["containerID"].startswith("kubeling://")
    assert main_status["image"] == "python"
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    assert http_get(f"http://{ip}:{PORT}/") == (200, f"hello from {ip}")
    typed = kc.core().read_namespaced_pod("web", ns).status  # the client's models accept it
    assert typed.container_statuses[0].state.running.started_at is not None
    assert typed.pod_ip == ip and typed.phase == "Running"

    wide = kc.kubectl("get", "pods", "-n", ns, "-o", "wide").stdout
    row = wide.splitlines()[1].split()
    assert row[:3] == ["web", "1/1", "Running"]
    assert ip in row and "node-0" in row

    # Status is written on change only: a steady pod with a probe every second is not rewritten.
    version = pod["metadata"]["resourceVersion"]
    stays(lambda: kc.pod(ns, "web")["metadata"]["resourceVersion"] == version, 2.5)


# -- 2 ----------------------------------------------------------------------------------------


def test_killed_process_is_restarted_with_exit_code_137(
    kc: AgentCluster, ns: str, tmp_path: Path
) -> None:
    kc.create_pod(ns, "victim", {"containers": [web(tmp_path)]})
    pod = kc.wait_pod(ns, "victim", ready)
    first = pid_of(pod)

    os.kill(first, signal.SIGKILL)

    pod = kc.wait_pod(ns, "victim", lambda p: container(p).get("restartCount") == 1 and ready(p))
    status = container(pod)
    assert pid_of(pod) != first
    terminated = status["lastState"]["terminated"]
    assert terminated["exitCode"] == 137
    assert terminated["reason"] == "Error"
    assert terminated["signal"] == 9
    assert "running" in status["state"]


# -- 3 ----------------------------------------------------------------------------------------


def test_crashing_program_goes_into_crash_loop_back_off(kc: AgentCluster, ns: str) -> None:
    crash = {"name": "main", "image": "python", "command": [PY, "-c", "raise SystemExit(1)"]}
    kc.create_pod(ns, "crash", {"containers": [crash]})

    pod = kc.wait_pod(ns, "crash", lambda p: waiting_reason(p) == "CrashLoopBackOff")
    status = container(pod)
    # The first restart is immediate, the next one waits 10 s.
    assert status["restartCount"] == 1
    assert "back-off 10s restarting failed container=main" in status["state"]["waiting"]["message"]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["ready"] is False
    assert phase(pod) == "Running"
    typed = kc.core().read_namespaced_pod("crash", ns).status.container_statuses[0]
    assert typed.state.waiting.reason == "CrashLoopBackOff"
    assert typed.last_state.terminated.exit_code == 1
    stays(lambda: container(kc.pod(ns, "crash"))["restartCount"] == 1, 3)
    row = kc.kubectl("get", "pod", "crash", "-n", ns).stdout.splitlines()[1].split()
    assert row[:4] == ["crash", "0/1", "CrashLoopBackOff", "1"]


# -- 4 ----------------------------------------------------------------------------------------


def test_failing_liveness_probe_restarts_the_container(
    kc: AgentCluster, ns: str, tmp_path: Path
) -> None:
    main = web(tmp_path, SICK_AFTER="2")
    # Time for Python to start listening: a refused connection fails a liveness probe too.
    main["livenessProbe"] = probe("/healthz", failureThreshold=2, initialDelaySeconds=1)
    kc.create_pod(ns, "live", {"containers": [main]})
    pod = kc.wait_pod(ns, "live", ready)
    first = pid_of(pod)

    # Healthy twice, then sick: killed and restarted (the new process is healthy again, twice).
    pod = kc.wait_pod(
        ns, "live", lambda p: container(p).get("restartCount", 0) >= 1 and pid_of(p) != first
    )
    assert "terminated" in container(pod)["lastState"]
    events = kc.events(ns, "live")
    assert any(r == "Unhealthy" and "Liveness probe failed" in m for r, m in events), events
    assert any(r == "Killing" and "failed liveness probe" in m for r, m in events), events


# -- 5 ----------------------------------------------------------------------------------------


def test_failing_readiness_probe_makes_pod_unready_without_restart(
    kc: AgentCluster, ns: str, tmp_path: Path
) -> None:
    unready = tmp_path / "unready"
    unready.touch()
    main = web(tmp_path, UNREADY=str(unready))
    main["readinessProbe"] = probe("/ready", failureThreshold=1)
    kc.create_pod(ns, "shy", {"containers": [main]})

    pod = kc.wait_pod(ns, "shy", lambda p: "running" in container(p).get("state", {}))
    first = pid_of(pod)

    def unready_running() -> bool:
        p = kc.pod(ns, "shy")
        s = container(p)
        return not ready(p) and s["restartCount"] == 0 and pid_of(p) == first

    stays(unready_running, 3)
    events = kc.events(ns, "shy")
    assert any(r == "Unhealthy" and "Readiness probe failed" in m for r, m in events), events

    unready.unlink()
    pod = kc.wait_pod(ns, "shy", ready)
    assert container(pod)["restartCount"] == 0


# -- 6 ----------------------------------------------------------------------------------------


def test_startup_probe_holds_off_liveness_until_slow_program_starts(
    kc: AgentCluster, ns: str, tmp_path: Path
) -> None:
    main = web(tmp_path, DELAY="3")
    main["startupProbe"] = probe("/healthz", failureThreshold=30)
    main["livenessProbe"] = probe("/healthz", failureThreshold=1)
    kc.create_pod(ns, "slow", {"containers": [main]})

    pod = kc.wait_pod(ns, "slow", lambda p: "running" in container(p).get("state", {}))
    assert container(pod)["started"] is False
    assert not ready(pod)

    pod = kc.wait_pod(ns, "slow", lambda p: container(p).get("started") is True, timeout=30)
    assert container(pod)["restartCount"] == 0
    pod = kc.wait_pod(ns, "slow", ready)
    assert container(pod)["restartCount"] == 0


# -- 7 ----------------------------------------------------------------------------------------

REPORTER = """
import os, sys, time
out, source = sys.argv[1], os.path.join(os.environ["KUBELING_VOLUME_CONFIG"], sys.argv[2])
while True:
    with open(source) as f:
        text = f"file={f.read()} env={os.environ.get('VALUE')}"
    with open(out + ".tmp", "w") as f:
        f.write(text)
    os.replace(out + ".tmp", out)
    time.sleep(0.1)
"""


def read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_configmap_as_env_and_file_updates_the_file_in_place(
    kc: AgentCluster, ns: str, tmp_path: Path
) -> None:
    kc.core().create_namespaced_config_map(
        ns, {"metadata": {"name": "settings"}, "data": {"greeting": "hello"}}
    )
    out = tmp_path / "out"
    main = {
        "name": "main",
        "image": "python",
        "command": [PY, script(tmp_path, "reporter.py", REPORTER), str(out), "greeting"],
        "env": [
            {
                "name": "VALUE",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}},
            }
        ],
        "volumeMounts": [{"name": "config", "mountPath": "/tmp/kubeling-tests/config"}],
    }
    volumes = [{"name": "config", "configMap": {"name": "settings"}}]
    kc.create_pod(ns, "cm", {"containers": [main], "volumes": volumes})
    wait_for(lambda: read(out) == "file=hello env=hello", timeout=30, message="hello")
    pod = kc.pod(ns, "cm")
    cid = container(pod)["containerID"]

    kc.kubectl("patch", "configmap", "settings", "-n", ns, "-p", '{"data":{"greeting":"bye"}}')

    wait_for(lambda: read(out) == "file=bye env=hello", timeout=30, message="file updated")
    pod = kc.pod(ns, "cm")
    assert container(pod)["containerID"] == cid
    assert container(pod)["restartCount"] == 0


def test_missing_configmap_is_a_config_error_until_it_is_created(kc: AgentCluster, ns: str) -> None:
    main = {
        "name": "main",
        "image": "python",
        "command": [PY, "-c", "import time; time.sleep(600)"],
        "env": [
            {
                "name": "VALUE",
                "valueFrom": {"configMapKeyRef": {"name": "later", "key": "greeting"}},
            }
        ],
    }
    kc.create_pod(ns, "waits", {"containers": [main]})
    pod = kc.wait_pod(ns, "waits", lambda p: waiting_reason(p) == "CreateContainerConfigError")
    assert container(pod)["state"]["waiting"]["message"] == 'configmap "later" not found'
    assert phase(pod) == "Pending"

    kc.core().create_namespaced_config_map(
        ns, {"metadata": {"name": "later"}, "data": {"greeting": "hi"}}
    )
    pod = kc.wait_pod(ns, "waits", ready, timeout=30)
    assert container(pod)["restartCount"] == 0


# -- 8 ----------------------------------------------------------------------------------------


def test_secret_as_env_and_file_is_decoded(kc: AgentCluster, ns: str, tmp_path: Path) -> None:
    encoded = base64.b64encode(b"s3cr3t").decode()
    kc.core().create_namespaced_secret(
        ns, {"metadata": {"name": "db"}, "data": {"password": encoded}}
    )
    out = tmp_path / "out"
    main = {
        "name": "main",
        "image": "python",
        "command": [PY, script(tmp_path, "reporter.py", REPORTER), str(out), "password"],
        "env": [
            {"name": "VALUE", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
        ],
        "volumeMounts": [{"name": "config", "mountPath": "/tmp/kubeling-tests/secret"}],
    }
    volumes = [{"name": "config", "secret": {"secretName": "db"}}]
    kc.create_pod(ns, "secret", {"containers": [main], "volumes": volumes})
    wait_for(lambda: read(out) == "file=s3cr3t env=s3cr3t", timeout=30, message="secret")


# -- 9 ----------------------------------------------------------------------------------------


def test_delete_runs_prestop_then_sigterm_and_the_program_drains(
    kc: AgentCluster, ns: str, tmp_path: Path
) -> None:
    drained, hooked = tmp_path / "drained", tmp_path / "prestop"
    main = web(tmp_path, DRAIN=str(drained))
    main["lifecycle"] = {
        "preStop": {"exec": {"command": [PY, "-c", f"open({str(hooked)!r}, 'w').write('prestop')"]}}
    }
    kc.create_pod(ns, "drain", {"containers": [main], "terminationGracePeriodSeconds": 20})
    kc.wait_pod(ns, "drain", ready)

    kc.kubectl("delete", "pod", "drain", "-n", ns, "--timeout=30s")

    assert kc.pod_gone(ns, "drain")
    assert read(hooked) == "prestop"
    assert read(drained) == "drained"


def test_delete_kills_a_program_ignoring_sigterm_after_the_grace_period(
    kc: AgentCluster, ns: str
) -> None:
    stubborn = {
        "name": "main",
        "image": "python",
        "command": [
            PY,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
        ],
    }
    kc.create_pod(ns, "stubborn", {"containers": [stubborn], "terminationGracePeriodSeconds": 2})
    kc.wait_pod(ns, "stubborn", ready)

    started = time.monotonic()
    kc.kubectl("delete", "pod", "stubborn", "-n", ns, "--timeout=30s")
    took = time.monotonic() - started

    assert kc.pod_gone(ns, "stubborn")
    assert 1.5 <= took < 8, took


# -- 10 ---------------------------------------------------------------------------------------


def test_init_containers_run_in_order_before_the_main_container(
    kc: AgentCluster, ns: str, tmp_path: Path
) -> None:
    append = (
        "import os, sys; "
        "open(os.environ['KUBELING_VOLUME_WORK'] + '/log', 'a').write(sys.argv[1] + '\\n')"
    )
    out = tmp_path / "out"
    copy = (
        "import os, shutil, sys, time; "
        "shutil.copy(os.environ['KUBELING_VOLUME_WORK'] + '/log', sys.argv[1]); time.sleep(600)"
    )
    mount = [{"name": "work", "mountPath": "/tmp/kubeling-tests/work"}]
    spec = {
        "initContainers": [
            {
                "name": name,
                "image": "python",
                "command": [PY, "-c", append, name],
                "volumeMounts": mount,
            }
            for name in ("first", "second")
        ],
        "containers": [
            {
                "name": "main",
                "image": "python",
                "command": [PY, "-c", copy, str(out)],
                "volumeMounts": mount,
            }
        ],
        "volumes": [{"name": "work", "emptyDir": {}}],
    }
    kc.create_pod(ns, "init", spec)
    pod = kc.wait_pod(ns, "init", ready)
    wait_for(lambda: read(out) == "first\nsecond\n", timeout=10, message="init log copied")
    inits = pod["status"]["initContainerStatuses"]
    assert [s["name"] for s in inits] == ["first", "second"]
    for s in inits:
        assert s["state"]["terminated"]["exitCode"] == 0
        assert s["state"]["terminated"]["reason"] == "Completed"
        assert s["ready"] is True


# -- 11 ---------------------------------------------------------------------------------------


def exits(code: int) -> dict[str, object]:
    return {"name": "main", "image": "python", "command": [PY, "-c", f"raise SystemExit({code})"]}


def test_restart_policy_never_and_on_failure_end_in_succeeded_or_failed(
    kc: AgentCluster, ns: str
) -> None:
    kc.create_pod(ns, "never-ok", {"containers": [exits(0)], "restartPolicy": "Never"})
    kc.create_pod(ns, "never-bad", {"containers": [exits(3)], "restartPolicy": "Never"})
    kc.create_pod(ns, "onfailure-ok", {"containers": [exits(0)], "restartPolicy": "OnFailure"})

    pod = kc.wait_pod(ns, "never-ok", lambda p: phase(p) == "Succeeded")
    assert container(pod)["state"]["terminated"]["reason"] == "Completed"

    pod = kc.wait_pod(ns, "never-bad", lambda p: phase(p) == "Failed")
    terminated = container(pod)["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    assert container(pod)["restartCount"] == 0

    pod = kc.wait_pod(ns, "onfailure-ok", lambda p: phase(p) == "Succeeded")
    assert container(pod)["restartCount"] == 0
    for name in ("never-ok", "never-bad", "onfailure-ok"):
        pod = kc.pod(ns, name)
        assert not ready(pod)
        assert container(pod)["ready"] is False and container(pod)["started"] is False


# -- 12 ---------------------------------------------------------------------------------------


def test_container_without_command_is_a_config_error(kc: AgentCluster, ns: str) -> None:
    kc.create_pod(ns, "image-only", {"containers": [{"name": "main", "image": "nginx"}]})
    pod = kc.wait_pod(ns, "image-only", lambda p: waiting_reason(p) == "CreateContainerConfigError")
    message = container(pod)["state"]["waiting"]["message"]
    assert "kubeling runs processes, not images" in message
    assert phase(pod) == "Pending"


# -- 13 ---------------------------------------------------------------------------------------


def test_deployment_with_readiness_probe_rolls_out_with_distinct_pod_ips(
    kc: AgentCluster, ns: str, tmp_path: Path
) -> None:
    main = web(tmp_path)
    main["readinessProbe"] = probe("/ready")
    deployment = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [main], "terminationGracePeriodSeconds": 1},
            },
        },
    }
    kc.apps().create_namespaced_deployment(ns, deployment)

    kc.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=70)

    pods = kc.core().list_namespaced_pod(ns, label_selector="app=web").items
    ips = {p.status.pod_ip for p in pods}
    assert len(pods) == 2 and len(ips) == 2
    for ip in ips:
        assert http_get(f"http://{ip}:{PORT}/") == (200, f"hello from {ip}")
