"""CRI log files: the writer's records and rotation, and `read_log` with the options of
`kubectl logs` (tail, since, timestamps, limit, follow)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeling.agent.logs import (
    LogOptions,
    LogWriter,
    format_timestamp,
    parse_timestamp,
    read_log,
)
from kubeling.testing import eventually

T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14T22:13:20Z


def ticking(start: int = T0, step: int = 1_000_000_000) -> Iterator[int]:
    """now_ns for a writer: one second later at each record batch."""
    moment = start
    while True:
        yield moment
        moment += step


def writer(path: Path, **options: int) -> LogWriter:
    clock = ticking()
    return LogWriter(path, now_ns=lambda: next(clock), **options)


async def read(path: Path, running: bool = False, **options: object) -> bytes:
    chunks = [
        chunk
        async for chunk in read_log(
            path,
            LogOptions(**options),
            is_running=lambda: running,  # type: ignore[arg-type]
        )
    ]
    return b"".join(chunks)


def test_timestamps_round_trip_with_nine_digits() -> None:
    assert format_timestamp(T0 + 5) == "2023-11-14T22:13:20.000000005Z"
    assert parse_timestamp("2023-11-14T22:13:20.000000005Z") == T0 + 5
    assert parse_timestamp("2023-11-14T22:13:20.5Z") == T0 + 500_000_000  # Go trims zeros
    assert parse_timestamp("2023-11-14T23:13:20+01:00") == T0


def test_records_per_line_with_stream_and_tag(tmp_path: Path) -> None:
    log = writer(tmp_path / "0.log")
    log.feed("stdout", b"one\ntw")
    log.feed("stderr", b"oops\n")
    log.feed("stdout", b"o\n\n")
    log.close()
    assert (tmp_path / "0.log").read_text().splitlines() == [
        "2023-11-14T22:13:20.000000000Z stdout F one",
        "2023-11-14T22:13:21.000000000Z stderr F oops",
        "2023-11-14T22:13:22.000000000Z stdout F two",
        "2023-11-14T22:13:22.000000000Z stdout F ",
    ]


async def test_long_lines_become_partial_records_and_read_back_whole(tmp_path: Path) -> None:
    log = writer(tmp_path / "0.log")
    log.feed("stdout", b"a" * 16384)  # exactly one record's worth, no newline yet
    log.feed("stdout", b"b" * 10 + b"\n" + b"c" * 16384 + b"\n")
    log.close()
    tags = [line.split(b" ", 3)[2] for line in (tmp_path / "0.log").read_bytes().splitlines()]
    assert tags == [b"P", b"F", b"F"]
    text = await read(tmp_path / "0.log")
    assert text == b"a" * 16384 + b"b" * 10 + b"\n" + b"c" * 16384 + b"\n"


def test_rotation_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = writer(path, max_bytes=200, max_files=3)
    for n in range(20):
        log.feed("stdout", f"line {n:02d} {'x' * 40}\n".encode())
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.log", "0.log.1", "0.log.2"]
    for name in ("0.log", "0.log.1", "0.log.2"):
        assert (tmp_path / name).stat().st_size <= 200 + 100  # past by at most one write
    ordered = [(tmp_path / n).read_text() for n in ("0.log.2", "0.log.1", "0.log")]
    numbers = [int(line.split()[4]) for text in ordered for line in text.splitlines()]
    assert numbers == list(range(numbers[0], 20))  # the newest lines, in order


async def test_kubectl_logs_shows_the_current_file_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = writer(path, max_bytes=100)
    log.feed("stdout", b"old " + b"o" * 100 + b"\n")
    log.feed("stdout", b"new\n")
    log.close()
    assert await read(path) == b"new\n"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    log = writer(tmp_path / "0.log")
    for n in range(5):
        log.feed("stdout" if n % 2 else "stderr", f"line {n}\n".encode())
    log.close()
    return tmp_path / "0.log"


async def test_read_everything(sample: Path) -> None:
    assert await read(sample) == b"line 0\nline 1\nline 2\nline 3\nline 4\n"


async def test_tail_lines_counts_from_the_end(sample: Path) -> None:
    assert await read(sample, tail_lines=2) == b"line 3\nline 4\n"
    assert await read(sample, tail_lines=0) == b""
    assert await read(sample, tail_lines=99) == await read(sample)


async def test_since_time_keeps_lines_at_or_after_it(sample: Path) -> None:
    since = datetime.fromtimestamp(T0 / 1e9 + 3, UTC)
    assert await read(sample, since_time=since) == b"line 3\nline 4\n"


async def test_tail_applies_before_since_as_in_the_kubelet(sample: Path) -> None:
    since = datetime.fromtimestamp(T0 / 1e9 + 4, UTC)
    assert await read(sample, tail_lines=3, since_time=since) == b"line 4\n"


async def test_timestamps_prefix_each_line(sample: Path) -> None:
    text = await read(sample, tail_lines=1, timestamps=True)
    assert text == b"2023-11-14T22:13:24.000000000Z line 4\n"


async def test_limit_bytes_truncates_the_output(sample: Path) -> None:
    assert await read(sample, limit_bytes=10) == b"line 0\nlin"


async def test_a_missing_file_gives_nothing(tmp_path: Path) -> None:
    assert await read(tmp_path / "none.log") == b""


async def test_a_malformed_or_half_written_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(
        b"garbage\n2023-11-14T22:13:20Z stdout F fine\n2023-11-14T22:13:21Z stdout F hal"
    )
    assert await read(path) == b"fine\n"


async def test_follow_yields_new_lines_until_the_writer_stops(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = writer(path)
    log.feed("stdout", b"first\n")
    running = True
    received: list[bytes] = []

    async def follow() -> None:
        async for chunk in read_log(
            path, LogOptions(follow=True), is_running=lambda: running, poll_interval=0.01
        ):
            received.append(chunk)

    task = asyncio.create_task(follow())
    try:
        await eventually(lambda: b"".join(received) == b"first\n", message="the first line")
        log.feed("stdout", b"second\n")
        await eventually(lambda: b"".join(received) == b"first\nsecond\n", message="second")
        log.feed("stderr", b"last\n")
        log.close()
        running = False
        await asyncio.wait_for(task, 10)
        assert b"".join(received) == b"first\nsecond\nlast\n"
    finally:
        task.cancel()


async def test_follow_continues_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = writer(path, max_bytes=150)
    log.feed("stdout", b"a\n")
    running = True
    received: list[bytes] = []

    async def follow() -> None:
        async for chunk in read_log(
            path, LogOptions(follow=True), is_running=lambda: running, poll_interval=0.01
        ):
            received.append(chunk)

    task = asyncio.create_task(follow())
    try:
        await eventually(lambda: b"".join(received) == b"a\n", message="the first line")
        expected = b"a\n"
        for n in range(10):  # several rotations
            line = f"line {n} {'y' * 60}\n".encode()
            log.feed("stdout", line)
            expected += line
            await eventually(lambda e=expected: b"".join(received) == e, message=f"line {n}")
        log.close()
        running = False
        await asyncio.wait_for(task, 10)
        assert b"".join(received) == expected
    finally:
        task.cancel()


async def test_follow_with_limit_bytes_stops_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    log = writer(path)
    log.feed("stdout", b"12345\n")
    output = b""
    async for chunk in read_log(
        path, LogOptions(follow=True, limit_bytes=9), is_running=lambda: True, poll_interval=0.01
    ):
        output += chunk
        if len(output) < 9:
            log.feed("stdout", b"67890\n")
    log.close()
    assert output == b"12345\n678"
