"""GeoNetworking (EN 302 636-4-1 V1.4.1) and BTP-B (EN 302 636-5-1) wire format, sans-I/O.

Layer: builds and parses *GN packets*: basic header | common header | extended header | BTP-B |
payload, and the secured form basic header | Ieee1609Dot2Data, whose signed ``unsecuredData`` is
common header | extended header | BTP-B | facilities PDU (the basic header stays outside the
signature because forwarders change its remaining hop limit). No sockets, no clock: timestamps
are passed in.

Handled packet types: single-hop broadcast (SHB), topologically-scoped broadcast (TSB) and
GeoBroadcast (GBC) with circle, rectangle and ellipse areas. Other header types (beacon, GUC,
GAC, location service) are parsed far enough to name them and are reported as unsupported.
All multi-byte fields are big-endian.
"""

from __future__ import annotations

import enum
import math
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rsu.limits import OnLimit, ignore
from rsu.transports import envelope
from rsu.transports.base import GeoArea
from rsu.transports.drops import DropReason

GN_VERSION = 1

# Basic header next header
BASIC_NH_ANY = 0
BASIC_NH_COMMON = 1
BASIC_NH_SECURED = 2

# Common header next header
COMMON_NH_ANY = 0
COMMON_NH_BTP_A = 1
COMMON_NH_BTP_B = 2
COMMON_NH_IPV6 = 3

BASIC_LEN = 4
COMMON_LEN = 8
LPV_LEN = 24
BTP_LEN = 4

STATION_TYPE_RSU = 15
MAX_LIFETIME_S = 600.0  # itsGnMaxPacketLifetime


class HeaderType(enum.IntEnum):
    """Common header HT|HST octet (HT in the high nibble)."""

    ANY = 0x00
    BEACON = 0x10
    GUC = 0x20
    GAC_CIRCLE = 0x30
    GAC_RECTANGLE = 0x31
    GAC_ELLIPSE = 0x32
    GBC_CIRCLE = 0x40
    GBC_RECTANGLE = 0x41
    GBC_ELLIPSE = 0x42
    SHB = 0x50
    TSB = 0x51
    LS_REQUEST = 0x60
    LS_REPLY = 0x61

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


# extended header length per header type (EN 302 636-4-1 §9.8; Wireshark uses the same sizes)
EXTENDED_LEN = {
    HeaderType.ANY: 0,
    HeaderType.BEACON: 24,
    HeaderType.GUC: 48,
    HeaderType.GAC_CIRCLE: 44,
    HeaderType.GAC_RECTANGLE: 44,
    HeaderType.GAC_ELLIPSE: 44,
    HeaderType.GBC_CIRCLE: 44,
    HeaderType.GBC_RECTANGLE: 44,
    HeaderType.GBC_ELLIPSE: 44,
    HeaderType.SHB: 28,
    HeaderType.TSB: 28,
    HeaderType.LS_REQUEST: 36,
    HeaderType.LS_REPLY: 48,
}
GBC_TYPES = {"circle": HeaderType.GBC_CIRCLE, "rectangle": HeaderType.GBC_RECTANGLE, "ellipse": HeaderType.GBC_ELLIPSE}
AREA_TYPES = {
    HeaderType.GBC_CIRCLE: "circle",
    HeaderType.GBC_RECTANGLE: "rectangle",
    HeaderType.GBC_ELLIPSE: "ellipse",
    HeaderType.GAC_CIRCLE: "circle",
    HeaderType.GAC_RECTANGLE: "rectangle",
    HeaderType.GAC_ELLIPSE: "ellipse",
}
DELIVERED_TYPES = {
    HeaderType.SHB,
    HeaderType.TSB,
    HeaderType.GBC_CIRCLE,
    HeaderType.GBC_RECTANGLE,
    HeaderType.GBC_ELLIPSE,
}


class GnError(ValueError):
    """A received packet cannot be delivered; ``reason`` is the drop reason, ``str()`` the detail."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# ============================================================================ small fields

_LIFETIME_BASES = (0.05, 1.0, 10.0, 100.0)  # base index 0..3


def encode_lifetime(seconds: float) -> int:
    """Packet lifetime (s) -> LT octet: multiplier (6 bits) << 2 | base (2 bits).

    Clamped to 0.05..600 s (itsGnMaxPacketLifetime). A value that a base represents exactly uses
    the coarsest such base (1 s -> 0x05, 60 s -> 0x1A, 600 s -> 0x1B, as Vanetza writes them);
    anything else is rounded to the nearest step of the finest base that can hold it.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"lifetime {seconds!r} is not a finite number of seconds")
    s = min(max(seconds, _LIFETIME_BASES[0]), MAX_LIFETIME_S)
    for index in (3, 2, 1, 0):
        base = _LIFETIME_BASES[index]
        mult = s / base
        if abs(mult - round(mult)) < 1e-9 and 1 <= round(mult) <= 63:
            return (round(mult) << 2) | index
    for index in (0, 1, 2, 3):
        base = _LIFETIME_BASES[index]
        mult = max(1, round(s / base))
        if mult <= 63:
            return (mult << 2) | index
    raise AssertionError("unreachable: 600 s fits base 100 s")  # pragma: no cover


def decode_lifetime(octet: int) -> float:
    """LT octet -> seconds."""
    return (octet >> 2) * _LIFETIME_BASES[octet & 0x03]


@dataclass(frozen=True)
class TrafficClass:
    """Common header TC octet: store-carry-forward (bit 7), channel offload (bit 6), TC ID (bits 5..0)."""

    tc_id: int = 0
    scf: bool = False
    channel_offload: bool = False

    @classmethod
    def from_octet(cls, octet: int) -> TrafficClass:
        return cls(octet & 0x3F, bool(octet & 0x80), bool(octet & 0x40))


def to_tenth_microdegree(degrees: float) -> int:
    return int(round(degrees * 1e7))


@dataclass(frozen=True)
class GnAddress:
    """GN_ADDR (8 bytes): M (manually configured) | station type (5 bits) | 10 reserved bits | MID (MAC)."""

    mid: bytes
    station_type: int = STATION_TYPE_RSU
    manual: bool = True

    def __post_init__(self) -> None:
        if len(self.mid) != 6:
            raise ValueError("mid: the GN address MID is a 6-byte link-layer address")
        if not 0 <= self.station_type <= 31:
            raise ValueError(f"station_type: {self.station_type} is outside 0..31")

    def to_bytes(self) -> bytes:
        head = (0x8000 if self.manual else 0) | (self.station_type << 10)
        return head.to_bytes(2, "big") + self.mid

    @classmethod
    def from_bytes(cls, data: bytes) -> GnAddress:
        head = int.from_bytes(data[0:2], "big")
        return cls(bytes(data[2:8]), (head >> 10) & 0x1F, bool(head & 0x8000))

    @classmethod
    def interned(cls, data: bytes) -> GnAddress:
        """:meth:`from_bytes` of 8 bytes, one shared (frozen) instance per address seen lately."""
        return _interned(_ADDRESSES, data, cls.from_bytes)

    def hex(self) -> str:
        return self.to_bytes().hex()


@dataclass(frozen=True)
class LongPositionVector:
    """LPV (24 bytes): GN_ADDR, TST (ms mod 2^32, TAI), lat/long (1e-7 deg), PAI + speed, heading."""

    address: GnAddress
    timestamp: int  # TAI milliseconds since 2004-01-01 modulo 2^32
    latitude: int  # 1/10 micro-degree
    longitude: int
    pai: bool = True  # position accuracy indicator
    speed: int = 0  # 0.01 m/s, signed 15 bits
    heading: int = 0  # 0.1 degree from north

    def to_bytes(self) -> bytes:
        speed = self.speed & 0x7FFF
        return (
            self.address.to_bytes()
            + (self.timestamp & 0xFFFFFFFF).to_bytes(4, "big")
            + self.latitude.to_bytes(4, "big", signed=True)
            + self.longitude.to_bytes(4, "big", signed=True)
            + ((0x8000 if self.pai else 0) | speed).to_bytes(2, "big")
            + self.heading.to_bytes(2, "big")
        )

    @classmethod
    def from_bytes(cls, data: bytes, offset: int = 0) -> LongPositionVector:
        """The 24 bytes at ``offset``."""
        address, timestamp, latitude, longitude, ps, heading = _LPV.unpack_from(data, offset)
        speed = ps & 0x7FFF
        if speed & 0x4000:
            speed -= 0x8000
        return cls(GnAddress.interned(address), timestamp, latitude, longitude, ps >= 0x8000, speed, heading)

    def describe(self) -> dict[str, Any]:
        return {
            "gn_address": self.address.hex(),
            "manual": self.address.manual,
            "station_type": self.address.station_type,
            "mid": _mac(self.address.mid),
            "timestamp_ms": self.timestamp,
            "latitude": self.latitude / 1e7,
            "longitude": self.longitude / 1e7,
            "pai": self.pai,
            "speed_mps": self.speed / 100,
            "heading_deg": self.heading / 10,
        }


_LPV = struct.Struct(">8sIiiHH")  # GN_ADDR, TST, latitude, longitude, PAI|speed, heading

# Recently seen header parts, parsed once: each is a frozen value of a few bytes that a sender repeats
# in every packet (its address, its destination area, the basic and common headers of a message type).
_T = TypeVar("_T")
_INTERN_LIMIT = 1024  # per table; a full table starts again empty (a flood of distinct ones costs a parse each)
_ADDRESSES: dict[bytes, GnAddress] = {}


def _interned(table: dict[bytes, _T], key: bytes, parse: Callable[[bytes], _T]) -> _T:
    """``parse(key)``, kept in ``table``; what ``parse`` raises is not kept (every such input raises again)."""
    found = table.get(key)
    if found is None:
        found = parse(key)
        if len(table) >= _INTERN_LIMIT:
            table.clear()
        table[key] = found
    return found


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


# ============================================================================ headers


@dataclass(frozen=True)
class BasicHeader:
    version: int = GN_VERSION
    next_header: int = BASIC_NH_SECURED
    lifetime: int = 0x05  # LT octet
    rhl: int = 1

    def to_bytes(self) -> bytes:
        return bytes(((self.version << 4) | self.next_header, 0, self.lifetime, self.rhl))

    @classmethod
    def from_bytes(cls, data: bytes) -> BasicHeader:
        return cls(data[0] >> 4, data[0] & 0x0F, data[2], data[3])

    def describe(self) -> dict[str, Any]:
        nh = {0: "any", 1: "common-header", 2: "secured-packet"}.get(self.next_header, self.next_header)
        return {
            "version": self.version,
            "next_header": nh,
            "lifetime_s": decode_lifetime(self.lifetime),
            "lifetime_octet": f"0x{self.lifetime:02x}",
            "remaining_hop_limit": self.rhl,
        }


@dataclass(frozen=True)
class CommonHeader:
    next_header: int = COMMON_NH_BTP_B
    header_type: int = HeaderType.SHB
    traffic_class: int = 0  # TC octet
    flags: int = 0  # bit 7: mobile
    payload_length: int = 0
    max_hop_limit: int = 1

    def to_bytes(self) -> bytes:
        return (
            bytes((self.next_header << 4, self.header_type, self.traffic_class, self.flags))
            + self.payload_length.to_bytes(2, "big")
            + bytes((self.max_hop_limit, 0))
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CommonHeader:
        return cls(data[0] >> 4, data[1], data[2], data[3], int.from_bytes(data[4:6], "big"), data[6])

    def describe(self) -> dict[str, Any]:
        nh = {0: "any", 1: "btp-a", 2: "btp-b", 3: "ipv6"}.get(self.next_header, self.next_header)
        try:
            ht = HeaderType(self.header_type).label
        except ValueError:
            ht = f"0x{self.header_type:02x}"
        tc = TrafficClass.from_octet(self.traffic_class)
        return {
            "next_header": nh,
            "header_type": ht,
            "traffic_class": {"scf": tc.scf, "channel_offload": tc.channel_offload, "tc_id": tc.tc_id},
            "mobile": bool(self.flags & 0x80),
            "payload_length": self.payload_length,
            "max_hop_limit": self.max_hop_limit,
        }


@dataclass(frozen=True)
class ExtendedHeader:
    """SHB / TSB / GBC extended header (the ones we build and deliver)."""

    header_type: int
    source: LongPositionVector
    sequence_number: int | None = None  # TSB, GBC
    area: GeoArea | None = None  # GBC
    dcc: bytes = b"\x00\x00\x00\x00"  # SHB: reserved / DCC-MCO

    def to_bytes(self) -> bytes:
        ht = self.header_type
        if ht == HeaderType.SHB:
            return self.source.to_bytes() + self.dcc
        sn = (self.sequence_number or 0).to_bytes(2, "big") + b"\x00\x00"
        if ht == HeaderType.TSB:
            return sn + self.source.to_bytes()
        if ht in (HeaderType.GBC_CIRCLE, HeaderType.GBC_RECTANGLE, HeaderType.GBC_ELLIPSE):
            return sn + self.source.to_bytes() + area_bytes(self.area)
        raise ValueError(f"cannot build extended header type 0x{ht:02x}")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sequence_number is not None:
            out["sequence_number"] = self.sequence_number
        out["source_position_vector"] = self.source.describe()
        if self.area is not None:
            a = self.area
            out["area"] = {
                "shape": a.shape,
                "latitude": a.latitude,
                "longitude": a.longitude,
                "distance_a_m": a.a,
                "distance_b_m": a.b,
                "angle_deg": a.angle,
            }
        if self.header_type == HeaderType.SHB:
            out["reserved_dcc"] = self.dcc.hex()
        return out


def area_bytes(area: GeoArea | None) -> bytes:
    """GeoAreaPos lat/long (1e-7 deg) | distance a | distance b (m) | angle (deg) | reserved (12 bytes)."""
    if area is None:
        raise ValueError("a GeoBroadcast needs a destination area")
    a = min(max(int(round(area.a)), 1), 0xFFFF)
    b = 0 if area.shape == "circle" else min(max(int(round(area.b)), 0), 0xFFFF)
    angle = int(round(area.angle)) % 360
    return (
        to_tenth_microdegree(area.latitude).to_bytes(4, "big", signed=True)
        + to_tenth_microdegree(area.longitude).to_bytes(4, "big", signed=True)
        + a.to_bytes(2, "big")
        + b.to_bytes(2, "big")
        + angle.to_bytes(2, "big")
        + b"\x00\x00"
    )


def parse_area(shape: str, data: bytes) -> GeoArea:
    lat = int.from_bytes(data[0:4], "big", signed=True) / 1e7
    lon = int.from_bytes(data[4:8], "big", signed=True) / 1e7
    a = int.from_bytes(data[8:10], "big")
    b = int.from_bytes(data[10:12], "big")
    angle = int.from_bytes(data[12:14], "big")
    try:
        return GeoArea(lat, lon, shape, float(a), float(b), float(angle))
    except ValueError as e:
        raise GnError(DropReason.MALFORMED_GN, f"destination area: {e}") from None


def btp_b(port: int, port_info: int = 0) -> bytes:
    """BTP-B header: destination port | destination port info."""
    return port.to_bytes(2, "big") + port_info.to_bytes(2, "big")


# ============================================================================ packets


@dataclass(frozen=True)
class GnPacket:
    """A parsed GN packet carrying BTP-B. ``payload`` is the BTP payload (the facilities PDU)."""

    basic: BasicHeader  # the packet's first header (of a secured packet too: it is outside the signature)
    common: CommonHeader
    extended: ExtendedHeader
    btp_port: int
    btp_port_info: int
    payload: bytes
    secured: bytes | None = None  # the Ieee1609Dot2Data (after the basic header) of a secured packet
    payload_offset: int = 0  # where ``payload`` starts in the signed unsecuredData (secured packets)

    @property
    def header_type(self) -> HeaderType:
        return HeaderType(self.common.header_type)

    @property
    def is_secured(self) -> bool:
        return self.secured is not None


def build_inner(
    common: CommonHeader, extended: ExtendedHeader, btp_port: int, payload: bytes, btp_port_info: int = 0
) -> bytes:
    """Common header | extended header | BTP-B | payload; ``common.payload_length`` is filled in."""
    pl = BTP_LEN + len(payload)
    if pl > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit the 16-bit GN payload length")
    ch = CommonHeader(
        common.next_header, extended.header_type, common.traffic_class, common.flags, pl, common.max_hop_limit
    )
    return ch.to_bytes() + extended.to_bytes() + btp_b(btp_port, btp_port_info) + payload


def build_packet(basic: BasicHeader, inner_or_secured: bytes) -> bytes:
    """Basic header | (common..payload when NH=common, or the Ieee1609Dot2Data when NH=secured)."""
    return basic.to_bytes() + inner_or_secured


_HEADER_TYPES: dict[int, HeaderType] = {int(t): t for t in HeaderType}
_BASICS: dict[bytes, BasicHeader] = {}
_COMMONS: dict[bytes, CommonHeader] = {}
_AREAS: dict[tuple[str, bytes], GeoArea] = {}


def _parse_extended(ht: HeaderType, data: bytes, offset: int = 0) -> ExtendedHeader:
    """The extended header of type ``ht`` at ``offset`` (its length checked by the caller)."""
    if ht == HeaderType.SHB:
        return ExtendedHeader(ht, LongPositionVector.from_bytes(data, offset), dcc=data[offset + 24 : offset + 28])
    sn = data[offset] << 8 | data[offset + 1]
    source = LongPositionVector.from_bytes(data, offset + 4)
    if ht == HeaderType.TSB:
        return ExtendedHeader(ht, source, sn)
    shape = AREA_TYPES[ht]
    area_key = (shape, data[offset + 28 : offset + 42])
    area = _AREAS.get(area_key)
    if area is None:
        area = parse_area(shape, area_key[1])  # raises for an invalid area: never kept
        if len(_AREAS) >= _INTERN_LIMIT:
            _AREAS.clear()
        _AREAS[area_key] = area
    return ExtendedHeader(ht, source, sn, area)


def parse_inner(data: bytes, *, exact: bool) -> tuple[CommonHeader, ExtendedHeader, int, int, bytes, int]:
    """Parse common header | extended header | BTP-B | payload.

    Returns (common, extended, btp port, btp port info, payload, payload offset). ``exact``: the
    bytes after the GN headers must be exactly the payload length (secured payloads); otherwise
    trailing bytes (link-layer padding) are cut off. Raises :class:`GnError`.
    """
    return _parse_inner(bytes(data), 0, len(data), exact)


def _parse_inner(
    data: bytes, begin: int, end: int, exact: bool
) -> tuple[CommonHeader, ExtendedHeader, int, int, bytes, int]:
    """:func:`parse_inner` of ``data[begin:end]`` (offsets in the result relative to ``begin``)."""
    size = end - begin
    if size < COMMON_LEN:
        raise GnError(DropReason.MALFORMED_GN, f"{size} bytes is too short for the 8-byte common header")
    if data[begin] & 0x0F or data[begin + 7]:
        raise GnError(DropReason.MALFORMED_GN, "common header: reserved bits are not zero")
    common = _interned(_COMMONS, data[begin : begin + COMMON_LEN], CommonHeader.from_bytes)
    ht = _HEADER_TYPES.get(common.header_type)
    if ht is None:
        raise GnError(DropReason.MALFORMED_GN, f"common header: unknown header type 0x{common.header_type:02x}")
    ext_len = EXTENDED_LEN[ht]
    if ht not in DELIVERED_TYPES:
        raise GnError(DropReason.UNSUPPORTED_GN, f"header type {ht.label} is not delivered to the facilities")
    if common.max_hop_limit == 0:
        raise GnError(DropReason.MALFORMED_GN, "common header: maximum hop limit 0")
    start = COMMON_LEN + ext_len
    if size < start:
        raise GnError(
            DropReason.MALFORMED_GN, f"{ht.label} extended header needs {ext_len} bytes, {size - COMMON_LEN} left"
        )
    extended = _parse_extended(ht, data, begin + COMMON_LEN)
    rest = size - start
    pl = common.payload_length
    if rest < pl or (exact and rest != pl):
        raise GnError(DropReason.MALFORMED_GN, f"payload length {pl} but {rest} bytes follow the GN headers")
    if common.next_header == COMMON_NH_BTP_A:
        raise GnError(DropReason.MALFORMED_BTP, "BTP-A (interactive) packet; facilities messages use BTP-B")
    if common.next_header != COMMON_NH_BTP_B:
        raise GnError(DropReason.UNSUPPORTED_GN, f"common header next header {common.next_header} is not BTP-B")
    if pl < BTP_LEN:
        raise GnError(DropReason.MALFORMED_BTP, f"payload length {pl} is shorter than the 4-byte BTP-B header")
    at = begin + start
    port = data[at] << 8 | data[at + 1]
    info = data[at + 2] << 8 | data[at + 3]
    offset = start + BTP_LEN
    return common, extended, port, info, data[at + BTP_LEN : at + pl], offset


def looks_like_basic_header(data: bytes) -> bool:
    """Version 0/1, next header common or secured, reserved octet zero."""
    return len(data) >= BASIC_LEN and data[0] >> 4 in (0, 1) and data[0] & 0x0F in (1, 2) and data[1] == 0


def looks_like_common_header(data: bytes) -> bool:
    """A common header (the start of a secured packet's protected bytes): NH BTP-A/B, known HT."""
    if len(data) < COMMON_LEN or data[0] not in (0x10, 0x20) or data[7] != 0:
        return False
    return data[1] in HeaderType._value2member_map_ and data[1] != 0


def parse_packet(data: bytes) -> GnPacket:
    """Parse a whole GN packet (starting with the basic header). Raises :class:`GnError`.

    For a secured packet the GN headers are read from the *unverified* unsecuredData; the caller
    must hand ``GnPacket.secured`` to the security layer before trusting any of it.
    """
    if len(data) < BASIC_LEN:
        raise GnError(DropReason.MALFORMED_GN, f"{len(data)} bytes is too short for the 4-byte basic header")
    basic = _interned(_BASICS, bytes(data[:BASIC_LEN]), BasicHeader.from_bytes)
    if basic.version != GN_VERSION:
        raise GnError(DropReason.UNSUPPORTED_GN, f"GN protocol version {basic.version} (we speak {GN_VERSION})")
    if data[1] != 0:
        raise GnError(DropReason.MALFORMED_GN, "basic header: reserved octet is not zero")
    if basic.lifetime >> 2 == 0:
        raise GnError(DropReason.MALFORMED_GN, "basic header: lifetime 0")
    body = bytes(data[BASIC_LEN:])
    if basic.next_header == BASIC_NH_COMMON:
        common, ext, port, info, payload, offset = _parse_inner(body, 0, len(body), False)
        packet = GnPacket(basic, common, ext, port, info, payload, None, 0)
    elif basic.next_header == BASIC_NH_SECURED:
        try:
            start, end = envelope.signed_payload_span(body)
        except envelope.EnvelopeError as e:
            if len(body) >= 2 and body[0] == 3 and body[1] == 0x82:
                raise GnError(DropReason.UNSUPPORTED_GN, "encrypted GN packets are not supported") from None
            raise GnError(DropReason.MALFORMED_SECURED_ENVELOPE, f"secured packet: {e}") from None
        common, ext, port, info, payload, offset = _parse_inner(body, start, end, True)
        packet = GnPacket(basic, common, ext, port, info, payload, body, offset)
    else:
        raise GnError(
            DropReason.MALFORMED_GN,
            f"basic header: next header {basic.next_header} (expected 1 common header or 2 secured packet)",
        )
    if basic.rhl > common.max_hop_limit:  # EN 302 636-4-1 common header processing: discard
        raise GnError(
            DropReason.MALFORMED_GN, f"remaining hop limit {basic.rhl} above the maximum {common.max_hop_limit}"
        )
    return packet


# ============================================================================ areas

EARTH_RADIUS_M = 6_371_008.8


def local_xy(area: GeoArea, latitude: float, longitude: float) -> tuple[float, float]:
    """(east, north) metres of a point from the area centre (equirectangular; fine for areas of a few km)."""
    lat0 = math.radians(area.latitude)
    dlon = (longitude - area.longitude + 540.0) % 360.0 - 180.0
    x = math.radians(dlon) * math.cos(lat0) * EARTH_RADIUS_M
    y = math.radians(latitude - area.latitude) * EARTH_RADIUS_M
    return x, y


def area_function(area: GeoArea, latitude: float, longitude: float) -> float:
    """EN 302 931 geometric function F: > 0 inside, 0 on the border, < 0 outside.

    The point is first expressed along the area's long axis (``a``, at ``angle`` clockwise from
    north) and its perpendicular (``b``).
    """
    x, y = local_xy(area, latitude, longitude)
    theta = math.radians(area.angle)
    along = x * math.sin(theta) + y * math.cos(theta)
    across = x * math.cos(theta) - y * math.sin(theta)
    a, b = area.a, area.b
    if area.shape == "circle":
        return 1.0 - (along / a) ** 2 - (across / a) ** 2
    term_a = (along / a) ** 2
    if b > 0:
        term_b = (across / b) ** 2
    else:  # degenerate: a line segment
        term_b = 0.0 if abs(across) < 1e-9 else math.inf
    if area.shape == "rectangle":
        return min(1.0 - term_a, 1.0 - term_b)
    return 1.0 - term_a - term_b


def area_contains(area: GeoArea, latitude: float, longitude: float) -> bool:
    return area_function(area, latitude, longitude) >= 0.0


# ============================================================================ duplicate detection

DUPLICATE_ENTRIES = 4096  # default bound of the duplicate list, per transport


class DuplicateDetector:
    """GN duplicate packet detection for packets with a sequence number (TSB, GBC).

    Remembers (source GN address, SN) for the packet's lifetime, at most ``max_entries`` of them:
    when full, the oldest is forgotten and ``on_limit("gn-duplicate-table")`` is called. Time is
    passed in (POSIX seconds). An RSU end node keeps no location table (it neither forwards nor
    runs the location service), so this list is the only per-source GN state.
    """

    def __init__(self, max_entries: int = DUPLICATE_ENTRIES, on_limit: OnLimit = ignore) -> None:
        self.max_entries = max(1, max_entries)
        self.on_limit = on_limit
        self._seen: OrderedDict[tuple[bytes, int], float] = OrderedDict()

    def is_duplicate(self, source: bytes, sn: int, now: float, lifetime_s: float) -> bool:
        key = (source, sn)
        expiry = self._seen.get(key)
        if expiry is not None and expiry >= now:
            return True
        self._seen.pop(key, None)
        seen = self._seen
        while seen and next(iter(seen.values())) < now:  # forget what has expired at the front
            seen.popitem(last=False)
        seen[key] = now + lifetime_s
        while len(seen) > self.max_entries:
            seen.popitem(last=False)
            self.on_limit("gn-duplicate-table")
        return False

    def __len__(self) -> int:
        return len(self._seen)
