"""Ethernet II framing for GeoNetworking (ethertype 0x8947), sans-I/O.

Layer: takes a GN packet, gives an Ethernet frame (14-byte header + GN packet, no FCS); and back.
This is the frame that goes into our UDP datagrams (as Vanetza's UDP link layer does) and into
pcap files (DLT_EN10MB), so that Wireshark follows ethertype 0x8947 to its GeoNetworking dissector.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

ETHERTYPE_GN = 0x8947
HEADER_LEN = 14
BROADCAST_MAC = b"\xff" * 6

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}$")


class EthernetError(ValueError):
    """The bytes are not an Ethernet II frame (too short)."""


@dataclass(frozen=True)
class EthernetFrame:
    destination: bytes
    source: bytes
    ethertype: int
    payload: bytes


def build_frame(
    payload: bytes, source: bytes, destination: bytes = BROADCAST_MAC, ethertype: int = ETHERTYPE_GN
) -> bytes:
    """Ethernet II header + ``payload`` (the GN packet). No padding, no FCS."""
    if len(source) != 6 or len(destination) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    return destination + source + ethertype.to_bytes(2, "big") + payload


def parse_frame(data: bytes) -> EthernetFrame:
    """Split an Ethernet II frame; raises :class:`EthernetError` when shorter than its header."""
    if len(data) < HEADER_LEN:
        raise EthernetError(f"{len(data)} bytes is shorter than the 14-byte Ethernet header")
    return EthernetFrame(bytes(data[0:6]), bytes(data[6:12]), int.from_bytes(data[12:14], "big"), bytes(data[14:]))


def parse_mac(text: str) -> bytes:
    """``02:00:5e:10:00:01`` (or with ``-`` or no separators) -> 6 bytes; ValueError otherwise."""
    if not isinstance(text, str) or not _MAC_RE.match(text.strip()):
        raise ValueError(f"{text!r} is not a MAC address (expected six hex octets, e.g. 02:00:00:00:00:01)")
    return bytes.fromhex(re.sub(r"[:-]", "", text.strip()))


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def random_local_mac() -> bytes:
    """A random locally administered, unicast MAC (first octet x2/x6/xA/xE)."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return bytes(b)
