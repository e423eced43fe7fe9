"""Scheduler decision core benchmark: filter + score, pure functions, no API server.

Three measurements, each repeated and reported as medians:

1. one Pod against 1 000 nodes that already hold 10 Pods each: every node examined
   (`percentage=None`) and kube-scheduler's adaptive sample (`percentage=0`, 420 nodes);
2. 10 000 Pods (100 ReplicaSets of 100) placed one by one on 100 nodes, each decision
   followed by "assume" (`NodeInfo.add_pod`), parsing every Pod once (`PodInfo.of`) as the
   scheduling loop will;
3. the shape of kube-scheduler's `SchedulingBasic/5000Nodes_10000Pods` perf test (5 000
   nodes, adaptive sample of 500), on fewer Pods (`--basic-pods`) to keep the run short.

The yardstick is kube-scheduler's perf-test threshold of 680 pods/s for SchedulingBasic
(`test/integration/scheduler_perf/misc/performance-config.yaml`); it measures the whole
scheduler with binding, this measures only the decision.

    python benchmarks/scheduler.py [--runs 5] [--basic-pods 2000]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--basic-pods", type=int, default=2000)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {args.runs} runs each")

    for label, percentage in (("all 1000 nodes", None), ("adaptive sample, 420 nodes", 0)):
        median = bench_one_pod(args.runs, percentage)
        print(f"1 pod, 1000 nodes, {label:<28} median {median * 1000:7.2f} ms/decision")

    _rate_line(
        "10 000 pods onto 100 nodes, one by one",
        10_000,
        [place_pods(100, 10_000, 100, None) for _ in range(args.runs)],
    )
    _rate_line(
        f"{args.basic_pods} pods onto 5000 nodes (adaptive 500)",
        args.basic_pods,
        [place_pods(5000, args.basic_pods, 100, 0) for _ in range(max(args.runs // 2, 1))],
    )


if __name__ == "__main__":
    main()
