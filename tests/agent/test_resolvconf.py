"""A pod's resolv.conf and hosts file, formed as the kubelet forms them (resolvconf.py,
etchosts.py), written into the pod's directory and mounted over the host's only inside the
container's mount namespace (managedfiles.py, mountns.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubeling.agent import managedfiles, mountns
from kubeling.agent.etchosts import hosts_file
from kubeling.agent.resolvconf import ResolvConf, cluster_dns_ip, parse, pod_dns
from kubeling.agent.runtime import ContainerSpec, ProcessRuntime

DNS = "127.96.0.10"
HOST = ResolvConf(("10.0.0.2", "10.0.0.3"), ("corp.example", "example"), ("timeout:2",))


def pod(namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-0", "namespace": namespace, "uid": "u1"},
        "spec": {"containers": [{"name": "main"}], **spec},
    }


# -- parsing the node's file ----------------------------------------------------------------


def test_the_node_file_is_read_as_the_kubelet_reads_it() -> None:
    text = (
        "# generated\n"
        "nameserver 10.0.0.2\n"
        "search old.example\n"
        "; a comment\n"
        "nameserver 10.0.0.3\n"
        "search corp.example. . example\n"
        "options timeout:2\n"
        "options rotate\n"
        "nameserver\n"
        "domain ignored.example\n"
    )
    assert parse(text) == ResolvConf(
        ("10.0.0.2", "10.0.0.3"), ("corp.example", "example"), ("timeout:2", "rotate")
    )


def test_a_config_renders_in_the_container_runtimes_layout() -> None:
    assert HOST.render() == (
        "search corp.example example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions timeout:2\n"
    )
    assert ResolvConf().render() == ""


# -- policies -------------------------------------------------------------------------------


def test_cluster_first_is_the_default_and_uses_only_the_cluster_dns() -> None:
    dns = pod_dns(pod(), HOST, DNS)
    assert dns.events == ()
    assert dns.config.render() == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example example\n"
        "nameserver 127.96.0.10\n"
        "options ndots:5\n"
    )
    assert pod_dns(pod(dnsPolicy="ClusterFirst"), HOST, DNS) == dns


def test_a_host_network_pod_falls_back_to_default_unless_it_asks_for_the_cluster() -> None:
    assert pod_dns(pod(hostNetwork=True), HOST, DNS).config == HOST
    explicit = pod_dns(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), HOST, DNS)
    assert explicit.config.nameservers == (DNS,)
    # Without hostNetwork, ClusterFirstWithHostNet is ClusterFirst.
    assert pod_dns(pod(dnsPolicy="ClusterFirstWithHostNet"), HOST, DNS) == pod_dns(pod(), HOST, DNS)


def test_default_is_the_nodes_configuration() -> None:
    dns = pod_dns(pod(dnsPolicy="Default"), HOST, DNS)
    assert dns.config == HOST
    assert dns.events == ()


def test_none_is_only_the_pods_dns_config() -> None:
    config = {
        "nameservers": ["1.2.3.4"],
        "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    dns = pod_dns(pod(dnsPolicy="None", dnsConfig=config), HOST, DNS)
    # The example of the Kubernetes docs ("Pod's DNS Config"), with its resulting file.
    assert dns.config.render() == (
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\n"
        "nameserver 1.2.3.4\n"
        "options ndots:2 edns0\n"
    )


def test_without_a_cluster_dns_cluster_first_falls_back_to_default_with_a_warning() -> None:
    dns = pod_dns(pod(), HOST, None)
    assert dns.config == HOST
    ((reason, message),) = dns.events
    assert reason == "MissingClusterDNS"
    assert message.startswith('pod: "web-0_shop(u1)".')
    assert 'Falling back to "Default" policy.' in message


def test_the_cluster_dns_is_the_kube_dns_service_cluster_ip() -> None:
    def service(ns: str, name: str, ip: str) -> dict[str, Any]:
        return {"metadata": {"namespace": ns, "name": name}, "spec": {"clusterIP": ip}}

    assert cluster_dns_ip([service("default", "kubernetes", "127.96.0.1")]) is None
    assert cluster_dns_ip([service("kube-system", "kube-dns", DNS)]) == DNS
    assert cluster_dns_ip([service("kube-system", "kube-dns", "None")]) is None
    assert cluster_dns_ip([service("other", "kube-dns", DNS)]) is None


# -- dnsConfig merged into a policy --------------------------------------------------------


def test_dns_config_is_appended_without_duplicates_and_its_options_override() -> None:
    config = {
        "nameservers": ["10.9.9.9", DNS],
        "searches": ["svc.cluster.local", "extra.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "single-request"}],
    }
    dns = pod_dns(pod(dnsConfig=config), HOST, DNS)
    assert dns.config == ResolvConf(
        (DNS, "10.9.9.9"),
        (
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "corp.example",
            "example",
            "extra.example",
        ),
        ("ndots:2", "single-request"),
    )


def test_an_option_without_a_value_replaces_one_with_a_value() -> None:
    config = {"options": [{"name": "timeout"}, {"name": "attempts", "value": "3"}]}
    dns = pod_dns(pod(dnsPolicy="Default", dnsConfig=config), HOST, DNS)
    assert dns.config.options == ("timeout", "attempts:3")


# -- limits ---------------------------------------------------------------------------------


def test_more_than_three_nameservers_are_cut_with_an_event() -> None:
    config = {"nameservers": ["10.1.1.1", "10.1.1.2"]}
    dns = pod_dns(pod(dnsPolicy="Default", dnsConfig=config), HOST, DNS)
    assert dns.config.nameservers == ("10.0.0.2", "10.0.0.3", "10.1.1.1")
    assert dns.events == (
        (
            "DNSConfigForming",
            "Nameserver limits were exceeded, some nameservers have been omitted, "
            "the applied nameserver line is: 10.0.0.2 10.0.0.3 10.1.1.1",
        ),
    )


def test_more_than_32_search_domains_are_cut_with_an_event() -> None:
    searches = [f"d{i}.example" for i in range(40)]
    dns = pod_dns(pod(dnsPolicy="None", dnsConfig={"searches": searches}), ResolvConf(), DNS)
    assert dns.config.searches == tuple(searches[:32])
    ((reason, message),) = dns.events
    assert reason == "DNSConfigForming"
    assert message.endswith("the applied search line is: " + " ".join(searches[:32]))


def test_a_search_line_over_2048_characters_loses_domains_from_its_end() -> None:
    # 30 domains of 99 characters make a line of 30 * 100 - 1 = 2999 characters: cutting 10
    # from the end leaves 20, 1999 characters.
    searches = [f"{i:02d}." + "a" * 60 + "." + "b" * 27 + ".example" for i in range(30)]
    dns = pod_dns(pod(dnsPolicy="None", dnsConfig={"searches": searches}), ResolvConf(), DNS)
    assert dns.config.searches == tuple(searches[:20])
    assert len(" ".join(dns.config.searches)) == 1999
    assert [reason for reason, _ in dns.events] == ["DNSConfigForming"]


def test_a_search_domain_longer_than_253_characters_is_dropped() -> None:
    long = ".".join(["a" * 63] * 4) + ".example"
    dns = pod_dns(pod(dnsConfig={"searches": [long, "ok.example"]}), ResolvConf(), DNS)
    assert dns.config.searches[-1] == "ok.example"
    assert long not in dns.config.searches
    assert [reason for reason, _ in dns.events] == ["DNSConfigForming"]


# -- the hosts file -------------------------------------------------------------------------

BOILERPLATE = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def test_the_hosts_file_names_the_pod_and_adds_its_host_aliases() -> None:
    aliases = [
        {"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
        {"ip": "10.1.2.3", "hostnames": ["foo.remote"]},
    ]
    assert hosts_file(pod(hostAliases=aliases), ["127.128.0.7"]) == (
        BOILERPLATE + "127.128.0.7\tweb-0\n"
        "\n# Entries added by HostAliases.\n"
        "127.0.0.1\tfoo.local\tbar.local\n"
        "10.1.2.3\tfoo.remote\n"
    )


def test_a_hostname_and_subdomain_give_the_pod_its_fully_qualified_name() -> None:
    spec = {"hostname": "db", "subdomain": "cluster"}
    assert hosts_file(pod(**spec), ["127.128.0.7"]) == (
        BOILERPLATE + "127.128.0.7\tdb.cluster.shop.svc.cluster.local\tdb\n"
    )


def test_a_long_pod_name_is_cut_to_a_63_character_hostname() -> None:
    long = pod()
    long["metadata"]["name"] = "a" * 62 + "-b"
    assert hosts_file(long, ["127.128.0.7"]).endswith(f"127.128.0.7\t{'a' * 62}\n")


def test_a_host_network_pod_gets_the_nodes_hosts_file_and_its_aliases() -> None:
    aliases = [{"ip": "10.1.2.3", "hostnames": ["foo.remote"]}]
    node = "127.0.0.1 localhost\n127.0.1.1 node\n"
    assert hosts_file(
        pod(hostNetwork=True, hostAliases=aliases), ["127.0.0.1"], node_hosts=node
    ) == (
        "# Kubernetes-managed hosts file (host network).\n"
        + node
        + "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\n"
    )


# -- written into the pod's directory --------------------------------------------------------


def write(tmp_path: Path, the_pod: dict[str, Any]) -> managedfiles.ManagedFiles:
    host = tmp_path / "host-resolv.conf"
    host.write_text("nameserver 10.0.0.2\nsearch corp.example\n")
    services = [
        {"metadata": {"namespace": "kube-system", "name": "kube-dns"}, "spec": {"clusterIP": DNS}}
    ]
    files, events = managedfiles.write(
        tmp_path / "pod",
        the_pod,
        "127.128.0.7",
        services,
        host_resolv_conf=host,
        host_hosts=tmp_path / "missing-hosts",
    )
    assert events == ()
    return files


def test_the_files_are_written_under_the_pod_directory(tmp_path: Path) -> None:
    files = write(tmp_path, pod())
    resolv = tmp_path / "pod" / "etc" / "resolv.conf"
    assert files.paths == {
        "/etc/hosts": str(tmp_path / "pod/etc/hosts"),
        "/etc/resolv.conf": str(resolv),
    }
    assert resolv.read_text() == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "nameserver 127.96.0.10\n"
        "options ndots:5\n"
    )
    assert "127.128.0.7\tweb-0\n" in (tmp_path / "pod" / "etc" / "hosts").read_text()


def test_a_container_gets_every_managed_file_but_where_it_mounts_a_volume(tmp_path: Path) -> None:
    files = write(tmp_path, pod())
    etc = tmp_path / "pod" / "etc"
    plain = files.for_container({"name": "main"})
    assert plain == (
        ("/etc/hosts", str(etc / "hosts"), False),
        ("/etc/resolv.conf", str(etc / "resolv.conf"), False),
    )
    assert managedfiles.env(plain) == {
        "KUBELING_MOUNT_ETC_HOSTS": str(etc / "hosts"),
        "KUBELING_MOUNT_ETC_RESOLV_CONF": str(etc / "resolv.conf"),
    }
    own_hosts = {
        "name": "main",
        "volumeMounts": [{"name": "h", "mountPath": "/etc/hosts/"}],
        "securityContext": {"readOnlyRootFilesystem": True},
    }
    assert files.for_container(own_hosts) == (("/etc/resolv.conf", str(etc / "resolv.conf"), True),)


# -- mounted only inside the container -----------------------------------------------------


@pytest.mark.skipif(not mountns.available(), reason="mount namespaces need root on Linux")
def test_replacing_mounts_change_nothing_on_the_host_and_create_nothing(tmp_path: Path) -> None:
    ours = tmp_path / "resolv.conf"
    ours.write_text("nameserver 127.96.0.10\n")
    before = Path("/etc/resolv.conf").read_bytes()
    missing = Path(f"/tmp/kubeling-missing-{uuid.uuid4().hex[:8]}/resolv.conf")
    bind = mountns.binder(
        (), [("/etc/resolv.conf", str(ours), True), (str(missing), str(ours), False)]
    )
    read = "import pathlib; print(pathlib.Path('/etc/resolv.conf').read_text(), end='')"
    seen = subprocess.run(
        [sys.executable, "-c", read], preexec_fn=bind, capture_output=True, text=True, check=True
    )
    assert seen.stdout == "nameserver 127.96.0.10\n"
    assert Path("/etc/resolv.conf").read_bytes() == before
    assert not missing.parent.exists()


def container(tmp_path: Path, name: str, code: str, managed: Path) -> ContainerSpec:
    return ContainerSpec(
        pod_uid="u1",
        namespace="shop",
        pod_name="web-0",
        name=name,
        argv=[sys.executable, "-c", code],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        working_dir=None,
        log_path=tmp_path / "logs" / name / "0.log",
        managed_files=(("/etc/resolv.conf", str(managed), False),),
    )


@pytest.mark.skipif(not mountns.available(), reason="mount namespaces need root on Linux")
async def test_a_container_without_volumes_and_an_exec_beside_it_see_the_pods_file(
    tmp_path: Path,
) -> None:
    ours = tmp_path / "resolv.conf"
    ours.write_text("nameserver 127.96.0.10\n")
    started = await ProcessRuntime().start(
        container(tmp_path, "main", "import time; time.sleep(60)", ours)
    )
    try:
        seen = await started.exec(["cat", "/etc/resolv.conf"], timeout=10)
        assert seen.stdout == b"nameserver 127.96.0.10\n"
    finally:
        await started.stop(0)


async def test_without_mount_namespaces_containers_keep_the_hosts_files_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mountns, "available", lambda: False)
    ours = tmp_path / "resolv.conf"
    ours.write_text("nameserver 127.96.0.10\n")
    runtime = ProcessRuntime()
    read = "import pathlib; print(pathlib.Path('/etc/resolv.conf').read_text(), end='')"
    with caplog.at_level(logging.WARNING, logger="kubeling.agent.runtime"):
        for name in ("one", "two"):
            started = await runtime.start(container(tmp_path, name, read, ours))
            assert (await started.wait()).exit_code == 0
            result = await started.exec(["cat", "/etc/resolv.conf"], timeout=10)
            assert result.stdout == Path("/etc/resolv.conf").read_bytes()
    said = [r.getMessage() for r in caplog.records if "/etc/resolv.conf" in r.getMessage()]
    assert len(said) == 1
    assert "$KUBELING_MOUNT_ETC_RESOLV_CONF" in said[0]
