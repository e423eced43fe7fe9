"""A rolling update under steady HTTP load: `python benchmarks/rollout_under_load.py`.

Runs `kubeling up --nodes 2` as a child process (as a user runs it, from the repository root,
on a temporary data dir, a free API port and free Ingress ports), and with the real kubectl
applies examples/hello-config.yaml, a ClusterIP Service `hello` (port 80 -> `http`) with an
Ingress for host `hello.test`, and examples/hello-deployment.yaml with `--replicas` replicas
and `WARMUP_SECONDS=--warmup`; waits until it is rolled out and both paths answer. Then a load
generator (benchmarks/httpload.py: its own process, asyncio Protocols on uvloop, keep-alive,
`--connections` per path, each waiting for its answer before the next request) sends `GET /`
through

* **service**: the ClusterIP:80, served by the nodes' service proxies (L4), and
* **ingress**: the Ingress HTTP port with `Host: hello.test` (L7),

for `--before` seconds, changes the Deployment (`kubectl set env deployment/hello
VERSION=2.0`), waits for `kubectl rollout status`, then until no old pod is left (the last
ones may still be draining when `rollout status` returns), and keeps the load `--after` more
seconds, or longer until `--min-requests` requests were sent over both paths. No preStop hook.

Two scenarios, each on a fresh cluster:

* **readiness probe**: the manifest as shipped. Goal: 0 failed requests.
* **no readiness probe**: the same without `readinessProbe` (the seed's failure: a pod counts
  as Ready once its process runs, and answers 500 while it warms up). The Deployment's
  `kubectl apply` should print a `Warning:` about the missing probe (the Service is applied
  first: that warning needs a Service selecting the pods); what kubectl printed is shown.

A failure is a connect error, a reset or a close before the whole answer, a timeout (5 s) or
a status other than 200 (benchmarks/httpload.py). Printed per scenario and path: requests,
failures before the change and from it on, the reasons (with the first few and when they
happened relative to `set env`), req/s, the versions that answered, the rollout's duration,
container restarts and warning events other than readiness failures if there were any, and
the kernel's count of overflowed accept queues and retransmitted SYNs during the load (where
slow or lost connections come from); then both scenarios side by side (medians with `--runs`
> 1). When a run with a readiness probe fails requests, `kubeling up`'s log, the events and
the failures' times are kept in a directory that is printed.

**Isolation.** Every `kubeling up` on a machine hands out the same pod addresses, so as root
the benchmark moves itself into a network namespace of its own (loopback only) before it
starts anything (the kernel's TCP counters printed are then this run's alone); with
`--shared-network`, or without root, it notes other clusters' pods that were listening.

Not a test (pytest does not collect it); numbers go into docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from httpload import LoadProcess, Tally, Target

from kubeling.testing import pinned_kubectl

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HOST = "hello.test"
CLONE_NEWNET = 0x40000000  # <sched.h>
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the cluster ------------------------------------------------------------------------------


class Up:
    """`kubeling up --nodes N` in the repository root; its stdout read by a thread."""

    def __init__(self, data_dir: Path, nodes: int) -> None:
        self.data_dir = data_dir
        self.http_port, self.https_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "kubeling", "up", "--data-dir", str(data_dir)]
        cmd += ["--port", "0", "--nodes", str(nodes)]
        cmd += ["--ingress-ports", f"{self.http_port},{self.https_port}"]
        self.log = (data_dir.parent / "up.log").open("w")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("ingress at "):
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> None:
        if not self._ready.wait(START_TIMEOUT) or self.proc.poll() is not None:
            raise RuntimeError(f"kubeling up did not become ready: {self.lines}")

    def stop(self) -> float:
        """SIGTERM (the cluster stops its pods, its children), SIGKILL only if it hangs."""
        began = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"kubeling up ignored SIGTERM for {STOP_TIMEOUT:.0f} s: killed")
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return time.monotonic() - began

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"


class Kubectl:
    """The pinned kubectl with the cluster's kubeconfig and a private HOME and cache."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}
        self.cache = str(home / "cache")

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        cmd = [pinned_kubectl(), "--cache-dir", self.cache, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done


# -- manifests --------------------------------------------------------------------------------


def deployment(replicas: int, warmup: float, probe: bool) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLES / "hello-deployment.yaml").read_text())
    manifest["spec"]["replicas"] = replicas
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    for env in container["env"]:
        if env["name"] == "WARMUP_SECONDS":
            env["value"] = f"{warmup:g}"
    if not probe:
        del container["readinessProbe"]
    return manifest


def service_and_ingress() -> list[dict[str, Any]]:
    # A ClusterIP of our own, high in 127.96.0.0/12: every cluster hands out the low ones
    # first, and two clusters' proxies on one ClusterIP:port would split its connections.
    cluster_ip = f"127.{random.randint(100, 111)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    backend = {"service": {"name": "hello", "port": {"number": 80}}}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "hello"},
            "spec": {
                "clusterIP": cluster_ip,
                "selector": {"app": "hello"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "hello"},
            "spec": {
                "rules": [
                    {
                        "host": HOST,
                        "http": {
                            "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]
                        },
                    }
                ]
            },
        },
    ]


def warned(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The `Warning:` lines kubectl printed on stderr (from the API server's headers)."""
    return [line for line in done.stderr.splitlines() if line.startswith("Warning:")]


def answers(host: str, port: int, host_header: str, timeout: float = 60) -> None:
    """Wait until `GET /` through this address answers 200."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(host, port, timeout=2)
        try:
            conn.request("GET", "/", headers={"Host": host_header})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return
            last = f"HTTP {response.status}"
        except OSError as err:
            last = str(err)
        finally:
            conn.close()
        time.sleep(0.2)
    raise TimeoutError(f"{host}:{port} did not answer 200 in {timeout:.0f} s: {last}")


def listeners() -> list[tuple[str, int]]:
    """Listening TCP sockets on pod (127.128.0.0/9) and Service (127.96.0.0/12) addresses on
    this machine, from /proc/net/tcp (every process's, in this network namespace)."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, port = fields[1].split(":")
        ip = bytes.fromhex(address)[::-1]  # little-endian IPv4
        if fields[3] == "0A" and ip[0] == 127 and (ip[1] >= 128 or 96 <= ip[1] < 112):
            found.append((".".join(map(str, ip)), int(port, 16)))
    return found


def isolate() -> bool:
    """Move this process, and so every process it starts, into a network namespace of its
    own whose only interface is loopback. Needs root (CAP_SYS_ADMIN) and `ip`; False when
    it cannot. Every `kubeling up` on a machine hands out the same pod addresses
    (127.128.0.2, ... for node-0): a cluster started meanwhile by anyone else (a test suite)
    would take addresses our pods need, or get ours, and each cluster's probes and proxies
    would reach the other's pods. Loopback in a namespace is the same kernel TCP path."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return False
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    return True


def troubles(kubectl: Kubectl) -> list[str]:
    """Container restarts (the pod and why its last run ended) and unexpected events."""
    pods = json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]
    out = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("restartCount"):
                ended = (status.get("lastState") or {}).get("terminated") or {}
                out.append(
                    f"{pod['metadata']['name']} ({pod['status'].get('podIP')}):"
                    f" {status['restartCount']} restart(s), last exit {ended.get('exitCode')}"
                    f" {ended.get('reason', '')} {ended.get('message', '')}".strip()
                )
    events = json.loads(kubectl("get", "events", "-o", "json").stdout)["items"]
    for event in events:
        # Readiness failures while warming up are the rollout itself; any other warning (a
        # failed liveness probe, a back-off, proxies that lagged behind a pod's SIGTERM) not.
        message = str(event.get("message"))
        if event.get("type") == "Warning" and not message.startswith("Readiness probe failed"):
            name = (event.get("involvedObject") or {}).get("name")
            count = event.get("count") or 1
            out.append(f"event {name}: {event.get('reason')} (x{count}): {message}")
    return out


def tcp_counters() -> Counter[str]:
    """The kernel's TCP counters that explain slow or lost connections (/proc/net/netstat, for
    this network namespace): accept queues that overflowed, and SYNs sent again."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    wanted = ("ListenOverflows", "ListenDrops", "TCPSynRetrans")
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            pairs = zip(names.split()[1:], values.split()[1:], strict=True)
            return Counter({k: int(v) for k, v in pairs if k in wanted})
    return Counter()


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU (user + system) of a process itself, and of all its descendants: the reaped ones
    (cutime, cstime) and the live ones, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks
    below = (int(fields[13]) + int(fields[14])) / ticks
    for child in children:
        below += sum(cpu_seconds(int(child)))
    return own, below


def cpu_sample(up: Up, load: LoadProcess) -> list[float]:
    """CPU seconds so far of `kubeling up` itself, of its pods, of the load generator; and
    the time."""
    own, pods = cpu_seconds(up.proc.pid)
    return [own, pods, cpu_seconds(load.process.pid or 0)[0], time.monotonic()]


def old_pods_left(kubectl: Kubectl, version: str) -> int:
    pods = json.loads(kubectl("get", "pods", "-l", "app=hello", "-o", "json").stdout)["items"]
    left = 0
    for pod in pods:
        env = pod["spec"]["containers"][0].get("env") or []
        if not any(e["name"] == "VERSION" and e.get("value") == version for e in env):
            left += 1
    return left


# -- one scenario -----------------------------------------------------------------------------


def scenario(args: argparse.Namespace, probe: bool, run: int) -> dict[str, Any]:
    title = "readiness probe" if probe else "no readiness probe"
    with tempfile.TemporaryDirectory(prefix="kubeling-rollout-load-") as tmp:
        work = Path(tmp)
        # Another cluster on the same addresses (see `isolate`) spoils the run: say so.
        foreign = listeners() if args.shared_network else []
        up = Up(work / "data", args.nodes)
        load: LoadProcess | None = None
        try:
            up.wait_ready()
            kubectl = Kubectl(up.kubeconfig, work)
            kubectl("apply", "-f", str(EXAMPLES / "hello-config.yaml"))
            # The Service first: a pitfall warning about the Deployment's pods needs the
            # Service that selects them (the API server checks both ways).
            extra = work / "hello-service.yaml"
            extra.write_text(yaml.safe_dump_all(service_and_ingress()))
            warnings = [f"(Service) {w}" for w in warned(kubectl("apply", "-f", str(extra)))]
            manifest = work / "hello-deployment.yaml"
            manifest.write_text(yaml.safe_dump(deployment(args.replicas, args.warmup, probe)))
            warnings += warned(kubectl("apply", "-f", str(manifest)))
            kubectl("rollout", "status", "deployment/hello", "--timeout=180s")
            ip = kubectl("get", "service", "hello", "-o", "jsonpath={.spec.clusterIP}").stdout
            targets = [Target("service", ip, 80, connections=args.connections)]
            if not args.no_ingress:
                targets.append(Target("ingress", "127.0.0.1", up.http_port, HOST, args.connections))
            for target in targets:
                answers(target.host, target.port, target.host_header or target.host)

            counted = tcp_counters()
            load = LoadProcess(targets)
            load.start()
            before = cpu_sample(up, load)
            time.sleep(args.before)
            changed = time.monotonic()
            kubectl("set", "env", "deployment/hello", "VERSION=2.0")
            kubectl("rollout", "status", "deployment/hello", "--timeout=300s")
            rolled = time.monotonic()
            while old_pods_left(kubectl, "2.0"):
                time.sleep(0.1)
            drained = time.monotonic()
            while time.monotonic() < drained + args.after or load.requests() < args.min_requests:
                time.sleep(0.1)
            after = cpu_sample(up, load)
            elapsed = after[-1] - before[-1]
            cpu = [(a - b) / elapsed for a, b in zip(after[:3], before[:3], strict=True)]
            tallies = load.finish()
            load = None
            counters = tcp_counters()
            counters.subtract(counted)
            trouble = troubles(kubectl)
            events = kubectl("get", "events", "-o", "wide", "--sort-by=.lastTimestamp").stdout
        except Exception:
            diagnose(up, work)
            raise
        finally:
            if load is not None:
                with contextlib.suppress(Exception):
                    load.finish()
            stopped = up.stop()
        kept = (
            keep_logs(work, events, tallies) if probe and any(t.failed for t in tallies) else None
        )
    result: dict[str, Any] = {
        "title": title,
        "warnings": warnings,
        "rollout": rolled - changed,
        "drained": drained - changed,
        "stop": stopped,
        "foreign": foreign,
        "troubles": trouble,
        "kept": kept,
        "tcp": dict(counters),
        "cpu": cpu,
        "paths": {t.name: path_result(t, changed) for t in tallies},
    }
    show(result, run)
    return result


def keep_logs(work: Path, events: str, tallies: list[Tally]) -> Path:
    """Failures with a readiness probe are to be explained: keep `kubeling up`'s log, the
    events and the first failures (wall-clock times, as in the log) past the run."""
    kept = Path(tempfile.mkdtemp(prefix="rollout-under-load-failed-"))
    shutil.copy(work / "up.log", kept / "up.log")
    (kept / "events.txt").write_text(events)
    offset = time.time() - time.monotonic()

    def clock(at: float) -> str:
        wall = at + offset
        return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall % 1 * 1000):03d}"

    lines = [f"{t.name} {clock(at)} {reason}" for t in tallies for at, reason in t.first]
    (kept / "failures.txt").write_text("\n".join(lines) + "\n")
    return kept


def diagnose(up: Up, work: Path) -> None:
    """What the cluster looked like when a step failed, before it is stopped."""
    print(f"\nfailed; `kubeling up` printed: {up.lines}", file=sys.stderr)
    with contextlib.suppress(Exception):
        kubectl = Kubectl(up.kubeconfig, work)
        for what in ("deployments", "replicasets", "pods"):
            out = kubectl("get", what, "-o", "wide", timeout=20).stdout
            print(out, file=sys.stderr)
    with contextlib.suppress(OSError):
        log = (work / "up.log").read_text().splitlines()
        print("\n".join(["last lines of its stderr:", *log[-30:]]), file=sys.stderr)


def path_result(tally: Tally, changed: float) -> dict[str, Any]:
    before = tally.window(tally.started, changed - 0.1)
    after = tally.window(changed, tally.ended)
    return {
        "requests": tally.requests,
        "failed": tally.failed,
        "rate": tally.rate(),
        "after": sum(after),
        "failed_after": after[1],
        "failed_before": before[1],
        "reasons": dict(tally.reasons.most_common()),
        "first": [(round(at - changed, 2), reason) for at, reason in tally.first],
        "versions": dict(tally.versions),
        "connections": tally.connections_opened,
        "seconds": tally.ended - tally.started,
    }


def show(result: dict[str, Any], run: int) -> None:
    print(f"\n== {result['title']}, run {run + 1}")
    if result["warnings"]:
        for line in result["warnings"]:
            print(f"  kubectl apply printed: {line}")
    else:
        print("  kubectl apply printed: no warning printed")
    print(
        f"  rollout (set env -> rollout status): {result['rollout']:.2f} s;"
        f" last old pod gone {result['drained']:.2f} s after set env;"
        f" `kubeling up` stopped in {result['stop']:.2f} s"
    )
    if result["foreign"]:
        print(
            f"  NOTE: another cluster was running on this machine (listening on"
            f" {result['foreign'][:3]}...): its pods may take our pods' addresses"
        )
    for line in result["troubles"]:
        print(f"  NOTE: {line}")
    print(
        f"  CPU during the load: `kubeling up` {result['cpu'][0]:.0%} of a core, its pods"
        f" {result['cpu'][1]:.0%}, the load generator {result['cpu'][2]:.0%}"
    )
    tcp = ", ".join(f"{k} {v}" for k, v in result["tcp"].items())
    print(f"  kernel TCP counters during the load: {tcp or 'none'}")
    if result["kept"]:
        print(f"  failures with a readiness probe: logs kept in {result['kept']}")
    for name, p in result["paths"].items():
        print(
            f"  {name}: {p['requests']} requests in {p['seconds']:.1f} s ({p['rate']:.0f} req/s),"
            f" {p['failed']} failed ({p['failed_before']} before the change);"
            f" {p['after']} requests from set env on, {p['failed_after']} of them failed;"
            f" {p['connections']} connections opened"
        )
        print(f"    versions answering: {p['versions']}")
        for reason, count in list(p["reasons"].items())[:5]:
            print(f"    {count} x {reason}")
        for at, reason in p["first"]:
            print(f"    first failures: {at:+.2f} s after set env: {reason}")


def side_by_side(results: dict[str, list[dict[str, Any]]]) -> None:
    titles = list(results)
    median = "median of " if any(len(r) > 1 for r in results.values()) else ""
    print(f"\n== side by side ({median}{max(len(r) for r in results.values())} run(s))")
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, pick: Any, fmt: str) -> None:
        cells = []
        for title in titles:
            values = [pick(r) for r in results[title]]
            values = [v for v in values if v is not None]
            cells.append(format(statistics.median(values), fmt) if values else "-")
        rows.append((label, cells))

    row("rollout, s", lambda r: r["rollout"], ".2f")
    row("last old pod gone, s", lambda r: r["drained"], ".2f")
    paths = sorted({p for runs in results.values() for r in runs for p in r["paths"]})
    paths.sort(key=lambda p: p != "service")
    for path in paths:
        for key, label, fmt in (
            ("requests", "requests", ".0f"),
            ("failed", "failed", ".0f"),
            ("rate", "req/s", ".0f"),
            ("after", "requests from set env on", ".0f"),
            ("failed_after", "failed from set env on", ".0f"),
        ):
            row(f"{path}: {label}", lambda r, p=path, k=key: r["paths"].get(p, {}).get(k), fmt)
    warning_cells = [
        "yes" if all(r["warnings"] for r in results[t]) else "no warning printed" for t in titles
    ]
    rows.append(("apply printed a Warning", warning_cells))
    width = max(len(label) for label, _ in rows)
    print(f"{'':{width}}  " + "  ".join(f"{t:>20}" for t in titles))
    for label, cells in rows:
        print(f"{label:{width}}  " + "  ".join(f"{c:>20}" for c in cells))
    for title in titles:
        reasons: Counter[str] = Counter()
        for r in results[title]:
            for p in r["paths"].values():
                reasons.update(p["reasons"])
        if reasons:
            print(f"{title}: failure reasons: {dict(reasons.most_common(4))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=3.0, help="the app's WARMUP_SECONDS")
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario (medians)")
    parser.add_argument("--min-requests", type=int, default=20000, help="at least, per run")
    parser.add_argument("--connections", type=int, default=8, help="per path")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before")
    parser.add_argument("--after", type=float, default=2.0, help="seconds of load after")
    parser.add_argument(
        "--shared-network",
        action="store_true",
        help="stay in the machine's network namespace (default: a namespace of its own, as root)",
    )
    parser.add_argument("--no-ingress", action="store_true", help="load the Service only")
    parser.add_argument("--skip-unready", action="store_true", help="skip the no-probe run")
    args = parser.parse_args()
    # SIGTERM ends the run as Ctrl-C does: through the `finally`s that stop the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.shared_network = args.shared_network or not isolate()
    if not args.shared_network:
        print("in a network namespace of its own (loopback only): no other cluster can collide")
    else:
        print("in the machine's network namespace: other clusters on it can collide with ours")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; kubeling up --nodes"
        f" {args.nodes}; {args.replicas} replicas, warm-up {args.warmup:g} s;"
        f" {args.connections} keep-alive connections per path"
    )
    results: dict[str, list[dict[str, Any]]] = {}
    probes = [True] if args.skip_unready else [True, False]
    for run in range(args.runs):
        for probe in probes:
            outcome = scenario(args, probe, run)
            results.setdefault(outcome["title"], []).append(outcome)
    side_by_side(results)


if __name__ == "__main__":
    main()
