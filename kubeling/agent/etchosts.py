"""A pod's `/etc/hosts`: the kubelet's "Kubernetes-managed hosts file".

Pure, like `resolvconf.py`; the pod worker writes the result into the pod's directory. As the
kubelet writes it (`pkg/kubelet/kubelet_pods.go`, and the docs' "Adding entries to Pod
/etc/hosts with HostAliases"):

    # Kubernetes-managed hosts file.
    127.0.0.1	localhost
    ::1	localhost ip6-localhost ip6-loopback
    fe00::0	ip6-localnet
    fe00::0	ip6-mcastprefix
    fe00::1	ip6-allnodes
    fe00::2	ip6-allrouters
    127.128.0.7	web-0.web.default.svc.cluster.local	web-0    (with a subdomain; else
                                                              "127.128.0.7	web-0")
    <blank line>
    # Entries added by HostAliases.
    127.0.0.1	foo.local	bar.local                          (one line per hostAlias)

The host name is `spec.hostname`, else the pod's name cut to 63 characters (without the `-`
or `.` the cut may leave at its end); with `spec.subdomain` the pod also gets the FQDN
`<hostname>.<subdomain>.<namespace>.svc.<cluster domain>`. A `hostNetwork` pod gets the node's
own hosts file instead, under the header `# Kubernetes-managed hosts file (host network).`,
plus its hostAliases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeling.agent.resolvconf import CLUSTER_DOMAIN

HEADER = "# Kubernetes-managed hosts file.\n"
HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
BOILERPLATE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)
MAX_HOSTNAME = 63


def hostname_and_domain(
    pod: Mapping[str, Any], cluster_domain: str = CLUSTER_DOMAIN
) -> tuple[str, str]:
    """The pod's host name and its domain ("" without `spec.subdomain`)."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    hostname = str(spec.get("hostname") or "")
    if not hostname:
        name = str(meta.get("name") or "")
        hostname = name if len(name) <= MAX_HOSTNAME else name[:MAX_HOSTNAME].rstrip("-.")
    subdomain = str(spec.get("subdomain") or "")
    namespace = str(meta.get("namespace") or "default")
    domain = f"{subdomain}.{namespace}.svc.{cluster_domain}" if subdomain else ""
    return hostname, domain


def hosts_file(
    pod: Mapping[str, Any],
    pod_ips: list[str],
    *,
    node_hosts: str = "",
    cluster_domain: str = CLUSTER_DOMAIN,
) -> str:
    """The pod's hosts file (module docstring); `node_hosts` is the node's own hosts file,
    used for a `hostNetwork` pod only."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return HEADER_HOST_NETWORK + node_hosts + _aliases(spec)
    hostname, domain = hostname_and_domain(pod, cluster_domain)
    names = f"{hostname}.{domain}\t{hostname}" if domain else hostname
    own = "".join(f"{ip}\t{names}\n" for ip in pod_ips)
    return HEADER + BOILERPLATE + own + _aliases(spec)


def _aliases(spec: Mapping[str, Any]) -> str:
    aliases = [a for a in spec.get("hostAliases") or [] if isinstance(a, Mapping)]
    if not aliases:
        return ""
    lines = [f"{a.get('ip')}\t" + "\t".join(map(str, a.get("hostnames") or [])) for a in aliases]
    return "\n# Entries added by HostAliases.\n" + "".join(line + "\n" for line in lines)
