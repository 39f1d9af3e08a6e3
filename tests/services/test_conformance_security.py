"""TS 103 191-2 security and SSP test purposes (SEC_*, SSP_*) with the real security layer.

The services run behind the daemon's sender guard over a real AT pool; what they send is signed
as the daemon signs it and checked field by field (COER), and what they receive comes signed by a
neighbour's real AT through the real verifier (see ``services/secured.py``).
"""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.security import coer, ssp
from rsu.security.verify import Reason
from rsu.services.errors import ServiceError
from services.secured import OWN_PROVIDER, make_at, peer_signed, secured, signed_header, signer_certificate  # noqa: F401
from services.support import example, new_ivim

assert secured  # the fixture, imported for this module

# service -> (message, what to trigger for one transmission of it)
GEN = {
    "TLM": (
        "spatem",
        lambda rsu: (
            rsu.layer.trigger("rlt", {"payload": example("mapem")}),
            rsu.sent(),
            rsu.layer.trigger("tlm", {"payload": example("spatem")}),
        ),
    ),
    "RLT": ("mapem", lambda rsu: rsu.layer.trigger("rlt", {"payload": example("mapem")})),
    "IVI": ("ivim", lambda rsu: rsu.layer.trigger("ivi", {"payload": new_ivim()})),
}
ALL = ({"spatem": None}, {"mapem": None}, {"ivim": None}, {"srem": None}, {"ssem": None})


def first_signed(rsu, service: str, message: str) -> bytes:
    GEN[service][1](rsu)
    [(tx, data)] = [(t, d) for t, d in rsu.sent() if t.kind.name == message][:1]
    return data


@pytest.mark.parametrize("tp", ["TP_IS_TLM_GEN_SEC_BV_01", "TP_IS_RLT_GEN_SEC_BV_01", "TP_IS_IVI_GEN_SEC_BV_01"])
def test_signing_certificate_carries_the_service_its_aid(tp, secured, codec):
    """Among ATs for every service, the message is signed by the one whose appPermissions hold the
    service's ITS-AID (137 / 138 / 139), and a neighbour's verifier accepts it for that message type."""
    service = tp.split("_")[2]
    message = GEN[service][0]
    kind = catalog.by_name(message)
    rsu = secured(*ALL)
    data = first_signed(rsu, service, message)
    cert = signer_certificate(data)
    assert kind.its_aid in cert.app_permissions and len(cert.app_permissions) == 1
    assert signed_header(data)["psid"] == kind.its_aid
    res = rsu.verify(data, kind)
    assert res.ok, res.detail
    assert (res.psid, res.chain, res.pdu.kind) == (kind.its_aid, "valid", kind)


@pytest.mark.parametrize("tp", ["TP_IS_TLM_GEN_SEC_BV_02", "TP_IS_RLT_GEN_SEC_BV_02", "TP_IS_IVI_GEN_SEC_BV_02"])
def test_generic_security_profile_without_extra_header_fields(tp, secured, codec, clock):
    """EtsiTs103097Data-Signed over unsecuredData = the facilities PDU; headerInfo holds psid and
    generationTime (now) and nothing else; one signer certificate; SHA-256 with an ECDSA P-256 signature."""
    service = tp.split("_")[2]
    message = GEN[service][0]
    kind = catalog.by_name(message)
    rsu = secured(*ALL)
    data = first_signed(rsu, service, message)
    outer = coer.decode("Ieee1609Dot2Data", data)
    assert outer["protocolVersion"] == 3 and outer["content"][0] == "signedData"
    sd = outer["content"][1]
    assert sd["hashId"] == "sha256" and sd["signature"][0] == "ecdsaNistP256Signature"
    assert sd["signer"][0] == "certificate" and len(sd["signer"][1]) == 1
    inner = sd["tbsData"]["payload"]["data"]
    assert inner["protocolVersion"] == 3 and inner["content"][0] == "unsecuredData"
    assert codec.decode(inner["content"][1]).kind is kind
    header = sd["tbsData"]["headerInfo"]
    assert set(header) == {"psid", "generationTime"}
    from rsu import clock as clockmod

    assert header == {"psid": kind.its_aid, "generationTime": clockmod.time64(clock.now())}


@pytest.mark.parametrize("tp", ["TP_IS_TLM_GEN_SSP_BV_01", "TP_IS_RLT_GEN_SSP_BV_01", "TP_IS_IVI_GEN_SSP_BV_01"])
def test_signing_certificate_carries_a_bitmap_ssp(tp, secured):
    """The ITS-AID of the signing AT carries a BitmapSsp of the service's layout: SSP version 1, the
    service's length (IVI: octets 1-3 = this station's ServiceProviderId)."""
    service = tp.split("_")[2]
    message = GEN[service][0]
    kind = catalog.by_name(message)
    rsu = secured(*ALL)
    cert = signer_certificate(first_signed(rsu, service, message))
    [perm] = cert.value["toBeSigned"]["appPermissions"]
    assert perm["psid"] == kind.its_aid and perm["ssp"][0] == "bitmapSsp"
    octets = perm["ssp"][1]
    lay = ssp.layout(kind)
    assert octets[0] == 1 and len(octets) == lay.length
    if lay.provider_octets:
        assert octets[1:4] == OWN_PROVIDER.octets()
    assert ssp.parse(kind, octets).permissions  # it grants something of the service


# ------------------------------------------------------------------------- RLT receive side


def test_TP_IS_RLT_RCV_SEC_BV_01(secured, codec, clock):
    """A MAPEM signed by a neighbour's valid AT (ITS-AID 138, intersections permitted) is accepted and delivered."""
    rsu = secured(*ALL)
    pdu = codec.encode(codec.from_jer(example("mapem"), catalog.MAPEM)[1])
    at = make_at(clock, {"mapem": bytes.fromhex("0180")})
    res, event = rsu.receive(peer_signed(clock, at, "mapem", pdu), catalog.MAPEM)
    assert res.ok and res.chain == "valid"
    assert event["service"] == "rlt" and event["security"]["its_aid"] == 138 and event["security"]["ssp"] == "0180"
    assert event["pdu"]["map"]["intersections"][0]["id"] == {"id": 1201}


def test_TP_IS_RLT_RCV_SEC_BO_02(secured, codec, clock):
    """A MAPEM whose signer's AT lacks the MAPEM ITS-AID (138) is skipped: nothing reaches the applications."""
    rsu = secured(*ALL)
    sub = rsu.layer.subscribe()
    pdu = codec.encode(codec.from_jer(example("mapem"), catalog.MAPEM)[1])
    at = make_at(clock, {"spatem": None, "ivim": None})
    res, event = rsu.receive(peer_signed(clock, at, "mapem", pdu), catalog.MAPEM)
    assert res.reason is Reason.PSID_NOT_PERMITTED and event is None
    assert len(sub) == 0


# ------------------------------------------------------------------------- IVI negation

FOREIGN = {"countryCode": "9400", "providerIdentifier": 12}  # another authority (not this station's FR57)


def negation(codec) -> dict:
    return {
        "ivi": {
            "mandatory": {
                "serviceProviderId": FOREIGN,
                "iviIdentificationNumber": 4,
                "timeStamp": 674287205000,
                "iviStatus": 3,
            }
        }
    }


def test_TP_IS_IVI_GEN_SSP_BV_06(secured, codec):
    """A negation of another provider's IVI is sent when this station's AT permits negation. It carries the
    originator's serviceProviderId (not ours), so the SSP's provider id cannot be required to match it."""
    rsu = secured({"ivim": None})
    rsu.layer.trigger("ivi", {"payload": negation(codec)})
    [(tx, data)] = rsu.sent("ivi")
    m = codec.decode(tx.pdu).value["ivi"]["mandatory"]
    assert m["iviStatus"] == 3 and m["iviIdentificationNumber"] == 4
    assert ssp.ServiceProvider.from_value(m["serviceProviderId"]) != OWN_PROVIDER
    res = rsu.verify(data, catalog.IVIM)
    assert res.ok, res.detail


def test_IVI_negation_refused_without_the_negation_bit_real_security(secured, codec):
    """The same negation is refused (nothing sent) when the AT grants everything but negation."""
    no_negation = bytearray(ssp.full(catalog.IVIM, OWN_PROVIDER))
    no_negation[5] &= ~0x08 & 0xFF
    rsu = secured({"ivim": bytes(no_negation)})
    with pytest.raises(ServiceError) as e:
        rsu.layer.trigger("ivi", {"payload": negation(codec)})
    assert e.value.code == "ssp_not_permitted" and "negation" in e.value.reason
    assert rsu.sent() == [] and rsu.layer.list() == []


def test_TP_IS_IVI_RCV_SSP_BO_07_real_security(secured, codec, clock):
    """Received negation: accepted from a neighbour whose AT has the negation bit (whatever its provider id),
    skipped when the bit is missing."""
    rsu = secured(*ALL)
    _, value = codec.from_jer(
        negation(codec) | {"header": {"protocolVersion": 2, "messageID": 6, "stationID": 77}}, catalog.IVIM
    )
    pdu = codec.encode(value)
    full = ssp.full(catalog.IVIM, OWN_PROVIDER)
    res, event = rsu.receive(peer_signed(clock, make_at(clock, {"ivim": full}), "ivim", pdu), catalog.IVIM)
    assert res.ok, res.detail
    assert event["ivi"]["collection"] == "negation"
    bare = bytearray(full)
    bare[5] &= ~0x08 & 0xFF
    res, event = rsu.receive(peer_signed(clock, make_at(clock, {"ivim": bytes(bare)}), "ivim", pdu), catalog.IVIM)
    assert res.reason is Reason.SSP_VIOLATION and res.missing_permissions == ("negation",) and event is None


# ------------------------------------------------------------------------- sender SSP, real ATs


def _spatem(kind: str) -> dict:
    v = example("spatem")
    ix = v["spat"]["intersections"][0]
    if kind != "prioritized":
        del ix["regional"]
    assist = [{"connectionID": 1, "queueLength": 20}]
    if kind == "assist_ix":
        ix["maneuverAssistList"] = assist
    if kind == "assist_mv":
        ix["states"][0]["maneuverAssistList"] = assist
    return v


def _ivim(change: str | None) -> dict:
    v = new_ivim()
    part = v["ivi"]["optional"][1]["giv"][0]
    if change == "itis":
        part["roadSignCodes"].append({"code": {"itisCodes": 268}})
    if change == "lane":
        part["laneStatus"] = 1
    if change == "text":
        v["ivi"]["optional"].append(
            {
                "tc": [
                    {
                        "relevanceZoneIds": [2],
                        "direction": 0,
                        "data": "",
                        "text": [{"language": "8000", "textContent": "ZONE 50"}],
                    }
                ]
            }
        )
    return v


def _road_segments() -> dict:
    from services.test_rlt import road_segment_mapem

    return road_segment_mapem()


# (TP, service, SSP permissions of the only AT, payload, sent?)
SEND_SSP = [
    ("TP_IS_TLM_GEN_SSP_BV_02", "tlm", {"intersectionState"}, lambda: _spatem("plain"), True),
    ("TP_IS_TLM_GEN_SSP_BO_03", "tlm", set(), lambda: _spatem("plain"), False),
    ("TP_IS_TLM_GEN_SSP_BV_04", "tlm", {"intersectionState", "prioritization"}, lambda: _spatem("prioritized"), True),
    ("TP_IS_TLM_GEN_SSP_BO_05", "tlm", {"intersectionState", "maneuverAssist"}, lambda: _spatem("prioritized"), False),
    ("TP_IS_TLM_GEN_SSP_BV_06", "tlm", {"intersectionState", "maneuverAssist"}, lambda: _spatem("assist_ix"), True),
    ("TP_IS_TLM_GEN_SSP_BV_07", "tlm", {"intersectionState", "maneuverAssist"}, lambda: _spatem("assist_mv"), True),
    ("TP_IS_TLM_GEN_SSP_BO_08", "tlm", {"intersectionState", "prioritization"}, lambda: _spatem("assist_ix"), False),
    ("TP_IS_TLM_GEN_SSP_BO_09", "tlm", {"intersectionState", "prioritization"}, lambda: _spatem("assist_mv"), False),
    ("TP_IS_RLT_GEN_SSP_BV_02", "rlt", {"intersections"}, lambda: example("mapem"), True),
    ("TP_IS_RLT_GEN_SSP_BO_03", "rlt", {"roadSegments"}, lambda: example("mapem"), False),
    ("TP_IS_RLT_GEN_SSP_BV_04", "rlt", {"roadSegments"}, _road_segments, True),
    ("TP_IS_RLT_GEN_SSP_BO_05", "rlt", {"intersections"}, _road_segments, False),
    ("TP_IS_IVI_GEN_SSP_BV_02", "ivi", {"iso14823.regulatory", "itisCodes"}, lambda: _ivim("itis"), True),
    ("TP_IS_IVI_GEN_SSP_BO_02", "ivi", {"iso14823.regulatory", "viennaConvention"}, lambda: _ivim("itis"), False),
    ("TP_IS_IVI_GEN_SSP_BV_03", "ivi", {"iso14823.regulatory"}, lambda: _ivim(None), True),
    ("TP_IS_IVI_GEN_SSP_BO_03", "ivi", {"iso14823.dangerWarning", "iso14823.informative"}, lambda: _ivim(None), False),
    ("TP_IS_IVI_GEN_SSP_BV_04", "ivi", {"iso14823.regulatory", "laneStatus"}, lambda: _ivim("lane"), True),
    ("TP_IS_IVI_GEN_SSP_BO_04", "ivi", {"iso14823.regulatory", "textContainer"}, lambda: _ivim("lane"), False),
    ("TP_IS_IVI_GEN_SSP_BV_05", "ivi", {"iso14823.regulatory", "textContainer"}, lambda: _ivim("text"), True),
    ("TP_IS_IVI_GEN_SSP_BO_05", "ivi", {"iso14823.regulatory", "laneStatus"}, lambda: _ivim("text"), False),
]


MISSING = {
    "TP_IS_TLM_GEN_SSP_BO_03": "intersectionState",
    "TP_IS_TLM_GEN_SSP_BO_05": "prioritization",
    "TP_IS_TLM_GEN_SSP_BO_08": "maneuverAssist",
    "TP_IS_TLM_GEN_SSP_BO_09": "maneuverAssist",
    "TP_IS_RLT_GEN_SSP_BO_03": "intersections",
    "TP_IS_RLT_GEN_SSP_BO_05": "roadSegments",
    "TP_IS_IVI_GEN_SSP_BO_02": "itisCodes",
    "TP_IS_IVI_GEN_SSP_BO_03": "iso14823.regulatory",
    "TP_IS_IVI_GEN_SSP_BO_04": "laneStatus",
    "TP_IS_IVI_GEN_SSP_BO_05": "textContainer",
}


@pytest.mark.parametrize("tp,service,granted,payload,sent", SEND_SSP, ids=[c[0] for c in SEND_SSP])
def test_sender_ssp_with_real_ats(tp, service, granted, payload, sent, secured):
    """The sender SSP test purposes against real ATs: with an AT whose BitmapSsp grants exactly ``granted``,
    permitted content is signed by it and passes a neighbour's SSP check (BV); other content is refused by the
    service before anything is queued, naming the missing permission (BO)."""
    message = {"tlm": "spatem", "rlt": "mapem", "ivi": "ivim"}[service]
    kind = catalog.by_name(message)
    at = {message: ssp.encode(kind, granted, OWN_PROVIDER if ssp.layout(kind).provider_octets else None)}
    rsu = secured(at, {"mapem": None}) if service == "tlm" else secured(at)
    if service == "tlm":
        rsu.layer.trigger("rlt", {"payload": example("mapem")})
        rsu.sent()
    if sent:
        rsu.layer.trigger(service, {"payload": payload()})
        [(tx, data)] = rsu.sent(service)
        assert signer_certificate(data).app_permissions[kind.its_aid] == at[message]
        res = rsu.verify(data, kind)
        assert res.ok, res.detail
    else:
        with pytest.raises(ServiceError) as e:
            rsu.layer.trigger(service, {"payload": payload()})
        assert e.value.code == "ssp_not_permitted" and MISSING[tp] in e.value.reason, e.value.reason
        assert rsu.sent(service) == [] and rsu.layer.list(service) == []
