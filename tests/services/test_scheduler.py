"""The dissemination scheduler: drift-free periods, start/stop, priority, bounded work under overload."""

from __future__ import annotations

import pytest

from rsu.services.scheduler import Scheduler
from services.support import by_service, example, new_ivim

T0 = 1_000_000.0


def run(s: Scheduler, until: float, late: float = 0.0) -> list[tuple]:
    """Drive like a daemon that wakes ``late`` seconds after each deadline."""
    out = []
    while (d := s.next_deadline()) is not None and d <= until:
        now = d + late
        out += [(round(x.slot - T0, 6), x.key, x.fresh) for x in s.due(now)]
    return out


def test_periodic_is_drift_free_when_the_caller_is_late():
    """Every wake-up 30 ms late: slots stay on the 100 ms grid (next from the schedule, not now + interval)."""
    s = Scheduler()
    s.set_periodic("a", interval=0.1, anchor=T0, now=T0, include_anchor=True)
    slots = [x[0] for x in run(s, T0 + 10, late=0.03)]
    assert len(slots) == 101
    assert slots == pytest.approx([round(0.1 * k, 6) for k in range(101)])


def test_late_by_several_intervals_sends_once_and_counts_skips():
    s = Scheduler()
    s.set_periodic("a", interval=1.0, anchor=T0, now=T0, include_anchor=True)
    assert [d.slot for d in s.due(T0)] == [T0]
    got = s.due(T0 + 5.5)  # the daemon was stalled: one transmission, not a burst of five
    assert [d.slot for d in got] == [T0 + 5] and s.skipped == 4
    assert s.next_deadline() == T0 + 6


def test_start_and_stop_times():
    s = Scheduler()
    s.set_periodic("a", interval=1.0, anchor=T0, now=T0, start=T0 + 2.5, stop=T0 + 6, include_anchor=True)
    assert s.next_deadline() == T0 + 3  # first slot on the grid at or after start
    assert [x[0] for x in run(s, T0 + 100)] == [3, 4, 5]  # none at or after stop
    assert s.next_deadline() is None


def test_fresh_first_then_priority():
    s = Scheduler()
    s.set_periodic("low", interval=1.0, anchor=T0, now=T0, priority=2, include_anchor=True)
    s.set_periodic("high", interval=1.0, anchor=T0, now=T0, priority=6, include_anchor=True)
    s.fire("spat", T0, priority=7)
    s.fire("fresh-low", T0, priority=1)
    assert [d.key for d in s.due(T0)] == ["spat", "fresh-low", "high", "low"]


def test_overload_fresh_wins_and_repetitions_are_dropped():
    """With room for two, fresh SPATEMs go first; dropped repetitions come back at their next slot."""
    s = Scheduler()
    for k in ("map", "ivi", "rtcm"):
        s.set_periodic(k, interval=1.0, anchor=T0, now=T0, priority=4, include_anchor=True)
    s.fire("spat-1201", T0, priority=7)
    s.fire("spat-1202", T0, priority=7)
    s.fire("ivi-new", T0, priority=4)
    got = s.due(T0, limit=2)
    assert [d.key for d in got] == ["spat-1201", "spat-1202"]
    assert s.dropped == 3  # three repetitions dropped; the fresh IVI waits
    assert [d.key for d in s.due(T0 + 0.01, limit=2)] == ["ivi-new"]
    assert sorted(d.key for d in s.due(T0 + 1)) == ["ivi", "map", "rtcm"]


def test_one_pending_fresh_per_key_keeps_the_earliest_time():
    s = Scheduler()
    s.fire("spat", T0 + 0.1, priority=7)
    s.fire("spat", T0 + 0.3, priority=7)  # a newer state replaces it; it does not wait longer
    assert s.pending_fire("spat") == T0 + 0.1
    assert len(s.due(T0 + 0.1)) == 1 and s.due(T0 + 1) == []


def test_layer_overload_fresh_spatem_wins_over_repetitions(layer, clock):
    """Facade level: with room for one entry per call, a fresh SPATEM beats the due MAPEM/IVIM repetitions."""
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.trigger("ivi", {"payload": new_ivim()})
    layer.due()
    clock.advance(1)
    layer.trigger("tlm", {"payload": example("spatem")})
    [tx] = layer.due(limit=1)
    assert tx.service == "tlm" and tx.fresh
    assert layer.stats()["scheduler"]["dropped"] == 2
    clock.advance(1)
    assert sorted(t.service for t in layer.due()) == ["ivi", "rlt"]  # repetitions resume on their grid


def test_layer_periodic_grid_survives_late_calls(layer, clock):
    layer.trigger("rlt", {"payload": example("mapem")})
    t0 = clock.now()
    slots = []
    for _ in range(20):
        clock.set(layer.next_deadline() + 0.37)  # the loop always wakes 370 ms late
        slots += [round(t.slot - t0, 6) for t in by_service(layer.due(), "rlt")]
    assert slots == [float(k) for k in range(20)]


def test_restart_resend_is_a_repetition_kept_beyond_the_limit():
    """The resend after a restart (fire with fresh=False) goes out once, marked as a repetition, before
    the periodic repetitions; beyond the caller's limit it waits for the next call instead of being dropped."""
    s = Scheduler()
    for k in ("a", "b", "c"):
        s.set_periodic(k, interval=1.0, anchor=T0 - 0.4, now=T0, include_anchor=True)
        s.fire(k, T0, priority=4, fresh=False)
    s.set_periodic("old", interval=0.1, anchor=T0 - 0.05, now=T0 - 0.05, include_anchor=True)
    first = s.due(T0, limit=2)
    assert [(d.key, d.fresh) for d in first] == [("a", False), ("b", False)]
    assert s.dropped == 1  # "old"'s repetition, not the resend of "c"
    assert [(d.key, d.fresh) for d in s.due(T0 + 0.001, limit=2)] == [("c", False)]
    assert s.next_deadline() == pytest.approx(T0 + 0.05)  # then the grids go on
    s.fire("a", T0 + 0.01, priority=4, fresh=False)
    s.fire("a", T0 + 0.02, priority=4)  # new content meanwhile: the pending one becomes fresh
    assert [(d.key, d.fresh) for d in s.due(T0 + 0.03)] == [("a", True)]


def test_skipped_repetitions_are_reported_per_key_with_the_reason():
    skipped = []
    s = Scheduler(on_skip=lambda key, reason, n: skipped.append((key[0], reason, n)))
    s.set_periodic(("tlm", "a"), interval=1.0, anchor=T0, now=T0, include_anchor=True)
    s.set_periodic(("ivi", "b"), interval=1.0, anchor=T0, now=T0, include_anchor=True)
    s.due(T0)
    s.due(T0 + 3.5)  # late by more than an interval: the older slots are skipped
    assert sorted(skipped) == [("ivi", "missed-slot", 2), ("tlm", "missed-slot", 2)]
    skipped.clear()
    s.due(T0 + 4.0, limit=1)  # more due than one pass may send: a repetition waits for its next slot
    assert len(skipped) == 1 and skipped[0][1:] == ("overload", 1)


def test_layer_expiry_follows_stop_times_moved_earlier_and_later(layer, clock):
    """The layer keeps each service's next expiry instead of scanning every entry per call: an entry
    given an earlier stop still ends at it, one whose stop moved later does not end at the old one."""
    from rsu.clock import iso_utc

    t0 = clock.now()
    early = layer.trigger("ivi", {"payload": new_ivim(), "dissemination": {"stop": iso_utc(t0 + 10)}})["id"]
    layer.due()  # the layer now knows 10 s as IVI's next expiry
    later = layer.trigger("ivi", {"payload": new_ivim(), "dissemination": {"stop": iso_utc(t0 + 5)}})["id"]
    layer.update("ivi", early, {"dissemination": {"stop": iso_utc(t0 + 20)}})
    clock.set(t0 + 5)
    assert [e["id"] for e in layer.list("ivi")] == [early]  # the stop at 5 s was seen
    clock.set(t0 + 15)
    layer.due()
    assert [e["id"] for e in layer.list("ivi")] == [early]  # moved to 20 s: not ended at 10 s
    clock.set(t0 + 20)
    layer.due()
    assert layer.list("ivi") == [] and later != early


def test_a_periodic_key_reset_or_removed_is_never_released_at_its_old_slot():
    """The scheduler finds due keys by their next slot (a heap), not by visiting every key: a key set
    again or removed must not come out at a slot it no longer has."""
    s = Scheduler()
    for k in ("a", "b", "c"):
        s.set_periodic(k, interval=1.0, anchor=T0, now=T0)
    s.set_periodic("a", interval=1.0, anchor=T0 + 0.5, now=T0)  # a moves half a period later
    s.remove("c")
    assert s.next_deadline() == T0 + 1.0
    assert [d.key for d in s.due(T0 + 1.0)] == ["b"]  # not a (its old slot), not c (removed)
    assert [(d.key, d.slot) for d in s.due(T0 + 1.5)] == [("a", T0 + 1.5)]
    assert [(d.key, d.slot) for d in s.due(T0 + 2.0)] == [("b", T0 + 2.0)]
    assert s.next_deadline() == T0 + 2.5 and "c" not in s
