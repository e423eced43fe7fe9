"""What a node agent plugs into its endpoint (`kubeling.agent.server`): container handles over
its pod workers, and the endpoint's self-signed certificate.

    self.endpoint = AgentServer(
        workers_lookup(self.workers.values), token=credential,
        ssl_context=self_signed_context(self.data_dir / "tls"),
    )
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path

from kubeling.agent.podworker import ContainerRecord, PodWorker
from kubeling.agent.runtime import ContainerStartError
from kubeling.agent.server import ContainerHandle, ExecStream, Lookup
from kubeling.util.selfsigned import self_signed_certificate


class RecordHandle:
    """The `ContainerHandle` of one container of a pod worker (its `ContainerRecord`).

    Which file is "current" and which "previous" follows the kubelet's choice of container id
    from the status the worker reports: the running or last terminated instance is current;
    the previous one is the instance before it (`lastState`), or, while the container waits to
    start again (CrashLoopBackOff, a failed start), the instance that ended (then both)."""

    def __init__(self, record: ContainerRecord) -> None:
        self.record = record

    def _current(self) -> Path | None:
        instance = self.record.instance
        spec = getattr(instance, "spec", None)
        return getattr(spec, "log_path", None)

    def log_path(self, previous: bool) -> Path | None:
        current = self._current()
        if not previous or current is None:
            return current
        record = self.record
        # As the worker's status says: waiting to start again, the ended instance is lastState.
        waiting_again = getattr(record, "start_failed", False) or (
            record.waiting_reason == "CrashLoopBackOff"
        )
        if waiting_again and record.terminated is not None:
            return current
        if record.last_state is None or not current.stem.isdigit():
            return None
        return current.with_name(f"{int(current.stem) - 1}{current.suffix}")

    def is_running(self) -> bool:
        instance = self.record.instance
        return bool(instance is not None and instance.running)

    async def exec_stream(self, argv: list[str], *, tty: bool, stdin: bool) -> ExecStream:
        instance = self.record.instance
        start = getattr(instance, "exec_stream", None)
        if instance is None or start is None or not instance.running:
            raise ContainerStartError(
                "ContainerNotRunning",
                f'container "{self.record.name}" is not running',
                exit_code=126,
            )
        stream: ExecStream = await start(argv, tty=tty, stdin=stdin)
        return stream


def workers_lookup(workers: Callable[[], Iterable[PodWorker]]) -> Lookup:
    """A `Lookup` over the pod workers `workers()` returns (the agent's current ones)."""

    def lookup(namespace: str, pod: str, container: str) -> ContainerHandle | None:
        found: ContainerHandle | None = None
        for worker in workers():
            meta = worker.pod["metadata"]
            if meta.get("namespace") != namespace or meta.get("name") != pod:
                continue
            record = worker.records.get(container) or next(
                (r for r in worker.init_records if r.name == container), None
            )
            if record is not None:
                found = RecordHandle(record)
                if not worker.gone:  # a pod of the same name being replaced is second choice
                    return found
        return found

    return lookup


def self_signed_context(directory: Path, host: str = "127.0.0.1") -> ssl.SSLContext:
    """A server context with a self-signed certificate kept in `directory` (made once)."""
    cert_path, key_path = directory / "agent.crt", directory / "agent.key"
    if not cert_path.exists() or not key_path.exists():
        cert_pem, key_pem = self_signed_certificate(host, common_name="kubeling-agent", days=3650)
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        cert_path.write_bytes(cert_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["http/1.1"])
    return context
