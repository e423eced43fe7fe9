"""The agent's HTTPS endpoint: container logs with their options, exec over the Kubernetes
websocket channel protocol (output, exit Status, stdin, tty, resize), and authentication."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubeling.agent.logs import LogWriter
from kubeling.agent.runtime import ContainerSpec, ProcessContainer, ProcessRuntime
from kubeling.agent.server import AgentServer, ExecStream
from kubeling.agent.serving import self_signed_context
from kubeling.testing import eventually

TOKEN = "node:secret"
V5 = "v5.channel.k8s.io"
BASE_ENV = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin"}
T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14T22:13:20Z


@dataclass
class FakeHandle:
    """A container: log files written by the test, exec into a real idle process."""

    current: Path | None
    previous: Path | None = None
    running: bool = True
    container: ProcessContainer | None = None
    execs: list[list[str]] = field(default_factory=list)

    def log_path(self, previous: bool) -> Path | None:
        return self.previous if previous else self.current

    def is_running(self) -> bool:
        return self.running

    async def exec_stream(self, argv: list[str], *, tty: bool, stdin: bool) -> ExecStream:
        assert self.container is not None
        self.execs.append(argv)
        return await self.container.exec_stream(argv, tty=tty, stdin=stdin)


def write_log(path: Path, *lines: tuple[str, str]) -> LogWriter:
    """A log with one record per (stream, text), a second apart from T0."""
    clock = iter(range(T0, T0 + 1000 * 1_000_000_000, 1_000_000_000))
    writer = LogWriter(path, now_ns=lambda: next(clock))
    for stream, text in lines:
        writer.feed(stream, text.encode())
    return writer


@dataclass
class Endpoint:
    server: AgentServer
    handles: dict[tuple[str, str, str], FakeHandle]
    session: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.port}{path}"

    async def get(self, path: str, token: str = TOKEN, **params: str) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.url(path), params=params, headers=headers) as response:
            return response.status, await response.read()

    async def exec(
        self, argv: list[str], *, input: bytes | None = None, resize: Any = None, **flags: str
    ) -> tuple[dict[int, bytes], dict[str, Any]]:
        """Run an exec to its end: the bytes per channel, and the Status of channel 3."""
        params = [("command", a) for a in argv] + [(k, v) for k, v in flags.items()]
        channels: dict[int, bytes] = {}
        async with self.session.ws_connect(
            self.url("/exec/default/web/main"),
            params=params,
            protocols=[V5],
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as ws:
            assert ws.protocol == V5
            if resize is not None:
                await ws.send_bytes(b"\x04" + json.dumps(resize).encode())
            if input is not None:
                await ws.send_bytes(b"\x00" + input)
                await ws.send_bytes(b"\xff\x00")  # v5: stdin is closed
            async for message in ws:
                assert message.type == aiohttp.WSMsgType.BINARY
                channels[message.data[0]] = channels.get(message.data[0], b"") + message.data[1:]
        return channels, json.loads(channels.get(3) or b"null")


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    runtime = ProcessRuntime()
    idle = await runtime.start(
        ContainerSpec(
            pod_uid="uid",
            namespace="default",
            pod_name="web",
            name="main",
            argv=["sleep", "600"],
            env=BASE_ENV,
            working_dir=str(tmp_path),
            log_path=tmp_path / "idle.log",
        )
    )
    handles = {("default", "web", "main"): FakeHandle(tmp_path / "0.log", container=idle)}
    server = AgentServer(
        lambda ns, pod, c: handles.get((ns, pod, c)),
        token=TOKEN,
        ssl_context=self_signed_context(tmp_path / "tls"),
        poll_interval=0.01,
    )
    await server.start()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
    try:
        yield Endpoint(server, handles, session)
    finally:
        await session.close()
        await server.stop()
        await idle.stop(0)


def handle(endpoint: Endpoint) -> FakeHandle:
    return endpoint.handles[("default", "web", "main")]


# --- logs ----------------------------------------------------------------------------------


async def test_logs_are_the_current_instances_messages(endpoint: Endpoint) -> None:
    fake = handle(endpoint)
    assert fake.current is not None
    write_log(fake.current, ("stdout", "one\n"), ("stderr", "two\n")).close()
    status, body = await endpoint.get("/containerLogs/default/web/main")
    assert (status, body) == (200, b"one\ntwo\n")


async def test_log_options_tail_timestamps_limit_and_since(endpoint: Endpoint) -> None:
    fake = handle(endpoint)
    assert fake.current is not None
    write_log(fake.current, ("stdout", "a\nb\nc\n")).close()  # all three at T0
    write_log(fake.current, ("stdout", "d\n"), ("stdout", "e\n")).close()  # T0, T0 + 1 s
    path = "/containerLogs/default/web/main"
    assert (await endpoint.get(path, tailLines="2"))[1] == b"d\ne\n"
    assert (await endpoint.get(path, tailLines="1", timestamps="true"))[1] == (
        b"2023-11-14T22:13:21.000000000Z e\n"
    )
    assert (await endpoint.get(path, limitBytes="3"))[1] == b"a\nb"
    assert (await endpoint.get(path, sinceTime="2023-11-14T22:13:21Z"))[1] == b"e\n"


async def test_previous_reads_the_earlier_instance_or_says_there_is_none(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    fake = handle(endpoint)
    path = "/containerLogs/default/web/main"
    status, body = await endpoint.get(path, previous="true")
    assert status == 400
    assert json.loads(body)["message"] == (
        'previous terminated container "main" in pod "web" not found'
    )
    fake.previous = tmp_path / "earlier.log"
    write_log(fake.previous, ("stdout", "before the crash\n")).close()
    assert await endpoint.get(path, previous="true") == (200, b"before the crash\n")


async def test_follow_streams_until_the_instance_stops(endpoint: Endpoint) -> None:
    fake = handle(endpoint)
    assert fake.current is not None
    writer = write_log(fake.current, ("stdout", "first\n"))
    async with endpoint.session.get(
        endpoint.url("/containerLogs/default/web/main"),
        params={"follow": "true"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as response:
        assert response.status == 200
        assert await response.content.readline() == b"first\n"
        writer.feed("stdout", b"second\n")
        assert await response.content.readline() == b"second\n"
        writer.close()
        fake.running = False
        assert await response.content.read() == b""  # the stream ends


async def test_a_container_not_started_or_unknown_is_refused(endpoint: Endpoint) -> None:
    handle(endpoint).current = None
    status, body = await endpoint.get("/containerLogs/default/web/main")
    assert status == 400
    assert "is waiting to start: ContainerCreating" in json.loads(body)["message"]
    status, body = await endpoint.get("/containerLogs/default/web/other")
    assert status == 404
    assert json.loads(body)["kind"] == "Status"


async def test_bad_log_options_are_400(endpoint: Endpoint) -> None:
    path = "/containerLogs/default/web/main"
    assert (await endpoint.get(path, tailLines="x"))[0] == 400
    assert (await endpoint.get(path, sinceSeconds="5", sinceTime="2024-01-01T00:00:00Z"))[0] == 400


async def test_requests_without_the_token_are_401(endpoint: Endpoint) -> None:
    path = "/containerLogs/default/web/main"
    for token in ("", "node:wrong", "bégin"):
        status, body = await endpoint.get(path, token=token)
        assert status == 401
        assert json.loads(body)["reason"] == "Unauthorized"


# --- exec ----------------------------------------------------------------------------------


async def test_exec_streams_stdout_and_stderr_then_success(endpoint: Endpoint) -> None:
    channels, status = await endpoint.exec(
        ["sh", "-c", "echo out; echo err >&2"], stdout="true", stderr="true"
    )
    assert channels[1] == b"out\n"
    assert channels[2] == b"err\n"
    assert status == {"metadata": {}, "status": "Success"}


async def test_a_non_zero_exit_is_a_NonZeroExitCode_status(endpoint: Endpoint) -> None:
    _, status = await endpoint.exec(["sh", "-c", "exit 3"], stdout="true", stderr="true")
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


async def test_exec_of_a_missing_program_exits_127_with_the_reason(endpoint: Endpoint) -> None:
    channels, status = await endpoint.exec(["no-such-program"], stdout="true", stderr="true")
    assert b"executable file not found" in channels[2]
    assert status["details"]["causes"][0]["message"] == "127"


async def test_stdin_reaches_the_process_and_its_close_ends_the_input(
    endpoint: Endpoint,
) -> None:
    channels, status = await endpoint.exec(["cat"], input=b"hello\n", stdin="true", stdout="true")
    assert channels[1] == b"hello\n"
    assert status["status"] == "Success"


async def test_tty_runs_on_a_terminal_with_the_size_asked_for(endpoint: Endpoint) -> None:
    channels, status = await endpoint.exec(
        ["sh", "-c", "read line; stty size; tty; echo to-stderr >&2"],
        input=b"go\n",
        resize={"Width": 101, "Height": 33},
        stdin="true",
        stdout="true",
        tty="true",
    )
    output = channels[1].replace(b"\r\n", b"\n")
    assert b"33 101\n" in output
    assert b"/dev/pts/" in output
    assert b"to-stderr" in output  # merged into stdout, as Kubernetes does with a tty
    assert channels.get(2, b"") == b""
    assert status["status"] == "Success"


async def test_a_client_that_leaves_kills_the_exec(endpoint: Endpoint) -> None:
    async with endpoint.session.ws_connect(
        endpoint.url("/exec/default/web/main"),
        params=[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo $$; exec sleep 60"),
            ("stdout", "true"),
        ],
        protocols=[V5],
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as ws:
        pid = b""
        while not pid.endswith(b"\n"):
            message = await ws.receive_bytes()
            assert message[0] == 1
            pid += message[1:]
    await eventually(lambda: not _alive(int(pid)), message="the exec's process gone")


async def test_exec_needs_the_token_and_a_websocket(endpoint: Endpoint) -> None:
    status, _ = await endpoint.get("/exec/default/web/main", token="", command="true")
    assert status == 401
    status, body = await endpoint.get("/exec/default/web/main", command="true")
    assert status == 400
    assert "Upgrade request required" in json.loads(body)["message"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (the runtime's child watcher reaps it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
