"""`kubeling up | server | version`: the command line of DESIGN.md § 2.

Every command runs in the foreground until Ctrl-C or SIGTERM and then stops cleanly: open
connections are closed, the store is flushed and closed. Errors the user can fix (a port in
use, an unknown datastore) are one readable line on stderr and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from kubeling import __version__
from kubeling.apiserver.app import VERSION_INFO
from kubeling.apiserver.server import ServerConfig
from kubeling.cluster import Cluster

DEFAULT_DATA_DIR = Path.home() / ".kubeling"


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
        "--fake-nodes",
        type=int,
        default=0,
        metavar="M",
        help="simulated nodes that run no processes (kwok-like; default 0)",
    )
    server = commands.add_parser("server", help="run the API server (control plane)")
    server_flags(server, bind=True)
    commands.add_parser("version", help="print the kubeling and Kubernetes API versions")
    return parser


async def _serve(config: ServerConfig, fake_nodes: int = 0) -> None:
    cluster = Cluster(config, fake_nodes=fake_nodes)
    await cluster.start()
    server = cluster.server
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"kubeling API server ready at {server.url}", flush=True)
    print(f"export KUBECONFIG={server.kubeconfig_path}", flush=True)
    try:
        await stop.wait()
    finally:
        print("stopping...", file=sys.stderr, flush=True)
        await cluster.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        api = f"v{VERSION_INFO['major']}.{VERSION_INFO['minor']}"
        print(f"kubeling {__version__} (Kubernetes API {api})")
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "fake_nodes", 0) < 0:
        print("kubeling: --fake-nodes must not be negative", file=sys.stderr)
        return 2
    config = ServerConfig(
        data_dir=args.data_dir.expanduser(),
        port=args.port,
        datastore=args.datastore,
        bind=getattr(args, "bind", "127.0.0.1"),
    )
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(_serve(config, getattr(args, "fake_nodes", 0)))
    except OSError as err:
        print(f"kubeling: cannot start: {err.strerror or err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"kubeling: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
