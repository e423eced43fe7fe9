"""Time a rolling update on simulated nodes: `python benchmarks/rollout.py [--replicas 100]`.

A whole control plane (`kubeling.cluster.Cluster`: API server, controllers, scheduler) with
simulated nodes, all on one event loop as `kubeling up --fake-nodes N` runs it, on a temporary
SQLite data dir. For each run it creates a Deployment, waits until it is rolled out, changes
the image and times the rollout until `kubectl rollout status` would say "successfully rolled
out" (observedGeneration current, every replica updated and available, no old pods left).

Printed per run: the time to the first rollout, the time of the image rollout, the largest
number of pods seen at once and the smallest number available (from a pod watch), against
the bounds `replicas + maxSurge` and `replicas - maxUnavailable`; then medians.

Not a test (pytest does not collect it); numbers go into docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kubeling.api.kinds import REGISTRY
from kubeling.apiserver.server import ServerConfig
from kubeling.client.rest import Client
from kubeling.cluster import Cluster

DEPLOYMENTS = REGISTRY.by_path("apps", "v1", "deployments")
PODS = REGISTRY.by_path("", "v1", "pods")
NAMESPACES = REGISTRY.by_path("", "v1", "namespaces")
assert DEPLOYMENTS is not None and PODS is not None and NAMESPACES is not None


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]},
            },
        },
    }


def _rolled_out(d: dict[str, Any]) -> bool:
    status = d.get("status") or {}
    want = d["spec"]["replicas"]
    return bool(
        status.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
    )


async def _wait_rolled_out(client: Client, ns: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _rolled_out(await client.get(DEPLOYMENTS, name, ns)):
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{ns}/{name} did not roll out in {timeout}s")


class PodCensus:
    """Live pods (no deletionTimestamp) and Ready ones, from a watch: the rollout's bounds."""

    def __init__(self) -> None:
        self.live: dict[str, bool] = {}
        self.most = 0
        self.fewest_ready: int | None = None

    def see(self, event_type: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if event_type == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self.live.pop(name, None)
        else:
            conditions = (pod.get("status") or {}).get("conditions") or []
            self.live[name] = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
            )
        self.most = max(self.most, len(self.live))

    def track_ready(self) -> None:
        ready = sum(self.live.values())
        self.fewest_ready = ready if self.fewest_ready is None else min(self.fewest_ready, ready)


async def _run(client: Client, replicas: int, index: int) -> dict[str, float]:
    ns = f"bench-{index}"
    await client.create(NAMESPACES, {"metadata": {"name": ns}})
    start = time.perf_counter()
    await client.create(DEPLOYMENTS, _deployment("web", replicas), ns)
    await _wait_rolled_out(client, ns, "web", 300)
    first = time.perf_counter() - start
    census = PodCensus()
    listed = await client.list(PODS, ns)
    for pod in listed.items:
        census.see("ADDED", pod)
    tracking = False

    async def watch() -> None:
        async for event in client.watch(PODS, ns, resource_version=listed.resource_version):
            census.see(event.type, event.object)
            if tracking:
                census.track_ready()

    watcher = asyncio.create_task(watch())
    tracking = True
    start = time.perf_counter()
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}
    await client.patch(DEPLOYMENTS, "web", patch, ns)
    await _wait_rolled_out(client, ns, "web", 300)
    rollout = time.perf_counter() - start
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    surge = -(-replicas * 25 // 100)
    unavailable = replicas * 25 // 100
    print(
        f"run {index}: first rollout {first:.2f} s, image rollout {rollout:.2f} s; "
        f"most pods {census.most} (bound {replicas + surge}), "
        f"fewest ready {census.fewest_ready} (bound {replicas - unavailable})",
        flush=True,
    )
    return {"first": first, "rollout": rollout}


async def main(replicas: int, nodes: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(ServerConfig(data_dir=Path(tmp), port=0), fake_nodes=nodes)
        await cluster.start()
        client = Client.from_kubeconfig(str(cluster.server.kubeconfig_path))
        try:
            results = [await _run(client, replicas, i) for i in range(runs)]
        finally:
            await client.close()
            await cluster.stop()
    for key in ("first", "rollout"):
        print(f"median {key}: {statistics.median(r[key] for r in results):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=10, help="simulated nodes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as kubeling up does")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(args.replicas, args.nodes, args.runs))
