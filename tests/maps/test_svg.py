"""rsu.maps.svg: the drawing holds what the MAP holds, where the node offsets put it, and SPATEM states colour it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maps.support import example_map, example_spat, lane, small_map, with_state, xy
from rsu.maps.geometry import select
from rsu.maps.svg import (
    STATE_CLASS,
    STATE_COLOUR,
    render,
    render_mapem,
    signal_states,
    state_class,
)

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(text: str) -> ET.Element:
    return ET.fromstring(text.encode())


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def points(attr: str) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in (p.split(",") for p in attr.split())]


def flat(pts) -> list[float]:
    return [v for p in pts for v in p]


def node_positions_cm(raw_lane: dict) -> list[tuple[int, int]]:
    """The test's own sum of a lane's node-XY offsets (first from the reference point)."""
    x = y = 0
    out = []
    for node in raw_lane["nodeList"]["nodes"]:
        ((_, d),) = node["delta"].items()
        x, y = x + d["x"], y + d["y"]
        out.append((x, y))
    return out


def test_element_counts_match_the_map():
    m = example_map()
    lanes = m["map"]["intersections"][0]["laneSet"]
    root = parse(render(select(m, None)))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(by_class(root, "lane")) == len(lanes) == 16
    assert len(by_class(root, "lane-surface")) == len(by_class(root, "lane-centre")) == 16
    assert sorted(int(e.get("data-lane")) for e in by_class(root, "lane")) == sorted(ln["laneID"] for ln in lanes)
    assert [e.text for e in by_class(root, "lane-id")] == [str(ln["laneID"]) for ln in lanes]
    connections = [(ln["laneID"], c) for ln in lanes for c in ln.get("connectsTo", [])]
    drawn = by_class(root, "connection")
    assert len(drawn) == len(connections) == 16
    assert [(int(e.get("data-from")), int(e.get("data-to")), int(e.get("data-signal-group"))) for e in drawn] == [
        (lid, c["connectingLane"]["lane"], c["signalGroup"]) for lid, c in connections
    ]
    pairs = {(lid, c["signalGroup"]) for lid, c in connections}
    labels = by_class(root, "signal-group")
    assert len(labels) == len(pairs) == 12
    assert {(int(e.get("data-lane")), int(e.get("data-signal-group"))) for e in labels} == pairs
    assert all(e.text == f"S{e.get('data-signal-group')}" for e in labels)
    ingress_vehicle = [
        ln["laneID"]
        for ln in lanes
        if int(ln["laneAttributes"]["directionalUse"], 16) & 0x80 and "vehicle" in ln["laneAttributes"]["laneType"]
    ]
    stop_lines = by_class(root, "stop-line")
    assert len(ingress_vehicle) == 8
    assert sorted(int(e.get("data-lane")) for e in stop_lines) == sorted(ingress_vehicle)
    # arrows: one per one-way lane, two per two-way crosswalk
    assert len(by_class(root, "lane-arrow")) == 12 * 1 + 4 * 2
    assert len(by_class(root, "ref-point")) == 1


def test_coordinates_are_the_node_offsets_in_metres_with_north_up():
    m = example_map()
    root = parse(render(select(m, None)))
    centres = {int(g.get("data-lane")): points(g.find("s:polyline", NS).get("points")) for g in by_class(root, "lane")}
    checked = 0
    for raw in m["map"]["intersections"][0]["laneSet"]:
        if "nodes" not in raw["nodeList"]:
            continue
        expected = [(x / 100, -y / 100) for x, y in node_positions_cm(raw)]
        assert flat(centres[raw["laneID"]]) == pytest.approx(flat(expected), abs=1e-3)
        checked += 1
    assert checked == 12
    # lane 2 is computed from lane 1, 325 cm to the east
    assert flat(centres[2]) == pytest.approx(flat((x + 3.25, y) for x, y in centres[1]), abs=1e-3)
    # a stop line crosses its lane at the first node, as wide as the lane (3.25 m)
    [line] = [e for e in by_class(root, "stop-line") if e.get("data-lane") == "1"]
    x1, y1, x2, y2 = (float(line.get(k)) for k in ("x1", "y1", "x2", "y2"))
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx(centres[1][0], abs=1e-3)
    assert abs(x2 - x1) == pytest.approx(3.25, abs=1e-3) and y1 == y2  # lane 1 runs north-south
    # a connection runs from the first node of its lane to the first node of the lane it connects to
    [conn] = [e for e in by_class(root, "connection") if e.get("id") == "connection-1201-1-0"]
    d = conn.get("d").replace("M", "").replace("Q", "").split()
    assert flat([points(d[0])[0], points(d[-1])[0]]) == pytest.approx(flat([centres[1][0], centres[9][0]]), abs=1e-3)
    # the view box holds every node and the reference point
    vx, vy, vw, vh = (float(v) for v in root.get("viewBox").split())
    every = [p for pts in centres.values() for p in pts] + [(0.0, 0.0)]
    assert all(vx < x < vx + vw and vy < y < vy + vh for x, y in every)


def test_widths_and_node_stop_lines_are_drawn_where_the_map_puts_them():
    m = small_map(
        [
            lane(1, "80", [xy("node-XY1", 0, 500), xy("node-XY3", 0, 2000, dWidth=150, localNode=["stopLine"])]),
            lane(2, "40", [xy("node-XY1", 0, -500), xy("node-XY3", 0, -2000)]),
        ]
    )
    root = parse(render(select(m, None)))
    surface = points(by_class(root, "lane-surface")[0].get("points"))
    xs_first = sorted(x for x, y in surface if y == pytest.approx(-5.0))
    xs_second = sorted(x for x, y in surface if y == pytest.approx(-25.0))
    assert xs_first == pytest.approx([-1.75, 1.75]) and xs_second == pytest.approx([-2.5, 2.5])
    lines = {(e.get("data-lane"), e.get("data-node")) for e in by_class(root, "stop-line")}
    assert lines == {("1", "0"), ("1", "1")}
    assert len(by_class(root, "connection")) == 0 and len(by_class(root, "signal-group")) == 0


def test_ids_are_stable_and_unique():
    x = select(example_map(), None)
    text = render(x)
    assert render(x) == text
    ids = [e.get("id") for e in parse(text).iter() if e.get("id")]
    assert len(ids) == len(set(ids)) > 16 + 16 + 12 + 8
    assert "lane-1201-13" in ids and "stopline-1201-4-0" in ids and "signal-group-1201-13-9" in ids
    m = small_map([lane(1, "80", [xy("node-XY1", 0, 5), xy("node-XY1", 0, 5)])], region=7)
    assert parse(render(select(m, None))).find("s:g", NS).get("id") == "lanes-7-77"


def test_spat_colours_follow_the_state_of_each_signal_group():
    x = select(example_map(), None)
    spat = example_spat()
    green = parse(render(x, signal_states(spat, x)))  # signal group 1: permissive-Movement-Allowed

    def group_1(root):
        conns = [e for e in by_class(root, "connection") if e.get("data-signal-group") == "1"]
        [label] = [e for e in by_class(root, "signal-group") if e.get("data-signal-group") == "1"]
        [stop] = [e for e in by_class(root, "stop-line") if e.get("data-lane") == "1"]
        [lane1] = [e for e in by_class(root, "lane") if e.get("data-lane") == "1"]
        return (
            {e.get("stroke") for e in conns},
            {e.get("class") for e in conns},
            label.get("fill"),
            stop.get("stroke"),
            lane1.get("data-state"),
        )

    assert len([e for e in by_class(green, "connection") if e.get("data-signal-group") == "1"]) == 2
    assert group_1(green) == (
        {STATE_COLOUR["green"]},
        {"connection state-green"},
        STATE_COLOUR["green"],
        STATE_COLOUR["green"],
        "green",
    )
    red = parse(render(x, signal_states(with_state(spat, 1, "stop-And-Remain"), x)))
    assert group_1(red) == (
        {STATE_COLOUR["red"]},
        {"connection state-red"},
        STATE_COLOUR["red"],
        STATE_COLOUR["red"],
        "red",
    )
    amber = parse(render(x, signal_states(with_state(spat, 1, "protected-clearance"), x)))
    assert group_1(amber)[0] == {STATE_COLOUR["amber"]} and group_1(amber)[4] == "amber"

    # other groups did not change
    def others(root):
        return [
            (e.get("id"), e.get("stroke")) for e in by_class(root, "connection") if e.get("data-signal-group") != "1"
        ]

    assert others(green) == others(red)
    # without --spat nothing is coloured by state
    plain = parse(render(x))
    assert not [e for e in plain.iter() if "state-" in (e.get("class") or "")]


def test_a_group_the_spatem_does_not_mention_is_unknown_and_a_lane_takes_its_most_permissive_state():
    conns = [{"connectingLane": {"lane": 2}, "signalGroup": 1}, {"connectingLane": {"lane": 2}, "signalGroup": 2}]
    m = small_map(
        [
            lane(1, "80", [xy("node-XY1", 0, 500), xy("node-XY1", 0, 300)], connects=conns),
            lane(2, "40", [xy("node-XY1", 0, -500), xy("node-XY1", 0, -300)]),
        ]
    )
    x = select(m, None)
    root = parse(render(x, {1: "stop-And-Remain", 2: "pre-Movement"}))
    assert [e.get("class") for e in by_class(root, "connection")] == ["connection state-red", "connection state-amber"]
    assert by_class(root, "lane")[0].get("data-state") == "amber"
    root = parse(render(x, {}))
    assert {e.get("class") for e in by_class(root, "connection")} == {"connection state-unknown"}


def test_every_movement_phase_state_has_a_colour():
    from rsu.integrations.spat import MOVEMENT_PHASE_STATES

    assert set(STATE_CLASS) == set(MOVEMENT_PHASE_STATES)
    assert [state_class(s) for s in MOVEMENT_PHASE_STATES] == [
        "unknown",
        "dark",
        "red",
        "red",
        "amber",
        "green",
        "green",
        "amber",
        "amber",
        "amber",
    ]
    assert state_class(None) == "unknown"


def test_spat_of_another_intersection_is_refused():
    x = select(small_map([lane(1, "80", [xy("node-XY1", 0, 5), xy("node-XY1", 0, 5)])]), None)
    with pytest.raises(ValueError, match="no state for intersection 77"):
        signal_states(example_spat(), x)


NODES = st.lists(
    st.tuples(st.integers(-512, 511), st.integers(-512, 511), st.integers(-512, 511)), min_size=2, max_size=5
)


@settings(max_examples=60, deadline=None)
@given(
    lanes=st.lists(
        st.tuples(
            NODES,
            st.sampled_from(["00", "40", "80", "c0"]),
            st.lists(st.tuples(st.integers(0, 6), st.integers(0, 255)), max_size=3),
        ),
        min_size=1,
        max_size=5,
    ),
    states=st.dictionaries(st.integers(0, 255), st.sampled_from(sorted(STATE_CLASS)), max_size=4),
)
def test_any_valid_geometry_draws_a_parsable_svg_with_one_element_per_item(lanes, states):
    """Coincident nodes, negative widths, connections to absent lanes: still one element each."""
    built = [
        lane(
            i,
            direction,
            [xy("node-XY1", x, y, dWidth=w) if w else xy("node-XY1", x, y) for x, y, w in nodes],
            connects=[{"connectingLane": {"lane": to}, "signalGroup": g} for to, g in conns],
        )
        for i, (nodes, direction, conns) in enumerate(lanes)
    ]
    x = select(small_map(built), None)
    root = parse(render(x, states))
    assert len(by_class(root, "lane")) == len(lanes)
    assert len(by_class(root, "connection")) == sum(len(c) for _, _, c in lanes)
    assert len(by_class(root, "signal-group")) == sum(len({g for _, g in c}) for _, _, c in lanes)
    assert len(by_class(root, "stop-line")) == sum(1 for _, d, _ in lanes if d in ("80", "c0"))
    missing = sum(1 for _, _, c in lanes for to, _ in c if to >= len(lanes))
    assert len(by_class(root, "missing")) == missing


def test_render_mapem_is_select_and_render_for_other_views():
    m, spat = example_map(), example_spat()
    x = select(m, None)
    assert render_mapem(m) == render(x)
    assert render_mapem(m, spat, "1201") == render(x, signal_states(spat, x))
    inline = render_mapem(m, inline=True)
    assert inline.startswith("<svg ") and "<?xml" not in inline and parse(inline).tag.endswith("svg")
