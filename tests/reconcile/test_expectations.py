"""Expectations: no second create for a key until the first is observed, or has expired."""

from __future__ import annotations

from kubeling.reconcile import Expectations
from kubeling.util.clock import FakeClock


def test_a_key_with_no_expectations_is_satisfied() -> None:
    assert Expectations(FakeClock()).satisfied("ns/rs")


def test_creations_block_until_each_is_observed() -> None:
    expectations = Expectations(FakeClock())
    expectations.expect_creations("ns/rs", 2)
    assert not expectations.satisfied("ns/rs")
    expectations.creation_observed("ns/rs")
    assert not expectations.satisfied("ns/rs")
    expectations.creation_observed("ns/rs")
    assert expectations.satisfied("ns/rs")
    # Extra observations (an object created by someone else) do not go negative.
    expectations.creation_observed("ns/rs")
    assert expectations.pending("ns/rs") == (0, frozenset())


def test_deletions_block_until_each_uid_is_observed() -> None:
    expectations = Expectations(FakeClock())
    expectations.expect_deletions("ns/rs", ["u1", "u2"])
    expectations.deletion_observed("ns/rs", "u1")
    expectations.deletion_observed("ns/rs", "someone-else")
    assert not expectations.satisfied("ns/rs")
    assert expectations.pending("ns/rs") == (0, frozenset({"u2"}))
    expectations.deletion_observed("ns/rs", "u2")
    assert expectations.satisfied("ns/rs")


def test_expectations_expire_after_five_minutes_on_the_clock() -> None:
    clock = FakeClock()
    expectations = Expectations(clock)
    expectations.expect_creations("ns/rs", 1)
    clock.advance(299.9)
    assert not expectations.satisfied("ns/rs")
    clock.advance(0.1)
    assert expectations.satisfied("ns/rs")


def test_expecting_again_restarts_the_ttl_and_keys_are_independent() -> None:
    clock = FakeClock()
    expectations = Expectations(clock)
    expectations.expect_creations("ns/a", 1)
    clock.advance(200)
    expectations.expect_creations("ns/a", 1)
    clock.advance(200)
    assert not expectations.satisfied("ns/a")
    assert expectations.satisfied("ns/b")


def test_delete_forgets_the_key() -> None:
    expectations = Expectations(FakeClock())
    expectations.expect_creations("ns/rs", 3)
    expectations.delete("ns/rs")
    assert expectations.satisfied("ns/rs")


class EnsureOne:
    """Wants one child per key; reads a (slow) cache and creates only when satisfied."""

    def __init__(self, expectations: Expectations) -> None:
        self.expectations = expectations
        self.cache: set[str] = set()  # children the "informer" has seen
        self.created = 0

    def reconcile(self, key: str) -> None:
        if not self.expectations.satisfied(key) or key in self.cache:
            return
        self.expectations.expect_creations(key, 1)
        self.created += 1  # the create call; the informer sees it later

    def observe(self, key: str) -> None:
        self.cache.add(key)
        self.expectations.creation_observed(key)


def test_a_controller_does_not_create_again_before_its_create_is_observed() -> None:
    controller = EnsureOne(Expectations(FakeClock()))
    controller.reconcile("ns/a")
    controller.reconcile("ns/a")  # the cache is stale: without expectations, a 2nd create
    assert controller.created == 1
    controller.observe("ns/a")
    controller.reconcile("ns/a")
    assert controller.created == 1


def test_a_create_never_observed_is_retried_after_the_ttl() -> None:
    clock = FakeClock()
    controller = EnsureOne(Expectations(clock))
    controller.reconcile("ns/a")  # say this create was lost
    clock.advance(60)
    controller.reconcile("ns/a")
    assert controller.created == 1
    clock.advance(240)
    controller.reconcile("ns/a")
    assert controller.created == 2
