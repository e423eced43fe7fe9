"""Cluster DNS: Services and pods by name, over UDP and TCP (CoreDNS's `kubernetes` plugin).

    dns = ClusterDNS(client, host="127.0.0.1", port=0)
    await dns.start()          # watches Services and EndpointSlices; dns.port is the port

Answers, for the zone `cluster.local` (TTL 5 s, as CoreDNS):

    <svc>.<ns>.svc.cluster.local         A      the ClusterIP; for a headless Service the
                                                ready endpoints' addresses; ExternalName:
                                                a CNAME to `spec.externalName`
    <host>.<svc>.<ns>.svc.cluster.local  A      a headless Service's endpoint with that
                                                hostname (or its dashed address)
    _<port>._<proto>.<svc>.<ns>.svc...   SRV    each named port: the Service's name (or each
                                                endpoint's, headless) and the port
    <a-b-c-d>.<ns>.pod.cluster.local     A      a.b.c.d (no lookup, as CoreDNS `pods insecure`)
    <d.c.b.a>.in-addr.arpa               PTR    the Service that has that ClusterIP

Any other name in the zone is NXDOMAIN; names outside it are REFUSED: kubeling talks only to
loopback addresses and has no upstream resolver to forward to. AAAA and other types for a
name that exists get an empty NOERROR answer. UDP answers longer than 512 bytes are
truncated (TC) so the client retries over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
from collections.abc import Mapping
from typing import Any, cast

from kubeling.api.kinds import REGISTRY
from kubeling.client.informer import Informer
from kubeling.client.rest import Client
from kubeling.network import dnswire, localservice
from kubeling.network.dnswire import ANY, CNAME, PTR, SRV, A, Record

log = logging.getLogger(__name__)

ZONE = "cluster.local"
TTL = 5
UDP_LIMIT = 512


SERVICES = REGISTRY.resource("", "v1", "services")
SLICES = REGISTRY.resource("discovery.k8s.io", "v1", "endpointslices")


class Resolver:
    """Name → records from the informer caches (pure lookups; see the module docstring)."""

    def __init__(self, services: Informer, slices: Informer, zone: str = ZONE) -> None:
        self.services = services
        self.slices = slices
        self.zone = zone

    def _service(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.services.cache.get(f"{namespace}/{name}")

    def _endpoints(self, namespace: str, name: str) -> list[tuple[str, str]]:
        """(address, hostname or dashed address) of a Service's ready endpoints."""
        out = []
        for slice_ in self.slices.cache.list(namespace):
            labels = slice_["metadata"].get("labels") or {}
            if labels.get("kubernetes.io/service-name") != name:
                continue
            for endpoint in slice_.get("endpoints") or []:
                if not (endpoint.get("conditions") or {}).get("ready", True):
                    continue
                for address in endpoint.get("addresses") or []:
                    host = endpoint.get("hostname") or str(address).replace(".", "-")
                    out.append((str(address), host))
        return sorted(set(out))

    def resolve(self, name: str, qtype: int) -> tuple[int, list[Record]]:
        """(rcode, answers) for one question."""
        zone = "." + self.zone
        if name.endswith(".in-addr.arpa"):
            return self._reverse(name, qtype)
        if not (name.endswith(zone) or name == self.zone):
            return dnswire.REFUSED, []
        labels = name[: -len(zone)].split(".") if name != self.zone else []
        if len(labels) >= 2 and labels[-1] == "svc":
            return self._svc(name, labels[:-1], qtype)
        if len(labels) == 3 and labels[-1] == "pod":
            return self._pod(name, labels[0], qtype)
        if labels in ([], ["svc"], ["pod"]):
            return dnswire.NOERROR, []
        return dnswire.NXDOMAIN, []

    def _svc(self, name: str, labels: list[str], qtype: int) -> tuple[int, list[Record]]:
        if len(labels) == 1:  # <ns>.svc.cluster.local
            return dnswire.NOERROR, []
        srv_port = None
        if len(labels) == 4 and labels[0].startswith("_") and labels[1].startswith("_"):
            srv_port = (labels[0][1:], labels[1][1:].upper())
            labels = labels[2:]
        host = None
        if len(labels) == 3:
            host, labels = labels[0], labels[1:]
        if len(labels) != 2:
            return dnswire.NXDOMAIN, []
        svc_name, namespace = labels
        service = self._service(namespace, svc_name)
        if service is None:
            return dnswire.NXDOMAIN, []
        spec = service.get("spec") or {}
        fqdn = f"{svc_name}.{namespace}.svc.{self.zone}"
        headless = spec.get("clusterIP") == "None"
        endpoints = self._endpoints(namespace, svc_name) if headless or host else []
        if srv_port is not None:
            return self._srv(name, spec, fqdn, srv_port, headless, endpoints, qtype)
        if host is not None:
            found = [ip for ip, h in endpoints if h == host]
            if not found:
                return dnswire.NXDOMAIN, []
            return dnswire.NOERROR, [Record.a(name, ip, TTL) for ip in found] if qtype in (
                A,
                ANY,
            ) else []
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").strip(".")
            return dnswire.NOERROR, [Record(name, CNAME, TTL, dnswire.encode_name(target))]
        if qtype not in (A, ANY):
            return dnswire.NOERROR, []
        if headless:
            return dnswire.NOERROR, [Record.a(name, ip, TTL) for ip, _ in endpoints]
        cluster_ip = spec.get("clusterIP")
        return dnswire.NOERROR, [Record.a(name, str(cluster_ip), TTL)] if cluster_ip else []

    def _srv(
        self,
        name: str,
        spec: Mapping[str, Any],
        fqdn: str,
        wanted: tuple[str, str],
        headless: bool,
        endpoints: list[tuple[str, str]],
        qtype: int,
    ) -> tuple[int, list[Record]]:
        port_name, protocol = wanted
        ports = [
            p
            for p in spec.get("ports") or []
            if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol
        ]
        if not ports:
            return dnswire.NXDOMAIN, []
        if qtype not in (SRV, ANY):
            return dnswire.NOERROR, []
        port = ports[0]
        if headless:
            number = self._endpoint_port(fqdn, port_name, protocol) or int(port["port"])
            weight = max(100 // max(len(endpoints), 1), 1)
            records = [
                Record.srv(name, 0, weight, number, f"{h}.{fqdn}", TTL) for _, h in endpoints
            ]
            return dnswire.NOERROR, records
        return dnswire.NOERROR, [Record.srv(name, 0, 100, int(port["port"]), fqdn, TTL)]

    def _endpoint_port(self, fqdn: str, port_name: str, protocol: str) -> int | None:
        svc_name, namespace = fqdn.split(".")[:2]
        for slice_ in self.slices.cache.list(namespace):
            labels = slice_["metadata"].get("labels") or {}
            if labels.get("kubernetes.io/service-name") != svc_name:
                continue
            for p in slice_.get("ports") or []:
                if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol:
                    return int(p["port"])
        return None

    def _pod(self, name: str, dashed: str, qtype: int) -> tuple[int, list[Record]]:
        try:
            ip = str(ipaddress.IPv4Address(dashed.replace("-", ".")))
        except ValueError:
            return dnswire.NXDOMAIN, []
        return dnswire.NOERROR, [Record.a(name, ip, TTL)] if qtype in (A, ANY) else []

    def _reverse(self, name: str, qtype: int) -> tuple[int, list[Record]]:
        parts = name[: -len(".in-addr.arpa")].split(".")
        if len(parts) != 4:
            return dnswire.NXDOMAIN, []
        ip = ".".join(reversed(parts))
        for service in self.services.cache.list():
            if (service.get("spec") or {}).get("clusterIP") == ip:
                meta = service["metadata"]
                target = f"{meta['name']}.{meta.get('namespace')}.svc.{self.zone}"
                return dnswire.NOERROR, [Record.ptr(name, target, TTL)] if qtype in (
                    PTR,
                    ANY,
                ) else []
        return dnswire.NXDOMAIN, []

    def answer(self, data: bytes, max_size: int | None) -> bytes | None:
        try:
            query = dnswire.parse_query(data)
        except dnswire.DnsFormatError:
            return dnswire.error_reply(data, dnswire.FORMERR)
        if query.flags & 0x7800:  # not a standard query
            return dnswire.build_reply(query, [], dnswire.NOTIMP)
        rcode, records = self.resolve(query.name, query.qtype)
        return dnswire.build_reply(
            query, records, rcode, authoritative=rcode != dnswire.REFUSED, max_size=max_size
        )


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.resolver.answer(data, UDP_LIMIT)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class ClusterDNS:
    def __init__(self, client: Client, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, SLICES)
        self.resolver = Resolver(self.services, self.slices)
        self.host = host
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        for informer in (self.services, self.slices):
            informer.start()
        await asyncio.gather(self.services.wait_synced(), self.slices.wait_synced())
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(
            self._serve_tcp, self.host, self.port, reuse_address=True
        )
        if not self.port:
            self.port = int(self._tcp.sockets[0].getsockname()[1])
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self.resolver), local_addr=(self.host, self.port)
        )
        self._udp = cast(asyncio.DatagramTransport, transport)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        for informer in (self.services, self.slices):
            await informer.stop()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = self.resolver.answer(await reader.readexactly(length), None)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


KUBE_DNS_IP = "127.96.0.10"  # Kubernetes' convention: the tenth address of the service range


async def publish_kube_dns(client: Client, host: str, port: int) -> None:
    """The `kube-system/kube-dns` Service (port 53, UDP and TCP) with one endpoint: this
    server. Every agent's service proxy then answers on its ClusterIP, as in Kubernetes."""
    await localservice.publish(
        client,
        "kube-system",
        "kube-dns",
        cluster_ip=KUBE_DNS_IP,
        ports=[
            {"name": "dns", "port": 53, "targetPort": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "targetPort": port, "protocol": "TCP"},
        ],
        host=host,
        labels={"k8s-app": "kube-dns"},
        avoid_busy=True,  # another cluster's kube-dns: pods would get its answers
    )
