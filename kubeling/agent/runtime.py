"""The container runtime: a container is a process and its process group (DESIGN.md § 5).

The node agent asks a `ContainerRuntime` to start a container from a `ContainerSpec`, then
waits for, stops and execs into the `RunningContainer` it gets back. `ProcessRuntime` is the
implementation that runs the program directly on the machine; a runtime for OCI images can
sit behind the same protocol later.

Contract of `ProcessRuntime`:

* **Start.** `argv[0]` is resolved as `execve` with `PATH` would: through the `PATH` of the
  container's `env` (not the agent's) when it has no slash, against `working_dir` when it is
  relative with a slash. A missing or non-executable program or a missing `working_dir` raises
  `ContainerStartError` before anything runs, with a message in the style of runc
  (`exec: "nope": executable file not found in $PATH`). The process starts in a new session
  (its own process group, no controlling terminal), with exactly `env`, stdin from
  `/dev/null`, and stdout/stderr through pipes into the CRI log file (`kubeling.agent.logs`).
  As root on Linux it starts in a private mount namespace holding its volumes and the pod's
  own `/etc/hosts` and `/etc/resolv.conf` (`mountns.py`); otherwise it sees the host's files
  (said once in the log).
* **Exit.** When the main process exits, every process left in its group is killed (SIGKILL),
  as the end of a container's PID namespace kills them in Kubernetes; then the pipes are
  drained into the log (at most `drain_timeout` seconds, for a process that left the group
  but holds the pipe), the termination message is read, and only then does `wait()` return:
  a caller that sees the exit can read the whole log. `wait()` is idempotent and can be
  awaited by any number of tasks; cancelling one awaiter cancels only that awaiter.
* **Exit codes** as Kubernetes reports them: the status, or 128 + the signal number for a
  process killed by a signal (SIGKILL gives 137, `signal=9`). `reason` is `Completed` for 0,
  `Error` otherwise; `OOMKilled` is never reported, as nothing here limits memory.
* **Stop.** SIGTERM to the whole group, up to `grace_period` seconds for the main process to
  exit, then SIGKILL to the group. Concurrent and repeated stops are safe; stopping an exited
  container returns its exit.
* **Exec.** A separate process (and process group) with the container's env (plus
  `env_extra`) and working directory, output captured; on timeout its group is killed. A
  missing program gives exit code 127 (126 when not executable) and the reason on stderr, as
  a shell and `kubectl exec` report it, so probes simply fail. The runtime does not refuse an
  exec into an exited container: the agent decides (Kubernetes answers "container not found").
* **Streaming exec** (`exec_stream`, for `kubectl exec`): the same process beside the
  container, handed over as an `ExecProcess` the caller owns. With `tty` it runs on a new
  pseudo-terminal: stdin, stdout and stderr are the slave, which is also the controlling
  terminal of the process's new session (so ^C and job control work as in a container), and
  stderr is merged into stdout as in Kubernetes; `resize()` sets the terminal's size.

Time is wall time for the timestamps of `ContainerExit`, and the injected `Clock` for grace
periods and exec timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from kubeling.agent import mountns
from kubeling.agent.execprocess import ExecProcess, take_terminal
from kubeling.agent.execprocess import exit_code as _exit_code
from kubeling.agent.execprocess import signal_group as _signal_group
from kubeling.agent.logs import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, LogWriter
from kubeling.util.clock import REAL_CLOCK, Clock
from kubeling.util.timefmt import utcnow

TERMINATION_MESSAGE_LIMIT = 4096
"""Bytes of the termination message file that are read, as the kubelet's limit."""

_PIPE_READ = 64 * 1024

log = logging.getLogger(__name__)


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerSpec:
    """Everything the runtime needs to run one instance of a container; the agent has already
    expanded `$(VAR)` references, `envFrom`, the downward API and the volumes' variables."""

    pod_uid: str
    namespace: str
    pod_name: str
    name: str
    argv: list[str]
    env: dict[str, str]
    working_dir: str | None
    log_path: Path
    termination_message_path: str | None = None
    # (mountPath, host path, read only): bind-mounted in a private mount namespace when the
    # agent runs as root (mountns.py); otherwise only the environment tells where they are.
    mounts: tuple[tuple[str, str, bool], ...] = ()
    # The same, for the pod's managed /etc/hosts and /etc/resolv.conf: mounted over the host's
    # files in that namespace (never created where the host has none).
    managed_files: tuple[tuple[str, str, bool], ...] = ()


@dataclass(frozen=True)
class ContainerExit:
    """How an instance ended, in the terms of `ContainerStateTerminated`."""

    exit_code: int
    signal: int | None
    reason: str
    started_at: datetime
    finished_at: datetime
    message: str


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


class ContainerStartError(Exception):
    """The container could not be started; `reason` and `message` go to the container's
    state (`RunContainerError` while waiting, as the kubelet reports it)."""

    def __init__(self, reason: str, message: str, *, exit_code: int = 128) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.exit_code = exit_code
        """What a shell reports for the same failure (127 not found, 126 not executable), as
        `exec` returns it; Kubernetes itself reports 128 for a container that cannot start."""


# --- protocols -----------------------------------------------------------------------------


class RunningContainer(Protocol):
    """One started instance of a container; see the module docstring for the contract."""

    @property
    def id(self) -> str: ...

    @property
    def pid(self) -> int: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def running(self) -> bool:
        """True until `wait()` would return (the process exited and its log is complete)."""
        ...

    async def wait(self) -> ContainerExit: ...

    async def stop(self, grace_period: float) -> ContainerExit: ...

    async def exec(
        self,
        argv: list[str],
        *,
        timeout: float | None,
        stdin: bytes | None = None,
        env_extra: dict[str, str] | None = None,
    ) -> ExecResult: ...


class ContainerRuntime(Protocol):
    async def start(self, spec: ContainerSpec) -> RunningContainer: ...


# --- the process runtime -------------------------------------------------------------------


class ProcessRuntime:
    """Runs containers as local processes (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Clock = REAL_CLOCK,
        log_max_bytes: int = DEFAULT_MAX_BYTES,
        log_max_files: int = DEFAULT_MAX_FILES,
        drain_timeout: float = 2.0,
    ) -> None:
        self.clock = clock
        self.log_max_bytes = log_max_bytes
        self.log_max_files = log_max_files
        self.drain_timeout = drain_timeout
        self._told_unmounted = False

    async def start(self, spec: ContainerSpec) -> ProcessContainer:
        program = resolve_program(spec.argv, spec.env, spec.working_dir)
        bind = mountns.binder(spec.mounts, spec.managed_files)
        if bind is None and spec.managed_files and not self._told_unmounted:
            self._told_unmounted = True  # once: it holds for every pod of this agent
            log.warning(
                "containers keep the host's /etc/hosts and /etc/resolv.conf (so no cluster DNS "
                "by name): mounting the pod's own needs root on Linux; their paths are in "
                "$KUBELING_MOUNT_ETC_HOSTS and $KUBELING_MOUNT_ETC_RESOLV_CONF"
            )
        try:
            writer = LogWriter(
                spec.log_path, max_bytes=self.log_max_bytes, max_files=self.log_max_files
            )
        except OSError as err:
            raise ContainerStartError(
                "RunContainerError", f"cannot open the log file {spec.log_path}: {err}"
            ) from err
        try:
            child = await _Child.spawn(
                [program, *spec.argv[1:]],
                spec.argv[0],
                spec.env,
                spec.working_dir,
                stdin=False,
                preexec=bind,
            )
        except ContainerStartError:
            writer.close()
            raise
        return ProcessContainer(self, spec, child, writer)


class ProcessContainer:
    """The `RunningContainer` of `ProcessRuntime`: the main process, its group and its log."""

    def __init__(
        self,
        runtime: ProcessRuntime,
        spec: ContainerSpec,
        child: _Child,
        writer: LogWriter,
    ) -> None:
        self.spec = spec
        self.pid = child.process.pid
        self.id = f"kubeling://{self.pid}-{uuid.uuid4().hex[:12]}"
        self.started_at = utcnow()
        self._runtime = runtime
        self._child = child
        self._writer = writer
        self._exit: asyncio.Future[ContainerExit] = asyncio.get_running_loop().create_future()
        self._monitor = asyncio.create_task(self._run(), name=f"container {self.id}")

    def __repr__(self) -> str:
        spec = self.spec
        return f"<ProcessContainer {spec.namespace}/{spec.pod_name}/{spec.name} pid={self.pid}>"

    @property
    def running(self) -> bool:
        return not self._exit.done()

    @property
    def exit(self) -> ContainerExit | None:
        """The exit once `wait()` would return it, else None."""
        return self._exit.result() if self._exit.done() else None

    async def wait(self) -> ContainerExit:
        return await asyncio.shield(self._exit)

    async def stop(self, grace_period: float) -> ContainerExit:
        if self._exit.done():
            return self._exit.result()
        if not self._child.exited.done():
            _signal_group(self.pid, signal.SIGTERM if grace_period > 0 else signal.SIGKILL)
            if grace_period > 0 and not await _within(
                self._runtime.clock, grace_period, asyncio.shield(self._child.exited)
            ):
                _signal_group(self.pid, signal.SIGKILL)
        return await self.wait()

    async def exec(
        self,
        argv: list[str],
        *,
        timeout: float | None,
        stdin: bytes | None = None,
        env_extra: dict[str, str] | None = None,
    ) -> ExecResult:
        """Run `argv` beside the container and collect its output (see the module docstring)."""
        try:
            child = await self._spawn_beside(argv, env_extra, stdin=stdin is not None)
        except ContainerStartError as err:
            return ExecResult(err.exit_code, b"", err.message.encode() + b"\n")
        process = child.process
        assert process.stdout is not None and process.stderr is not None
        feed = asyncio.create_task(_feed(process.stdin, stdin))
        out = asyncio.create_task(process.stdout.read())
        errors = asyncio.create_task(process.stderr.read())
        timed_out = False
        try:
            if timeout is None:
                await asyncio.shield(child.exited)
            elif not await _within(self._runtime.clock, timeout, asyncio.shield(child.exited)):
                timed_out = True
            # What the program started goes with it, as it would with a timeout.
            _signal_group(process.pid, signal.SIGKILL)
            await asyncio.shield(child.exited)
            # The group is gone (or a process left it): wait for the pipes a little, no more.
            done, _ = await asyncio.wait({feed, out, errors}, timeout=self._runtime.drain_timeout)
        finally:
            _signal_group(process.pid, signal.SIGKILL)  # also when the caller gave up
            for task in (feed, out, errors):
                task.cancel()
            await asyncio.gather(feed, out, errors, return_exceptions=True)
            child.close()
        assert process.returncode is not None
        return ExecResult(
            _exit_code(process.returncode)[0],
            out.result() if out in done else b"",
            errors.result() if errors in done else b"",
            timed_out,
        )

    async def exec_stream(
        self,
        argv: list[str],
        *,
        env_extra: dict[str, str] | None = None,
        stdin: bool = True,
        tty: bool = False,
    ) -> ExecProcess:
        """Start `argv` beside the container, in its own process group, with pipes (or on a
        pseudo-terminal with `tty`), and hand it over (for `kubectl exec`); the caller owns it
        and must `close()` it. Raises ContainerStartError when the program cannot run."""
        env = dict(env_extra or {})
        if tty:
            env.setdefault("TERM", "xterm")  # what container runtimes set for a tty exec
        child = await self._spawn_beside(argv, env, stdin=stdin, tty=tty)
        return await ExecProcess.attach(child.process, child.exited, child.pty, child.close)

    async def _spawn_beside(
        self, argv: list[str], env_extra: dict[str, str] | None, *, stdin: bool, tty: bool = False
    ) -> _Child:
        env = {**self.spec.env, **(env_extra or {})}
        program = resolve_program(argv, env, self.spec.working_dir)
        namespaced = self.spec.mounts or self.spec.managed_files
        join = mountns.joiner(self.pid) if namespaced and self.running else None
        return await _Child.spawn(
            [program, *argv[1:]],
            argv[0],
            env,
            self.spec.working_dir,
            stdin=stdin,
            tty=tty,
            preexec=join,
        )

    async def _run(self) -> None:
        """Copy the output to the log, and settle the exit once the process is gone."""
        process = self._child.process
        assert process.stdout is not None and process.stderr is not None
        copies = {
            asyncio.create_task(self._copy("stdout", process.stdout)),
            asyncio.create_task(self._copy("stderr", process.stderr)),
        }
        try:
            await asyncio.shield(self._child.exited)
            finished_at = utcnow()
            returncode = process.returncode
            assert returncode is not None
            _signal_group(self.pid, signal.SIGKILL)  # whatever the main process left behind
            _, pending = await asyncio.wait(copies, timeout=self._runtime.drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*copies, return_exceptions=True)
            self._child.close()
            self._writer.close()
            code, signum = _exit_code(returncode)
            self._exit.set_result(
                ContainerExit(
                    exit_code=code,
                    signal=signum,
                    reason="Completed" if code == 0 else "Error",
                    started_at=self.started_at,
                    finished_at=finished_at,
                    message=self._termination_message(),
                )
            )
        except BaseException as err:  # cancelled with the loop: leave nothing running
            for task in copies:
                task.cancel()
            _signal_group(self.pid, signal.SIGKILL)
            self._child.close()
            self._writer.close()
            if not self._exit.done():
                if isinstance(err, Exception):
                    self._exit.set_exception(err)
                    self._exit.exception()  # retrieved: nobody may be waiting
                else:
                    self._exit.cancel()
            raise

    async def _copy(self, stream: str, reader: asyncio.StreamReader) -> None:
        """Keep the pipe flowing even when the log cannot be written (a full disk must not
        block the program on a full pipe): such output is dropped, with one warning."""
        failed = False
        while data := await reader.read(_PIPE_READ):
            if failed:
                continue
            try:
                self._writer.feed(stream, data)
            except (OSError, ValueError) as err:
                failed = True
                log.warning("%r: %s output is not logged any more: %s", self, stream, err)

    def _termination_message(self) -> str:
        path = self.spec.termination_message_path
        if not path:
            return ""
        full = Path(self.spec.working_dir or ".", path)  # an absolute path stays as it is
        try:
            with open(full, "rb") as handle:
                data = handle.read(TERMINATION_MESSAGE_LIMIT)
        except OSError:
            return ""
        return data.decode("utf-8", errors="replace")


# --- helpers -------------------------------------------------------------------------------


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's protocol for `Process`, plus a future set when the process itself exits.

    `Process.wait()` returns only once the process has exited *and* its pipes are closed, so it
    never returns while a child the program left behind holds stdout; the runtime must see the
    exit itself to kill that child."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


@dataclass
class _Child:
    """A process started in its own session with pipes, and the future of its exit
    (`process.returncode` is set once `exited` is done)."""

    process: asyncio.subprocess.Process
    transport: asyncio.SubprocessTransport
    exited: asyncio.Future[None]
    pty: int | None = None  # the master side of the process's terminal (tty mode)

    @classmethod
    async def spawn(
        cls,
        argv: list[str],
        name: str,
        env: dict[str, str],
        cwd: str | None,
        *,
        stdin: bool,
        tty: bool = False,
        preexec: Callable[[], None] | None = None,
    ) -> _Child:
        loop = asyncio.get_running_loop()
        master = slave = None
        source: int = asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL
        sink: int = asyncio.subprocess.PIPE
        if tty:
            master, slave = os.openpty()
            os.set_blocking(master, False)
            source = sink = slave
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitProtocol(_PIPE_READ, loop),
                *argv,
                stdin=source,
                stdout=sink,
                stderr=sink,
                env=env,
                cwd=cwd,
                start_new_session=True,
                # Runs after setsid() and the dup2()s: the mounts are made, and the pty's slave
                # becomes the session's terminal.
                preexec_fn=mountns.chain(preexec, take_terminal if tty else None),
            )
        except subprocess.SubprocessError as err:  # the preexec function failed
            if master is not None:
                os.close(master)
            raise ContainerStartError(
                "RunContainerError", f"cannot mount the volumes of {name!r}: {err}"
            ) from err
        except OSError as err:  # raced with a change of the file system, or ENOEXEC
            if master is not None:
                os.close(master)
            raise ContainerStartError(
                "ContainerCannotRun", f'exec: "{name}": {err.strerror or err}', exit_code=126
            ) from err
        finally:
            if slave is not None:
                os.close(slave)  # the child has it; the master sees EIO once the child is gone
        process = asyncio.subprocess.Process(transport, protocol, loop)
        return cls(process, transport, protocol.exited, master)

    def close(self) -> None:
        """Close the pipes (the process has exited; a process that left its group may still
        hold the other ends)."""
        self.transport.close()


def resolve_program(argv: list[str], env: dict[str, str], working_dir: str | None) -> str:
    """The file `argv[0]` names, looked up as `execvpe` would with `env`'s PATH; raises
    ContainerStartError (reason `ContainerCannotRun`) naming the problem."""
    if not argv or not argv[0]:
        raise ContainerStartError("ContainerCannotRun", "no command given (empty argv)")
    if working_dir is not None and not os.path.isdir(working_dir):
        raise ContainerStartError(
            "ContainerCannotRun",
            f"chdir to working directory {working_dir!r} failed: no such directory",
            exit_code=126,
        )
    name = argv[0]
    if "/" not in name:
        found = shutil.which(name, path=env.get("PATH", os.defpath))
        if found is None:
            raise ContainerStartError(
                "ContainerCannotRun",
                f'exec: "{name}": executable file not found in $PATH',
                exit_code=127,
            )
        return os.path.abspath(found)
    # Relative to the working directory, as the child would see it; an absolute name stays.
    path = os.path.abspath(os.path.join(working_dir or ".", name))
    if not os.path.exists(path):
        raise ContainerStartError(
            "ContainerCannotRun", f'exec: "{name}": no such file or directory', exit_code=127
        )
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise ContainerStartError(
            "ContainerCannotRun", f'exec: "{name}": permission denied', exit_code=126
        )
    return path


async def _within(clock: Clock, seconds: float, awaitable: Awaitable[object]) -> bool:
    """Await `awaitable` for at most `seconds` on `clock`; False when the time ran out (the
    awaitable is then cancelled)."""
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not work.done():
            work.cancel()
    return work.done() and not work.cancelled()


async def _feed(pipe: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if pipe is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            pipe.write(data)
            await pipe.drain()
        pipe.close()
        await pipe.wait_closed()
