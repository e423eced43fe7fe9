"""Container logs in the kubelet's CRI format: written by the runtime, read for `pods/log`.

Why files: `kubectl logs` must work for the current *and* the previous instance of a
container, after the agent restarts, and while the program keeps writing. The kubelet solves
this with one file per container instance in the CRI log format; kubeling copies it, so a
file can be inspected with the same tools (`crictl`-style parsers, `cut -d' ' -f4-`).

Format (one record a line, as containerd writes it)::

    <timestamp> <stream> <tag> <message>\\n
    2024-05-01T12:00:00.123456789Z stdout F hello
    2024-05-01T12:00:00.123460000Z stderr P <the first 16 KiB of a long line>
    2024-05-01T12:00:00.123461000Z stderr F <the rest of it>

* `timestamp`: RFC 3339 UTC with nine fractional digits (fixed width, so that records sort as
  text), the time the runtime read the bytes from the pipe.
* `stream`: `stdout` or `stderr`; both streams of a container go to one file, interleaved in the
  order they were read.
* `tag`: `F` (full) ends a message; `P` (partial) means the message continues in the next
  record *of the same stream*. A line longer than `MAX_RECORD` (16 KiB, the kubelet's limit)
  is cut into `P` records and one final `F`. Bytes still unterminated when the stream closes
  are written as an `F` record.
* `message`: the line without its newline; bytes are copied as they are (no decoding).

Rotation: when a write takes the file past `max_bytes` (default 10 MiB) it is renamed to
`<log_path>.1` (the older `.1` to `.2`, and so on) and a new file is started; `max_files`
(default 2) counts the current file, as the kubelet's `containerLogMaxFiles` does. A file may
pass `max_bytes` by at most one pipe read (64 KiB and the record prefixes). What `kubectl logs`
shows then is what it shows in Kubernetes: **only the current file**, so right after a
rotation the output starts again from the lines written since; `--follow` keeps going across a
rotation (the reader finishes the renamed file, then opens the new one).

Reading (`read_log`) follows the kubelet's `ReadLogs`: `tail_lines` selects messages counted
from the end *first*, then `since_time` drops the ones older than it (timestamp >= since_time is
kept), `timestamps` prefixes each message with its timestamp and a space, `limit_bytes` cuts the
output at that many bytes. Unlike the kubelet, `P` records are joined into one message before
counting and prefixing, so a 40 KiB line is one line for `tail_lines`, with the timestamp of its
first record.

Concurrency: one `LogWriter` per container instance, used from the event loop only (records
are whole `write()` calls of complete lines; the reader ignores a trailing incomplete line, in
case it sees a write half done). File I/O is synchronous and small (at most one pipe read per
call), as the loop's other work is.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

MAX_RECORD = 16 * 1024
"""The longest message one record carries; longer lines are split into `P` records."""

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 2

_READ_SIZE = 64 * 1024
_OUTPUT_CHUNK = 64 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- writing -------------------------------------------------------------------------------


def format_timestamp(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC with nine fractional digits."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def parse_timestamp(text: str) -> int:
    """RFC 3339 (any number of fractional digits, `Z` or an offset) to nanoseconds since the
    epoch; raises ValueError. Inverse of `format_timestamp`, and accepts the trimmed fractions
    of Go's RFC3339Nano."""
    head, dot, rest = text.partition(".")
    fraction = ""
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
        if not fraction or len(fraction) > 9:
            raise ValueError(f"bad fraction of seconds in {text!r}")
        head += zone
    if head.endswith(("Z", "z")):
        head = head[:-1] + "+00:00"
    moment = datetime.fromisoformat(head)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    whole = (moment - _EPOCH) // timedelta(seconds=1)
    return whole * 1_000_000_000 + int(fraction.ljust(9, "0") or "0")


def datetime_to_ns(moment: datetime) -> int:
    """A timezone-aware datetime as nanoseconds since the epoch (exact, microsecond precision)."""
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment!r} has no time zone")
    return ((moment - _EPOCH) // timedelta(microseconds=1)) * 1000


class LogWriter:
    """Appends the records of one container instance to `path`, rotating by size.

    `feed(stream, data)` takes raw pipe bytes of one stream; `close()` writes what is left of
    unterminated lines (as `F`) and closes the file. Not thread-safe; use from one loop.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        if max_files < 1:
            raise ValueError(f"max_files must be at least 1, not {max_files}")
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._now_ns = now_ns
        self._pending: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(path, "ab")  # noqa: SIM115 (lives as long as self)
        self._size = self._file.tell()

    @property
    def closed(self) -> bool:
        return self._file is None

    def feed(self, stream: str, data: bytes) -> None:
        """Record `data` read from `stream` ("stdout" or "stderr")."""
        if stream not in self._pending:
            raise ValueError(f"unknown stream {stream!r}")
        pending = self._pending[stream]
        pending += data
        records: list[tuple[bytes, bytes]] = []  # (tag, message)
        start = 0
        while True:
            newline = pending.find(b"\n", start)
            end = newline if newline >= 0 else len(pending)
            # A line longer than MAX_RECORD is cut now, whether or not its end has come.
            while end - start >= MAX_RECORD and (newline < 0 or end - start > MAX_RECORD):
                records.append((b"P", bytes(pending[start : start + MAX_RECORD])))
                start += MAX_RECORD
            if newline < 0:
                break
            records.append((b"F", bytes(pending[start:newline])))
            start = newline + 1
        del pending[:start]
        self._write(stream, records)

    def close(self) -> None:
        """Flush unterminated lines as `F` records and close the file (idempotent)."""
        if self._file is None:
            return
        for stream, pending in self._pending.items():
            if pending:
                self._write(stream, [(b"F", bytes(pending))])
                pending.clear()
        self._file.close()
        self._file = None

    def _write(self, stream: str, records: Iterable[tuple[bytes, bytes]]) -> None:
        if self._file is None:
            raise ValueError(f"log {self.path} is closed")
        prefix = f"{format_timestamp(self._now_ns())} {stream} ".encode()
        out = b"".join(prefix + tag + b" " + message + b"\n" for tag, message in records)
        if not out:
            return
        self._file.write(out)
        self._file.flush()
        self._size += len(out)
        if self._size > self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        rotated = [self.path.with_name(f"{self.path.name}.{n}") for n in range(self.max_files)]
        # rotated[0] stands for the current file; keep rotated[1 .. max_files-1].
        if self.max_files == 1:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self.max_files - 1, 0, -1):
                source = self.path if n == 1 else rotated[n - 1]
                if source.exists():
                    os.replace(source, rotated[n])
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogOptions:
    """The `pods/log` options the agent serves (`sinceSeconds` is converted by the caller)."""

    follow: bool = False
    tail_lines: int | None = None
    since_time: datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.tail_lines is not None and self.tail_lines < 0:
            raise ValueError(f"tail_lines must not be negative, not {self.tail_lines}")
        if self.limit_bytes is not None and self.limit_bytes < 1:
            raise ValueError(f"limit_bytes must be positive, not {self.limit_bytes}")


@dataclass(frozen=True)
class LogMessage:
    """One message, its `P` records joined: `text` ends with a newline unless cut short."""

    timestamp: str
    ns: int
    stream: str
    text: bytes

    def render(self, timestamps: bool) -> bytes:
        return (self.timestamp.encode() + b" " + self.text) if timestamps else self.text


class LogParser:
    """Turns raw file bytes into messages; keeps incomplete lines and `P` records between
    calls. Malformed records are skipped (a file cut by a crash must still be readable)."""

    def __init__(self) -> None:
        self._rest = b""
        self._partial: dict[str, tuple[str, int, list[bytes]]] = {}

    def feed(self, data: bytes) -> list[LogMessage]:
        data = self._rest + data
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]
        messages: list[LogMessage] = []
        for line in data[:cut].split(b"\n")[:-1]:
            parts = line.split(b" ", 3)
            if len(parts) < 3 or parts[2] not in (b"F", b"P"):
                continue
            try:
                timestamp = parts[0].decode()
                stream = parts[1].decode()
                ns = parse_timestamp(timestamp)
            except ValueError:  # UnicodeDecodeError included
                continue
            message = parts[3] if len(parts) == 4 else b""
            first = self._partial.pop(stream, None)
            pieces = [*first[2], message] if first else [message]
            if first is not None:
                timestamp, ns = first[0], first[1]
            if parts[2] == b"P":
                self._partial[stream] = (timestamp, ns, pieces)
            else:
                messages.append(LogMessage(timestamp, ns, stream, b"".join(pieces) + b"\n"))
        return messages

    def flush(self) -> list[LogMessage]:
        """What is left of unfinished `P` messages, without a newline (end of the log)."""
        left = [
            LogMessage(ts, ns, stream, b"".join(p)) for stream, (ts, ns, p) in self._partial.items()
        ]
        self._partial.clear()
        return sorted(left, key=lambda m: m.ns)


async def read_log(
    path: Path,
    options: LogOptions,
    *,
    is_running: Callable[[], bool],
    poll_interval: float = 0.1,
) -> AsyncIterator[bytes]:
    """Yield the log of one container instance as `kubectl logs` shows it, in chunks.

    `is_running()` must stay true while more may be written to `path`: for the runtime's
    containers that is `RunningContainer.running`, which turns false only once the output of
    the exited process has been written. With `follow`, new messages are yielded until
    `is_running()` is false and the file is drained (checked every `poll_interval` seconds);
    without it, what the file holds now. A missing file gives nothing (with `follow`, it is
    awaited while the container runs). Output stops at `limit_bytes`.
    """
    budget = options.limit_bytes
    since_ns = datetime_to_ns(options.since_time) if options.since_time else None
    parser = LogParser()
    handle: BinaryIO | None = None

    def shape(messages: Iterable[LogMessage]) -> Iterable[bytes]:
        for message in messages:
            if since_ns is None or message.ns >= since_ns:
                yield message.render(options.timestamps)

    def chunks(pieces: Iterable[bytes]) -> Iterable[bytes]:
        """Join pieces into output chunks and apply `limit_bytes` (budget goes to 0)."""
        nonlocal budget
        batch: list[bytes] = []
        size = 0
        for piece in pieces:
            if budget is not None:
                piece = piece[:budget]
                budget -= len(piece)
            batch.append(piece)
            size += len(piece)
            if size >= _OUTPUT_CHUNK or budget == 0:
                yield b"".join(batch)
                batch, size = [], 0
                if budget == 0:
                    return
        if batch:
            yield b"".join(batch)

    def open_log() -> BinaryIO | None:
        try:
            return open(path, "rb")
        except FileNotFoundError:
            return None

    try:
        while (handle := open_log()) is None:
            if not (options.follow and is_running()):
                return
            await asyncio.sleep(poll_interval)
        # What the file holds now: tail first, then since (as the kubelet does).
        first: list[LogMessage] | deque[LogMessage]
        if options.tail_lines is None:
            first = parser.feed(handle.read())
        else:
            first = deque(maxlen=options.tail_lines)
            while data := handle.read(1024 * 1024):
                first.extend(parser.feed(data))
        if not options.follow:
            first = [*first, *parser.flush()]
        for chunk in chunks(shape(first)):
            yield chunk
        if budget == 0 or not options.follow:
            return
        while True:
            running = is_running()  # sampled before reading: "not running" then means drained
            data = handle.read(_READ_SIZE)
            if data:
                for chunk in chunks(shape(parser.feed(data))):
                    yield chunk
                if budget == 0:
                    return
                continue
            if _rotated(path, handle):
                # The writer may have added to the old file just before renaming it.
                for chunk in chunks(shape(parser.feed(handle.read()))):
                    yield chunk
                if budget == 0:
                    return
                handle.close()
                handle = open_log()
                if handle is None:  # the new file is not there yet
                    handle = await _await_file(path, is_running, poll_interval)
                    if handle is None:
                        break
                continue
            if not running:
                break
            await asyncio.sleep(poll_interval)
        for chunk in chunks(shape(parser.flush())):
            yield chunk
    finally:
        if handle is not None:
            handle.close()


def _rotated(path: Path, handle: BinaryIO) -> bool:
    """True when `path` is no longer the file `handle` reads (renamed away by rotation)."""
    try:
        return os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return True


async def _await_file(
    path: Path, is_running: Callable[[], bool], poll_interval: float
) -> BinaryIO | None:
    while True:
        running = is_running()
        try:
            return open(path, "rb")
        except FileNotFoundError:
            if not running:
                return None
        await asyncio.sleep(poll_interval)
