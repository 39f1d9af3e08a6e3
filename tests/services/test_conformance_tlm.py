"""TLM message-format test purposes TLM_GEN_MSGF_BV_06..14 (IUT sends SPATEM).

The signal state comes from the application: either a controller feed (the controller-neutral
model of ``rsu.integrations.spat``, which is what the TSCBM and JSON feeds produce) or a whole
SPATEM payload. Each test checks the SPATEM as a vehicle receives it: the signed bytes verified
by the real verifier, then the UPER PDU decoded. The MAPEM of intersection 1201 defines signal
groups 1-8 (vehicle lanes, connections 1-3 and 5-15) and 9-12 (crosswalks, connections 4, 8, 12, 16).
"""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.clock import TIMEMARK_UNKNOWN, time_mark
from rsu.integrations.spat import IntersectionUpdate, SignalEvent, SignalGroupState, spatem_payload
from rsu.services.errors import ServiceError
from rsu.services.rlt import signal_groups
from services.secured import secured  # noqa: F401
from services.support import example

assert secured  # the fixture, imported for this module

VEHICLE_GROUPS, PEDESTRIAN_GROUPS = range(1, 9), range(9, 13)
ACTIVE = {"permissive-Movement-Allowed", "protected-Movement-Allowed"}


@pytest.fixture
def rsu(secured):
    rsu = secured({"spatem": None}, {"mapem": None})
    rsu.layer.trigger("rlt", {"payload": example("mapem")})
    rsu.sent()
    return rsu


def on_air(rsu, codec) -> dict:
    """The SPATEM a neighbour receives: signature and SSP verified, PDU decoded (JER-like values)."""
    [(tx, data)] = [(t, d) for t, d in rsu.sent("tlm")]
    res = rsu.verify(data, catalog.SPATEM)
    assert res.ok, res.detail
    return codec.to_jer(catalog.SPATEM, res.pdu.value)


def movement(groups, ref: float) -> IntersectionUpdate:
    return IntersectionUpdate(key="1201", timestamp=ref, groups=tuple(groups))


def controller_state(ref: float) -> IntersectionUpdate:
    """Vehicle group 1 green (protected) with the amber and red that follow; the others red with their next
    green pending; pedestrian group 9 walking, the other crossings don't-walk."""
    groups = [
        SignalGroupState(
            1,
            (
                SignalEvent(
                    "protected-Movement-Allowed",
                    start=ref - 4,
                    min_end=ref + 6,
                    max_end=ref + 20,
                    likely=ref + 11,
                    confidence=12,
                ),
                SignalEvent("protected-clearance", start=ref + 11, min_end=ref + 14, max_end=ref + 23, likely=ref + 14),
                SignalEvent("stop-And-Remain", start=ref + 14, min_end=ref + 40, likely=ref + 55, next_time=ref + 75),
            ),
        )
    ]
    for g in list(VEHICLE_GROUPS)[1:]:
        groups.append(
            SignalGroupState(
                g,
                (
                    SignalEvent("stop-And-Remain", min_end=ref + 14 + g, likely=ref + 20 + g),
                    SignalEvent(
                        "protected-Movement-Allowed", start=ref + 20 + g, min_end=ref + 30 + g, likely=ref + 35 + g
                    ),
                ),
            )
        )
    groups.append(SignalGroupState(9, (SignalEvent("protected-Movement-Allowed", min_end=ref + 3, likely=ref + 7),)))
    for g in list(PEDESTRIAN_GROUPS)[1:]:
        groups.append(SignalGroupState(g, (SignalEvent("stop-And-Remain", min_end=ref + 30, likely=ref + 40),)))
    return movement(groups, ref)


def trigger_from_controller(rsu, update: IntersectionUpdate):
    payload, corrections = spatem_payload(update, rsu.clock.now())
    assert corrections == []
    return rsu.layer.trigger("tlm", {"payload": payload})


def by_group(spat: dict) -> dict:
    return {s["signalGroup"]: s for s in spat["spat"]["intersections"][0]["states"]}


def map_groups() -> tuple[set[int], set[int]]:
    """(vehicle, pedestrian) signal groups the example MAPEM defines, from its lanes' types."""
    ix = example("mapem")["map"]["intersections"][0]
    vehicle, pedestrian = set(), set()
    for lane in ix["laneSet"]:
        groups = signal_groups({"laneSet": [lane]})
        (pedestrian if "crosswalk" in lane["laneAttributes"]["laneType"] else vehicle).update(groups)
    return vehicle, pedestrian


def test_map_fixture_groups():
    assert map_groups() == (set(VEHICLE_GROUPS), set(PEDESTRIAN_GROUPS))


@pytest.mark.parametrize(
    "tp,groups",
    [("TP_IS_TLM_GEN_MSGF_BV_06", VEHICLE_GROUPS), ("TP_IS_TLM_GEN_MSGF_BV_07", PEDESTRIAN_GROUPS)],
    ids=["TP_IS_TLM_GEN_MSGF_BV_06", "TP_IS_TLM_GEN_MSGF_BV_07"],
)
def test_current_movement_state_for_every_manoeuvre(tp, groups, rsu, codec, clock):
    """Every vehicular (BV_06) / pedestrian (BV_07) manoeuvre of the MAPEM has a MovementState whose first
    event is its current state; a state that leaves one out is refused, naming the missing group, and
    nothing is sent."""
    trigger_from_controller(rsu, controller_state(clock.now()))
    states = by_group(on_air(rsu, codec))
    for g in groups:
        assert states[g]["state-time-speed"][0]["eventState"], g
    assert states[1 if 1 in groups else 9]["state-time-speed"][0]["eventState"] == "protected-Movement-Allowed"
    clock.advance(1)
    missing = next(iter(groups))
    partial = controller_state(clock.now())
    partial = movement([g for g in partial.groups if g.signal_group != missing], clock.now())
    with pytest.raises(ServiceError) as e:
        trigger_from_controller(rsu, partial)
    assert e.value.code == "signal_group_mismatch" and f"[{missing}] defined by the MAPEM are missing" in e.value.reason
    assert rsu.sent("tlm") == []


def test_TP_IS_TLM_GEN_MSGF_BV_08(rsu, codec, clock):
    """Every active manoeuvre (permissive/protected movement allowed) carries its earliest change time
    (TimeChangeDetails.minEndTime, relative to the SPATEM's hour); one the controller cannot predict is sent
    as 'unknown' (36001), never left out."""
    now = clock.now()
    trigger_from_controller(rsu, controller_state(now))
    states = by_group(on_air(rsu, codec))
    active = [(g, ev) for g, s in states.items() for ev in s["state-time-speed"][:1] if ev["eventState"] in ACTIVE]
    assert {g for g, _ in active} == {1, 9}
    for g, ev in active:
        assert ev["timing"]["minEndTime"] == time_mark(now + (6 if g == 1 else 3), now), g
    clock.advance(0.5)
    unknown = controller_state(clock.now())
    unknown = movement(
        [SignalGroupState(1, (SignalEvent("protected-Movement-Allowed"),))] + list(unknown.groups[1:]), clock.now()
    )
    trigger_from_controller(rsu, unknown)
    assert by_group(on_air(rsu, codec))[1]["state-time-speed"][0]["timing"]["minEndTime"] == TIMEMARK_UNKNOWN


def test_TP_IS_TLM_GEN_MSGF_BV_09(rsu, codec, clock):
    """The next expected states follow the current one, each with its predicted change times, and pending
    manoeuvres carry their start time; nextTime says when the group's state is next expected to change."""
    now = clock.now()
    trigger_from_controller(rsu, controller_state(now))
    states = by_group(on_air(rsu, codec))
    events = states[1]["state-time-speed"]
    assert [e["eventState"] for e in events] == ["protected-Movement-Allowed", "protected-clearance", "stop-And-Remain"]
    assert events[1]["timing"]["startTime"] == time_mark(now + 11, now)
    assert events[1]["timing"]["minEndTime"] == time_mark(now + 14, now)
    assert events[1]["timing"]["likelyTime"] == time_mark(now + 14, now)
    assert events[2]["timing"]["nextTime"] == time_mark(now + 75, now)
    pending = states[4]["state-time-speed"][1]
    assert pending["eventState"] == "protected-Movement-Allowed"
    assert pending["timing"]["startTime"] == time_mark(now + 24, now)


def test_TP_IS_TLM_GEN_MSGF_BV_10(rsu, codec):
    """Prioritization information (the public-transport priority granted to bus 2104711 on signal group 5) is
    sent in the addGrpC regional extension of the IntersectionState (regionId 3), and the event it changed
    says why; the AT's prioritization permission covers it."""
    rsu.layer.trigger("tlm", {"payload": example("spatem")})
    ix = on_air(rsu, codec)["spat"]["intersections"][0]
    [ext] = ix["regional"]
    assert ext["regionId"] == 3
    assert ext["regExtValue"]["activePrioritizations"] == [
        {"stationID": 2104711, "priorState": "granted", "signalGroup": 5}
    ]
    reason = by_group({"spat": {"intersections": [ix]}})[5]["state-time-speed"][0]["regional"][0]
    assert reason == {"regionId": 3, "regExtValue": {"stateChangeReason": "publicTransportPriority"}}


def with_states(changes: dict) -> dict:
    """The example SPATEM with ``changes`` ({signal group: function(MovementState)}) applied."""
    v = example("spatem")
    for s in v["spat"]["intersections"][0]["states"]:
        if s["signalGroup"] in changes:
            changes[s["signalGroup"]](s)
    return v


def test_TP_IS_TLM_GEN_MSGF_BV_11(rsu, codec):
    """Pedestrian detection in a crosswalk is sent per manoeuvre: the ConnectionManeuverAssist of the crosswalk
    connection (connection 4 of signal group 9) says pedBicycleDetect, the other crossing says none."""
    v = with_states(
        {
            9: lambda s: s.update(maneuverAssistList=[{"connectionID": 4, "pedBicycleDetect": True}]),
            10: lambda s: s.update(maneuverAssistList=[{"connectionID": 8, "pedBicycleDetect": False}]),
        }
    )
    rsu.layer.trigger("tlm", {"payload": v})
    states = by_group(on_air(rsu, codec))
    assert states[9]["maneuverAssistList"] == [{"connectionID": 4, "pedBicycleDetect": True}]
    assert states[10]["maneuverAssistList"] == [{"connectionID": 8, "pedBicycleDetect": False}]


def advice(kind: str, speed: int, distance: int | None = None) -> dict:
    out = {"type": kind, "speed": speed}
    if distance is not None:
        out["distance"] = distance
    return out


def test_TP_IS_TLM_GEN_MSGF_BV_12(rsu, codec):
    """An optimal (eco-drive) speed is sent per lane's manoeuvre: the advisory speed of each ingress lane's
    signal group is on the air as given (0.1 m/s units, over the given distance)."""
    v = with_states(
        {
            1: lambda s: s["state-time-speed"][0].update(speeds=[advice("ecoDrive", 125, 250)]),
            2: lambda s: s["state-time-speed"][0].update(speeds=[advice("ecoDrive", 97, 180)]),
        }
    )
    rsu.layer.trigger("tlm", {"payload": v})
    states = by_group(on_air(rsu, codec))
    assert states[1]["state-time-speed"][0]["speeds"] == [advice("ecoDrive", 125, 250)]
    assert states[2]["state-time-speed"][0]["speeds"] == [advice("ecoDrive", 97, 180)]
    assert "speeds" not in states[3]["state-time-speed"][0]


def test_TP_IS_TLM_GEN_MSGF_BV_13(rsu, codec):
    """The signal timing progression speed along the road (the green-wave speed) is sent as an advisory
    speed of type greenwave on the movements of the coordinated approach (groups 1 and 5)."""
    wave = advice("greenwave", 139)
    v = with_states({g: (lambda s: s["state-time-speed"][0].update(speeds=[wave])) for g in (1, 5)})
    rsu.layer.trigger("tlm", {"payload": v})
    states = by_group(on_air(rsu, codec))
    assert [g for g, s in states.items() if s["state-time-speed"][0].get("speeds") == [wave]] == [1, 5]


def test_TP_IS_TLM_GEN_MSGF_BV_14(rsu, codec):
    """Queue length and available storage length are sent per connection towards an egress lane (connections
    1 and 2 of group 1: to lanes 9 and 12), in metres."""
    assist = [
        {"connectionID": 1, "queueLength": 42, "availableStorageLength": 18},
        {"connectionID": 2, "queueLength": 0, "availableStorageLength": 60},
    ]
    v = with_states({1: lambda s: s.update(maneuverAssistList=assist)})
    rsu.layer.trigger("tlm", {"payload": v})
    assert by_group(on_air(rsu, codec))[1]["maneuverAssistList"] == assist
