"""The JSON controller feed -> TLM: SPATEM bytes for the 4-arm intersection, TimeMarks, ordering, MAP checks."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.support import EXAMPLE_TIME, all_red_feed, example, feed_from_example_spatem, iso, posix
from rsu import catalog
from rsu.clock import time_mark_to_posix


def spatems(layer, now=None):
    return [t for t in layer.due(now) if t.service == "tlm"]


def decoded(codec, tx) -> dict:
    return codec.to_jer(catalog.SPATEM, codec.decode(tx.pdu).value)


def test_feed_drives_the_4arm_spatem_byte_for_byte(make_feed, mapped, clock, codec):
    """A feed message describing the example scene gives exactly the example SPATEM's bytes (less the addGrpC
    extensions the feed does not carry): states, times as TimeMarks of the message's own timestamp, revision from
    the MAPEM, status, name; the TLM service stamps moy/timeStamp from the same clock."""
    expected = example("spatem")
    ix = expected["spat"]["intersections"][0]
    del ix["regional"]
    del ix["states"][4]["state-time-speed"][0]["regional"]
    message = feed_from_example_spatem(expected, posix(EXAMPLE_TIME))
    result = make_feed().on_json(json.dumps(message).encode())
    assert result.accepted, result
    [tx] = spatems(mapped)
    assert tx.pdu == codec.encode(codec.from_jer(expected, catalog.SPATEM)[1], catalog.SPATEM)
    assert decoded(codec, tx)["spat"]["intersections"][0]["revision"] == 3  # from the active MAPEM


def test_next_states_and_times_across_the_hour_rollover(make_feed, mapped, clock, codec):
    """Message stamped 08:59:59.500: the clearance ends in this hour, the next green in the next hour, a far
    prediction is beyond an hour (36000), an unknown end is 36001 — and every TimeMark reads back correctly
    against the SPATEM's own moy/timeStamp."""
    t = posix("2025-05-14T08:59:59.500Z")
    clock.set(t)
    msg = all_red_feed(t)
    msg["signal_groups"][0] = {
        "signal_group": 1,
        "state": "protected-clearance",
        "start_time": t - 3.0,
        "min_end_time": t + 0.4,
        "max_end_time": t + 0.4,
        "next": [
            {"state": "stop-And-Remain", "min_end_time": t + 2.0, "likely_time": t + 3.0, "confidence": 10},
            {"state": "protected-Movement-Allowed", "min_end_time": t + 3605},
            {"state": "protected-clearance", "min_end_time": None},
        ],
    }
    assert make_feed().on_json(msg).accepted
    [tx] = spatems(mapped)
    ix = decoded(codec, tx)["spat"]["intersections"][0]
    stamp = posix("2025-01-01T00:00:00Z") + ix["moy"] * 60 + ix["timeStamp"] / 1000  # the message's own time
    assert stamp == pytest.approx(t)
    events = ix["states"][0]["state-time-speed"]
    assert [e["eventState"] for e in events] == [
        "protected-clearance",
        "stop-And-Remain",
        "protected-Movement-Allowed",
        "protected-clearance",
    ]
    assert events[0]["timing"] == {"startTime": 35965, "minEndTime": 35999, "maxEndTime": 35999}
    assert events[1]["timing"] == {"minEndTime": 15, "likelyTime": 25, "confidence": 10}  # next hour
    assert time_mark_to_posix(events[1]["timing"]["minEndTime"], stamp) == pytest.approx(t + 2.0)
    assert events[2]["timing"] == {"minEndTime": 36000}
    assert events[3]["timing"] == {"minEndTime": 36001}


def test_past_and_inconsistent_times_are_corrected_not_wrapped(make_feed, mapped, clock, codec):
    """A min end time already past (controller latency) is sent as the message time, never as a TimeMark that
    would read as nearly an hour ahead; max < min and a likely time outside [min, max] are put in order."""
    t = clock.now()
    msg = all_red_feed(t)
    msg["signal_groups"][2].update(min_end_time=t - 1.2, max_end_time=t - 2.0, likely_time=t + 50)
    feed = make_feed()
    result = feed.on_json(msg)
    assert result.accepted and feed.counters.get("timing-corrected") == 3
    assert any("in the past" in n for n in result.notes)
    timing = decoded(codec, spatems(mapped)[0])["spat"]["intersections"][0]["states"][2]["state-time-speed"][0][
        "timing"
    ]
    assert timing == {"minEndTime": 7435, "maxEndTime": 7435, "likelyTime": 7435}
    assert time_mark_to_posix(timing["minEndTime"], t) >= t


@pytest.mark.parametrize(
    "change, reason, path",
    [
        (lambda m: m.pop("timestamp"), "invalid-field", "timestamp"),
        (lambda m: m.update(timestamp="yesterday"), "invalid-field", "timestamp"),
        (lambda m: m.update(intersection="12a"), "invalid-field", "intersection"),
        (lambda m: m.update(colour="red"), "invalid-field", "colour"),
        (lambda m: m.update(signal_groups=[]), "invalid-field", "signal_groups"),
        (lambda m: m["signal_groups"][3].update(state="green"), "invalid-field", "signal_groups[3].state"),
        (lambda m: m["signal_groups"][3].update(signal_group=256), "invalid-field", "signal_groups[3].signal_group"),
        (lambda m: m["signal_groups"][3].update(signal_group=1), "invalid-field", "signal_groups[3].signal_group"),
        (lambda m: m["signal_groups"][0].update(confidence=16), "invalid-field", "signal_groups[0].confidence"),
        (
            lambda m: m["signal_groups"][0].update(next=[{"state": "dark", "min_end_time": True}]),
            "invalid-field",
            "signal_groups[0].next[0].min_end_time",
        ),
        (lambda m: m.update(status=["nonsense"]), "invalid-field", "status[0]"),
    ],
)
def test_bad_messages_are_dropped_with_a_named_reason(make_feed, mapped, clock, change, reason, path):
    msg = all_red_feed(clock.now())
    change(msg)
    feed = make_feed()
    result = feed.on_json(msg)
    assert (result.accepted, result.reason, result.path) == (False, reason, path)
    assert feed.counters.dropped(reason) == 1
    assert spatems(mapped) == []


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\xff\xfe", "malformed-json"),
        (b'{"intersection": ', "malformed-json"),
        (b"[1, 2]", "malformed-json"),
        (b"x" * 70000, "too-large"),
    ],
)
def test_undecodable_datagrams_never_crash(make_feed, raw, reason):
    feed = make_feed()
    assert feed.on_datagram(raw, ("127.0.0.1", 5000)).reason == reason
    assert feed.counters.snapshot()["dropped"] == {reason: 1}


def test_order_duplicates_and_clock_skew(make_feed, mapped, clock):
    feed = make_feed(max_clock_skew_s=2.0)
    t = clock.now()
    assert feed.on_json(all_red_feed(t)).accepted
    assert feed.on_json(all_red_feed(t)).reason == "duplicate"
    assert feed.on_json(all_red_feed(t - 0.1)).reason == "out-of-order"
    assert feed.on_json(all_red_feed(t + 5.0)).reason == "clock-skew"
    assert feed.on_json(all_red_feed(t - 0.1 + 0.2)).accepted
    assert len(spatems(mapped, t + 1)) == 1  # the freshest accepted state (the first was replaced before sending)


def test_spatem_is_checked_against_the_active_mapem(make_feed, mapped, clock):
    """Signal groups must be those of the MAPEM, a given revision must be the MAPEM's: the TLM service checks,
    the feed counts the refusal by its code and sends nothing."""
    feed = make_feed()
    t = clock.now()
    result = feed.on_json(all_red_feed(t, groups=range(1, 12)))
    assert (result.reason, result.path) == ("tlm-signal_group_mismatch", "payload.spat.intersections[0].states")
    msg = all_red_feed(t + 0.1)
    msg["revision"] = 4
    assert feed.on_json(msg).reason == "tlm-revision_mismatch"
    msg["revision"] = 3
    msg["timestamp"] = t + 0.2
    assert feed.on_json(msg).accepted
    snap = feed.counters.snapshot()
    assert snap["dropped"] == {"tlm-signal_group_mismatch": 1, "tlm-revision_mismatch": 1}
    assert snap["counts"]["accepted"] == 1


def test_configured_intersections_only(make_feed, clock):
    feed = make_feed(intersections=[{"id": 1201, "name": "Jean Jaures x Pasteur"}])
    t = clock.now()
    result = feed.on_json(all_red_feed(t, key="7.1202"))
    assert (result.reason, result.intersection) == ("unknown-intersection", "7.1202")
    ok = feed.on_json({**all_red_feed(t), "intersection": {"id": 1201}})
    assert ok.accepted and ok.answer["id"] == "1201"


def test_leap_second_and_posix_times_are_accepted(make_feed, mapped, clock, codec):
    t = clock.now()
    msg = copy.deepcopy(all_red_feed(t))
    msg["timestamp"] = iso(t)
    msg["signal_groups"][0]["min_end_time"] = "2025-05-14T08:59:60.5Z"  # inside a leap second
    assert make_feed().on_json(msg).accepted
    timing = decoded(codec, spatems(mapped)[0])["spat"]["intersections"][0]["states"][0]["state-time-speed"][0][
        "timing"
    ]
    assert timing["minEndTime"] == 5  # taken as the following second, 09:00:00.5 (rsu.clock convention)


def test_the_documented_example_is_a_valid_feed_message(make_feed, mapped, clock, codec):
    """docs/integrations.md's JSON example parses, and its times are the example SPATEM's TimeMarks."""
    from integrations.support import REPO
    from rsu.integrations.json_feed import parse_json_feed

    doc = (REPO / "docs" / "integrations.md").read_text()
    block = doc.split("```json\n", 1)[1].split("```", 1)[0]
    update = parse_json_feed(block)
    assert update.key == "1201" and update.status == 0x0A00 and [g.signal_group for g in update.groups] == [1, 2]
    msg = json.loads(block)
    msg["signal_groups"] += [{"signal_group": g, "state": "dark"} for g in range(3, 13)]
    assert make_feed().on_json(msg).accepted
    got = decoded(codec, spatems(mapped)[0])["spat"]["intersections"][0]["states"][:2]
    want = example("spatem")["spat"]["intersections"][0]["states"][:2]
    assert got == want


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_member = st.sampled_from(["intersection", "timestamp", "revision", "status", "name", "signal_groups"])
_group_member = st.sampled_from(
    [
        "signal_group",
        "state",
        "start_time",
        "min_end_time",
        "max_end_time",
        "likely_time",
        "confidence",
        "next_time",
        "next",
    ]
)
_messages = st.fixed_dictionaries(
    {},
    optional={
        "intersection": st.one_of(st.integers(-5, 70000), st.text(max_size=8), _json),
        "timestamp": st.one_of(st.floats(), st.integers(), st.text(max_size=30), _json),
        "signal_groups": st.lists(
            st.dictionaries(
                _group_member, st.one_of(_json, st.floats(-1e300, 1e300), st.sampled_from(["dark", "unavailable"]))
            ),
            max_size=4,
        ),
    },
) | st.dictionaries(_member, _json, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=_messages)
def test_arbitrary_messages_never_crash_the_feed(make_feed, message):
    feed = make_feed()
    result = feed.on_json(message)
    assert result.accepted or (result.reason and feed.counters.dropped(result.reason) == 1)
    feed.on_json(json.dumps(message, default=str).encode()[:100])  # and truncated bytes
