"""The work queue keeps client-go's promises: fair, stingy, concurrent-safe, rate-limited.
Every delay runs on a FakeClock, so no test waits for real time to pass."""

from __future__ import annotations

import asyncio

import pytest

from kubeling.client.workqueue import (
    ExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    ShutDown,
    TokenBucketRateLimiter,
    WorkQueue,
    default_controller_rate_limiter,
)
from kubeling.testing import eventually
from kubeling.util.clock import FakeClock


def _queue(clock: FakeClock | None = None) -> WorkQueue[str]:
    return WorkQueue("test", clock=clock or FakeClock())


async def _get(queue: WorkQueue[str]) -> str:
    return await asyncio.wait_for(queue.get(), 5)


# -- fair and stingy ---------------------------------------------------------------------------


async def test_keys_are_handed_out_in_the_order_they_were_added() -> None:
    queue = _queue()
    for key in ("b", "a", "c"):
        queue.add(key)

    assert [await _get(queue) for _ in range(3)] == ["b", "a", "c"]


async def test_a_key_added_several_times_before_processing_is_handed_out_once() -> None:
    queue = _queue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)

    assert len(queue) == 2
    assert [await _get(queue), await _get(queue)] == ["a", "b"]
    assert len(queue) == 0


async def test_a_key_being_processed_is_not_handed_out_to_another_worker() -> None:
    queue = _queue()
    queue.add("a")
    first = await _get(queue)
    queue.add("a")  # changed again while the first worker is busy with it

    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not second.done()
    assert queue.processing() == {"a"}

    queue.done(first)
    assert await asyncio.wait_for(second, 5) == "a"


async def test_a_key_added_during_processing_is_processed_again_after_done() -> None:
    queue = _queue()
    queue.add("a")
    key = await _get(queue)
    queue.add("a")
    queue.add("a")

    assert len(queue) == 0  # not handed out while processing
    queue.done(key)
    assert len(queue) == 1
    assert await _get(queue) == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_a_key_is_never_processed_concurrently_by_many_workers() -> None:
    queue = _queue()
    active: set[str] = set()
    overlaps: list[str] = []
    processed: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            if key in active:
                overlaps.append(key)
            active.add(key)
            await asyncio.sleep(0)  # let other workers and producers run mid-reconcile
            await asyncio.sleep(0)
            active.discard(key)
            processed.append(key)
            queue.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for round_ in range(50):
        for key in ("a", "b", "c"):
            queue.add(key)
        if round_ % 3 == 0:
            await asyncio.sleep(0)
    await eventually(lambda: len(queue) == 0 and not queue.processing(), message="idle queue")
    queue.shutdown()
    await asyncio.gather(*workers)

    assert overlaps == []
    assert set(processed) == {"a", "b", "c"}
    assert len(processed) < 150  # adds while queued were folded together


async def test_done_for_a_key_not_processing_is_ignored() -> None:
    queue = _queue()
    queue.done("never-got")
    assert len(queue) == 0


# -- delays ------------------------------------------------------------------------------------


async def test_add_after_hands_the_key_out_only_once_the_delay_has_passed() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    queue.add_after("a", 2.0)

    clock.advance(1.999)
    assert len(queue) == 0
    assert queue.waiting() == 1
    clock.advance(0.001)
    assert len(queue) == 1
    assert await _get(queue) == "a"


async def test_a_blocked_get_wakes_when_the_delay_passes() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    getter = asyncio.create_task(queue.get())
    queue.add_after("a", 3.0)
    await eventually(lambda: clock.sleepers == 1, message="get() waiting on the clock")

    clock.advance(3.0)

    assert await asyncio.wait_for(getter, 5) == "a"


async def test_an_earlier_add_after_moves_a_waiting_key_forward_and_a_later_one_is_ignored() -> (
    None
):
    clock = FakeClock()
    queue = _queue(clock)
    queue.add_after("a", 10.0)
    queue.add_after("a", 2.0)
    queue.add_after("a", 5.0)

    clock.advance(2.0)
    assert await _get(queue) == "a"
    queue.done("a")
    clock.advance(10.0)
    assert len(queue) == 0  # the superseded entries do not add it again


async def test_add_after_with_no_delay_adds_at_once() -> None:
    queue = _queue()
    queue.add_after("a", 0)
    assert len(queue) == 1


# -- rate limiting -----------------------------------------------------------------------------


def test_per_key_back_off_doubles_from_5_ms() -> None:
    limiter = ExponentialFailureRateLimiter()

    assert [limiter.when("a") for _ in range(5)] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert limiter.when("b") == pytest.approx(0.005)  # per key
    assert limiter.num_requeues("a") == 5


async def test_a_rate_limited_key_waits_its_back_off_in_the_queue() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    for failure in range(4):
        queue.add_rate_limited("a")
        wait = 0.005 * 2**failure
        clock.advance(wait * 0.9)
        assert len(queue) == 0, f"failure {failure} handed out too early"
        clock.advance(wait * 0.2)
        assert await _get(queue) == "a"
        queue.done("a")

    assert queue.num_requeues("a") == 4


def test_exponential_back_off_is_capped_at_1000_seconds() -> None:
    limiter = ExponentialFailureRateLimiter()
    delays = [limiter.when("a") for _ in range(30)]

    assert delays[17] == pytest.approx(0.005 * 2**17)  # 655 s
    assert delays[18] == 1000.0
    assert max(delays) == 1000.0


def test_forget_resets_the_back_off_of_one_key_only() -> None:
    limiter = ExponentialFailureRateLimiter()
    for _ in range(3):
        limiter.when("a")
        limiter.when("b")

    limiter.forget("a")

    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == pytest.approx(0.005)
    assert limiter.num_requeues("b") == 3


async def test_forget_through_the_queue_resets_num_requeues() -> None:
    queue = _queue()
    queue.add_rate_limited("a")
    queue.add_rate_limited("a")
    assert queue.num_requeues("a") == 2

    queue.forget("a")

    assert queue.num_requeues("a") == 0


def test_token_bucket_allows_a_burst_of_100_then_10_per_second() -> None:
    clock = FakeClock()
    bucket = TokenBucketRateLimiter(10.0, 100, clock)

    burst = [bucket.when(f"k{i}") for i in range(100)]
    after = [bucket.when(f"x{i}") for i in range(3)]

    assert burst == [0.0] * 100
    assert after == pytest.approx([0.1, 0.2, 0.3])
    clock.advance(1.0)  # ten tokens come back, paying off the three borrowed
    assert bucket.when("y") == 0.0


def test_default_controller_limiter_takes_the_larger_of_back_off_and_bucket() -> None:
    clock = FakeClock()
    limiter = default_controller_rate_limiter(clock)

    first = [limiter.when(f"k{i}") for i in range(100)]  # the burst: only the 5 ms back-off
    crowded = limiter.when("k100")  # the bucket is empty: 0.1 s beats 5 ms
    again = [limiter.when("k0") for _ in range(3)]

    assert first == pytest.approx([0.005] * 100)
    assert crowded == pytest.approx(0.1)
    assert again == pytest.approx([0.2, 0.3, 0.4])  # the bucket still dominates k0's 10..40 ms
    assert limiter.num_requeues("k0") == 4


def test_max_of_limiter_forgets_in_every_limiter() -> None:
    a, b = ExponentialFailureRateLimiter(), ExponentialFailureRateLimiter(0.1, 10)
    limiter = MaxOfRateLimiter(a, b)
    assert limiter.when("k") == pytest.approx(0.1)

    limiter.forget("k")

    assert (a.num_requeues("k"), b.num_requeues("k")) == (0, 0)


# -- shutdown ----------------------------------------------------------------------------------


async def test_shutdown_wakes_a_blocked_get_with_shut_down() -> None:
    queue = _queue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)

    queue.shutdown()

    with pytest.raises(ShutDown):
        await asyncio.wait_for(getter, 5)
    with pytest.raises(ShutDown):
        await queue.get()


async def test_adds_after_shutdown_are_ignored() -> None:
    queue = _queue()
    queue.shutdown()
    queue.add("a")
    queue.add_after("a", 1)
    assert len(queue) == 0
    assert queue.waiting() == 0


async def test_shutdown_with_drain_waits_for_keys_being_processed() -> None:
    queue = _queue()
    queue.add("a")
    key = await _get(queue)
    drain = asyncio.create_task(queue.shutdown_with_drain())
    await asyncio.sleep(0)
    assert not drain.done()

    queue.done(key)

    await asyncio.wait_for(drain, 5)
    assert queue.shutting_down
