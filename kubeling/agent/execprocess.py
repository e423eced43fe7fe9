"""A process started for `kubectl exec`, with its streams, and what goes with it: exit codes as
Kubernetes reports them, killing a process group, and the pseudo-terminal of `exec -it`.

The runtime (`ProcessRuntime.exec_stream`) starts the process; an `ExecProcess` is what the
caller gets: asyncio streams to copy, `wait()` for the exit code, `resize()` for the terminal,
and `close()`, which the caller must call once it has read what it wants of the output.

Terminal mode, as a container runtime does it: stdin, stdout and stderr of the process are the
slave of a new pseudo-terminal, which `take_terminal()` (run in the child after `setsid()`)
makes the controlling terminal of its session; stderr is therefore merged into stdout. The
agent reads the process's output from the master and writes its input there; the master reads
EIO (taken as the end of the output) once nothing holds the slave any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Callable

_READ_LIMIT = 64 * 1024


def exit_code(returncode: int) -> tuple[int, int | None]:
    """asyncio's return code (negative for a signal) as Kubernetes' (exit code, signal)."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


def signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def take_terminal() -> None:
    """In the child, after `setsid()`: make stdin (the pty's slave) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class ExecProcess:
    """A process started by `exec_stream` (see the module docstring).

    Without a tty, `stdin` (when asked for), `stdout` and `stderr` are pipes. With one, `stdin`
    and `stdout` both go through the terminal and `stderr` is None. `wait()` returns when the
    process itself exits (not when its pipes close: a child it left behind may hold them),
    with the exit code as Kubernetes reports it.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        exited: asyncio.Future[None],
        close_pipes: Callable[[], None],
        *,
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader | None,
        stderr: asyncio.StreamReader | None,
        pty: int | None = None,
        pty_transports: tuple[asyncio.BaseTransport, ...] = (),
    ) -> None:
        self.pid = process.pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._process = process
        self._exited = exited
        self._close_pipes = close_pipes
        self._pty = pty  # owned: the descriptor `resize()` uses
        self._pty_transports = pty_transports

    @classmethod
    async def attach(
        cls,
        process: asyncio.subprocess.Process,
        exited: asyncio.Future[None],
        pty: int | None,
        close_pipes: Callable[[], None],
    ) -> ExecProcess:
        """Wrap a started process; with `pty` (its terminal's master, now owned by the
        result), the terminal becomes `stdin` and `stdout`."""
        if pty is None:
            return cls(
                process,
                exited,
                close_pipes,
                stdin=process.stdin,
                stdout=process.stdout,
                stderr=process.stderr,
            )
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_READ_LIMIT, loop=loop)
        # One descriptor per transport, so that each closes its own and `resize()` keeps one.
        read_end = os.fdopen(os.dup(pty), "rb", buffering=0)
        write_end = os.fdopen(os.dup(pty), "wb", buffering=0)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), read_end
        )
        write_transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop), write_end
        )
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        return cls(
            process,
            exited,
            close_pipes,
            stdin=writer,
            stdout=reader,
            stderr=None,
            pty=pty,
            pty_transports=(read_transport, write_transport),
        )

    @property
    def tty(self) -> bool:
        return self._pty is not None

    async def wait(self) -> int:
        await asyncio.shield(self._exited)
        code = self._process.returncode
        assert code is not None
        return exit_code(code)[0]

    def resize(self, width: int, height: int) -> None:
        """Set the terminal's size (the process gets SIGWINCH); nothing without a tty."""
        if self._pty is None or width <= 0 or height <= 0:
            return
        size = struct.pack("HHHH", min(height, 0xFFFF), min(width, 0xFFFF), 0, 0)
        with contextlib.suppress(OSError):
            fcntl.ioctl(self._pty, termios.TIOCSWINSZ, size)

    def kill(self) -> None:
        signal_group(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill what is left of the process group and close every stream (idempotent)."""
        self.kill()
        for transport in self._pty_transports:
            transport.close()
        if self._pty is not None:
            os.close(self._pty)
            self._pty = None
        self._close_pipes()
