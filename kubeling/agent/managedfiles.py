"""The pod's managed files: its own `/etc/resolv.conf` and `/etc/hosts`, as the kubelet keeps them.

    files, events = write(pod_dir, pod, pod_ip, node.services("kube-system"))
    files.for_container(container_spec)   # ("/etc/hosts", "<pod dir>/etc/hosts", False), ...

Once per sandbox, `write()` forms both files (`resolvconf.py` from the pod's dnsPolicy and
dnsConfig, the node's `/etc/resolv.conf` and the cluster DNS; `etchosts.py` from the pod's IP,
hostname, subdomain and hostAliases) and writes them into `<pod dir>/etc`. Every container of
the pod, init containers too, then gets them:

* **as root on Linux**, bind-mounted over the host's `/etc/resolv.conf` and `/etc/hosts` in the
  container's private mount namespace (`mountns.py`), which `kubectl exec`, exec probes and
  hooks enter too. So glibc's resolver, and whatever reads those files, uses the cluster DNS
  at the `kube-system/kube-dns` ClusterIP, which every node's service proxy serves. The host's
  files are never written, and nothing is mounted where the host has no such file.
* **otherwise** (no mount namespace without privileges) the container sees the host's files
  and resolver: Service names do not resolve by DNS there. The runtime says so once in the
  agent's log, and the variables below name the pod's files for programs that want them.

In both cases `KUBELING_MOUNT_ETC_RESOLV_CONF` and `KUBELING_MOUNT_ETC_HOSTS` hold the files'
paths, as `KUBELING_MOUNT_*` names every mount (`volumes.py`). A container that mounts a volume
at one of these paths itself keeps its volume there (the kubelet then leaves /etc/hosts alone).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.agent import etchosts, resolvconf
from kubeling.agent.mountns import Mount

log = logging.getLogger(__name__)

HOST_RESOLV_CONF = Path("/etc/resolv.conf")  # the kubelet's `--resolv-conf`
HOST_HOSTS = Path("/etc/hosts")
RESOLV_CONF = "/etc/resolv.conf"
HOSTS = "/etc/hosts"
FILES = {  # path in the container -> (file under `<pod dir>/etc`, the variable naming it)
    HOSTS: ("hosts", "KUBELING_MOUNT_ETC_HOSTS"),
    RESOLV_CONF: ("resolv.conf", "KUBELING_MOUNT_ETC_RESOLV_CONF"),
}
_HOST_FILE_LIMIT = 1 << 20


@dataclass(frozen=True)
class ManagedFiles:
    """Where one pod's managed files are: path in the container -> path on the host."""

    paths: Mapping[str, str] = field(default_factory=dict)

    def for_container(self, spec: Mapping[str, Any]) -> tuple[Mount, ...]:
        """The mounts for one container: all but those it mounts a volume at. resolv.conf is
        read-only under `readOnlyRootFilesystem`, as containerd mounts it; /etc/hosts is
        always writable, as the kubelet mounts it."""
        own = {_normal(m.get("mountPath")) for m in spec.get("volumeMounts") or []}
        read_only = bool((spec.get("securityContext") or {}).get("readOnlyRootFilesystem"))
        return tuple(
            (target, host, read_only and target == RESOLV_CONF)
            for target, host in self.paths.items()
            if target not in own
        )


def env(mounts: Iterable[Mount]) -> dict[str, str]:
    """The `KUBELING_MOUNT_*` variables of a container's managed files."""
    return {FILES[target][1]: host for target, host, _ in mounts if target in FILES}


def write(
    pod_dir: Path,
    pod: Mapping[str, Any],
    pod_ip: str,
    services: Iterable[Mapping[str, Any]],
    *,
    host_resolv_conf: Path = HOST_RESOLV_CONF,
    host_hosts: Path = HOST_HOSTS,
) -> tuple[ManagedFiles, tuple[resolvconf.Event, ...]]:
    """Form and write the pod's files; also the warnings to record on the pod. `services`
    are those of the cluster DNS's namespace (the kube-dns Service is looked up there).
    Raises OSError when a file cannot be written."""
    dns = resolvconf.pod_dns(
        pod, resolvconf.parse(_read(host_resolv_conf)), resolvconf.cluster_dns_ip(services)
    )
    contents = {
        RESOLV_CONF: dns.config.render(),
        HOSTS: etchosts.hosts_file(pod, [pod_ip], node_hosts=_read(host_hosts)),
    }
    etc = pod_dir / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    paths = {}
    for target, (name, _) in FILES.items():
        path = etc / name
        path.write_text(contents[target])
        path.chmod(0o644)
        paths[target] = str(path)
    return ManagedFiles(paths), dns.events


def _read(path: Path) -> str:
    """A node file the pod's are formed from. A missing or unreadable one reads as empty (the
    kubelet would refuse the pod instead; an empty base still makes a working ClusterFirst)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(_HOST_FILE_LIMIT).decode("utf-8", errors="replace")
    except OSError as err:
        log.warning("cannot read %s to form the pods' own: %s", path, err)
        return ""


def _normal(path: Any) -> str:
    return posixpath.normpath(str(path or ""))
