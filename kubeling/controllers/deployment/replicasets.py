"""Pure helpers over a Deployment and its ReplicaSets (Kubernetes' `deployment/util`).

Everything here reads plain dicts as the informer caches hold them and returns new values; none
of it talks to the server, so the arithmetic of a rollout can be tested on its own.

* **Which ReplicaSet is new.** The new ReplicaSet is the oldest one whose pod template equals
  the Deployment's, ignoring the `pod-template-hash` label; every other one is old. Its name is
  `<deployment>-<hash>`, the hash being FNV-32a over the template (and the collision count,
  when a different ReplicaSet already took the name), spelled in a vowel-free alphabet so it
  can never form a word.
* **Fenceposts.** `maxSurge` is rounded up and `maxUnavailable` down from a percentage of
  `spec.replicas`; if both come out 0, `maxUnavailable` becomes 1 so a rollout can progress.
  Worked example: 10 replicas, 25 %/25 % → surge ceil(2.5) = 3, unavailable floor(2.5) = 2: at
  most 13 pods exist and at least 8 are available at any moment.
* **Annotations** on each ReplicaSet: `revision` (its place in the history),
  `revision-history` (the revisions it had before being reused by an undo),
  `desired-replicas` and `max-replicas` (the Deployment's size and size + surge when it last
  scaled the ReplicaSet: how proportional scaling knows the old proportions).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubeling.api.intstr import scaled_value
from kubeling.client.cache import Object, copy

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Deployment annotations that describe the Deployment itself and are not copied to its
# ReplicaSets (everything else, e.g. kubernetes.io/change-cause, is).
_NOT_COPIED = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS})
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_REVISION_HISTORY_CHARS = 2000


# -- fields -----------------------------------------------------------------------------------


def replicas(obj: Mapping[str, Any] | None) -> int:
    """`spec.replicas` (1 when unset, as the API server defaults it)."""
    if obj is None:
        return 0
    return int((obj.get("spec") or {}).get("replicas", 1))


def status_count(obj: Mapping[str, Any] | None, field: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(field) or 0)


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def int_annotation(obj: Mapping[str, Any], name: str) -> int | None:
    try:
        return int(annotations_of(obj)[name])
    except (KeyError, ValueError):
        return None


def revision(obj: Mapping[str, Any]) -> int:
    return int_annotation(obj, REVISION) or 0


def max_revision(rss: Iterable[Mapping[str, Any]]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def creation_key(rs: Mapping[str, Any]) -> tuple[str, str]:
    """Oldest first; the name breaks ties (Kubernetes' `ReplicaSetsByCreationTimestamp`)."""
    meta = rs["metadata"]
    return (meta.get("creationTimestamp") or "", meta.get("name") or "")


def by_creation(rss: Iterable[Object]) -> list[Object]:
    return sorted(rss, key=creation_key)


def active(rss: Iterable[Object | None]) -> list[Object]:
    """ReplicaSets that should have pods (`spec.replicas` > 0)."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def total_replicas(rss: Iterable[Object | None]) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def total_status(rss: Iterable[Object | None], field: str) -> int:
    return sum(status_count(rs, field) for rs in rss if rs is not None)


# -- templates and names ----------------------------------------------------------------------


def template_hash(template: Mapping[str, Any], collision_count: int | None) -> str:
    """A stable short name for a pod template (see the module docstring)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(value))


def _without_hash(template: Mapping[str, Any]) -> Object:
    stripped = copy(template)
    labels = (stripped.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
        if not labels:
            stripped["metadata"].pop("labels")
    meta = stripped.get("metadata")
    if meta is not None and not meta:
        stripped.pop("metadata")
    return stripped


def same_template(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal pod templates, ignoring the `pod-template-hash` label."""
    return _without_hash(a) == _without_hash(b)


def template_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("spec") or {}).get("template") or {}


def split_new_and_old(
    deployment: Mapping[str, Any], rss: Sequence[Object]
) -> tuple[Object | None, list[Object]]:
    """(the new ReplicaSet or None, all the others)."""
    new = None
    wanted = template_of(deployment)
    for rs in by_creation(rss):
        if same_template(template_of(rs), wanted):
            new = rs
            break
    return new, [rs for rs in rss if rs is not new]


# -- strategy arithmetic ----------------------------------------------------------------------


def _rolling(deployment: Mapping[str, Any]) -> Mapping[str, Any] | None:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    return strategy.get("rollingUpdate") or {"maxSurge": "25%", "maxUnavailable": "25%"}


def is_rolling(deployment: Mapping[str, Any]) -> bool:
    return _rolling(deployment) is not None


def fenceposts(deployment: Mapping[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; (0, 0) for Recreate."""
    params = _rolling(deployment)
    if params is None:
        return 0, 0
    desired = replicas(deployment)
    surge = scaled_value(params.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = scaled_value(params.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(deployment: Mapping[str, Any]) -> int:
    return fenceposts(deployment)[0]


def max_unavailable(deployment: Mapping[str, Any]) -> int:
    """Never more than `replicas`; 0 for Recreate or a Deployment scaled to 0."""
    desired = replicas(deployment)
    if not is_rolling(deployment) or desired == 0:
        return 0
    return min(fenceposts(deployment)[1], desired)


def new_rs_replicas(
    deployment: Mapping[str, Any], all_rss: Sequence[Object | None], new_rs: Object | None
) -> int:
    """How big the new ReplicaSet may be now.

    Rolling: up to `replicas + maxSurge` pods in all, and never more than `replicas` in the new
    one. Worked example: 10 replicas, surge 3, old RS at 10, new at 0 → 13 - 10 = 3. Recreate:
    `replicas` (the old pods are gone by the time it scales up).
    """
    desired = replicas(deployment)
    current_new = replicas(new_rs)
    if not is_rolling(deployment):
        return desired
    current = total_replicas(all_rss)
    ceiling = desired + max_surge(deployment)
    if current >= ceiling:
        return current_new
    return current_new + min(ceiling - current, desired - current_new)


def complete(deployment: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Every replica updated and available, and the latest spec observed."""
    desired = replicas(deployment)
    return (
        int(status.get("updatedReplicas") or 0) == desired
        and int(status.get("replicas") or 0) == desired
        and int(status.get("availableReplicas") or 0) == desired
        and int(status.get("observedGeneration") or 0)
        >= int(deployment["metadata"].get("generation") or 0)
    )


# -- annotations ------------------------------------------------------------------------------


def with_replica_annotations(rs: Object, desired: int, ceiling: int) -> bool:
    """Set desired-/max-replicas on `rs` (in place); True if anything changed."""
    meta = rs["metadata"]
    current = meta.get("annotations") or {}
    wanted = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(ceiling)}
    if all(current.get(k) == v for k, v in wanted.items()):
        return False
    meta["annotations"] = {**current, **wanted}
    return True


def replica_annotations_stale(rs: Mapping[str, Any], desired: int, ceiling: int) -> bool:
    found = annotations_of(rs)
    return found.get(DESIRED_REPLICAS) != str(desired) or found.get(MAX_REPLICAS) != str(ceiling)


def with_new_rs_annotations(
    deployment: Mapping[str, Any], rs: Object, new_revision: int, *, exists: bool
) -> bool:
    """Stamp the new ReplicaSet (in place): the Deployment's own annotations, the revision
    (keeping the one it replaces in revision-history) and, for a fresh one, its sizes."""
    meta = rs["metadata"]
    current = dict(meta.get("annotations") or {})
    changed = False
    for name, value in annotations_of(deployment).items():
        if name not in _NOT_COPIED and current.get(name) != value:
            current[name] = value
            changed = True
    old_text = current.get(REVISION, "")
    try:
        old_revision = int(old_text) if old_text else 0
    except ValueError:
        old_revision = new_revision  # an unreadable revision is left as the user wrote it
    if old_revision < new_revision:
        current[REVISION] = str(new_revision)
        changed = True
        if old_text:
            history = [h for h in current.get(REVISION_HISTORY, "").split(",") if h]
            history.append(old_text)
            while history and len(",".join(history)) > MAX_REVISION_HISTORY_CHARS:
                history.pop(0)
            current[REVISION_HISTORY] = ",".join(history)
    meta["annotations"] = current
    if not exists:
        ceiling = replicas(deployment) + max_surge(deployment)
        changed = with_replica_annotations(rs, replicas(deployment), ceiling) or changed
    return changed
