"""RLT message-format and communication test purposes not covered in test_rlt.py (IUT sends MAPEM).

Each MAPEM is checked as a neighbour receives it: signed by the real security layer, verified,
decoded (COM_BV_04, on the GeoNetworking packet: test_conformance_com.py).
"""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.services.errors import ServiceError
from services.secured import secured  # noqa: F401
from services.support import example

assert secured  # the fixture, imported for this module


@pytest.fixture
def rsu(secured):
    return secured({"mapem": None}, {"spatem": None})


def on_air(rsu, codec) -> dict:
    [(tx, data)] = rsu.sent("rlt")
    res = rsu.verify(data, catalog.MAPEM)
    assert res.ok, res.detail
    return codec.to_jer(catalog.MAPEM, res.pdu.value)


def lanes(v: dict) -> dict:
    return {lane["laneID"]: lane for lane in v["map"]["intersections"][0]["laneSet"]}


def trajectory(connection_id: int) -> dict:
    return {
        "regionId": 3,
        "regExtValue": {
            "nodes": [{"delta": {"node-XY1": {"x": -120, "y": 300}}}, {"delta": {"node-XY2": {"x": -600, "y": 400}}}],
            "connectionID": connection_id,
        },
    }


def test_TP_IS_RLT_GEN_MSGF_BV_04(rsu, codec):
    """Connection trajectories are valid: every connection of the MAPEM on the air ends on a lane of the
    intersection (an egress lane here), and a trajectory through the conflict area belongs to a connection of
    its lane. A MAPEM whose connection leads to no lane, or whose trajectory names a connection its lane does
    not have, is refused with the path of the bad element, and nothing is sent."""
    v = example("mapem")
    lanes(v)[1]["regional"] = [trajectory(2)]
    rsu.layer.trigger("rlt", {"payload": v})
    sent = lanes(on_air(rsu, codec))
    egress = {n for n, lane in sent.items() if "egressApproach" in lane}
    for n, lane in sent.items():
        for conn in lane.get("connectsTo") or []:
            if "crosswalk" not in lane["laneAttributes"]["laneType"]:
                assert conn["connectingLane"]["lane"] in egress, (n, conn)
    assert sent[1]["regional"] == [trajectory(2)]
    rsu.layer.terminate("rlt", "1201")

    dangling = example("mapem")
    lanes(dangling)[4]["connectsTo"][0]["connectingLane"]["lane"] = 42
    with pytest.raises(ServiceError) as e:
        rsu.layer.trigger("rlt", {"payload": dangling})
    assert e.value.path == "payload.map.intersections[0].laneSet[4].connectsTo[0].connectingLane.lane"
    assert "lane 42 is not a lane of intersection 1201" in e.value.reason
    remote = example("mapem")  # the same connection to another intersection's lane 42 is fine
    conn = lanes(remote)[4]["connectsTo"][0]
    conn["connectingLane"]["lane"] = 42
    conn["remoteIntersection"] = {"id": 1202}
    wrong_trajectory = example("mapem")
    lanes(wrong_trajectory)[1]["regional"] = [trajectory(5)]  # connection 5 is lane 4's
    with pytest.raises(ServiceError) as e:
        rsu.layer.trigger("rlt", {"payload": wrong_trajectory})
    assert e.value.path == "payload.map.intersections[0].laneSet[0].regional[0].regExtValue.connectionID"
    assert rsu.sent() == [] and rsu.layer.list() == []
    rsu.layer.trigger("rlt", {"payload": remote})
    assert lanes(on_air(rsu, codec))[4]["connectsTo"][0]["remoteIntersection"] == {"id": 1202}


def test_TP_IS_RLT_GEN_MSGF_BV_05(rsu, codec):
    """The reference point's altitude is sent in the addGrpC regional extension of Position3D (regionId 3,
    ITS-Container Altitude with its confidence), beside the DSRC elevation."""
    v = example("mapem")
    altitude = {"altitudeValue": 6120, "altitudeConfidence": "alt-000-50"}
    v["map"]["intersections"][0]["refPoint"]["regional"] = [{"regionId": 3, "regExtValue": {"altitude": altitude}}]
    rsu.layer.trigger("rlt", {"payload": v})
    ref = on_air(rsu, codec)["map"]["intersections"][0]["refPoint"]
    assert ref["regional"] == [{"regionId": 3, "regExtValue": {"altitude": altitude}}]
    assert ref["elevation"] == 610


def test_TP_IS_RLT_GEN_MSGF_BV_14(rsu, codec):
    """The possible manoeuvres are encoded in connectsTo: each ingress lane's connections carry the manoeuvre
    (AllowedManeuvers) towards their egress lane, and together they are the lane's allowed manoeuvres."""
    rsu.layer.trigger("rlt", {"payload": example("mapem")})
    sent = lanes(on_air(rsu, codec))
    ingress = [lane for lane in sent.values() if "ingressApproach" in lane]
    assert len(ingress) == 8
    for lane in ingress:
        union = 0
        for conn in lane["connectsTo"]:
            union |= int(conn["connectingLane"]["maneuver"], 16)
        assert union == int(lane["maneuvers"], 16), lane["laneID"]
    assert sent[1]["connectsTo"][0]["connectingLane"] == {"lane": 9, "maneuver": "8000"}  # straight on


def test_TP_IS_RLT_GEN_MSGF_BV_15(rsu, codec):
    """Each signal group is broadcast with the lanes it controls and their allowed manoeuvres, and the SPATEM
    of the intersection gives a state for exactly those signal groups."""
    rsu.layer.trigger("rlt", {"payload": example("mapem")})
    sent = lanes(on_air(rsu, codec))
    controlled: dict[int, set[tuple[int, str]]] = {}
    for n, lane in sent.items():
        for conn in lane.get("connectsTo") or []:
            controlled.setdefault(conn["signalGroup"], set()).add((n, conn["connectingLane"].get("maneuver", "")))
    assert sorted(controlled) == list(range(1, 13))
    assert controlled[1] == {(1, "8000"), (1, "2000")} and controlled[9] == {(13, "")}
    rsu.layer.trigger("tlm", {"payload": example("spatem")})
    [(tx, _)] = rsu.sent("tlm")
    states = codec.decode(tx.pdu).value["spat"]["intersections"][0]["states"]
    assert sorted(s["signalGroup"] for s in states) == sorted(controlled)
