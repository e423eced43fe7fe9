"""The arithmetic of rollouts, without a server: fenceposts, surge, scale-down budgets,
proportional scaling, revisions and conditions, with Kubernetes' worked examples."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kubeling.api.intstr import scaled_value
from kubeling.controllers.deployment import progress
from kubeling.controllers.deployment.replicasets import (
    HASH_LABEL,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    fenceposts,
    max_unavailable,
    new_rs_replicas,
    same_template,
    split_new_and_old,
    template_hash,
    with_new_rs_annotations,
)
from kubeling.controllers.deployment.rolling import (
    available_scale_down,
    old_scale_down_budget,
    unhealthy_cleanup,
)
from kubeling.controllers.deployment.scaling import is_scaling_event, proportional_sizes
from kubeling.util.timefmt import format_time, utcnow

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w"}]}}


def deployment(
    replicas: int = 10,
    surge: Any = "25%",
    unavailable: Any = "25%",
    *,
    strategy: str = "RollingUpdate",
    status: dict[str, Any] | None = None,
    deadline: int | None = 600,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "template": TEMPLATE,
        "strategy": {"type": strategy},
    }
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1},
        "spec": spec,
        "status": status or {},
    }


def rs(
    name: str,
    replicas: int,
    available: int | None = None,
    *,
    created: str = "2026-01-01T00:00:00Z",
    annotations: dict[str, str] | None = None,
    image: str = "",
) -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"app": "web", HASH_LABEL: name}},
        "spec": {"containers": [{"name": "w", **({"image": image} if image else {})}]},
    }
    return {
        "metadata": {
            "name": name,
            "uid": f"{name}-uid",
            "creationTimestamp": created,
            "annotations": annotations or {},
        },
        "spec": {"replicas": replicas, "template": template},
        "status": {
            "replicas": replicas,
            "availableReplicas": replicas if available is None else available,
            "readyReplicas": replicas if available is None else available,
        },
    }


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("25%", 1, True, 1),
        ("25%", 1, False, 0),
        (2, 10, True, 2),
        ("3", 10, False, 3),
    ],
)
def test_percentages_round_up_for_surge_and_down_for_unavailable(
    value: Any, total: int, up: bool, expected: int
) -> None:
    assert scaled_value(value, total, up) == expected


def test_fenceposts_never_both_zero() -> None:
    assert fenceposts(deployment(10)) == (3, 2)
    assert fenceposts(deployment(1)) == (1, 0)
    assert fenceposts(deployment(10, 0, 0)) == (0, 1)
    assert fenceposts(deployment(10, strategy="Recreate")) == (0, 0)


def test_max_unavailable_is_capped_at_replicas_and_zero_when_scaled_to_zero() -> None:
    assert max_unavailable(deployment(2, 0, 5)) == 2
    assert max_unavailable(deployment(0)) == 0


def test_new_replicaset_grows_within_the_surge() -> None:
    d = deployment(10, 3, 2)
    old, new = rs("old", 10), rs("new", 0)
    assert new_rs_replicas(d, [old, new], new) == 3
    assert new_rs_replicas(d, [rs("old", 8), rs("new", 5)], rs("new", 5)) == 5
    assert new_rs_replicas(d, [rs("old", 1), rs("new", 9)], rs("new", 9)) == 10
    assert new_rs_replicas(deployment(10, strategy="Recreate"), [old, new], new) == 10


def test_scale_down_budget_counts_the_new_replicasets_unavailable_pods() -> None:
    # Kubernetes' worked example: 10 replicas, surge 3, unavailable 2; old RS 10 pods,
    # new RS 3 of which 2 not available: 13 - 8 - 2 = 3 old pods may go.
    d = deployment(10, 3, 2)
    old, new = rs("old", 10), rs("new", 3, available=1)
    assert old_scale_down_budget(d, [old, new], new) == 3


def test_unhealthy_old_pods_go_first_oldest_replicaset_first() -> None:
    older = rs("a", 3, available=1, created="2026-01-01T00:00:00Z")
    newer = rs("b", 3, available=0, created="2026-01-02T00:00:00Z")
    plan = unhealthy_cleanup([newer, older], budget=3)
    assert [(r["metadata"]["name"], size) for r, size in plan] == [("a", 1), ("b", 2)]


def test_available_old_pods_go_only_down_to_the_floor() -> None:
    d = deployment(10, 3, 2)
    old, new = rs("old", 10), rs("new", 3, available=3)
    plan = available_scale_down(d, [old, new], [old])
    # 13 available, floor 8: five may go.
    assert [(r["metadata"]["name"], size) for r, size in plan] == [("old", 5)]


def test_proportional_scaling_keeps_each_replicasets_share() -> None:
    d = deployment(20, 3, 2)
    d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": "25%", "maxUnavailable": "25%"}
    old = rs("old", 8, annotations={MAX_REPLICAS: "13"}, created="2026-01-01T00:00:00Z")
    new = rs("new", 5, annotations={MAX_REPLICAS: "13"}, created="2026-01-02T00:00:00Z")
    assert proportional_sizes(d, [old, new]) == {"old": 15, "new": 10}


def test_proportional_scaling_down_puts_the_rounding_leftover_on_the_biggest() -> None:
    d = deployment(3, 1, 0)
    old = rs("old", 3, annotations={MAX_REPLICAS: "6"}, created="2026-01-01T00:00:00Z")
    new = rs("new", 3, annotations={MAX_REPLICAS: "6"}, created="2026-01-02T00:00:00Z")
    sizes = proportional_sizes(d, [old, new])
    assert sum(sizes.values()) == 4
    assert sizes == {"old": 2, "new": 2}


def test_a_scaling_event_is_a_replicas_change_alone() -> None:
    d = deployment(5)
    assert is_scaling_event(
        d, [rs("a", 3, annotations={"deployment.kubernetes.io/desired-replicas": "3"})]
    )
    assert not is_scaling_event(
        d, [rs("a", 3, annotations={"deployment.kubernetes.io/desired-replicas": "5"})]
    )
    assert not is_scaling_event(
        d, [rs("a", 0, annotations={"deployment.kubernetes.io/desired-replicas": "3"})]
    )


def test_template_hash_is_stable_and_depends_on_template_and_collisions() -> None:
    first = template_hash(TEMPLATE, None)
    assert first == template_hash(
        {"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}, None
    )
    assert first != template_hash(TEMPLATE, 1)
    assert first != template_hash({**TEMPLATE, "spec": {"containers": [{"name": "x"}]}}, None)
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_the_new_replicaset_is_the_oldest_one_with_the_template() -> None:
    d = deployment()
    d["spec"]["template"] = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "w", "image": "v2"}]},
    }
    a = rs("a", 1, image="v1", created="2026-01-01T00:00:00Z")
    b = rs("b", 1, image="v2", created="2026-01-03T00:00:00Z")
    c = rs("c", 1, image="v2", created="2026-01-02T00:00:00Z")
    new, old = split_new_and_old(d, [a, b, c])
    assert new is c
    assert old == [a, b]
    assert same_template(b["spec"]["template"], d["spec"]["template"])


def test_a_reused_replicaset_gets_the_next_revision_and_remembers_its_old_one() -> None:
    d = deployment()
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "undo", REVISION: "2"}
    old = rs("a", 0, annotations={REVISION: "1"})
    assert with_new_rs_annotations(d, old, 3, exists=True)
    found = old["metadata"]["annotations"]
    assert found[REVISION] == "3"
    assert found[REVISION_HISTORY] == "1"
    assert found["kubernetes.io/change-cause"] == "undo"
    assert not with_new_rs_annotations(d, old, 3, exists=True)


def test_a_stalled_rollout_times_out_after_the_deadline_from_the_last_progress() -> None:
    now = utcnow()
    d = deployment(2, deadline=5)
    d["status"] = {
        "replicas": 2,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "lastUpdateTime": format_time(now - timedelta(seconds=6)),
                "lastTransitionTime": format_time(now - timedelta(seconds=60)),
            }
        ],
    }
    stuck = rs("new", 1, available=0)
    stuck["status"]["replicas"] = 1
    old = rs("old", 1)
    status, after = progress.rollout_status(d, [old, stuck], stuck, now)
    condition = progress.get_condition(status, progress.PROGRESSING)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert after is None


def test_progress_refreshes_the_deadline_but_keeps_the_transition_time() -> None:
    now = utcnow()
    earlier = format_time(now - timedelta(seconds=60))
    d = deployment(2, deadline=5)
    d["status"] = {
        "replicas": 2,
        "updatedReplicas": 0,
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetCreated",
                "lastUpdateTime": earlier,
                "lastTransitionTime": earlier,
            }
        ],
    }
    status, after = progress.rollout_status(
        d, [rs("old", 1), rs("new", 1, available=0)], rs("new", 1, available=0), now
    )
    condition = progress.get_condition(status, progress.PROGRESSING)
    assert condition is not None
    assert condition["reason"] == "ReplicaSetUpdated"
    assert condition["lastTransitionTime"] == earlier
    assert condition["lastUpdateTime"] == format_time(now)
    assert after is not None and 5 <= after <= 6.5


def test_availability_condition_follows_the_floor() -> None:
    now = utcnow()
    d = deployment(4, 1, 1)
    low = progress.status_for(d, [rs("a", 4, available=2)], None, now)
    ok = progress.status_for(d, [rs("a", 4, available=3)], None, now)
    assert progress.get_condition(low, "Available")["status"] == "False"  # type: ignore[index]
    assert progress.get_condition(ok, "Available")["status"] == "True"  # type: ignore[index]
    assert "unavailableReplicas" not in progress.status_for(d, [rs("a", 4)], None, now)


def test_pods_an_old_replicaset_is_about_to_delete_do_not_count_as_available() -> None:
    # 100 replicas (floor 75). The old RS was just scaled to 9 but its status still shows
    # 14 available; the new RS has 71 available. Only 9 + 71 = 80 will stay: 5 may go, not 10.
    d = deployment(100)
    old = rs("old", 9, available=14)
    new = rs("new", 100, available=71)
    plan = available_scale_down(d, [old, new], [old])
    assert [(r["metadata"]["name"], size) for r, size in plan] == [("old", 4)]
