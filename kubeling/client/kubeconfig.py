"""Where the cluster is and who we are: a kubeconfig file loaded into a `ClientConfig`.

Every kubeling component reaches the API server through `kubeling.client.rest.Client`, and the
client is configured by a `ClientConfig` only. A `ClientConfig` comes from a kubeconfig file
(`load_kubeconfig`, what `kubectl` reads) or is built directly (an agent started with
`--server URL --token-file FILE`).

What is read, as client-go reads it:

* The context: `context=` if given, else `current-context`; it names a cluster, a user and a
  default namespace (`default` when absent).
* The cluster: `server`, `certificate-authority-data` (base64 PEM) or `certificate-authority`
  (a file), `insecure-skip-tls-verify`, `tls-server-name`.
* The user: `token` or `tokenFile` (re-read on every `bearer_token()` call, because projected
  and rotated tokens change under a running process), and `client-certificate` /
  `client-key` files.
* Relative file paths are relative to the kubeconfig file that names them.
* `$KUBECONFIG` may list several files (`:`-separated); as in kubectl, the first file to
  define a name wins and the first `current-context` wins.

Not supported (a clear `KubeconfigError`, never a silent fallback): exec and auth-provider
plugins, and client certificates given inline as `*-data` (Python's `ssl` loads key pairs from
files only).
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(ValueError):
    """The kubeconfig is missing, malformed, or asks for something kubeling cannot do."""


@dataclass(frozen=True)
class ClientConfig:
    """Everything the REST client needs to reach and authenticate to one API server."""

    server: str
    ca_data: bytes | None = None  # PEM
    ca_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    insecure_skip_tls_verify: bool = False
    client_cert_file: str | None = None
    client_key_file: str | None = None
    tls_server_name: str | None = None
    namespace: str = "default"

    def __post_init__(self) -> None:
        if not self.server.startswith(("https://", "http://")):
            raise KubeconfigError(f"server {self.server!r} must be an http:// or https:// URL")

    def bearer_token(self) -> str | None:
        """The token to send, read afresh from `token_file` when there is one."""
        if self.token:
            return self.token
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip() or None
            except OSError as err:
                raise KubeconfigError(f"cannot read token file {self.token_file}: {err}") from err
        return None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for an https server (None for http)."""
        if not self.server.startswith("https://"):
            return None
        if self.insecure_skip_tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            cadata = self.ca_data.decode() if self.ca_data else None
            context = ssl.create_default_context(cafile=self.ca_file, cadata=cadata)
        if self.client_cert_file:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return context


def default_paths() -> list[Path]:
    """`$KUBECONFIG` (several files allowed), else `~/.kube/config`."""
    env = os.environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return paths or [Path.home() / ".kube" / "config"]


def load_kubeconfig(
    path: str | os.PathLike[str] | None = None, context: str | None = None
) -> ClientConfig:
    """Load the context `context` (default: the current one) of a kubeconfig file."""
    paths = [Path(path)] if path is not None else default_paths()
    documents: list[tuple[Path, Mapping[str, Any]]] = []
    for p in paths:
        if not p.exists():
            if path is not None or len(paths) == 1:
                raise KubeconfigError(f"kubeconfig {p} does not exist")
            continue
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise KubeconfigError(f"cannot read kubeconfig {p}: {err}") from err
        if not isinstance(loaded, Mapping):
            raise KubeconfigError(f"kubeconfig {p} is not a mapping")
        documents.append((p.resolve().parent, loaded))
    return config_from_documents(documents, context)


def config_from_documents(
    documents: list[tuple[Path, Mapping[str, Any]]], context: str | None = None
) -> ClientConfig:
    """Merge parsed kubeconfig documents (each with the directory it came from)."""
    current = context or next(
        (str(d["current-context"]) for _, d in documents if d.get("current-context")), ""
    )
    if not current:
        raise KubeconfigError("the kubeconfig has no current-context and none was given")
    ctx, _ = _named(documents, "contexts", "context", current)
    cluster, cluster_dir = _named(documents, "clusters", "cluster", str(ctx.get("cluster", "")))
    user: Mapping[str, Any] = {}
    user_dir = cluster_dir
    if ctx.get("user"):
        user, user_dir = _named(documents, "users", "user", str(ctx["user"]))
    for unsupported in ("exec", "auth-provider", "client-certificate-data", "client-key-data"):
        if user.get(unsupported):
            raise KubeconfigError(f"user {ctx.get('user')!r}: {unsupported} is not supported")
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} has no server")
    return ClientConfig(
        server=str(server).rstrip("/"),
        ca_data=_b64(cluster.get("certificate-authority-data"), "certificate-authority-data"),
        ca_file=_file(cluster.get("certificate-authority"), cluster_dir),
        token=str(user["token"]) if user.get("token") else None,
        token_file=_file(user.get("tokenFile"), user_dir),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        client_cert_file=_file(user.get("client-certificate"), user_dir),
        client_key_file=_file(user.get("client-key"), user_dir),
        tls_server_name=cluster.get("tls-server-name") or None,
        namespace=str(ctx.get("namespace") or "default"),
    )


def _named(
    documents: list[tuple[Path, Mapping[str, Any]]], section: str, field: str, name: str
) -> tuple[Mapping[str, Any], Path]:
    for directory, doc in documents:
        for entry in doc.get(section) or []:
            if isinstance(entry, Mapping) and entry.get("name") == name:
                body = entry.get(field) or {}
                if not isinstance(body, Mapping):
                    raise KubeconfigError(f"{section} entry {name!r} is malformed")
                return body, directory
    raise KubeconfigError(f"{section[:-1]} {name!r} is not defined in the kubeconfig")


def _b64(value: Any, what: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as err:
        raise KubeconfigError(f"{what} is not valid base64: {err}") from err


def _file(value: Any, directory: Path) -> str | None:
    if not value:
        return None
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else directory / p)
