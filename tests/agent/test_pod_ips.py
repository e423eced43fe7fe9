"""Pod addresses of a node: never one another process on this machine already serves on."""

from __future__ import annotations

import socket

from kubeling.agent.node import PodIPs
from kubeling.util.netstat import bound_addresses


def test_an_address_someone_listens_on_is_passed_over() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.128.251.2", 0))  # the first pod address of this node's range
        squatter.listen()
        assert "127.128.251.2" in bound_addresses()

        ips = PodIPs("node-x", "127.128.251.0/24", skip_busy=True)
        assert ips.allocate("pod-a") == "127.128.251.3"
        assert ips.allocate("pod-b") == "127.128.251.4"

        simulated = PodIPs("node-y", "127.128.251.0/24")  # simulated nodes run no processes
        assert simulated.allocate("pod-a") == "127.128.251.2"


def test_a_bound_udp_socket_counts_too() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.128.252.2", 0))
        ips = PodIPs("node-x", "127.128.252.0/24", skip_busy=True)
        assert ips.allocate("pod-a") == "127.128.252.3"
