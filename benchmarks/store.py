"""SQLite store benchmark: what the storage layer alone can do, below any HTTP.

Each run opens a fresh `SqliteStore` in a temporary directory and measures, in order:

* creates/s: `--concurrency` coroutines creating `--objects` keys with `--value-size` byte
  values (group commit turns concurrent creates into few transactions);
* updates/s: the same coroutines updating every key once, with compare-and-swap;
* gets/s: point reads of random keys, one after another, on the event loop;
* list: reading all `--list-keys` keys of one prefix (one namespace) at the current revision.

It prints the median of `--runs` runs. Run it on the machine you care about: the numbers
depend mostly on how fast the disk completes an fsync.

    python benchmarks/store.py [--objects 20000] [--concurrency 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from kubeling.storage import SqliteStore


def _key(index: int, per_namespace: int) -> str:
    return f"/registry/pods/ns-{index // per_namespace}/pod-{index:07d}"


async def _concurrently(
    count: int, concurrency: int, one: Callable[[int], Awaitable[object]]
) -> float:
    """Run `one(i)` for every i < count on `concurrency` coroutines; returns operations/s."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def _one_run(args: argparse.Namespace, directory: Path) -> dict[str, float]:
    store = await SqliteStore.open(directory / "state.db")
    try:
        value = b"x" * args.value_size
        revisions: dict[int, int] = {}

        async def create(i: int) -> None:
            revisions[i] = (await store.create(_key(i, args.list_keys), value)).mod_revision

        async def update(i: int) -> None:
            key = _key(i, args.list_keys)
            await store.update(key, value, expected_revision=revisions[i])

        results = {
            "creates/s": await _concurrently(args.objects, args.concurrency, create),
            "updates/s": await _concurrently(args.objects, args.concurrency, update),
        }
        keys = [_key(random.randrange(args.objects), args.list_keys) for _ in range(args.gets)]
        started = time.perf_counter()
        for key in keys:
            await store.get(key)
        results["gets/s"] = args.gets / (time.perf_counter() - started)

        prefix = _key(0, args.list_keys).rsplit("/", 1)[0] + "/"
        durations = []
        for _ in range(args.lists):
            started = time.perf_counter()
            listed = await store.list(prefix)
            durations.append(time.perf_counter() - started)
        if len(listed.items) != min(args.list_keys, args.objects):
            raise RuntimeError(f"listed {len(listed.items)} keys, expected {args.list_keys}")
        results[f"list {args.list_keys} keys (ms)"] = statistics.median(durations) * 1000
        return results
    finally:
        await store.close()


async def _main(args: argparse.Namespace) -> None:
    runs: list[dict[str, float]] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="kubeling-bench-", dir=args.dir) as directory:
            runs.append(await _one_run(args, Path(directory)))
        print(f"run {run + 1}: " + ", ".join(f"{k} {v:,.1f}" for k, v in runs[-1].items()))
    loop = type(asyncio.get_running_loop()).__module__
    print(f"median of {args.runs} runs ({args.objects} objects of {args.value_size} bytes,")
    print(f"{args.concurrency} concurrent writers, event loop from {loop}):")
    for name in runs[0]:
        print(f"  {name:<22} {statistics.median(r[name] for r in runs):>12,.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=20_000, help="keys to create and update")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent writers")
    parser.add_argument("--value-size", type=int, default=3_000, help="bytes per value")
    parser.add_argument("--gets", type=int, default=20_000, help="point reads")
    parser.add_argument("--list-keys", type=int, default=1_000, help="keys per listed prefix")
    parser.add_argument("--lists", type=int, default=20, help="lists timed per run")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is printed")
    parser.add_argument("--dir", default=None, help="where to put the database (default: tmp)")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    args = parser.parse_args()
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed; using the stdlib event loop")
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_main(args))


if __name__ == "__main__":
    main()
