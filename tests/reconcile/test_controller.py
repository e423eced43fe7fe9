"""The worker loop's three outcomes, on a FakeClock: errors retried with growing back-off,
TerminalError never retried, requeue_after honoured; one key never reconciled twice at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from reconcile_support import Recording, settle

from kubeling.reconcile import Controller, Result, TerminalError, own_key, owner_keys
from kubeling.reconcile.controller import Reconciler
from kubeling.testing import eventually
from kubeling.util.clock import FakeClock

Make = Callable[..., Controller]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Builds and starts controllers on a FakeClock; all stopped at the end."""
    started: list[Controller] = []

    def build(reconciler: Reconciler, clock: FakeClock, workers: int = 1) -> Controller:
        controller = Controller("test", reconciler, workers=workers, clock=clock)
        controller.start()
        started.append(controller)
        return controller

    try:
        yield build
    finally:
        for controller in started:
            await controller.stop()


async def test_errors_are_retried_with_growing_back_off(make: Make) -> None:
    clock = FakeClock()
    reconciler = Recording(error=RuntimeError("boom"))
    controller = make(reconciler, clock)
    controller.queue.add("ns/a")
    delays = []
    for attempt in range(1, 5):
        await eventually(lambda n=attempt: len(reconciler.keys) == n and clock.sleepers)
        deadline = clock.next_deadline()
        assert deadline is not None
        delays.append(round(deadline - clock.now(), 6))
        clock.advance(deadline - clock.now())
    assert delays == [0.005, 0.01, 0.02, 0.04]
    assert controller.health().errors >= 4
    assert controller.health().last_error is not None
    assert "boom" in controller.health().last_error


async def test_a_success_forgets_the_failures(make: Make) -> None:
    clock = FakeClock()
    reconciler = Recording(error=RuntimeError("boom"))
    controller = make(reconciler, clock)
    controller.queue.add("ns/a")
    await eventually(lambda: len(reconciler.keys) == 1 and clock.sleepers)
    assert controller.queue.num_requeues("ns/a") == 1
    reconciler.error = None
    clock.advance(0.005)
    await eventually(lambda: len(reconciler.keys) == 2 and not controller.queue.processing())
    assert controller.queue.num_requeues("ns/a") == 0


async def test_a_terminal_error_is_not_retried(make: Make) -> None:
    clock = FakeClock()
    reconciler = Recording(error=TerminalError("invalid spec"))
    controller = make(reconciler, clock)
    controller.queue.add("ns/a")
    await eventually(lambda: reconciler.keys and not controller.queue.processing())
    assert controller.queue.waiting() == 0
    assert controller.queue.num_requeues("ns/a") == 0
    clock.advance(3600)
    await settle()
    assert reconciler.keys == ["ns/a"]
    health = controller.health()
    assert (health.terminal_errors, health.errors) == (1, 0)
    assert "invalid spec" in (health.last_error or "")


async def test_requeue_after_runs_again_after_the_delay(make: Make) -> None:
    clock = FakeClock()
    reconciler = Recording(result=Result(requeue_after=30))
    controller = make(reconciler, clock)
    controller.queue.add("ns/a")
    await eventually(lambda: reconciler.keys and clock.sleepers)
    assert controller.queue.num_requeues("ns/a") == 0
    clock.advance(29.9)
    await settle()
    assert reconciler.keys == ["ns/a"]
    clock.advance(0.1)
    await eventually(lambda: len(reconciler.keys) == 2)
    assert controller.health().errors == 0


class Gated:
    """Records how many reconciles of each key run at once; each waits for `gate`."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.running: Counter[str] = Counter()
        self.most_per_key = 0
        self.most_at_once = 0
        self.calls: Counter[str] = Counter()

    async def reconcile(self, key: str) -> Result:
        self.calls[key] += 1
        self.running[key] += 1
        self.most_per_key = max(self.most_per_key, self.running[key])
        self.most_at_once = max(self.most_at_once, sum(self.running.values()))
        try:
            await self.gate.wait()
        finally:
            self.running[key] -= 1
        return Result()


async def test_one_key_is_never_reconciled_concurrently_with_four_workers(make: Make) -> None:
    reconciler = Gated()
    controller = make(reconciler, FakeClock(), workers=4)
    for key in ("ns/a", "ns/b", "ns/c"):
        controller.queue.add(key)
    await eventually(lambda: sum(reconciler.running.values()) == 3)
    for _ in range(10):
        controller.queue.add("ns/a")  # changes while ns/a is being reconciled
    await settle()
    assert reconciler.running["ns/a"] == 1
    reconciler.gate.set()
    await eventually(lambda: reconciler.calls["ns/a"] == 2 and not controller.queue.processing())
    assert reconciler.most_per_key == 1
    assert reconciler.most_at_once == 3
    assert reconciler.calls == Counter({"ns/a": 2, "ns/b": 1, "ns/c": 1})


async def test_stop_ends_the_workers_and_health_reports_it() -> None:
    controller = Controller("test", Recording(), workers=2, clock=FakeClock())
    assert not controller.health().running
    controller.start()
    assert controller.health().running
    controller.queue.add("ns/a")
    await eventually(lambda: controller.health().reconciles == 1)
    await controller.stop()
    assert not controller.health().running


def test_mappers_give_the_own_key_and_the_controller_owners_key() -> None:
    pod = {
        "metadata": {
            "name": "web-1",
            "namespace": "ns",
            "ownerReferences": [
                {"kind": "Service", "name": "svc", "uid": "u0"},
                {"kind": "ReplicaSet", "name": "web", "uid": "u1", "controller": True},
            ],
        }
    }
    assert own_key(pod) == ["ns/web-1"]
    assert owner_keys("ReplicaSet")(pod) == ["ns/web"]
    assert owner_keys("Service")(pod) == []  # not the controller
    assert owner_keys("ReplicaSet")({"metadata": {"name": "x", "namespace": "ns"}}) == []
