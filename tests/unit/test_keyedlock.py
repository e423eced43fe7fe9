import asyncio

from kubeling.util.keyedlock import KeyedLock


def test_holders_of_one_key_run_one_at_a_time_and_other_keys_run_alongside() -> None:
    async def scenario() -> tuple[int, int, int]:
        locks = KeyedLock()
        inside = {"a": 0, "b": 0}
        most = {"a": 0, "b": 0}

        async def work(key: str) -> None:
            async with locks.hold(key):
                inside[key] += 1
                most[key] = max(most[key], inside[key])
                await asyncio.sleep(0)
                inside[key] -= 1

        both = asyncio.gather(*(work(k) for k in "abababab"))
        await asyncio.sleep(0)
        held_while_running = len(locks)
        await both
        return most["a"], held_while_running, len(locks)

    most_a, held, after = asyncio.run(scenario())
    assert most_a == 1
    assert held == 2
    assert after == 0


def test_a_failing_holder_releases_the_key() -> None:
    async def scenario() -> int:
        locks = KeyedLock()
        try:
            async with locks.hold("k"):
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        async with locks.hold("k"):
            pass
        return len(locks)

    assert asyncio.run(scenario()) == 0
