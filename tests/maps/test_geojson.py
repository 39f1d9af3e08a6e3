"""rsu.maps.geojson: MAP file <-> GeoJSON; round trip, node offsets as the standard wants them, all errors at once."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maps.support import example_map, lane, small_map, xy
from rsu import catalog
from rsu.integrations.mapfiles import read_map_file
from rsu.maps.geojson import from_map, to_map
from rsu.maps.geometry import LocalPlane, MapError

REF = (48.8566, 2.3522)


def feature_collection(lanes: list[dict], **point) -> dict:
    props = {"intersection_id": 77, "revision": 2, "lane_width": 300, **point}
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [REF[1], REF[0]]}, "properties": props},
            *lanes,
        ],
    }


def lane_feature(coords_m: list[tuple[float, float]], **props) -> dict:
    """A LineString lane whose positions are ``coords_m`` metres east/north of REF."""
    plane = LocalPlane(*REF)
    coords = [[lon, lat] for lat, lon in (plane.to_wgs84(e, n) for e, n in coords_m)]
    return {"type": "Feature", "geometry": {"type": "LineString", "coordinates": coords}, "properties": props}


def encode_decode(codec, mapem: dict) -> dict:
    """The MAPEM back from its UPER; a MAP file without a header gets the one the daemon would give."""
    mapem = {"header": {"protocolVersion": 2, "messageID": 5, "stationID": 99}, **mapem}
    kind, value = codec.from_jer(mapem, catalog.MAPEM)
    return codec.to_jer(kind, codec.decode(codec.encode(value, kind)).value)


def test_export_import_export_is_stable_and_the_import_encodes(codec):
    first, warnings = from_map(example_map())
    assert any("lane 2: a computed lane" in w for w in warnings)
    assert any("lane 7 node 2: attributes regional" in w for w in warnings)
    imported = to_map(copy.deepcopy(first))
    second, again = from_map(imported)
    assert second == first
    assert again == []  # nothing left that GeoJSON cannot carry
    assert encode_decode(codec, imported) == imported
    assert to_map(second) == imported


def test_export_carries_lanes_and_the_reference_point():
    doc, _ = from_map(example_map())
    point, *lanes = doc["features"]
    assert point["geometry"] == {"type": "Point", "coordinates": [-0.579431, 44.837592, 61.0]}
    assert point["properties"] == {
        "intersection_id": 1201,
        "name": "Bd Jean Jaures x Rue Pasteur",
        "revision": 3,
        "lane_width": 325,
        "station_id": 3120101,
        "speed_limits": [{"type": "vehicleMaxSpeed", "speed": 694}],
    }
    assert len(lanes) == 16 and all(f["geometry"]["type"] == "LineString" for f in lanes)
    one = lanes[0]["properties"]
    assert one == {
        "lane_id": 1,
        "type": "vehicle",
        "type_attributes": "00",
        "direction": "ingress",
        "shared_with": "0000",
        "ingress_approach": 1,
        "maneuvers": "a000",
        "width": 325,
        "signal_group": 1,
        "connections": [
            {"lane": 9, "connection_id": 1, "maneuver": "8000"},
            {"lane": 12, "connection_id": 2, "maneuver": "2000"},
        ],
        "stop_line_nodes": [0],
    }
    crosswalk = next(f["properties"] for f in lanes if f["properties"]["lane_id"] == 13)
    assert crosswalk["type"] == "crosswalk" and crosswalk["direction"] == "both" and crosswalk["width"] == 400
    # positions: WGS84 [lon, lat]; lane 1's first node is 4.87 m west and 15 m north of the reference point
    plane = LocalPlane(44.837592, -0.579431)
    lon, lat = lanes[0]["geometry"]["coordinates"][0]
    assert plane.to_local(lat, lon) == pytest.approx((-4.87, 15.0), abs=1e-4)


def test_import_writes_offsets_from_the_reference_point_then_the_previous_node_in_the_smallest_form():
    doc = feature_collection(
        [
            lane_feature(
                [(3.0, 4.0), (3.0, 14.0), (-37.0, 14.5), (-37.0, 314.5)],
                lane_id=1,
                direction="ingress",
                stop_line_nodes=[0],
            )
        ]
    )
    mapem = to_map(doc)
    assert "header" not in mapem  # no station_id: the daemon puts its own
    [el] = mapem["map"]["intersections"]
    assert el["id"] == {"id": 77} and el["revision"] == 2 and el["laneWidth"] == 300
    assert el["refPoint"] == {"lat": 488566000, "long": 23522000}
    nodes = el["laneSet"][0]["nodeList"]["nodes"]
    assert [n["delta"] for n in nodes] == [
        {"node-XY1": {"x": 300, "y": 400}},  # from the reference point
        {"node-XY2": {"x": 0, "y": 1000}},  # from the previous node
        {"node-XY4": {"x": -4000, "y": 50}},
        {"node-XY6": {"x": 0, "y": 30000}},
    ]
    assert nodes[0]["attributes"] == {"localNode": ["stopLine"]}
    assert el["laneSet"][0]["laneAttributes"]["directionalUse"] == "80"


def test_import_widths_become_dwidth_and_come_back(codec):
    doc = feature_collection(
        [
            lane_feature([(0, 5), (0, 25), (0, 45)], lane_id=1, direction="ingress", width=350, widths=[350, 350, 420]),
            lane_feature([(4, 5), (4, 25)], lane_id=2, direction="egress", width=300),
        ]
    )
    mapem = to_map(doc)
    lanes = mapem["map"]["intersections"][0]["laneSet"]
    assert [n.get("attributes") for n in lanes[0]["nodeList"]["nodes"]] == [{"dWidth": 50}, None, {"dWidth": 70}]
    assert all("attributes" not in n for n in lanes[1]["nodeList"]["nodes"])
    back, _ = from_map(mapem)
    props = {f["properties"]["lane_id"]: f["properties"] for f in back["features"][1:]}
    assert props[1]["width"] == 350 and props[1]["widths"] == [350, 350, 420]
    assert props[2]["width"] == 300 and "widths" not in props[2]
    encode_decode(codec, mapem)


def test_connections_signal_groups_and_remote_lanes_round_trip(codec):
    doc = feature_collection(
        [
            lane_feature(
                [(0, 5), (0, 25)],
                lane_id=1,
                direction="ingress",
                signal_group=4,
                maneuvers="a000",
                connections=[
                    {"lane": 2, "maneuver": "8000", "connection_id": 1},
                    {"lane": 40, "signal_group": 5, "remote_intersection": {"region": 7, "id": 78}},
                ],
            ),
            lane_feature([(0, -5), (0, -25)], lane_id=2, direction="egress", name="south exit"),
            lane_feature([(5, 0), (25, 0)], lane_id=3, direction="ingress", connections="2, 1"),
        ],
        region=7,
        name="Place X",
        station_id=4711,
    )
    mapem = to_map(doc)
    assert mapem["header"] == {"protocolVersion": 2, "messageID": 5, "stationID": 4711}
    el = mapem["map"]["intersections"][0]
    assert el["id"] == {"region": 7, "id": 77} and el["name"] == "Place X"
    assert el["laneSet"][0]["connectsTo"] == [
        {"connectingLane": {"lane": 2, "maneuver": "8000"}, "signalGroup": 4, "connectionID": 1},
        {"connectingLane": {"lane": 40}, "remoteIntersection": {"region": 7, "id": 78}, "signalGroup": 5},
    ]
    assert el["laneSet"][2]["connectsTo"] == [{"connectingLane": {"lane": 2}}, {"connectingLane": {"lane": 1}}]
    assert encode_decode(codec, mapem) == mapem
    first, _ = from_map(mapem)
    assert from_map(to_map(first))[0] == first


def test_imported_map_file_is_one_the_daemon_loads(tmp_path):
    path = tmp_path / "77.json"
    path.write_text(
        json.dumps(to_map(feature_collection([lane_feature([(0, 5), (0, 25)], lane_id=1, direction="ingress")])))
    )
    obj, problem = read_map_file(path, "77")
    assert problem is None and obj["map"]["intersections"][0]["laneSet"][0]["laneID"] == 1


def test_import_reports_every_problem_naming_feature_and_property():
    far = lane_feature([(0, 5), (400, 5)], lane_id=5, direction="egress")
    doc = feature_collection(
        [
            lane_feature([(0, 5), (0, 25)], lane_id=1, direction="ingress", connections=[4, 9]),
            lane_feature([(0, -5), (0, -25)], lane_id=1, direction="egress"),
            lane_feature([(5, 0), (25, 0)], lane_id=300, direction="ingress"),
            lane_feature(
                [(5, 0), (25, 0)], lane_id=4, direction="sideways", signal_group=256, width=40000, colour="red"
            ),
            far,
            lane_feature([(1, 1)], lane_id=6, direction="none"),
            lane_feature([(1, 1), (2, 2)], lane_id=7, direction="ingress", width=1000),
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": []}, "properties": {}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}, "properties": {}},
        ],
        revision=200,
    )
    with pytest.raises(MapError) as e:
        to_map(doc)
    problems = e.value.problems
    expected = [
        "features: exactly one Point (the intersection's reference point) is needed, found features[0], features[9]",
        "features[0] (reference point): revision: 200 is outside 0..127",
        "features[1] (lane 1): connections[1]: lane 9 is not a lane of the intersection",
        "features[2] (lane 1): lane_id: 1 is already the lane of features[1]",
        "features[3]: lane_id: 300 is outside 0..255",
        "features[4] (lane 4): colour: not a lane property",
        "features[4] (lane 4): direction: 'sideways' is not one of ingress, egress, both, none",
        "features[4] (lane 4): signal_group: 256 is outside 0..255",
        "features[4] (lane 4): width: 40000 is outside 0..32767",
        "features[5] (lane 5): coordinates[1]: 400.00 m east, 0.00 m north of position 0 is beyond a node offset",
        "features[6] (lane 6): coordinates: a lane has 2..63 positions",
        "features[7] (lane 7): width: 1000 cm differs from the intersection's lane_width (300 cm) by more than",
        "features[8]: geometry 'Polygon': expected a Point",
    ]
    assert len(problems) == len(expected), problems
    for problem, needle in zip(problems, expected, strict=True):  # in feature order
        assert problem.startswith(needle), (needle, problems)


def test_import_refuses_what_is_not_a_feature_collection():
    for doc in ([], {"type": "Feature"}, {"type": "FeatureCollection", "features": {}}):
        with pytest.raises(MapError, match="not a GeoJSON FeatureCollection"):
            to_map(doc)
    with pytest.raises(MapError) as e:
        to_map({"type": "FeatureCollection", "features": []})
    assert e.value.problems == [
        "features: exactly one Point (the intersection's reference point) is needed, found none",
        "features: no LineString (lane): an intersection needs at least one lane",
    ]


def test_hex_fields_the_codec_refuses_are_named_by_feature():
    doc = feature_collection([lane_feature([(0, 5), (0, 25)], lane_id=1, direction="ingress", maneuvers="a0")])
    with pytest.raises(MapError) as e:
        to_map(doc)
    [problem] = e.value.problems
    assert problem.startswith("features[1] (lane 1): ") and "maneuvers" in problem


def test_export_of_a_lane_with_a_latlon_node_and_other_attributes():
    plane = LocalPlane(48.8566, 2.3522)
    lat, lon = plane.to_wgs84(10.0, 20.0)
    node = {
        "delta": {"node-LatLon": {"lon": round(lon * 1e7), "lat": round(lat * 1e7)}},
        "attributes": {"localNode": ["mergePoint"], "dElevation": 5},
    }
    m = small_map([lane(1, "40", [node, xy("node-XY1", 0, 500)])])
    doc, warnings = from_map(m)
    assert warnings == ["lane 1 node 0: attributes dElevation, localNode mergePoint not exported"]
    back = to_map(doc)["map"]["intersections"][0]["laneSet"][0]["nodeList"]["nodes"]
    # the absolute position becomes whole centimetres from the reference point (0.1 microdegree is about 1 cm)
    (first,), (second,) = back[0]["delta"].items(), back[1]["delta"].items()
    assert first[0] == "node-XY3" and abs(first[1]["x"] - 1000) <= 1 and abs(first[1]["y"] - 2000) <= 1
    assert second[0] == "node-XY1" and second[1]["x"] == 0 and abs(second[1]["y"] - 500) <= 1


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_damage_to_a_geojson_gives_map_error_or_a_valid_map(data, codec):
    """A property, a geometry part or a whole feature replaced by any JSON value: MapError or a MAP that
    encodes, never another exception."""
    doc, _ = from_map(example_map())
    feature = data.draw(st.sampled_from(doc["features"]))
    where = data.draw(st.sampled_from(["property", "coordinates", "feature", "geometry"]))
    value = data.draw(JSON_VALUES)
    if where == "property":
        key = data.draw(st.sampled_from(sorted(feature["properties"]) + ["extra"]))
        feature["properties"][key] = value
    elif where == "coordinates":
        coords = feature["geometry"]["coordinates"]
        coords[data.draw(st.integers(0, len(coords) - 1))] = value
    elif where == "feature":
        doc["features"][doc["features"].index(feature)] = value
    else:
        feature["geometry"] = value
    try:
        mapem = to_map(doc)
    except MapError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)
    else:
        codec.encode(codec.from_jer(mapem, catalog.MAPEM)[1], catalog.MAPEM)


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=64) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_any_input_to_load_pdu_gives_map_error_or_a_mapem(raw):
    from rsu.maps.geometry import load_pdu

    try:
        load_pdu(raw, "mapem")
    except MapError:
        pass


def test_a_map_file_without_header_round_trips_without_a_station_id():
    from rsu.maps.geometry import load_pdu

    doc = feature_collection([lane_feature([(0, 5), (0, 25)], lane_id=1, direction="ingress")])
    mapem = to_map(doc)
    assert "header" not in mapem
    loaded = load_pdu(json.dumps(mapem), "mapem")  # as `rsu map export MAPFILE` reads it: header filled, station 0
    assert loaded["header"]["stationID"] == 0
    again, _ = from_map(loaded)
    assert "station_id" not in again["features"][0]["properties"]
    assert to_map(again) == mapem
