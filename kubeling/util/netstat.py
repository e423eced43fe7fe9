"""Which loopback addresses other programs on this machine already use.

Two kubeling clusters on one machine share DESIGN.md § 6's address ranges. Where kubeling
picks an address itself (a pod IP, a load-balancer address, the cluster DNS's ClusterIP), it
passes over one that some process already listens on, so that a second cluster neither fails
with "address already in use" nor silently shares a listener (the service proxy binds with
SO_REUSEPORT) with the first.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path


def bound_addresses() -> set[str]:
    """IPv4 addresses with a listening TCP socket or a bound UDP socket on this machine, from
    /proc/net/{tcp,udp} (empty where those cannot be read)."""
    found: set[str] = set()
    for table, wanted_state in (("/proc/net/tcp", "0A"), ("/proc/net/udp", None)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or (wanted_state and fields[3] != wanted_state):
                continue
            address = fields[1].split(":")[0]
            found.add(str(ipaddress.IPv4Address(int(address, 16).to_bytes(4, "little"))))
    return found
