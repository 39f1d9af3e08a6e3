"""IVI test purposes not covered in test_ivi.py: location, general/text/road-configuration containers, reception.

What is sent is checked as a neighbour receives it: signed by the real security layer (an AT with
this station's provider id FR57 and every IVI permission), verified, decoded.
"""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.services.errors import ServiceError
from services.secured import make_at, peer_signed, secured  # noqa: F401
from services.support import example, new_ivim

assert secured  # the fixture, imported for this module


@pytest.fixture
def rsu(secured):
    return secured({"ivim": None})


def on_air(rsu, codec) -> dict:
    [(tx, data)] = rsu.sent("ivi")
    res = rsu.verify(data, catalog.IVIM)
    assert res.ok, res.detail
    return codec.to_jer(catalog.IVIM, res.pdu.value)


def containers(ivim: dict, alt: str) -> list:
    return [c[alt] for c in ivim["ivi"]["optional"] if alt in c]


def glc_parts(v: dict) -> list:
    return containers(v, "glc")[0]["parts"]


def gic(v: dict) -> dict:
    return containers(v, "giv")[0][0]


def text_part(**kw) -> dict:
    return dict(
        {
            "relevanceZoneIds": [2],
            "direction": 0,
            "data": "",
            "text": [{"language": "3a00", "textContent": "Zone 30 ecole"}],
        },
        **kw,
    )  # 10 language bits


def rcc_part(**kw) -> dict:
    return dict(
        {
            "relevanceZoneIds": [2],
            "roadType": "urban-NoStructuralSeparationToOppositeLanes",
            "laneConfiguration": [
                {"laneNumber": 1, "direction": 0, "laneType": 0, "laneStatus": 0},
                {"laneNumber": 2, "direction": 1, "laneType": 0, "laneStatus": 1},
            ],
        },
        **kw,
    )


def test_TP_IS_IVI_GEN_LOC_BV_04(rsu, codec):
    """A zone that applies to specific lanes carries its laneNumber (innermost driving lane here), and the
    general IVI part names the lane it applies to; a whole-carriageway zone carries none."""
    v = new_ivim()
    glc_parts(v)[1]["laneNumber"] = 1
    gic(v)["applicableLanes"] = [1]
    rsu.layer.trigger("ivi", {"payload": v})
    sent = on_air(rsu, codec)
    parts = glc_parts(sent)
    assert parts[1]["laneNumber"] == 1 and "laneNumber" not in parts[0]
    assert gic(sent)["applicableLanes"] == [1]


def test_TP_IS_IVI_GEN_LOC_BV_06(rsu, codec):
    """Zones use the optional zone-definition components the location container allows: a segment with lane
    width, a polygonal area, a computed segment shifted to another lane, zone heading and extension."""
    v = new_ivim()
    parts = glc_parts(v)
    line = parts[0]["zone"]["segment"]["line"]
    parts.append({"zoneId": 3, "zoneExtension": 20, "zone": {"area": line}})
    parts.append(
        {
            "zoneId": 4,
            "zone": {"computedSegment": {"zoneId": 1, "laneNumber": 2, "laneWidth": 350, "offsetDistance": 350}},
        }
    )
    rsu.layer.trigger("ivi", {"payload": v})
    sent = glc_parts(on_air(rsu, codec))
    assert [list(p["zone"])[0] for p in sent] == ["segment", "segment", "area", "computedSegment"]
    assert sent[0]["zoneHeading"] == 2700 and sent[0]["zone"]["segment"]["laneWidth"] == 650
    assert sent[2]["zoneExtension"] == 20 and sent[3]["zone"]["computedSegment"]["laneNumber"] == 2


@pytest.mark.parametrize("tp", ["TP_IS_IVI_GEN_GENAPP_BV_03", "TP_IS_IVI_GEN_TEXT_BV_02"])
def test_direction_of_relevance_is_sent(tp, rsu, codec):
    """The direction of relevance of each general IVI part (BV_03) and text part (TEXT_BV_02) is on the air as
    the application gave it (rsu neither drops nor invents it)."""
    v = new_ivim()
    v["ivi"]["optional"].append({"tc": [text_part(direction=2)]})
    rsu.layer.trigger("ivi", {"payload": v})
    sent = on_air(rsu, codec)
    if tp.endswith("GENAPP_BV_03"):
        assert gic(sent)["direction"] == 0  # sameDirection
    else:
        assert containers(sent, "tc")[0][0]["direction"] == 2  # bothDirections


def test_TP_IS_IVI_GEN_GENAPP_BV_04(rsu, codec):
    """roadSignCodes of a general IVI part has at least one element: an empty list is refused with its path
    and nothing is sent; the example's code is on the air."""
    v = new_ivim()
    gic(v)["roadSignCodes"] = []
    with pytest.raises(ServiceError) as e:
        rsu.layer.trigger("ivi", {"payload": v})
    assert e.value.path.endswith("giv[0].roadSignCodes") and rsu.sent() == []
    rsu.layer.trigger("ivi", {"payload": new_ivim()})
    [code] = gic(on_air(rsu, codec))["roadSignCodes"]
    assert code["code"]["iso14823"]["pictogramCode"]["serviceCategoryCode"] == {"trafficSignPictogram": "regulatory"}


def test_TP_IS_IVI_GEN_TEXT_BV_03(rsu, codec):
    """A text container carries its text lines (language + UTF-8 content) and its data field as given."""
    v = new_ivim()
    v["ivi"]["optional"].append({"tc": [text_part(data="0102")]})
    rsu.layer.trigger("ivi", {"payload": v})
    [part] = containers(on_air(rsu, codec), "tc")[0]
    assert part["text"] == [{"language": "3a00", "textContent": "Zone 30 ecole"}]
    assert part["data"] == "0102" and part["relevanceZoneIds"] == [2]


def test_TP_IS_IVI_GEN_RCC_BV_01(rsu, codec):
    """The zone ids of a road configuration container (its parts and their lanes) reference zones a geographic
    location container defines: a missing zone is refused with its path, nothing sent; the valid one is sent
    (signed under the AT's road-configuration permission)."""
    for part, path in ((rcc_part(relevanceZoneIds=[5]), "rcc[0].relevanceZoneIds[0]"), (rcc_part(), None)):
        if path is None:
            part["laneConfiguration"][1]["relevanceZoneIds"] = [6]
            path = "rcc[0].laneConfiguration[1].relevanceZoneIds[0]"
        v = new_ivim()
        v["ivi"]["optional"].append({"rcc": [part]})
        with pytest.raises(ServiceError) as e:
            rsu.layer.trigger("ivi", {"payload": v})
        assert e.value.path == "payload.ivi.optional[2]." + path and "is not defined" in e.value.reason
    assert rsu.sent() == [] and rsu.layer.list() == []
    v = new_ivim()
    v["ivi"]["optional"].append({"rcc": [rcc_part()]})
    rsu.layer.trigger("ivi", {"payload": v})
    [part] = containers(on_air(rsu, codec), "rcc")[0]
    assert part["relevanceZoneIds"] == [2] and [lane["laneNumber"] for lane in part["laneConfiguration"]] == [1, 2]


def test_TP_IS_IVI_RCV_MSGF_BV_01(rsu, codec, clock):
    """A received IVIM signed by a permitted neighbour is processed: collected as new under its (provider,
    number) and handed to the applications with its zones, whatever the RSU's own position (see
    docs/conformance.md: zone applicability is the receiving vehicle's)."""
    sub = rsu.layer.subscribe()
    v = example("ivim")
    pdu = codec.encode(codec.from_jer(v, catalog.IVIM)[1])
    res, event = rsu.receive(peer_signed(clock, make_at(clock, {"ivim": None}), "ivim", pdu), catalog.IVIM)
    assert res.ok, res.detail
    assert sub.drain() == [event]
    assert event["ivi"] == {"collection": "new", "serviceProviderId": "FR57", "iviIdentificationNumber": 310}
    assert event["pdu"]["ivi"]["optional"] == v["ivi"]["optional"]


def test_TP_IS_IVI_GEN_LOC_BV_03(rsu, codec):
    """Zones that share one reference position are in one geographic location container: a second location
    container at the same reference position is refused with its path (nothing sent); one at another
    position, with its own zones, is sent beside the first."""
    v = new_ivim()
    second = {"glc": dict(containers(v, "glc")[0], parts=[dict(glc_parts(v)[0], zoneId=3)])}
    v["ivi"]["optional"].insert(1, second)
    with pytest.raises(ServiceError) as e:
        rsu.layer.trigger("ivi", {"payload": v})
    assert e.value.path == "payload.ivi.optional[1].glc.referencePosition" and "optional[0]" in e.value.reason
    assert rsu.sent() == []
    second["glc"]["referencePosition"] = dict(second["glc"]["referencePosition"], latitude=448380000)
    gic(v)["relevanceZoneIds"] = [2, 3]
    rsu.layer.trigger("ivi", {"payload": v})
    sent = on_air(rsu, codec)
    assert [c["referencePosition"]["latitude"] for c in containers(sent, "glc")] == [448376460, 448380000]
    assert gic(sent)["relevanceZoneIds"] == [2, 3]
