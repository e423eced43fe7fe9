"""Measure what the client layer costs: `python benchmarks/client.py [--uvloop]`.

Everything runs on one event loop, as in the embedded cluster (`kubeling up`): an API server
on a temporary data dir and the client talking to it over HTTPS on loopback. Printed medians:

* GET / POST through the client vs. the same call on the server's object registry directly
  (the best an in-process shortcut could do): the difference is the transport's overhead;
* the same over plain HTTP, to show the TLS share;
* informer latency: from `create()` returning to the informer's `on_add` being called.

Not a test (pytest does not collect it); numbers go into the client layer's report.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubeling.api.kinds import REGISTRY
from kubeling.apiserver.registry import WriteOptions
from kubeling.apiserver.server import APIServer, ServerConfig
from kubeling.client.informer import Informer
from kubeling.client.kubeconfig import ClientConfig, load_kubeconfig
from kubeling.client.rest import Client

CONFIGMAPS = REGISTRY.by_path("", "v1", "configmaps")
assert CONFIGMAPS is not None


async def _median_us(call: Callable[[int], Awaitable[Any]], n: int) -> float:
    for i in range(min(200, n)):  # warm up connections and caches
        await call(-i - 1)
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


async def _bench(tls: bool, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = APIServer(ServerConfig(data_dir=Path(tmp), port=0, tls=tls))
        await server.start()
        assert server.objects is not None
        objects = server.objects
        config = load_kubeconfig(server.kubeconfig_path)
        if not tls:
            config = ClientConfig(server=server.url, token=config.token)
        client = Client(config, user_agent="bench")
        out: dict[str, float] = {}
        try:
            body = {"metadata": {"name": "cm"}, "data": {"x": "1" * 1500}}  # a ~2 KB object
            await client.create(CONFIGMAPS, body, "default")

            out["client GET"] = await _median_us(
                lambda i: client.get(CONFIGMAPS, "cm", "default"), n
            )
            out["direct GET"] = await _median_us(
                lambda i: objects.get(CONFIGMAPS, "default", "cm"), n
            )
            out["client POST"] = await _median_us(
                lambda i: client.create(
                    CONFIGMAPS, {"metadata": {"name": f"c{i}"}, "data": {"x": "1"}}, "default"
                ),
                n // 2,
            )
            out["direct POST"] = await _median_us(
                lambda i: objects.create(
                    CONFIGMAPS,
                    "default",
                    {"metadata": {"name": f"d{i}"}, "data": {"x": "1"}},
                    WriteOptions(),
                ),
                n // 2,
            )
            out["informer create→on_add"] = await _informer_latency(client, n // 4)
        finally:
            await client.close()
            await server.stop()
        return out


async def _informer_latency(client: Client, n: int) -> float:
    await client.create(CONFIGMAPS, {"metadata": {"name": "latency"}}, "kube-public")
    informer = Informer(client, CONFIGMAPS, "kube-public")
    arrived: dict[str, float] = {}
    informer.add_handlers(
        on_add=lambda o: arrived.__setitem__(o["metadata"]["name"], time.perf_counter())
    )
    informer.start()
    await informer.wait_synced(10)
    samples = []
    try:
        for i in range(n):
            name = f"l{i}"
            await client.create(CONFIGMAPS, {"metadata": {"name": name}}, "kube-public")
            returned = time.perf_counter()
            while name not in arrived:
                await asyncio.sleep(0)
            samples.append(max(0.0, arrived[name] - returned))
    finally:
        await informer.stop()
    return statistics.median(samples) * 1e6


async def main(n: int) -> None:
    for tls in (True, False):
        results = await _bench(tls, n)
        print(f"-- {'HTTPS' if tls else 'HTTP'} on loopback, one loop, n={n}")
        for name, value in results.items():
            print(f"   {name:28s} {value:8.0f} µs")
        for verb in ("GET", "POST"):
            overhead = results[f"client {verb}"] - results[f"direct {verb}"]
            print(f"   {verb + ' overhead':28s} {overhead:8.0f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(args.n))
