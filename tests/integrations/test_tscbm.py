"""NTCIP 1202 TSCBM blobs (byte fixtures built from the layout in docs/integrations.md) -> phase map -> SPATEM."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.support import PHASE_MAP, posix, tscbm_bytes
from rsu import catalog
from rsu.clock import time_mark
from rsu.integrations.config import ConfigError, ControllerFeedConfig, SignalGroupMapConfig
from rsu.integrations.tscbm import TscbmError, movement_state, parse_tscbm

T = posix("2025-05-14T08:12:23.450Z")
SOD = 8 * 3600 + 12 * 60 + 23  # seconds of the UTC day of T (ms 450)


def blob(**kw) -> bytes:
    """N-S through green (phases 2, 6; peds 2, 6 walk), everything else red; overlap 1 red."""
    times = {p: (0, 0, 0, 0, 0, 0) for p in range(1, 9)}
    times[2] = (126, 248, 80, 80, 0, 0)  # green for 12.6..24.8 s more, walk 8 s
    times[6] = (126, 248, 80, 80, 0, 0)
    times[4] = (140, 260, 140, 260, 0, 0)
    times[1] = (300, 420, 0, 0, 300, 420)  # overlap 1 uses block 1's overlap times
    args = dict(
        phases=times,
        greens=(2, 6),
        reds=(1, 3, 4, 5, 7, 8),
        walks=(2, 6),
        dont_walks=(4, 8),
        overlap_reds=(1,),
        seconds_of_day=SOD,
        milliseconds=450,
        plan=1,
        sequence=7,
    )
    args.update(kw)
    return tscbm_bytes(**args)


def states(codec, tx) -> dict[int, list[dict]]:
    ix = codec.to_jer(catalog.SPATEM, codec.decode(tx.pdu).value)["spat"]["intersections"][0]
    return {s["signalGroup"]: s["state-time-speed"] for s in ix["states"]}


@pytest.fixture
def tscbm_feed(make_feed):
    return make_feed(
        format="tscbm", intersections=[{"id": 1201, "controller": "192.0.2.10", "signal_groups": PHASE_MAP}]
    )


def test_layout_is_parsed_field_by_field():
    b = blob(flashing=(7,), ped_calls=(4,), ped_detects=(8,), status=0x21, discontinuous=0x12)
    assert len(b) == 245 and b[0] == 0xCD and b[1] == 16
    t = parse_tscbm(b)
    assert t.phases[2].veh_min == 126 and t.phases[2].veh_max == 248 and t.phases[2].ped_min == 80
    assert t.phases[1].ovl_min == 300 and t.phases[1].ovl_max == 420
    assert t.greens == 0b100010 and t.reds == 0b11011101 and t.walks == 0b100010 and t.dont_walks == 0b10001000
    assert t.overlap_reds == 1 and t.flashing_phases == 0b1000000
    assert (t.intersection_status, t.plan, t.discontinuous, t.sequence) == (0x21, 1, 0x12, 7)
    assert (t.seconds_of_day, t.milliseconds, t.ped_calls, t.ped_detects) == (SOD, 450, 0b1000, 0b10000000)
    assert set(t.phases) == set(range(1, 9))  # blocks 9..16 have phase number 0: unused


def test_blob_drives_the_4arm_spatem_through_the_phase_map(tscbm_feed, mapped, codec):
    """Vehicle phases, pedestrian phases and an overlap land on their signal groups; green is protected or
    permissive as configured; times-to-change are added to the blob's own timestamp."""
    r = tscbm_feed.on_datagram(blob(), ("192.0.2.10", 6053))
    assert r.accepted, r
    [tx] = [t for t in mapped.due() if t.service == "tlm"]
    s = states(codec, tx)
    assert sorted(s) == list(range(1, 13))
    assert s[1] == [
        {
            "eventState": "permissive-Movement-Allowed",
            "timing": {"minEndTime": time_mark(T + 12.6, T), "maxEndTime": time_mark(T + 24.8, T)},
        }
    ]
    assert s[5][0]["eventState"] == "permissive-Movement-Allowed"
    assert s[3] == [
        {
            "eventState": "stop-And-Remain",
            "timing": {"minEndTime": time_mark(T + 14.0, T), "maxEndTime": time_mark(T + 26.0, T)},
        }
    ]
    assert s[2][0]["eventState"] == "stop-And-Remain"
    assert s[8] == [
        {
            "eventState": "stop-And-Remain",  # overlap 1, times from block 1's overlap fields
            "timing": {"minEndTime": time_mark(T + 30.0, T), "maxEndTime": time_mark(T + 42.0, T)},
        }
    ]
    assert s[10][0] == {
        "eventState": "permissive-Movement-Allowed",
        "timing": {"minEndTime": time_mark(T + 8, T), "maxEndTime": time_mark(T + 8, T)},
    }
    assert s[9][0]["eventState"] == "stop-And-Remain"  # don't walk
    assert s[7][0] == {"eventState": "stop-And-Remain", "timing": {"minEndTime": 36001}}  # no prediction (0, 0)


def test_protected_or_permissive_per_timing_plan(tscbm_feed, mapped, codec, clock):
    """Signal group 3 (phase 4) is permissive, but protected under timing plan 3 (issue V2X-Hub #233)."""
    for plan, expected in ((1, "permissive-Movement-Allowed"), (3, "protected-Movement-Allowed")):
        clock.advance(0.1)
        b = blob(
            greens=(4, 8),
            reds=(1, 2, 3, 5, 6, 7),
            walks=(),
            dont_walks=(2, 4, 6, 8),
            plan=plan,
            milliseconds=450 + round((clock.now() - T) * 1000),
        )
        assert tscbm_feed.on_datagram(b, ("192.0.2.10", 6053)).accepted
        s = states(codec, [t for t in mapped.due() if t.service == "tlm"][-1])
        assert s[3][0]["eventState"] == expected
        assert s[7][0]["eventState"] == "permissive-Movement-Allowed"  # no plan override
    clock.advance(0.1)
    b = blob(
        greens=(),
        yellows=(4,),
        reds=(1, 2, 3, 5, 6, 7, 8),
        walks=(),
        plan=3,
        milliseconds=450 + round((clock.now() - T) * 1000),
    )
    assert tscbm_feed.on_datagram(b, ("192.0.2.10", 6053)).accepted
    s = states(codec, [t for t in mapped.due() if t.service == "tlm"][-1])
    assert s[3][0]["eventState"] == "protected-clearance"


@pytest.mark.parametrize(
    "lights, expected",
    [
        (dict(reds=(2,)), "stop-And-Remain"),
        (dict(reds=(2,), flashing=(2,)), "stop-Then-Proceed"),
        (dict(yellows=(2,)), "permissive-clearance"),
        (dict(yellows=(2,), flashing=(2,)), "caution-Conflicting-Traffic"),
        (dict(greens=(2,)), "permissive-Movement-Allowed"),
        (dict(), "dark"),
        (dict(reds=(2,), greens=(2,)), "unavailable"),  # contradictory outputs: never guess
    ],
)
def test_vehicle_phase_states(lights, expected):
    """Flashing only qualifies red/yellow (the "SPaT shows flash permanently" bug, V2X-Hub #35)."""
    args = dict(phases={2: (10, 20, 0, 0, 0, 0)}, flashing=(), reds=(), yellows=(), greens=())
    args.update(lights)
    t = parse_tscbm(tscbm_bytes(**args))
    assert movement_state(t, SignalGroupMapConfig.from_dict({"signal_group": 1, "phase": 2}))[0] == expected


def test_pedestrian_and_overlap_states():
    t = parse_tscbm(
        tscbm_bytes(
            phases={2: (0, 0, 50, 70, 0, 0), 3: (0, 0, 0, 0, 40, 60)},
            ped_clears=(2,),
            overlap_greens=(3,),
            flashing_overlaps=(),
        )
    )
    ped = SignalGroupMapConfig.from_dict(
        {"signal_group": 10, "phase": 2, "type": "pedestrian", "movement": "protected"}
    )
    ovl = SignalGroupMapConfig.from_dict({"signal_group": 8, "overlap": 3})
    assert movement_state(t, ped) == ("protected-clearance", 50, 70, None)
    assert movement_state(t, ovl) == ("permissive-Movement-Allowed", 40, 60, None)
    missing = SignalGroupMapConfig.from_dict({"signal_group": 1, "phase": 9})
    assert movement_state(t, missing)[0] == "unavailable"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "tscbm-too-short"),
        (b"\xcd", "tscbm-too-short"),
        (b"\xce" + tscbm_bytes()[1:], "tscbm-bad-header"),
        (tscbm_bytes()[:-1], "tscbm-bad-length"),
        (tscbm_bytes() + b"\x00", "tscbm-bad-length"),
        (tscbm_bytes(blocks=0)[:2] + bytes(35), "tscbm-bad-block-count"),
        (tscbm_bytes(phases={17: (0,) * 6}), "tscbm-bad-phase"),
        (tscbm_bytes(seconds_of_day=86400), "tscbm-bad-timestamp"),
        (tscbm_bytes(milliseconds=1000), "tscbm-bad-timestamp"),
    ],
)
def test_malformed_blobs_are_dropped_and_counted(tscbm_feed, mapped, data, reason):
    with pytest.raises(TscbmError):
        parse_tscbm(data)
    r = tscbm_feed.on_datagram(data, ("192.0.2.10", 6053))
    assert (r.accepted, r.reason) == (False, reason)
    assert tscbm_feed.counters.dropped(reason) == 1
    assert [t for t in mapped.due() if t.service == "tlm"] == []


def test_blob_of_an_unknown_controller_is_dropped(tscbm_feed):
    assert tscbm_feed.on_datagram(blob(), ("192.0.2.99", 6053)).reason == "unknown-controller"


def test_timestamp_just_before_midnight_received_after_it(make_feed, mapped, clock, codec):
    """Seconds-of-day 86399.9 arriving at 00:00:00.1: the blob belongs to the previous day; its times are
    relative to its own timestamp, and the TimeMarks to the SPATEM's (next hour, next day)."""
    feed = make_feed(format="tscbm", intersections=[{"id": 1201, "signal_groups": PHASE_MAP}])
    clock.set("2025-05-15T00:00:00.100Z")
    b = blob(seconds_of_day=86399, milliseconds=900, phases={p: (50, 80, 50, 80, 50, 80) for p in range(1, 9)})
    assert feed.on_datagram(b, ("10.0.0.1", 1)).accepted
    s = states(codec, [t for t in mapped.due() if t.service == "tlm"][0])
    # 23:59:59.9 + 5.0 s = 00:00:04.9 -> TimeMark 49; relative to the arrival time it would have been 51
    assert s[1][0]["timing"] == {"minEndTime": 49, "maxEndTime": 79}


def test_receipt_time_source_and_skewed_controller_clock(make_feed, clock, codec, mapped):
    ok = make_feed(format="tscbm", time_source="receipt", intersections=[{"id": 1201, "signal_groups": PHASE_MAP}])
    b = blob(seconds_of_day=SOD - 1)  # controller clock 1 s behind
    assert ok.on_datagram(b, ("10.0.0.1", 1)).accepted
    s = states(codec, [t for t in mapped.due() if t.service == "tlm"][0])
    assert s[1][0]["timing"]["minEndTime"] == time_mark(T + 12.6, T)  # from the arrival time
    far = blob(seconds_of_day=SOD - 30, sequence=8)  # 30 s behind: still usable on the arrival time
    assert ok.on_datagram(far, ("10.0.0.1", 1)).reason == "out-of-order"  # ordering still by its own clock
    late = make_feed(format="tscbm", time_source="receipt", intersections=[{"id": 1201, "signal_groups": PHASE_MAP}])
    assert late.on_datagram(far, ("10.0.0.1", 1)).accepted
    strict = make_feed(format="tscbm", max_clock_skew_s=0.5, intersections=[{"id": 1201, "signal_groups": PHASE_MAP}])
    assert strict.on_datagram(b, ("10.0.0.1", 1)).reason == "clock-skew"


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"format": "tscbm"}, "intersections: the TSCBM format needs"),
        ({"format": "tscbm", "intersections": [{"id": 1201}]}, "intersections[0].signal_groups: a TSCBM"),
        (
            {"intersections": [{"id": 1201, "signal_groups": [{"signal_group": 1}]}]},
            "intersections[0].signal_groups[0].phase: None is not an integer",
        ),
        (
            {"intersections": [{"id": 1201, "signal_groups": [{"signal_group": 1, "phase": 2, "movement": "green"}]}]},
            "intersections[0].signal_groups[0].movement: 'green'",
        ),
        (
            {"intersections": [{"id": 1201, "signal_groups": [{"signal_group": 1, "phase": 2, "plans": {"x": 1}}]}]},
            "intersections[0].signal_groups[0].plans.x",
        ),
        (
            {"intersections": [{"id": 1201, "signal_groups": [{"signal_group": 1, "phase": 2, "overlap": 1}]}]},
            "intersections[0].signal_groups[0].phase: an overlap",
        ),
        (
            {
                "intersections": [
                    {"id": 1201, "signal_groups": [{"signal_group": 1, "phase": 2}, {"signal_group": 1, "phase": 3}]}
                ]
            },
            "intersections[0].signal_groups[1].signal_group: 1 is already mapped",
        ),
        (
            {
                "format": "tscbm",
                "intersections": [{"id": 1201, "signal_groups": PHASE_MAP}, {"id": 1202, "signal_groups": PHASE_MAP}],
            },
            "controller: required when several",
        ),
        ({"stale_behaviour": "repeat"}, "stale_behaviour: 'repeat'"),
        ({"watchdog_timeout_s": 0}, "watchdog_timeout_s: 0"),
        ({"prot": 1}, "prot: unknown option"),
    ],
)
def test_phase_map_config_errors_name_the_field(cfg, message):
    with pytest.raises(ConfigError) as e:
        ControllerFeedConfig.from_dict(cfg, "integrations.controller.")
    assert str(e.value).startswith("integrations.controller.")
    assert message in str(e.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda b, i, v: b[:i] + bytes([v]) + b[i + 1 :], st.just(blob()), st.integers(0, 244), st.integers(0, 255)
        ),
    )
)
def test_arbitrary_datagrams_never_crash(tscbm_feed, data):
    """Random bytes and single-byte corruptions of a good blob: dropped by reason or used, never an exception."""
    result = tscbm_feed.on_datagram(data, ("192.0.2.10", 6053))
    assert result.accepted or result.reason.startswith(("tscbm-", "clock-skew", "out-of-order", "duplicate", "tlm-"))
