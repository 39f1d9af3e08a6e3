"""The controller feed's value port against the JER path it replaces (differential, over generated updates).

:func:`spat_value` (the SPAT body as a Python value, taken by ``trigger_spat`` without JER or a second
validation) must be exactly what the TLM service reads from :func:`spatem_payload`'s JER (same members,
same order, same corrections), and must give None exactly when that JER is refused by the service's
validation (then the feed goes the JER way and gets the service's own error). Through the services
layer, both ways give the same answer, the same stored value and the same SPATEM bytes.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.support import EXAMPLE_TIME, example, posix
from rsu import catalog
from rsu.codec.errors import InvalidValueError
from rsu.integrations.spat import (
    MOVEMENT_PHASE_STATES,
    IntersectionUpdate,
    SignalEvent,
    SignalGroupState,
    spat_value,
    spatem_payload,
)
from rsu.services.errors import ServiceError

REF = posix(EXAMPLE_TIME)
HEADER = {"protocolVersion": 2, "messageID": catalog.SPATEM.message_id, "stationID": 1}

times = st.one_of(
    st.none(),
    st.floats(-4000.0, 8000.0).map(lambda d: REF + d),
    st.sampled_from([float("nan"), REF - 0.0004, REF + 3599.96, REF + 3600.0]),
)
events = st.builds(
    SignalEvent,
    state=st.one_of(st.sampled_from(MOVEMENT_PHASE_STATES), st.just("green")),
    start=times,
    min_end=times,
    max_end=times,
    likely=times,
    confidence=st.one_of(st.none(), st.integers(0, 16)),
    next_time=times,
    timing=st.booleans(),
)
groups = st.builds(
    SignalGroupState, signal_group=st.integers(0, 256), events=st.lists(events, min_size=1, max_size=17).map(tuple)
)
keys = st.one_of(
    st.integers(0, 65536).map(str),
    st.tuples(st.integers(0, 65536), st.integers(0, 65536)).map(lambda r: f"{r[0]}.{r[1]}"),
)
updates = st.builds(
    IntersectionUpdate,
    key=keys,
    timestamp=st.just(REF),
    groups=st.lists(groups, min_size=1, max_size=4).map(tuple),
    revision=st.one_of(st.none(), st.integers(0, 128)),
    status=st.integers(0, 0xFFFF),
    name=st.one_of(st.none(), st.text(max_size=65), st.text(st.characters(max_codepoint=127), max_size=65)),
)


@settings(max_examples=400, deadline=None)
@given(updates)
def test_spat_value_is_what_the_service_reads_from_the_jer(codec, update):
    payload, jer_corrections = spatem_payload(update, REF)
    [ix] = payload["spat"]["intersections"]
    if update.revision is None:
        ix["revision"] = 0  # TLM's placeholder (it takes the active MAPEM's revision; left out of the value)
    try:
        _, reference = codec.from_jer({"header": HEADER, **payload}, catalog.SPATEM)
    except InvalidValueError:
        reference = None
    else:
        if update.revision is None:
            del reference["spat"]["intersections"][0]["revision"]
    built = spat_value(update, REF)
    if reference is None:
        assert built is None  # the service must see it, and refuse it with its own error
        return
    assert built is not None
    spat, corrections = built
    assert corrections == jer_corrections
    assert repr(spat) == repr(reference["spat"])  # the same members, values and order (repr shows the order)


def test_the_ranges_spat_value_does_not_vouch_for():
    """Each member a parser may leave outside its ASN.1 type sends the update the JER way."""
    ok = IntersectionUpdate("7.1201", REF, (SignalGroupState(1, (SignalEvent("dark"),)),), name="Main")
    assert spat_value(ok, REF) is not None
    bad = [
        IntersectionUpdate("65536", REF, ok.groups),
        IntersectionUpdate("65536.1", REF, ok.groups),
        IntersectionUpdate("-1", REF, ok.groups),
        IntersectionUpdate("1201", REF, ok.groups, name="Ünter den Linden"),
        IntersectionUpdate("1201", REF, ok.groups, name="x" * 64),
        IntersectionUpdate("1201", REF, ok.groups, revision=128),
        IntersectionUpdate("1201", REF, ok.groups, status=0x10000),
        IntersectionUpdate("1201", REF, ()),
        IntersectionUpdate("1201", REF, (SignalGroupState(256, (SignalEvent("dark"),)),)),
        IntersectionUpdate("1201", REF, (SignalGroupState(1, (SignalEvent("dark"),) * 17),)),
        IntersectionUpdate("1201", REF, (SignalGroupState(1, (SignalEvent("dark", likely=REF, confidence=16),)),)),
    ]
    for update in bad:
        assert spat_value(update, REF) is None, update


def _outcome(call, *args):
    try:
        return call(*args)
    except ServiceError as e:
        return ("refused", e.code, e.path, e.reason)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(updates, min_size=1, max_size=4))
def test_trigger_spat_answers_stores_and_sends_as_trigger(make_layer, clock, update_list):
    """Two services layers with the example MAPEM: one fed JER (trigger), one fed values (trigger_spat)."""
    a, b = make_layer(clock), make_layer(clock)
    for layer in (a, b):
        layer.trigger("rlt", {"payload": example("mapem")})
        layer.due()
    for i, update in enumerate(update_list):
        clock.advance(0.1)
        now = clock.now()
        update = IntersectionUpdate(
            "1201" if i % 2 else update.key, now, update.groups, update.revision, update.status, update.name
        )
        payload, _ = spatem_payload(update, now)
        built = spat_value(update, now)
        want = _outcome(a.trigger, "tlm", {"payload": payload})
        if built is None:
            assert want[0] == "refused"
            continue
        got = _outcome(b.trigger_spat, built[0])
        assert got == want
        assert {k: repr(e.value) for k, e in a.services["tlm"].entries.items()} == {
            k: repr(e.value) for k, e in b.services["tlm"].entries.items()
        }
        assert [(t.id, t.pdu, t.generation) for t in a.due(now)] == [(t.id, t.pdu, t.generation) for t in b.due(now)]
