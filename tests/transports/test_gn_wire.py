"""GeoNetworking + BTP-B wire format (sans-I/O): a real Vanetza packet, our headers byte by byte,
secured packets signed for real, and every transport-level drop reason on received frames."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsu import catalog
from rsu.clock import ManualClock
from rsu.transports import envelope, ethernet, gn
from rsu.transports.base import DisseminationParams, GeoArea, ReceivedFrame
from rsu.transports.config import GnUdpConfig
from rsu.transports.drops import Drop, DropReason
from rsu.transports.gn_core import GnCore, GnSendError

from .conftest import GN_VECTOR, NOW, RSU_LAT, RSU_LON

MAC_A = bytes.fromhex("020000000a01")
MAC_B = bytes.fromhex("020000000b02")


def config(**kw) -> GnUdpConfig:
    cfg = GnUdpConfig(latitude=RSU_LAT, longitude=RSU_LON, **kw)
    cfg.validate()
    return cfg


def core(clock, mac=MAC_A, sign=None, **kw) -> GnCore:
    return GnCore(config(secured=sign is not None, **kw), clock, sign=sign, mac=mac)


def tst_expected(posix: float) -> int:
    # TAI ms since 2004-01-01 mod 2^32, written out: 5 leap seconds since 2017
    return int(round((posix - 1072915200 + 5) * 1000)) % (1 << 32)


# ------------------------------------------------------------------ the real Vanetza packet


def test_vanetza_secured_cam_parses_layer_by_layer():
    data = GN_VECTOR.read_bytes()
    pkt = gn.parse_packet(data)
    assert pkt.basic == gn.BasicHeader(1, gn.BASIC_NH_SECURED, 0x05, 1)
    assert gn.decode_lifetime(pkt.basic.lifetime) == 1.0
    assert pkt.common == gn.CommonHeader(gn.COMMON_NH_BTP_B, gn.HeaderType.SHB, 0x02, 0x80, 50, 1)
    so = pkt.extended.source
    assert so.address == gn.GnAddress(bytes.fromhex("fe384ce0b890"), 5, False)
    assert (so.latitude, so.longitude) == (524625984, 107220080)
    assert so.pai and so.speed == 430 and so.heading == 957
    assert pkt.extended.dcc == bytes.fromhex("0000a000")
    assert (pkt.btp_port, pkt.btp_port_info) == (2001, 0)
    assert pkt.secured == data[4:]
    # the CAM (UPER) starts right after BTP inside the signed unsecuredData
    inner = envelope.signed_payload(pkt.secured)
    assert len(inner) == 86 and inner[pkt.payload_offset :] == pkt.payload
    assert pkt.payload.startswith(bytes.fromhex("02024ce0b890")) and len(pkt.payload) == 46


def test_vanetza_packet_through_the_receive_core():
    clock = ManualClock(NOW)
    data = GN_VECTOR.read_bytes()
    frame = ethernet.build_frame(data, MAC_B)
    # CAM (port 2001) is not a message type of ours: counted as unknown port
    dropped = core(clock).receive_frame(frame)
    assert isinstance(dropped, Drop) and dropped.reason == DropReason.UNKNOWN_BTP_PORT
    got = core(clock, accept_ports=(2001,)).receive_frame(frame, link_source="127.0.0.1:8947")
    assert isinstance(got, ReceivedFrame)
    assert got.secured == data[4:] and got.secured_packet and got.btp_port == 2001
    assert got.source == "1400fe384ce0b890" and got.received_at == NOW
    assert got.payload_offset == 40
    assert envelope.signed_payload(got.secured)[got.payload_offset :].startswith(bytes.fromhex("02024ce0b890"))
    assert got.info["station_type"] == 5 and got.info["header_type"] == "shb"
    assert got.info["ethernet_source"] == "02:00:00:00:0b:02" and got.info["link_source"] == "127.0.0.1:8947"


# ------------------------------------------------------------------ small fields


@pytest.mark.parametrize(
    "seconds, octet",
    [
        (1, 0x05),
        (60, 0x1A),
        (600, 0x1B),
        (0.5, 0x28),
        (0.05, 0x04),
        (2, 0x09),
        (10, 0x06),
        (3.15, 0xFC),  # 63 x 50 ms
        (7.3, 0x1D),  # not representable: nearest step of the finest base that fits (7 s)
        (1000, 0x1B),
        (0.0, 0x04),  # clamped to 600 s / 50 ms
    ],
)
def test_lifetime_encoding(seconds, octet):
    assert gn.encode_lifetime(seconds) == octet


def test_lifetime_decoding_covers_every_base():
    assert [gn.decode_lifetime(o) for o in (0x04, 0x05, 0x06, 0x07, 0xFF)] == [0.05, 1.0, 10.0, 100.0, 6300.0]
    with pytest.raises(ValueError):
        gn.encode_lifetime(math.nan)


def test_gn_address_of_an_rsu():
    a = gn.GnAddress(MAC_A)  # manual, station type 15
    assert a.to_bytes() == bytes.fromhex("bc00") + MAC_A
    assert gn.GnAddress.from_bytes(a.to_bytes()) == a
    assert gn.GnAddress(MAC_A, 5, False).to_bytes()[:2] == bytes.fromhex("1400")


def test_long_position_vector_signed_fields_round_trip():
    lpv = gn.LongPositionVector(gn.GnAddress(MAC_A), 0xFFFFFFFF, -337000000, -1799999999, False, -5, 3599)
    raw = lpv.to_bytes()
    assert len(raw) == 24 and gn.LongPositionVector.from_bytes(raw) == lpv


# ------------------------------------------------------------------ building packets


def test_shb_unsecured_bytes(pdus):
    clock = ManualClock(NOW)
    c = core(clock)
    pdu = pdus["spatem"]
    pkt = c.build_packet(pdu, DisseminationParams(catalog.SPATEM, lifetime_s=1.0, traffic_class=0x02))
    assert pkt[:4] == bytes((0x11, 0x00, 0x05, 0x01))  # v1, NH common, 1 s, RHL 1
    assert pkt[4:12] == bytes((0x20, 0x50, 0x02, 0x00)) + (len(pdu) + 4).to_bytes(2, "big") + bytes((1, 0))
    lpv = pkt[12:36]
    assert lpv[:8] == bytes.fromhex("bc00") + MAC_A
    assert int.from_bytes(lpv[8:12], "big") == tst_expected(NOW)
    assert int.from_bytes(lpv[12:16], "big", signed=True) == round(RSU_LAT * 1e7)
    assert int.from_bytes(lpv[16:20], "big", signed=True) == round(RSU_LON * 1e7)
    assert lpv[20:24] == bytes.fromhex("80000000")  # PAI 1, speed 0, heading 0
    assert pkt[36:40] == b"\x00\x00\x00\x00"  # SHB reserved / DCC-MCO
    assert pkt[40:44] == bytes.fromhex("07d40000")  # BTP-B port 2004, info 0
    assert pkt[44:] == pdu


def test_tsb_when_hop_limit_above_one(pdus):
    c = core(ManualClock(NOW))
    p = DisseminationParams(catalog.SSEM, hop_limit=5)
    first, second = (gn.parse_packet(c.build_packet(pdus["ssem"], p)) for _ in range(2))
    assert first.header_type == gn.HeaderType.TSB
    assert first.basic.rhl == 5 and first.common.max_hop_limit == 5
    assert second.extended.sequence_number == (first.extended.sequence_number + 1) & 0xFFFF  # one counter
    assert first.payload == pdus["ssem"] and first.btp_port == 2008


@pytest.mark.parametrize(
    "area, ht",
    [
        (GeoArea(RSU_LAT, RSU_LON, "circle", 300.0), gn.HeaderType.GBC_CIRCLE),
        (GeoArea(RSU_LAT, RSU_LON, "rectangle", 400.0, 120.0, 30.0), gn.HeaderType.GBC_RECTANGLE),
        (GeoArea(-33.8688, 151.2093, "ellipse", 1000.0, 250.0, 300.0), gn.HeaderType.GBC_ELLIPSE),
    ],
)
def test_geobroadcast_area_round_trip(pdus, area, ht):
    c = core(ManualClock(NOW), check_destination_area=False)
    raw = c.build_packet(
        pdus["mapem"], DisseminationParams(catalog.MAPEM, destination=area, hop_limit=10, lifetime_s=60)
    )
    assert raw[5] == ht and len(raw) == 4 + 8 + 44 + 4 + len(pdus["mapem"])
    pkt = gn.parse_packet(raw)
    assert pkt.extended.area == area
    assert pkt.basic.lifetime == 0x1A and pkt.common.max_hop_limit == 10
    # circle: distance b is written as 0
    if area.shape == "circle":
        assert raw[12 + 28 + 10 : 12 + 28 + 12] == b"\x00\x00"


def test_secured_packet_signs_the_gn_headers_with_the_pdu(pdus, make_sign, signer):
    clock = ManualClock(NOW)
    c = core(clock, sign=make_sign(clock))
    secured_pdu = make_sign(clock)(pdus["ivim"], catalog.IVIM)  # what the services hand over
    raw = c.build_packet(secured_pdu, DisseminationParams(catalog.IVIM, lifetime_s=10))
    assert raw[0] == 0x12  # v1, NH secured
    pkt = gn.parse_packet(raw)
    inner = envelope.signed_payload(pkt.secured)
    assert inner[:8] == gn.CommonHeader(2, gn.HeaderType.SHB, 0, 0, 4 + len(pdus["ivim"]), 1).to_bytes()
    assert inner[pkt.payload_offset :] == pdus["ivim"] and pkt.btp_port == 2006
    # the envelope is a real signature by the AT over exactly those bytes
    from rsu.security.verify import parse_signed

    msg = parse_signed(pkt.secured)
    assert msg.payload == inner and msg.psid == catalog.IVIM.its_aid
    assert msg.signer_cert_bytes == signer.certificate.raw


def test_bare_pdu_is_accepted_for_sending_and_bad_envelopes_are_refused(pdus):
    c = core(ManualClock(NOW))
    wrapped = envelope.unsecured_data(pdus["srem"])
    assert gn.parse_packet(c.build_packet(wrapped, DisseminationParams(catalog.SREM))).payload == pdus["srem"]
    with pytest.raises(GnSendError) as e:
        c.build_packet(bytes.fromhex("0381004003807f00"), DisseminationParams(catalog.SREM))
    assert e.value.reason == DropReason.BAD_PARAMS


@pytest.mark.parametrize(
    "params",
    [
        DisseminationParams(catalog.SPATEM, hop_limit=0),
        DisseminationParams(catalog.SPATEM, traffic_class=256),
        DisseminationParams(catalog.SPATEM, lifetime_s=math.inf),
    ],
)
def test_bad_dissemination_parameters_are_refused(pdus, params):
    with pytest.raises(GnSendError) as e:
        core(ManualClock(NOW)).build_packet(pdus["spatem"], params)
    assert e.value.reason == DropReason.BAD_PARAMS


def test_signing_failure_is_a_named_send_error(pdus):
    def broken(payload, kind):
        raise RuntimeError("no AT for this ITS-AID")

    with pytest.raises(GnSendError) as e:
        core(ManualClock(NOW), sign=broken).build_packet(pdus["spatem"], DisseminationParams(catalog.SPATEM))
    assert e.value.reason == DropReason.SIGN_FAILED and "no AT" in e.value.detail


def test_sequence_number_wraps_at_16_bits():
    c = core(ManualClock(NOW))
    c._sn = 0xFFFF
    assert [c.next_sequence_number() for _ in range(2)] == [0xFFFF, 0]


def test_first_sequence_number_is_random_so_a_restart_with_a_fixed_mac_is_not_a_duplicate(clock):
    """Neighbours keep (source, sequence number) for a packet lifetime: two starts with the same MAC
    must not both begin at 0."""
    firsts = {core(clock).next_sequence_number() for _ in range(8)}
    assert len(firsts) >= 6  # 8 draws from 65,536 values
    assert GnCore(config(secured=False), clock, mac=MAC_A, first_sn=0x1_0005).next_sequence_number() == 5


# ------------------------------------------------------------------ areas


def test_area_function_circle_rectangle_ellipse():
    circle = GeoArea(RSU_LAT, RSU_LON, "circle", 100.0)
    north_90m = RSU_LAT + 90 / 111_195
    north_110m = RSU_LAT + 110 / 111_195
    assert gn.area_contains(circle, north_90m, RSU_LON)
    assert not gn.area_contains(circle, north_110m, RSU_LON)
    # a rectangle 200 m long east-west (angle 90) and 20 m wide
    rect = GeoArea(RSU_LAT, RSU_LON, "rectangle", 200.0, 20.0, 90.0)
    east_150m = RSU_LON + 150 / (111_195 * math.cos(math.radians(RSU_LAT)))
    assert gn.area_contains(rect, RSU_LAT, east_150m)
    assert not gn.area_contains(rect, north_90m, RSU_LON)
    # the same rectangle turned north-south
    rect_ns = GeoArea(RSU_LAT, RSU_LON, "rectangle", 200.0, 20.0, 0.0)
    assert gn.area_contains(rect_ns, north_90m, RSU_LON) and not gn.area_contains(rect_ns, RSU_LAT, east_150m)
    # ellipse 200 x 20 m east-west: the rectangle's corner is outside the ellipse
    ell = GeoArea(RSU_LAT, RSU_LON, "ellipse", 200.0, 20.0, 90.0)
    corner_north = RSU_LAT + 19 / 111_195
    assert gn.area_contains(rect, corner_north, east_150m) and not gn.area_contains(ell, corner_north, east_150m)
    assert gn.area_function(circle, RSU_LAT, RSU_LON) == pytest.approx(1.0)


# ------------------------------------------------------------------ receive: every drop reason


def _valid_frame(pdus, clock, *, sign=None, params=None) -> bytes:
    sender = core(clock, mac=MAC_B, sign=sign)
    return sender.build_frame(pdus["srem"], params or DisseminationParams(catalog.SREM, hop_limit=3))


def _mutate(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


E = 14  # Ethernet header
B = E + 4  # common header start


@pytest.mark.parametrize(
    "name, mutate, reason",
    [
        ("short ethernet", lambda f: f[:13], DropReason.MALFORMED_ETHERNET),
        ("ipv4 ethertype", lambda f: _mutate(f, 12, b"\x08\x00"), DropReason.NOT_GEONETWORKING),
        ("own mac", lambda f: _mutate(f, 6, MAC_A), DropReason.OWN_FRAME),
        ("truncated basic header", lambda f: f[: E + 3], DropReason.MALFORMED_GN),
        ("gn version 0", lambda f: _mutate(f, E, b"\x01"), DropReason.UNSUPPORTED_GN),
        ("basic next header 3", lambda f: _mutate(f, E, b"\x13"), DropReason.MALFORMED_GN),
        ("basic reserved", lambda f: _mutate(f, E + 1, b"\x01"), DropReason.MALFORMED_GN),
        ("lifetime 0", lambda f: _mutate(f, E + 2, b"\x00"), DropReason.MALFORMED_GN),
        ("remaining hop limit above the maximum", lambda f: _mutate(f, E + 3, b"\x04"), DropReason.MALFORMED_GN),
        ("truncated common header", lambda f: f[: B + 5], DropReason.MALFORMED_GN),
        ("unknown header type", lambda f: _mutate(f, B + 1, b"\x77"), DropReason.MALFORMED_GN),
        ("beacon", lambda f: _mutate(f, B + 1, b"\x10"), DropReason.UNSUPPORTED_GN),
        ("location service", lambda f: _mutate(f, B + 1, b"\x60"), DropReason.UNSUPPORTED_GN),
        ("common reserved", lambda f: _mutate(f, B + 7, b"\x01"), DropReason.MALFORMED_GN),
        ("max hop limit 0", lambda f: _mutate(f, B + 6, b"\x00"), DropReason.MALFORMED_GN),
        ("truncated extended header", lambda f: f[: B + 8 + 20], DropReason.MALFORMED_GN),
        ("payload length too long", lambda f: _mutate(f, B + 4, b"\xff\xff"), DropReason.MALFORMED_GN),
        ("btp-a", lambda f: _mutate(f, B, b"\x10"), DropReason.MALFORMED_BTP),
        ("ipv6", lambda f: _mutate(f, B, b"\x30"), DropReason.UNSUPPORTED_GN),
        ("btp shorter than 4", lambda f: _mutate(f, B + 4, b"\x00\x02")[: B + 8 + 28 + 2], DropReason.MALFORMED_BTP),
        ("unknown port", lambda f: _mutate(f, B + 8 + 28, b"\x07\xd1"), DropReason.UNKNOWN_BTP_PORT),
        ("relayed own packet", lambda f: _mutate(f, B + 8 + 4 + 2, MAC_A), DropReason.OWN_FRAME),
    ],
)
def test_malformed_unsecured_frames_are_dropped_with_their_reason(pdus, name, mutate, reason):
    clock = ManualClock(NOW)
    frame = _valid_frame(pdus, clock)
    receiver = core(clock)
    assert isinstance(receiver.receive_frame(frame), ReceivedFrame)  # the unmutated frame is fine
    got = core(clock).receive_frame(mutate(frame))
    assert isinstance(got, Drop), name
    assert got.reason == reason, got.detail


def test_link_layer_padding_after_the_payload_is_ignored(pdus):
    clock = ManualClock(NOW)
    got = core(clock).receive_frame(_valid_frame(pdus, clock) + b"\x00" * 7)
    assert isinstance(got, ReceivedFrame) and got.secured == pdus["srem"]


@pytest.mark.parametrize(
    "name, mutate, reason",
    [
        ("not 1609.2", lambda s: b"\x02" + s[1:], DropReason.MALFORMED_SECURED_ENVELOPE),
        ("unsecured content", lambda s: s[:1] + b"\x80" + s[2:], DropReason.MALFORMED_SECURED_ENVELOPE),
        ("encrypted", lambda s: s[:1] + b"\x82" + s[2:], DropReason.UNSUPPORTED_GN),
        ("external hash", lambda s: s[:3] + b"\x20" + s[4:], DropReason.MALFORMED_SECURED_ENVELOPE),
        ("truncated envelope", lambda s: s[:20], DropReason.MALFORMED_SECURED_ENVELOPE),
        ("inner length off by one", lambda s: s[:6] + bytes((s[6] - 1,)) + s[7:], DropReason.MALFORMED_GN),
    ],
)
def test_malformed_secured_packets_are_dropped(pdus, make_sign, name, mutate, reason):
    clock = ManualClock(NOW)
    frame = _valid_frame(pdus, clock, sign=make_sign(clock))
    assert frame[E] == 0x12
    ok = core(clock).receive_frame(frame)
    assert isinstance(ok, ReceivedFrame) and ok.secured_packet
    got = core(clock).receive_frame(frame[: E + 4] + mutate(frame[E + 4 :]))
    assert isinstance(got, Drop) and got.reason == reason, (name, got)


def test_duplicate_detection_lasts_for_the_packet_lifetime(pdus):
    clock = ManualClock(NOW)
    frame = _valid_frame(pdus, clock, params=DisseminationParams(catalog.SREM, hop_limit=3, lifetime_s=2))
    rx = core(clock)
    assert isinstance(rx.receive_frame(frame), ReceivedFrame)
    dup = rx.receive_frame(frame)
    assert isinstance(dup, Drop) and dup.reason == DropReason.DUPLICATE
    clock.advance(2.5)
    assert isinstance(rx.receive_frame(frame), ReceivedFrame)
    # single-hop broadcasts carry no sequence number: no duplicate detection
    shb = _valid_frame(pdus, clock, params=DisseminationParams(catalog.SREM))
    assert all(isinstance(rx.receive_frame(shb), ReceivedFrame) for _ in range(2))


def test_secured_duplicates_are_left_for_after_verification(pdus, make_sign):
    """A secured TSB/GBC packet is verified before duplicate detection (EN 302 636-4-1), so a forged
    copy with a guessed sequence number cannot suppress the genuine packet: the transport passes
    both up with the same duplicate_key, and the receiver checks it once a copy has verified."""
    clock = ManualClock(NOW)
    params = DisseminationParams(catalog.SREM, hop_limit=3, lifetime_s=2)
    frame = _valid_frame(pdus, clock, params=params, sign=make_sign(clock))
    rx = core(clock)
    first, second = rx.receive_frame(frame), rx.receive_frame(frame)
    assert isinstance(first, ReceivedFrame) and isinstance(second, ReceivedFrame)
    assert first.duplicate_key is not None and first.duplicate_key == second.duplicate_key
    source, sn, lifetime = first.duplicate_key
    assert len(source) == 8 and lifetime == 2.0
    unsecured = _valid_frame(pdus, clock, params=params)
    assert rx.receive_frame(unsecured).duplicate_key is None  # checked here, at the GN layer


def test_geobroadcast_outside_our_area_is_dropped_unless_configured(pdus):
    clock = ManualClock(NOW)
    far = GeoArea(RSU_LAT + 0.05, RSU_LON, "circle", 500.0)  # ~5.5 km north
    frame = _valid_frame(pdus, clock, params=DisseminationParams(catalog.SREM, destination=far))
    got = core(clock).receive_frame(frame)
    assert isinstance(got, Drop) and got.reason == DropReason.OUTSIDE_AREA
    accepted = core(clock, check_destination_area=False).receive_frame(frame)
    assert isinstance(accepted, ReceivedFrame)
    assert accepted.info["destination_area"]["shape"] == "circle"
    assert accepted.info["destination_area"]["a"] == 500.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_received_bytes_make_the_core_raise(pdus, make_sign, data):
    clock = ManualClock(NOW)
    secured = data.draw(st.booleans())
    frame = bytearray(_valid_frame(pdus, clock, sign=make_sign(clock) if secured else None))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    got = core(clock).receive_frame(bytes(frame[:cut]))
    assert isinstance(got, (ReceivedFrame, Drop))
    if isinstance(got, Drop):
        assert isinstance(got.reason, DropReason)


def test_duplicate_list_is_bounded_and_counts_when_full():
    from rsu.transports.gn import DuplicateDetector

    hits = []
    det = DuplicateDetector(max_entries=3, on_limit=hits.append)
    src = bytes(8)
    for sn in range(5):
        assert not det.is_duplicate(src, sn, NOW, 60.0)
    assert len(det) == 3 and hits == ["gn-duplicate-table"] * 2
    assert det.is_duplicate(src, 4, NOW + 1, 60.0) and not det.is_duplicate(src, 0, NOW + 1, 60.0)  # 0 forgotten
    assert not det.is_duplicate(src, 9, NOW + 120, 60.0) and len(det) == 1  # expired entries leave first
