"""The six example messages in config/examples/: they encode, decode back, agree with pycrate, and make sense.

Each example is checked three ways: our codec's JER -> UPER -> JER round trip gives the file back;
pycrate (an independent ASN.1 implementation) decodes our bytes to the same JER and encodes the
file to the same bytes; and a content check per message that fails if an edit breaks the story
the examples tell together (one intersection, its signal groups, a bus asking for priority and
being granted it, a speed-limit sign, RTCM 3 frames).
"""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES

from rsu import catalog

FILES = {
    "mapem": "mapem-4arm-intersection.json",
    "spatem": "spatem-4arm-intersection.json",
    "ivim": "ivim-speed-limit.json",
    "srem": "srem-bus-priority.json",
    "ssem": "ssem-bus-priority.json",
    "rtcmem": "rtcmem-corrections.json",
}

ADDGRPC = 3


def load(kind: str) -> dict:
    return json.loads((EXAMPLES / FILES[kind]).read_text())


@pytest.fixture(scope="module")
def encoded(codec) -> dict[str, bytes]:
    out = {}
    for kind in FILES:
        k, value = codec.from_jer(load(kind), catalog.BY_NAME[kind])
        out[kind] = codec.encode(value, k)
    return out


# --- 1. our codec: JER -> UPER -> JER -------------------------------------------------------------


@pytest.mark.parametrize("kind", FILES)
def test_round_trip(codec, encoded, kind):
    data = encoded[kind]
    mk = catalog.BY_NAME[kind]
    assert data[:2] == bytes([mk.protocol_version, mk.message_id])
    decoded = codec.decode(data)
    assert decoded.kind is mk
    assert codec.to_jer(mk, decoded.value) == load(kind)


# --- 2. pycrate agrees on bytes and JSON ----------------------------------------------------------


def _pycrate_pdu(kind: str):
    its = pytest.importorskip("pycrate_asn1dir.ITS_IS")
    module = getattr(its, catalog.BY_NAME[kind].module.replace("-", "_"))
    return getattr(module, catalog.BY_NAME[kind].pdu)


@pytest.mark.parametrize("kind", FILES)
def test_pycrate_decodes_our_bytes_to_the_same_json(encoded, kind):
    pdu = _pycrate_pdu(kind)
    pdu.from_uper(encoded[kind])
    assert json.loads(pdu.to_jer()) == load(kind)


@pytest.mark.parametrize("kind", FILES)
def test_pycrate_encodes_the_file_to_our_bytes(encoded, kind):
    pdu = _pycrate_pdu(kind)
    pdu.from_jer((EXAMPLES / FILES[kind]).read_text())
    assert pdu.to_uper() == encoded[kind]


# --- 3. content: the examples tell one consistent story -------------------------------------------


def _intersection(mapem: dict) -> dict:
    (geometry,) = mapem["map"]["intersections"]
    return geometry


def _lanes(mapem: dict) -> dict[int, dict]:
    return {lane["laneID"]: lane for lane in _intersection(mapem)["laneSet"]}


def _regionals(obj):
    """Every RegionalExtension value anywhere in a JER object."""
    if isinstance(obj, dict):
        if set(obj) == {"regionId", "regExtValue"}:
            yield obj
        for v in obj.values():
            yield from _regionals(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _regionals(v)


def _xy(node_delta: dict) -> tuple[int, int]:
    ((form, xy),) = node_delta.items()
    assert form.startswith("node-XY"), form
    return xy["x"], xy["y"]


def _smallest_form(x: int, y: int) -> str:
    for i, bits in enumerate((10, 11, 12, 13, 14, 16), start=1):
        lim = 1 << (bits - 1)
        if -lim <= x < lim and -lim <= y < lim:
            return f"node-XY{i}"
    raise AssertionError((x, y))


def _arm(x: int, y: int) -> str:
    """Compass arm of a point given as an offset from the reference point (x east, y north)."""
    if abs(y) > abs(x):
        return "N" if y > 0 else "S"
    return "E" if x > 0 else "W"


def test_mapem_has_four_arms_with_ingress_egress_and_crosswalks():
    mapem = load("mapem")
    geometry = _intersection(mapem)
    lanes = _lanes(mapem)
    assert len(lanes) == len(geometry["laneSet"]), "lane ids must be unique"
    assert geometry["refPoint"]["lat"] != 0 and geometry["refPoint"]["long"] != 0

    ingress_arms: dict[int, set[str]] = {}
    egress_approaches = set()
    crosswalk_arms = set()
    for lane in lanes.values():
        attrs = lane["laneAttributes"]
        (lane_type,) = attrs["laneType"]
        nodes = lane["nodeList"].get("nodes")
        if lane_type == "crosswalk":
            assert attrs["directionalUse"] == "c0"  # walked both ways
            crosswalk_arms.add(_arm(*_xy(nodes[0]["delta"])))
            continue
        assert lane_type == "vehicle"
        if attrs["directionalUse"] == "80":
            assert "ingressApproach" in lane and "maneuvers" in lane and lane["connectsTo"]
            if nodes is None:  # computed lane: derived from a node-list lane of the same approach
                ref = lanes[lane["nodeList"]["computed"]["referenceLaneId"]]
                assert "nodes" in ref["nodeList"] and ref["ingressApproach"] == lane["ingressApproach"]
                continue
            arm = _arm(*_xy(nodes[0]["delta"]))
            ingress_arms.setdefault(lane["ingressApproach"], set()).add(arm)
        else:
            assert attrs["directionalUse"] == "40" and "egressApproach" in lane and nodes
            egress_approaches.add(lane["egressApproach"])
        # nodes: 2..3+ of them, each in the smallest form, going away from the stop line / centre
        assert len(nodes) >= 2
        start = _xy(nodes[0]["delta"])
        for node in nodes:
            form = next(iter(node["delta"]))
            assert form == _smallest_form(*_xy(node["delta"])), node
        for node in nodes[1:]:
            dx, dy = _xy(node["delta"])
            assert dx * start[0] + dy * start[1] > 0, f"lane {lane['laneID']} turns back towards the centre"

    assert len(ingress_arms) == 4 and all(len(arms) == 1 for arms in ingress_arms.values())
    assert {arm for arms in ingress_arms.values() for arm in arms} == {"N", "E", "S", "W"}
    assert egress_approaches == set(ingress_arms)
    assert crosswalk_arms == {"N", "E", "S", "W"}


def test_mapem_connections_are_consistent():
    lanes = _lanes(load("mapem"))
    ids = set()
    for lane in lanes.values():
        for conn in lane.get("connectsTo", []):
            target = lanes[conn["connectingLane"]["lane"]]
            assert 1 <= conn["signalGroup"] <= 255
            ids.add(conn["connectionID"])
            (lane_type,) = lane["laneAttributes"]["laneType"]
            if lane_type == "vehicle":
                # from an ingress lane to an egress lane of another approach, with a maneuver the lane allows
                assert target["laneAttributes"]["directionalUse"] == "40"
                assert target["egressApproach"] != lane["ingressApproach"]
                allowed = int(lane["maneuvers"], 16)
                used = int(conn["connectingLane"]["maneuver"], 16)
                assert used and used & allowed == used
    assert len(ids) == sum(len(lane.get("connectsTo", [])) for lane in lanes.values()), "connection ids unique"


def test_mapem_carries_an_addgrpc_extension():
    regionals = list(_regionals(load("mapem")))
    assert regionals and all(r["regionId"] == ADDGRPC for r in regionals)


def _signal_groups_in_map(mapem: dict) -> set[int]:
    return {c["signalGroup"] for lane in _intersection(mapem)["laneSet"] for c in lane.get("connectsTo", [])}


def test_spatem_matches_the_mapem():
    mapem, spatem = load("mapem"), load("spatem")
    geometry = _intersection(mapem)
    (state,) = spatem["spat"]["intersections"]
    assert state["id"] == geometry["id"] and state["revision"] == geometry["revision"]
    groups = [s["signalGroup"] for s in state["states"]]
    assert len(groups) == len(set(groups))
    assert set(groups) == _signal_groups_in_map(mapem)
    now = (state["moy"] % 60) * 600 + state["timeStamp"] // 100  # TimeMark of the SPaT time stamp
    for movement in state["states"]:
        for event in movement["state-time-speed"]:
            t = event["timing"]
            assert t["minEndTime"] <= t.get("likelyTime", t["minEndTime"]) <= t.get("maxEndTime", 36000)
            assert now <= t["minEndTime"] < 36000
            if "startTime" in t:
                assert t["startTime"] <= now
    assert all(r["regionId"] == ADDGRPC for r in _regionals(spatem))


ITA2 = {
    "11000": "A",
    "10011": "B",
    "01110": "C",
    "10010": "D",
    "10000": "E",
    "10110": "F",
    "01011": "G",
    "00101": "H",
    "01100": "I",
    "11010": "J",
    "11110": "K",
    "01001": "L",
    "00111": "M",
    "00110": "N",
    "00011": "O",
    "01101": "P",
    "11101": "Q",
    "01010": "R",
    "10100": "S",
    "00001": "T",
    "11100": "U",
    "01111": "V",
    "11001": "W",
    "10111": "X",
    "10101": "Y",
    "10001": "Z",
}


def test_ivim_is_a_regulatory_50_kmh_sign_of_a_french_provider():
    ivi = load("ivim")["ivi"]
    mandatory = ivi["mandatory"]
    bits = f"{int(mandatory['serviceProviderId']['countryCode'], 16):016b}"
    assert bits[10:] == "000000"  # 10 bits, left-aligned
    assert ITA2[bits[:5]] + ITA2[bits[5:10]] == "FR"
    assert mandatory["iviStatus"] == 0  # new
    assert mandatory["timeStamp"] <= mandatory["validFrom"]
    assert "validTo" not in mandatory  # on the air until terminated: an example that never expires
    assert 2020 <= 2004 + mandatory["validFrom"] // (365.2425 * 86400 * 1000) <= 2040  # ms since 2004

    containers = [next(iter(c.items())) for c in ivi["optional"]]
    (glc,) = [c for name, c in containers if name == "glc"]
    zones = {part["zoneId"] for part in glc["parts"]}
    (gic,) = [c for name, c in containers if name == "giv"]
    speed_limits = []
    for part in gic:
        for zone in part.get("detectionZoneIds", []) + part["relevanceZoneIds"]:
            assert zone in zones
        assert part["iviType"] == 1  # regulatoryMessages
        for rs in part["roadSignCodes"]:
            code = rs["code"]["iso14823"]
            pictogram = code["pictogramCode"]
            if pictogram["serviceCategoryCode"] == {"trafficSignPictogram": "regulatory"} and pictogram[
                "pictogramCategoryCode"
            ] == {"nature": 5, "serialNumber": 57}:
                speed_limits += [a["spe"] for a in code["attributes"] if "spe" in a]
    assert speed_limits == [{"speedLimitMax": 50, "unit": 0}]  # 50 km/h


def test_ssem_answers_the_srem_for_the_mapem_lanes():
    mapem, srem, ssem, spatem = load("mapem"), load("srem"), load("ssem"), load("spatem")
    lanes = _lanes(mapem)
    srm, ssm = srem["srm"], ssem["ssm"]
    (request,) = srm["requests"]
    req = request["request"]
    assert srm["requestor"]["type"]["role"] == "publicTransport"
    assert srm["requestor"]["id"] == {"stationID": srem["header"]["stationID"]}
    assert req["id"] == _intersection(mapem)["id"]

    # the bus asks for a lane of the map that buses use, to an egress lane it connects to
    inbound = lanes[req["inBoundLane"]["lane"]]
    assert int(inbound["laneAttributes"]["sharedWith"], 16) & (0x8000 >> 4)  # busVehicleTraffic
    (conn,) = [c for c in inbound["connectsTo"] if c["connectingLane"]["lane"] == req["outBoundLane"]["lane"]]

    (status,) = ssm["status"]
    (package,) = status["sigStatus"]
    assert status["id"] == req["id"]
    assert package["requester"]["id"] == srm["requestor"]["id"]
    assert package["requester"]["request"] == req["requestID"]
    assert package["requester"]["sequenceNumber"] == srm["sequenceNumber"]
    assert package["inboundOn"] == req["inBoundLane"] and package["outboundOn"] == req["outBoundLane"]
    assert package["status"] in ("granted", "processing")
    assert (ssm["timeStamp"], ssm["second"]) > (srm["timeStamp"], srm["second"])  # answer after request

    # the SPaT shows the granted priority on the bus's signal group
    (state,) = spatem["spat"]["intersections"]
    (prio,) = [r["regExtValue"] for r in state["regional"]]
    assert prio["activePrioritizations"] == [
        {"stationID": srem["header"]["stationID"], "priorState": package["status"], "signalGroup": conn["signalGroup"]}
    ]


def _crc24q(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def test_rtcmem_carries_rtcm3_frames():
    rtcmc = load("rtcmem")["rtcmc"]
    assert rtcmc["rev"] == "rtcmRev3"
    types = []
    for msg in rtcmc["msgs"]:
        frame = bytes.fromhex(msg)
        assert frame[0] == 0xD3 and frame[1] & 0xFC == 0  # preamble, 6 reserved bits
        length = (frame[1] & 0x03) << 8 | frame[2]
        assert len(frame) == 3 + length + 3
        assert _crc24q(frame[:-3]) == int.from_bytes(frame[-3:], "big")
        msg_type = frame[3] << 4 | frame[4] >> 4
        types.append(msg_type)
        if msg_type == 1005:
            assert length == 19
    assert types[0] == 1005 and set(types) <= {1005, 1077}


def test_crc24q_reference_value():
    # the check value of CRC-24Q (RTCM / Qualcomm): crc("123456789") = 0xCDE703
    assert _crc24q(b"123456789") == 0xCDE703
