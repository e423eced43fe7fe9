"""Scheduler benchmark: the decision core alone, then a whole cluster end to end.

Decision core (pure functions, no API server), each repeated and reported as medians:

1. one Pod against 1 000 nodes that already hold 10 Pods each: every node examined
   (`percentage=None`) and kube-scheduler's adaptive sample (`percentage=0`, 420 nodes);
2. 10 000 Pods (100 ReplicaSets of 100) placed one by one on 100 nodes, each decision
   followed by "assume" (`NodeInfo.add_pod`), parsing every Pod once (`PodInfo.of`) as the
   scheduling loop does;
3. the same onto `--nodes` nodes (default 1 000) with the adaptive sample, as the loop runs;
4. the shape of kube-scheduler's `SchedulingBasic/5000Nodes_10000Pods` perf test (5 000
   nodes, adaptive sample of 500), on fewer Pods (`--basic-pods`) to keep the run short.

Cluster runs, laid out as a deployment is: the API server (HTTPS, SQLite store) runs alone in
a child process, as `benchmarks/api.py` starts `kubeling server`; this process runs the
scheduler and `--nodes` simulated nodes (`FakeNodes`, one shared Pod watch), each a client
of it over HTTPS. No controller manager runs (scheduler_perf runs none either).
`--one-process` puts the API server in this process too (the layout of the first version of
this benchmark). Two modes, each `--cluster-runs` times:

- **preload**, scheduler_perf's SchedulingThroughput: `--pods` Pods are created (and left
  Pending) with no scheduler running; the measured window starts when the scheduler starts.
- **e2e**: the scheduler runs while `--concurrency` clients create the Pods.

The scheduler's own counters and informer cache are sampled (every 0.1 s; Running once a
second). Reported: the median of the per-second binding rates over the binding window (first
binding to last, as scheduler_perf samples its throughput), the overall average over that
window, and the times until all Pods are bound and Running.

The yardstick is kube-scheduler's perf-test threshold of 680 pods/s for SchedulingBasic
(`test/integration/scheduler_perf/misc/performance-config.yaml`), measured on far bigger
machines; here the API server, the scheduler and 1 000 simulated nodes share two cores.

    python benchmarks/scheduler.py [--runs 5] [--basic-pods 2000] [--nodes 1000 --pods 10000]
    python benchmarks/scheduler.py --skip-core --nodes 100 --pods 1000   # a quick run
    python benchmarks/scheduler.py --skip-core --mode preload --cluster-runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.scheduler import NodeInfo, PodInfo, schedule_pod

TARGET_PODS_PER_SECOND = 680


def _node(index: int, cpu: str = "32", memory: str = "128Gi") -> dict[str, Any]:
    name = f"node-{index:05d}"
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": {"kubernetes.io/hostname": name, "zone": f"zone-{index % 3}"},
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _pod(name: str, owner: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "bench",
            "uid": f"uid-{name}",
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": owner, "uid": f"uid-{owner}", "controller": True}
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ],
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
            ],
        },
    }


def _cluster(nodes: int, pods_per_node: int) -> list[NodeInfo]:
    infos = [NodeInfo(_node(i)) for i in range(nodes)]
    for i, info in enumerate(infos):
        for j in range(pods_per_node):
            info.add_pod(_pod(f"existing-{i}-{j}", f"rs-{j}"))
    return infos


def bench_one_pod(runs: int, percentage: int | None) -> float:
    """Median seconds to decide one Pod against 1 000 nodes."""
    infos = _cluster(1000, 10)
    rng = random.Random(0)
    pod = _pod("incoming", "rs-3")
    times = []
    for _ in range(max(runs * 10, 20)):
        started = time.perf_counter()
        decision = schedule_pod(PodInfo.of(pod), infos, rng, percentage=percentage)
        times.append(time.perf_counter() - started)
        assert decision.node_name is not None
    return statistics.median(times)


def place_pods(nodes: int, pods: int, replicasets: int, percentage: int | None) -> float:
    """Seconds to place `pods` one by one, assuming each before deciding the next."""
    infos = [NodeInfo(_node(i)) for i in range(nodes)]
    by_name = {info.name: info for info in infos}
    rng = random.Random(1)
    start = 0
    started = time.perf_counter()
    for index in range(pods):
        info = PodInfo.of(_pod(f"pod-{index}", f"rs-{index % replicasets}"))
        decision = schedule_pod(info, infos, rng, start=start, percentage=percentage)
        assert decision.node_name is not None, decision.message
        by_name[decision.node_name].add_pod(info)
        start = (start + decision.examined) % len(infos)
    elapsed = time.perf_counter() - started
    counts = sorted(info.pod_count for info in infos)
    assert counts[-1] - counts[0] <= 3, f"uneven placement: {counts[0]}..{counts[-1]}"
    return elapsed


def _rate_line(name: str, pods: int, elapsed: list[float]) -> None:
    median = statistics.median(elapsed)
    rate = pods / median
    verdict = "meets" if rate >= TARGET_PODS_PER_SECOND else "below"
    print(
        f"{name:<44} median {median:7.2f} s  {rate:8.0f} pods/s  "
        f"({median / pods * 1e6:6.0f} µs/pod; {verdict} {TARGET_PODS_PER_SECOND} pods/s)"
    )


# -- end to end: API server in its own process; scheduler + simulated nodes in this one ------


def _bench_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ]
        },
    }


async def _create_pods(client: Any, pods: int, concurrency: int, namespace: str) -> None:
    from kubeling.api.kinds import REGISTRY

    info = REGISTRY.by_path("", "v1", "pods")
    assert info is not None
    names = iter(range(pods))

    async def worker() -> None:
        for index in names:
            await client.create(info, _bench_pod(f"pod-{index:05d}"), namespace)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _serve_api(data_dir: Path) -> None:
    """The child process of the two-process layout: the API server alone (no controllers, no
    scheduler: scheduler_perf runs none either), until SIGTERM."""
    from kubeling.apiserver.server import APIServer, ServerConfig

    server = APIServer(ServerConfig(data_dir=data_dir, port=0))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await server.start()
    print(f"API server ready at {server.url} (pid {os.getpid()})", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def _api_server(data_dir: Path, one_process: bool) -> AsyncIterator[Path]:
    """An API server on `data_dir`; yields its kubeconfig. Two-process layout: a child
    process (as `benchmarks/api.py` starts `kubeling server`); one-process: in this one."""
    if one_process:
        from kubeling.apiserver.server import APIServer, ServerConfig

        server = APIServer(ServerConfig(data_dir=data_dir, port=0))
        await server.start()
        try:
            yield server.kubeconfig_path
        finally:
            await server.stop()
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-api", str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        if "ready at" not in line:
            raise SystemExit(f"API server exited before becoming ready: {line!r}")
        print(f"  {line.strip()}; scheduler and simulated nodes in pid {os.getpid()}")
        yield data_dir / "kubeconfig.yaml"
    finally:
        child.terminate()
        await asyncio.to_thread(child.wait, 30)


@dataclass
class _Run:
    """What one end-to-end run saw, in seconds since the scheduler started (preload) or the
    first create (end to end)."""

    mode: str
    pods: int
    samples: list[tuple[float, int]] = field(default_factory=list)  # (t, bound), every 0.1 s
    created_at: float | None = None
    create_seconds: float | None = None
    all_bound: float | None = None
    all_running: float | None = None

    def rates(self) -> list[float]:
        """Pods bound in each whole second of the binding window (from the last sample before
        the first binding to the last binding); a window under a second gives its average."""
        first = next((i for i, (_, bound) in enumerate(self.samples) if bound), None)
        if first is None:
            return []
        end = self.all_bound if self.all_bound is not None else self.samples[-1][0]
        t = self.samples[first - 1][0] if first else 0.0
        rates, previous = [], 0
        for at, bound in self.samples[first:]:
            if at >= t + 1.0 and at <= end + 0.05:
                rates.append((bound - previous) / (at - t))
                t, previous = at, bound
        return rates or [self.average()]

    def average(self) -> float:
        """Pods over the binding window, first binding seen to the last."""
        first = next((t for t, bound in self.samples if bound), None)
        last = self.all_bound
        if first is None or last is None or last <= first:
            return 0.0
        return self.pods / (last - first + 0.1)  # the first binding happened up to 0.1 s earlier


async def bench_cluster(
    nodes: int, pods: int, concurrency: int, timeout: float, mode: str, one_process: bool
) -> _Run:
    """One run; `mode` "preload" (scheduler_perf: Pods exist before the scheduler starts) or
    "e2e" (the scheduler runs while `concurrency` clients create the Pods).

    The scheduler's own informer is the observer (no extra watch load): every 0.1 s the
    sampler reads how many bindings succeeded, once a second how many Pods its cache shows
    Running.
    """
    from kubeling.agent import FakeNodes
    from kubeling.api.kinds import REGISTRY
    from kubeling.client.rest import Client
    from kubeling.scheduler.loop import Scheduler

    namespaces = REGISTRY.by_path("", "v1", "namespaces")
    assert namespaces is not None
    data_dir = Path(tempfile.mkdtemp(prefix="kubeling-bench-sched-"))
    run = _Run(mode, pods)
    try:
        async with _api_server(data_dir, one_process) as kubeconfig:
            started = time.perf_counter()
            client = Client.from_kubeconfig(
                str(kubeconfig), user_agent="bench", max_connections=concurrency
            )
            components = Client.from_kubeconfig(str(kubeconfig), user_agent="bench-components")
            fake_nodes = FakeNodes(components, nodes)
            scheduler = Scheduler(components)
            try:
                await client.create(namespaces, {"metadata": {"name": "bench"}})
                await fake_nodes.start()
                await fake_nodes.wait_synced(60)
                print(f"  {nodes} simulated nodes up in {time.perf_counter() - started:.1f} s")
                if mode == "preload":
                    t = time.perf_counter()
                    await _create_pods(client, pods, concurrency, "bench")
                    run.create_seconds = time.perf_counter() - t
                    print(f"  {pods} pods created (Pending) in {run.create_seconds:.1f} s")
                await _observe(run, client, scheduler, concurrency, timeout)
            finally:
                await scheduler.stop()
                await fake_nodes.stop()
                await client.close()
                await components.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return run


async def _observe(
    run: _Run, client: Any, scheduler: Any, concurrency: int, timeout: float
) -> None:
    def running() -> int:
        return sum(
            1
            for pod in scheduler.pods.cache.list("bench")
            if (pod.get("status") or {}).get("phase") == "Running"
        )

    t0 = time.perf_counter()
    scheduler.start()
    creating = None
    if run.mode == "e2e":
        creating = asyncio.ensure_future(_create_pods(client, run.pods, concurrency, "bench"))
    tick = 0
    while True:
        await asyncio.sleep(0.1)
        tick += 1
        now = time.perf_counter() - t0
        if creating is not None and run.created_at is None and creating.done():
            creating.result()
            run.created_at = now
        run.samples.append((now, scheduler.scheduled))
        if run.all_bound is None and scheduler.scheduled >= run.pods:
            run.all_bound = now
        if tick % 10 == 0 and run.all_running is None and running() >= run.pods:
            run.all_running = now
        if run.all_running is not None or now > timeout:
            break
    if creating is not None:
        await creating


def _report_cluster(nodes: int, runs: list[_Run], one_process: bool) -> None:
    layout = "one process" if one_process else "API server in its own process"
    mode = runs[0].mode
    what = {
        "preload": "Pods created first, then the scheduler started (scheduler_perf's measure)",
        "e2e": "Pods created while the scheduler runs (end to end)",
    }[mode]
    pods = runs[0].pods
    print(f"{pods} pods onto {nodes} simulated nodes, {layout}; {what}; {len(runs)} run(s):")
    medians = [statistics.median(run.rates() or [0.0]) for run in runs]
    averages = [run.average() for run in runs]

    def each(values: list[float | None], fmt: str) -> str:
        return " / ".join("-" if v is None else format(v, fmt) for v in values)

    median = statistics.median(medians)
    verdict = "meets" if median >= TARGET_PODS_PER_SECOND else "below"
    print(
        f"  pods bound/s, median of per-second rates: {median:5.0f} ({verdict} "
        f"{TARGET_PODS_PER_SECOND})   runs: {each(list(medians), '.0f')}"
    )
    print(
        f"  pods bound/s, average over the window:    {statistics.median(averages):5.0f}"
        f"   runs: {each(list(averages), '.0f')}"
    )
    if mode == "preload":
        print(
            f"  pods created (before the window) in s:   runs: "
            f"{each([r.create_seconds for r in runs], '.1f')}"
        )
    else:
        print(
            f"  all pods created after s:                runs: "
            f"{each([r.created_at for r in runs], '.1f')}"
        )
    print(
        f"  all pods bound after s:                  runs: "
        f"{each([r.all_bound for r in runs], '.1f')}"
    )
    print(
        f"  all pods Running after s:                runs: "
        f"{each([r.all_running for r in runs], '.1f')}"
    )
    for run in runs:
        if run.all_running is None:
            print(f"  NOT DONE: {run.samples[-1][1]} bound at the timeout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--basic-pods", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes (end to end)")
    parser.add_argument("--pods", type=int, default=10_000, help="pods created (end to end)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent pod creates")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--mode",
        choices=("both", "preload", "e2e"),
        default="both",
        help="preload: Pods exist before the scheduler starts (scheduler_perf); e2e: created"
        " while it runs",
    )
    parser.add_argument("--cluster-runs", type=int, default=1, help="runs of each cluster mode")
    parser.add_argument(
        "--one-process", action="store_true", help="run the API server in this process too"
    )
    parser.add_argument("--skip-core", action="store_true", help="only the cluster runs")
    parser.add_argument("--skip-cluster", action="store_true", help="only the core runs")
    parser.add_argument("--serve-api", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    logging.basicConfig(level=logging.WARNING)
    if args.serve_api is not None:
        asyncio.run(_serve_api(args.serve_api))
        return
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")

    if not args.skip_core:
        print(f"-- decision core only, {args.runs} runs each")
        for label, percentage in (("all 1000 nodes", None), ("adaptive sample, 420 nodes", 0)):
            median = bench_one_pod(args.runs, percentage)
            print(f"1 pod, 1000 nodes, {label:<28} median {median * 1000:7.2f} ms/decision")

        _rate_line(
            "10 000 pods onto 100 nodes, one by one",
            10_000,
            [place_pods(100, 10_000, 100, None) for _ in range(args.runs)],
        )
        _rate_line(
            f"{args.pods} pods onto {args.nodes} nodes (adaptive)",
            args.pods,
            [place_pods(args.nodes, args.pods, 100, 0) for _ in range(max(args.runs // 2, 1))],
        )
        _rate_line(
            f"{args.basic_pods} pods onto 5000 nodes (adaptive 500)",
            args.basic_pods,
            [place_pods(5000, args.basic_pods, 100, 0) for _ in range(max(args.runs // 2, 1))],
        )
    if not args.skip_cluster:
        modes = ("preload", "e2e") if args.mode == "both" else (args.mode,)
        for mode in modes:
            print(f"-- cluster, {mode}")
            runs = [
                asyncio.run(
                    bench_cluster(
                        args.nodes,
                        args.pods,
                        args.concurrency,
                        args.timeout,
                        mode,
                        args.one_process,
                    )
                )
                for _ in range(args.cluster_runs)
            ]
            _report_cluster(args.nodes, runs, args.one_process)


if __name__ == "__main__":
    main()
