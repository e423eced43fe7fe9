"""Manifests as `kubectl apply -f` reads them, applied through the REST client.

Contract:

* `load(path)` reads one file, or a directory's `*.yaml`, `*.yml` and `*.json` files in name
  order (not its subdirectories, as kubectl without `-R`). A file may hold several YAML
  documents; empty documents are skipped and `kind: List` is flattened into its items. Every
  object must be a mapping with `apiVersion`, `kind` and `metadata.name` of a kind the server
  serves. Anything else is a `ManifestError` whose message is one line naming the file and
  the document (`web.yaml (document 2): no kind`), so a command line can print it as it is.
  Nothing is sent to the server before every file has been read: a typo in the last file does
  not leave half of a directory applied.
* `apply(client, manifests)` writes each object with **server-side apply** (a PATCH of type
  `application/apply-patch+yaml` with the field manager `kubeling`), which creates what is
  missing and updates what exists, as `kubectl apply --server-side --force-conflicts` does:
  the manifest is the source of truth, so fields another manager took over (`kubectl scale`)
  are taken back. Namespaces go first, then the rest in file order. A namespaced object
  without a namespace goes to `default`. The server's refusal is a `ManifestError` naming the
  object and the file, with the server's message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY, ResourceInfo
from kubeling.client.rest import Client, Object, PatchType

FIELD_MANAGER = "kubeling"
SUFFIXES = (".yaml", ".yml", ".json")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(Exception):
    """A manifest that cannot be read or applied; the message is one line."""


@dataclass(frozen=True)
class Manifest:
    """One object of a manifest file, with where it came from (for messages)."""

    obj: Object
    info: ResourceInfo
    source: str

    @property
    def namespace(self) -> str | None:
        if not self.info.namespaced:
            return None
        return str(self.obj["metadata"].get("namespace") or "default")

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def ref(self) -> str:
        """`deployment.apps/web`, as kubectl names what it applied."""
        group = f".{self.info.group}" if self.info.group else ""
        return f"{self.info.kind.lower()}{group}/{self.name}"


def files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if not found:
            raise ManifestError(f"{path}: no *.yaml, *.yml or *.json files")
        return found
    if not path.exists():
        raise ManifestError(f"{path}: no such file or directory")
    return [path]


def load(path: Path) -> list[Manifest]:
    manifests: list[Manifest] = []
    for file in files(path):
        try:
            documents = list(yaml.load_all(file.read_text(), Loader=_Loader))
        except OSError as err:
            raise ManifestError(f"{file}: {err.strerror or err}") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ManifestError(f"{file}:{where} not valid YAML: {problem}") from None
        for number, document in enumerate(documents, 1):
            source = f"{file}" if len(documents) == 1 else f"{file} (document {number})"
            manifests.extend(_objects(document, source))
    return manifests


def _objects(document: Any, source: str) -> Iterable[Manifest]:
    if document is None:
        return
    if not isinstance(document, dict):
        raise ManifestError(f"{source}: not an object (a {type(document).__name__})")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if not kind or not api_version:
        raise ManifestError(f"{source}: no {'kind' if not kind else 'apiVersion'}")
    if kind == "List" or (str(kind).endswith("List") and "items" in document):
        for item in document.get("items") or []:
            yield from _objects(item, source)
        return
    info = REGISTRY.by_api_version(str(api_version), str(kind))
    if info is None:
        raise ManifestError(f"{source}: unknown kind {kind} in {api_version}")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise ManifestError(f"{source}: {kind} without metadata.name")
    yield Manifest(document, info, source)


def in_apply_order(manifests: Sequence[Manifest]) -> list[Manifest]:
    """Namespaces first (what the rest lives in), then file order."""
    return sorted(manifests, key=lambda m: m.info.kind != "Namespace")


async def apply(client: Client, manifests: Sequence[Manifest]) -> list[Object]:
    applied: list[Object] = []
    for manifest in in_apply_order(manifests):
        try:
            obj = await client.patch(
                manifest.info,
                manifest.name,
                manifest.obj,
                manifest.namespace,
                patch_type=PatchType.APPLY,
                field_manager=FIELD_MANAGER,
                force=True,
            )
        except ApiError as err:
            message = " ".join(err.message.split())
            raise ManifestError(f"{manifest.source}: {manifest.ref}: {message}") from None
        applied.append(obj)
    return applied
