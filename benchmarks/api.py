"""API server benchmark: creates, gets, lists and watch fan-out over HTTPS with keep-alive.

Starts a real `kubeling server` as a child process on a temporary data dir (SQLite store),
drives it with an aiohttp client holding keep-alive connections, and prints per-phase medians,
p99 and requests/s. The watch phase opens many watches on one namespace, makes a burst of
updates and measures the time until every watcher has seen every event.

    python benchmarks/api.py [--creates 2000] [--concurrency 32] [--watchers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import aiohttp
import orjson


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _report(name: str, latencies: list[float], elapsed: float) -> None:
    median = statistics.median(latencies) * 1000
    p99 = _percentile(latencies, 0.99) * 1000
    rate = len(latencies) / elapsed
    print(
        f"{name:<10} n={len(latencies):>6}  median {median:7.2f} ms  p99 {p99:7.2f} ms"
        f"  {rate:9.0f} req/s"
    )


async def _run_many(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float]:
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await one(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def _configmap(name: str, size: int = 2048) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"bench": "yes"}},
            "data": {"payload": "x" * size},
        }
    )


def _phase(
    url: str, token: str, ca: str, phase: str, indexes: list[int], concurrency: int, creates: int
) -> tuple[list[float], float]:
    """One client process's share of a phase; returns its latencies and elapsed time."""
    return asyncio.run(_phase_async(url, token, ca, phase, indexes, concurrency, creates))


async def _phase_async(
    url: str, token: str, ca: str, phase: str, indexes: list[int], concurrency: int, creates: int
) -> tuple[list[float], float]:
    context = ssl.create_default_context(cafile=ca)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    base = f"{url}/api/v1/namespaces/default/configmaps"
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(position: int) -> None:
            i = indexes[position]
            if phase == "create":
                async with session.post(base, data=_configmap(f"cm-{i}")) as r:
                    if r.status != 201:
                        raise RuntimeError(f"create: {r.status} {await r.text()}")
                    await r.read()
            elif phase == "get":
                async with session.get(f"{base}/cm-{i % creates}") as r:
                    if r.status != 200:
                        raise RuntimeError(f"get: {r.status}")
                    await r.read()
            else:
                async with session.get(f"{base}?labelSelector=bench%3Dyes") as r:
                    body = orjson.loads(await r.read())
                    if len(body["items"]) < creates:
                        raise RuntimeError("list came back short")

        return await _run_many(len(indexes), concurrency, one)


def _run_phase(
    pool: ProcessPoolExecutor,
    url: str,
    token: str,
    ca: Path,
    phase: str,
    count: int,
    args: argparse.Namespace,
) -> None:
    """Split a phase over the client processes (one Python client cannot saturate the server)."""
    shares = [list(range(start, count, args.clients)) for start in range(args.clients)]
    per_client = max(1, (args.concurrency if phase != "list" else 4) // args.clients)
    started = time.perf_counter()
    futures = [
        pool.submit(_phase, url, token, str(ca), phase, share, per_client, args.creates)
        for share in shares
        if share
    ]
    latencies = [lat for future in futures for lat in future.result()[0]]
    name = phase if phase != "list" else f"list({args.creates})"
    _report(name, latencies, time.perf_counter() - started)


async def _bench_watch(url: str, token: str, ca: Path, args: argparse.Namespace) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    await _watch_fanout(url, headers, context, args)


async def _watch_fanout(
    url: str, headers: dict[str, str], context: ssl.SSLContext, args: argparse.Namespace
) -> None:
    base = f"{url}/api/v1/namespaces/default/configmaps"
    connector = aiohttp.TCPConnector(ssl=context, limit=0)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        async with session.post(base, data=_configmap("watched", 512)) as r:
            rv = orjson.loads(await r.read())["metadata"]["resourceVersion"]
        done = asyncio.Event()
        finished: list[float] = []
        ready = 0
        all_ready = asyncio.Event()

        async def watcher() -> None:
            nonlocal ready
            params = {
                "watch": "true",
                "resourceVersion": rv,
                "fieldSelector": "metadata.name=watched",
            }
            async with session.get(base, params=params) as response:
                ready += 1
                if ready == args.watchers:
                    all_ready.set()
                seen = 0
                async for _line in response.content:
                    seen += 1
                    if seen == args.events:
                        finished.append(time.perf_counter())
                        if len(finished) == args.watchers:
                            done.set()
                        return

        tasks = [asyncio.create_task(watcher()) for _ in range(args.watchers)]
        await asyncio.wait_for(all_ready.wait(), 120)
        started = time.perf_counter()
        for i in range(args.events):
            patch = orjson.dumps({"data": {"n": str(i)}})
            async with session.patch(
                f"{base}/watched",
                data=patch,
                headers={"Content-Type": "application/merge-patch+json"},
            ) as r:
                await r.read()
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - started
        deliveries = args.watchers * args.events
        print(
            f"watch      {args.watchers} watchers x {args.events} events: all delivered in "
            f"{elapsed:.2f} s  ({deliveries / elapsed:,.0f} deliveries/s)"
        )
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--lists", type=int, default=40)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--skip-store", action="store_true", help="skip the store-only phase")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="kubeling-bench-"))
    server = subprocess.Popen(
        [sys.executable, "-m", "kubeling", "server", "--data-dir", str(data_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = ""
        while not url:
            line = server.stdout.readline()
            if not line:
                raise SystemExit("server exited before becoming ready")
            match = re.search(r"ready at (\S+)", line)
            url = match.group(1) if match else ""
        token = (data_dir / "admin-token").read_text().strip()
        ca = data_dir / "tls" / "ca.crt"
        print(f"kubeling server {url}, SQLite store in {data_dir}, {args.clients} client processes")
        with ProcessPoolExecutor(args.clients) as pool:
            _run_phase(pool, url, token, ca, "create", args.creates, args)
            _run_phase(pool, url, token, ca, "get", args.creates * 2, args)
            _run_phase(pool, url, token, ca, "list", args.lists, args)
        asyncio.run(_bench_watch(url, token, ca, args))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    if not args.skip_store:
        # The store alone, for comparison with what reaches it through HTTPS and validation.
        print("SQLite store alone (benchmarks/store.py --runs 1):", flush=True)
        store_bench = Path(__file__).with_name("store.py")
        subprocess.run([sys.executable, str(store_bench), "--runs", "1"], check=True)


if __name__ == "__main__":
    main()
