"""The process runtime with real processes: starting, exit codes, stop with a grace period,
the process group, exec, the termination message and the CRI log it writes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubeling.agent.logs import LogOptions, read_log
from kubeling.agent.runtime import (
    ContainerSpec,
    ContainerStartError,
    ProcessContainer,
    ProcessRuntime,
)
from kubeling.testing import eventually

PY = sys.executable
BASE_ENV = {"PATH": os.path.dirname(PY) + ":/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}


class Runner:
    """Starts containers under tmp_path and kills whatever is left at the end of a test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.runtime = ProcessRuntime()
        self.started: list[ProcessContainer] = []
        self.count = 0

    def spec(self, code: str, **changes: object) -> ContainerSpec:
        self.count += 1
        fields: dict[str, object] = {
            "pod_uid": "uid-1",
            "namespace": "default",
            "pod_name": "p",
            "name": f"c{self.count}",
            "argv": [PY, "-c", textwrap.dedent(code)],
            "env": dict(BASE_ENV),
            "working_dir": None,
            "log_path": self.tmp_path / "logs" / f"c{self.count}" / "0.log",
        }
        fields.update(changes)
        return ContainerSpec(**fields)  # type: ignore[arg-type]

    async def start(self, code: str, **changes: object) -> ProcessContainer:
        container = await self.runtime.start(self.spec(code, **changes))
        self.started.append(container)
        return container

    async def close(self) -> None:
        for container in self.started:
            await container.stop(0)


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[Runner]:
    running = Runner(tmp_path)
    try:
        yield running
    finally:
        await running.close()


def log_text(container: ProcessContainer) -> str:
    path = container.spec.log_path
    return path.read_text() if path.exists() else ""


def messages(container: ProcessContainer) -> list[tuple[str, str]]:
    """(stream, message) of each record of the container's log."""
    records = [line.split(" ", 3) for line in log_text(container).splitlines()]
    return [(stream, message) for _, stream, _, message in records]


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_a_program_that_exits_0_completed(runner: Runner) -> None:
    container = await runner.start("print('hello')")
    assert container.id.startswith(f"kubeling://{container.pid}-")
    ended = await container.wait()
    assert (ended.exit_code, ended.signal, ended.reason) == (0, None, "Completed")
    assert ended.started_at <= ended.finished_at
    assert ended.message == ""
    assert not container.running
    assert await container.wait() == ended  # idempotent


async def test_a_non_zero_exit_is_an_error(runner: Runner) -> None:
    ended = await (await runner.start("raise SystemExit(3)")).wait()
    assert (ended.exit_code, ended.signal, ended.reason) == (3, None, "Error")


async def test_killed_by_a_signal_reports_128_plus_the_signal(runner: Runner) -> None:
    ended = await (await runner.start("import os; os.kill(os.getpid(), 9)")).wait()
    assert (ended.exit_code, ended.signal, ended.reason) == (137, 9, "Error")


async def test_the_environment_is_exactly_the_given_one(runner: Runner) -> None:
    # /proc/self/environ is what the process got, before Python adds anything of its own.
    env = {"ONLY": "this", "PATH": "/usr/bin:/bin"}
    container = await runner.start(
        "import sys; sys.stdout.buffer.write(open('/proc/self/environ','rb').read())", env=env
    )
    await container.wait()
    assert messages(container) == [("stdout", "ONLY=this\0PATH=/usr/bin:/bin\0")]


async def test_the_working_dir_is_respected(runner: Runner, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    container = await runner.start("import os; print(os.getcwd())", working_dir=str(work))
    await container.wait()
    assert messages(container) == [("stdout", str(work))]


async def test_the_program_is_found_through_the_path_of_the_env(
    runner: Runner, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "mytool"
    tool.write_text(f"#!{PY}\nprint('tool ran')\n")
    tool.chmod(0o755)
    spec = runner.spec("", argv=["mytool"], env={"PATH": str(bin_dir)})
    container = await runner.runtime.start(spec)
    runner.started.append(container)
    assert (await container.wait()).exit_code == 0
    assert messages(container) == [("stdout", "tool ran")]


async def test_a_missing_program_cannot_run(runner: Runner) -> None:
    with pytest.raises(ContainerStartError) as caught:
        await runner.start("", argv=["no-such-program-x", "arg"])
    assert caught.value.reason == "ContainerCannotRun"
    assert caught.value.message == 'exec: "no-such-program-x": executable file not found in $PATH'


async def test_a_file_that_is_not_executable_cannot_run(runner: Runner, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    with pytest.raises(ContainerStartError, match="permission denied") as caught:
        await runner.start("", argv=[str(script)])
    assert caught.value.reason == "ContainerCannotRun"


async def test_a_missing_working_dir_cannot_run(runner: Runner, tmp_path: Path) -> None:
    with pytest.raises(ContainerStartError, match="nowhere") as caught:
        await runner.start("pass", working_dir=str(tmp_path / "nowhere"))
    assert caught.value.reason == "ContainerCannotRun"


async def test_stop_sends_sigterm_first(runner: Runner) -> None:
    container = await runner.start(
        """
        import signal, sys, time
        def drain(*_):
            print("drained", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, drain)
        print("ready", flush=True)
        while True:
            time.sleep(1)
        """
    )
    await eventually(lambda: "ready" in log_text(container), message="ready")
    ended = await container.stop(grace_period=30)
    assert (ended.exit_code, ended.reason) == (0, "Completed")
    assert messages(container) == [("stdout", "ready"), ("stdout", "drained")]


async def test_a_program_ignoring_sigterm_is_killed_after_the_grace_period(
    runner: Runner,
) -> None:
    container = await runner.start(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(1)
        """
    )
    await eventually(lambda: "ready" in log_text(container), message="ready")
    begun = time.monotonic()
    ended = await container.stop(grace_period=0.5)
    assert time.monotonic() - begun >= 0.5
    assert (ended.exit_code, ended.signal, ended.reason) == (137, 9, "Error")
    assert await container.stop(grace_period=0.5) == ended  # stopping again changes nothing


CHILD = f"""
import subprocess, sys, time
child = subprocess.Popen([{PY!r}, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
"""


async def test_stop_kills_the_children_with_the_group(runner: Runner) -> None:
    container = await runner.start(CHILD + "time.sleep(60)\n")
    await eventually(lambda: messages(container), message="the child's pid")
    child = int(messages(container)[0][1])
    assert alive(child)
    ended = await container.stop(grace_period=5)
    assert ended.signal == signal.SIGTERM
    await eventually(lambda: not alive(child), message="the child gone")


async def test_processes_left_behind_by_an_exited_program_are_killed(runner: Runner) -> None:
    container = await runner.start(CHILD)
    ended = await container.wait()
    assert ended.exit_code == 0
    child = int(messages(container)[0][1])
    await eventually(lambda: not alive(child), message="the orphan gone")


async def test_exec_runs_in_the_containers_env_and_working_dir(
    runner: Runner, tmp_path: Path
) -> None:
    container = await runner.start(
        "import time; time.sleep(60)", working_dir=str(tmp_path), env={**BASE_ENV, "MODE": "x"}
    )
    result = await container.exec(
        [
            PY,
            "-c",
            "import os, sys; print(os.getcwd(), os.environ['MODE'], os.environ['EXTRA'],"
            " sys.stdin.read()); print('oops', file=sys.stderr); raise SystemExit(4)",
        ],
        timeout=30,
        stdin=b"input",
        env_extra={"EXTRA": "y"},
    )
    assert result.exit_code == 4
    assert result.stdout == f"{tmp_path} x y input\n".encode()
    assert result.stderr == b"oops\n"
    assert not result.timed_out
    assert container.running  # exec does not disturb the container


async def test_exec_timeout_kills_the_exec_process_group(runner: Runner) -> None:
    container = await runner.start("import time; time.sleep(60)")
    begun = time.monotonic()
    result = await container.exec([PY, "-c", CHILD + "time.sleep(60)\n"], timeout=2)
    assert time.monotonic() - begun < 30
    assert result.timed_out and result.exit_code == 137
    await eventually(lambda: not alive(int(result.stdout)), message="the exec's child gone")
    assert container.running


async def test_exec_of_a_missing_program_exits_127(runner: Runner) -> None:
    container = await runner.start("import time; time.sleep(60)")
    result = await container.exec(["no-such-probe"], timeout=5)
    assert result.exit_code == 127
    assert b"executable file not found" in result.stderr


async def test_the_termination_message_is_read_on_exit(runner: Runner, tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    container = await runner.start(
        f"open({str(path)!r}, 'w').write('bye ' * 2000); raise SystemExit(1)",
        termination_message_path=str(path),
    )
    ended = await container.wait()
    assert ended.message == ("bye " * 2000)[:4096]


async def test_the_log_is_in_cri_format_with_the_right_streams(runner: Runner) -> None:
    container = await runner.start(
        "import sys; print('out one'); sys.stdout.flush(); print('err one', file=sys.stderr);"
        " sys.stderr.flush(); sys.stdout.write('no newline')"
    )
    await container.wait()
    lines = log_text(container).splitlines()
    assert len(lines) == 3
    for line in lines:
        timestamp, _, _, _ = line.split(" ", 3)
        assert len(timestamp) == len("2024-01-01T00:00:00.000000000Z") and timestamp[-1] == "Z"
    assert [line.split(" ", 1)[1] for line in lines] == [
        "stdout F out one",
        "stderr F err one",
        "stdout F no newline",
    ]


async def test_a_long_line_is_split_into_partial_records(runner: Runner) -> None:
    container = await runner.start("print('x' * 40000)")
    await container.wait()
    records = [line.split(" ", 3)[2:] for line in log_text(container).splitlines()]
    assert [(tag, len(message)) for tag, message in records] == [
        ("P", 16384),
        ("P", 16384),
        ("F", 40000 - 2 * 16384),
    ]
    output = b"".join(
        [c async for c in read_log(container.spec.log_path, LogOptions(), is_running=lambda: False)]
    )
    assert output == b"x" * 40000 + b"\n"


async def test_follow_ends_when_the_container_exits(runner: Runner) -> None:
    container = await runner.start(
        """
        import time
        for i in range(3):
            print(i, flush=True)
        time.sleep(0.3)
        print("last")
        """
    )
    chunks = [
        chunk
        async for chunk in read_log(
            container.spec.log_path,
            LogOptions(follow=True),
            is_running=lambda: container.running,
            poll_interval=0.02,
        )
    ]
    assert b"".join(chunks) == b"0\n1\n2\nlast\n"
    assert not container.running


async def test_a_process_that_left_the_group_does_not_hold_up_the_exit(
    runner: Runner,
) -> None:
    runner.runtime = ProcessRuntime(drain_timeout=0.2)
    container = await runner.start(
        f"""
        import subprocess
        escaped = subprocess.Popen(
            [{PY!r}, "-c", "import time; time.sleep(60)"], start_new_session=True
        )
        print(escaped.pid, flush=True)
        """
    )
    try:
        ended = await asyncio.wait_for(container.wait(), 30)
        assert ended.exit_code == 0
        assert not container.running
    finally:
        await eventually(lambda: messages(container), message="the escaped pid")
        os.kill(int(messages(container)[0][1]), signal.SIGKILL)
