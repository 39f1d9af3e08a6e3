"""parse_json_feed's signal-group loop (fast checks first, paths made only on a refusal) against the plain
walk it replaced: over generated messages, good and bad, the same update or the same error (reason, path,
detail: the first problem in the same order)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rsu.integrations import json_feed as jf
from rsu.integrations.spat import MOVEMENT_PHASE_STATES, IntersectionUpdate, SignalEvent, SignalGroupState

T0 = 1747210343.45


def reference_groups(groups_raw: list) -> tuple[SignalGroupState, ...]:
    """The signal groups as the feed parsed them before (one path string per member, every member checked)."""
    groups = []
    seen: set[int] = set()
    for i, g in enumerate(groups_raw):
        path = f"signal_groups[{i}]"
        if not isinstance(g, dict):
            raise jf.FeedError("invalid-field", path, "expected an object")
        jf._unknown(g, jf._GROUP, path)
        sg = jf._int(g.get("signal_group"), f"{path}.signal_group", 1, 255)
        if sg in seen:
            raise jf.FeedError("invalid-field", f"{path}.signal_group", f"signal group {sg} appears twice")
        seen.add(sg)
        events = [reference_event(g, path)]
        nxt = g.get("next") or []
        if not isinstance(nxt, list):
            raise jf.FeedError("invalid-field", f"{path}.next", "expected a list of predicted states")
        if len(nxt) > 15:
            raise jf.FeedError("invalid-field", f"{path}.next", "at most 15 predicted states (16 events in all)")
        for j, ev in enumerate(nxt):
            epath = f"{path}.next[{j}]"
            if not isinstance(ev, dict):
                raise jf.FeedError("invalid-field", epath, "expected an object")
            jf._unknown(ev, jf._EVENT, epath)
            events.append(reference_event(ev, epath))
        groups.append(SignalGroupState(sg, tuple(events)))
    return tuple(groups)


def reference_event(obj: dict, path: str) -> SignalEvent:
    state = obj.get("state")
    if isinstance(state, int) and not isinstance(state, bool) and 0 <= state < len(MOVEMENT_PHASE_STATES):
        state = MOVEMENT_PHASE_STATES[state]
    if state not in MOVEMENT_PHASE_STATES:
        raise jf.FeedError(
            "invalid-field",
            f"{path}.state",
            f"{state!r} is not a MovementPhaseState ({', '.join(MOVEMENT_PHASE_STATES)})",
        )
    times = {attr: jf._time(obj, name, f"{path}.{name}") for name, attr in jf._TIMES}
    confidence = None
    if obj.get("confidence") is not None:
        confidence = jf._int(obj["confidence"], f"{path}.confidence", 0, 15)
    return SignalEvent(state=state, confidence=confidence, **times)


def outcome(parse, message):
    try:
        return repr(parse(message))
    except jf.FeedError as e:
        return ("error", e.reason, e.path, e.detail)


def reference_parse(message: dict) -> IntersectionUpdate:
    """parse_json_feed with the reference group loop (the rest of the message parsed by the module itself)."""
    top = jf.parse_json_feed({**message, "signal_groups": [{"signal_group": 1, "state": "dark"}]})
    groups_raw = message.get("signal_groups")
    if not isinstance(groups_raw, list) or not groups_raw or len(groups_raw) > 255:
        return jf.parse_json_feed(message)  # refused before the loop, the same code either way
    return IntersectionUpdate(
        key=top.key,
        timestamp=top.timestamp,
        groups=reference_groups(groups_raw),
        revision=top.revision,
        status=top.status,
        name=top.name,
    )


def _hour(d: float) -> float:
    return T0 + d


values = st.one_of(
    st.none(),
    st.floats(-1e4, 1e4).map(_hour),
    st.sampled_from([float("nan"), float("inf"), 946684799.0, 4102444800.0, 946684800.0, True, "x", [], {}]),
    st.integers(1747210000, 1747220000),
    st.integers(-2, 300),
    st.just("2025-05-14T08:12:25.450Z"),
    st.sampled_from(MOVEMENT_PHASE_STATES),
)
member_names = st.sampled_from(sorted(jf._GROUP - {"next"}) + ["colour"])
events = st.dictionaries(member_names.filter(lambda k: k != "signal_group"), values, max_size=5)
good_events = st.fixed_dictionaries(
    {"state": st.sampled_from(MOVEMENT_PHASE_STATES)},
    optional={
        "min_end_time": st.floats(0, 100).map(_hour),
        "likely_time": st.floats(0, 100).map(_hour),
        "confidence": st.integers(0, 15),
        "start_time": st.integers(1747210000, 1747210300),
    },
)
group = st.one_of(
    st.fixed_dictionaries(
        {"signal_group": st.integers(0, 256), "state": st.sampled_from(MOVEMENT_PHASE_STATES)},
        optional={
            "min_end_time": st.floats(0, 100).map(_hour),
            "confidence": st.integers(0, 16),
            "next": st.one_of(st.lists(st.one_of(good_events, events, st.just(3)), max_size=3), st.just({})),
        },
    ),
    st.dictionaries(member_names, values, max_size=6).map(lambda d: {"signal_group": 2, **d}),
    st.just("not an object"),
)
messages = st.fixed_dictionaries(
    {"intersection": st.just(1201), "timestamp": st.just(T0), "signal_groups": st.lists(group, min_size=1, max_size=5)}
)


@settings(max_examples=1500, deadline=None)
@given(messages)
def test_fast_parse_equals_the_reference(message):
    assert outcome(jf.parse_json_feed, message) == outcome(reference_parse, message)
    data = json.dumps(message, allow_nan=True).encode()  # and as the datagram (NaN/inf as JSON5-ish literals)
    assert outcome(jf.parse_json_feed, data) == outcome(lambda d: reference_parse(json.loads(d)), data)
