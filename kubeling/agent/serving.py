"""What a node agent plugs into its endpoint (`kubeling.agent.server`): container handles over
its pod workers, and the endpoint's self-signed certificate.

    self.endpoint = AgentServer(
        workers_lookup(self.workers.values), token=credential,
        ssl_context=self_signed_context(self.data_dir / "tls"),
    )
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubeling.agent.podworker import ContainerRecord, PodWorker
from kubeling.agent.runtime import ContainerStartError
from kubeling.agent.server import ContainerHandle, ExecStream, Lookup


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
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeling-agent")])
        now = datetime.now(UTC)
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        key_bytes = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_bytes)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["http/1.1"])
    return context
