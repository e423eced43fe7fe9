"""A closed-loop HTTP/1.1 load generator for the benchmarks, in a process of its own.

    load = LoadProcess([Target("service", "127.96.0.10", 80, connections=16)])
    load.start()
    ...                       # load.requests() is the running total
    tallies = load.finish()   # one Tally per target

Why not aiohttp's client or wrk: aiohttp's client costs several times the CPU per request of
a bare Protocol, and on two shared cores the load generator's CPU is taken from what it
measures; wrk cannot say *which* requests failed, *when*, or *why*. This one is asyncio
Protocols on uvloop (when installed), one process, `connections` connections per target, each
sending `GET path` and waiting for the answer before sending the next (as wrk does).

What counts (per target):

* a **request** is one attempt; it **failed** when the connection could not be opened, was
  reset or closed before the whole response arrived, the answer took longer than `timeout`,
  or the status was not 200. A failure's reason is kept (`reasons`, counted; `first`, the
  first few with their time), and its worker waits `FAIL_PAUSE` before trying again, so a
  dead address is a handful of failures rather than as many as the loop can spin.
* **Keep-alive**: a connection is reused until the server says it will close it (`Connection:
  close`, or an HTTP/1.0 answer without `Connection: keep-alive`); then the next request opens
  a new connection, which is not a failure. A kept-alive connection that the server closes
  before any byte of the next answer is a failure ("closed before response (reused)"), though
  browsers and most client libraries silently retry a GET in that case: the reason says so.
* `buckets[i]` counts successes and failures in the 100 ms from `i / 10` seconds of
  `time.monotonic()`, which is one clock for all processes, so the parent can sum any window.
* `versions` counts the `version X` words of the 200 answers' bodies (the example app's).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

FAIL_PAUSE = 0.01  # seconds a worker waits after a failure
FIRST_REASONS = 5
VERSION = re.compile(rb"version (\S+)")


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    host_header: str = ""
    connections: int = 16
    path: str = "/"
    close: bool = False  # send `Connection: close`: one connection per request

    def request(self) -> bytes:
        close = "Connection: close\r\n" if self.close else ""
        host = self.host_header or f"{self.host}:{self.port}"
        return f"GET {self.path} HTTP/1.1\r\nHost: {host}\r\n{close}\r\n".encode()


@dataclass
class Tally:
    name: str
    ok: int = 0
    failed: int = 0
    connections_opened: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first: list[tuple[float, str]] = field(default_factory=list)
    buckets: dict[int, list[int]] = field(default_factory=dict)
    versions: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0

    @property
    def requests(self) -> int:
        return self.ok + self.failed

    def success(self, body: bytes) -> None:
        self.ok += 1
        self._bucket()[0] += 1
        match = VERSION.search(body)
        if match:
            self.versions[match.group(1).decode(errors="replace")] += 1

    def failure(self, reason: str) -> None:
        self.failed += 1
        self._bucket()[1] += 1
        self.reasons[reason] += 1
        if len(self.first) < FIRST_REASONS:
            self.first.append((time.monotonic(), reason))

    def _bucket(self) -> list[int]:
        key = int(time.monotonic() * 10)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = [0, 0]
        return bucket

    def window(self, start: float, end: float) -> tuple[int, int]:
        """Successes and failures between two `time.monotonic()` readings (100 ms grain)."""
        low, high = int(start * 10), int(end * 10)
        ok = sum(b[0] for k, b in self.buckets.items() if low <= k <= high)
        failed = sum(b[1] for k, b in self.buckets.items() if low <= k <= high)
        return ok, failed

    def rate(self) -> float:
        return self.requests / max(1e-9, self.ended - self.started)


# -- one HTTP/1.x response at a time ---------------------------------------------------------


class Incomplete(Exception):
    """The connection ended before the whole response arrived."""


def parse(buf: bytes | bytearray, eof: bool) -> tuple[int, bool, bytes, int] | None:
    """(status, keep_alive, body, bytes used) of the response at the start of `buf`, or None
    while it is incomplete. Bodies by Content-Length, chunked, or until the connection ends."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    status = int(rest[:3])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    connection = headers.get(b"connection", b"")
    if version == b"HTTP/1.1":
        keep_alive = b"close" not in connection
    else:
        keep_alive = b"keep-alive" in connection
    start = end + 4
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        body, at = bytearray(), start
        while True:
            line_end = buf.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(buf[at:line_end]).split(b";")[0], 16)
            if len(buf) < line_end + 2 + size + 2:
                return None
            body += buf[line_end + 2 : line_end + 2 + size]
            at = line_end + 2 + size + 2
            if size == 0:
                return status, keep_alive, bytes(body), at
    length = headers.get(b"content-length")
    if length is not None:
        used = start + int(length)
        if len(buf) < used:
            return None
        return status, keep_alive, bytes(buf[start:used]), used
    if not eof:
        return None
    return status, False, bytes(buf[start:]), len(buf)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bool, bytes]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bool, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        if self.lost:
            self.waiter.set_exception(Incomplete("closed before response"))
        else:
            self.transport.write(data)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._deliver(eof=False)

    def eof_received(self) -> bool:
        self._deliver(eof=True)
        return False

    def _deliver(self, eof: bool) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = parse(self.buf, eof)
        except ValueError as err:
            waiter.set_exception(Incomplete(f"bad response: {err}"))
            return
        if parsed is None:
            if eof:
                reason = "closed mid-response" if self.buf else "closed before response"
                waiter.set_exception(Incomplete(reason))
            return
        status, keep_alive, body, used = parsed
        del self.buf[:used]
        waiter.set_result((status, keep_alive and not eof, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                self._deliver(eof=True)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _reason(err: BaseException, connected: bool, reused: bool) -> str:
    if isinstance(err, TimeoutError):
        text = "timeout"
    elif isinstance(err, ConnectionRefusedError):
        text = "connection refused"
    elif isinstance(err, ConnectionResetError):
        text = "connection reset"
    else:
        text = str(err) or type(err).__name__
    if not connected:
        return f"connect: {text}"
    return f"{text} (reused)" if reused else text


async def _worker(target: Target, tally: Tally, stop: asyncio.Event, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    request = target.request()
    conn: _Connection | None = None
    while not stop.is_set():
        reused = conn is not None
        connected = reused
        try:
            if conn is None:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(_Connection, target.host, target.port), timeout
                )
                connected = True
                tally.connections_opened += 1
            assert conn is not None  # for mypy: opened just above
            status, keep_alive, body = await asyncio.wait_for(conn.request(request), timeout)
        except (OSError, Incomplete, TimeoutError) as err:
            tally.failure(_reason(err, connected, reused))
            if conn is not None:
                conn.close()
            conn = None
            await asyncio.sleep(FAIL_PAUSE)
            continue
        if status == 200:
            tally.success(body)
        else:
            tally.failure(f"HTTP {status}: {body[:60].decode(errors='replace').strip()}")
        if not keep_alive:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


async def run(
    targets: list[Target], stop: asyncio.Event, timeout: float, progress: Any = None
) -> list[Tally]:
    """Load every target until `stop` is set; `progress.value` follows the total."""
    tallies = [Tally(t.name) for t in targets]
    now = time.monotonic()
    for tally in tallies:
        tally.started = now
    workers = [
        asyncio.create_task(_worker(target, tally, stop, timeout))
        for target, tally in zip(targets, tallies, strict=True)
        for _ in range(target.connections)
    ]

    async def report() -> None:
        while True:
            progress.value = sum(t.requests for t in tallies)
            await asyncio.sleep(0.1)

    reporter = asyncio.create_task(report()) if progress is not None else None
    await asyncio.gather(*workers)
    now = time.monotonic()
    for tally in tallies:
        tally.ended = now
    if reporter is not None:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    return tallies


def _child(
    targets: list[Target],
    stop: Any,
    progress: Synchronized[int],
    results: Connection,
    timeout: float,
) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> list[Tally]:
        stopping = asyncio.Event()

        async def watch_stop() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            stopping.set()

        watcher = asyncio.create_task(watch_stop())
        tallies = await run(targets, stopping, timeout, progress)
        await watcher
        return tallies

    results.send(asyncio.run(main()))
    results.close()


class LoadProcess:
    """`run()` in a child process (spawned, so nothing of the parent's state is shared)."""

    def __init__(self, targets: list[Target], timeout: float = 5.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._progress: Synchronized[int] = ctx.Value("q", 0)
        self._results, child_end = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_child,
            args=(targets, self._stop, self._progress, child_end, timeout),
            daemon=True,
            name="httpload",
        )

    def start(self) -> None:
        self.process.start()

    def requests(self) -> int:
        return int(self._progress.value)

    def finish(self, timeout: float = 30.0) -> list[Tally]:
        self._stop.set()
        try:
            if not self._results.poll(timeout):
                raise TimeoutError("the load generator did not report")
            tallies: list[Tally] = self._results.recv()
            return tallies
        finally:
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
