"""The node join token a server writes to `<data-dir>/node-token`, the `/cacerts` route a
joining agent checks it against, and the token's credential as a bearer token. The server runs
as a child process (`kubeling up`), so that a restart is a real one."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit

from kubeling.testing.cluster import TestCluster

TOKEN_SHAPE = re.compile(r"K10(?P<hash>[0-9a-f]{64})::(?P<credential>node:(?P<secret>[^:\s]+))")


def _get(
    cluster: TestCluster, path: str, token: str | None, *, verify: bool = True
) -> tuple[int, str, bytes]:
    """GET `path` (HTTPS, verified by the data dir's CA unless not `verify`); returns the
    status, the Content-Type and the body."""
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    url = urlsplit(cluster.url)
    conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=context, timeout=30)
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers.get("Content-Type", ""), response.read()
    finally:
        conn.close()


def _node_token(cluster: TestCluster) -> re.Match[str]:
    text = (cluster.data_dir / "node-token").read_text()
    match = TOKEN_SHAPE.fullmatch(text.strip())
    assert match is not None, text
    return match


def test_the_node_token_has_the_k3s_shape_and_survives_a_restart(tmp_path: Path) -> None:
    with TestCluster(process=True, data_dir=tmp_path) as cluster:
        path = cluster.data_dir / "node-token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        before = _node_token(cluster)
        assert before["hash"] == hashlib.sha256(cluster.ca_file.read_bytes()).hexdigest()
        cluster.stop()

        cluster.start()
        assert _node_token(cluster).group(0) == before.group(0)


def test_cacerts_serves_the_ca_without_a_token_and_matches_the_token_hash(
    tmp_path: Path,
) -> None:
    with TestCluster(process=True, data_dir=tmp_path) as cluster:
        # As a joining agent fetches it: nothing to verify the connection with yet.
        code, content_type, body = _get(cluster, "/cacerts", None, verify=False)

        assert code == 200, body
        assert content_type.startswith("text/plain"), content_type
        assert body == cluster.ca_file.read_bytes()
        assert hashlib.sha256(body).hexdigest() == _node_token(cluster)["hash"]


def test_the_node_credential_authenticates_and_a_wrong_one_is_unauthorized(
    tmp_path: Path,
) -> None:
    with TestCluster(process=True, data_dir=tmp_path) as cluster:
        token = _node_token(cluster)
        code, _, body = _get(cluster, "/api/v1/nodes", token["credential"])
        assert code == 200, body
        assert json.loads(body)["kind"] == "NodeList"

        for bad in (
            token["secret"],  # the credential is `node:<secret>`, not the secret alone
            token.group(0),  # nor the whole token file
            token["credential"] + "x",
            "node:not-the-secret",
            "node:n\u00e9",  # not ASCII: still a 401, not a 500
        ):
            code, _, body = _get(cluster, "/api/v1/nodes", bad)
            status = json.loads(body)
            assert code == 401, (bad, status)
            assert (status["kind"], status["code"], status["reason"]) == (
                "Status",
                401,
                "Unauthorized",
            ), status
