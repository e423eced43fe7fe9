"""`kubeling up | server | agent | version`: the command line of DESIGN.md § 2.

Every command runs in the foreground until Ctrl-C or SIGTERM and then stops cleanly: open
connections are closed, the store is flushed and closed. Errors the user can fix (a port in
use, an unknown datastore, a server that cannot be reached, a feature not built yet) are one
readable line on stderr and a non-zero exit, not a traceback: exit 2 for a command line that
cannot work as given, 1 for a failure while running.

Nodes that run processes are not built yet: `up --nodes N` with N > 0 and `agent` without
`--fake` say so and exit 2, so that scripts written for the final command line fail loudly
rather than run a cluster without the nodes they asked for.

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
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from kubeling import __version__
from kubeling.agent import FakeNode, FakeNodes
from kubeling.api.errors import ApiError
from kubeling.apiserver.app import VERSION_INFO
from kubeling.apiserver.certs import NodeToken, NodeTokenError, parse_node_token
from kubeling.apiserver.server import ServerConfig
from kubeling.client.kubeconfig import ClientConfig
from kubeling.client.rest import Client
from kubeling.cluster import Cluster

DEFAULT_DATA_DIR = Path.home() / ".kubeling"
NO_REAL_NODES = "nodes that run processes are not available yet"


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
        default=0,
        metavar="N",
        help="local nodes that run pods as processes (not available yet; default 0)",
    )
    up.add_argument(
        "--fake-nodes",
        type=int,
        default=0,
        metavar="M",
        help="simulated nodes that run no processes (kwok-like; default 0)",
    )
    server = commands.add_parser("server", help="run the API server (control plane)")
    server_flags(server, bind=True)
    agent = commands.add_parser("agent", help="run node agents against a running server")
    agent.add_argument("--server", metavar="URL", help="the API server to join (with --token-file)")
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
        "--name", metavar="NODE", help="the node's name (one node; default fake-node-0)"
    )
    agent.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="the agent's own state, created if missing (default ~/.kubeling;"
        " simulated nodes keep none)",
    )
    agent.add_argument(
        "--fake",
        action="store_true",
        help="run simulated nodes (kwok-like; the only kind available yet)",
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


async def _serve(config: ServerConfig, fake_nodes: int = 0) -> None:
    cluster = Cluster(config, fake_nodes=fake_nodes)

    async def started() -> None:
        await cluster.start()
        server = cluster.server
        print(f"kubeling API server ready at {server.url}", flush=True)
        print(f"export KUBECONFIG={server.kubeconfig_path}", flush=True)

    try:
        await _until_signalled(started)
    finally:
        await cluster.stop()


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


def _check_agent(args: argparse.Namespace) -> None:
    if not args.fake:
        raise UsageError(f"agent: {NO_REAL_NODES}; use --fake for simulated nodes")
    if args.count < 1:
        raise UsageError("agent: --count must be at least 1")
    if args.name is not None and (args.count != 1 or args.name_prefix is not None):
        raise UsageError("agent: --name names one node; use --count with --name-prefix for more")
    joins = bool(args.server or args.token_file)
    if args.kubeconfig is not None and joins:
        raise UsageError("agent: give either --server with --token-file, or --kubeconfig")
    if args.kubeconfig is None and not (args.server and args.token_file):
        raise UsageError("agent: give --server with --token-file (or --kubeconfig) to join")
    if args.server and not args.server.startswith(("https://", "http://")):
        raise UsageError(f"agent: --server {args.server!r} must be an https:// (or http://) URL")


def _check(args: argparse.Namespace) -> None:
    """Refuse, before anything starts, what cannot work."""
    if args.command == "up":
        if args.nodes < 0 or args.fake_nodes < 0:
            raise UsageError("--nodes and --fake-nodes must not be negative")
        if args.nodes > 0:
            raise UsageError(
                f"--nodes {args.nodes}: {NO_REAL_NODES}; use --fake-nodes for simulated nodes"
            )
    if args.command == "agent":
        _check_agent(args)


async def _run(args: argparse.Namespace) -> None:
    if args.command == "agent":
        await _run_fake_agent(args)
        return
    config = ServerConfig(
        data_dir=args.data_dir.expanduser(),
        port=args.port,
        datastore=args.datastore,
        bind=getattr(args, "bind", "127.0.0.1"),
    )
    await _serve(config, getattr(args, "fake_nodes", 0))


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
    except JoinError as err:
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
