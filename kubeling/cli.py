"""`kubeling up | server | agent | version`: the command line of DESIGN.md § 2.

Every command runs in the foreground until Ctrl-C or SIGTERM and then stops cleanly: open
connections are closed, the store is flushed and closed. Errors the user can fix (a port in
use, an unknown datastore, a server that cannot be reached, a feature not built yet) are one
readable line on stderr and a non-zero exit, not a traceback: exit 2 for a command line that
cannot work as given, 1 for a failure while running.

**Nodes.** `up` runs `--nodes N` real nodes (default 1: `node-0`, ..., their state under
`<data-dir>/nodes/<name>`) that run pods as processes, and `--fake-nodes M` simulated ones.
`agent` without `--fake` runs one real node, named `--name` or this machine's hostname (as
k3s's agent), its state in `--data-dir` (default `~/.kubeling/agent`). Its pod CIDR is the one
its Node already records (a restarted agent keeps its pods' addresses), else the lowest /24 of
127.128.0.0/9 that no Node has: two agents joining at the same instant could pick the same one
(allocating node CIDRs in the controller manager, as Kubernetes' node IPAM does, would close
that window).

**Manifests** (`up -f FILE|DIR`, repeatable): read and checked before anything starts (a file
that is not a manifest is one line and exit 2), applied by server-side apply once the cluster
and its nodes are ready (a manifest the server refuses is one line, exit 1, the cluster
stopped), then `up` prints each applied object, waits for the pods in their namespaces to be
Ready and prints where to reach them (see `kubeling.client.manifests`).

**Joining** (`agent --server URL --token-file FILE`, as k3s's agent joins): the token file is the
server's `<data-dir>/node-token`, `K10<sha256 of the CA PEM>::node:<secret>` (see
`kubeling.apiserver.certs`). The agent fetches the CA from `GET /cacerts` over TLS it does not
verify, refuses it unless its SHA-256 is the token's ("the server's CA does not match the
token's hash", exit 1), and from then on talks to the server verified by that CA, with
`node:<secret>` as its bearer token. `--kubeconfig` joins with a kubeconfig instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from kubeling import __version__
from kubeling.agent import FakeNode, FakeNodes
from kubeling.agent.agent import NodeAgent
from kubeling.agent.fake import pod_cidr_for
from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.apiserver.app import VERSION_INFO
from kubeling.apiserver.certs import NodeToken, NodeTokenError, parse_node_token
from kubeling.apiserver.server import ServerConfig
from kubeling.client.kubeconfig import ClientConfig
from kubeling.client.manifests import Manifest, ManifestError, apply, in_apply_order, load
from kubeling.client.rest import Client, Object
from kubeling.cluster import LOCAL_LEASE_DURATION, Cluster

DEFAULT_DATA_DIR = Path.home() / ".kubeling"
DEFAULT_AGENT_DIR = DEFAULT_DATA_DIR / "agent"
POD_CIDRS = 32768  # /24s in 127.128.0.0/9


class UsageError(Exception):
    """A command line that cannot work as given: one line on stderr, exit 2."""


class JoinError(Exception):
    """The server an agent was pointed at cannot be trusted or joined: one line, exit 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeling", description="Kubernetes for your processes.")
    commands = parser.add_subparsers(dest="command", required=True)

    def server_flags(p: argparse.ArgumentParser, bind: bool) -> None:
        p.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_DATA_DIR,
            help="where state, certificates and the kubeconfig live (default ~/.kubeling)",
        )
        p.add_argument("--port", type=int, default=6443, help="API server port (default 6443)")
        p.add_argument(
            "--datastore", default="", help="storage URL (default sqlite:///<data-dir>/state.db)"
        )
        if bind:
            p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
        p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")

    up = commands.add_parser("up", help="run a whole cluster in the foreground")
    server_flags(up, bind=False)
    up.add_argument(
        "--nodes",
        type=int,
        default=1,
        metavar="N",
        help="local nodes that run pods as processes (default 1)",
    )
    up.add_argument(
        "--fake-nodes",
        type=int,
        default=0,
        metavar="M",
        help="simulated nodes that run no processes (kwok-like; default 0)",
    )
    up.add_argument(
        "--ingress-ports",
        default="auto",
        metavar="HTTP,HTTPS",
        help="where the Ingress proxy listens (default 80,443 as root, else 8080,8443; 'none'"
        " for no Ingress proxy)",
    )
    up.add_argument(
        "--lease-seconds",
        type=int,
        default=LOCAL_LEASE_DURATION,
        metavar="S",
        help="how long a local node may go silent before its pods are moved (default"
        f" {LOCAL_LEASE_DURATION}; Kubernetes: 40)",
    )
    up.add_argument(
        "-f",
        "--filename",
        action="append",
        type=Path,
        default=[],
        metavar="FILE|DIR",
        help="manifests to apply once the cluster is ready (a file, or a directory's"
        " *.yaml/*.yml/*.json); repeatable",
    )
    server = commands.add_parser("server", help="run the API server (control plane)")
    server_flags(server, bind=True)
    agent = commands.add_parser("agent", help="run node agents against a running server")
    agent.add_argument("--server", metavar="URL", help="the API server to join (with --token-file)")
    agent.add_argument(
        "--lease-seconds",
        type=int,
        default=LOCAL_LEASE_DURATION,
        metavar="S",
        help="how long this node may go silent before its pods are moved elsewhere (default"
        f" {LOCAL_LEASE_DURATION})",
    )
    agent.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="the server's <data-dir>/node-token (with --server)",
    )
    agent.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="join with a kubeconfig instead of --server and --token-file",
    )
    agent.add_argument(
        "--name",
        metavar="NODE",
        help="the node's name (default: this machine's hostname; fake-node-0 with --fake)",
    )
    agent.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_AGENT_DIR,
        help="the agent's own state (its pods' files, logs and pids), created if missing"
        " (default ~/.kubeling/agent; simulated nodes keep none)",
    )
    agent.add_argument(
        "--fake",
        action="store_true",
        help="run simulated nodes (kwok-like) instead of one node that runs processes",
    )
    agent.add_argument(
        "--count",
        type=int,
        default=1,
        metavar="N",
        help="how many simulated nodes to run (default 1)",
    )
    agent.add_argument(
        "--name-prefix",
        default=None,
        metavar="PREFIX",
        help="several nodes are named PREFIX0, PREFIX1, ... (default fake-node-, as"
        " `up --fake-nodes`; give each agent its own)",
    )
    agent.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands.add_parser("version", help="print the kubeling and Kubernetes API versions")
    return parser


async def _until_signalled(started: Callable[[], Awaitable[None]]) -> None:
    """Wait for SIGINT or SIGTERM once `started()` has returned. The handlers are installed
    first, so a signal during start-up stops the command as soon as start-up is over."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await started()
    await stop.wait()
    print("stopping...", file=sys.stderr, flush=True)


async def _serve(
    config: ServerConfig,
    nodes: int = 0,
    fake_nodes: int = 0,
    manifests: list[Manifest] | None = None,
    lease_seconds: int = LOCAL_LEASE_DURATION,
    ingress_ports: tuple[int, int] | None = None,
) -> None:
    cluster = Cluster(
        config,
        nodes=nodes,
        fake_nodes=fake_nodes,
        node_lease_duration=lease_seconds,
        ingress_ports=ingress_ports,
    )
    tasks: list[asyncio.Task[None]] = []

    async def started() -> None:
        await cluster.start()
        server = cluster.server
        print(f"kubeling API server ready at {server.url}", flush=True)
        print(f"export KUBECONFIG={server.kubeconfig_path}", flush=True)
        token_file = server.config.data_dir / "node-token"
        print(
            f"join a node: kubeling agent --server {server.url} --token-file {token_file}",
            flush=True,
        )
        if cluster.ingress is not None:
            ingress = cluster.ingress
            print(
                f"ingress at http://{ingress.host}:{ingress.http_port}/ and"
                f" https://{ingress.host}:{ingress.https_port}/",
                flush=True,
            )
        if manifests:
            client = Client.from_kubeconfig(str(server.kubeconfig_path), user_agent="kubeling-up")
            try:
                await apply(client, manifests)
                for manifest in in_apply_order(manifests):
                    print(f"{manifest.ref} applied", flush=True)
            except BaseException:
                await client.close()
                raise  # a refused manifest stops `up`: one line, exit 1 (see main)
            # Reporting waits for pods, which may take long: Ctrl-C must not wait for it.
            real_nodes = {agent.node_name for agent in cluster.agents}
            if not (nodes or fake_nodes):
                print("no nodes (--nodes 0): the manifests' pods stay Pending", flush=True)
                await client.close()
                return
            ingress_ports = (
                (cluster.ingress.http_port, cluster.ingress.https_port)
                if cluster.ingress is not None
                else None
            )
            report = _report_when_ready(
                client, manifests, server.kubeconfig_path, real_nodes, ingress_ports
            )
            tasks.append(asyncio.get_running_loop().create_task(report))

    try:
        await _until_signalled(started)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await cluster.stop()


WORKLOADS = {"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"}
REPORT_TIMEOUT = 120.0  # seconds to wait for the manifests' pods before saying where to look


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _pod_address(pod: Mapping[str, Any]) -> str:
    ip = (pod.get("status") or {}).get("podIP") or "?"
    ports = [
        p["containerPort"]
        for c in (pod.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
        if p.get("protocol", "TCP") == "TCP"
    ]
    return f"http://{ip}:{ports[0]}/" if ports else str(ip)


async def _report_when_ready(
    client: Client,
    manifests: list[Manifest],
    kubeconfig: Path,
    real_nodes: set[str],
    ingress_ports: tuple[int, int | None] | None,
) -> None:
    """Say where the applied manifests' pods answer once they are Ready: every pod of the
    namespaces they touched, once there are as many as their workloads and bare pods ask for
    (or after REPORT_TIMEOUT, with the ones not Ready marked). A pod on a simulated node has
    an IP but nothing answers there: that is said instead. Then where the applied Services
    and Ingresses answer."""
    try:
        namespaces = sorted({m.namespace for m in manifests if m.namespace})
        wanted = sum(
            int(m.obj.get("spec", {}).get("replicas", 1)) if m.info.kind in WORKLOADS else 1
            for m in manifests
            if m.info.kind in WORKLOADS or m.info.kind == "Pod"
        )
        pods_info = REGISTRY.by_path("", "v1", "pods")
        assert pods_info is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPORT_TIMEOUT
        pods: list[Object] = []
        while wanted and loop.time() < deadline:
            pods = [
                pod
                for ns in namespaces
                for pod in (await client.list(pods_info, ns)).items
                if not pod["metadata"].get("deletionTimestamp")
            ]
            if len(pods) >= wanted and all(_ready(pod) for pod in pods):
                break
            await asyncio.sleep(0.5)
        else:
            if wanted:
                print(f"not every pod is Ready after {REPORT_TIMEOUT:.0f}s:", flush=True)
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            state = "ready" if _ready(pod) else "NOT ready"
            node = (pod.get("spec") or {}).get("nodeName")
            real = node in real_nodes
            where = _pod_address(pod) if real else f"{node} (simulated: no process answers)"
            meta = pod["metadata"]
            print(f"pod {meta['namespace']}/{meta['name']} {state} at {where}", flush=True)
        for line in await _service_lines(client, manifests, ingress_ports, deadline):
            print(line, flush=True)
        print(f"export KUBECONFIG={kubeconfig}  # then: kubectl get pods -o wide", flush=True)
    finally:
        await client.close()


async def _service_lines(
    client: Client,
    manifests: list[Manifest],
    ingress_ports: tuple[int, int | None] | None,
    deadline: float,
) -> list[str]:
    """`service <ns>/<name> at ...` for each applied Service: its ClusterIP ports, NodePorts
    and load-balancer address (once assigned, until `deadline`); `ingress <ns>/<name> at ...`
    for each applied Ingress, as URLs of the Ingress proxy."""
    lines = []
    loop = asyncio.get_running_loop()
    for manifest in manifests:
        if manifest.info.kind == "Service":
            while True:
                service = await client.get(manifest.info, manifest.name, manifest.namespace)
                spec, status = service.get("spec") or {}, service.get("status") or {}
                balancers = [
                    i["ip"] for i in (status.get("loadBalancer") or {}).get("ingress") or []
                ]
                waiting = spec.get("type") == "LoadBalancer" and not balancers
                if not waiting or loop.time() >= deadline:
                    break
                await asyncio.sleep(0.2)
            where = []
            for port in spec.get("ports") or []:
                if spec.get("clusterIP") not in (None, "", "None"):
                    where.append(f"{spec['clusterIP']}:{port['port']}")
                if port.get("nodePort"):
                    where.append(f"node port {port['nodePort']}")
                where += [f"load balancer {ip}:{port['port']}" for ip in balancers]
            ref = f"{manifest.namespace}/{manifest.name}"
            lines.append(f"service {ref} at {', '.join(where) or 'no address (headless)'}")
        elif manifest.info.kind == "Ingress" and ingress_ports is not None:
            urls = []
            spec = manifest.obj.get("spec") or {}
            tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
            for rule in spec.get("rules") or []:
                host = rule.get("host") or "127.0.0.1"
                for path in (rule.get("http") or {}).get("paths") or []:
                    secure = host in tls_hosts and ingress_ports[1] is not None
                    scheme, port = (
                        ("https", ingress_ports[1]) if secure else ("http", ingress_ports[0])
                    )
                    urls.append(f"{scheme}://{host}:{port}{path.get('path') or '/'}")
            if spec.get("defaultBackend") or not urls:
                urls.append(f"http://127.0.0.1:{ingress_ports[0]}/")
            lines.append(f"ingress {manifest.namespace}/{manifest.name} at {', '.join(urls)}")
    return lines


async def _fetch_trusted_ca(server: str, token: NodeToken) -> bytes:
    """The server's CA PEM from `GET /cacerts`, trusted only because its hash is the token's:
    the connection itself is not verified (there is nothing yet to verify it with)."""
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(ssl=False)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.get(f"{server.rstrip('/')}/cacerts") as response,
    ):
        pem = await response.read()
        if response.status != 200:
            raise JoinError(f"{server}/cacerts answered {response.status}: not a kubeling server?")
    if not token.trusts(pem):
        raise JoinError("the server's CA does not match the token's hash")
    return pem


def _read_node_token(path: Path) -> NodeToken:
    try:
        return parse_node_token(path.expanduser().read_text())
    except OSError as err:
        raise UsageError(f"agent: cannot read {path}: {err.strerror or err}") from None
    except NodeTokenError as err:
        raise UsageError(f"agent: {path}: {err}") from None


async def _agent_client(args: argparse.Namespace) -> Client:
    if args.kubeconfig is not None:
        return Client.from_kubeconfig(args.kubeconfig, user_agent="kubeling-agent")
    token = _read_node_token(args.token_file)
    server = args.server.rstrip("/")
    ca_pem = await _fetch_trusted_ca(server, token)
    config = ClientConfig(server=server, ca_data=ca_pem, token=token.credential)
    return Client(config, user_agent="kubeling-agent")


async def _run_fake_agent(args: argparse.Namespace) -> None:
    client = await _agent_client(args)
    args.data_dir.expanduser().mkdir(parents=True, exist_ok=True)
    nodes: FakeNode | FakeNodes
    if args.name is not None:
        nodes, names = FakeNode(client, args.name), [args.name]
    else:
        nodes = FakeNodes(client, args.count, prefix=args.name_prefix or "fake-node-")
        names = [node.name for node in nodes]

    async def started() -> None:
        await nodes.start()
        await nodes.wait_synced(30)
        print(f"kubeling agent: fake nodes ready: {' '.join(names)}", flush=True)

    try:
        await _until_signalled(started)
    finally:
        # FakeNodes.stop() is safe on nodes that never started (a failed registration).
        await nodes.stop()
        await client.close()


def _default_node_name() -> str:
    """This machine's hostname as a node name (k3s's default), lower-cased (Node names are
    DNS subdomains; the server refuses one that is not, in one line)."""
    return socket.gethostname().lower()


async def _pick_pod_cidr(client: Client, name: str) -> str:
    """The pod CIDR the Node `name` already has, else the lowest /24 no Node has."""
    info = REGISTRY.by_path("", "v1", "nodes")
    assert info is not None
    used: set[str] = set()
    for node in (await client.list(info)).items:
        cidr = str((node.get("spec") or {}).get("podCIDR") or "")
        if node["metadata"]["name"] == name and cidr:
            return cidr
        used.add(cidr)
    for index in range(POD_CIDRS):
        if pod_cidr_for(index) not in used:
            return pod_cidr_for(index)
    raise JoinError("every pod CIDR of 127.128.0.0/9 is taken by a node")


async def _run_node_agent(args: argparse.Namespace) -> None:
    client = await _agent_client(args)
    try:
        name = args.name or _default_node_name()
        pod_cidr = await _pick_pod_cidr(client, name)
        data_dir = args.data_dir.expanduser()
        data_dir.mkdir(parents=True, exist_ok=True)
        # With a join token, the agent serves `kubectl logs` and `exec` for the API server,
        # which authenticates with the same node credential.
        endpoint_token = _read_node_token(args.token_file).credential if args.token_file else ""
        node = NodeAgent(
            client,
            name,
            data_dir=data_dir,
            pod_cidr=pod_cidr,
            lease_duration=args.lease_seconds,
            renew_interval=max(args.lease_seconds / 4, 0.5),
            endpoint_token=endpoint_token,
        )

        async def started() -> None:
            await node.start()
            print(f"kubeling agent: node {name} ready, pod CIDR {pod_cidr}", flush=True)

        try:
            await _until_signalled(started)
        finally:
            await node.stop()  # stops every pod's processes
    finally:
        await client.close()


def _check_agent(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise UsageError("agent: --count must be at least 1")
    if not args.fake and (args.count != 1 or args.name_prefix is not None):
        raise UsageError("agent: --count and --name-prefix are for simulated nodes (--fake)")
    if args.name is not None and (args.count != 1 or args.name_prefix is not None):
        raise UsageError("agent: --name names one node; use --count with --name-prefix for more")
    joins = bool(args.server or args.token_file)
    if args.kubeconfig is not None and joins:
        raise UsageError("agent: give either --server with --token-file, or --kubeconfig")
    if args.kubeconfig is None and not (args.server and args.token_file):
        raise UsageError("agent: give --server with --token-file (or --kubeconfig) to join")
    if args.server and not args.server.startswith(("https://", "http://")):
        raise UsageError(f"agent: --server {args.server!r} must be an https:// (or http://) URL")


def _ingress_ports(text: str) -> tuple[int, int] | None:
    """`--ingress-ports`: "auto" (80,443 as root, else 8080,8443), "none", or "HTTP,HTTPS"."""
    if text == "none":
        return None
    if text == "auto":
        return (80, 443) if os.geteuid() == 0 else (8080, 8443)
    try:
        http_port, https_port = (int(p) for p in text.split(","))
    except ValueError:
        raise UsageError(
            f"--ingress-ports {text!r}: give HTTP,HTTPS ports, 'auto' or 'none'"
        ) from None
    if not all(0 < p < 65536 for p in (http_port, https_port)):
        raise UsageError(f"--ingress-ports {text!r}: ports go from 1 to 65535")
    return http_port, https_port


def _check(args: argparse.Namespace) -> None:
    """Refuse, before anything starts, what cannot work."""
    if getattr(args, "lease_seconds", 2) < 2:
        raise UsageError("--lease-seconds must be at least 2")
    if args.command == "up":
        args.ingress = _ingress_ports(args.ingress_ports)
        if args.nodes < 0 or args.fake_nodes < 0:
            raise UsageError("--nodes and --fake-nodes must not be negative")
        try:
            args.manifests = [m for path in args.filename for m in load(path)]
        except ManifestError as err:
            raise UsageError(str(err)) from None
    if args.command == "agent":
        _check_agent(args)


async def _run(args: argparse.Namespace) -> None:
    if args.command == "agent":
        await (_run_fake_agent(args) if args.fake else _run_node_agent(args))
        return
    config = ServerConfig(
        data_dir=args.data_dir.expanduser(),
        port=args.port,
        datastore=args.datastore,
        bind=getattr(args, "bind", "127.0.0.1"),
    )
    if args.command == "up":
        await _serve(
            config,
            args.nodes,
            args.fake_nodes,
            args.manifests,
            args.lease_seconds,
            args.ingress,
        )
    else:
        await _serve(config)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        api = f"v{VERSION_INFO['major']}.{VERSION_INFO['minor']}"
        print(f"kubeling {__version__} (Kubernetes API {api})")
        return 0
    try:
        _check(args)
    except UsageError as err:
        print(f"kubeling: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(_run(args))
    except UsageError as err:  # found once running, e.g. an unreadable token file
        print(f"kubeling: {err}", file=sys.stderr)
        return 2
    except (JoinError, ManifestError) as err:
        print(f"kubeling: {err}", file=sys.stderr)
        return 1
    except ApiError as err:  # e.g. the agent's token is refused, or a node name is invalid
        print(f"kubeling: the API server refused: {err.message}", file=sys.stderr)
        return 1
    except aiohttp.ClientError as err:  # the server is not there (or went away)
        print(f"kubeling: cannot reach the API server: {err}", file=sys.stderr)
        return 1
    except TimeoutError:
        print("kubeling: the API server did not answer in time", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"kubeling: cannot start: {err.strerror or err}", file=sys.stderr)
        return 1
    except ValueError as err:  # an unknown datastore, a bad kubeconfig
        print(f"kubeling: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
