"""`kubeling up | server | agent | version`: the command line of DESIGN.md § 2.

Every command runs in the foreground until Ctrl-C or SIGTERM and then stops cleanly: open
connections are closed, the store is flushed and closed. Errors the user can fix (a port in
use, an unknown datastore, a server that cannot be reached, a feature not built yet) are one
readable line on stderr and a non-zero exit, not a traceback: exit 2 for a command line that
cannot work as given, 1 for a failure while running.

Nodes that run processes are not built yet: `up --nodes N` with N > 0 and `agent` without
`--fake` say so and exit 2, so that scripts written for the final command line fail loudly
rather than run a cluster without the nodes they asked for.
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
from kubeling.agent import FakeNodes
from kubeling.api.errors import ApiError
from kubeling.apiserver.app import VERSION_INFO
from kubeling.apiserver.server import ServerConfig
from kubeling.client.rest import Client
from kubeling.cluster import Cluster

DEFAULT_DATA_DIR = Path.home() / ".kubeling"
NO_REAL_NODES = "nodes that run processes are not available yet"


class UsageError(Exception):
    """A command line that cannot work as given: one line on stderr, exit 2."""


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
    agent.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="the cluster to join (default $KUBECONFIG, as kubectl)",
    )
    agent.add_argument(
        "--fake",
        action="store_true",
        help="run simulated nodes (kwok-like; the only kind available yet)",
    )
    agent.add_argument(
        "--count", type=int, default=1, metavar="N", help="how many nodes to run (default 1)"
    )
    agent.add_argument(
        "--name-prefix",
        default="fake-node-",
        metavar="PREFIX",
        help="nodes are named PREFIX0, PREFIX1, ... (default fake-node-, as `up --fake-nodes`;"
        " give each agent its own)",
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


async def _run_fake_agent(kubeconfig: Path | None, count: int, prefix: str) -> None:
    client = Client.from_kubeconfig(kubeconfig, user_agent="kubeling-agent")
    nodes = FakeNodes(client, count, prefix=prefix)

    async def started() -> None:
        await nodes.start()
        await nodes.wait_synced(30)
        names = " ".join(node.name for node in nodes)
        print(f"kubeling agent: fake nodes ready: {names}", flush=True)

    try:
        await _until_signalled(started)
    finally:
        # FakeNodes.stop() is safe on nodes that never started (a failed registration).
        await nodes.stop()
        await client.close()


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
        if not args.fake:
            raise UsageError(f"agent: {NO_REAL_NODES}; use --fake for simulated nodes")
        if args.count < 1:
            raise UsageError("agent: --count must be at least 1")


async def _run(args: argparse.Namespace) -> None:
    if args.command == "agent":
        await _run_fake_agent(args.kubeconfig, args.count, args.name_prefix)
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
