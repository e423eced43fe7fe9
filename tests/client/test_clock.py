"""The injected Clock: a FakeClock stands still until advanced and wakes sleepers in order."""

from __future__ import annotations

import asyncio

import pytest

from kubeling.testing import eventually
from kubeling.util.clock import FakeClock, RealClock


async def test_fake_clock_stands_still_until_advanced() -> None:
    clock = FakeClock(start=100.0)

    assert clock.now() == 100.0
    clock.advance(2.5)
    assert clock.now() == 102.5


async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b", 2))]
    await eventually(lambda: clock.sleepers == 3, message="three sleepers")

    clock.advance(10)
    await asyncio.gather(*tasks)

    assert woke == ["a", "b", "c"]


async def test_fake_clock_does_not_wake_a_sleeper_before_its_deadline() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(5))
    await eventually(lambda: clock.sleepers == 1, message="a sleeper")

    clock.advance(4.999)
    assert clock.sleepers == 1
    assert clock.next_deadline() == 5
    clock.advance(0.001)
    await task

    assert clock.sleepers == 0


async def test_a_cancelled_fake_sleep_is_not_counted_and_does_not_break_advance() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(1))
    await eventually(lambda: clock.sleepers == 1, message="a sleeper")

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    clock.advance(2)

    assert clock.sleepers == 0


def test_fake_clock_refuses_to_go_back() -> None:
    with pytest.raises(ValueError):
        FakeClock().advance(-1)


async def test_real_clock_is_monotonic_and_sleeps() -> None:
    clock = RealClock()
    before = clock.now()
    await clock.sleep(0.01)
    assert clock.now() - before >= 0.01
