"""TLS and credentials of a data dir: the cluster CA, the serving certificate, the admin token,
the admin kubeconfig and the node join token.

Everything is generated on first start and reused after, so a kubeconfig or join token handed
out once keeps working across restarts. Keys and tokens are written with mode 0600. The serving
certificate names every address a client may use for the API server: localhost, 127.0.0.1, the
bind address and the in-cluster names of the `kubernetes` Service.

**The node join token** (`<data-dir>/node-token`) has k3s's shape:

    K10<sha256 hex of the CA certificate PEM>::node:<secret>

The part before `::` lets a joining agent trust the server without being given the CA: it
fetches the PEM from the unauthenticated `GET /cacerts` over a TLS connection it does not
verify, and uses it only if its SHA-256 is the token's (k3s's "secure" token format). The part
after `::`, `node:<secret>` (the *credential*), is what the agent then sends as its bearer
token; the API server authenticates it as the user `system:node` (there is no RBAC: it only
authenticates). The bearer token is the whole `node:<secret>` rather than the secret alone: the
token's two halves are then exactly the two things an agent uses, and the user part leaves room
for other kinds of join token, as k3s's `server:` ones.

If the CA is ever regenerated (its files deleted), the hash in the token file is rewritten and
the secret kept, so a token file is always current after the server has started.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=3650)

NODE_TOKEN_PREFIX = "K10"
KUBERNETES_SERVICE_IP = "127.96.0.1"  # default/kubernetes: pods verify the API server by it
NODE_USER = "node"  # the user part of a node token's credential
NODE_USER_NAME = "system:node"  # who a node credential authenticates as


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class Credentials:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    admin_token: str
    node_credential: str  # `node:<secret>`, the bearer token of the node join token

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        # kubectl speaks HTTP/2 if offered; the server speaks HTTP/1.1 only.
        context.set_alpn_protocols(["http/1.1"])
        return context


def ensure_credentials(data_dir: Path, hosts: list[str]) -> Credentials:
    tls = data_dir / "tls"
    ca_cert, ca_key = tls / "ca.crt", tls / "ca.key"
    server_cert, server_key = tls / "server.crt", tls / "server.key"
    now = datetime.datetime.now(datetime.UTC)
    if not ca_cert.exists() or not ca_key.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("kubeling-ca"))
            .issuer_name(_name("kubeling-ca"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(ca_key, _key_pem(key))
        _write_private(ca_cert, cert.public_bytes(serialization.Encoding.PEM))
        server_cert.unlink(missing_ok=True)
    if not server_cert.exists() or not server_key.exists() or not _covers(server_cert, hosts):
        _issue_server_cert(ca_cert, ca_key, server_cert, server_key, hosts, now)
    token_file = data_dir / "admin-token"
    if not token_file.exists():
        _write_private(token_file, secrets.token_hex(32).encode())
    token = token_file.read_text().strip()
    node_credential = _ensure_node_token(data_dir / "node-token", ca_cert.read_bytes())
    return Credentials(ca_cert, server_cert, server_key, token, node_credential)


# -- the node join token ----------------------------------------------------------------------


class NodeTokenError(ValueError):
    """A node token that is not `K10<sha256 hex>::<user>:<secret>`."""


@dataclass(frozen=True)
class NodeToken:
    """A parsed node join token; see the module docstring."""

    ca_hash: str  # sha256 hex of the CA certificate PEM
    credential: str  # `<user>:<secret>`: the bearer token

    def __str__(self) -> str:
        return f"{NODE_TOKEN_PREFIX}{self.ca_hash}::{self.credential}"

    def trusts(self, ca_pem: bytes) -> bool:
        """Whether `ca_pem` is the CA this token was made for."""
        return ca_hash(ca_pem) == self.ca_hash


def ca_hash(ca_pem: bytes) -> str:
    return hashlib.sha256(ca_pem).hexdigest()


def parse_node_token(text: str) -> NodeToken:
    """Parse a node token (surrounding whitespace ignored); `NodeTokenError` if malformed."""
    head, sep, credential = text.strip().partition("::")
    digest = head.removeprefix(NODE_TOKEN_PREFIX)
    user, colon, secret = credential.partition(":")
    if (
        not sep
        or not head.startswith(NODE_TOKEN_PREFIX)
        or len(digest) != 64
        or any(c not in "0123456789abcdef" for c in digest)
        or not (user and colon and secret)
    ):
        raise NodeTokenError(
            f"not a node token (expected {NODE_TOKEN_PREFIX}<sha256 hex>::{NODE_USER}:<secret>)"
        )
    return NodeToken(digest, credential)


def _ensure_node_token(path: Path, ca_pem: bytes) -> str:
    """Write `path` once (a new secret) and keep its secret afterwards; returns the credential."""
    credential = f"{NODE_USER}:{secrets.token_hex(16)}"
    if path.exists():
        try:
            credential = parse_node_token(path.read_text()).credential
        except NodeTokenError as err:
            raise NodeTokenError(f"{path}: {err}; delete it to have a new one made") from None
    token = str(NodeToken(ca_hash(ca_pem), credential))
    if not path.exists() or path.read_text().strip() != token:
        _write_private(path, f"{token}\n".encode())
    return credential


def _sans(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in [
        "localhost",
        "127.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        KUBERNETES_SERVICE_IP,
        *hosts,
    ]:
        if not host or host in seen or host in ("0.0.0.0", "::"):
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _covers(cert_path: Path, hosts: list[str]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(name in present for name in _sans(hosts))


def _issue_server_cert(
    ca_cert: Path,
    ca_key: Path,
    cert_path: Path,
    key_path: Path,
    hosts: list[str],
    now: datetime.datetime,
) -> None:
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_key} is not an EC private key")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_sans(hosts)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def write_kubeconfig(path: Path, server_url: str, credentials: Credentials) -> None:
    ca_data = base64.b64encode(credentials.ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubeling",
                "cluster": {"server": server_url, "certificate-authority-data": ca_data},
            }
        ],
        "users": [{"name": "kubeling-admin", "user": {"token": credentials.admin_token}}],
        "contexts": [
            {
                "name": "kubeling",
                "context": {
                    "cluster": "kubeling",
                    "user": "kubeling-admin",
                    "namespace": "default",
                },
            }
        ],
        "current-context": "kubeling",
        "preferences": {},
    }
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
