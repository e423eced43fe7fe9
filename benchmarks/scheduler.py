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

End to end: one process runs a whole `kubeling.cluster.Cluster` (API server over HTTPS on a
temporary SQLite store, controller manager, scheduler) with `--nodes` simulated nodes
(`FakeNodes`, as `kubeling up --fake-nodes`), and `--concurrency` clients create `--pods`
Pods while it runs. Once a second the scheduler's own counters and informer cache are
sampled; reported are the median of the per-second binding rates over the binding window
(scheduler_perf's throughput measure), and the times until all Pods are bound and Running.

The yardstick is kube-scheduler's perf-test threshold of 680 pods/s for SchedulingBasic
(`test/integration/scheduler_perf/misc/performance-config.yaml`). Note that end to end here,
unlike there, the API server, its store, the controllers, every simulated node and the
client creating Pods share the scheduler's process and interpreter lock.

    python benchmarks/scheduler.py [--runs 5] [--basic-pods 2000] [--nodes 1000 --pods 10000]
    python benchmarks/scheduler.py --skip-core --nodes 100 --pods 1000   # a quick run
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
import statistics
import tempfile
import time
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


# -- end to end: API server + scheduler + simulated nodes, in one process --------------------


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


async def bench_cluster(nodes: int, pods: int, concurrency: int, timeout: float) -> None:
    """Start a whole cluster with `nodes` simulated nodes, create `pods` Pods, and time them.

    The scheduler's own informer is the observer (no extra watch load): once a second the
    sampler reads how many bindings succeeded and how many Pods its cache shows Running.
    """
    from kubeling.api.kinds import REGISTRY
    from kubeling.apiserver.server import ServerConfig
    from kubeling.client.rest import Client
    from kubeling.cluster import Cluster

    namespaces = REGISTRY.by_path("", "v1", "namespaces")
    assert namespaces is not None
    data_dir = Path(tempfile.mkdtemp(prefix="kubeling-bench-sched-"))
    cluster = Cluster(ServerConfig(data_dir=data_dir, port=0), fake_nodes=nodes)
    started = time.perf_counter()
    await cluster.start()
    scheduler = cluster.scheduler
    assert scheduler is not None
    print(f"cluster with {nodes} simulated nodes up in {time.perf_counter() - started:.1f} s")
    client = Client.from_kubeconfig(
        str(cluster.server.kubeconfig_path), user_agent="bench", max_connections=concurrency
    )
    try:
        await client.create(namespaces, {"metadata": {"name": "bench"}})
        base = scheduler.scheduled
        samples: list[tuple[float, int, int]] = []  # (seconds since start, bound, running)

        def running() -> int:
            return sum(
                1
                for pod in scheduler.pods.cache.list("bench")
                if (pod.get("status") or {}).get("phase") == "Running"
            )

        t0 = time.perf_counter()
        creating = asyncio.ensure_future(_create_pods(client, pods, concurrency, "bench"))
        created_at = None
        while True:
            await asyncio.sleep(1.0)
            now = time.perf_counter() - t0
            if created_at is None and creating.done():
                creating.result()
                created_at = now
            samples.append((now, scheduler.scheduled - base, running()))
            if samples[-1][2] >= pods or now > timeout:
                break
        await creating
    finally:
        await client.close()
        await cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    _report_cluster(nodes, pods, samples, created_at)


def _report_cluster(
    nodes: int, pods: int, samples: list[tuple[float, int, int]], created_at: float | None
) -> None:
    # Per-second binding rates over the binding window: from the first sample with a binding
    # to the one that saw the last, as scheduler_perf samples its throughput.
    rates = []
    previous_t, previous_bound = 0.0, 0
    for t, bound, _ in samples:
        if bound and previous_bound < pods:
            rates.append((bound - previous_bound) / (t - previous_t))
        previous_t, previous_bound = t, bound
    all_bound = next((t for t, bound, _ in samples if bound >= pods), None)
    all_running = next((t for t, _, running in samples if running >= pods), None)
    median = statistics.median(rates) if rates else 0.0
    verdict = "meets" if median >= TARGET_PODS_PER_SECOND else "below"
    print(f"{pods} pods onto {nodes} simulated nodes, API server + scheduler in one process:")
    print(f"  all pods created after {created_at or float('nan'):7.1f} s")
    print(
        f"  pods bound per second, median over {len(rates)} s: {median:6.0f} "
        f"({verdict} {TARGET_PODS_PER_SECOND}); min {min(rates, default=0):.0f}, "
        f"max {max(rates, default=0):.0f}"
    )
    if all_bound is None or all_running is None:
        print(f"  NOT DONE: {samples[-1][1]} bound, {samples[-1][2]} Running at the timeout")
        return
    print(f"  all bound after   {all_bound:7.1f} s ({pods / all_bound:.0f} pods/s on average)")
    print(f"  all Running after {all_running:7.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--basic-pods", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes (end to end)")
    parser.add_argument("--pods", type=int, default=10_000, help="pods created (end to end)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent pod creates")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--skip-core", action="store_true", help="only the end-to-end run")
    parser.add_argument("--skip-cluster", action="store_true", help="only the core runs")
    args = parser.parse_args()
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
        print("-- end to end")
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        logging.basicConfig(level=logging.WARNING)
        asyncio.run(bench_cluster(args.nodes, args.pods, args.concurrency, args.timeout))


if __name__ == "__main__":
    main()
