"""Probes: single attempts against real local servers, and the probers' thresholds, initial
states, schedule and sequencing on a fake clock."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kubeling.agent.probes import (
    USER_AGENT,
    ContainerProbes,
    Prober,
    ProbeResult,
    run_probe,
)
from kubeling.apiserver.certs import ensure_credentials
from kubeling.testing import eventually
from kubeling.util.clock import FakeClock

HOST = "127.0.0.1"

# -- real servers ------------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def _app(server: Server) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        server.paths.append(request.path_qs)
        server.headers.append(dict(request.headers))
        name = request.match_info["name"]
        if name == "fail":
            return web.Response(status=500, text="broken")
        if name == "moved":
            raise web.HTTPMovedPermanently("/ok")
        if name == "moved-to-fail":
            raise web.HTTPFound("/fail")
        if name == "elsewhere":
            raise web.HTTPFound(f"http://127.0.0.2:{server.port}/fail")
        if name == "loop":
            raise web.HTTPFound("/loop")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{name}", handle)
    return app


async def _serve(ssl_context: Any = None) -> AsyncIterator[Server]:
    server = Server(port=0)
    runner = web.AppRunner(_app(server))
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=ssl_context)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[Server]:
    async for server in _serve():
        yield server


@pytest.fixture
async def https(tmp_path: Path) -> AsyncIterator[Server]:
    credentials = ensure_credentials(tmp_path, [HOST])
    async for server in _serve(credentials.ssl_context()):
        yield server


@pytest.fixture
async def silent() -> AsyncIterator[int]:
    """A server that accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1024):
            pass
        writer.close()

    server = await asyncio.start_server(hold, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def http_get(port: int | str, path: str = "/ok", **extra: Any) -> dict[str, Any]:
    return {"httpGet": {"port": port, "path": path, **extra}}


async def probe(spec: dict[str, Any], **kwargs: Any) -> tuple[ProbeResult, str]:
    options: dict[str, Any] = {"pod_ip": HOST, "exec_": None, "container_ports": []}
    options.update(kwargs)
    return await run_probe(spec, **options)


# -- httpGet -----------------------------------------------------------------------------------


async def test_http_probe_succeeds_on_200(http: Server) -> None:
    assert await probe(http_get(http.port)) == (ProbeResult.SUCCESS, "")


async def test_http_probe_fails_on_500_with_the_kubelets_message(http: Server) -> None:
    result = await probe(http_get(http.port, "/fail"))
    assert result == (ProbeResult.FAILURE, "HTTP probe failed with statuscode: 500")


async def test_http_probe_follows_a_redirect_to_the_same_host(http: Server) -> None:
    assert (await probe(http_get(http.port, "/moved")))[0] is ProbeResult.SUCCESS
    assert (await probe(http_get(http.port, "/moved-to-fail")))[0] is ProbeResult.FAILURE
    assert http.paths == ["/moved", "/ok", "/moved-to-fail", "/fail"]


async def test_http_probe_does_not_follow_a_redirect_to_another_host(http: Server) -> None:
    result, message = await probe(http_get(http.port, "/elsewhere"))
    assert result is ProbeResult.SUCCESS  # the 302 itself counts, as the kubelet's Warning
    assert "redirects" in message
    assert http.paths == ["/elsewhere"]


async def test_http_probe_stops_after_ten_redirects(http: Server) -> None:
    result, message = await probe(http_get(http.port, "/loop"))
    assert result is ProbeResult.FAILURE
    assert message == f'Get "http://{HOST}:{http.port}/loop": stopped after 10 redirects'
    assert len(http.paths) == 10


async def test_http_probe_to_a_refused_port_reads_like_go(closed_port: int) -> None:
    result = await probe(http_get(closed_port, "/healthz"))
    url, address = f"http://{HOST}:{closed_port}/healthz", f"{HOST}:{closed_port}"
    assert result == (
        ProbeResult.FAILURE,
        f'Get "{url}": dial tcp {address}: connect: connection refused',
    )


async def test_http_probe_times_out_when_the_server_does_not_answer(silent: int) -> None:
    result, message = await probe({**http_get(silent), "timeoutSeconds": 0.2})
    assert result is ProbeResult.FAILURE
    assert message.startswith(f'Get "http://{HOST}:{silent}/ok": context deadline exceeded')


async def test_http_probe_resolves_a_named_port(http: Server) -> None:
    ports = [{"name": "metrics", "containerPort": 1}, {"name": "web", "containerPort": http.port}]
    assert (await probe(http_get("web"), container_ports=ports))[0] is ProbeResult.SUCCESS


async def test_http_probe_with_an_unknown_port_name_has_no_verdict(http: Server) -> None:
    result, message = await probe(http_get("nope"))
    assert result is ProbeResult.UNKNOWN
    assert "nope" in message


async def test_http_probe_sends_the_kubelets_and_the_specs_headers(http: Server) -> None:
    headers = [{"name": "X-Probe", "value": "yes"}, {"name": "Accept", "value": "text/plain"}]
    await probe(http_get(http.port, "/ok?deep=1", httpHeaders=headers))
    sent = http.headers[0]
    assert sent["User-Agent"] == USER_AGENT == "kube-probe/1.32"
    assert sent["X-Probe"] == "yes"
    assert sent["Accept"] == "text/plain"
    assert http.paths == ["/ok?deep=1"]


async def test_http_probe_lets_the_spec_override_the_user_agent(http: Server) -> None:
    await probe(http_get(http.port, httpHeaders=[{"name": "user-agent", "value": "mine"}]))
    assert http.headers[0]["User-Agent"] == "mine"


async def test_http_probe_host_overrides_the_pod_ip(http: Server) -> None:
    spec = http_get(http.port, host=HOST)
    assert (await probe(spec, pod_ip="127.0.0.9"))[0] is ProbeResult.SUCCESS


async def test_https_probe_does_not_verify_the_certificate(https: Server) -> None:
    assert await probe(http_get(https.port, scheme="HTTPS")) == (ProbeResult.SUCCESS, "")


# -- tcpSocket, exec, grpc ---------------------------------------------------------------------


async def test_tcp_probe_succeeds_on_an_open_port(http: Server) -> None:
    assert await probe({"tcpSocket": {"port": http.port}}) == (ProbeResult.SUCCESS, "")


async def test_tcp_probe_fails_on_a_closed_port(closed_port: int) -> None:
    result = await probe({"tcpSocket": {"port": closed_port}})
    message = f"dial tcp {HOST}:{closed_port}: connect: connection refused"
    assert result == (ProbeResult.FAILURE, message)


def fake_exec(code: int = 0, output: bytes = b"", *, hang: bool = False) -> Any:
    calls: list[tuple[list[str], float]] = []

    async def exec_(argv: list[str], timeout: float) -> tuple[int, bytes]:
        calls.append((argv, timeout))
        if hang:
            raise TimeoutError
        return code, output

    exec_.calls = calls  # type: ignore[attr-defined]
    return exec_


async def test_exec_probe_succeeds_on_exit_zero() -> None:
    exec_ = fake_exec(0, b"fine\n")
    spec = {"exec": {"command": ["cat", "/tmp/healthy"]}, "timeoutSeconds": 3}
    assert await probe(spec, exec_=exec_) == (ProbeResult.SUCCESS, "fine\n")
    assert exec_.calls == [(["cat", "/tmp/healthy"], 3.0)]


async def test_exec_probe_fails_on_a_nonzero_exit() -> None:
    spec = {"exec": {"command": ["cat", "/tmp/healthy"]}}
    result = await probe(spec, exec_=fake_exec(1, b"cat: /tmp/healthy: No such file\n"))
    assert result == (ProbeResult.FAILURE, "cat: /tmp/healthy: No such file\n")


async def test_exec_probe_fails_when_the_command_times_out() -> None:
    exec_ = fake_exec(hang=True)
    result, message = await probe({"exec": {"command": ["sleep", "9"]}}, exec_=exec_)
    assert result is ProbeResult.FAILURE
    assert "timed out" in message
    assert exec_.calls == [(["sleep", "9"], 1.0)]  # the default timeoutSeconds


async def test_exec_probe_without_a_runtime_exec_has_no_verdict() -> None:
    result, _ = await probe({"exec": {"command": ["true"]}}, exec_=None)
    assert result is ProbeResult.UNKNOWN


async def test_grpc_probe_is_not_supported_yet() -> None:
    result, message = await probe({"grpc": {"port": 9000}})
    assert result is ProbeResult.UNKNOWN
    assert "grpc probes are not supported" in message


# -- Prober on a fake clock --------------------------------------------------------------------


class Script:
    """A fake exec that answers from a list of exit codes (None: the command cannot run) and
    remembers the commands it ran; it blocks while `gate` is clear."""

    def __init__(self, *codes: int | None) -> None:
        self.codes = list(codes)
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.running = self.most_running = 0

    async def __call__(self, argv: list[str], timeout: float) -> tuple[int, bytes]:
        self.calls.append(argv[0])
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        code = self.codes.pop(0) if self.codes else 0
        if code is None:
            raise OSError("no such process")
        return code, f"exit {code}".encode()


Changes = list[tuple[str, bool, str]]


def make_prober(
    kind: str, script: Script, clock: FakeClock, changes: Changes, **spec: Any
) -> Prober:
    return Prober(
        kind,
        {"exec": {"command": [kind]}, "periodSeconds": 10, **spec},
        pod_ip=HOST,
        exec_=script,
        container_ports=[],
        on_change=lambda *change: changes.append(change),
        clock=clock,
        rng=lambda: 0.0,
    )


async def advance(clock: FakeClock, seconds: float, sleepers: int = 1) -> None:
    """Move the clock and wait until the probers are asleep again."""
    clock.advance(seconds)
    await eventually(lambda: clock.sleepers == sleepers, message=f"{sleepers} sleepers")


async def test_readiness_starts_not_ready_and_needs_success_threshold_successes() -> None:
    clock, script, changes = FakeClock(), Script(0, 0, 0), []
    prober = make_prober("readiness", script, clock, changes, successThreshold=2)
    prober.start()
    assert (prober.healthy, changes) == (False, [("readiness", False, "")])
    await advance(clock, 0)  # the first attempt, at once
    assert (script.calls, prober.healthy) == (["readiness"], False)
    await advance(clock, 10)
    assert prober.healthy is True
    assert changes == [("readiness", False, ""), ("readiness", True, "exit 0")]
    await prober.stop()


async def test_readiness_fails_after_failure_threshold_and_keeps_probing() -> None:
    clock, script, changes = FakeClock(), Script(0, 1, 1, 0, 1, 1, 1, 0), []
    prober = make_prober("readiness", script, clock, changes, failureThreshold=3)
    prober.start()
    await advance(clock, 0)
    for _ in range(7):
        await advance(clock, 10)
    assert [healthy for _, healthy, _ in changes] == [False, True, False, True]
    assert changes[2] == ("readiness", False, "exit 1")
    assert len(script.calls) == 8
    await prober.stop()


async def test_liveness_starts_healthy_and_fails_after_consecutive_failures_then_holds() -> None:
    clock, script, changes = FakeClock(), Script(1, 1, 0, 1, 1, 1), []
    prober = make_prober("liveness", script, clock, changes)
    prober.start()
    assert (prober.healthy, changes) == (True, [("liveness", True, "")])
    await advance(clock, 0)
    for _ in range(4):
        await advance(clock, 10)
    assert prober.healthy is True  # two failures, a success, two failures: no run of three
    clock.advance(10)
    await eventually(lambda: prober.healthy is False)
    assert changes[-1] == ("liveness", False, "exit 1")
    await advance(clock, 100, sleepers=0)
    assert len(script.calls) == 6  # on hold until the container is restarted
    await prober.stop()


async def test_startup_is_unknown_until_it_succeeds_then_stops_probing() -> None:
    clock, script, changes = FakeClock(), Script(1, 1, 0), []
    prober = make_prober("startup", script, clock, changes, failureThreshold=3)
    prober.start()
    assert (prober.healthy, changes) == (None, [])
    await advance(clock, 0)
    await advance(clock, 10)
    assert prober.healthy is None
    clock.advance(10)
    await eventually(lambda: prober.healthy is True)
    assert changes == [("startup", True, "exit 0")]
    await advance(clock, 100, sleepers=0)
    assert len(script.calls) == 3
    await prober.stop()


async def test_startup_fails_after_failure_threshold() -> None:
    clock, script, changes = FakeClock(), Script(1, 1), []
    prober = make_prober("startup", script, clock, changes, failureThreshold=2)
    prober.start()
    await advance(clock, 0)
    clock.advance(10)
    await eventually(lambda: prober.healthy is False)
    assert changes == [("startup", False, "exit 1")]
    await prober.stop()


async def test_attempts_without_a_verdict_neither_count_nor_break_a_run() -> None:
    clock, script, changes = FakeClock(), Script(1, None, None, 1, None, 1), []
    prober = make_prober("liveness", script, clock, changes)
    prober.start()
    await advance(clock, 0)
    for _ in range(4):
        await advance(clock, 10)
    assert prober.healthy is True
    clock.advance(10)
    await eventually(lambda: prober.healthy is False)
    await prober.stop()


async def test_the_first_attempt_comes_at_the_initial_delay_and_the_grid_is_jittered() -> None:
    clock, script, changes = FakeClock(), Script(), []
    prober = Prober(
        "readiness",
        {"exec": {"command": ["x"]}, "initialDelaySeconds": 5},  # the default period, 10 s
        pod_ip=HOST,
        exec_=script,
        container_ports=[],
        on_change=lambda *change: changes.append(change),
        clock=clock,
        rng=lambda: 0.25,
    )
    prober.start()
    assert (prober.first_at, prober.phase) == (5, 7.5)
    await advance(clock, 4.9)
    assert script.calls == []
    await advance(clock, 0.1)
    assert script.calls == ["x"]
    await advance(clock, 7.4)
    assert script.calls == ["x"]
    await advance(clock, 0.1)
    assert script.calls == ["x", "x"]
    await advance(clock, 10)
    assert script.calls == ["x", "x", "x"]
    await prober.stop()


async def test_jitter_is_within_one_period_and_can_be_turned_off() -> None:
    spec = {"exec": {"command": ["x"]}, "initialDelaySeconds": 3, "periodSeconds": 4}
    clock = FakeClock(100)

    def prober(**options: Any) -> Prober:
        return Prober(
            "liveness", spec, pod_ip=HOST, exec_=Script(), container_ports=[],
            on_change=lambda *_: None, clock=clock, **options,
        )  # fmt: skip

    probers = [prober() for _ in range(50)] + [prober(rng=lambda: 0.9999), prober(jitter=False)]
    for each in probers:
        each.start(since=90)
    assert {each.first_at for each in probers} == {93}  # no delay before the first attempt
    phases = [each.phase for each in probers]
    assert all(0 < phase <= 4 for phase in phases[:51])
    assert len(set(phases[:50])) > 1  # spread out, not in lockstep
    assert phases[-1] == 4
    for each in probers:
        await each.stop()


async def test_attempts_of_one_prober_never_overlap() -> None:
    clock, script, changes = FakeClock(), Script(), []
    prober = make_prober("readiness", script, clock, changes, timeoutSeconds=100)
    script.gate.clear()  # the first attempt hangs
    prober.start()
    await eventually(lambda: script.running == 1)
    for _ in range(3):
        clock.advance(10)
        await asyncio.sleep(0)
    assert (script.calls, clock.sleepers) == (["readiness"], 0)
    script.gate.set()  # it overran its period: the next attempt comes at once
    await eventually(lambda: len(script.calls) == 2 and clock.sleepers == 1)
    assert script.most_running == 1
    assert clock.next_deadline() == 40
    await prober.stop()


async def test_stop_cancels_an_attempt_in_flight() -> None:
    clock, script, changes = FakeClock(), Script(), []
    prober = make_prober("liveness", script, clock, changes, timeoutSeconds=100)
    script.gate.clear()
    prober.start()
    await eventually(lambda: script.running == 1)
    await prober.stop()
    assert script.running == 0
    await prober.stop()  # idempotent


# -- ContainerProbes ---------------------------------------------------------------------------


def container(*kinds: str, **spec: Any) -> dict[str, Any]:
    probes = {f"{kind}Probe": {"exec": {"command": [kind]}, **spec} for kind in kinds}
    return {"name": "c", "command": ["server"], **probes}


@dataclass
class Recorder:
    changes: Changes = field(default_factory=list)
    restarts: list[tuple[str, str]] = field(default_factory=list)

    def probes(self, spec: dict[str, Any], script: Script, clock: FakeClock) -> ContainerProbes:
        return ContainerProbes(
            spec,
            HOST,
            script,
            lambda *change: self.changes.append(change),
            clock,
            on_restart=lambda kind, message: self.restarts.append((kind, message)),
            rng=lambda: 0.0,
        )


def only(kind: str, script: Script) -> list[str]:
    return [call for call in script.calls if call == kind]


async def test_readiness_and_liveness_wait_for_startup_to_succeed() -> None:
    clock, recorder = FakeClock(), Recorder()
    script = Script(1, 0, 0, 0)  # startup fails once, then everything succeeds
    probes = recorder.probes(container("startup", "readiness", "liveness"), script, clock)
    probes.start()
    assert (probes.started, probes.ready, probes.live) == (False, False, True)
    await advance(clock, 0, sleepers=3)
    assert script.calls == ["startup"]  # readiness and liveness skipped their first tick
    await advance(clock, 10, sleepers=2)  # startup succeeds and stops probing
    assert probes.started
    await advance(clock, 10, sleepers=2)  # within one period, the others have probed
    assert script.calls[:2] == ["startup", "startup"]
    assert set(script.calls[2:]) == {"liveness", "readiness"}
    assert (probes.started, probes.ready, probes.live) == (True, True, True)
    assert ("readiness", True, "exit 0") in recorder.changes
    await probes.stop()


async def test_liveness_failure_asks_for_a_restart() -> None:
    clock, recorder = FakeClock(), Recorder()
    probes = recorder.probes(container("liveness", failureThreshold=2), Script(1, 1), clock)
    probes.start()
    await advance(clock, 0)
    clock.advance(10)
    await eventually(lambda: recorder.restarts == [("liveness", "exit 1")])
    assert (probes.live, probes.ready) == (False, True)  # readiness is its own probe's
    await probes.stop()
    assert probes.probers == {}


async def test_startup_failure_asks_for_a_restart_and_restart_starts_afresh() -> None:
    clock, recorder = FakeClock(), Recorder()
    script = Script(1)
    probes = recorder.probes(container("startup", failureThreshold=1), script, clock)
    probes.start()
    await eventually(lambda: recorder.restarts == [("startup", "exit 1")])
    assert (probes.started, probes.live) == (False, False)
    await probes.stop()
    probes.start()  # the restarted container
    await eventually(lambda: probes.started)
    assert script.calls == ["startup", "startup"]
    await probes.stop()


async def test_container_without_probes_is_started_ready_and_live() -> None:
    clock, recorder = FakeClock(), Recorder()
    probes = recorder.probes(container(), Script(), clock)
    probes.start()
    assert (probes.started, probes.ready, probes.live) == (True, True, True)
    assert clock.sleepers == 0
    await probes.stop()


async def test_without_a_readiness_probe_ready_follows_started() -> None:
    clock, recorder = FakeClock(), Recorder()
    probes = recorder.probes(container("startup"), Script(1, 0), clock)
    probes.start()
    await advance(clock, 0)
    assert probes.ready is False
    clock.advance(10)
    await eventually(lambda: probes.ready)
    assert recorder.changes == [("startup", True, "exit 0")]
    await probes.stop()


def test_an_unknown_probe_kind_is_refused() -> None:
    def noop(kind: str, healthy: bool, message: str) -> None:
        pass

    with pytest.raises(ValueError, match="unknown probe kind"):
        Prober("sideways", {}, pod_ip=HOST, exec_=None, container_ports=[], on_change=noop)
