"""Encryption at rest: a `Store` wrapper that encrypts the values of Secrets.

Kubernetes stores Secrets in plain text unless told otherwise; kubeling encrypts them by
default (DESIGN.md § 7), the way Kubernetes' `aesgcm` provider does, below every other layer so
nothing above the store ever sees ciphertext:

* Values of keys under the encrypted prefixes are written as
  `k8s:enc:aesgcm:v1:<key name>:` + 12-byte random nonce + AES-256-GCM ciphertext, with the
  storage key as associated data (a value copied to another key does not decrypt).
* Reads try the key named in the prefix; values without the prefix are plain text written
  before encryption was on, and are returned as they are.
* Rotation: the key file lists keys newest first. The first key encrypts; all of them decrypt.
  Add a new key at the top, restart, and rewrite the Secrets (any update re-encrypts); then the
  old key can be removed.

The key file (`<data-dir>/encryption-keys`, mode 0600) holds one `name:base64(32 bytes)` per
line. Anyone who can read it can read the Secrets: it protects the database file, backups and
copies of it, not a compromised host.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import os
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kubeling.storage.interface import Event, KeyValue, ListResult, StorageError, Store

PREFIX = b"k8s:enc:aesgcm:v1:"
ENCRYPTED_PREFIXES = ("/registry/secrets/",)
_NONCE = 12


@dataclass(frozen=True)
class Keyring:
    """Named AES-256 keys; the first one encrypts."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("an encryption keyring needs at least one key")
        for name, key in self.keys:
            if len(key) != 32 or not name or ":" in name:
                raise ValueError(f"invalid encryption key {name!r}: need a name and 32 bytes")

    @classmethod
    def load_or_create(cls, path: Path) -> Keyring:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            line = f"key1:{base64.b64encode(secrets.token_bytes(32)).decode()}\n"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        keys: list[tuple[str, bytes]] = []
        for number, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, encoded = line.partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                key = b""
            if not sep or len(key) != 32:
                raise ValueError(f"{path}:{number}: expected `name:base64 of 32 bytes`")
            keys.append((name.strip(), key))
        return cls(tuple(keys))


class EncryptedStore:
    """A `Store` whose Secrets are encrypted in the store underneath."""

    def __init__(
        self, inner: Store, keyring: Keyring, prefixes: tuple[str, ...] = ENCRYPTED_PREFIXES
    ) -> None:
        self.inner = inner
        self.prefixes = prefixes
        self._name, key = keyring.keys[0]
        self._writer = AESGCM(key)
        self._readers = {name: AESGCM(key) for name, key in keyring.keys}

    def _covers(self, key: str) -> bool:
        return key.startswith(self.prefixes)

    def encrypt(self, key: str, value: bytes) -> bytes:
        if not self._covers(key):
            return value
        nonce = os.urandom(_NONCE)
        sealed = self._writer.encrypt(nonce, value, key.encode())
        return PREFIX + self._name.encode() + b":" + nonce + sealed

    def decrypt(self, key: str, value: bytes) -> bytes:
        if not value.startswith(PREFIX):
            return value
        name, sep, rest = value[len(PREFIX) :].partition(b":")
        reader = self._readers.get(name.decode(errors="replace"))
        if not sep or reader is None:
            raise StorageError(f"{key}: encrypted with unknown key {name!r}")
        try:
            return reader.decrypt(rest[:_NONCE], rest[_NONCE:], key.encode())
        except InvalidTag:
            raise StorageError(f"{key}: cannot decrypt (wrong key or corrupted value)") from None

    def _open(self, kv: KeyValue | None) -> KeyValue | None:
        if kv is None or not self._covers(kv.key):
            return kv
        return replace(kv, value=self.decrypt(kv.key, kv.value))

    def _open_kv(self, kv: KeyValue) -> KeyValue:
        opened = self._open(kv)
        assert opened is not None
        return opened

    async def get(self, key: str) -> KeyValue | None:
        return self._open(await self.inner.get(key))

    async def list(
        self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0
    ) -> ListResult:
        result = await self.inner.list(
            prefix, revision=revision, start_after=start_after, limit=limit
        )
        return replace(result, items=[self._open_kv(kv) for kv in result.items])

    async def create(self, key: str, value: bytes) -> KeyValue:
        kv = await self.inner.create(key, self.encrypt(key, value))
        return replace(kv, value=value)

    async def update(self, key: str, value: bytes, *, expected_revision: int = 0) -> KeyValue:
        kv = await self.inner.update(
            key, self.encrypt(key, value), expected_revision=expected_revision
        )
        return replace(kv, value=value)

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        return self._open_kv(await self.inner.delete(key, expected_revision=expected_revision))

    async def watch(self, prefix: str, after: int) -> AsyncGenerator[builtins.list[Event], None]:
        # aclosing: closing this watch must close (unregister) the inner one at once.
        async with contextlib.aclosing(self.inner.watch(prefix, after)) as events:
            async for batch in events:
                yield [
                    replace(ev, kv=self._open_kv(ev.kv), prev=self._open(ev.prev)) for ev in batch
                ]

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compacted_revision(self) -> int:
        return await self.inner.compacted_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def close(self) -> None:
        await self.inner.close()
