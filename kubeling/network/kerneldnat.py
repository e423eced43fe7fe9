"""The kernel data path: Services' TCP addresses as nftables DNAT rules, as kube-proxy's
nftables mode programs them.

    dnat = KernelDNAT("node-0")           # only where KernelDNAT.available() (root, `nft`)
    await dnat.apply(service_table(...))  # one atomic `nft -f` transaction
    await dnat.remove()

Why: relaying bytes through Python costs a proxy about 145 µs of CPU per new connection on
this machine against nginx's 43 (docs/performance.md); a DNAT rule costs the kernel a
conntrack entry and nothing per byte, so a Service answers about as fast as its pod does.

Contract:

* One table per proxy, `ip kubeling_<pid>_<node>`, with one `nat` chain on the `output`
  hook (every client on this machine is local, as every address is on loopback). `apply`
  replaces the table's whole content in one transaction, so a connection sees either the old
  rules or the new ones; a change that leaves the rules as they were runs no `nft`.
* A route gets a rule when it is TCP, has backends and neither `sessionAffinity: ClientIP`
  nor a `Local` traffic policy (those stay with the userspace proxy, which knows the client
  and the node): `ip daddr <addr> tcp dport <port> dnat to` the one backend, or to
  `numgen inc mod N` over N backends (round robin per new connection). Every other route, and
  UDP (whose conntrack entries would outlive an endpoint change), is left to the Protocol
  proxy, whose listener also answers while a route has no backend (it closes the connection).
* Established connections keep their backend (conntrack); new ones follow the rules. As with
  kube-proxy, a ready endpoint that refuses is not skipped for the next one (the relay does
  that): readiness probes are what keeps traffic off a pod that cannot take it.
* `remove_stale()` deletes the tables of kubeling processes that are gone (a proxy killed
  with SIGKILL leaves its table behind, which would send a Service's traffic to dead pods).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil

from kubeling.network.servicetable import ListenKey, Route, ServiceTable

TABLE_PREFIX = "kubeling_"


class NftError(Exception):
    """`nft` refused a ruleset or could not be run; the message is its output."""


def eligible(key: ListenKey, route: Route) -> bool:
    return (
        key.protocol == "TCP"
        and bool(route.backends)
        and route.affinity_seconds is None
        and not route.local
    )


def render(name: str, table: ServiceTable) -> str:
    """The `nft -f` script that makes table `name` hold exactly `table`'s eligible routes."""
    rules = []
    for key, route in sorted(table.routes.items(), key=lambda item: (item[0].ip, item[0].port)):
        if not eligible(key, route):
            continue
        match = f"ip daddr {key.ip} tcp dport {key.port}"
        backends = route.backends
        if len(backends) == 1:
            target = f"{backends[0].ip}:{backends[0].port}"
        else:
            entries = ", ".join(f"{i} : {b.ip} . {b.port}" for i, b in enumerate(backends))
            target = f"numgen inc mod {len(backends)} map {{ {entries} }}"
        rules.append(f"    {match} dnat ip to {target}")
    body = "\n".join(rules)
    return (
        f"add table ip {name}\n"
        f"delete table ip {name}\n"
        f"table ip {name} {{\n"
        "  chain services {\n"
        "    type nat hook output priority -100; policy accept;\n"
        f"{body}\n"
        "  }\n"
        "}\n"
    )


async def _nft(script: str | None, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "nft",
        *(args or ("-f", "-")),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(script.encode() if script is not None else None)
    if process.returncode != 0:
        raise NftError(err.decode().strip() or f"nft exited with {process.returncode}")
    return out.decode()


class KernelDNAT:
    def __init__(self, node: str) -> None:
        self.name = f"{TABLE_PREFIX}{os.getpid()}_{re.sub(r'[^A-Za-z0-9_]', '_', node)}"
        self._applied = ""  # the last script nft took: an unchanged one is not run again

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and shutil.which("nft") is not None

    async def apply(self, table: ServiceTable) -> None:
        script = render(self.name, table)
        if script != self._applied:
            self._applied = ""
            await _nft(script)
            self._applied = script

    async def remove(self) -> None:
        """Delete the table (there or not)."""
        self._applied = ""
        await _nft(f"add table ip {self.name}\ndelete table ip {self.name}\n")

    @staticmethod
    async def remove_stale() -> list[str]:
        """Delete the tables of kubeling processes that no longer run; returns their names."""
        listing = await _nft(None, "list", "tables")
        removed = []
        for name in re.findall(rf"^table ip ({TABLE_PREFIX}(\d+)_\w+)$", listing, re.M):
            table, pid = name
            if not os.path.exists(f"/proc/{pid}"):
                await _nft(f"delete table ip {table}\n")
                removed.append(table)
        return removed
