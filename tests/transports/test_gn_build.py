"""GnCore.packet builds CH | EH | BTP-B from cached parts: the bytes are those of the GN header objects.

The reference below assembles every packet the way the core did before the parts were cached (the
header dataclasses of rsu.transports.gn, one object per header); over generated parameters (header
type, traffic class, hop limit, lifetime, destination areas, ports, PDU sizes, positions), secured
and not, two cores with the same address, clock and first sequence number give the same bytes, the
signer is asked for the same CH | EH | BTP | PDU with the same PDU offset, and an unsecured packet
parses back to its PDU.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsu import catalog
from rsu.clock import ManualClock
from rsu.oer import length_prefix
from rsu.transports import gn as g
from rsu.transports.base import DisseminationParams, GeoArea
from rsu.transports.config import GnUdpConfig
from rsu.transports.gn_core import GnCore, GnSendError

MAC = bytes.fromhex("02aabbccddee")


def reference_packet(core: GnCore, pdu: bytes, params: DisseminationParams, sign) -> bytes:
    """The packet as the header objects build it (GnCore.packet before its parts were cached)."""
    kind = params.kind
    tc, hops, lifetime = params.traffic_class, params.hop_limit, params.lifetime_s
    if not isinstance(tc, int) or not 0 <= tc <= 255:
        raise GnSendError(g.DropReason.BAD_PARAMS, f"traffic_class {tc!r} is not an octet (0..255)")
    if not isinstance(hops, int) or not 1 <= hops <= 255:
        raise GnSendError(g.DropReason.BAD_PARAMS, f"hop_limit {hops!r} is outside 1..255")
    try:
        lt = g.encode_lifetime(float(lifetime))
    except (TypeError, ValueError) as e:
        raise GnSendError(g.DropReason.BAD_PARAMS, f"lifetime_s: {e}") from None
    if len(pdu) + g.BTP_LEN > 0xFFFF:
        raise GnSendError(g.DropReason.BAD_PARAMS, f"PDU of {len(pdu)} bytes exceeds the GN payload length")
    lpv = core.position_vector()
    if params.destination is not None:
        ext = g.ExtendedHeader(
            g.GBC_TYPES[params.destination.shape], lpv, core.next_sequence_number(), params.destination
        )
    elif hops > 1:
        ext = g.ExtendedHeader(g.HeaderType.TSB, lpv, core.next_sequence_number())
    else:
        ext = g.ExtendedHeader(g.HeaderType.SHB, lpv)
    mhl = 1 if ext.header_type == g.HeaderType.SHB else hops
    common = g.CommonHeader(g.COMMON_NH_BTP_B, ext.header_type, tc, 0, 0, mhl)
    inner = g.build_inner(common, ext, kind.btp_port, pdu)
    if core.config.secured:
        secured = sign(inner, len(inner) - len(pdu))
        return g.build_packet(g.BasicHeader(g.GN_VERSION, g.BASIC_NH_SECURED, lt, mhl), bytes(secured))
    return g.build_packet(g.BasicHeader(g.GN_VERSION, g.BASIC_NH_COMMON, lt, mhl), inner)


def unsecured_envelope(calls: list):
    """A deterministic stand-in for the 1609.2 signer: Ieee1609Dot2Data unsecuredData around the payload,
    recording what it was asked to sign (the signature itself is checked in tests/security)."""

    def sign(inner: bytes, offset: int) -> bytes:
        calls.append((inner, offset))
        return b"\x03\x80" + length_prefix(len(inner)) + inner

    return sign


areas = st.builds(
    GeoArea,
    st.floats(-90, 90),
    st.floats(-180, 180),
    st.sampled_from(["circle", "rectangle", "ellipse"]),
    st.floats(0.5, 65535),
    st.floats(0, 65535),
    st.floats(0, 359.99),
)
params_st = st.builds(
    DisseminationParams,
    st.sampled_from(catalog.MESSAGES),
    st.none() | areas,
    st.integers(0, 255) | st.sampled_from([-1, 256]),
    st.floats(0.0, 700.0) | st.sampled_from([1, 60, 600, 0.05]),
    st.integers(1, 255) | st.sampled_from([0, 300]),
)


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(
    many=st.lists(st.tuples(params_st, st.binary(max_size=300)), min_size=1, max_size=6),
    secured=st.booleans(),
    first_sn=st.integers(0, 0xFFFF),
    position=st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
    accurate=st.booleans(),
    at=st.floats(1.6e9, 2.0e9),
    step=st.floats(0, 5),
)
def test_cached_parts_give_the_reference_bytes(many, secured, first_sn, position, accurate, at, step):
    clock = ManualClock(at)
    config = GnUdpConfig(latitude=position[0], longitude=position[1], secured=secured, position_accurate=accurate)
    new, old = (GnCore(config, clock, mac=MAC, first_sn=first_sn) for _ in range(2))
    for params, pdu in many:  # several packets per core: the cached parts are reused
        got_calls: list = []
        want_calls: list = []
        outcomes = []
        for core, build, calls in ((new, GnCore.packet, got_calls), (old, reference_packet, want_calls)):
            try:
                outcomes.append(("packet", build(core, pdu, params, unsecured_envelope(calls))))
            except GnSendError as e:
                outcomes.append(("error", e.reason, e.detail))
        assert outcomes[0] == outcomes[1]
        assert got_calls == want_calls
        if outcomes[0][0] == "packet" and not secured:
            parsed = g.parse_packet(outcomes[0][1])
            assert parsed.payload == pdu and parsed.btp_port == params.kind.btp_port
        clock.advance(step)


def test_a_moved_position_is_used():
    """The cached position vector follows the core's position."""
    clock = ManualClock(1.7e9)
    core = GnCore(GnUdpConfig(latitude=44.8, longitude=-0.5, secured=False), clock, mac=MAC, first_sn=7)
    twin = GnCore(GnUdpConfig(latitude=44.8, longitude=-0.5, secured=False), clock, mac=MAC, first_sn=7)
    params = DisseminationParams(catalog.SPATEM)
    assert core.packet(b"\x02\x04", params, None) == reference_packet(twin, b"\x02\x04", params, None)
    for c in (core, twin):
        c.latitude, c.longitude = 45.1, 1.25
    moved = core.packet(b"\x02\x04", params, None)
    assert moved == reference_packet(twin, b"\x02\x04", params, None)
    assert g.parse_packet(moved).extended.source.latitude == 451000000


@pytest.mark.parametrize("lifetime", [float("nan"), float("inf"), "x", None])
def test_bad_lifetimes_are_refused_as_before(lifetime):
    clock = ManualClock(1.7e9)
    core = GnCore(GnUdpConfig(latitude=44.8, longitude=-0.5, secured=False), clock, mac=MAC)
    with pytest.raises(GnSendError) as e:
        core.packet(b"\x02\x04", DisseminationParams(catalog.SPATEM, lifetime_s=lifetime), None)
    assert e.value.detail.startswith("lifetime_s: ")
