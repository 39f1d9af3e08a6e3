"""The controller feed's load shedding (sans-I/O): the newest datagram per intersection wins, in a
bounded queue that counts what it supersedes and refuses, with keys found without decoding."""

from __future__ import annotations

import json

import pytest

from integrations.support import all_red_feed, tscbm_bytes
from rsu import catalog
from rsu.clock import ManualClock
from rsu.integrations.coalesce import CoalescingQueue, json_feed_key, source_key
from rsu.services.scheduler import Scheduler

T0 = 1_700_000_000.0


def dgram(key, t: float, **extra) -> bytes:
    return json.dumps({**all_red_feed(t, key=key), **extra}).encode()


def drain(q: CoalescingQueue) -> list:
    out = []
    while (item := q.pop()) is not None:
        out.append(item)
    return out


def test_newest_wins_per_intersection_and_keeps_its_place_in_line():
    clock = ManualClock(T0)
    q = CoalescingQueue(json_feed_key, clock=clock)
    assert q.push(dgram(1201, T0), ("10.0.0.1", 1)) == "queued"
    clock.advance(0.01)
    assert q.push(dgram(1202, T0 + 0.01), ("10.0.0.1", 1)) == "queued"
    for i in range(1, 4):  # three newer states of 1201 arrive before anything is processed
        clock.advance(0.01)
        assert q.push(dgram(1201, T0 + 0.1 * i), ("10.0.0.1", 1)) == "superseded"
    assert len(q) == 2 and q.counts["superseded"] == 3
    clock.advance(0.02)
    assert q.oldest_wait() == pytest.approx(0.06)  # 1201 took its place in line 60 ms ago (newest state: 20 ms)
    first, second = drain(q)
    # 1201 waited longest: it goes first, with its newest state and the time that state arrived
    assert first.key == b"1201" and json.loads(first.data)["timestamp"] == T0 + 0.3
    assert first.received_at == pytest.approx(T0 + 0.04) and first.waiting_since == T0
    assert second.key == b"1202" and json.loads(second.data)["timestamp"] == T0 + 0.01
    assert q.pop() is None and q.counts["popped"] == 2


def test_bounded_a_new_intersection_beyond_the_bound_is_refused_and_counted():
    q = CoalescingQueue(json_feed_key, clock=ManualClock(T0), max_items=3)
    assert [q.push(dgram(k, T0)) for k in (1, 2, 3, 4)] == ["queued"] * 3 + ["full"]
    assert q.push(dgram(2, T0 + 0.1)) == "superseded"  # a known intersection still gets its newest state in
    assert q.push(b"not json") == "full"
    assert len(q) == 3 and q.counts == {"queued": 3, "superseded": 1, "full": 2, "popped": 0}
    assert [json.loads(i.data)["intersection"] for i in drain(q)] == [1, 2, 3]


def test_undecided_datagrams_are_kept_one_by_one_and_never_replace_a_state():
    q = CoalescingQueue(json_feed_key, clock=ManualClock(T0))
    q.push(dgram(1201, T0))
    q.push(b"not json")
    q.push(b'{"timestamp": 1}')  # parses, names no intersection
    q.push(b"not json either")
    items = drain(q)
    assert [i.key for i in items] == [b"1201", None, None, None]
    assert items[2].data == {"timestamp": 1}  # parsed once, handed on parsed
    assert q.counts["superseded"] == 0


@pytest.mark.parametrize(
    "raw, key",
    [
        (b'{"intersection": 1201, "timestamp": 1}', b"1201"),
        (b' { "intersection" :\n"7.1201" }', b'"7.1201"'),
        (b'{"intersection": {"region": 7, "id": 1201}, "timestamp": 1}', b'{"region":7,"id":1201}'),
    ],
)
def test_a_leading_intersection_member_is_read_without_parsing(raw, key):
    assert json_feed_key(raw) == (key, raw)  # the bytes themselves are queued: nothing was parsed


def test_an_intersection_member_elsewhere_is_found_by_parsing_once():
    raw = json.dumps({"name": '"intersection": 9', "intersection": 1201}).encode()
    key, data = json_feed_key(raw)
    assert key == b"1201" and data == json.loads(raw)
    # the same intersection written differently still coalesces with itself
    key2, _ = json_feed_key(json.dumps({"timestamp": 2, "intersection": 1201}).encode())
    assert key2 == key


def test_tscbm_datagrams_are_keyed_by_controller_and_a_malformed_one_replaces_nothing():
    blob = tscbm_bytes(phases={1: (50, 60, 50, 60, 50, 60)}, reds=(1,))
    q = CoalescingQueue(source_key, clock=ManualClock(T0))
    q.push(blob, ("10.0.0.1", 5000))
    assert q.push(blob, ("10.0.0.1", 5001)) == "superseded"  # same controller, another source port
    assert q.push(b"\xcd\x10\x00", ("10.0.0.1", 5000)) == "queued"  # bad length: kept, not a replacement
    q.push(blob, ("10.0.0.2", 5000))
    assert [i.key for i in drain(q)] == ["10.0.0.1", None, "10.0.0.2"]


def test_the_feed_behind_the_queue_builds_one_spatem_per_intersection_with_the_newest_state(make_feed, mapped, clock):
    """A burst (five states of 1201 before any is processed): one SPATEM is built, from the last state."""
    feed = make_feed()
    q = CoalescingQueue(json_feed_key, clock=clock)
    base = clock.now()
    for i in range(5):
        msg = all_red_feed(base + 0.01 * i)
        msg["signal_groups"][0]["min_end_time"] = base + 10 + i  # tells the states apart in the SPATEM
        q.push(json.dumps(msg).encode())
    results = [feed.on_datagram(item.data) for item in drain(q)]
    assert [r.accepted for r in results] == [True] and q.counts["superseded"] == 4
    [tx] = [t for t in mapped.due() if t.service == "tlm"]
    value = mapped.codec.decode(tx.pdu).value
    group1 = next(s for s in value["spat"]["intersections"][0]["states"] if s["signalGroup"] == 1)
    assert group1["state-time-speed"][0]["timing"]["minEndTime"] % 36000 == round((base + 14) % 3600 * 10) % 36000
    assert tx.kind is catalog.SPATEM


def test_scheduler_counts_a_pending_fresh_send_replaced_before_it_went_out():
    skipped = []
    s = Scheduler(on_skip=lambda key, reason, n: skipped.append((key, reason, n)))
    s.fire("spat", T0 + 0.05, priority=6)  # deferred by the rate limit
    s.fire("spat", T0 + 0.06, priority=6)  # a newer state meanwhile
    assert skipped == [("spat", "superseded", 1)] and s.stats()["superseded"] == 1
    assert [(d.key, d.fresh) for d in s.due(T0 + 0.05)] == [("spat", True)]  # one send, at the earlier time
    s.fire("spat", T0 + 0.2, priority=6)  # nothing pending: nothing superseded
    assert len(skipped) == 1


def test_fresh_states_go_before_repetitions_under_overload():
    """Room for two per pass: the fresh SPATEMs of both intersections go; the due MAPEM repetitions wait."""
    s = Scheduler()
    for k in ("map-a", "map-b"):
        s.set_periodic(k, interval=1.0, anchor=T0, now=T0, priority=7)
    s.fire("spat-a", T0 + 1.0, priority=4)
    s.fire("spat-b", T0 + 1.0, priority=4)
    assert [(d.key, d.fresh) for d in s.due(T0 + 1.0, limit=2)] == [("spat-a", True), ("spat-b", True)]
    assert s.dropped == 2
