"""The README's one-command demo, as a user runs it: `kubeling up -f examples/` from the
repository root brings up the example app (examples/app.py, a Deployment of 3 with readiness
and liveness probes, a ConfigMap volume and a Secret in its environment) on one real node."""

from __future__ import annotations

import re
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from process_support import STOP_TIMEOUT, Child, free_port

from kubeling.testing.cluster import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
POD_LINE = re.compile(r"pod default/(hello-\S+) ready at (http://127\.128\.\d+\.\d+:8080/)$")
START_TIMEOUT = 120.0  # seconds: three Python processes warming up on a busy 2-core machine
# Pod IPs are this machine's loopback addresses: never through a proxy from the environment.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> tuple[int, str]:
    try:
        with DIRECT.open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def refused(url: str) -> bool:
    try:
        DIRECT.open(url, timeout=2).close()
    except urllib.error.URLError as err:
        return isinstance(err.reason, ConnectionRefusedError)
    return False


def test_up_with_the_examples_runs_the_app_ready_on_its_pod_ips(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", str(free_port())
    demo = Child("up", "--data-dir", str(data_dir), "--port", port, "-f", "examples/", cwd=ROOT)
    try:
        demo.wait_for_line("deployment.apps/hello applied")
        pods = {}
        while len(pods) < 3:
            line = demo.wait_for_line("pod default/hello-", timeout=START_TIMEOUT)
            match = POD_LINE.match(line)
            assert match, (line, demo.stderr())
            pods[match.group(1)] = match.group(2)
        demo.wait_for_line("export KUBECONFIG=")

        assert len(set(pods.values())) == 3  # one IP each
        for name, url in pods.items():
            code, body = get(url)
            assert code == 200, body
            assert f"pod {name} at " in body and "version 1.0" in body, body
            assert "API token set" in body, body  # the Secret reached the environment
            assert get(url + "version") == (200, "1.0\n")
            assert get(url + "livez") == (200, "ok\n")  # the liveness probe's own check
            code, config = get(url + "config")
            assert code == 200 and config.startswith("Hello from a ConfigMap!"), config

        assert demo.stop(signal.SIGTERM) == 0, demo.stderr()
        assert "Traceback" not in demo.stderr(), demo.stderr()
        # The examples walk into none of the pitfalls the API server warns of.
        assert "server warning" not in demo.stderr(), demo.stderr()
        # Stopping `up` stops the pods' processes: nothing answers on their IPs any more.
        for url in pods.values():
            wait_for(lambda url=url: refused(url), timeout=STOP_TIMEOUT, message=f"{url} gone")
    finally:
        demo.close()
