"""MAPs and SPATEMs the tests of rsu.maps build: the example intersection and small hand-made ones."""

from __future__ import annotations

import copy
import json

from conftest import EXAMPLES


def example_map() -> dict:
    return json.loads((EXAMPLES / "mapem-4arm-intersection.json").read_text())


def example_spat() -> dict:
    return json.loads((EXAMPLES / "spatem-4arm-intersection.json").read_text())


def lane(
    lane_id: int,
    direction: str,
    nodes: list[dict],
    *,
    kind: str = "vehicle",
    connects: list[dict] | None = None,
    **extra,
) -> dict:
    bits = {"vehicle": "00"}.get(kind, "0000")
    out = {
        "laneID": lane_id,
        **extra,
        "laneAttributes": {"directionalUse": direction, "sharedWith": "0000", "laneType": {kind: bits}},
        "nodeList": {"nodes": nodes},
    }
    if connects:
        out["connectsTo"] = connects
    return out


def xy(choice: str, x: int, y: int, **attributes) -> dict:
    node: dict = {"delta": {choice: {"x": x, "y": y}}}
    if attributes:
        node["attributes"] = attributes
    return node


def small_map(lanes: list[dict], *, lane_width: int | None = 350, region: int | None = None) -> dict:
    """A MAP file (no header, as MAP files may be) of intersection 77 at 48.8566 N, 2.3522 E."""
    ident = {"id": 77} if region is None else {"region": region, "id": 77}
    el: dict = {"id": ident, "revision": 5, "refPoint": {"lat": 488566000, "long": 23522000}, "laneSet": lanes}
    if lane_width is not None:
        el["laneWidth"] = lane_width
    return {"map": {"msgIssueRevision": 5, "intersections": [el]}}


def with_state(spat: dict, group: int, event_state: str) -> dict:
    """A copy of ``spat`` whose ``group`` is now in ``event_state``."""
    out = copy.deepcopy(spat)
    for state in out["spat"]["intersections"][0]["states"]:
        if state["signalGroup"] == group:
            state["state-time-speed"][0]["eventState"] = event_state
    return out
