"""kubeling's service proxy against nginx and haproxy: `python benchmarks/proxy.py`.

One TCP proxy at a time between a load generator and one fast HTTP upstream, all on
127.0.0.1, each proxy **one process with one worker**:

* **direct**: no proxy, the load generator talks to the upstream (the ceiling);
* **kubeling**: `kubeling.network.proxy.TcpListener` with one `Route` to the upstream, on
  uvloop, alone in a process of its own (this script with `--serve kubeling`; in a cluster
  it shares the `kubeling up` process with the API server and everything else);
* **kernel**: kubeling's kernel data path, the nftables DNAT rule its service proxy programs
  as root where `nft` is installed (`kubeling.network.kerneldnat`; the CPU column is then the
  rule holder's, about nothing: the kernel's work lands on wrk and the upstream);
* **nginx**: `stream { proxy_pass }`, `worker_processes 1`;
* **haproxy**: `mode tcp`, `nbthread 1`.

The upstream is nginx (`return 200`, keep-alive, one worker) when nginx is installed, else
a small uvloop Protocol server in this script (`--serve upstream`). Load: `wrk -t1 -c50
-d5s` with keep-alive and with `-H "Connection: close"` (a new client connection, and a new
upstream connection, for every request); without wrk, benchmarks/httpload.py with 50
connections. After one warm-up run of each, `--runs` rounds (default 3) measure every path
in turn (interleaved, so that the machine's drift spreads over all of them); printed are the
median req/s, its ratio to direct and to nginx, and the proxy's CPU per request (user +
system of its process tree from /proc/<pid>/stat, over the requests wrk completed).
Missing programs are skipped with a note (`benchmarks/setup` installs them).

The yardstick is nginx in the same run, not direct: on two cores every proxy needs CPU that
direct gives to the upstream and the load generator, so each gets about half of direct
(/work/shared/research/python-stack.md § 6). Goal: kubeling >= 1.0x nginx's stream proxy.

Not a test (pytest does not collect it); numbers go into docs/performance.md.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from httpload import LoadProcess, Target

from kubeling.network.kerneldnat import KernelDNAT

SETUP = "benchmarks/setup (apt-get install -y nginx-light libnginx-mod-stream haproxy wrk)"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
BODY = b"Hello, world!"
TICKS = os.sysconf("SC_CLK_TCK")
MODES = ("keep-alive", "close")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (every thread), from /proc."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        pending += [int(c) for c in children]
    return total


# -- the processes under test -----------------------------------------------------------------


def nginx_upstream(work: Path, port: int, name: str = "nginx-upstream") -> list[str]:
    conf = work / f"{name}.conf"
    conf.write_text(
        f"""worker_processes 1;
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}.err;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "{BODY.decode()}"; }}
    }}
}}
"""
    )
    return ["nginx", "-p", str(work), "-c", str(conf)]


def nginx_stream(work: Path, port: int, upstream: int) -> list[str]:
    conf = work / "nginx-stream.conf"
    conf.write_text(
        f"""load_module {STREAM_MODULE};
worker_processes 1;
daemon off;
pid {work}/nginx-stream.pid;
error_log {work}/nginx-stream.err;
events {{ worker_connections 4096; }}
stream {{
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        proxy_pass 127.0.0.1:{upstream};
    }}
}}
"""
    )
    return ["nginx", "-p", str(work), "-c", str(conf)]


def haproxy(work: Path, port: int, upstream: int) -> list[str]:
    conf = work / "haproxy.cfg"
    conf.write_text(
        f"""global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend bench
    bind 127.0.0.1:{port}
    default_backend upstream
backend upstream
    server u 127.0.0.1:{upstream}
"""
    )
    return ["haproxy", "-db", "-f", str(conf)]


def this_script(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


async def serve_kubeling(port: int, upstream: int, kernel: bool) -> None:
    """The relay (a TcpListener), or with `kernel` the DNAT rule the service proxy programs
    as root (kerneldnat.py): then this process only holds the rule while the load runs."""
    from kubeling.network.kerneldnat import KernelDNAT
    from kubeling.network.proxy import TcpListener
    from kubeling.network.servicetable import Backend, ListenKey, Route, ServicePort, ServiceTable

    key = ListenKey("127.0.0.1", port, "TCP")
    route = Route(
        ServicePort("bench", "upstream", "", "TCP"), False, (Backend("127.0.0.1", upstream),)
    )
    if kernel:
        dnat = KernelDNAT(f"bench_{port}")
        await dnat.apply(ServiceTable({key: route}))
        try:
            await _until_terminated()
        finally:
            await dnat.remove()
        return
    listener = TcpListener(key, route)
    await listener.open()
    await _until_terminated()
    await listener.close()


class _Responder(asyncio.Protocol):
    """The fallback upstream: 200 and 13 bytes per request, keep-alive unless asked not to."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, self.buf = self.buf[:end].lower(), self.buf[end + 4 :]
            close = b"connection: close" in head
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
                % (len(BODY), b"Connection: close\r\n" if close else b"", BODY)
            )
            if close:
                self.transport.close()
                return


async def serve_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Responder, "127.0.0.1", port, backlog=4096)
    await _until_terminated()
    server.close()


async def _until_terminated() -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()


# -- load -------------------------------------------------------------------------------------


@dataclass
class Sample:
    rate: float
    requests: int
    errors: str = ""
    cpu_us: float | None = None


def wrk(port: int, mode: str, seconds: float) -> Sample:
    cmd = ["wrk", "-t1", "-c50", f"-d{seconds:g}s"]
    if mode == "close":
        cmd += ["-H", "Connection: close"]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = "; ".join(
        line.strip() for line in out.splitlines() if "errors" in line or "Non-2xx" in line
    )
    return Sample(rate, requests, errors)


def own_load(port: int, mode: str, seconds: float) -> Sample:
    load = LoadProcess([Target("p", "127.0.0.1", port, connections=50, close=mode == "close")])
    load.start()
    time.sleep(seconds)
    (tally,) = load.finish()
    errors = f"{tally.failed} failed: {dict(tally.reasons)}" if tally.failed else ""
    return Sample(tally.rate(), tally.requests, errors)


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Subject:
    name: str
    port: int
    pid: int  # whose process tree's CPU counts (the upstream's for direct)
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def median(self, mode: str) -> float:
        return statistics.median(s.rate for s in self.samples[mode])

    def cpu(self, mode: str) -> float | None:
        values = [s.cpu_us for s in self.samples[mode] if s.cpu_us is not None]
        return statistics.median(values) if values else None


def measure(path: Subject, mode: str, seconds: float, load: Callable[..., Sample]) -> Sample:
    before = cpu_seconds(path.pid)
    sample = load(path.port, mode, seconds)
    sample.cpu_us = (cpu_seconds(path.pid) - before) / max(1, sample.requests) * 1e6
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument(
        "--serve", choices=["kubeling", "kubeling-kernel", "upstream"], help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        import uvloop

        uvloop.install()
        if args.serve.startswith("kubeling"):
            kernel = args.serve == "kubeling-kernel"
            asyncio.run(serve_kubeling(args.port, args.upstream, kernel))
        else:
            asyncio.run(serve_upstream(args.port))
        return

    have = {name: shutil.which(name) is not None for name in ("nginx", "haproxy", "wrk")}
    missing = [name for name, found in have.items() if not found]
    if have["nginx"] and not STREAM_MODULE.exists():
        missing.append("libnginx-mod-stream")
    if missing:
        print(f"not installed: {', '.join(missing)} (skipped; install with {SETUP})")
    load = wrk if have["wrk"] else own_load
    work = Path(tempfile.mkdtemp(prefix="kubeling-proxy-bench-"))
    children: list[subprocess.Popen[bytes]] = []

    def start(cmd: list[str], port: int) -> int:
        log = work / f"{len(children)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        children.append(proc)
        try:
            wait_listening(port, proc)
        except RuntimeError as err:
            raise RuntimeError(f"{err}: {log.read_text()}") from None
        return proc.pid

    def start_upstream(name: str) -> tuple[int, int]:
        port = free_port()
        if have["nginx"]:
            return port, start(nginx_upstream(work, port, name), port)
        return port, start(this_script("--serve", "upstream", "--port", str(port)), port)

    try:
        kind = "nginx 1 worker, return 200" if have["nginx"] else "uvloop server in this script"
        upstream, upstream_pid = start_upstream("nginx-upstream")
        paths = [Subject("direct", upstream, upstream_pid)]
        port = free_port()
        cmd = this_script("--serve", "kubeling", "--port", str(port), "--upstream", str(upstream))
        paths.append(Subject("kubeling", port, start(cmd, port)))
        if KernelDNAT.available():
            # An upstream of its own: a DNAT'd connection whose reply would look like a direct
            # connection's still in conntrack (the same client port, within its 120 s TIME_WAIT)
            # is dropped, which the other paths' churn on one upstream would cause.
            own, _ = start_upstream("nginx-upstream-kernel")
            port = free_port()
            cmd = this_script(
                "--serve", "kubeling-kernel", "--port", str(port), "--upstream", str(own)
            )
            paths.append(Subject("kernel", port, start(cmd, port)))
        else:
            print("kubeling's kernel data path: skipped (needs root and nft: benchmarks/setup)")
        if have["nginx"] and STREAM_MODULE.exists():
            port = free_port()
            paths.append(Subject("nginx", port, start(nginx_stream(work, port, upstream), port)))
        if have["haproxy"]:
            port = free_port()
            paths.append(Subject("haproxy", port, start(haproxy(work, port, upstream), port)))

        tool = "wrk -t1 -c50" if have["wrk"] else "httpload (50 connections; wrk not installed)"
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; upstream: {kind};"
            f" load: {tool}, {args.seconds:g} s per run, {args.runs} runs after a warm-up"
        )
        for path in paths:
            for mode in MODES:
                load(path.port, mode, 1.0)  # warm-up
        for run in range(args.runs):
            for mode in MODES:
                for path in paths:
                    sample = measure(path, mode, args.seconds, load)
                    path.samples.setdefault(mode, []).append(sample)
                    print(
                        f"run {run + 1} {mode:10} {path.name:9} {sample.rate:9.0f} req/s"
                        f" {sample.cpu_us:6.1f} µs CPU/req"
                        + (f"  ({sample.errors})" if sample.errors else ""),
                        flush=True,
                    )
        report(paths)
    finally:
        for proc in children:
            proc.terminate()
        for proc in children:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def report(paths: list[Subject]) -> None:
    by_name = {p.name: p for p in paths}
    direct, nginx = by_name["direct"], by_name.get("nginx")
    print(f"\nmedians of {len(paths[0].samples[MODES[0]])} runs:")
    print(
        f"{'path':9} {'keep-alive req/s':>16} {'x direct':>8} {'x nginx':>8}"
        f" {'close req/s':>12} {'x direct':>8} {'x nginx':>8}  CPU µs/req (keep-alive / close)"
    )
    for path in paths:
        cells = []
        for mode in MODES:
            rate = path.median(mode)
            versus = f"{rate / nginx.median(mode):.2f}" if nginx else "-"
            cells.append(f"{rate:>{16 if mode == 'keep-alive' else 12}.0f}")
            cells.append(f"{rate / direct.median(mode):8.2f} {versus:>8}")
        cpu = " / ".join(f"{path.cpu(m):.1f}" for m in MODES)
        owner = "  (the upstream's)" if path is direct else ""
        print(f"{path.name:9} {' '.join(cells)}  {cpu}{owner}")
    if nginx is None:
        print("goal kubeling >= 1.0x nginx stream: not measured (nginx stream not installed)")
        return
    for name in ("kubeling", "kernel"):
        if name not in by_name:
            continue
        for mode in MODES:
            ratio = by_name[name].median(mode) / nginx.median(mode)
            verdict = "met" if ratio >= 1.0 else "missed"
            print(f"goal {name} >= 1.0x nginx stream, {mode}: {ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    main()
