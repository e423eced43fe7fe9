"""Container probes: one attempt (`run_probe`), one probe on its schedule (`Prober`), and the
three probes of a container sequenced as the kubelet does (`ContainerProbes`).

The node agent uses these to drive a container's `started` and `ready` status (and so the
pod's `Ready` condition and the endpoints behind Services) and to restart a container that
fails its liveness or startup probe. The semantics are the kubelet's (`pkg/kubelet/prober`):

* **Defaults**: periodSeconds 10, timeoutSeconds 1, successThreshold 1, failureThreshold 3,
  initialDelaySeconds 0. The API server applies them too; they are repeated here so that a
  spec read from anywhere works.
* **Thresholds**: a probe's state flips only after `failureThreshold` consecutive failures or
  `successThreshold` consecutive successes. An attempt with no verdict (`UNKNOWN`: a named port
  that does not exist, an unsupported grpc probe, a runtime error of exec) counts for neither
  and breaks no run, as the kubelet throws away the result of a probe that *errored*.
* **Initial states**: readiness starts not ready (False, reported at `start()`); liveness
  starts healthy (True, reported at `start()`); startup starts *unknown* (`healthy` is None,
  nothing reported), because a container is not "started" until its startup probe succeeds.
* **Holds**: a startup probe stops for good after its first success. A liveness or startup
  probe that fails stops too (the kubelet's "on hold"): the agent restarts the container, and
  a restarted container gets new probers. A readiness probe runs for the container's life.
* **Sequencing**: readiness and liveness do not probe until startup has succeeded. A `Prober`
  takes a `gate` for this; `ContainerProbes` wires it. Like the kubelet's workers, gated
  probers keep ticking from container start and skip their ticks, so the first readiness probe
  comes within one period after startup succeeds.
* **Schedule**: the first attempt is at `since + initialDelaySeconds`, where `since` is the
  container's start (default: when `start()` is called), so a new container is judged without
  delay. The second comes `(1 - rng()) * period` later (in (0, period]), and the rest every period
  after it: the grid of each prober gets a random phase, so the probes of many pods started
  together do not fire in lockstep, without costing any readiness latency (the kubelet instead
  delays the first probe, and only just after it started itself). `jitter=False` keeps the
  plain grid: every attempt a whole period after the one before.
  Attempts then start every period on that grid. **Attempts of one prober never overlap**: one
  task runs them in turn; an attempt that outlasts its period delays the next tick (which then
  comes at once, and the grid restarts from there).
* **Time**: the schedule runs on the injected `Clock`; the timeout of an attempt is network
  I/O and runs on real time (the event loop).

Each attempt's `(result, message)` reads as the kubelet's, for events and conditions:
`Get "http://127.128.0.5:8080/healthz": dial tcp 127.128.0.5:8080: connect: connection refused`,
`HTTP probe failed with statuscode: 500`, `dial tcp 127.0.0.1:5432: i/o timeout`.

Not handled here: `$(VAR)` expansion in exec commands (the `Exec` the agent passes runs the
command as it would run the container's own), the probe-level `terminationGracePeriodSeconds`
(the agent reads it when it restarts), and grpc probes (UNKNOWN until implemented).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import Enum
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from kubeling.util.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024  # bytes of a response body or command output kept (the kubelet's limit)
MAX_REQUESTS = 10  # Go's http.Client: the 10th redirect is refused ("stopped after 10 redirects")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})  # what Go's client follows; 300/304/305 are not
KINDS = ("startup", "readiness", "liveness")

Exec = Callable[[list[str], float], Awaitable[tuple[int, bytes]]]
"""Run `argv` in the container, with a timeout in seconds: (exit code, combined output).
Raises TimeoutError when the command runs past the timeout."""

OnChange = Callable[[str, bool, str], None]
"""(kind, healthy, message): called when a probe's thresholded state flips."""


class ProbeResult(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"  # no verdict: counts neither as success nor as failure


class _NoVerdict(Exception):
    """The probe could not be run as written (an unknown port name, a bad scheme)."""


# -- one attempt -------------------------------------------------------------------------------


async def run_probe(
    probe: Mapping[str, Any],
    *,
    pod_ip: str,
    exec_: Exec | None,
    container_ports: Sequence[Mapping[str, Any]],
) -> tuple[ProbeResult, str]:
    """Run one attempt of `probe` (a Kubernetes Probe) and say how it went, never raising for
    what the probed container does."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if probe.get("exec") is not None:
            return await _exec(probe["exec"], exec_, timeout)
        if probe.get("httpGet") is not None:
            return await _http_get(probe["httpGet"], pod_ip, container_ports, timeout)
        if probe.get("tcpSocket") is not None:
            return await _tcp_socket(probe["tcpSocket"], pod_ip, container_ports, timeout)
        if probe.get("grpc") is not None:
            return ProbeResult.UNKNOWN, "grpc probes are not supported yet"
    except _NoVerdict as error:
        return ProbeResult.UNKNOWN, str(error)
    return ProbeResult.UNKNOWN, "the probe has no handler (exec, httpGet, tcpSocket or grpc)"


async def _exec(
    action: Mapping[str, Any], exec_: Exec | None, timeout: float
) -> tuple[ProbeResult, str]:
    argv = [str(arg) for arg in action.get("command") or []]
    if not argv:
        return ProbeResult.UNKNOWN, "exec probe has no command"
    if exec_ is None:
        return ProbeResult.UNKNOWN, "exec probes are not supported by this runtime"
    shown = " ".join(argv)
    try:
        code, output = await exec_(argv, timeout)
    except TimeoutError:
        # Enforced, unlike the kubelet before 1.20 (ExecProbeTimeout).
        return ProbeResult.FAILURE, f'command "{shown}" timed out after {timeout:g}s'
    except OSError as error:
        return ProbeResult.UNKNOWN, f'command "{shown}" could not run: {error}'
    text = output[:MAX_OUTPUT].decode(errors="replace")
    if code == 0:
        return ProbeResult.SUCCESS, text
    return ProbeResult.FAILURE, text if text.strip() else f'command "{shown}" exited with {code}'


def resolve_port(port: Any, container_ports: Sequence[Mapping[str, Any]]) -> int:
    """A probe's port (a number, or the name of one of the container's ports) as a number."""
    number: Any = port
    if isinstance(port, str):
        named = [p.get("containerPort") for p in container_ports if p.get("name") == port]
        if named:
            number = named[0]
        elif port.isdigit():
            number = int(port)
        else:
            raise _NoVerdict(f"couldn't find port: {port} in the container's ports")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
        raise _NoVerdict(f"invalid port number: {port}")
    return number


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(host: str, port: int, error: OSError) -> str:
    """Go's net.OpError text: `dial tcp 127.0.0.1:80: connect: connection refused`."""
    reason = os.strerror(error.errno).lower() if error.errno else str(error)
    return f"dial tcp {_host_port(host, port)}: connect: {reason}"


async def _tcp_socket(
    action: Mapping[str, Any], pod_ip: str, ports: Sequence[Mapping[str, Any]], timeout: float
) -> tuple[ProbeResult, str]:
    host = action.get("host") or pod_ip
    port = resolve_port(action.get("port"), ports)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return ProbeResult.FAILURE, f"dial tcp {_host_port(host, port)}: i/o timeout"
    except OSError as error:
        return ProbeResult.FAILURE, _dial_error(host, port, error)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult.SUCCESS, ""


def probe_url(action: Mapping[str, Any], pod_ip: str, ports: Sequence[Mapping[str, Any]]) -> URL:
    """The URL an httpGet probe requests (the kubelet's formatURL)."""
    scheme = str(action.get("scheme") or "HTTP").lower()
    if scheme not in ("http", "https"):
        raise _NoVerdict(f"unsupported HTTP probe scheme: {action.get('scheme')}")
    host = action.get("host") or pod_ip
    port = resolve_port(action.get("port"), ports)
    path = str(action.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    return URL(f"{scheme}://{_host_port(host, port)}{path}")


def _headers(action: Mapping[str, Any]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for header in action.get("httpHeaders") or []:
        headers.add(str(header.get("name")), str(header.get("value", "")))
    headers.setdefault("User-Agent", USER_AGENT)
    headers.setdefault("Accept", "*/*")
    return headers


async def _http_get(
    action: Mapping[str, Any], pod_ip: str, ports: Sequence[Mapping[str, Any]], timeout: float
) -> tuple[ProbeResult, str]:
    """GET with the kubelet's client: no certificate checks, no proxy, no keep-alive, no
    compression, redirects followed only to the same host name, one deadline for it all."""
    url = probe_url(action, pod_ip, ports)
    headers = _headers(action)
    connector = aiohttp.TCPConnector(ssl=False, force_close=True)
    phase = "Client.Timeout exceeded while awaiting headers"
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("Accept-Encoding",),
                auto_decompress=False,
            ) as session,
            asyncio.timeout(timeout),
        ):
            for request in range(1, MAX_REQUESTS + 1):
                phase = "Client.Timeout exceeded while awaiting headers"
                async with session.get(url, headers=headers, allow_redirects=False) as response:
                    phase = "Client.Timeout or context cancellation while reading body"
                    await _read_at_most(response.content, MAX_OUTPUT)
                    status, location = response.status, response.headers.get("Location")
                if status not in _REDIRECTS or not location:
                    break
                target = url.join(URL(location))
                if target.host != url.host:  # judge this response (Go's ErrUseLastResponse)
                    break
                if request == MAX_REQUESTS:
                    return ProbeResult.FAILURE, f'Get "{target}": stopped after 10 redirects'
                url = target
    except TimeoutError:
        return (
            ProbeResult.FAILURE,
            f'Get "{url}": context deadline exceeded ({phase})',
        )
    except aiohttp.ClientSSLError as error:
        return ProbeResult.FAILURE, f'Get "{url}": {error}'
    except aiohttp.ClientConnectorError as error:
        dial = _dial_error(error.host, error.port or 0, error.os_error)
        return ProbeResult.FAILURE, f'Get "{url}": {dial}'
    except aiohttp.ServerDisconnectedError:
        return ProbeResult.FAILURE, f'Get "{url}": EOF'
    except (aiohttp.ClientError, OSError) as error:
        return ProbeResult.FAILURE, f'Get "{url}": {error}'
    if 200 <= status < 300:
        return ProbeResult.SUCCESS, ""
    if 300 <= status < 400:
        return ProbeResult.SUCCESS, f"Probe terminated redirects (statuscode: {status})"
    return ProbeResult.FAILURE, f"HTTP probe failed with statuscode: {status}"


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> None:
    """Read the body as the kubelet does (up to 10 KiB), so that a server that sends headers
    and then stalls fails the probe."""
    left = limit
    while left > 0:
        chunk = await stream.read(left)
        if not chunk:
            return
        left -= len(chunk)


# -- one probe on its schedule -----------------------------------------------------------------


class Prober:
    """Runs one probe of one container instance on its schedule and reports transitions.

    `on_change(kind, healthy, message)` is called when the thresholded state flips, and at
    `start()` for the initial state of readiness (False) and liveness (True); see the module
    docstring. `gate`, when given, is asked before each tick: a False answer skips the tick
    (readiness and liveness wait so for startup). `on_attempt(kind, result, message)`, when
    given, hears every attempt (for the kubelet's per-attempt `Unhealthy` events).
    """

    def __init__(
        self,
        kind: str,
        probe: Mapping[str, Any],
        *,
        pod_ip: str,
        exec_: Exec | None,
        container_ports: Sequence[Mapping[str, Any]],
        on_change: OnChange,
        clock: Clock = REAL_CLOCK,
        rng: Callable[[], float] = random.random,
        jitter: bool = True,
        gate: Callable[[], bool] | None = None,
        on_attempt: Callable[[str, ProbeResult, str], None] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown probe kind {kind!r}: one of {', '.join(KINDS)}")
        self.kind = kind
        self._probe = probe
        self._pod_ip = pod_ip
        self._exec = exec_
        self._ports = container_ports
        self._on_change = on_change
        self._on_attempt = on_attempt
        self._clock = clock
        self._rng = rng
        self._jitter = jitter
        self._gate = gate
        # 0 is never valid for these but initialDelaySeconds, whose default is 0: `or` defaults.
        self.period = float(probe.get("periodSeconds") or 10)
        self.initial_delay = float(probe.get("initialDelaySeconds") or 0)
        self._success_threshold = int(probe.get("successThreshold") or 1)
        self._failure_threshold = int(probe.get("failureThreshold") or 3)
        self._healthy: bool | None = None
        self._last: ProbeResult | None = None  # the result of the current run of equal results
        self._run = 0  # its length
        self._task: asyncio.Task[None] | None = None
        self.first_at: float | None = None  # when the first attempt is due, once started
        self.phase = self.period  # from the first attempt to the second (see the docstring)

    @property
    def healthy(self) -> bool | None:
        """The thresholded state: None for a startup probe that has not decided yet."""
        return self._healthy

    def start(self, *, since: float | None = None) -> None:
        """Start probing. `since` is the container's start on the clock (default: now); the
        initial delay counts from it. Reports the initial state before returning."""
        if self._task is not None:
            raise RuntimeError(f"the {self.kind} prober is already started")
        since = self._clock.now() if since is None else since
        share = 1.0 - min(max(self._rng(), 0.0), 1.0) if self._jitter else 1.0
        self.phase = share * self.period
        self.first_at = since + self.initial_delay
        self._task = asyncio.get_running_loop().create_task(
            self._loop(self.first_at), name=f"{self.kind}-prober"
        )
        initial = {"readiness": False, "liveness": True}.get(self.kind)
        if initial is not None:
            self._set(initial, "")

    async def stop(self) -> None:
        """Stop probing, cancelling an attempt in flight. Idempotent."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self, next_at: float) -> None:
        step = self.phase  # the first step shifts the grid by the random phase
        while True:
            await self._clock.sleep(next_at - self._clock.now())
            if (self._gate is None or self._gate()) and await self._attempt():
                return  # on hold: startup succeeded, or liveness/startup failed
            next_at += step
            step = self.period
            # An attempt that ran past the next tick delays it; it then comes at once.
            next_at = max(next_at, self._clock.now())

    async def _attempt(self) -> bool:
        """Run one attempt and apply the thresholds; True when this prober is done."""
        try:
            result, message = await run_probe(
                self._probe, pod_ip=self._pod_ip, exec_=self._exec, container_ports=self._ports
            )
        except Exception as error:  # a bug here must not stop the probing
            log.exception("%s probe attempt failed", self.kind)
            result, message = ProbeResult.UNKNOWN, f"probe error: {error}"
        if self._on_attempt is not None:
            try:
                self._on_attempt(self.kind, result, message)
            except Exception:
                log.exception("on_attempt of the %s prober failed", self.kind)
        if result is ProbeResult.UNKNOWN:
            return False
        if result is self._last:
            self._run += 1
        else:
            self._last, self._run = result, 1
        success = result is ProbeResult.SUCCESS
        if self._run < (self._success_threshold if success else self._failure_threshold):
            return False
        self._set(success, message)
        # A started container is not probed for startup again; a failed liveness or startup
        # probe holds until the container is restarted (with new probers).
        return self.kind == "startup" or (self.kind == "liveness" and not success)

    def _set(self, healthy: bool, message: str) -> None:
        if self._healthy is healthy:
            return
        self._healthy = healthy
        try:
            self._on_change(self.kind, healthy, message)
        except Exception:
            log.exception("on_change of the %s prober failed", self.kind)


# -- the three probes of a container -----------------------------------------------------------


class ContainerProbes:
    """The startup, readiness and liveness probes of one container instance, sequenced as the
    kubelet does: readiness and liveness wait for startup to succeed.

    Read `started`, `ready` and `live` after any `on_change` call: they combine the probes
    (a container without a readiness probe becomes ready when it has started, which is a
    startup change). `on_restart(kind, message)` is called when the liveness or startup probe
    fails: the agent should restart the container, then call `stop()` and `start()` (or make a
    new `ContainerProbes`) for the new instance. Without any probe, a container is started,
    ready and live at once.
    """

    def __init__(
        self,
        container: Mapping[str, Any],
        pod_ip: str,
        exec_: Exec | None,
        on_change: OnChange,
        clock: Clock = REAL_CLOCK,
        *,
        on_restart: Callable[[str, str], None] | None = None,
        on_attempt: Callable[[str, ProbeResult, str], None] | None = None,
        rng: Callable[[], float] = random.random,
        jitter: bool = True,
    ) -> None:
        self._container = container
        self._pod_ip = pod_ip
        self._exec = exec_
        self._on_change = on_change
        self._on_restart = on_restart
        self._on_attempt = on_attempt
        self._clock = clock
        self._rng = rng
        self._jitter = jitter
        self.probers: dict[str, Prober] = {}

    def start(self, *, since: float | None = None) -> None:
        """Start the container's probers; `since` is the container's start on the clock."""
        if self.probers:
            raise RuntimeError("these probes are already started")
        since = self._clock.now() if since is None else since
        for kind in KINDS:
            spec = self._container.get(f"{kind}Probe")
            if not isinstance(spec, Mapping):
                continue
            self.probers[kind] = Prober(
                kind,
                spec,
                pod_ip=self._pod_ip,
                exec_=self._exec,
                container_ports=self._container.get("ports") or [],
                on_change=self._changed,
                clock=self._clock,
                rng=self._rng,
                jitter=self._jitter,
                gate=None if kind == "startup" else lambda: self.started,
                on_attempt=self._on_attempt,
            )
        for prober in list(self.probers.values()):
            prober.start(since=since)

    async def stop(self) -> None:
        probers, self.probers = list(self.probers.values()), {}
        for prober in probers:
            await prober.stop()

    def _state(self, kind: str) -> bool | None:
        prober = self.probers.get(kind)
        return True if prober is None else prober.healthy

    @property
    def started(self) -> bool:
        """The container's `started`: its startup probe has succeeded (or it has none)."""
        return self._state("startup") is True

    @property
    def ready(self) -> bool:
        """The container's `ready`: started, and its readiness probe passes (or it has none)."""
        return self.started and self._state("readiness") is True

    @property
    def live(self) -> bool:
        """False once the liveness or startup probe has failed (the container must restart)."""
        return self._state("liveness") is not False and self._state("startup") is not False

    def _changed(self, kind: str, healthy: bool, message: str) -> None:
        self._on_change(kind, healthy, message)
        if not healthy and kind in ("liveness", "startup") and self._on_restart is not None:
            self._on_restart(kind, message)
