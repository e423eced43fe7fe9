"""Semantic rules for Services, Endpoints and EndpointSlices.

Two deliberate differences from Kubernetes, both forced by kubeling's one-machine network
model (DESIGN.md § 6), where pod IPs live in 127.128.0.0/9:

- endpoint addresses may be loopback addresses (Kubernetes rejects 127.0.0.0/8);
- ClusterIPs, NodePorts and health-check node ports are allocated *after* validation (by the
  registry's allocator, not before it as in Kubernetes), so an update that omits them keeps
  the stored ones and a missing `healthCheckNodePort` is not an error.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from kubeling.api import names
from kubeling.api.rules_container import port_num_or_name
from kubeling.api.rules_meta import (
    Causes,
    as_list,
    duplicate_raw,
    forbidden,
    go_quote,
    go_string_list,
    immutable,
    integer,
    invalid,
    invalid_raw,
    items,
    label_name,
    labels,
    not_supported,
    obj,
    required,
    text,
    too_many,
)
from kubeling.api.rules_volumes import blank

_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_AFFINITIES = ["ClientIP", "None"]
_FAMILIES = ["IPv4", "IPv6"]
_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
_TRAFFIC_POLICIES = ["Cluster", "Local"]
_ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
_IP_MESSAGE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_MAX_AFFINITY_SECONDS = 86400


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def valid_ip(path: str, value: str) -> Causes:
    return [] if _parse_ip(value) is not None else [invalid(path, value, _IP_MESSAGE)]


def non_special_ip(path: str, value: str) -> Causes:
    """ValidateNonSpecialIP, loopback allowed (see the module docstring)."""
    ip = _parse_ip(value)
    if ip is None:
        return [invalid(path, value, "must be a valid IP address")]
    if ip.is_unspecified:
        return [invalid(path, value, f"may not be unspecified ({value})")]
    if ip.is_link_local and not ip.is_multicast:
        return [
            invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        ]
    if ip in ipaddress.ip_network("224.0.0.0/24") or (
        ip.version == 6 and ip in ipaddress.ip_network("ff02::/16")
    ):
        return [
            invalid(
                path,
                value,
                "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            )
        ]
    return []


def _headless(spec: dict[str, Any]) -> bool:
    ips = spec.get("clusterIPs")
    if isinstance(ips, list) and ips:
        return ips == ["None"]
    return spec.get("clusterIP") == "None"


def _externally_accessible(spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs"))
    )


def service(spec: dict[str, Any]) -> Causes:
    """ValidateService, after ObjectMeta."""
    out: Causes = []
    kind = spec.get("type")
    ports = as_list(spec.get("ports"))
    if not ports and not _headless(spec) and kind != "ExternalName":
        out.append(required("spec.ports"))
    if kind in ("LoadBalancer", "NodePort") and _headless(spec):
        out.append(
            invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services")
        )
    elif kind == "ExternalName":
        for key in ("clusterIPs", "ipFamilies"):
            if spec.get(key):
                out.append(forbidden(f"spec.{key}", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            out.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = text(spec.get("externalName")).removesuffix(".")
        if cname:
            out += [invalid("spec.externalName", cname, m) for m in names.dns1123_subdomain(cname)]
        else:
            out.append(required("spec.externalName"))
    port_names: set[str] = set()
    for index, port in items(ports):
        out += _service_port(port, len(ports) > 1, port_names, f"spec.ports[{index}]")
    if spec.get("selector") is not None:
        out += labels("spec.selector", spec.get("selector"))
    out += _affinity(spec)
    out += _cluster_ips(spec)
    for index, ip in enumerate(spec.get("externalIPs") or []):
        here = f"spec.externalIPs[{index}]"
        out += valid_ip(here, text(ip)) or non_special_ip(here, text(ip))
    if not kind:
        out.append(required("spec.type"))
    elif kind not in _TYPES:
        out.append(not_supported("spec.type", kind, _TYPES))
    out += _node_ports(spec, ports)
    out += _load_balancer(spec)
    out += _traffic_policies(spec)
    return out


def _service_port(port: dict[str, Any], need_name: bool, seen: set[str], path: str) -> Causes:
    out: Causes = []
    name = text(port.get("name"))
    if need_name and not name:
        out.append(required(f"{path}.name"))
    elif name:
        out += [invalid(f"{path}.name", name, m) for m in names.dns1123_label(name)]
        if name in seen:
            out.append(duplicate_raw(f"{path}.name", go_quote(name)))
        seen.add(name)
    number = integer(port.get("port"))
    out += [invalid(f"{path}.port", number, m) for m in names.port_number(number)]
    out += protocol(port, path)
    out += port_num_or_name(port.get("targetPort"), f"{path}.targetPort")
    app_protocol = port.get("appProtocol")
    if app_protocol is not None:
        out += [
            invalid(f"{path}.appProtocol", app_protocol, m)
            for m in names.qualified_name(text(app_protocol))
        ]
    return out


def protocol(port: dict[str, Any], path: str) -> Causes:
    value = port.get("protocol")
    if not value:
        return [required(f"{path}.protocol")]
    if value not in _PROTOCOLS:
        return [not_supported(f"{path}.protocol", value, _PROTOCOLS)]
    return []


def _affinity(spec: dict[str, Any]) -> Causes:
    affinity = spec.get("sessionAffinity")
    if not affinity:
        return [required("spec.sessionAffinity")]
    if affinity not in _AFFINITIES:
        return [not_supported("spec.sessionAffinity", affinity, _AFFINITIES)]
    config = spec.get("sessionAffinityConfig")
    path = "spec.sessionAffinityConfig"
    if affinity == "None":
        if config is not None:
            return [forbidden(path, "must not be set when session affinity is None")]
        return []
    detail = "when session affinity type is ClientIP"
    if config is None:
        return [required(path, detail)]
    client = obj(config).get("clientIP")
    if client is None:
        return [required(f"{path}.clientIP", detail)]
    timeout = obj(client).get("timeoutSeconds")
    if timeout is None:
        return [required(f"{path}.clientIP.timeoutSeconds", detail)]
    if not 0 < integer(timeout) <= _MAX_AFFINITY_SECONDS:
        return [
            invalid(
                f"{path}.clientIP.timeoutSeconds",
                timeout,
                f"must be greater than 0 and less than {_MAX_AFFINITY_SECONDS}",
            )
        ]
    return []


def _cluster_ips(spec: dict[str, Any]) -> Causes:
    """ValidateServiceClusterIPsRelatedFields (what the allocator has not filled yet is fine;
    `clusterIPs` without `clusterIP` is too: Kubernetes' NormalizeClusterIPs fills it in)."""
    if spec.get("type") == "ExternalName":
        return []
    out: Causes = []
    cluster_ip = text(spec.get("clusterIP"))
    ips = [text(ip) for ip in spec.get("clusterIPs") or []]
    if ips and cluster_ip and ips[0] != cluster_ip:
        out.append(
            invalid_raw(
                "spec.clusterIPs", go_string_list(ips), "first value must match `clusterIP`"
            )
        )
    seen: set[str] = set()
    for index, family in enumerate(spec.get("ipFamilies") or []):
        if family not in _FAMILIES:
            out.append(not_supported(f"spec.ipFamilies[{index}]", family, _FAMILIES))
        if family in seen:
            out.append(duplicate_raw(f"spec.ipFamilies[{index}]", go_quote(text(family))))
        seen.add(text(family))
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in _FAMILY_POLICIES:
        out.append(not_supported("spec.ipFamilyPolicy", policy, _FAMILY_POLICIES))
    for index, ip in enumerate(ips or ([cluster_ip] if cluster_ip else [])):
        if index == 0 and ip == "None":
            if len(ips) > 1:
                out.append(
                    invalid_raw(
                        "spec.clusterIPs",
                        go_string_list(ips),
                        "'None' must be the first and only value",
                    )
                )
            continue
        out += valid_ip(f"spec.clusterIPs[{index}]", ip)
    if len(ips) > 2:
        out.append(
            invalid_raw("spec.clusterIPs", go_string_list(ips), "may only hold up to 2 values")
        )
    return out


def _node_ports(spec: dict[str, Any], ports: list[Any]) -> Causes:
    out: Causes = []
    node_ports: set[tuple[str, int]] = set()
    service_ports: set[tuple[str, int]] = set()
    for index, port in items(ports):
        node_port = integer(port.get("nodePort"))
        key = (text(port.get("protocol")), node_port)
        if node_port and spec.get("type") == "ClusterIP":
            out.append(
                forbidden(
                    f"spec.ports[{index}].nodePort", "may not be used when `type` is 'ClusterIP'"
                )
            )
        if node_port:
            if key in node_ports:
                out.append(duplicate_raw(f"spec.ports[{index}].nodePort", str(node_port)))
            node_ports.add(key)
    for index, port in items(ports):
        key = (text(port.get("protocol")), integer(port.get("port")))
        if key in service_ports:
            rendered = (
                'core.ServicePort{Name:"", Protocol:' + go_quote(key[0]) + ", AppProtocol:"
                f"(*string)(nil), Port:{key[1]}, TargetPort:intstr.IntOrString{{Type:0, "
                'IntVal:0, StrVal:""}, NodePort:0}'
            )
            out.append(duplicate_raw(f"spec.ports[{index}]", rendered))
        service_ports.add(key)
    return out


def _load_balancer(spec: dict[str, Any]) -> Causes:
    out: Causes = []
    is_lb = spec.get("type") == "LoadBalancer"
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges:
        path = "spec.LoadBalancerSourceRanges"
        if not is_lb:
            out.append(forbidden(path, "may only be used when `type` is 'LoadBalancer'"))
        for index, value in enumerate(ranges):
            try:
                ipaddress.ip_network(text(value).strip(), strict=False)
            except ValueError:
                out.append(
                    invalid(
                        f"{path}[{index}]",
                        text(value).strip(),
                        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                    )
                )
    allocate = spec.get("allocateLoadBalancerNodePorts")
    if allocate is not None and not is_lb:
        out.append(
            forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            )
        )
    if is_lb and allocate is None:
        out.append(required("allocateLoadBalancerNodePorts"))
    lb_class = spec.get("loadBalancerClass")
    if lb_class is not None:
        if is_lb:
            out += [
                invalid("spec.loadBalancerClass", lb_class, m)
                for m in names.qualified_name(text(lb_class))
            ]
        else:
            out.append(
                forbidden(
                    "spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"
                )
            )
    return out


def _traffic_policies(spec: dict[str, Any]) -> Causes:
    out: Causes = []
    external = spec.get("externalTrafficPolicy")
    if not _externally_accessible(spec):
        if external:
            out.append(
                invalid(
                    "spec.externalTrafficPolicy",
                    external,
                    "may only be set for externally-accessible services",
                )
            )
    elif not external:
        out.append(required("spec.externalTrafficPolicy"))
    elif external not in _TRAFFIC_POLICIES:
        out.append(not_supported("spec.externalTrafficPolicy", external, _TRAFFIC_POLICIES))
    health = integer(spec.get("healthCheckNodePort"))
    needs_health = spec.get("type") == "LoadBalancer" and external == "Local"
    if health and not needs_health:
        out.append(
            invalid(
                "spec.healthCheckNodePort",
                health,
                "may only be set when `type` is "
                "'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            )
        )
    elif health:
        out += [invalid("spec.healthCheckNodePort", health, m) for m in names.port_number(health)]
    internal = spec.get("internalTrafficPolicy")
    if internal is None and spec.get("type") in ("ClusterIP", "NodePort", "LoadBalancer"):
        out.append(required("spec.internalTrafficPolicy"))
    elif internal is not None and internal not in _TRAFFIC_POLICIES:
        out.append(not_supported("spec.internalTrafficPolicy", internal, _TRAFFIC_POLICIES))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        out.append(not_supported("spec.trafficDistribution", distribution, ["PreferClose"]))
    return out


def service_update(spec: dict[str, Any], old: dict[str, Any]) -> Causes:
    """ClusterIPs may not change once set (unless the Service is or becomes ExternalName)."""
    if "ExternalName" in (spec.get("type"), old.get("type")):
        return []
    if _headless(spec) and _headless(old):
        return []
    new_ips = [text(ip) for ip in spec.get("clusterIPs") or []]
    if not new_ips and text(spec.get("clusterIP")):
        new_ips = [text(spec["clusterIP"])]
    old_ips = [text(ip) for ip in old.get("clusterIPs") or []] or (
        [text(old["clusterIP"])] if text(old.get("clusterIP")) else []
    )
    if not new_ips or not old_ips:
        return []  # omitted on update: the stored addresses are kept
    out: Causes = []
    for index, ip in enumerate(old_ips[: len(new_ips)]):
        if ip != new_ips[index]:
            out.append(
                invalid_raw(
                    f"spec.clusterIPs[{index}]", go_string_list(new_ips), "may not change once set"
                )
            )
    return out


# -- Endpoints ---------------------------------------------------------------------------------


def endpoints(subsets: Any) -> Causes:
    out: Causes = []
    for index, subset in items(subsets):
        here = f"subsets[{index}]"
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            out.append(required(here, "must specify `addresses` or `notReadyAddresses`"))
        for key in ("addresses", "notReadyAddresses"):
            for i, address in items(subset.get(key)):
                out += _address(address, f"{here}.{key}[{i}]")
        ports = as_list(subset.get("ports"))
        for i, port in items(ports):
            out += _endpoint_port(port, len(ports) > 1, f"{here}.ports[{i}]")
    return out


def _address(address: dict[str, Any], path: str) -> Causes:
    ip = text(address.get("ip"))
    out = valid_ip(f"{path}.ip", ip)
    hostname = text(address.get("hostname"))
    if hostname:
        out += [invalid(f"{path}.hostname", hostname, m) for m in names.dns1123_label(hostname)]
    node = address.get("nodeName")
    if node is not None:
        out += [
            invalid(f"{path}.nodeName", node, m) for m in names.name_is_dns_subdomain(text(node))
        ]
    return out + non_special_ip(f"{path}.ip", ip)


def _endpoint_port(port: dict[str, Any], need_name: bool, path: str) -> Causes:
    out: Causes = []
    name = text(port.get("name"))
    if need_name and not name:
        out.append(required(f"{path}.name"))
    elif name:
        out += [invalid(f"{path}.name", name, m) for m in names.dns1123_label(name)]
    number = integer(port.get("port"))
    out += [invalid(f"{path}.port", number, m) for m in names.port_number(number)]
    out += protocol(port, path)
    if port.get("appProtocol") is not None:
        value = text(port.get("appProtocol"))
        out += [invalid(f"{path}.appProtocol", value, m) for m in names.qualified_name(value)]
    return out


def endpoint_slice(slice_: dict[str, Any]) -> Causes:
    """ValidateEndpointSlice (the deprecated addressType "IP" is never accepted: kubeling has
    no stored slice that could still carry it)."""
    out: Causes = []
    address_type = slice_.get("addressType")
    if blank(slice_, "addressType"):
        out.append(required("addressType"))
    elif address_type is not None and address_type not in _ADDRESS_TYPES:
        out.append(not_supported("addressType", address_type, _ADDRESS_TYPES))
    eps = as_list(slice_.get("endpoints"))
    if len(eps) > 1000:
        out.append(too_many("endpoints", len(eps), 1000))
    else:
        for index, endpoint in items(eps):
            out += _slice_endpoint(endpoint, text(address_type), f"endpoints[{index}]")
    ports = as_list(slice_.get("ports"))
    if len(ports) > 100:
        return [*out, too_many("ports", len(ports), 100)]
    seen: set[str] = set()
    for index, port in items(ports):
        here = f"ports[{index}]"
        name = text(port.get("name"))
        if name:
            out += [invalid(f"{here}.name", name, m) for m in names.dns1123_label(name)]
        if name in seen:
            out.append(duplicate_raw(f"{here}.name", go_quote(name)))
        seen.add(name)
        out += protocol(port, here)
        if port.get("appProtocol") is not None:
            value = text(port.get("appProtocol"))
            out += [invalid(f"{here}.appProtocol", value, m) for m in names.qualified_name(value)]
    return out


def endpoint_slice_update(new: dict[str, Any], old: dict[str, Any]) -> Causes:
    return immutable("addressType", new.get("addressType"), old.get("addressType"))


def _slice_endpoint(endpoint: dict[str, Any], address_type: str, path: str) -> Causes:
    out: Causes = []
    addresses = endpoint.get("addresses")
    if isinstance(addresses, list) and not addresses:
        out.append(required(f"{path}.addresses", "must contain at least 1 address"))
    elif isinstance(addresses, list) and len(addresses) > 100:
        out.append(too_many(f"{path}.addresses", len(addresses), 100))
    for index, address in enumerate(addresses if isinstance(addresses, list) else []):
        here, value = f"{path}.addresses[{index}]", text(address)
        ip = _parse_ip(value)
        if address_type in ("IPv4", "IPv6"):
            version = 4 if address_type == "IPv4" else 6
            if ip is None or ip.version != version:
                out.append(invalid(here, value, f"must be a valid {address_type} address"))
            out += non_special_ip(here, value)
        elif address_type == "FQDN":
            out += _fqdn(here, value)
    node = endpoint.get("nodeName")
    if node is not None:
        out += [
            invalid(f"{path}.nodeName", node, m) for m in names.name_is_dns_subdomain(text(node))
        ]
    hostname = endpoint.get("hostname")
    if hostname is not None:
        out += [
            invalid(f"{path}.hostname", hostname, m) for m in names.dns1123_label(text(hostname))
        ]
    topology = obj(endpoint.get("deprecatedTopology"))
    if len(topology) > 16:
        out.append(too_many(f"{path}.deprecatedTopology", len(topology), 16))
    for key, value in topology.items():
        out += label_name(f"{path}.deprecatedTopology", key)
        out += [
            invalid(f"{path}.deprecatedTopology", value, m) for m in names.label_value(text(value))
        ]
    return out


def _fqdn(path: str, name: str) -> Causes:
    if not name:
        return [required(path)]
    name = name.removesuffix(".")
    errs = names.dns1123_subdomain(name)
    if errs:
        return [invalid(path, name, ",".join(errs))]
    if len(name.split(".")) < 2:
        return [
            invalid(path, name, "should be a domain with at least two segments separated by dots")
        ]
    for label in name.split("."):
        errs = names.dns1123_label(label)
        if errs:
            return [invalid(path, label, ",".join(errs))]
    return []
