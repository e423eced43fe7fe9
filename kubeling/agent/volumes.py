"""Pod volumes as files, laid out and updated the way the kubelet does (DESIGN §5).

A container is a local process, so a volume is a directory the process is told about: every
volume's host path is passed as `KUBELING_VOLUME_<NAME>` (`env()`), and every `volumeMounts`
entry as `KUBELING_MOUNT_<MOUNT_PATH>` (`mount_path_env()`), for example

    volumeMounts: [{name: config, mountPath: /etc/app, subPath: prod}]
    → KUBELING_VOLUME_CONFIG=<pod>/volumes/kubernetes.io~configmap/config
      KUBELING_MOUNT_ETC_APP=<pod>/volumes/kubernetes.io~configmap/config/prod

(the mount path upper-cased, every character other than a letter or digit turned into `_`,
`/` alone as `ROOT`; `mounts()` gives the same mapping keyed by the mount path itself, for an
agent that bind-mounts in a private mount namespace). Layout, as under /var/lib/kubelet:

    <pod_dir>/volumes/kubernetes.io~empty-dir/<name>/          a plain directory
    <pod_dir>/volumes/kubernetes.io~configmap/<name>/          (and ~secret, ~downward-api,
        ..2026_11_24_06_00_00.123456789/<files>                 ~projected) an atomic writer
        ..data -> ..2026_11_24_06_00_00.123456789               directory, see write_atomic
        <key> -> ..data/<key>
    hostPath                                                   the host path itself

Contract:

- **Atomic updates** (`write_atomic`, the kubelet's AtomicWriter): a new payload is written
  whole into a fresh timestamped directory, then the `..data` symlink is replaced by
  `rename(2)` of a temporary symlink, so a reader that goes through a user-visible path sees
  either the whole old or the whole new content, never a mix. Files a reader already opened
  keep their old content. Afterwards user-visible links are added for new top-level names,
  removed for names gone from the source, and every other timestamped directory is deleted.
  An unchanged payload (same paths, bytes and modes) writes nothing and swaps nothing.
- **Sources**, with the kubelet's semantics and error texts: configMap (`data` and base64
  `binaryData`), secret (base64 `data`; `stringData` too, should a lookup return it), `items`
  (key → path, per-item `mode`), `defaultMode` (0644), `optional` (a missing object, or a missing
  item key, is skipped only when optional); downwardAPI `fieldRef` (metadata.name, namespace,
  uid, labels, annotations, `labels['k']`, `annotations['k']`; labels and annotations as sorted
  `key="value"` lines with Go quoting) and `resourceFieldRef` (limits/requests of cpu, memory,
  ephemeral-storage, hugepages-*, rounded up to the divisor; an unset limit is the node's
  allocatable, as the kubelet merges it). kubeling also accepts `status.podIP`,
  `status.hostIP`, `spec.nodeName` and `spec.serviceAccountName`, which the API rejects in
  volumes but which this agent knows. projected combines configMap, secret and downwardAPI
  sources (later sources win on a path clash) and serviceAccountToken.
- **Not like the kubelet**: a serviceAccountToken file holds `PLACEHOLDER_TOKEN`, *not a real
  token* (kubeling has no TokenRequest; the API server answers it with 401). emptyDir
  `medium: Memory` is an ordinary directory (no tmpfs without privileges) and `sizeLimit` is not
  enforced. Secrets are files on disk, not tmpfs. `readOnly` and `fsGroup` are not enforced. A
  subPath of a configMap/secret volume follows updates (the kubelet's bind mount pins the file).
- **Errors** are `VolumeError`s: reason `FailedMount` and the kubelet's event text
  (`MountVolume.SetUp failed for volume "config" : configmap "app" not found`) for setup and
  refresh, `CreateContainerConfigError` for a bad volume mount. setup() and refresh() try every
  volume and then raise the first error; the other volumes are done, and a failed volume keeps
  its previous content. Unsupported types (persistentVolumeClaim, nfs, csi, ...) fail setup.
- Exceptions a lookup raises propagate. A PodVolumes is used by one caller at a time (the pod's
  worker); its file I/O is small and synchronous.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import posixpath
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from kubeling.api.quantity import QuantityError, from_json

Lookup = Callable[[str, str], Mapping[str, Any] | None]
Payload = dict[str, tuple[bytes, int]]  # relative path → (content, mode)

FAILED_MOUNT = "FailedMount"
CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
DEFAULT_MODE = 0o644
DATA_DIR = "..data"
PLACEHOLDER_TOKEN = "kubeling-placeholder-not-a-real-serviceaccount-token"
MAX_PATH_LENGTH = 4096
MAX_FILE_NAME_LENGTH = 255

_DATA_TMP = "..data_tmp"
_PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
_PROJECTIONS = frozenset({"configMap", "secret", "downwardAPI", "projected"})
_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.*)'\]")
_EXPANSION = re.compile(r"\$\$|\$\(([^)]*)\)")
_GO_ESCAPES = {ch: "\\" + e for ch, e in zip('\a\b\f\n\r\t\v\\"', 'abfnrtv\\"', strict=True)}


class VolumeError(Exception):
    """A volume that cannot be set up or mounted; `reason` is the event's reason."""

    def __init__(self, message: str, *, reason: str = FAILED_MOUNT, volume: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.volume = volume


class _Detail(ValueError):
    """What is wrong with one volume (wrapped into a VolumeError naming it); the public helpers
    `clean_path` and `write_atomic` raise it as a ValueError."""


@dataclass
class PodVolumes:
    """The volumes of one pod under `pod_dir`; see the module docstring for the contract."""

    pod_dir: Path
    pod: Mapping[str, Any] = field(repr=False)
    _: KW_ONLY
    configmap: Lookup = field(repr=False)
    secret: Lookup = field(repr=False)
    pod_ip: str = ""
    host_ip: str = ""
    allocatable: Mapping[str, Any] | None = field(default=None, repr=False)
    """Node allocatable (`cpu`, `memory`, ...) for unset limits; default: this host's."""

    def __post_init__(self) -> None:
        self.pod_dir = Path(self.pod_dir)

    # -- lifecycle -----------------------------------------------------------------------------

    def setup(self) -> dict[str, Path]:
        """Materialise every volume (idempotent; emptyDir contents survive); name → host path."""
        self._each(self._volumes())
        return {v["name"]: self._path(v) for v in self._volumes()}

    def refresh(self, pod: Mapping[str, Any] | None = None) -> list[str]:
        """Re-project configMap/secret/downwardAPI/projected volumes; the names that changed."""
        if pod is not None:
            self.pod = pod
        return self._each(v for v in self._volumes() if _kind(v) in _PROJECTIONS)

    def teardown(self) -> None:
        """Remove the pod's volume directories; hostPath volumes are left alone."""
        root = self.pod_dir / "volumes"
        if root.is_dir() and not root.is_symlink():
            _make_removable(root)
            shutil.rmtree(root)

    # -- what a container is told --------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            f"KUBELING_VOLUME_{_env_name(v['name'])}": str(self._path(v)) for v in self._volumes()
        }

    def mounts(
        self, container: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> dict[str, Path]:
        """mountPath → host path for the container's volumeMounts, `subPath` honoured (created
        when missing, as the kubelet does) and `subPathExpr` expanded with `env` (default: the
        container's literal `env` values)."""
        by_name = {v["name"]: v for v in self._volumes()}
        if env is None:
            env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        cname = container.get("name", "")
        out: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            name = mount.get("name", "")
            volume = by_name.get(name)
            if volume is None:
                raise _mount_error(f'cannot find volume "{name}" to mount into container "{cname}"')
            base = self._path(volume)
            sub = mount.get("subPath") or ""
            if mount.get("subPathExpr"):
                sub = _expand(mount["subPathExpr"], env)
            out[mount.get("mountPath", "")] = _sub_path(base, sub, name, cname) if sub else base
        return out

    def mount_path_env(
        self, container: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """`KUBELING_MOUNT_<MOUNT_PATH>` → host path for each of the container's volumeMounts."""
        return {
            f"KUBELING_MOUNT_{_env_name(mount_path.strip('/')) or 'ROOT'}": str(path)
            for mount_path, path in self.mounts(container, env).items()
        }

    @staticmethod
    def referenced_objects(pod: Mapping[str, Any]) -> set[tuple[str, str]]:
        """The ConfigMaps and Secrets the pod depends on: in volumes (projected too) and in its
        containers' `env`/`envFrom`, as the kubelet's VisitPodConfigmapNames/SecretNames
        (imagePullSecrets left out: kubeling pulls no images)."""
        spec = pod.get("spec") or {}
        refs: set[tuple[str, str]] = set()
        for volume in spec.get("volumes") or []:
            sources = [volume, *((volume.get("projected") or {}).get("sources") or [])]
            for src in sources:
                refs.add(("configmap", (src.get("configMap") or {}).get("name", "")))
                secret = src.get("secret") or {}
                refs.add(("secret", secret.get("secretName") or secret.get("name", "")))
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for container in spec.get(key) or []:
                for var in container.get("env") or []:
                    value_from = var.get("valueFrom") or {}
                    refs.add(
                        ("configmap", (value_from.get("configMapKeyRef") or {}).get("name", ""))
                    )
                    refs.add(("secret", (value_from.get("secretKeyRef") or {}).get("name", "")))
                for env_from in container.get("envFrom") or []:
                    refs.add(("configmap", (env_from.get("configMapRef") or {}).get("name", "")))
                    refs.add(("secret", (env_from.get("secretRef") or {}).get("name", "")))
        return {ref for ref in refs if ref[1]}

    # -- volumes -------------------------------------------------------------------------------

    def _volumes(self) -> list[Mapping[str, Any]]:
        return list((self.pod.get("spec") or {}).get("volumes") or [])

    def _path(self, volume: Mapping[str, Any]) -> Path:
        kind = _kind(volume)
        if kind == "hostPath":
            return Path((volume.get("hostPath") or {}).get("path", ""))
        plugin = _PLUGIN_DIRS.get(kind, f"kubernetes.io~{kind}")
        return self.pod_dir / "volumes" / plugin / volume["name"]

    def _each(self, volumes: Iterable[Mapping[str, Any]]) -> list[str]:
        changed: list[str] = []
        errors: list[VolumeError] = []
        for volume in volumes:
            name = volume["name"]
            try:
                if self._materialise(volume):
                    changed.append(name)
            except (_Detail, OSError) as err:
                message = f'MountVolume.SetUp failed for volume "{name}" : {err}'
                errors.append(VolumeError(message, volume=name))
        if errors:
            raise errors[0]
        return changed

    def _materialise(self, volume: Mapping[str, Any]) -> bool:
        kind = _kind(volume)
        source = volume.get(kind) or {}
        if kind == "hostPath":
            _check_host_path(source)
            return False
        if kind not in _PLUGIN_DIRS:
            raise _Detail(f'kubeling does not support volume type "{kind}"')
        path = self._path(volume)
        if kind == "emptyDir":
            path.mkdir(mode=0o777, parents=True, exist_ok=True)  # the kubelet's 0777, less umask
            return False
        return write_atomic(path, self._payload(kind, source))

    def _payload(self, kind: str, source: Mapping[str, Any]) -> Payload:
        namespace = (self.pod.get("metadata") or {}).get("namespace") or "default"
        mode = _mode(source.get("defaultMode"), DEFAULT_MODE)
        if kind == "configMap":
            return _object_payload("configmap", self.configmap, namespace, source, mode)
        if kind == "secret":
            return _object_payload("secret", self.secret, namespace, source, mode)
        if kind == "downwardAPI":
            return self._downward(source.get("items"), mode)
        payload: Payload = {}
        for src in source.get("sources") or []:
            if "configMap" in src:
                cm = src["configMap"] or {}
                payload.update(_object_payload("configmap", self.configmap, namespace, cm, mode))
            elif "secret" in src:
                payload.update(
                    _object_payload("secret", self.secret, namespace, src["secret"] or {}, mode)
                )
            elif "downwardAPI" in src:
                payload.update(self._downward((src["downwardAPI"] or {}).get("items"), mode))
            elif "serviceAccountToken" in src:
                token_path = (src["serviceAccountToken"] or {}).get("path") or "token"
                payload[token_path] = (PLACEHOLDER_TOKEN.encode(), mode)
            else:
                raise _Detail(f"kubeling does not support projected source {sorted(src)}")
        return payload

    def _downward(self, items: Iterable[Mapping[str, Any]] | None, mode: int) -> Payload:
        payload: Payload = {}
        for item in items or []:
            path = item.get("path", "")
            if item.get("fieldRef"):
                value = self._field(item["fieldRef"].get("fieldPath", ""))
            elif item.get("resourceFieldRef"):
                value = self._resource(item["resourceFieldRef"])
            else:
                raise _Detail(
                    f"downwardAPI item {path!r} has neither fieldRef nor resourceFieldRef"
                )
            payload[path] = (value.encode(), _mode(item.get("mode"), mode))
        return payload

    def _field(self, field_path: str) -> str:
        meta = self.pod.get("metadata") or {}
        spec = self.pod.get("spec") or {}
        simple = {
            "metadata.name": meta.get("name", ""),
            "metadata.namespace": meta.get("namespace") or "default",
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.podIP": self.pod_ip,
            "status.hostIP": self.host_ip,
        }
        if field_path in simple:
            return str(simple[field_path])
        if field_path in ("metadata.labels", "metadata.annotations"):
            return format_map(meta.get(field_path.partition(".")[2]) or {})
        match = _SUBSCRIPT.fullmatch(field_path)
        if match:
            return str((meta.get(match[1]) or {}).get(match[2], ""))
        raise _Detail(f"unsupported fieldPath: {field_path}")

    def _resource(self, ref: Mapping[str, Any]) -> str:
        spec = self.pod.get("spec") or {}
        wanted = ref.get("containerName", "")
        containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        container = next((c for c in containers if c.get("name") == wanted), None)
        if container is None:
            raise _Detail(f"container {wanted} not found")
        resource = ref.get("resource", "")
        kind, _, name = resource.partition(".")
        known = name in ("cpu", "memory", "ephemeral-storage") or name.startswith("hugepages-")
        if kind not in ("limits", "requests") or not known:
            raise _Detail(f"unsupported container resource : {resource}")
        values = (container.get("resources") or {}).get(kind) or {}
        raw = values.get(name)
        if raw is None and kind == "limits" and not name.startswith("hugepages-"):
            raw = self._allocatable().get(name)
        amount = _amount(raw, resource) if raw is not None else Fraction(0)
        divisor = _amount(ref.get("divisor"), resource) if ref.get("divisor") is not None else 0
        divisor = divisor or Fraction(1)
        if name == "cpu":  # MilliValue() of both, as convertResourceCPUToString does
            return str(math.ceil(Fraction(math.ceil(amount * 1000), math.ceil(divisor * 1000))))
        return str(math.ceil(Fraction(math.ceil(amount), math.ceil(divisor))))

    def _allocatable(self) -> Mapping[str, Any]:
        if self.allocatable is not None:
            return self.allocatable
        existing = next(p for p in (self.pod_dir, *self.pod_dir.parents) if p.exists())
        return {
            "cpu": os.cpu_count() or 1,
            "memory": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "ephemeral-storage": shutil.disk_usage(existing).total,
        }


# -- sources ------------------------------------------------------------------------------------


def _kind(volume: Mapping[str, Any]) -> str:
    """The volume's source type; none at all is an emptyDir, as the API defaults it."""
    return next((key for key in volume if key != "name"), "emptyDir")


def _mode(value: Any, default: int) -> int:
    return default if value is None else int(value) & 0o777


def _object_payload(
    kind: str, lookup: Lookup, namespace: str, source: Mapping[str, Any], mode: int
) -> Payload:
    """A configMap or secret source: the object's keys, or its `items`, as files."""
    name = source.get("secretName") or source.get("name") or ""
    optional = bool(source.get("optional"))
    obj = lookup(namespace, name)
    if obj is None:
        if optional:
            return {}
        raise _Detail(f'{kind} "{name}" not found')
    data: dict[str, bytes] = {}
    if kind == "configmap":
        data.update((k, str(v).encode()) for k, v in (obj.get("data") or {}).items())
        data.update((k, _b64(v, k)) for k, v in (obj.get("binaryData") or {}).items())
        missing = "configmap references non-existent config key: {}"
    else:
        data.update((k, _b64(v, k)) for k, v in (obj.get("data") or {}).items())
        data.update((k, str(v).encode()) for k, v in (obj.get("stringData") or {}).items())
        missing = "references non-existent secret key: {}"
    items = source.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    payload: Payload = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise _Detail(missing.format(key))
        payload[item.get("path") or key] = (data[key], _mode(item.get("mode"), mode))
    return payload


def _b64(value: Any, key: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except binascii.Error as err:
        raise _Detail(f"key {key!r} is not valid base64: {err}") from None


def _amount(value: Any, resource: str) -> Fraction:
    try:
        return from_json(value).value
    except QuantityError as err:
        raise _Detail(f"invalid quantity {value!r} for {resource}: {err}") from None


def format_map(values: Mapping[str, Any]) -> str:
    """Labels or annotations as the downward API writes them (fieldpath.FormatMap):
    `key="value"` lines, keys sorted, values Go-quoted (`%q`), no final newline."""
    return "\n".join(f"{key}={_go_quote(str(values[key]))}" for key in sorted(values))


def _go_quote(text: str) -> str:
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _check_host_path(source: Mapping[str, Any]) -> None:
    """The kubelet's hostPath type check (hostpath.checkType), creating for ...OrCreate."""
    text = source.get("path", "")
    if not os.path.isabs(text):
        raise _Detail(f"hostPath path {text!r} must be an absolute path")
    path, kind = Path(text), source.get("type") or ""
    if kind == "DirectoryOrCreate" and not path.exists():
        path.mkdir(mode=0o755, parents=True)
    elif kind == "FileOrCreate" and not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    checks: dict[str, tuple[Callable[[int], bool], str]] = {
        "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
        "Directory": (stat.S_ISDIR, "a directory"),
        "FileOrCreate": (stat.S_ISREG, "a file"),
        "File": (stat.S_ISREG, "a file"),
        "Socket": (stat.S_ISSOCK, "a socket file"),
        "CharDevice": (stat.S_ISCHR, "a character device"),
        "BlockDevice": (stat.S_ISBLK, "a block device"),
    }
    if not kind:
        return
    if kind not in checks:
        raise _Detail(f"{kind} is an invalid volume type")
    check, what = checks[kind]
    try:
        ok = check(path.stat().st_mode)
    except FileNotFoundError:
        ok = False
    if not ok:
        raise _Detail(f"hostPath type check failed: {text} is not {what}")


# -- mounts -------------------------------------------------------------------------------------


def _env_name(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", text.upper())


def _mount_error(message: str) -> VolumeError:
    return VolumeError(message, reason=CONTAINER_CONFIG_ERROR)


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: unknown variables stay as written, `$$` is `$`."""
    return _EXPANSION.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


def _sub_path(base: Path, sub: str, volume: str, container: str) -> Path:
    """`base/sub`, checked as makeMounts does, the directory created when it does not exist."""
    if os.path.isabs(sub):
        raise _mount_error(f"error SubPath `{sub}` must not be an absolute path")
    if ".." in sub.split("/"):
        raise _mount_error(f"unable to provision SubPath `{sub}`: must not contain '..'")
    target = base / sub
    if not os.path.lexists(target):
        try:
            target.mkdir(mode=stat.S_IMODE(base.stat().st_mode), parents=True)
        except OSError:
            raise _mount_error(
                f'failed to create subPath directory for volumeMount "{volume}" '
                f'of container "{container}"'
            ) from None
    real_base = os.path.realpath(base)
    if os.path.commonpath([real_base, os.path.realpath(target)]) != real_base:
        raise _mount_error(f'subpath "{target}" not within volume path "{base}"')
    return target


# -- the atomic writer --------------------------------------------------------------------------


def clean_path(path: str) -> str:
    """The item path, validated as AtomicWriter's validatePath and then cleaned."""
    if not path:
        raise _Detail(f"invalid path: must not be empty: {path!r}")
    if path.startswith("/"):
        raise _Detail(f"invalid path: must be relative path: {path}")
    if len(path) > MAX_PATH_LENGTH:
        raise _Detail(f"invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters")
    parts = path.split("/")
    for part in parts:
        if part == "..":
            raise _Detail(f"invalid path: must not contain '..': {path}")
        if len(part) > MAX_FILE_NAME_LENGTH:
            raise _Detail(
                f"invalid path: filenames must be less than or equal to "
                f"{MAX_FILE_NAME_LENGTH} characters"
            )
    if parts[0].startswith("..") and len(parts[0]) > 2:
        raise _Detail(f"invalid path: must not start with '..': {path}")
    cleaned = posixpath.normpath(path)
    if cleaned == ".":
        raise _Detail(f"invalid path: must name a file: {path}")
    return cleaned


def write_atomic(target: Path, payload: Payload) -> bool:
    """Make `target` hold exactly `payload`, atomically (see the module docstring); True when
    the content changed. Raises the volume-level error for an invalid item path."""
    clean = {clean_path(path): (content, mode & 0o777) for path, (content, mode) in payload.items()}
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    data_link = target / DATA_DIR
    old = os.readlink(data_link) if data_link.is_symlink() and data_link.is_dir() else ""
    old_files = _read_tree(target / old) if old else {}
    tops = {path.split("/")[0] for path in clean}
    if old and old_files == clean:
        _link_visible(target, tops)
        return False
    fresh = _timestamped_dir(target)
    try:
        for path, (content, mode) in clean.items():
            file = fresh / path
            file.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                os.write(fd, content)
                os.fchmod(fd, mode)  # the exact mode, whatever the umask
            finally:
                os.close(fd)
        tmp = target / _DATA_TMP
        tmp.unlink(missing_ok=True)
        os.symlink(fresh.name, tmp)
        os.replace(tmp, data_link)  # the atomic swap
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    _link_visible(target, tops)
    for gone in {path.split("/")[0] for path in old_files} - tops:
        if (target / gone).is_symlink():
            (target / gone).unlink()
    for entry in target.iterdir():
        if entry.name.startswith("..") and entry.name not in (DATA_DIR, fresh.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return True


def _timestamped_dir(target: Path) -> Path:
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    while True:
        path = target / f"{stamp}{secrets.randbelow(10**9):09d}"
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            continue
        return path


def _read_tree(root: Path) -> Payload:
    files: Payload = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            file = Path(dirpath, name)
            rel = file.relative_to(root).as_posix()
            files[rel] = (file.read_bytes(), stat.S_IMODE(file.lstat().st_mode))
    return files


def _link_visible(target: Path, tops: Iterable[str]) -> None:
    for name in tops:
        link = target / name
        if not os.path.lexists(link):
            os.symlink(f"{DATA_DIR}/{name}", link)


def _make_removable(root: Path) -> None:
    """Give the owner rwx on every directory, so that rmtree can empty what a program locked."""
    os.chmod(root, stat.S_IMODE(root.lstat().st_mode) | stat.S_IRWXU)
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IRWXU)
