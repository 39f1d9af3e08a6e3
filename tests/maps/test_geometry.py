"""rsu.maps.geometry: node offsets to local metres, computed lanes, widths, stop lines, and the inputs it reads."""

from __future__ import annotations

import json

import pytest

from maps.support import example_map, example_spat, lane, small_map, xy
from rsu import catalog
from rsu.maps.geometry import (
    LocalPlane,
    MapError,
    intersections,
    load_pdu,
    node_xy,
    select,
)


def test_xy_offsets_chain_from_the_reference_point_then_from_the_previous_node():
    m = small_map([lane(1, "80", [xy("node-XY1", 100, -200), xy("node-XY3", 1500, 0), xy("node-XY6", -20000, 30000)])])
    [x] = intersections(m)
    [ln] = x.lanes
    assert ln.offsets_cm == [(100, -200), (1600, -200), (-18400, 29800)]
    assert ln.points == [(1.0, -2.0), (16.0, -2.0), (-184.0, 298.0)]
    assert (x.ref_lat, x.ref_lon) == (48.8566, 2.3522)


def test_latlon_node_is_an_absolute_position_and_the_next_offset_starts_from_it():
    plane = LocalPlane(48.8566, 2.3522)
    lat, lon = plane.to_wgs84(30.0, -12.0)  # 30 m east, 12 m south
    node = {"delta": {"node-LatLon": {"lon": round(lon * 1e7), "lat": round(lat * 1e7)}}}
    m = small_map([lane(1, "40", [node, xy("node-XY2", 0, 1000)])])
    [ln] = intersections(m)[0].lanes
    assert ln.points[0] == pytest.approx((30.0, -12.0), abs=0.01)
    assert ln.points[1] == pytest.approx((30.0, -2.0), abs=0.01)


def test_local_plane_is_its_own_inverse_and_metric():
    plane = LocalPlane(44.837592, -0.579431)
    lat, lon = plane.to_wgs84(123.45, -67.89)
    assert plane.to_local(lat, lon) == pytest.approx((123.45, -67.89), abs=1e-6)
    # one degree of latitude at 44.8 N is about 111.1 km; one of longitude about 78.9 km
    assert plane.to_local(44.837592 + 0.001, -0.579431)[1] == pytest.approx(111.14, abs=0.05)
    assert plane.to_local(44.837592, -0.579431 + 0.001)[0] == pytest.approx(79.0, abs=0.1)


def test_computed_lane_is_its_reference_shifted():
    m = example_map()
    x = select(m, None)
    ref, computed = x.lane(1), x.lane(2)  # lane 2: lane 1 shifted 325 cm east
    assert computed.computed_from == 1
    assert computed.offsets_cm == [(cx + 325, cy) for cx, cy in ref.offsets_cm]
    assert computed.ingress and computed.stop_lines == [0]


def test_widths_start_at_lane_width_and_dwidth_adds_from_its_node_on():
    m = small_map(
        [
            lane(
                1,
                "80",
                [
                    xy("node-XY1", 0, 500),
                    xy("node-XY3", 0, 2000, dWidth=-50),
                    xy("node-XY3", 0, 2000),
                    xy("node-XY3", 0, 2000, dWidth=100),
                ],
            )
        ]
    )
    [ln] = intersections(m)[0].lanes
    assert ln.widths_cm == [350, 300, 300, 400]
    no_default = small_map([lane(1, "80", [xy("node-XY1", 0, 500), xy("node-XY1", 0, 300)])], lane_width=None)
    assert intersections(no_default)[0].lanes[0].widths_cm == [300, 300]


def test_directions_stop_lines_and_signal_groups():
    conns = [
        {"connectingLane": {"lane": 2}, "signalGroup": 4},
        {"connectingLane": {"lane": 2}, "signalGroup": 4},
        {"connectingLane": {"lane": 3}, "signalGroup": 6},
    ]
    m = small_map(
        [
            lane(1, "80", [xy("node-XY1", 0, 500), xy("node-XY1", 0, 300, localNode=["stopLine"])], connects=conns),
            lane(2, "40", [xy("node-XY1", 0, -500), xy("node-XY1", 0, -300)]),
            lane(3, "c0", [xy("node-XY1", 500, 0), xy("node-XY1", 300, 0)], kind="crosswalk"),
            lane(4, "00", [xy("node-XY1", -500, 0), xy("node-XY1", -300, 0)], kind="median"),
        ]
    )
    lanes = {ln.lane_id: ln for ln in intersections(m)[0].lanes}
    assert [lanes[i].direction for i in (1, 2, 3, 4)] == ["ingress", "egress", "both", "none"]
    assert lanes[1].stop_lines == [0, 1]  # first node of an ingress vehicle lane, and the stopLine node
    assert lanes[2].stop_lines == [] and lanes[3].stop_lines == []  # egress; a crosswalk does not stop traffic
    assert lanes[1].signal_groups == [4, 6]


def test_lanes_that_cannot_be_placed_are_all_reported():
    regional = {"delta": {"regional": {"regionId": 3, "regExtValue": "00"}}}
    bad = small_map(
        [
            lane(1, "80", [xy("node-XY1", 0, 1)] * 2),
            {
                **lane(2, "80", []),
                "nodeList": {
                    "computed": {"referenceLaneId": 9, "offsetXaxis": {"small": 1}, "offsetYaxis": {"small": 0}}
                },
            },
        ]
    )
    bad["map"]["intersections"][0]["laneSet"][0]["nodeList"]["nodes"][1] = regional
    with pytest.raises(MapError) as e:
        intersections(bad)
    assert len(e.value.problems) == 2, e.value.problems
    assert "laneSet[0] (lane 1).nodeList.nodes[1].delta: regional" in e.value.problems[0]
    assert "lane 9 is not in the intersection" in e.value.problems[1]


def test_smallest_node_xy_alternative():
    assert node_xy(511, -512) == {"node-XY1": {"x": 511, "y": -512}}
    assert node_xy(512, 0) == {"node-XY2": {"x": 512, "y": 0}}
    assert node_xy(0, -2048) == {"node-XY3": {"x": 0, "y": -2048}}
    assert node_xy(4095, 0) == {"node-XY4": {"x": 4095, "y": 0}}
    assert node_xy(0, 8191) == {"node-XY5": {"x": 0, "y": 8191}}
    assert node_xy(-32768, 32767) == {"node-XY6": {"x": -32768, "y": 32767}}
    assert node_xy(32768, 0) is None


def test_load_pdu_takes_map_files_uper_hex_and_decode_output(codec):
    m = example_map()
    _, value = codec.from_jer(m, catalog.MAPEM)
    uper = codec.encode(value, catalog.MAPEM)
    headerless = {"map": m["map"]}
    assert load_pdu(m, "mapem") == m
    assert load_pdu(json.dumps(m).encode(), "mapem") == m
    assert load_pdu(uper, "mapem") == m
    assert load_pdu(uper.hex().encode(), "mapem") == m
    assert load_pdu(json.dumps({"layers": [{"layer": "facilities", "pdu": m}]}), "mapem") == m
    assert load_pdu(headerless, "mapem")["map"] == m["map"]
    with pytest.raises(MapError, match="not the JER JSON of a MAPEM"):
        load_pdu(json.dumps({"spat": {}}), "mapem")
    with pytest.raises(MapError, match="a SPATEM, not a MAPEM"):
        load_pdu(codec.encode(codec.from_jer(example_spat())[1]), "mapem")
    with pytest.raises(MapError, match="laneSet"):
        broken = json.loads(json.dumps(m))
        broken["map"]["intersections"][0]["laneSet"][0]["laneID"] = 300
        load_pdu(broken, "mapem")


def test_select_by_id_and_region():
    m = small_map([lane(1, "80", [xy("node-XY1", 0, 5), xy("node-XY1", 0, 5)])], region=7)
    assert select(m, "7.77").key == "7.77"
    assert select(m, "77").region == 7
    with pytest.raises(MapError, match="no intersection '12'"):
        select(m, "12")
    two = json.loads(json.dumps(m))
    two["map"]["intersections"].append({**m["map"]["intersections"][0], "id": {"id": 78}})
    with pytest.raises(MapError, match="2 intersections"):
        select(two, None)
    assert select(two, "78").id == 78
