"""The SSP table, content -> permissions, the receiver's SSP check and the sender guard, per service."""

from __future__ import annotations

import pytest
import samples
from sechelp import GB31, sign_with

from rsu import catalog
from rsu.security import ssp
from rsu.security.pool import AtPool, SigningRefused
from rsu.security.request import request_for_pdu
from rsu.security.service import SecurityService
from rsu.security.verify import Reason, Verifier


def test_table_matches_the_identifier_table_and_the_issue():
    expected = {
        "spatem": (137, 1, 2),
        "mapem": (138, 1, 2),
        "ivim": (139, 1, 6),
        "srem": (140, 2, 4),
        "ssem": (637, 1, 1),
        "rtcmem": (540802, 1, 1),
    }
    for name, (aid, version, length) in expected.items():
        lay = ssp.layout(name)
        assert lay.kind is catalog.BY_NAME[name] and lay.its_aid == aid
        assert (lay.version, lay.length) == (version, length)
        for p in lay.permissions:  # every bit inside the SSP, no bit used twice
            assert 0 < p.octet < length
        assert len({(p.octet, p.mask) for p in lay.permissions}) == len(lay.permissions)
    assert len(ssp.layout("srem").permissions) == 19  # base + 18 roles


def test_full_ssps():
    assert ssp.full(catalog.SPATEM) == bytes.fromhex("01e0")
    assert ssp.full(catalog.MAPEM) == bytes.fromhex("01c0")
    assert ssp.full(catalog.IVIM, GB31) == bytes.fromhex("015cc01ffff8")
    assert ssp.full(catalog.SREM) == bytes.fromhex("02ffffe0")
    assert ssp.full(catalog.SSEM) == b"\x01" and ssp.full(catalog.RTCMEM) == b"\x01"


def test_service_provider_id_ita2_coding():
    assert ssp.country_code_bits("GB") == 0b0101110011  # the ETSI ATS PIXIT value
    assert GB31.octets() == bytes.fromhex("5cc01f")
    assert ssp.country_code_bits("FR") == 0b1011001010 and ssp.country_code_bits("DE") == 0b1001010000
    for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        assert ssp.country_from_bits(ssp.country_code_bits(a + "Z")) == a + "Z"
    assert ssp.ServiceProvider.from_value(samples.provider()) == GB31
    assert ssp.ServiceProvider.from_octets(GB31.octets()) == GB31
    with pytest.raises(ValueError):
        ssp.ServiceProvider.of("G1", 1)


def test_parse_rejects_wrong_version_length_and_reserved_bits():
    for bad in (b"\x02\xe0", b"\x01\xe0\x00", b"\x01\xe1", b"", None):
        with pytest.raises(ssp.SspFormatError):
            ssp.parse(catalog.SPATEM, bad)
    g = ssp.parse(catalog.IVIM, bytes.fromhex("015cc01f2020"))
    assert g.permissions == {"iso14823.regulatory", "textContainer"} and g.provider == GB31


def test_required_permissions_per_content():
    req = lambda kind, v: set(ssp.required(kind, v).permissions)  # noqa: E731
    assert req(catalog.SPATEM, samples.spatem()) == {"intersectionState"}
    assert req(catalog.SPATEM, samples.spatem(prioritization=True, assist_movement=True)) == {
        "intersectionState",
        "prioritization",
        "maneuverAssist",
    }
    assert req(catalog.MAPEM, samples.mapem(road_segments=True)) == {"intersections", "roadSegments"}
    assert req(catalog.IVIM, samples.ivim(text=True)) == {"iso14823.regulatory", "textContainer"}
    assert req(
        catalog.IVIM,
        samples.ivim(signs=[samples.vienna(), samples.itis()], lane_status=True, rcc=True, layout=True, status=3),
    ) == {"viennaConvention", "itisCodes", "laneStatus", "roadConfigurationContainer", "layoutContainer", "negation"}
    assert ssp.required(catalog.IVIM, samples.ivim()).provider == GB31
    assert req(catalog.SREM, samples.srem()) == {"signalRequest", "role.publicTransport"}
    assert req(catalog.SREM, samples.srem(role="basicVehicle")) == {"signalRequest"}
    assert req(catalog.SREM, samples.srem(requests=False)) == {"signalRequest"}
    assert req(catalog.SSEM, samples.ssem()) == set() and req(catalog.RTCMEM, samples.rtcmem()) == set()


# ---------------------------------------------------------------------- receiver: content vs SSP
# (kind, SSP of the signer, sample value, accepted?, missing permission)
OTHER_PROVIDER = samples.provider(issuer=32)
RECEIVE_CASES = {
    "TP_IS_TLM_RCV_SSP_BV_01": ("spatem", "0180", samples.spatem(), True, None),
    "TP_IS_TLM_RCV_SSP_BO_02": ("spatem", "0160", samples.spatem(), False, "intersectionState"),
    "TP_IS_TLM_RCV_SSP_BV_03": ("spatem", "01c0", samples.spatem(prioritization=True), True, None),
    "TP_IS_TLM_RCV_SSP_BO_04": ("spatem", "01a0", samples.spatem(prioritization=True), False, "prioritization"),
    "TP_IS_TLM_RCV_SSP_BV_05": ("spatem", "01a0", samples.spatem(assist_movement=True), True, None),
    "TP_IS_TLM_RCV_SSP_BO_06": ("spatem", "01c0", samples.spatem(assist_intersection=True), False, "maneuverAssist"),
    "TP_IS_RLT_RCV_SEC_BO_03": ("mapem", "0140", samples.mapem(), False, "intersections"),
    "TP_IS_RLT_RCV_SEC_BO_04": ("mapem", "0180", samples.mapem(road_segments=True), False, "roadSegments"),
    "TP_IS_IVI_RCV_SSP_BV_01": ("ivim", "015cc01f2000", samples.ivim(), True, None),
    "TP_IS_IVI_RCV_SSP_BO_02": (
        "ivim",
        "015cc01fffff"[:10] + "f8",
        samples.ivim(prov=OTHER_PROVIDER),
        False,
        "serviceProviderId",
    ),
    "TP_IS_IVI_RCV_SSP_BO_03": (
        "ivim",
        "015cc01f7ff8",
        samples.ivim(signs=[samples.vienna()]),
        False,
        "viennaConvention",
    ),
    "TP_IS_IVI_RCV_SSP_BO_04": ("ivim", "015cc01fdff8", samples.ivim(), False, "iso14823.regulatory"),
    "TP_IS_IVI_RCV_SSP_BO_05": ("ivim", "015cc01fff78", samples.ivim(lane_status=True), False, "laneStatus"),
    "TP_IS_IVI_RCV_SSP_BO_06": ("ivim", "015cc01fffd8", samples.ivim(text=True), False, "textContainer"),
    "TP_IS_IVI_RCV_SSP_BO_07": ("ivim", "015cc01ffff0", samples.ivim(status=3), False, "negation"),
    "TP_IS_TLCR_RCV_SSP_BV_role": ("srem", "02c00000", samples.srem(), True, None),
    "TP_IS_TLCR_RCV_SSP_BO_role": ("srem", "02800000", samples.srem(), False, "role.publicTransport"),
    "TP_IS_TLCR_RCV_SSP_BO_01": ("srem", "02000000", samples.srem(role="basicVehicle"), False, "signalRequest"),
    "TLCS_RCV_SSP_BV": ("ssem", "01", samples.ssem(), True, None),
    "TLCS_RCV_SSP_BO_version": ("ssem", "02", samples.ssem(), False, "ssp"),
    "GPC_RCV_SSP_BV": ("rtcmem", "01", samples.rtcmem(), True, None),
    "GPC_RCV_SSP_BO_length": ("rtcmem", "0100", samples.rtcmem(), False, "ssp"),
}


@pytest.mark.parametrize("tp", list(RECEIVE_CASES))
def test_receiver_checks_content_against_the_ssp(tp, test_pki, clock, codec):
    name, ssp_hex, value, accepted, missing = RECEIVE_CASES[tp]
    kind = catalog.BY_NAME[name]
    at = test_pki.at(kind, bytes.fromhex(ssp_hex))
    # a malformed SSP is already outside the AA's issue range: check the receiver's own SSP parse without chain
    trust = None if missing == "ssp" else test_pki.trust
    res = Verifier(clock, trust, codec=codec).verify(sign_with(at, codec.encode(value), kind.its_aid), kind)
    if accepted:
        assert res.ok, res.detail
    else:
        assert res.reason is Reason.SSP_VIOLATION, res.detail
        assert missing in res.missing_permissions
        assert res.signature_valid and res.chain == ("not-checked" if trust is None else "valid")


# ---------------------------------------------------------------------- sender guard
SEND_CASES = {
    "TP_IS_TLM_GEN_SSP_BO_03": ("spatem", "0100", samples.spatem(), "intersectionState"),
    "TP_IS_TLM_GEN_SSP_BO_05": ("spatem", "01a0", samples.spatem(prioritization=True), "prioritization"),
    "TP_IS_TLM_GEN_SSP_BO_08": ("spatem", "01c0", samples.spatem(assist_intersection=True), "maneuverAssist"),
    "TP_IS_TLM_GEN_SSP_BO_09": ("spatem", "01c0", samples.spatem(assist_movement=True), "maneuverAssist"),
    "TP_IS_RLT_GEN_SSP_BO_03": ("mapem", "0140", samples.mapem(), "intersections"),
    "TP_IS_RLT_GEN_SSP_BO_05": ("mapem", "0180", samples.mapem(road_segments=True), "roadSegments"),
    "TP_IS_IVI_GEN_SSP_BO_01": ("ivim", "015cc01ffff8", samples.ivim(prov=OTHER_PROVIDER), "serviceProviderId"),
    "TP_IS_IVI_GEN_SSP_BO_03": ("ivim", "015cc01f0020", samples.ivim(text=True), "iso14823.regulatory"),
    "TP_IS_IVI_GEN_SSP_BO_05": ("ivim", "015cc01f2000", samples.ivim(text=True), "textContainer"),
    "TP_IS_TLCR_GEN_SEC_BO_04": ("srem", "02800000", samples.srem(role="emergency"), "role.emergency"),
    "TLCS_GEN_SSP_BO_version": ("ssem", "02", samples.ssem(), "ssp"),
    "GPC_GEN_SSP_BO_version": ("rtcmem", "00", samples.rtcmem(), "ssp"),
}


@pytest.mark.parametrize("tp", list(SEND_CASES))
def test_sender_refuses_content_no_at_permits(tp, test_pki, clock, codec):
    name, ssp_hex, value, missing = SEND_CASES[tp]
    kind = catalog.BY_NAME[name]
    pool = AtPool([test_pki.ticket(test_pki.at(kind, bytes.fromhex(ssp_hex)))], clock)
    svc = SecurityService(pool, Verifier(clock, test_pki.trust, codec=codec), clock)
    pdu = codec.encode(value)
    with pytest.raises(SigningRefused) as e:
        svc.sign(request_for_pdu(kind, pdu))
    assert missing in e.value.missing and missing.lower() in str(e.value).lower()
    assert kind.pdu in str(e.value)


@pytest.mark.parametrize("name", [k.name for k in catalog.MESSAGES])
def test_sender_signs_every_service_with_full_permissions(name, service, verifier, codec):
    kind = catalog.BY_NAME[name]
    value = samples.ALL[name]()
    data = service.sign(request_for_pdu(kind, codec.encode(value)))
    res = verifier.verify(data, kind)
    assert res.ok, res.detail
    assert res.pdu.value == value


def test_sender_refuses_a_service_without_any_at(test_pki, clock, codec):
    pool = AtPool([test_pki.ticket(test_pki.ats["spatem"])], clock)
    svc = SecurityService(pool, Verifier(clock), clock)
    with pytest.raises(SigningRefused, match="ITS-AID 138"):
        svc.sign(request_for_pdu(catalog.MAPEM, codec.encode(samples.mapem())))
