"""Volumes at their real `mountPath`, in a private mount namespace (DESIGN.md § 5).

An agent running as root on Linux starts each container in a mount namespace of its own in
which every volume is bind-mounted at its `mountPath` (read-only when the mount says so), so a
program reading `/etc/config/color` finds the ConfigMap's file there, as in Kubernetes. Nobody
else sees those mounts. Without root (or off Linux) nothing is mounted and programs find their
volumes through the `KUBELING_VOLUME_*` and `KUBELING_MOUNT_*` variables alone.

The same namespace holds the pod's managed files (`managedfiles.py`): its own
`/etc/hosts` and `/etc/resolv.conf`, bind-mounted over the host's (`replace`), first, so that a
volume the pod mounts at the same path (or above it) wins, as in Kubernetes. The host's files
themselves are never written.

What it costs the host: a `mountPath` that does not exist yet is created as an empty directory
(or, for a file `subPath`, an empty file): a bind mount needs a mount point, and creating it
is visible outside the namespace. A `replace` target is never created: when the host has no
such file, that mount is skipped. Nothing is ever mounted over `/`.

Processes started beside a container (`kubectl exec`, exec probes, hooks) enter the
container's namespace (`setns`), so they see the same files.

Both run as `preexec_fn`s: in the child, after `fork()` and before `exec()`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

Mount = tuple[str, str, bool]  # (mountPath, host path, read only)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def available() -> bool:
    """Whether containers get their volumes at their mount paths here."""
    return _LIBC is not None and os.geteuid() == 0


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    assert _LIBC is not None
    encoded = source.encode() if source is not None else None
    _check(_LIBC.mount(encoded, target.encode(), None, flags, None), f"mount {target}")


def binder(mounts: Sequence[Mount], replace: Sequence[Mount] = ()) -> Callable[[], None] | None:
    """A preexec function that makes the namespace and the mounts (`replace` first, and only
    over files that exist); None when not available or nothing is to be mounted."""

    def clean(given: Sequence[Mount]) -> list[Mount]:
        return [(os.path.normpath(t), h, ro) for t, h, ro in given if os.path.normpath(t) != "/"]

    wanted, over = clean(mounts), clean(replace)
    if not (wanted or over) or not available():
        return None

    def bind() -> None:
        assert _LIBC is not None
        _check(_LIBC.unshare(CLONE_NEWNS), "unshare")
        _mount(None, "/", MS_REC | MS_PRIVATE)  # our mounts must not leak to the host
        for target, host, read_only in over:
            if os.path.exists(target):  # through a symlink, onto the file it names
                _bind(host, target, read_only)
        for target, host, read_only in wanted:
            if os.path.isdir(host):
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if not os.path.exists(target):
                    Path(target).touch()
            _bind(host, target, read_only)

    return bind


def _bind(host: str, target: str, read_only: bool) -> None:
    _mount(host, target, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


def joiner(pid: int) -> Callable[[], None] | None:
    """A preexec function that enters the mount namespace of process `pid` (a container)."""
    if not available():
        return None
    path = f"/proc/{pid}/ns/mnt"

    def join() -> None:
        assert _LIBC is not None
        fd = os.open(path, os.O_RDONLY)
        try:
            _check(_LIBC.setns(fd, CLONE_NEWNS), "setns")
        finally:
            os.close(fd)

    return join


def chain(*steps: Callable[[], None] | None) -> Callable[[], None] | None:
    """One preexec function running the given ones in order (None when there are none)."""
    present = [s for s in steps if s is not None]
    if not present:
        return None

    def run() -> None:
        for step in present:
            step()

    return run
