"""A pod's `/etc/resolv.conf`, formed from its DNS policy as the kubelet forms it.

    dns = pod_dns(pod, host=parse(Path("/etc/resolv.conf").read_text()), cluster_dns="127.96.0.10")
    dns.config.render()   # "search web.svc.cluster.local svc.cluster.local cluster.local\n..."
    dns.events            # (reason, message) warnings to record on the pod

Pure: the caller reads the node's resolv.conf, finds the cluster DNS address (`cluster_dns_ip`,
from the `kube-system/kube-dns` Service in the agent's cache, where the kubelet has its
`--cluster-dns` flag), writes the file and records the events. The rules, from the kubelet's
`pkg/kubelet/network/dns` and the Kubernetes docs ("DNS for Services and Pods"):

    dnsPolicy                    base configuration
    ClusterFirst (the default)   nameserver: the cluster DNS only; search `<ns>.svc.<domain>
                                 svc.<domain> <domain>` then the node's search domains;
                                 options: `ndots:5` only. A `hostNetwork` pod falls back to
                                 Default. No cluster DNS known: Default, with the warning
                                 `MissingClusterDNS`.
    ClusterFirstWithHostNet      as ClusterFirst, also for a `hostNetwork` pod
    Default                      the node's resolv.conf (nameservers, search, options)
    None                         nothing: only `dnsConfig` (the API requires it)

`dnsConfig` is then merged in: its nameservers and searches appended to the base ones with
duplicates dropped (first occurrence kept), its options overriding base options of the same
name (`ndots` with value "2" replaces `ndots:5`) and appending new ones.

Limits, as glibc and the kubelet have them: at most 3 nameservers, 32 search domains, each at
most 253 characters, and 2048 characters on the search line. Over a limit, the kubelet does not
refuse the pod: it drops the excess (nameservers and search domains from the end, over-long
domains wherever they are) and records `DNSConfigForming`; so does this module.

Not like Kubernetes: the options keep their order (the kubelet rebuilds them from a Go map, in
no order). The cluster DNS itself (`network/dns.py`) forwards nothing upstream, so under
ClusterFirst only `cluster.local` names resolve; other names fail (kubeling talks to loopback
addresses only). A pod that needs outside names can use `dnsPolicy: Default`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeling.network.dns import ZONE as CLUSTER_DOMAIN

MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_LIST_CHARS = 2048
MAX_SEARCH_DOMAIN_LENGTH = 253  # a DNS subdomain; glibc 2.28 aborts on longer ones
DEFAULT_OPTIONS = ("ndots:5",)
DNS_SERVICE = ("kube-system", "kube-dns")
"""The Service whose ClusterIP is the cluster DNS (CoreDNS's name, as `network/dns.py`
publishes it)."""

Event = tuple[str, str]  # (reason, message) of a Warning event about the pod


@dataclass(frozen=True)
class ResolvConf:
    """The three things a resolv.conf says (what the CRI calls a DNSConfig)."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        """The file, in the layout container runtimes write: search, nameservers, options."""
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {server}" for server in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class PodDNS:
    config: ResolvConf
    events: tuple[Event, ...] = ()


def parse(text: str) -> ResolvConf:
    """A resolv.conf as the kubelet reads the node's: `nameserver` lines accumulate, the last
    `search` line wins (trailing dots dropped, `.` ignored), `options` accumulate. Comments
    (`#`, `;`) and anything else are ignored."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        keyword, values = fields[0], fields[1:]
        if keyword == "nameserver" and values:
            nameservers.append(values[0])
        elif keyword == "search":
            searches = [s.rstrip(".") for s in values if s != "."]
        elif keyword == "options":
            options += values
    return ResolvConf(tuple(nameservers), tuple(searches), tuple(options))


def cluster_dns_ip(services: Iterable[Mapping[str, Any]]) -> str | None:
    """The ClusterIP of the `kube-system/kube-dns` Service among `services`, if it has one."""
    namespace, name = DNS_SERVICE
    for service in services:
        meta = service.get("metadata") or {}
        if meta.get("namespace") == namespace and meta.get("name") == name:
            ip = str((service.get("spec") or {}).get("clusterIP") or "")
            return ip if ip and ip != "None" else None
    return None


def pod_dns(
    pod: Mapping[str, Any],
    host: ResolvConf,
    cluster_dns: str | None,
    cluster_domain: str = CLUSTER_DOMAIN,
) -> PodDNS:
    """The pod's resolver configuration and the warnings to record (module docstring)."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    events: list[Event] = []
    if policy == "None":
        config = ResolvConf()
    elif policy == "Default" or (policy == "ClusterFirst" and host_network):
        config = host
    elif cluster_dns:  # ClusterFirst, ClusterFirstWithHostNet (or unknown: the kubelet's pick)
        cluster_search = (f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}")
        config = ResolvConf(
            (cluster_dns,),
            _unique((*cluster_search, cluster_domain, *host.searches)),
            DEFAULT_OPTIONS,
        )
    else:
        config = host
        events.append(
            (
                "MissingClusterDNS",
                f'pod: "{_pod_name(meta)}". The node has no cluster DNS IP (the Service '
                f"{'/'.join(DNS_SERVICE)} has no ClusterIP) and cannot create Pod using "
                '"ClusterFirst" policy. Falling back to "Default" policy.',
            )
        )
    extra = spec.get("dnsConfig")
    if isinstance(extra, Mapping):
        config = ResolvConf(
            _unique((*config.nameservers, *map(str, extra.get("nameservers") or ()))),
            _unique((*config.searches, *map(str, extra.get("searches") or ()))),
            _merge_options(config.options, extra.get("options") or ()),
        )
    nameservers = config.nameservers
    if len(nameservers) > MAX_NAMESERVERS:
        nameservers = nameservers[:MAX_NAMESERVERS]
        events.append(
            (
                "DNSConfigForming",
                "Nameserver limits were exceeded, some nameservers have been omitted, "
                f"the applied nameserver line is: {' '.join(nameservers)}",
            )
        )
    searches, cut = _fit_searches(config.searches)
    if cut:
        events.append(
            (
                "DNSConfigForming",
                "Search Line limits were exceeded, some search paths have been omitted, "
                f"the applied search line is: {' '.join(searches)}",
            )
        )
    return PodDNS(ResolvConf(nameservers, searches, config.options), tuple(events))


def _fit_searches(searches: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """The search domains within the limits, and whether any had to go. The kubelet's order:
    first the count (the first 32 kept), then over-long domains, then whole domains from the
    end until the line fits. Worked example: 40 domains of 99 characters → 32 kept (a line of
    32 * 100 - 1 = 3199 characters) → 12 cut from the end → 20 domains, 1999 characters."""
    kept = list(searches[:MAX_SEARCH_PATHS])
    kept = [s for s in kept if len(s) <= MAX_SEARCH_DOMAIN_LENGTH]
    length = len(" ".join(kept))
    while kept and length > MAX_SEARCH_LIST_CHARS:
        length -= len(kept.pop()) + 1
    return tuple(kept), len(kept) != len(searches)


def _merge_options(base: Sequence[str], extra: Iterable[Any]) -> tuple[str, ...]:
    """`base` options (`name` or `name:value`) with the pod's `dnsConfig.options` applied:
    one of the same name replaces the base one in place, others are appended."""
    merged: dict[str, str] = {}
    for option in base:
        name, _, value = option.partition(":")
        merged[name] = value
    for option in extra:
        if isinstance(option, Mapping) and option.get("name"):
            given = option.get("value")
            merged[str(option["name"])] = "" if given is None else str(given)
    return tuple(f"{name}:{value}" if value else name for name, value in merged.items())


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _pod_name(meta: Mapping[str, Any]) -> str:
    """`name_namespace(uid)`, as the kubelet's `format.Pod` names a pod in messages."""
    return f"{meta.get('name')}_{meta.get('namespace') or 'default'}({meta.get('uid') or ''})"
