"""The scheduler's pending one-shots kept by time (a heap) against the visit of every pending one-shot it
replaced: over generated sequences of set_periodic / fire / remove / due (with and without a limit), the same
releases in the same order, the same next deadlines, next times and counters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rsu.services import scheduler as sched
from rsu.services.scheduler import Scheduler

T0 = 1_000_000.0
KEYS = st.sampled_from("abcdef")
TIMES = st.sampled_from([-1.0, 0.0, 0.5, 1.0])


class ScanScheduler(Scheduler):
    """The reference: one-shots found by visiting every pending one (the heap is kept but never read)."""

    def _shot_top(self):
        return min((o.at for o in self._oneshot.values()), default=None)

    def _due_shots(self, now):
        return [(k, o) for k, o in self._oneshot.items() if o.at <= now + sched._EPS]

    def _keep(self, shots):
        pass


ops = st.one_of(
    st.tuples(
        st.just("periodic"),
        KEYS,
        st.sampled_from([0.1, 0.5, 1.0]),
        st.one_of(TIMES, st.floats(-2, 2)),
        st.one_of(st.none(), st.floats(-1, 3)),
        st.one_of(st.none(), st.floats(0, 6)),
        st.integers(0, 7),
        st.booleans(),
    ),
    # times and priorities often equal: the order of ties (a key's place among the pending) must hold too
    st.tuples(st.just("fire"), KEYS, st.one_of(TIMES, st.floats(-1, 3)), st.sampled_from([3, 4, 7]), st.booleans()),
    st.tuples(st.just("remove"), KEYS),
    st.tuples(st.just("due"), st.floats(0, 0.7), st.one_of(st.none(), st.integers(1, 4))),
)


def apply(s: Scheduler, now: float, op: tuple) -> object:
    kind = op[0]
    if kind == "periodic":
        _, key, interval, anchor, start, stop, priority, include = op
        s.set_periodic(
            key,
            interval=interval,
            anchor=now + anchor,
            now=now,
            start=None if start is None else now + start,
            stop=None if stop is None else now + stop,
            priority=priority,
            include_anchor=include,
        )
        return None
    if kind == "fire":
        _, key, at, priority, fresh = op
        s.fire(key, now + at, priority, fresh=fresh)
        return None
    if kind == "remove":
        s.remove(op[1])
        return None
    return [(d.key, d.slot, d.fresh, d.priority) for d in s.due(now, op[2])]


@settings(max_examples=600, deadline=None)
@given(st.lists(ops, max_size=60))
def test_heap_of_one_shots_equals_the_scan(sequence):
    skips: dict[str, list] = {"heap": [], "scan": []}
    fast = Scheduler(on_skip=lambda *a: skips["heap"].append(a))
    ref = ScanScheduler(on_skip=lambda *a: skips["scan"].append(a))
    now = T0
    for op in sequence:
        if op[0] == "due":
            now += op[1]
        assert apply(fast, now, op) == apply(ref, now, op), op
        assert fast.next_deadline() == ref.next_deadline()
        assert [fast.next_time(k) for k in "abcdef"] == [ref.next_time(k) for k in "abcdef"]
    assert fast.stats() == ref.stats()
    assert skips["heap"] == skips["scan"]
    # and drained to the end the same way
    for _ in range(40):
        deadline = ref.next_deadline()
        assert fast.next_deadline() == deadline
        if deadline is None or deadline > now + 10:
            break
        now = max(now, deadline)
        assert apply(fast, now, ("due", 0, 2)) == apply(ref, now, ("due", 0, 2))


def test_stale_entries_of_a_key_fired_again_and_again_are_compacted():
    s = Scheduler()
    for _ in range(10_000):  # a state deferred to a far start, replaced at every update
        s.fire("a", T0 + 3600, 4)
    assert len(s._shot_heap) <= 2 * len(s._oneshot) + 65
    assert [d.key for d in s.due(T0 + 3600)] == ["a"] and s.superseded == 9_999


def test_ties_go_in_the_order_the_keys_became_pending():
    """A key fired again keeps its place among the pending ones (as in the dict the scan visited)."""
    for s in (Scheduler(), ScanScheduler()):
        s.fire("a", T0, 4)
        s.fire("b", T0, 4)
        s.fire("a", T0, 4)  # replaces a's pending one: a stays first
        s.fire("c", T0 + 1, 4)
        assert [d.key for d in s.due(T0, limit=1)] == ["a"]
        s.fire("a", T0, 4)  # a again, after it was sent: now behind b
        assert [d.key for d in s.due(T0 + 1)] == ["b", "a", "c"]
