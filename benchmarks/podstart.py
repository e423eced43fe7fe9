"""Pod start latency on one real node: `python benchmarks/podstart.py [--pods 100]`.

Runs `kubeling up --nodes 1` as a child process (as a user runs it) on a temporary data dir
and a free port, and measures:

* **Idle RSS** of the `kubeling up` process (API server, controllers, scheduler and one node
  agent, all in one process) once it is ready and has been idle for `--settle` seconds, read
  from `/proc/<pid>/status` (VmRSS). Goal: at most 80 MB.
* **Pod start latency**, Kubernetes' SLI: "from pod creation to when all its containers are
  reported as started and observed via watch" (SLO: p99 at most 5 s; this project's goal:
  p99 at most 0.5 s). `--pods` Pods of one container running a trivial program (`sleep 3600`)
  are created through the API with `--concurrency` requests in flight (as a burst, or paced at
  `--rate` pods a second, as Kubernetes' density tests create them); each pod's latency
  runs from just before its create request is sent to the first event of a pod watch (opened
  before the first create) whose `containerStatuses` all say `started` and `running`.
  Printed: p50, p90, p99 and max, and how long the whole batch took.

Then the RSS with every pod running, and the time `kubeling up` takes to stop (SIGTERM) with
all those pods' processes.

Not a test (pytest does not collect it); numbers go into docs/performance.md ("Pod start").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.client.rest import Client


def _pods() -> ResourceInfo:
    info = REGISTRY.by_path("", "v1", "pods")
    if info is None:
        raise RuntimeError("pods are not registered")
    return info


PODS = _pods()
SLO_P99 = 5.0  # seconds, Kubernetes' pod startup SLO
GOAL_P99 = 0.5  # seconds
GOAL_RSS_MB = 80.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q % of values at or below."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def pod(name: str, program: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "podstart"}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": "trivial", "command": program}],
        },
    }


def started(obj: dict[str, Any]) -> bool:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(
        s.get("started") and "running" in (s.get("state") or {}) for s in statuses
    )


async def measure(
    kubeconfig: Path, count: int, concurrency: int, rate: float
) -> tuple[list[float], float]:
    async with Client.from_kubeconfig(str(kubeconfig), user_agent="podstart-bench") as client:
        listed = await client.list(PODS, "default")
        created: dict[str, float] = {}
        latencies: dict[str, float] = {}
        done = asyncio.Event()

        async def observe() -> None:
            watch = client.watch(PODS, "default", resource_version=listed.resource_version)
            async for event in watch:
                name = event.object["metadata"]["name"]
                if name in created and name not in latencies and started(event.object):
                    latencies[name] = time.perf_counter() - created[name]
                    if len(latencies) == count:
                        done.set()
                        return

        watcher = asyncio.create_task(observe())
        await asyncio.sleep(0.2)  # the watch is open before the first create
        slots = asyncio.Semaphore(concurrency)
        program = [shutil.which("sleep") or "sleep", "3600"]

        async def create(index: int) -> None:
            name = f"bench-{index:04d}"
            if rate:
                await asyncio.sleep(max(0.0, began + index / rate - time.perf_counter()))
            async with slots:
                created[name] = time.perf_counter()
                await client.create(PODS, pod(name, program), "default")

        began = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(count)))
        await asyncio.wait_for(done.wait(), timeout=300)
        batch = time.perf_counter() - began
        watcher.cancel()
        return list(latencies.values()), batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10, help="creates in flight")
    parser.add_argument("--rate", type=float, default=0, help="pods/s (default: a burst)")
    parser.add_argument("--settle", type=float, default=10.0, help="idle seconds before RSS")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="kubeling-podstart-"))
    cmd = [sys.executable, "-m", "kubeling", "up", "--data-dir", str(data_dir)]
    cmd += ["--port", str(free_port()), "--nodes", "1"]
    up = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if re.match(r"export KUBECONFIG=", line):
                break
        else:
            raise SystemExit(f"kubeling up exited with {up.wait()}")
        time.sleep(args.settle)
        idle = rss_mb(up.pid)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        print(f"idle RSS of `kubeling up` (1 node): {idle:.1f} MB (goal <= {GOAL_RSS_MB:.0f} MB)")

        latencies, batch = asyncio.run(
            measure(data_dir / "kubeconfig.yaml", args.pods, args.concurrency, args.rate)
        )
        p50, p90, p99 = (percentile(latencies, q) for q in (50, 90, 99))
        print(
            f"{args.pods} pods, {args.concurrency} creates in flight, "
            + (f"paced at {args.rate:g} pods/s" if args.rate else "as a burst")
            + f": all started in {batch:.2f} s ({args.pods / batch:.0f} pods/s)"
        )
        print(
            f"create -> started (watch): p50 {p50 * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms,"
            f" p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms,"
            f" mean {statistics.mean(latencies) * 1000:.0f} ms"
        )
        print(
            f"p99 vs Kubernetes SLO {SLO_P99:.0f} s: {'met' if p99 <= SLO_P99 else 'MISSED'};"
            f" vs goal {GOAL_P99} s: {'met' if p99 <= GOAL_P99 else 'missed'}"
        )
        print(f"RSS with {args.pods} pods running: {rss_mb(up.pid):.1f} MB")
        began = time.perf_counter()
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=120)
        print(
            f"`kubeling up` stopped with {args.pods} pods in {time.perf_counter() - began:.2f} s"
            f" (exit {code})"
        )
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
