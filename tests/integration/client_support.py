"""Helpers for the integration suites: raw HTTPS requests (for what the official client cannot
send, such as malformed bodies or no token) and small conversions of the client's models."""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubeling.testing.cluster import TestCluster

_DEFAULT = object()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


class Http:
    """One request per connection to the cluster, verified against the cluster's CA."""

    def __init__(self, cluster: TestCluster) -> None:
        url = urlsplit(cluster.url)
        assert url.hostname is not None and url.port is not None
        self.host, self.port = url.hostname, url.port
        self.token = cluster.token
        self.context = ssl.create_default_context(cafile=str(cluster.ca_file))

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: Any = _DEFAULT,
        timeout: float = 30,
    ) -> Reply:
        """Send one request; `token=None` sends no Authorization header."""
        all_headers = {"Accept": "application/json", **(headers or {})}
        token = self.token if token is _DEFAULT else token
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=timeout
        )
        try:
            # The server may answer (413) before it has read a body it refuses.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def json(self, method: str, path: str, obj: Any = None, **kwargs: Any) -> Reply:
        body = None if obj is None else json.dumps(obj).encode()
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return self.request(method, path, body, headers, **kwargs)


def is_status(reply: Reply, code: int, reason: str) -> bool:
    """Whether `reply` is a Kubernetes Status error with this code and reason."""
    assert reply.content_type.startswith("application/json"), reply.content_type
    status = reply.json()
    assert reply.status == code, (reply.status, status)
    assert (status["kind"], status["apiVersion"]) == ("Status", "v1"), status
    assert (status["status"], status["code"], status["reason"]) == ("Failure", code, reason), status
    assert status["message"], status
    return True


def api_status(err: Any, code: int, reason: str) -> dict[str, Any]:
    """The Status body of an `ApiException` (or `pytest.raises` info), checked."""
    exc = getattr(err, "value", err)
    assert exc.status == code, exc.body
    status = json.loads(exc.body)
    assert (status["kind"], status["code"], status["reason"]) == ("Status", code, reason), status
    return status


def names(listing: Any) -> list[str]:
    """The names in a client list response, sorted."""
    return sorted(item.metadata.name for item in listing.items)


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data}


def pod(name: str, image: str = "nginx:1.25", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}],
            **spec,
        },
    }


def deployment(name: str, replicas: int = 2, image: str = "nginx:1.25") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod(name, image)["spec"]},
        },
    }
