"""One watch stream as an async iterator of `WatchEvent(type, object)`.

Contract:

* The request is sent on first use (`async with`, `open()` or the first `__anext__`). An HTTP
  failure (404 for an unknown resource, 400 for a bad selector, ...) raises `ApiError` there.
* Events arrive in the server's order: `ADDED`, `MODIFIED`, `DELETED` with the object, and
  `BOOKMARK` with an object that only carries `metadata.resourceVersion` (informers use it to
  remember how far they have seen; other callers skip it).
* An `ERROR` event raises the `ApiError` its Status describes (410 Expired: the requested
  resourceVersion is compacted, so relist) and ends the stream.
* The stream ends (`StopAsyncIteration`) when the server ends it: `timeoutSeconds` passed, the
  server is stopping, or the watcher was too slow and was dropped. A caller that wants to go
  on watches again from the last resourceVersion it saw.
* `close()` ends it from the caller's side at any time, also from another task while one is
  waiting for the next event; that waiter then sees the end of the stream, not an error. The
  connection is closed (an unfinished chunked response cannot go back to the pool).

Framing: newline-delimited JSON, as Kubernetes sends it. Lines are split here rather than with
`StreamReader.readline()`, whose line-length limit (128 KiB) is smaller than an API object may
be (3 MiB).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, NamedTuple

import aiohttp
import orjson

from kubeling.client.status import error_from_status

ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"


class WatchEvent(NamedTuple):
    type: str
    object: dict[str, Any]


Opener = Callable[[], Awaitable[aiohttp.ClientResponse]]


class Watch:
    """An open (or about to open) watch; see the module docstring."""

    def __init__(self, opener: Opener) -> None:
        self._opener = opener
        self._response: aiohttp.ClientResponse | None = None
        self._buffer = b""
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def established(self) -> bool:
        """The server has answered and the stream is open."""
        return self._response is not None and not self._closed

    async def open(self) -> Watch:
        if self._response is None and not self._closed:
            response = await self._opener()
            if self._closed:  # closed by the caller while the request was on its way
                _abort(response)
            else:
                self._response = response
        return self

    async def __aenter__(self) -> Watch:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        await self.open()
        while True:
            if self._closed or self._response is None:
                raise StopAsyncIteration
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line, self._buffer = self._buffer[:newline], self._buffer[newline + 1 :]
                if line.strip():
                    return await self._event(line)
                continue
            try:
                chunk = await self._response.content.readany()
            except (aiohttp.ClientError, OSError):
                if self._closed:  # closed by the caller while we waited
                    raise StopAsyncIteration from None
                await self.close()
                raise
            if not chunk:
                tail, self._buffer = self._buffer, b""
                if tail.strip():  # a last event without its newline
                    return await self._event(tail)
                await self.close()
                raise StopAsyncIteration
            self._buffer += chunk

    async def _event(self, line: bytes) -> WatchEvent:
        try:
            raw = orjson.loads(line)
            kind, obj = raw["type"], raw["object"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as err:
            await self.close()
            raise ValueError(f"malformed watch event: {line[:200]!r}") from err
        if kind == ERROR:
            await self.close()
            raise error_from_status(obj if isinstance(obj, dict) else {}, 500)
        return WatchEvent(kind, obj)

    async def close(self) -> None:
        self._closed = True
        response = self._response
        if response is not None:
            if response.content.at_eof():
                response.release()  # read to the end: the connection can be reused
            else:
                _abort(response)


def _abort(response: aiohttp.ClientResponse) -> None:
    """Drop a response mid-stream. Not `close()`: a graceful TLS close waits for the
    server's close_notify, so the socket could outlive the client (and its event loop)."""
    connection = response.connection
    if connection is not None and connection.transport is not None:
        connection.transport.abort()
    response.close()
