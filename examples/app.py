"""hello: the demo app of `kubeling up -f examples/` (standard library only).

An HTTP server that behaves like a real service during a rollout:

* binds `$POD_IP` (the address kubeling gives each pod; 127.0.0.1 outside a pod) on `$PORT`
  (default 8080);
* **warms up** for `$WARMUP_SECONDS` (default 2): until then `/healthz` answers 503 and `/`
  answers 500, which is what a rollout without a readiness probe would send users to;
  afterwards `/healthz` is 200 and `/` greets with the pod's name, IP and version;
* `/livez` answers 200 whenever the server answers at all, warm or not: the liveness check
  asks only "is this process stuck?", so a pod that is still warming up (or whose readiness
  fails for any other reason) is taken out of rotation, never restarted;
* `/version` is `$VERSION`; `/config` is the content of `$CONFIG_FILE`, a file of a mounted
  ConfigMap (see `config_path`);
* **drains on SIGTERM**: stops accepting connections, finishes the requests in flight, exits 0.

Run it alone with `python3 examples/app.py` and `curl http://127.0.0.1:8080/`.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STARTED = time.monotonic()
WARMUP = float(os.environ.get("WARMUP_SECONDS", "2"))
VERSION = os.environ.get("VERSION", "dev")
POD_NAME = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME", "")
POD_IP = os.environ.get("POD_IP") or "127.0.0.1"


def config_path(path: str) -> Path:
    """Where the mounted file `path` really is. When the agent cannot mount volumes at their
    `mountPath` (it does so only as root), it passes each mount's host directory as
    `KUBELING_MOUNT_<MOUNT_PATH>` (upper-cased, other characters `_`): `/etc/hello/greeting`
    is then `$KUBELING_MOUNT_ETC_HELLO/greeting`."""
    wanted = Path(path)
    if wanted.exists():
        return wanted
    for mount in wanted.parents:
        name = re.sub(r"[^A-Za-z0-9]", "_", str(mount).strip("/")).upper() or "ROOT"
        host = os.environ.get(f"KUBELING_MOUNT_{name}")
        if host:
            return Path(host, wanted.relative_to(mount))
    return wanted


def warm() -> bool:
    return time.monotonic() - STARTED >= WARMUP


class Handler(BaseHTTPRequestHandler):
    # An idle kept-alive connection (proxies keep them) is dropped after this many seconds, so
    # a drain never waits on a client that sends nothing more.
    timeout = 5
    server_version = f"hello/{VERSION}"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/livez":
            self.reply(200, "ok\n")
        elif path == "/healthz":
            if warm():
                self.reply(200, "ok\n")
            else:
                self.reply(503, "warming up\n")
        elif path == "/version":
            self.reply(200, f"{VERSION}\n")
        elif path == "/config":
            self.config()
        elif path == "/":
            if not warm():
                self.reply(500, "not ready yet: still warming up\n")
            else:
                secret = "set" if os.environ.get("API_TOKEN") else "not set"
                greeting = os.environ.get("GREETING", "Hello from kubeling")
                self.reply(
                    200,
                    f"{greeting}! pod {POD_NAME} at {POD_IP}, version {VERSION}"
                    f" (API token {secret})\n",
                )
        else:
            self.reply(404, "not found\n")

    def config(self) -> None:
        name = os.environ.get("CONFIG_FILE")
        if not name:
            self.reply(404, "no CONFIG_FILE set\n")
            return
        try:
            self.reply(200, config_path(name).read_text())
        except OSError as err:
            self.reply(500, f"cannot read {name}: {err.strerror}\n")

    def reply(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


class Server(ThreadingHTTPServer):
    # Request threads are joined by server_close(): that is the drain.
    daemon_threads = False
    block_on_close = True
    # The listen backlog (socketserver's default is 5): a burst that overflows it has its
    # connection attempts retried by the kernel seconds later, or reset when a drain closes
    # the listening socket.
    request_queue_size = 128


def main() -> int:
    port = int(os.environ.get("PORT", "8080"))
    server = Server((POD_IP, port), Handler)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve_forever, name="serve")
    serving.start()
    print(f"hello {VERSION} listening on http://{POD_IP}:{port}/", flush=True)
    stop.wait()
    print("draining: no new connections, finishing requests in flight", flush=True)
    server.shutdown()  # the accept loop ends
    server.server_close()  # the socket closes; waits for the requests in flight
    serving.join()
    print("drained, bye", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
