"""Real `kubeling` processes for end-to-end tests: servers, agents and their output.

`Child` runs `python -m kubeling <args>` and reads its stdout line by line; `Kubeling` is a
server child with clients for it; `running(...)` is a ready server for a `with` block.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kubeling.testing.cluster import pinned_kubectl

START_TIMEOUT = 30.0  # seconds for a server to print that it is ready
STOP_TIMEOUT = 15.0  # seconds for a server to exit after a signal


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LineReader:
    """A child process whose stdout a thread reads line by line; its stderr goes to a file (a
    pipe nobody reads could fill up and block it)."""

    def __init__(
        self,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        new_session: bool = False,
    ) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by subclasses
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=new_session,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def wait_for_line(
        self, wanted: str | Callable[[str], bool], timeout: float = START_TIMEOUT
    ) -> str:
        """The first new stdout line starting with `wanted` (or satisfying it, a predicate);
        fails at the deadline or when the child exits first."""
        matches = wanted if callable(wanted) else (lambda line: line.startswith(wanted))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line {wanted!r} within {timeout}s; saw {self.lines!r}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"{self.proc.args[0]} exited ({self.proc.wait()}) before a line {wanted!r}; "
                    f"stdout {self.lines!r}; stderr:\n{self.stderr()}"
                )
            self.lines.append(line)
            if matches(line):
                return line

    def _release(self) -> None:
        self._reader.join(timeout=STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


class Child(LineReader):
    """`python -m kubeling <args>` as a child process."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        super().__init__([sys.executable, "-m", "kubeling", *args], cwd=cwd)

    def stop(self, sig: signal.Signals) -> int:
        """Send `sig` and return the exit code; fails if it takes longer than STOP_TIMEOUT."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            message = f"kubeling did not exit within {STOP_TIMEOUT}s of {sig.name}"
            raise AssertionError(message) from None

    def close(self) -> None:
        """Stop the child: SIGTERM first, so that a cluster or agent stops its pods'
        processes (SIGKILL would leave them running), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)
        self._release()


class Kubeling(Child):
    """`python -m kubeling <command> --data-dir D --port P` (a server) as a child process."""

    def __init__(
        self, command: str, data_dir: Path, port: int, *extra: str, cwd: Path | None = None
    ) -> None:
        super().__init__(command, "--data-dir", str(data_dir), "--port", str(port), *extra, cwd=cwd)
        self.data_dir = data_dir
        self.port = port

    def wait_ready(self) -> None:
        ready = self.wait_for_line("kubeling API server ready at ")
        assert ready.endswith(f"https://127.0.0.1:{self.port}"), ready
        self.wait_for_line("export KUBECONFIG=")

    # -- clients ------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    def kubectl(self, *args: str, kubeconfig: Path | None = None) -> str:
        """Run the pinned kubectl (own HOME and cache) against this server; returns stdout."""
        with tempfile.TemporaryDirectory(prefix="kubeling-home-") as home:
            env = {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig), "HOME": home}
            env.pop("KUBE_FEATURE_WatchListClient", None)
            result = subprocess.run(
                [pinned_kubectl(), "--cache-dir", os.path.join(home, "cache"), *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def connect(self) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.crt"))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=30)

    def request(self, path: str, token: str | None) -> tuple[int, dict]:
        """GET `path` over HTTPS verified by the data dir's CA, with `token` (or none)."""
        conn = self.connect()
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()


@contextlib.contextmanager
def running(
    command: str, data_dir: Path, port: int | None = None, *extra: str
) -> Iterator[Kubeling]:
    """A ready kubeling server; killed at the end of the block if it is still running."""
    server = Kubeling(command, data_dir, port or free_port(), *extra)
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()
