"""parse_packet (struct reads, interned header parts, offsets instead of slices) against the reference
it replaced (the header-by-header parse, kept here): the same packet or the same GnError (reason and
detail) for generated packets, plain and secured, whole and damaged."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rsu.transports import envelope, gn
from rsu.transports.base import GeoArea
from rsu.transports.drops import DropReason

from .test_gn_build import areas

# ------------------------------------------------------------------ the reference (rsu before the fast parse)


def ref_lpv(data: bytes) -> gn.LongPositionVector:
    ps = int.from_bytes(data[20:22], "big")
    speed = ps & 0x7FFF
    if speed & 0x4000:
        speed -= 0x8000
    head = int.from_bytes(data[0:2], "big")
    address = gn.GnAddress(bytes(data[2:8]), (head >> 10) & 0x1F, bool(head & 0x8000))
    return gn.LongPositionVector(
        address,
        int.from_bytes(data[8:12], "big"),
        int.from_bytes(data[12:16], "big", signed=True),
        int.from_bytes(data[16:20], "big", signed=True),
        bool(ps & 0x8000),
        speed,
        int.from_bytes(data[22:24], "big"),
    )


def ref_extended(ht: gn.HeaderType, data: bytes) -> gn.ExtendedHeader:
    if ht == gn.HeaderType.SHB:
        return gn.ExtendedHeader(ht, ref_lpv(data[0:24]), dcc=bytes(data[24:28]))
    sn = int.from_bytes(data[0:2], "big")
    source = ref_lpv(data[4:28])
    if ht == gn.HeaderType.TSB:
        return gn.ExtendedHeader(ht, source, sn)
    return gn.ExtendedHeader(ht, source, sn, gn.parse_area(gn.AREA_TYPES[ht], data[28:42]))


def ref_inner(data: bytes, *, exact: bool) -> tuple:
    E, M, U, B = gn.GnError, DropReason.MALFORMED_GN, DropReason.UNSUPPORTED_GN, DropReason.MALFORMED_BTP
    if len(data) < gn.COMMON_LEN:
        raise E(M, f"{len(data)} bytes is too short for the 8-byte common header")
    if data[0] & 0x0F or data[7]:
        raise E(M, "common header: reserved bits are not zero")
    common = gn.CommonHeader(data[0] >> 4, data[1], data[2], data[3], int.from_bytes(data[4:6], "big"), data[6])
    try:
        ht = gn.HeaderType(common.header_type)
    except ValueError:
        raise E(M, f"common header: unknown header type 0x{common.header_type:02x}") from None
    ext_len = gn.EXTENDED_LEN[ht]
    if ht not in gn.DELIVERED_TYPES:
        raise E(U, f"header type {ht.label} is not delivered to the facilities")
    if common.max_hop_limit == 0:
        raise E(M, "common header: maximum hop limit 0")
    start = gn.COMMON_LEN + ext_len
    if len(data) < start:
        raise E(M, f"{ht.label} extended header needs {ext_len} bytes, {len(data) - gn.COMMON_LEN} left")
    extended = ref_extended(ht, data[gn.COMMON_LEN : start])
    rest = len(data) - start
    pl = common.payload_length
    if rest < pl or (exact and rest != pl):
        raise E(M, f"payload length {pl} but {rest} bytes follow the GN headers")
    if common.next_header == gn.COMMON_NH_BTP_A:
        raise E(B, "BTP-A (interactive) packet; facilities messages use BTP-B")
    if common.next_header != gn.COMMON_NH_BTP_B:
        raise E(U, f"common header next header {common.next_header} is not BTP-B")
    if pl < gn.BTP_LEN:
        raise E(B, f"payload length {pl} is shorter than the 4-byte BTP-B header")
    port = int.from_bytes(data[start : start + 2], "big")
    info = int.from_bytes(data[start + 2 : start + 4], "big")
    offset = start + gn.BTP_LEN
    return common, extended, port, info, bytes(data[offset : start + pl]), offset


def ref_packet(data: bytes) -> gn.GnPacket:
    E, M = gn.GnError, DropReason.MALFORMED_GN
    if len(data) < gn.BASIC_LEN:
        raise E(M, f"{len(data)} bytes is too short for the 4-byte basic header")
    basic = gn.BasicHeader(data[0] >> 4, data[0] & 0x0F, data[2], data[3])
    if basic.version != gn.GN_VERSION:
        raise E(DropReason.UNSUPPORTED_GN, f"GN protocol version {basic.version} (we speak {gn.GN_VERSION})")
    if data[1] != 0:
        raise E(M, "basic header: reserved octet is not zero")
    if basic.lifetime >> 2 == 0:
        raise E(M, "basic header: lifetime 0")
    body = bytes(data[gn.BASIC_LEN :])
    if basic.next_header == gn.BASIC_NH_COMMON:
        common, ext, port, info, payload, offset = ref_inner(body, exact=False)
        packet = gn.GnPacket(basic, common, ext, port, info, payload, None, 0)
    elif basic.next_header == gn.BASIC_NH_SECURED:
        try:
            start, end = envelope.signed_payload_span(body)
        except envelope.EnvelopeError as e:
            if len(body) >= 2 and body[0] == 3 and body[1] == 0x82:
                raise E(DropReason.UNSUPPORTED_GN, "encrypted GN packets are not supported") from None
            raise E(DropReason.MALFORMED_SECURED_ENVELOPE, f"secured packet: {e}") from None
        common, ext, port, info, payload, offset = ref_inner(body[start:end], exact=True)
        packet = gn.GnPacket(basic, common, ext, port, info, payload, body, offset)
    else:
        raise E(M, f"basic header: next header {basic.next_header} (expected 1 common header or 2 secured packet)")
    if basic.rhl > common.max_hop_limit:
        raise E(M, f"remaining hop limit {basic.rhl} above the maximum {common.max_hop_limit}")
    return packet


# ------------------------------------------------------------------ generated packets


def outcome(parse, data: bytes) -> tuple:
    try:
        return ("packet", parse(data))
    except gn.GnError as e:
        return ("error", e.reason, e.detail)


def same(data: bytes) -> tuple:
    fast = outcome(gn.parse_packet, data)
    assert fast == outcome(ref_packet, data)
    assert outcome(gn.parse_packet, data) == fast  # again: now with the header parts interned
    return fast


@st.composite
def packets(draw) -> bytes:
    lpv = gn.LongPositionVector(
        gn.GnAddress(draw(st.binary(min_size=6, max_size=6)), draw(st.integers(0, 31)), draw(st.booleans())),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(-900_000_000, 900_000_000)),
        draw(st.integers(-1_800_000_000, 1_800_000_000)),
        draw(st.booleans()),
        draw(st.integers(-16384, 16383)),
        draw(st.integers(0, 3600)),
    )
    ht = draw(st.sampled_from([gn.HeaderType.SHB, gn.HeaderType.TSB, *gn.GBC_TYPES.values()]))
    area = draw(areas) if ht in gn.GBC_TYPES.values() else None
    if area is not None:
        area = GeoArea(area.latitude, area.longitude, gn.AREA_TYPES[ht], area.a, area.b, area.angle)
    ext = gn.ExtendedHeader(ht, lpv, draw(st.integers(0, 0xFFFF)), area, draw(st.binary(min_size=4, max_size=4)))
    common = gn.CommonHeader(gn.COMMON_NH_BTP_B, ht, draw(st.integers(0, 255)), 0, 0, draw(st.integers(1, 10)))
    payload = draw(st.binary(max_size=40))
    inner = gn.build_inner(common, ext, draw(st.integers(0, 0xFFFF)), payload, draw(st.integers(0, 0xFFFF)))
    basic = gn.BasicHeader(1, 0, draw(st.integers(0, 255)), draw(st.integers(0, 12)))
    if draw(st.booleans()):
        body = b"\x03\x81\x00\x40\x03\x80" + envelope.length_prefix(len(inner)) + inner + bytes(66)
        return gn.build_packet(gn.BasicHeader(1, gn.BASIC_NH_SECURED, basic.lifetime, basic.rhl), body)
    return gn.build_packet(
        gn.BasicHeader(1, gn.BASIC_NH_COMMON, basic.lifetime, basic.rhl), inner + draw(st.binary(max_size=3))
    )


@settings(max_examples=300, deadline=None)
@given(packets())
def test_generated_packets_parse_as_the_reference_did(data):
    same(data)


@settings(max_examples=600, deadline=None)
@given(packets(), st.data())
def test_damaged_packets_give_the_reference_packet_or_error(data, draw):
    damaged = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        i = draw.draw(st.integers(0, len(damaged) - 1))
        damaged[i] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(damaged)))
    same(bytes(damaged))
    same(bytes(damaged[:cut]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_give_the_reference_error(data):
    same(data)


def test_every_single_byte_change_of_a_secured_gbc_gives_the_reference_outcome():
    lpv = gn.LongPositionVector(gn.GnAddress(bytes(range(6))), 123456, 448376000, -5794000, True, -12, 900)
    area = GeoArea(44.837592, -0.579431, "circle", 300)
    ext = gn.ExtendedHeader(gn.HeaderType.GBC_CIRCLE, lpv, 7, area)
    inner = gn.build_inner(gn.CommonHeader(max_hop_limit=3), ext, 2007, b"\x02\x09payload")
    body = b"\x03\x81\x00\x40\x03\x80" + envelope.length_prefix(len(inner)) + inner + bytes(66)
    frame = gn.build_packet(gn.BasicHeader(rhl=2), body)
    assert same(frame)[0] == "packet"
    outcomes = set()
    for i in range(len(frame) - 66):
        for value in (0x00, 0x01, 0x0F, 0x10, 0x42, 0x80, 0xFF):
            kind = same(frame[:i] + bytes((value,)) + frame[i + 1 :])
            outcomes.add(kind[1] if kind[0] == "error" else "packet")
    # the damage reaches every kind of drop the parse names, so each error path was compared
    assert {DropReason.MALFORMED_GN, DropReason.UNSUPPORTED_GN, DropReason.MALFORMED_BTP, "packet"} <= outcomes
    assert DropReason.MALFORMED_SECURED_ENVELOPE in outcomes
