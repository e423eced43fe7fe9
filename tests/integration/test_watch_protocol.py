"""The watch protocol on the wire: raw HTTPS watch streams read one line at a time, as kubectl
and client libraries read them (WatchList's initial events and their end bookmark,
resourceVersion semantics, timeouts, selector transitions, slow watchers), and a real kubectl
with its WatchList client."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from client_support import Http, configmap, deployment
from kubernetes import client

from kubeling.testing.cluster import TestCluster, wait_for

EVENT_TIMEOUT = 10.0  # seconds to wait for one expected event
MERGE = {"Content-Type": "application/merge-patch+json"}
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
WATCH_LIST = {
    "sendInitialEvents": "true",
    "allowWatchBookmarks": "true",
    "resourceVersionMatch": "NotOlderThan",
}


# -- helpers ---------------------------------------------------------------------------------


class Watch:
    """One watch request on its own HTTPS connection, read one event (line) at a time."""

    def __init__(
        self, server: Http, path: str, accept: str = "application/json", **query: str
    ) -> None:
        self.conn = http.client.HTTPSConnection(
            server.host, server.port, context=server.context, timeout=EVENT_TIMEOUT
        )
        try:
            self.conn.connect()
            self.sock = self.conn.sock
            self.conn.request(
                "GET",
                f"{path}?{urlencode({**query, 'watch': 'true'})}",
                headers={"Authorization": f"Bearer {server.token}", "Accept": accept},
            )
            self.response = self.conn.getresponse()
        except BaseException:
            self.conn.close()
            raise
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.response.close()
        self.conn.close()

    def __enter__(self) -> Watch:
        try:
            assert self.response.status == 200, (self.response.status, self.response.read())
            assert self.response.headers["Content-Type"].startswith("application/json")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next(self, timeout: float = EVENT_TIMEOUT) -> dict[str, Any] | None:
        """The next event, or None when the server has completed the response. Every event
        must be one JSON line ending in `\\n` whose object carries kind and apiVersion."""
        self.sock.settimeout(timeout)
        try:
            line = self.response.readline()
        except TimeoutError:
            raise AssertionError(f"no event within {timeout}s; saw {self.events!r}") from None
        if not line:
            return None
        assert line.endswith(b"\n"), f"event not terminated by a newline: {line[-200:]!r}"
        event = json.loads(line)
        assert set(event) == {"type", "object"}, event
        obj = event["object"]
        assert obj.get("kind") and obj.get("apiVersion"), f"event without kind/apiVersion: {event}"
        self.events.append(event)
        return event

    def expect(self) -> dict[str, Any]:
        event = self.next()
        assert event is not None, f"the watch ended early; saw {self.events!r}"
        return event

    def take(self, count: int) -> list[dict[str, Any]]:
        return [self.expect() for _ in range(count)]


def _cm_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def _create_cm(
    http: Http, ns: str, name: str, labels: dict[str, str] | None = None, **data: str
) -> dict[str, Any]:
    reply = http.json("POST", _cm_path(ns), configmap(name, labels, **data))
    assert reply.status == 201, reply.body
    return reply.json()


def _patch_cm(http: Http, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    reply = http.json("PATCH", _cm_path(ns, name), patch, headers=MERGE)
    assert reply.status == 200, reply.body
    return reply.json()


def _delete_cm(http: Http, ns: str, name: str) -> None:
    reply = http.request("DELETE", _cm_path(ns, name))
    assert reply.status == 200, reply.body


def _list_rv(http: Http, path: str) -> str:
    reply = http.request("GET", path)
    assert reply.status == 200, reply.body
    return reply.json()["metadata"]["resourceVersion"]


def _summary(event: dict[str, Any]) -> tuple[str, str]:
    return event["type"], event["object"]["metadata"].get("name", "")


def _rv(event: dict[str, Any]) -> int:
    return int(event["object"]["metadata"]["resourceVersion"])


def _metric(http: Http, name: str) -> float:
    reply = http.request("GET", "/metrics", headers={"Accept": "text/plain"})
    assert reply.status == 200, reply.body
    for line in reply.body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not exposed")


# -- WatchList: sendInitialEvents ------------------------------------------------------------


@pytest.mark.parametrize("from_list", [False, True], ids=["rv-unset", "rv-from-list"])
def test_watch_list_sends_current_objects_then_the_initial_events_end_bookmark(
    http: Http, ns: str, from_list: bool
) -> None:
    _create_cm(http, ns, "a", x="1")
    _create_cm(http, ns, "b", x="1")
    list_rv = _list_rv(http, _cm_path(ns))
    _create_cm(http, ns, "c", x="1")  # newer than the list: NotOlderThan includes it
    query = {**WATCH_LIST, **({"resourceVersion": list_rv} if from_list else {})}

    with Watch(http, _cm_path(ns), **query) as watch:
        initial = []
        while (event := watch.expect())["type"] != "BOOKMARK":
            initial.append(event)
        bookmark = event["object"]

        assert [e["type"] for e in initial] == ["ADDED"] * 3, initial
        assert sorted(e["object"]["metadata"]["name"] for e in initial) == ["a", "b", "c"]
        assert all(e["object"]["data"] == {"x": "1"} for e in initial), initial
        assert (bookmark["kind"], bookmark["apiVersion"]) == ("ConfigMap", "v1")
        assert bookmark["metadata"]["annotations"][INITIAL_EVENTS_END] == "true", bookmark
        bookmark_rv = int(bookmark["metadata"]["resourceVersion"])
        assert bookmark_rv >= max(_rv(e) for e in initial)
        assert bookmark_rv >= int(list_rv)

        patched = _patch_cm(http, ns, "a", {"data": {"x": "2"}})
        modified = watch.expect()
        assert _summary(modified) == ("MODIFIED", "a")
        assert modified["object"]["data"] == {"x": "2"}
        assert (
            modified["object"]["metadata"]["resourceVersion"]
            == (patched["metadata"]["resourceVersion"])
        )
        assert _rv(modified) > bookmark_rv

        _create_cm(http, ns, "d", x="1")
        assert _summary(watch.expect()) == ("ADDED", "d")


def test_watch_list_of_an_empty_collection_sends_only_the_bookmark(http: Http, ns: str) -> None:
    with Watch(http, _cm_path(ns), **WATCH_LIST) as watch:
        event = watch.expect()
        assert event["type"] == "BOOKMARK", event
        assert event["object"]["metadata"]["annotations"][INITIAL_EVENTS_END] == "true"

        _create_cm(http, ns, "first", x="1")
        assert _summary(watch.expect()) == ("ADDED", "first")


# -- event framing ---------------------------------------------------------------------------


def _deployment_lifecycle(http: Http, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    assert http.json("POST", path, deployment("web")).status == 201
    patch = {"metadata": {"labels": {"app": "web", "touched": "yes"}}}
    assert http.json("PATCH", f"{path}/web", patch, headers=MERGE).status == 200
    assert http.request("DELETE", f"{path}/web").status == 200


def _configmap_lifecycle(http: Http, ns: str) -> None:
    _create_cm(http, ns, "web", x="1")
    _patch_cm(http, ns, "web", {"data": {"x": "2"}})
    _delete_cm(http, ns, "web")


@pytest.mark.parametrize(
    ("resource", "accept", "kind", "api_version"),
    [
        ("configmaps", "application/json", "ConfigMap", "v1"),
        ("deployments", "application/json", "Deployment", "apps/v1"),
        (
            "configmaps",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            "Table",
            "meta.k8s.io/v1",
        ),
    ],
    ids=["core", "apps", "table"],
)
def test_every_watch_event_carries_kind_and_api_version_and_ends_with_a_newline(
    http: Http, ns: str, resource: str, accept: str, kind: str, api_version: str
) -> None:
    path = (
        _cm_path(ns) if resource == "configmaps" else f"/apis/apps/v1/namespaces/{ns}/deployments"
    )
    list_rv = _list_rv(http, path)

    with Watch(http, path, accept=accept, resourceVersion=list_rv) as watch:
        if resource == "configmaps":
            _configmap_lifecycle(http, ns)
        else:
            _deployment_lifecycle(http, ns)
        events = watch.take(3)

    # Watch.next() checked the newline and that kind and apiVersion are set; here the values.
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    for event in events:
        obj = event["object"]
        assert (obj["kind"], obj["apiVersion"]) == (kind, api_version), event
        if kind == "Table":
            assert [row["object"]["metadata"]["name"] for row in obj["rows"]] == ["web"]
        else:
            assert obj["metadata"]["name"] == "web"
    rvs = [
        int(
            (e["object"]["rows"][0]["object"] if kind == "Table" else e["object"])["metadata"][
                "resourceVersion"
            ]
        )
        for e in events
    ]
    assert rvs == sorted(set(rvs)), rvs  # the DELETED object carries the deletion's version


# -- resourceVersion semantics ---------------------------------------------------------------


def test_watch_from_resource_version_zero_starts_with_synthetic_added_events(
    http: Http, ns: str
) -> None:
    _create_cm(http, ns, "a", x="1")
    _create_cm(http, ns, "b", x="1")

    with Watch(http, _cm_path(ns), resourceVersion="0") as watch:
        initial = watch.take(2)
        assert sorted(_summary(e) for e in initial) == [("ADDED", "a"), ("ADDED", "b")]

        _patch_cm(http, ns, "b", {"data": {"x": "2"}})
        assert _summary(watch.expect()) == ("MODIFIED", "b")


def test_watch_without_resource_version_starts_with_synthetic_added_events(
    http: Http, ns: str
) -> None:
    _create_cm(http, ns, "a", x="1")

    with Watch(http, _cm_path(ns)) as watch:
        assert _summary(watch.expect()) == ("ADDED", "a")

        _delete_cm(http, ns, "a")
        assert _summary(watch.expect()) == ("DELETED", "a")


def test_watch_from_a_list_resource_version_sends_only_later_changes(http: Http, ns: str) -> None:
    _create_cm(http, ns, "a", x="1")
    _create_cm(http, ns, "b", x="1")
    list_rv = _list_rv(http, _cm_path(ns))
    _patch_cm(http, ns, "a", {"data": {"x": "2"}})  # after the list, before the watch
    _create_cm(http, ns, "c", x="1")
    _delete_cm(http, ns, "b")

    with Watch(http, _cm_path(ns), resourceVersion=list_rv) as watch:
        # Events arrive in order: a replay of a or b as ADDED would come first.
        replayed = watch.take(3)
        assert [_summary(e) for e in replayed] == [
            ("MODIFIED", "a"),
            ("ADDED", "c"),
            ("DELETED", "b"),
        ]
        assert all(_rv(e) > int(list_rv) for e in replayed)

        _patch_cm(http, ns, "c", {"data": {"x": "2"}})
        assert _summary(watch.expect()) == ("MODIFIED", "c")


def test_watch_from_the_latest_resource_version_sends_only_live_changes(
    http: Http, ns: str
) -> None:
    _create_cm(http, ns, "a", x="1")
    list_rv = _list_rv(http, _cm_path(ns))

    with Watch(http, _cm_path(ns), resourceVersion=list_rv) as watch:
        _create_cm(http, ns, "b", x="1")
        _patch_cm(http, ns, "a", {"data": {"x": "2"}})
        assert [_summary(e) for e in watch.take(2)] == [("ADDED", "b"), ("MODIFIED", "a")]


# -- timeoutSeconds --------------------------------------------------------------------------


def test_timeout_seconds_ends_the_stream_cleanly(http: Http, ns: str) -> None:
    _create_cm(http, ns, "a", x="1")
    started = time.monotonic()

    with Watch(http, _cm_path(ns), timeoutSeconds="1") as watch:
        assert _summary(watch.expect()) == ("ADDED", "a")
        # The server completes the chunked response (http.client would raise IncompleteRead
        # on a connection dropped mid-response).
        assert watch.next(timeout=EVENT_TIMEOUT) is None
        assert watch.response.isclosed()
    assert time.monotonic() - started < EVENT_TIMEOUT


# -- label selectors -------------------------------------------------------------------------


def test_relabelling_out_of_and_back_into_the_selector_is_deleted_then_added(
    http: Http, ns: str
) -> None:
    _create_cm(http, ns, "a", {"tier": "web"}, x="1")
    _create_cm(http, ns, "b", {"tier": "db"}, x="1")
    list_rv = _list_rv(http, _cm_path(ns))

    with Watch(http, _cm_path(ns), labelSelector="tier=web", resourceVersion=list_rv) as watch:
        out = _patch_cm(http, ns, "a", {"metadata": {"labels": {"tier": "db"}}})
        deleted = watch.expect()
        assert _summary(deleted) == ("DELETED", "a")
        # As Kubernetes' watch cache: the previous content (which matched the selector) at
        # the resourceVersion of the change that moved it out.
        assert deleted["object"]["metadata"]["labels"] == {"tier": "web"}, deleted
        assert (
            deleted["object"]["metadata"]["resourceVersion"] == (out["metadata"]["resourceVersion"])
        )

        _patch_cm(http, ns, "a", {"data": {"x": "2"}})  # outside the selector: no event
        _patch_cm(http, ns, "b", {"data": {"x": "2"}})  # never inside: no event
        _patch_cm(http, ns, "a", {"metadata": {"labels": {"tier": "web"}}})
        added = watch.expect()
        assert _summary(added) == ("ADDED", "a")
        assert added["object"]["metadata"]["labels"] == {"tier": "web"}
        assert added["object"]["data"] == {"x": "2"}

        _patch_cm(http, ns, "b", {"metadata": {"labels": {"tier": "web"}}})
        assert _summary(watch.expect()) == ("ADDED", "b")
        _patch_cm(http, ns, "a", {"data": {"x": "3"}})
        assert _summary(watch.expect()) == ("MODIFIED", "a")


# -- slow watchers ---------------------------------------------------------------------------

SLOW_CAPACITY = 20  # events the test cluster's watch cache keeps per resource
SLOW_WRITES = 300  # far more than the cache plus every socket buffer on the way can hold
BIG_VALUE = "x" * (100 * 1024)


def _read_chunked_body(sock: socket.socket, data: bytes, deadline: float) -> tuple[bytes, bool]:
    """Read an HTTP/1.1 chunked body to its end (or EOF); returns (body, complete)."""
    body = bytearray()
    while True:
        while b"\r\n" not in data:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            more = sock.recv(1 << 16)
            if not more:
                return bytes(body), False
            data += more
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        while len(data) < size + 2:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            more = sock.recv(1 << 16)
            if not more:
                return bytes(body), False
            data += more
        if size == 0:
            return bytes(body), True
        body += data[:size]
        data = data[size + 2 :]


def _at_eof(sock: socket.socket, deadline: float) -> bool:
    """Whether the peer closes the connection (after any remaining bytes) by `deadline`."""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if not sock.recv(1 << 16):
                return True
        except (ssl.SSLEOFError, ConnectionResetError):
            return True  # closed without a TLS close_notify: still the end of the stream
        except TimeoutError:
            return False
    return False


@contextmanager
def _unread_watch(cluster: TestCluster, path: str) -> Iterator[tuple[socket.socket, bytes]]:
    """A watch request on a raw TLS socket with a tiny receive buffer: the test reads the
    response headers and then nothing, so the server's writes back up quickly."""
    http = Http(cluster)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: sets the window
    raw.settimeout(EVENT_TIMEOUT)
    try:
        raw.connect((http.host, http.port))
        sock = http.context.wrap_socket(raw, server_hostname=http.host)
    except BaseException:
        raw.close()
        raise
    try:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {http.host}:{http.port}\r\n"
            f"Authorization: Bearer {http.token}\r\nAccept: application/json\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        head = b""
        deadline = time.monotonic() + EVENT_TIMEOUT
        while b"\r\n\r\n" not in head:
            assert time.monotonic() < deadline, head
            more = sock.recv(4096)
            assert more, f"connection closed before the response headers: {head!r}"
            head += more
        status, rest = head.split(b"\r\n\r\n", 1)
        assert status.startswith(b"HTTP/1.1 200"), status
        assert b"transfer-encoding: chunked" in status.lower(), status
        yield sock, rest
    finally:
        sock.close()


def test_a_watcher_too_slow_for_the_cache_is_closed() -> None:
    ns = "slow"
    with TestCluster(watch_cache_capacity=SLOW_CAPACITY) as cluster:
        http = Http(cluster)
        namespace = {"metadata": {"name": ns}}
        assert http.json("POST", "/api/v1/namespaces", namespace).status == 201
        list_rv = _list_rv(http, _cm_path(ns))
        assert _metric(http, "apiserver_watch_slow_closed") == 0

        path = f"{_cm_path(ns)}?{urlencode({'watch': 'true', 'resourceVersion': list_rv})}"
        with _unread_watch(cluster, path) as (sock, rest):
            api = cluster.api_client()
            try:
                core = client.CoreV1Api(api)
                for i in range(SLOW_WRITES // 2):
                    core.create_namespaced_config_map(ns, configmap(f"cm{i}", big=BIG_VALUE))
                for i in range(SLOW_WRITES - SLOW_WRITES // 2):
                    core.patch_namespaced_config_map(f"cm{i}", ns, {"data": {"v": str(i)}})
            finally:
                api.close()

            deadline = time.monotonic() + 20
            body, complete = _read_chunked_body(sock, rest, deadline)
            assert _at_eof(sock, deadline), "the server kept the connection open"

        lines = body.splitlines(keepends=True)
        assert all(line.endswith(b"\n") for line in lines)
        events = [json.loads(line) for line in lines]
        assert events, "the watcher got nothing at all before being closed"
        assert len(events) < SLOW_WRITES, "the slow watcher got every event"
        assert all(e["type"] in ("ADDED", "MODIFIED") for e in events), events[-1]["type"]
        # What it did get is a gap-free prefix of the history, in order.
        history = [f"cm{i}" for i in range(SLOW_WRITES // 2)]
        history += [f"cm{i}" for i in range(SLOW_WRITES - SLOW_WRITES // 2)]
        assert [e["object"]["metadata"]["name"] for e in events] == history[: len(events)]
        # Either the response ended (the watcher caught up and found itself dropped) or the
        # connection was aborted (its write was blocked when the log overtook it).
        assert complete in (True, False)
        assert _metric(http, "apiserver_watch_slow_closed") >= 1


def test_a_watcher_that_never_reads_is_closed_without_reading_it() -> None:
    ns = "stuck"
    with TestCluster(watch_cache_capacity=SLOW_CAPACITY) as cluster:
        http = Http(cluster)
        assert http.json("POST", "/api/v1/namespaces", {"metadata": {"name": ns}}).status == 201
        list_rv = _list_rv(http, _cm_path(ns))
        path = f"{_cm_path(ns)}?{urlencode({'watch': 'true', 'resourceVersion': list_rv})}"
        with _unread_watch(cluster, path) as (sock, _rest):
            api = cluster.api_client()
            try:
                core = client.CoreV1Api(api)
                for i in range(SLOW_WRITES // 2):
                    core.create_namespaced_config_map(ns, configmap(f"cm{i}", big=BIG_VALUE))
            finally:
                api.close()
            # Nothing is read: the server must notice on its own and let the watcher go.
            wait_for(
                lambda: _metric(http, "apiserver_watch_slow_closed") >= 1,
                timeout=20,
                message="the stuck watcher to be closed",
            )
            assert _at_eof(sock, time.monotonic() + 20), "the server kept the connection open"


# -- kubectl's WatchList client --------------------------------------------------------------


def test_kubectl_wait_with_the_watch_list_client_sees_a_later_change(
    cluster: TestCluster, http: Http, ns: str
) -> None:
    _create_cm(http, ns, "x", a="1")
    home = Path(tempfile.mkdtemp(prefix="kubeling-home-"))
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "HOME": str(home),
        "KUBE_FEATURE_WatchListClient": "true",
    }
    cmd = [
        cluster.kubectl_path,
        "--cache-dir",
        str(home / "cache"),
        f"--namespace={ns}",
        "-v=6",
        "wait",
        "--for=jsonpath={.data.a}=2",
        "configmap/x",
        "--timeout=20s",
    ]
    log_file = home / "kubectl.log"  # kubectl's stderr, read by path while it runs
    watchers_before = _metric(http, "apiserver_registered_watchers")
    try:
        with log_file.open("w") as stderr:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        try:
            # Change the object only once kubectl's watch is open, so that kubectl must see
            # the change on the watch (not in its first GET).
            wait_for(
                lambda: (
                    proc.poll() is not None
                    or "watch=true" in log_file.read_text()  # kubectl logged the watch
                    or _metric(http, "apiserver_registered_watchers") > watchers_before
                ),
                timeout=20,
                message="kubectl's watch",
            )
            assert proc.poll() is None, "kubectl wait ended before the change"
            _patch_cm(http, ns, "x", {"data": {"a": "2"}})
            stdout, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        log = log_file.read_text()
    finally:
        shutil.rmtree(home, ignore_errors=True)

    assert proc.returncode == 0, log[-3000:]
    assert stdout.strip() == "configmap/x condition met"
    # kubectl really used WatchList (no LIST) and got the initial-events-end bookmark.
    assert "sendInitialEvents=true" in log, log[-3000:]
    assert "end of initial events" in log, log[-3000:]
