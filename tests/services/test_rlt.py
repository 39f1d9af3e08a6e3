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


# --- memory: an active MAPEM holds its UPER bytes, not its Python value (rsu.services.model.Entry.pack) ---
def repeat(layer, clock) -> list:
    clock.advance(1)
    return mapems(layer)


def test_an_active_mapem_holds_its_pdu_and_reads_as_before(make_layer, codec, clock):
    layer = make_layer()
    layer.trigger("rlt", {"payload": example("mapem")})
    entry = layer.services["rlt"].entries["1201"]
    assert entry.packed  # new content: at once
    [tx] = mapems(layer)
    [again] = repeat(layer, clock)
    assert tx.fresh and not again.fresh and again.pdu == tx.pdu and entry.pdus == (tx.pdu,)
    sent = decoded(codec, tx)
    assert entry.value == sent and entry.value is not entry.value  # decoded again at each read
    assert entry.requirement is not None
    assert layer.get("rlt", "1201")["payload"] == codec.to_jer(catalog.MAPEM, sent)
    # an update reads the packed value: unchanged content keeps the revision, a change counts on
    assert layer.update("rlt", "1201", {"payload": example("mapem")}).get("unchanged") is True
    assert layer.update("rlt", "1201", {"payload": moved_stop_line(example("mapem"))})["content_changed"] is True
    updated = layer.services["rlt"].entries["1201"]
    [tx2] = mapems(layer)
    assert tx2.fresh and updated.packed and updated.value == decoded(codec, tx2)
    assert updated.value["map"]["intersections"][0]["revision"] == sent["map"]["intersections"][0]["revision"] + 1
    # after a restart the restored entry holds its value until its second send (not while everything goes
    # back on the air), then is packed again
    restarted = make_layer()
    restored = restarted.services["rlt"].entries["1201"]
    assert not restored.packed and restored.value == updated.value and restored.pdus == updated.pdus
    assert len(mapems(restarted)) == 1 and not restored.packed
    assert len(repeat(restarted, clock)) == 1 and restored.packed and restored.value == updated.value


def test_a_fragmented_mapem_keeps_its_value(make_layer, clock):
    layer = make_layer(rules={"mapem_max_bytes": 600})
    v = example("mapem")
    ix = copy.deepcopy(v["map"]["intersections"][0])
    ix["id"] = {"id": 1202}
    ix["refPoint"]["lat"] += 10000
    v["map"]["intersections"].append(ix)
    layer.trigger("rlt", {"payload": v})
    mapems(layer)
    repeat(layer, clock)
    entry = layer.services["rlt"].entries["1201+1202"]
    assert len(entry.pdus) >= 2 and not entry.packed and entry.value["map"]["intersections"][1]["id"] == {"id": 1202}


def test_pack_only_when_the_pdu_gives_the_value_back(layer, codec):
    layer.trigger("rlt", {"payload": example("mapem")})
    entry = layer.services["rlt"].entries["1201"]
    value = entry.value

    def unpack(data):
        return codec.decode(data, validate=False).value

    differs = entry.evolve(value=value)  # evolve: a plain entry again, with the value as Python objects
    assert not differs.packed and differs == entry and differs.value is value
    assert differs.pack(lambda data: {**value, "header": {}}) is False  # a decoder that differs: not packed
    assert differs.pack(unpack) is False  # tried once per entry
    assert not differs.packed and differs.value is value

    def broken(data):
        raise ValueError("no")

    fails = entry.evolve(value=value)
    assert fails.pack(broken) is False and fails.value is value  # never raises

    packs = entry.evolve(value=value)
    assert packs.pack(unpack) is True and packs.pack(unpack) is True
    assert packs.packed and packs.value == value and copy.deepcopy(packs) == packs
    assert packs.evolve(generation=9).value == value and not packs.evolve(generation=9).packed
