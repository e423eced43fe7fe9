"""TLS and credentials of a data dir: the cluster CA, the serving certificate, the admin token
and the admin kubeconfig.

Everything is generated on first start and reused after, so a kubeconfig handed out once keeps
working across restarts. Keys are written with mode 0600. The serving certificate names every
address a client may use for the API server: localhost, 127.0.0.1, the bind address and the
in-cluster names of the `kubernetes` Service.
"""

from __future__ import annotations

import base64
import datetime
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
    return Credentials(ca_cert, server_cert, server_key, token)


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
