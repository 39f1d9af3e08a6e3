"""Addresses for tests that open sockets: free TCP/UDP ports on 127.0.0.1 and GN multicast groups.

Every daemon, transport and receiver a test starts takes its ports and its multicast group from
here, so that no test depends on the embedded default (239.118.122.97:8947, API 8301) being quiet
and two test runs on one host (two clones, CI jobs) do not hear each other.

Groups are in 239.0.0.0/8, the administratively scoped block (RFC 2365), which never leaves the
site. Each test run (each process) starts at a random point of that block and hands out
consecutive addresses, so the groups of one run are all different and two runs are far apart.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket

from rsu.transports.config import GnUdpConfig

EMBEDDED_DEFAULT_GROUP = GnUdpConfig.group  # never handed out

_BLOCK = int(ipaddress.IPv4Address("239.0.0.0"))
_NEXT = itertools.count(int.from_bytes(os.urandom(3), "big"))  # a random start per test run


def random_group() -> str:
    """A multicast group in 239.0.0.0/8 no other test of this run uses."""
    while True:
        host = next(_NEXT) % (1 << 24)
        group = str(ipaddress.IPv4Address(_BLOCK + host))
        if host & 0xFF not in (0, 255) and group != EMBEDDED_DEFAULT_GROUP:
            return group


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_and_port() -> tuple[str, int]:
    """A GN-UDP network of its own: a fresh group and a free UDP port."""
    return random_group(), free_udp_port()
