"""config/examples/map-4arm-intersection.geojson is the export of the example MAPEM, and imports back to a MAPEM."""

from __future__ import annotations

import json

from conftest import EXAMPLES

from maps.support import example_map
from rsu import catalog
from rsu.maps.geojson import from_map, to_map

GEOJSON = EXAMPLES / "map-4arm-intersection.geojson"


def test_example_geojson_is_the_export_of_the_example_mapem():
    doc, _ = from_map(example_map())
    assert GEOJSON.read_text() == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def test_example_geojson_imports_to_the_example_intersection(codec):
    imported = to_map(json.loads(GEOJSON.read_text()))
    kind, value = codec.from_jer(imported, catalog.MAPEM)
    assert codec.decode(codec.encode(value, kind)).value == value
    original = example_map()["map"]["intersections"][0]
    el = imported["map"]["intersections"][0]
    assert {k: el[k] for k in ("id", "name", "revision", "refPoint", "laneWidth", "speedLimits")} == {
        k: original[k] for k in ("id", "name", "revision", "refPoint", "laneWidth", "speedLimits")
    }
    assert [ln["laneID"] for ln in el["laneSet"]] == [ln["laneID"] for ln in original["laneSet"]]
    assert [ln.get("connectsTo") for ln in el["laneSet"]] == [ln.get("connectsTo") for ln in original["laneSet"]]
    # lanes drawn node by node come back node by node, offsets and forms unchanged
    for mine, theirs in zip(el["laneSet"], original["laneSet"], strict=True):
        if "nodes" in theirs["nodeList"]:
            assert [n["delta"] for n in mine["nodeList"]["nodes"]] == [n["delta"] for n in theirs["nodeList"]["nodes"]]
