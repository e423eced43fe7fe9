import base64
import sqlite3

import pytest

from kubeling.storage import MemoryStore, StorageError
from kubeling.storage.encryption import PREFIX, EncryptedStore, Keyring

SECRET = "/registry/secrets/default/db"
PLAIN = b'{"data":{"password":"aHVudGVyMg=="}}'


def _keyring(*names: str) -> Keyring:
    return Keyring(tuple((name, bytes([i + 1]) * 32) for i, name in enumerate(names)))


async def test_secret_values_are_encrypted_underneath_and_plain_above():
    inner = MemoryStore()
    store = EncryptedStore(inner, _keyring("k1"))
    created = await store.create(SECRET, PLAIN)
    assert created.value == PLAIN
    raw = await inner.get(SECRET)
    assert raw is not None and raw.value.startswith(PREFIX + b"k1:")
    assert b"aHVudGVyMg" not in raw.value
    got = await store.get(SECRET)
    assert got is not None and got.value == PLAIN
    listed = await store.list("/registry/secrets/")
    assert [kv.value for kv in listed.items] == [PLAIN]


async def test_other_resources_are_stored_as_they_are():
    inner = MemoryStore()
    store = EncryptedStore(inner, _keyring("k1"))
    await store.create("/registry/configmaps/default/c", b"{}")
    raw = await inner.get("/registry/configmaps/default/c")
    assert raw is not None and raw.value == b"{}"


async def test_watch_and_delete_return_plain_values():
    store = EncryptedStore(MemoryStore(), _keyring("k1"))
    kv = await store.create(SECRET, PLAIN)
    await store.update(SECRET, PLAIN + b" ", expected_revision=kv.mod_revision)
    deleted = await store.delete(SECRET)
    assert deleted.value == PLAIN + b" "
    watch = store.watch("/registry/", 0)
    seen = []
    async for batch in watch:
        seen.extend(batch)
        if len(seen) == 3:
            break
    await watch.aclose()
    assert [e.kv.value for e in seen] == [PLAIN, PLAIN + b" ", PLAIN + b" "]
    assert seen[1].prev is not None and seen[1].prev.value == PLAIN


async def test_rotation_reads_old_keys_and_writes_with_the_newest():
    inner = MemoryStore()
    await EncryptedStore(inner, _keyring("old")).create(SECRET, PLAIN)
    rotated = EncryptedStore(inner, Keyring((("new", b"\x09" * 32), ("old", b"\x01" * 32))))
    got = await rotated.get(SECRET)
    assert got is not None and got.value == PLAIN
    await rotated.update(SECRET, PLAIN)
    raw = await inner.get(SECRET)
    assert raw is not None and raw.value.startswith(PREFIX + b"new:")


async def test_a_value_without_its_key_is_an_error_not_garbage():
    inner = MemoryStore()
    await EncryptedStore(inner, _keyring("gone")).create(SECRET, PLAIN)
    with pytest.raises(StorageError, match="unknown key"):
        await EncryptedStore(inner, _keyring("other")).get(SECRET)


async def test_plain_values_written_before_encryption_stay_readable():
    inner = MemoryStore()
    await inner.create(SECRET, PLAIN)
    got = await EncryptedStore(inner, _keyring("k1")).get(SECRET)
    assert got is not None and got.value == PLAIN


def test_key_file_is_created_once_private_and_reloaded(tmp_path):
    path = tmp_path / "encryption-keys"
    first = Keyring.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert Keyring.load_or_create(path) == first
    assert len(first.keys[0][1]) == 32


def test_malformed_key_file_is_rejected_with_its_line(tmp_path):
    path = tmp_path / "encryption-keys"
    path.write_text(f"good:{base64.b64encode(b'x' * 32).decode()}\nbad:not-base64\n")
    with pytest.raises(ValueError, match="encryption-keys:2"):
        Keyring.load_or_create(path)


def test_secrets_are_encrypted_in_the_database_file_of_a_real_server(tmp_path):
    from kubernetes import client

    from kubeling.testing import TestCluster

    with TestCluster(tmp_path) as cluster:
        api = client.CoreV1Api(cluster.api_client())
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name="db"),
            string_data={"password": "correct-horse-battery"},
        )
        api.create_namespaced_secret("default", body)
        read = api.read_namespaced_secret("db", "default")
        assert base64.b64decode(read.data["password"]) == b"correct-horse-battery"
        api.api_client.close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        values = [row[0] for row in db.execute("SELECT value FROM kine WHERE value IS NOT NULL")]
    blob = b"".join(bytes(v) for v in values)
    assert b"k8s:enc:aesgcm:v1:" in blob
    assert base64.b64encode(b"correct-horse-battery") not in blob
