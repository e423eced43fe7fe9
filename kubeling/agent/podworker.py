"""One pod on a real node: its sandbox, its containers as processes, and its status.

A `PodWorker` is one asyncio task per pod (the kubelet's pod worker). It is level-based: every
wake-up (the pod changed, a container exited, a probe flipped, a back-off ended, a ConfigMap
changed) runs `sync()`, which compares what runs with what the pod asks for and closes the gap:

    sandbox     a pod IP from the node's range, the pod directory, volumes as files, the
                pod's own /etc/resolv.conf (from its dnsPolicy and dnsConfig) and /etc/hosts,
                mounted over the host's in its containers where the agent can (root), see
                `managedfiles.py`
    init        init containers one at a time, in order, each to a successful exit
    containers  every container started; an exited one restarted as `restartPolicy` says,
                after the kubelet's back-off (none for the first restart, then 10 s doubling
                to 300 s; reset after 10 minutes of running), shown as `CrashLoopBackOff`;
                a start that fails (`CreateContainerConfigError`: a ConfigMap or Secret is
                missing) is retried on its own back-off (1 s doubling), and at once when an
                object the pod uses changes
    probes      startup first; then readiness (drives `ready`) and liveness (a failure stops
                the container, which then restarts by the same policy)
    status      phase, conditions, `containerStatuses` and `initContainerStatuses`, written
                through `pods/status` only when they changed
    deletion    a pod with `deletionTimestamp`: first a wait (at most half the grace period)
                until no proxy routes to it any more (`network/drain.py`), then preStop
                hooks, SIGTERM to each process group, SIGKILL after the rest of the grace
                period, volumes removed, then the pod object deleted

Phases, as Kubernetes defines them: `Pending` until every init container has succeeded and
every container has started once; `Succeeded` when all containers exited 0 and none will
restart; `Failed` when all exited, one with an error, and none will restart; else `Running`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from kubeling.agent import managedfiles, resolvconf
from kubeling.agent.envvars import EnvError, container_argv, container_env
from kubeling.agent.probes import ContainerProbes, ProbeResult
from kubeling.agent.runtime import (
    ContainerExit,
    ContainerRuntime,
    ContainerSpec,
    ContainerStartError,
    RunningContainer,
)
from kubeling.agent.volumes import PodVolumes, VolumeError
from kubeling.api.errors import ApiError
from kubeling.api.kinds import REGISTRY
from kubeling.client.events import EventRecorder
from kubeling.client.rest import Client, DeleteOptions, Object, PatchType
from kubeling.util.clock import Clock
from kubeling.util.tasks import cancel_and_wait
from kubeling.util.timefmt import format_time, now_rfc3339

log = logging.getLogger(__name__)

_PODS = REGISTRY.by_path("", "v1", "pods")
if _PODS is None:  # pragma: no cover - the registry always serves pods
    raise RuntimeError("pods are not registered")
PODS = _PODS
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET = 600.0  # a container that ran this long restarts without delay
DEFAULT_GRACE = 30

Lookup = Callable[[str, str], Mapping[str, Any] | None]


class NodeContext(Protocol):
    """What a pod worker needs from its node agent."""

    client: Client
    node_name: str
    host_ip: str
    runtime: ContainerRuntime
    recorder: EventRecorder
    clock: Clock
    pods_dir: Path

    def configmap(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def secret(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def services(self, namespace: str) -> Sequence[Mapping[str, Any]]: ...
    def allocate_ip(self, pod: Mapping[str, Any]) -> str: ...
    def release_ip(self, uid: str) -> None: ...
    def base_env(self, pod: Mapping[str, Any], pod_ip: str) -> dict[str, str]: ...
    def record_pid(self, uid: str, container: str, pgid: int) -> None: ...
    async def wait_unrouted(self, pod: Mapping[str, Any], timeout: float) -> list[str]: ...


@dataclass
class ContainerRecord:
    """What the worker knows about one container across its restarts."""

    spec: Mapping[str, Any]
    init: bool = False
    instance: RunningContainer | None = None
    exit_waiter: asyncio.Task[ContainerExit] | None = None
    restart_count: int = 0
    starts: int = 0
    terminated: ContainerExit | None = None  # the current state, when it ended
    last_state: ContainerExit | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    backoff: float = 0.0  # the delay of the next back-off
    delay: float = 0.0  # the delay of the current one, as `CrashLoopBackOff` shows it
    start_failed: bool = False  # the last start failed (a config error, a missing program)
    start_delay: float = 0.0  # the retry delay after a failed start
    retry_at: float = 0.0
    probes: ContainerProbes | None = None
    container_id: str = ""

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.instance is not None and self.terminated is None

    @property
    def started(self) -> bool:
        """Running, and its startup probe has passed (or it has none)."""
        return self.running and (self.probes is None or self.probes.started)

    @property
    def ready(self) -> bool:
        if self.init:
            # The prober manager's rule for init containers: ready once exited successfully.
            return self.terminated is not None and self.terminated.exit_code == 0
        return self.running and (self.probes is None or self.probes.ready)


class PodWorker:
    def __init__(self, node: NodeContext, pod: Object) -> None:
        self.node = node
        self.pod = pod
        self.uid = str(pod["metadata"]["uid"])
        self.key = f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
        self.dir = node.pods_dir / self.uid
        self.pod_ip = ""
        self.volumes: PodVolumes | None = None
        self.etc_files = managedfiles.ManagedFiles()  # the pod's /etc/hosts, /etc/resolv.conf
        self.sandbox_error = ""
        self.records: dict[str, ContainerRecord] = {}
        self.init_records: list[ContainerRecord] = []
        self.start_time = ""
        self.gone = False
        self._gone = asyncio.Event()  # set with `gone`: ends a wait for the proxies at once
        self.finished = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_status: Object | None = None
        self._timer: asyncio.Handle | None = None
        self._timer_at = 0.0
        self.refresh_volumes = False
        self._background: set[asyncio.Task[Any]] = set()
        self.abandoned = False  # see abandon()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` alongside the sync loop (stopping a prober, killing a container)."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"pod {self.key}")

    def update(self, pod: Object | None) -> None:
        """A new version of the pod (None: it is gone from the API)."""
        if pod is None:
            self.gone = True
            self._gone.set()
        elif str(pod["metadata"].get("uid")) == self.uid:
            self.pod = pod
        self._wake.set()

    def poke(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop the worker and every container (the agent is shutting down)."""
        self.gone = True
        self._gone.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def abandon(self) -> None:
        """Stop supervising without stopping any container, as if the agent were killed: the
        processes run on, and the next agent finds them through their pid files."""
        self.abandoned = True
        if self._timer is not None:
            self._timer.cancel()
        for record in [*self.init_records, *self.records.values()]:
            probes, record.probes = record.probes, None
            if probes is not None:
                await probes.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            while True:
                self._wake.clear()
                try:
                    done = await self.sync()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("pod %s: sync failed", self.key)
                    done = False
                    self._wake_after(1.0)
                if done:
                    return
                await self._wake.wait()
        finally:
            self.finished.set()

    def _wake_after(self, seconds: float) -> None:
        """Sync again in `seconds` at the latest. Every sync re-arms what it still waits for,
        so one timer, the earliest, is enough (a later one must not replace it)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        when = now + max(seconds, 0.0)
        timer = self._timer
        # The deadline is kept beside the handle: uvloop hands back a plain Handle, without
        # `when()`, for a deadline that has already passed.
        if timer is not None and not timer.cancelled() and now < self._timer_at <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timer_at = when
        self._timer = loop.call_at(when, self._wake.set)

    def sources_changed(self) -> None:
        """A ConfigMap or Secret the pod uses changed: refresh its volumes in place, and retry
        now a start that failed for want of it (CreateContainerConfigError)."""
        self.refresh_volumes = True
        for record in [*self.init_records, *self.records.values()]:
            if record.start_failed:
                record.retry_at = 0.0
        self._wake.set()

    # -- the sync -----------------------------------------------------------------------------

    async def sync(self) -> bool:
        """One pass of compare-and-act; True when the worker is done for good."""
        meta = self.pod["metadata"]
        if self.gone or meta.get("deletionTimestamp"):
            await self._terminate()
            return True
        phase = (self.pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and not self.records:
            return False  # finished before this agent started: nothing to run
        if not await self._sandbox():
            await self._write_status()
            return False
        if self.refresh_volumes and self.volumes is not None:
            self.refresh_volumes = False
            with contextlib.suppress(VolumeError):
                self.volumes.refresh(self.pod)
        if await self._init_containers():
            await self._containers()
        await self._write_status()
        return False

    async def _sandbox(self) -> bool:
        if self.volumes is not None:
            return True
        if not self.pod_ip:
            self.pod_ip = self.node.allocate_ip(self.pod)
            self.start_time = self.start_time or now_rfc3339()
        spec = self.pod.get("spec") or {}
        self.init_records = [
            ContainerRecord(c, init=True, waiting_reason="PodInitializing")
            for c in spec.get("initContainers") or []
        ]
        before = {
            s.get("name"): s for s in (self.pod.get("status") or {}).get("containerStatuses") or []
        }
        for c in spec.get("containers") or []:
            record = self.records.setdefault(c["name"], ContainerRecord(c))
            seen = before.get(c["name"]) or {}
            if seen.get("containerID"):
                # It ran under an earlier agent, whose processes were killed: this start
                # is a restart.
                record.restart_count = int(seen.get("restartCount") or 0) + 1
        if self.init_records:
            for record in self.records.values():
                record.waiting_reason = "PodInitializing"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            volumes = PodVolumes(
                self.dir,
                self.pod,
                configmap=self.node.configmap,
                secret=self.node.secret,
                pod_ip=self.pod_ip,
                host_ip=self.node.host_ip,
            )
            volumes.setup()
            self.etc_files = self._write_etc_files()
        except (VolumeError, OSError) as err:
            reason = "FailedMount" if isinstance(err, VolumeError) else "FailedCreatePodSandBox"
            if err.args and str(err) != self.sandbox_error:
                self.node.recorder.event(self.pod, "Warning", reason, str(err))
            self.sandbox_error = str(err)
            self._wake_after(2.0)
            return False
        self.sandbox_error = ""
        self.volumes = volumes
        return True

    def _write_etc_files(self) -> managedfiles.ManagedFiles:
        """The pod's own resolv.conf and hosts file (`managedfiles.py`), with what forming
        them warned about (`MissingClusterDNS`, `DNSConfigForming`), once per sandbox as the
        kubelet does."""
        files, events = managedfiles.write(
            self.dir, self.pod, self.pod_ip, self.node.services(resolvconf.DNS_SERVICE[0])
        )
        for reason, message in events:
            self.node.recorder.event(self.pod, "Warning", reason, message)
        return files

    # -- init containers ----------------------------------------------------------------------

    async def _init_containers(self) -> bool:
        """Run init containers in order; True once all have succeeded."""
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        for record in self.init_records:
            if record.terminated is not None and record.terminated.exit_code == 0:
                continue
            if record.running:
                return False
            if record.terminated is not None and policy == "Never":
                return False  # the pod has failed
            if not await self._start_when_due(record):
                return False
            return False
        return True

    # -- containers ---------------------------------------------------------------------------

    async def _containers(self) -> None:
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        for record in self.records.values():
            if record.running:
                continue
            ended = record.terminated
            if ended is not None and (
                policy == "Never" or (policy == "OnFailure" and ended.exit_code == 0)
            ):
                continue
            await self._start_when_due(record)

    async def _start_when_due(self, record: ContainerRecord) -> bool:
        """Start (or restart) a container unless it is backing off; True if it started."""
        now = self.node.clock.now()
        if (record.terminated is not None or record.start_failed) and now < record.retry_at:
            if not record.start_failed:  # a failed start keeps its own reason and message
                record.waiting_reason = "CrashLoopBackOff"
                record.waiting_message = (
                    f"back-off {int(record.delay)}s restarting failed container={record.name} "
                    f"pod={self.pod['metadata']['name']}_{self.pod['metadata'].get('namespace')}"
                    f"({self.uid})"
                )
            self._wake_after(record.retry_at - now)
            return False
        return await self._start(record)

    def _schedule_backoff(self, record: ContainerRecord, ran_for: float) -> None:
        now = self.node.clock.now()
        if ran_for >= BACKOFF_RESET:
            record.backoff = 0.0
        if record.backoff == 0.0:
            record.delay = 0.0  # the first restart is immediate
            record.backoff = BACKOFF_INITIAL
        else:
            record.delay = record.backoff
            record.backoff = min(record.backoff * 2, BACKOFF_MAX)
        record.retry_at = now + record.delay

    async def _start(self, record: ContainerRecord) -> bool:
        pod = self.pod
        spec = record.spec
        assert self.volumes is not None
        try:
            env = container_env(
                pod,
                spec,
                pod_ip=self.pod_ip,
                host_ip=self.node.host_ip,
                node_name=self.node.node_name,
                services=self.node.services(pod["metadata"].get("namespace") or "default"),
                configmap=self.node.configmap,
                secret=self.node.secret,
                base=self.node.base_env(pod, self.pod_ip),
            )
            env.update(self.volumes.env())
            managed = self.etc_files.for_container(spec)
            env.update(managedfiles.env(managed))
            env.update(self.volumes.mount_path_env(spec, env))
            read_only = {
                m.get("mountPath"): bool(m.get("readOnly")) for m in spec.get("volumeMounts") or []
            }
            mounts = tuple(
                (target, str(host), read_only.get(target, False))
                for target, host in self.volumes.mounts(spec, env).items()
            )
            argv = container_argv(spec, env)
            for skipped in env.skipped:
                self.node.recorder.event(pod, skipped.type, skipped.reason, skipped.message)
        except (EnvError, VolumeError) as err:
            return self._failed_to_start(record, err.reason, str(err))
        if record.instance is not None:
            record.last_state = record.terminated
            record.restart_count += 1
        log_path = self.dir / "logs" / record.name / f"{record.restart_count}.log"
        container = ContainerSpec(
            pod_uid=self.uid,
            namespace=str(pod["metadata"].get("namespace") or ""),
            pod_name=str(pod["metadata"]["name"]),
            name=record.name,
            argv=argv,
            env=dict(env),  # a plain dict: uvloop's subprocess_exec refuses a subclass
            # Absolute, so that a process entering the container's mount namespace (exec),
            # which resets its directory, still starts where the container did. A relative
            # workingDir is taken from the agent's own directory.
            working_dir=os.path.abspath(spec.get("workingDir") or os.getcwd()),
            log_path=log_path,
            termination_message_path=spec.get("terminationMessagePath"),
            mounts=mounts,
            managed_files=managed,
        )
        try:
            instance = await self.node.runtime.start(container)
        except ContainerStartError as err:
            if record.instance is not None:
                record.restart_count -= 1
            return self._failed_to_start(record, err.reason, err.message)
        record.instance = instance
        record.container_id = instance.id
        self.node.record_pid(self.uid, record.name, instance.pid)
        record.terminated = None
        record.waiting_reason = ""
        record.waiting_message = ""
        record.start_delay = 0.0
        record.start_failed = False
        record.starts += 1
        self.node.recorder.event(pod, "Normal", "Started", f"Started container {record.name}")
        record.exit_waiter = asyncio.get_running_loop().create_task(instance.wait())
        record.exit_waiter.add_done_callback(functools.partial(self._exited, record))
        await self._post_start(record)
        if not record.init:
            self._start_probes(record)
        return True

    def _failed_to_start(self, record: ContainerRecord, reason: str, message: str) -> bool:
        if record.waiting_message != message:
            self.node.recorder.event(self.pod, "Warning", "Failed", f"Error: {message}")
        record.waiting_reason = reason or "RunContainerError"
        record.waiting_message = message
        record.start_failed = True
        # Its own back-off, apart from the crash back-off: a ConfigMap created late must not
        # make the first crash after it wait, nor the reverse.
        record.start_delay = min(max(record.start_delay * 2, 1.0), BACKOFF_MAX)
        record.retry_at = self.node.clock.now() + record.start_delay
        self._wake_after(record.start_delay)
        return False

    def _exited(self, record: ContainerRecord, _waiter: object = None) -> None:
        waiter = record.exit_waiter
        if waiter is None or waiter.cancelled() or self.abandoned:
            return
        if waiter.exception() is not None:
            log.warning("pod %s: waiting for %s: %r", self.key, record.name, waiter.exception())
            return
        ended = waiter.result()
        record.terminated = ended
        self._stop_probes(record)
        ran_for = (ended.finished_at - ended.started_at).total_seconds()
        if not record.init or ended.exit_code != 0:
            self._schedule_backoff(record, ran_for)
        self._wake.set()

    async def _post_start(self, record: ContainerRecord) -> None:
        hook = ((record.spec.get("lifecycle") or {}).get("postStart")) or None
        if hook is None or record.instance is None:
            return
        ok, message = await self._run_hook(record, hook, timeout=None)
        if not ok:
            self.node.recorder.event(
                self.pod,
                "Warning",
                "FailedPostStartHook",
                f"PostStartHook failed: {message}",
            )
            grace = self._grace()
            await record.instance.stop(grace)

    # -- probes -------------------------------------------------------------------------------

    def _start_probes(self, record: ContainerRecord) -> None:
        instance = record.instance
        assert instance is not None

        async def exec_(argv: list[str], timeout: float) -> tuple[int, bytes]:
            result = await instance.exec(argv, timeout=timeout)
            if result.timed_out:
                raise TimeoutError(f"command {argv!r} timed out")
            return result.exit_code, result.stdout + result.stderr

        def on_change(kind: str, healthy: bool, message: str) -> None:
            if record.instance is instance and record.probes is probes:
                self._wake.set()

        def on_attempt(kind: str, result: ProbeResult, message: str) -> None:
            if result is ProbeResult.FAILURE and record.instance is instance:
                self.node.recorder.event(
                    self.pod, "Warning", "Unhealthy", f"{kind.capitalize()} probe failed: {message}"
                )

        def on_restart(kind: str, message: str) -> None:
            if record.instance is not instance or record.terminated is not None:
                return
            self.node.recorder.event(
                self.pod,
                "Normal",
                "Killing",
                f"Container {record.name} failed {kind} probe, will be restarted",
            )
            self._spawn(instance.stop(self._grace()))

        probes = ContainerProbes(
            record.spec,
            self.pod_ip,
            exec_,
            on_change,
            self.node.clock,
            on_restart=on_restart,
            on_attempt=on_attempt,
        )
        record.probes = probes
        probes.start()

    def _stop_probes(self, record: ContainerRecord) -> None:
        probes, record.probes = record.probes, None
        if probes is not None:
            self._spawn(probes.stop())

    # -- hooks --------------------------------------------------------------------------------

    async def _run_hook(
        self, record: ContainerRecord, hook: Mapping[str, Any], timeout: float | None
    ) -> tuple[bool, str]:
        instance = record.instance
        if instance is None:
            return True, ""
        try:
            if "exec" in hook:
                argv = list((hook["exec"] or {}).get("command") or [])
                result = await instance.exec(argv, timeout=timeout)
                if result.timed_out:
                    return False, f"command {argv!r} timed out"
                if result.exit_code != 0:
                    output = (result.stdout + result.stderr).decode(errors="replace").strip()
                    return False, f"command {argv!r} exited with {result.exit_code}: {output}"
                return True, ""
            if "httpGet" in hook:
                return await self._http_hook(record, hook["httpGet"], timeout)
            if "sleep" in hook:
                await asyncio.sleep(float((hook["sleep"] or {}).get("seconds") or 0))
                return True, ""
        except (OSError, aiohttp.ClientError, TimeoutError) as err:
            return False, str(err)
        return False, "unsupported lifecycle handler"

    async def _http_hook(
        self, record: ContainerRecord, action: Mapping[str, Any], timeout: float | None
    ) -> tuple[bool, str]:
        port = action.get("port")
        if isinstance(port, str) and not port.isdigit():
            named = {p.get("name"): p.get("containerPort") for p in record.spec.get("ports") or []}
            port = named.get(port)
        host = action.get("host") or self.pod_ip
        scheme = str(action.get("scheme") or "HTTP").lower()
        url = f"{scheme}://{host}:{port}{action.get('path') or '/'}"
        limit = aiohttp.ClientTimeout(total=timeout)
        async with (
            aiohttp.ClientSession(timeout=limit) as session,
            session.get(url, ssl=False) as response,
        ):
            if 200 <= response.status < 400:
                return True, ""
            return False, f"HTTP lifecycle hook {url} returned status {response.status}"

    # -- termination --------------------------------------------------------------------------

    def _grace(self) -> float:
        meta = self.pod["metadata"]
        if meta.get("deletionGracePeriodSeconds") is not None:
            return float(meta["deletionGracePeriodSeconds"])
        spec = self.pod.get("spec") or {}
        value = spec.get("terminationGracePeriodSeconds")
        return float(DEFAULT_GRACE if value is None else value)

    async def _terminate(self) -> None:
        grace = self._grace()
        records = [*self.init_records, *self.records.values()]
        running = [r for r in records if r.running]
        for record in records:
            self._stop_probes(record)
        if running and not self.gone and grace > 0:
            grace -= await self._drain(grace / 2)
        if running:
            await asyncio.gather(*(self._stop_one(r, grace) for r in running))
        if self._timer is not None:
            self._timer.cancel()
        if self.volumes is not None:
            with contextlib.suppress(OSError):
                self.volumes.teardown()
        self.node.release_ip(self.uid)
        if not self.gone:
            await self._write_status()
            meta = self.pod["metadata"]
            options = DeleteOptions(grace_period_seconds=0, precondition_uid=self.uid)
            try:
                await self.node.client.delete(PODS, meta["name"], meta.get("namespace"), options)
            except ApiError as err:
                if err.code not in (404, 409):
                    raise

    async def _drain(self, timeout: float) -> float:
        """Wait until no proxy routes to this deleted pod; returns the seconds it took. Ends
        at once when the pod is gone from the API or the agent stops."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiting = loop.create_task(self.node.wait_unrouted(self.pod, timeout))
        interrupted = loop.create_task(self._gone.wait())
        await asyncio.wait((waiting, interrupted), return_when=asyncio.FIRST_COMPLETED)
        interrupted.cancel()
        await cancel_and_wait(waiting)  # done already, unless the pod went first
        lagging = [] if waiting.cancelled() else waiting.result()
        if lagging:
            self.node.recorder.event(
                self.pod,
                "Warning",
                "ProxiesLagging",
                f"Stopping after {timeout:g}s although these proxies may still route here: "
                + ", ".join(lagging),
            )
        return loop.time() - started

    async def _stop_one(self, record: ContainerRecord, grace: float) -> None:
        instance = record.instance
        if instance is None:
            return
        self.node.recorder.event(self.pod, "Normal", "Killing", f"Stopping container {record.name}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        hook = (record.spec.get("lifecycle") or {}).get("preStop")
        if hook is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._run_hook(record, hook, timeout=grace), grace)
        ended = await instance.stop(max(deadline - loop.time(), 0.0))
        record.terminated = ended

    # -- status -------------------------------------------------------------------------------

    def _container_status(self, record: ContainerRecord) -> Object:
        image = str(record.spec.get("image") or "")
        state: Object
        if record.running:
            assert record.instance is not None
            state = {"running": {"startedAt": format_time(record.instance.started_at)}}
        elif record.terminated is not None and not (
            record.start_failed or record.waiting_reason == "CrashLoopBackOff"
        ):
            state = {"terminated": _terminated(record.terminated, record.container_id)}
        else:
            waiting: Object = {"reason": record.waiting_reason or "ContainerCreating"}
            if record.waiting_message:
                waiting["message"] = record.waiting_message
            state = {"waiting": waiting}
        last: Object = {}
        waiting_again = record.start_failed or record.waiting_reason == "CrashLoopBackOff"
        previous = record.terminated if waiting_again else None
        previous = previous or record.last_state
        if previous is not None:
            last = {"terminated": _terminated(previous, record.container_id)}
        status: Object = {
            "name": record.name,
            "image": image,
            "imageID": "",
            "ready": record.ready,
            "restartCount": record.restart_count,
            "started": record.started,
            "state": state,
            "lastState": last,
        }
        if record.container_id:
            status["containerID"] = record.container_id
        return status

    def _phase(self) -> str:
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        for record in self.init_records:
            ended = record.terminated
            if ended is None or ended.exit_code != 0:
                if ended is not None and policy == "Never":
                    return "Failed"
                return "Pending"
        records = list(self.records.values())
        if not records or any(r.starts == 0 for r in records):
            return "Pending"
        if any(r.running for r in records):
            return "Running"
        codes = [r.terminated.exit_code for r in records if r.terminated is not None]
        if policy == "Always":
            return "Running"
        if all(code == 0 for code in codes):
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"

    def desired_status(self) -> Object:
        old = self.pod.get("status") or {}
        now = now_rfc3339()
        previous = {c.get("type"): c for c in old.get("conditions") or []}
        records = list(self.records.values())
        phase = self._phase()
        initialized = all(
            r.terminated is not None and r.terminated.exit_code == 0 for r in self.init_records
        )
        ready = bool(records) and all(r.ready for r in records)

        def condition(kind: str, ok: bool, reason: str = "") -> Object:
            status = "True" if ok else "False"
            before = previous.get(kind) or {}
            since = before.get("lastTransitionTime") if before.get("status") == status else None
            out: Object = {
                "type": kind,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": since or now,
            }
            if not ok and reason:
                out["reason"] = reason
            return out

        not_ready = [r.name for r in records if not r.ready]
        conditions = [
            condition("PodReadyToStartContainers", self.volumes is not None),
            condition("Initialized", initialized, "ContainersNotInitialized"),
            condition("Ready", ready and phase == "Running", "ContainersNotReady"),
            condition("ContainersReady", ready, "ContainersNotReady"),
            condition("PodScheduled", True),
        ]
        for c in conditions:
            if c["status"] == "False" and c["type"] in ("Ready", "ContainersReady") and not_ready:
                c["message"] = f"containers with unready status: [{' '.join(not_ready)}]"
        status: Object = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.node.host_ip,
            "hostIPs": [{"ip": self.node.host_ip}],
            "startTime": self.start_time or old.get("startTime") or now,
            "containerStatuses": [self._container_status(r) for r in records],
        }
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if self.init_records:
            status["initContainerStatuses"] = [self._container_status(r) for r in self.init_records]
        if old.get("qosClass"):
            status["qosClass"] = old["qosClass"]
        return status

    async def _write_status(self) -> None:
        desired = self.desired_status()
        if desired == self._last_status:
            return
        current = self.pod.get("status") or {}
        if _without_times(desired) == _without_times(current) and self._last_status is not None:
            self._last_status = desired
            return
        meta = self.pod["metadata"]
        patch = [{"op": "replace", "path": "/status", "value": desired}]
        try:
            written = await self.node.client.patch(
                PODS,
                meta["name"],
                patch,
                meta.get("namespace"),
                patch_type=PatchType.JSON,
                subresource="status",
            )
        except ApiError as err:
            if err.code == 404:
                return
            raise
        if str(written["metadata"].get("uid")) == self.uid:
            self.pod = written
        self._last_status = desired


def _terminated(ended: ContainerExit, container_id: str) -> Object:
    out: Object = {
        "exitCode": ended.exit_code,
        "reason": ended.reason,
        "startedAt": format_time(ended.started_at),
        "finishedAt": format_time(ended.finished_at),
    }
    if ended.signal:
        out["signal"] = ended.signal
    if ended.message:
        out["message"] = ended.message
    if container_id:
        out["containerID"] = container_id
    return out


def _without_times(status: Mapping[str, Any]) -> Any:
    """A status with its timestamps blanked, to tell a real change from a rewrite."""
    if not status:
        return {}
    out = dict(status)
    out.pop("startTime", None)
    out["conditions"] = [
        {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastProbeTime")}
        for c in status.get("conditions") or []
    ]
    return out


def pod_env_defaults(pod: Mapping[str, Any], pod_ip: str, home: Path) -> dict[str, str]:
    """The environment every container starts from (before the pod's own variables)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "HOSTNAME": str(pod["metadata"]["name"]),
        "POD_IP": pod_ip,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
