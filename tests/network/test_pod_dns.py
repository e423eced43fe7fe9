"""Pods resolve Service names through the cluster DNS, as in Kubernetes: the agent gives each
pod its own /etc/resolv.conf (from its dnsPolicy and dnsConfig) and /etc/hosts, mounted over
the host's in the pod's mount namespace only, so glibc's `getaddrinfo` in the pod asks the
`kube-dns` ClusterIP, which the node's service proxy forwards to the cluster DNS."""

from __future__ import annotations

import json
import socket
import struct
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubeling.agent import mountns
from kubeling.testing import TestCluster, wait_for

pytestmark = pytest.mark.e2e

needs_mount_namespace = pytest.mark.skipif(
    not mountns.available(),
    reason="the pod's own /etc/resolv.conf and /etc/hosts are mounted in a private mount "
    "namespace, which needs root on Linux; without it pods keep the host's resolver",
)

NS = f"shop-{uuid.uuid4().hex[:6]}"  # known to no other cluster on this machine

# Prints what the pod sees as JSON on one line, then stays for `kubectl exec`. Another kubeling
# cluster on this machine (a concurrent test run) serves the same kube-dns ClusterIP, and the
# kernel spreads packets over both clusters' proxies by source port: a lookup that reached the
# other cluster's DNS is tried again (a new lookup has a new port), for at most 30 seconds.
PROBE = """
import json, os, socket, sys, time
deadline = time.monotonic() + 30
def lookup(name):
    while True:
        try:
            found = socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)
            return sorted({a[4][0] for a in found})
        except OSError as err:
            if time.monotonic() > deadline:
                return f"error: {err}"
            time.sleep(0.1)
print(json.dumps({
    "resolv": open("/etc/resolv.conf").read(),
    "hosts": open("/etc/hosts").read(),
    "own": open(os.environ["KUBELING_MOUNT_ETC_RESOLV_CONF"]).read(),
    "names": {name: lookup(name) for name in sys.argv[1:]},
}), flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[TestCluster]:
    with TestCluster(nodes=1) as c:
        yield c


@pytest.fixture(scope="module")
def dns_ip(core: client.CoreV1Api) -> str:
    return str(core.read_namespaced_service("kube-dns", "kube-system").spec.cluster_ip)


@pytest.fixture(scope="module")
def web_ip(core: client.CoreV1Api, dns_ip: str) -> str:
    """The ClusterIP of the Service `shop/web`, once the cluster DNS knows it."""
    core.create_namespace({"metadata": {"name": NS}})
    service = {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    ip = str(core.create_namespaced_service(NS, service).spec.cluster_ip)
    wait_for(
        lambda: query_a(dns_ip, f"web.{NS}.svc.cluster.local") == ip,
        timeout=30,
        message="the cluster DNS to answer for web",
    )
    return ip


def query_a(server: str, name: str) -> str | None:
    """The first A record the DNS server at `server`:53 answers for `name` (over UDP)."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    query = (
        struct.pack("!HHHHHH", 9, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", 1, 1)
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(query, (server, 53))
        reply = sock.recvfrom(512)[0]
    if struct.unpack("!H", reply[6:8])[0] == 0:
        return None
    return socket.inet_ntoa(reply[-4:])


def run_probe(
    cluster: TestCluster, core: client.CoreV1Api, name: str, names: list[str], **spec: Any
) -> dict[str, Any]:
    """Start a probe pod resolving `names` in the namespace; what it printed."""
    container = {
        "name": "probe",
        "image": "python",
        "command": [sys.executable, "-c", PROBE, *names],
    }
    pod = {
        "metadata": {"name": name},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1, **spec},
    }
    core.create_namespaced_pod(NS, pod)

    def printed() -> dict[str, Any] | None:
        out = cluster.kubectl("logs", name, "-n", NS, check=False).stdout.strip()
        return json.loads(out) if out else None

    return wait_for(printed, timeout=60, message=f"the output of {name}")


@pytest.fixture(scope="module")
def host_resolv_conf() -> bytes:
    return Path("/etc/resolv.conf").read_bytes()


@pytest.fixture(scope="module")
def cluster_first(
    cluster: TestCluster, core: client.CoreV1Api, web_ip: str, host_resolv_conf: bytes
) -> dict[str, Any]:
    names = ["web", f"web.{NS}", "kubernetes.default.svc.cluster.local"]
    # Without root the pod has the host's resolver: these names would not resolve.
    return run_probe(cluster, core, "probe", names if mountns.available() else [])


def test_the_pod_gets_a_resolv_conf_for_the_cluster_dns(
    cluster_first: dict[str, Any], dns_ip: str
) -> None:
    # Named by its variable whether or not it could be mounted at /etc/resolv.conf.
    lines = cluster_first["own"].splitlines()
    assert lines[0].startswith(f"search {NS}.svc.cluster.local svc.cluster.local cluster.local")
    assert lines[1:] == [f"nameserver {dns_ip}", "options ndots:5"]


@needs_mount_namespace
def test_the_pod_resolves_services_by_short_and_full_names_through_the_cluster_dns(
    core: client.CoreV1Api, cluster_first: dict[str, Any], web_ip: str
) -> None:
    assert cluster_first["resolv"] == cluster_first["own"]
    kubernetes_ip = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert cluster_first["names"] == {
        "web": [web_ip],  # the search path: web.shop.svc.cluster.local
        f"web.{NS}": [web_ip],
        "kubernetes.default.svc.cluster.local": [kubernetes_ip],
    }


@needs_mount_namespace
def test_the_pod_gets_its_own_hosts_file(
    core: client.CoreV1Api, cluster_first: dict[str, Any]
) -> None:
    pod_ip = core.read_namespaced_pod("probe", NS).status.pod_ip
    hosts = cluster_first["hosts"]
    assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert hosts.endswith(f"\n{pod_ip}\tprobe\n")


@needs_mount_namespace
def test_exec_sees_the_pods_files_and_the_hosts_files_are_untouched(
    cluster: TestCluster, cluster_first: dict[str, Any], host_resolv_conf: bytes
) -> None:
    seen = cluster.kubectl("exec", "probe", "-n", NS, "--", "cat", "/etc/resolv.conf")
    assert seen.stdout == cluster_first["resolv"]
    seen = cluster.kubectl("exec", "probe", "-n", NS, "--", "cat", "/etc/hosts")
    assert seen.stdout == cluster_first["hosts"]
    assert Path("/etc/resolv.conf").read_bytes() == host_resolv_conf


@needs_mount_namespace
def test_dns_policy_none_uses_only_the_dns_config_and_host_aliases_resolve(
    cluster: TestCluster, core: client.CoreV1Api, dns_ip: str, web_ip: str
) -> None:
    spec = {
        "dnsPolicy": "None",
        "dnsConfig": {
            "nameservers": [dns_ip],
            "searches": [f"{NS}.svc.cluster.local"],
            "options": [{"name": "ndots", "value": "1"}],
        },
        "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]}],
    }
    out = run_probe(cluster, core, "custom", ["web", "bar.local"], **spec)
    assert out["resolv"] == (
        f"search {NS}.svc.cluster.local\nnameserver {dns_ip}\noptions ndots:1\n"
    )
    assert out["hosts"].endswith(
        "\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n"
    )
    assert out["names"] == {"web": [web_ip], "bar.local": ["127.0.0.1"]}


def test_dns_policy_none_without_dns_config_is_refused(cluster: TestCluster) -> None:
    manifest = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "nodns", "namespace": "default"},
            "spec": {
                "dnsPolicy": "None",
                "containers": [{"name": "c", "image": "python", "command": ["true"]}],
            },
        }
    )
    result = cluster.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None" in (
        result.stderr
    )
