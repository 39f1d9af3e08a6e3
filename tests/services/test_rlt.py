"""RLT service (MAPEM), named after the TS 103 191-2 test purposes it meets (IUT as sender)."""

from __future__ import annotations

import copy

import pytest

from rsu import catalog
from rsu.services.errors import ServiceError
from rsu.services.rlt import layer_id
from services.support import STATION, by_service, decoded, example, permission_check


def mapems(layer, now=None):
    return by_service(layer.due(now), "rlt")


def moved_stop_line(v: dict) -> dict:
    """The example MAPEM with lane 1's first node moved by 10 cm (a geometry change)."""
    v["map"]["intersections"][0]["laneSet"][0]["nodeList"]["nodes"][0]["delta"]["node-XY3"]["x"] += 10
    return v


def road_segment_mapem() -> dict:
    """A MAPEM with one road segment (lanes borrowed from the example intersection)."""
    v = example("mapem")
    ix = v["map"].pop("intersections")[0]
    lanes = copy.deepcopy(ix["laneSet"][:2])
    for lane in lanes:
        lane.pop("connectsTo", None)
        lane.pop("ingressApproach", None)
    v["map"]["layerType"] = "roadwaySectionData"
    v["map"]["roadSegments"] = [{"id": {"id": 12}, "revision": 1, "refPoint": ix["refPoint"], "roadLaneSet": lanes}]
    return v


def test_TP_IS_RLT_GEN_MSGF_BV_01(layer, codec):
    """Header: protocolVersion 2 and messageID mapem (5)."""
    layer.trigger("rlt", {"payload": example("mapem")})
    [tx] = mapems(layer)
    h = decoded(codec, tx)["header"]
    assert (h["protocolVersion"], h["messageID"], h["stationID"]) == (2, 5, STATION)


def test_TP_IS_RLT_GEN_MSGF_BV_02(layer, codec):
    """The intersection revision (and msgIssueRevision) change when the configuration changes."""
    layer.trigger("rlt", {"payload": example("mapem")})
    before = decoded(codec, mapems(layer)[0])["map"]
    answer = layer.update("rlt", "1201", {"payload": moved_stop_line(example("mapem"))})
    assert answer["content_changed"] is True
    [tx] = mapems(layer)
    after = decoded(codec, tx)["map"]
    assert tx.fresh  # new content goes out at once
    assert after["intersections"][0]["revision"] == before["intersections"][0]["revision"] + 1 == 4
    assert after["msgIssueRevision"] == before["msgIssueRevision"] + 1
    # the application's revision is not needed: left out, the service still counts on
    v = moved_stop_line(moved_stop_line(example("mapem")))
    del v["map"]["intersections"][0]["revision"]
    del v["map"]["msgIssueRevision"]
    layer.update("rlt", "1201", {"payload": v})
    assert decoded(codec, mapems(layer)[0])["map"]["intersections"][0]["revision"] == 5


def test_TP_IS_RLT_GEN_MSGF_BV_03(layer, codec, clock):
    """Unchanged configuration keeps the revision, and the very same bytes (no re-encoding)."""
    layer.trigger("rlt", {"payload": example("mapem")})
    first = mapems(layer)[0]
    v = example("mapem")
    v["map"]["intersections"][0]["revision"] = 7  # an application bumping without a change
    answer = layer.update("rlt", "1201", {"payload": v})
    assert answer["unchanged"] is True
    assert any("revision: 7 ignored" in w and "did not change" in w for w in answer["warnings"])
    clock.advance(1)
    [tx] = mapems(layer)
    assert tx.pdu == first.pdu and tx.generation == first.generation and not tx.fresh
    assert decoded(codec, tx)["map"]["intersections"][0]["revision"] == 3


def test_RLT_revision_survives_terminate_and_retrigger(layer, codec):
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.update("rlt", "1201", {"payload": moved_stop_line(example("mapem"))})
    layer.terminate("rlt", "1201")
    layer.trigger("rlt", {"payload": moved_stop_line(example("mapem"))})  # same content as last sent
    assert decoded(codec, mapems(layer)[0])["map"]["intersections"][0]["revision"] == 4
    layer.terminate("rlt", "1201")
    layer.trigger("rlt", {"payload": example("mapem")})  # back to the old geometry: still a change
    assert decoded(codec, mapems(layer)[0])["map"]["intersections"][0]["revision"] == 5


def test_TP_IS_RLT_GEN_MSGF_BV_06(layer):
    """Each lane of an intersection has a unique lane number: a duplicate is refused."""
    v = example("mapem")
    v["map"]["intersections"][0]["laneSet"][3]["laneID"] = 1
    with pytest.raises(ServiceError) as e:
        layer.trigger("rlt", {"payload": v})
    assert (e.value.code, e.value.path) == ("validation", "payload.map.intersections[0].laneSet[3].laneID")
    assert "lane 1 appears twice in 1201" in e.value.reason


def test_TP_IS_RLT_GEN_EVGN_BV_01(layer):
    """An application trigger produces a new MAPEM at once."""
    answer = layer.trigger("rlt", {"payload": example("mapem")})
    assert answer["id"] == "1201"
    [tx] = mapems(layer)
    assert tx.fresh and tx.kind is catalog.MAPEM


def test_TP_IS_RLT_GEN_EVGN_BV_02(layer, codec, clock):
    """New content from the application is what is sent from then on."""
    layer.trigger("rlt", {"payload": example("mapem")})
    mapems(layer)
    clock.advance(0.3)
    layer.update("rlt", "1201", {"payload": moved_stop_line(example("mapem"))})
    for _ in range(3):
        [tx] = mapems(layer)
        lane = decoded(codec, tx)["map"]["intersections"][0]["laneSet"][0]
        assert lane["nodeList"][1][0]["delta"][1]["x"] == -477
        clock.advance(1)


def test_TP_IS_RLT_GEN_FRAG_BV_01(layer, codec):
    """A MAPEM that fits is not fragmented and carries no layerID."""
    layer.trigger("rlt", {"payload": example("mapem")})
    [tx] = mapems(layer)
    assert tx.fragment is None and "layerID" not in decoded(codec, tx)["map"]


def test_TP_IS_RLT_GEN_FRAG_BV_02(make_layer, codec):
    """An oversized MAPEM is sent as fragments marked with layerID, each within the size limit."""
    layer = make_layer(rules={"mapem_max_bytes": 600})
    v = example("mapem")
    for n in (1202, 1203):  # three intersections: about 1.2 kB in one message
        ix = copy.deepcopy(v["map"]["intersections"][0])
        ix["id"] = {"id": n}
        ix["refPoint"]["lat"] += 10000 * (n - 1201)
        v["map"]["intersections"].append(ix)
    answer = layer.trigger("rlt", {"payload": v})
    assert answer["id"] == "1201+1202+1203"
    txs = mapems(layer)
    n = len(txs)
    assert n >= 2 and answer["identification"]["fragments"] == n
    maps = [decoded(codec, t)["map"] for t in txs]
    assert [m["layerID"] for m in maps] == [layer_id(n, i) for i in range(1, n + 1)]
    assert all(len(t.pdu) <= 600 for t in txs)
    assert {m["msgIssueRevision"] for m in maps} == {3}
    ids = [ix["id"]["id"] for m in maps for ix in m["intersections"]]
    assert sorted(ids) == [1201, 1202, 1203]


def test_RLT_fragmentation_splits_one_big_intersection_by_lanes(make_layer, codec):
    layer = make_layer(rules={"mapem_max_bytes": 250})
    layer.trigger("rlt", {"payload": example("mapem")})  # 417 bytes, one intersection
    txs = mapems(layer)
    assert len(txs) >= 2 and all(len(t.pdu) <= 250 for t in txs)
    lanes = [lane["laneID"] for t in txs for lane in decoded(codec, t)["map"]["intersections"][0]["laneSet"]]
    assert sorted(lanes) == sorted(lane["laneID"] for lane in example("mapem")["map"]["intersections"][0]["laneSet"])


def test_TP_IS_RLT_GEN_COM_BV_01(layer, clock):
    """MAPEM and SPATEM are both transmitted continuously: MAPEM repeated every second, SPATEM per state."""
    layer.trigger("rlt", {"payload": example("mapem")})
    kinds = []
    for _ in range(5):
        layer.trigger("tlm", {"payload": example("spatem")})
        kinds.append(sorted(t.kind.name for t in layer.due()))
        clock.advance(1)
    assert kinds == [["mapem", "spatem"]] * 5


def test_TP_IS_RLT_GEN_COM_BV_03(layer):
    """MAPEM goes to BTP-B port 2003 (TP COM_BV_03 / BV_04)."""
    layer.trigger("rlt", {"payload": example("mapem")})
    [tx] = mapems(layer)
    assert tx.params.btp_port == 2003


def test_TP_IS_RLT_GEN_COM_BV_05(layer):
    """MAPEM is sent GeoBroadcast over the intersection (destination area from its reference point)."""
    layer.trigger("rlt", {"payload": example("mapem")})
    [tx] = mapems(layer)
    assert tx.params.destination is not None
    assert round(tx.params.destination.latitude, 5) == 44.83759


def test_TP_IS_RLT_GEN_RATE_BV_01(layer, clock):
    """Repetition at the configured interval (default 1 s), drift-free, and at the one asked for."""
    layer.trigger("rlt", {"payload": example("mapem")})
    t0 = clock.now()
    times = []
    for _ in range(4):
        clock.set(layer.next_deadline())
        times += [clock.now() - t0 for _ in mapems(layer)]
    assert times == pytest.approx([0, 1, 2, 3])
    layer.update("rlt", "1201", {"dissemination": {"repetition_interval_s": 0.5}})
    t1 = clock.now()
    times = []
    for _ in range(4):
        clock.set(layer.next_deadline())
        times += [clock.now() - t1 for _ in mapems(layer)]
    assert times == pytest.approx([0, 0.5, 1.0, 1.5])
    with pytest.raises(ServiceError) as e:
        layer.update("rlt", "1201", {"dissemination": {"repetition_interval_s": 60}})
    assert e.value.path == "dissemination.repetition_interval_s" and "outside the configured bounds" in e.value.reason


SSP_CASES = [
    ("TP_IS_RLT_GEN_SSP_BV_02", {"intersections"}, "intersections", True),
    ("TP_IS_RLT_GEN_SSP_BO_03", {"roadSegments"}, "intersections", False),
    ("TP_IS_RLT_GEN_SSP_BV_04", {"roadSegments"}, "roadSegments", True),
    ("TP_IS_RLT_GEN_SSP_BO_05", {"intersections"}, "roadSegments", False),
]


@pytest.mark.parametrize("tp,granted,payload,ok", SSP_CASES, ids=[c[0] for c in SSP_CASES])
def test_TP_IS_RLT_GEN_SSP(make_layer, tp, granted, payload, ok):
    layer = make_layer(permission_check=permission_check(granted))
    v = example("mapem") if payload == "intersections" else road_segment_mapem()
    if ok:
        answer = layer.trigger("rlt", {"payload": v})
        assert answer["id"] == ("1201" if payload == "intersections" else "rs12")
        assert len(mapems(layer)) == 1, tp
    else:
        with pytest.raises(ServiceError) as e:
            layer.trigger("rlt", {"payload": v})
        assert e.value.code == "ssp_not_permitted" and payload in e.value.reason, tp
        assert mapems(layer) == [] and layer.list() == [], tp


def test_RLT_rejects_service_owned_layer_id_and_overlap(layer):
    v = example("mapem")
    v["map"]["layerID"] = 5
    with pytest.raises(ServiceError) as e:
        layer.trigger("rlt", {"payload": v})
    assert e.value.path == "payload.map.layerID"
    layer.trigger("rlt", {"payload": example("mapem")})
    with pytest.raises(ServiceError) as e:
        layer.trigger("rlt", {"payload": example("mapem")})
    assert e.value.code == "already_active"
