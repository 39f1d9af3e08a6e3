"""TLM service (SPATEM), named after the TS 103 191-2 test purposes it meets (IUT as sender)."""

from __future__ import annotations

import copy

import pytest

from rsu import catalog
from rsu.clock import iso_utc
from rsu.services.errors import ServiceError
from rsu.services.timefmt import moy_dsecond
from services.support import STATION, by_service, decoded, example, permission_check


def plain_spatem() -> dict:
    """The example SPATEM without prioritization (the plain IntersectionState of TP SSP_BV_02)."""
    v = example("spatem")
    del v["spat"]["intersections"][0]["regional"]
    return v


@pytest.fixture
def with_map(layer):
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.due()  # the MAPEM's first transmission
    return layer


def spatems(layer, now=None):
    return by_service(layer.due(now), "tlm")


def test_TP_IS_TLM_GEN_MSGF_BV_01(with_map, codec):
    """Header: protocolVersion 2 (V1.3.1+ schema) and messageID spatem (4); stationID is this station's."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    [tx] = spatems(with_map)
    h = decoded(codec, tx)["header"]
    assert (h["protocolVersion"], h["messageID"], h["stationID"]) == (2, 4, STATION)
    assert tx.kind is catalog.SPATEM


def test_TP_IS_TLM_GEN_MSGF_BV_02(with_map, codec):
    """Each IntersectionState carries the intersection's identifier (and the entry is named after it)."""
    answer = with_map.trigger("tlm", {"payload": example("spatem")})
    [tx] = spatems(with_map)
    assert decoded(codec, tx)["spat"]["intersections"][0]["id"] == {"id": 1201}
    assert answer["id"] == "1201" and answer["identification"]["intersections"][0]["id"] == "1201"


def test_TP_IS_TLM_GEN_MSGF_BV_03(with_map, codec):
    """The SPAT revision equals the MAPEM revision: filled from the MAPEM when left out, refused when different."""
    v = example("spatem")
    del v["spat"]["intersections"][0]["revision"]
    with_map.trigger("tlm", {"payload": v})
    [tx] = spatems(with_map)
    mapem_rev = with_map.get("rlt", "1201")["identification"]["intersections"][0]["revision"]
    assert decoded(codec, tx)["spat"]["intersections"][0]["revision"] == mapem_rev == 3
    bad = example("spatem")
    bad["spat"]["intersections"][0]["revision"] = 4
    with pytest.raises(ServiceError) as e:
        with_map.update("tlm", "1201", {"payload": bad})
    assert e.value.code == "revision_mismatch"
    assert e.value.path == "payload.spat.intersections[0].revision"
    assert "differs from revision 3" in e.value.reason
    assert spatems(with_map, with_map.clock.now() + 1) == []  # nothing sent for the refused state


def test_TLM_revision_check_warn_mode(make_layer, codec):
    """tlm_map_check = warn: the disagreeing SPATEM is sent and the answer carries the warning."""
    layer = make_layer(rules={"tlm_map_check": "warn"})
    layer.trigger("rlt", {"payload": example("mapem")})
    bad = example("spatem")
    bad["spat"]["intersections"][0]["revision"] = 9
    answer = layer.trigger("tlm", {"payload": bad})
    assert any("revision" in w and "differs" in w for w in answer["warnings"])
    assert decoded(codec, spatems(layer)[0])["spat"]["intersections"][0]["revision"] == 9


def test_TLM_without_active_mapem_warns(layer):
    answer = layer.trigger("tlm", {"payload": example("spatem")})
    assert answer["warnings"] and "no active MAPEM of intersection 1201" in answer["warnings"][0]
    v = example("spatem")
    del v["spat"]["intersections"][0]["revision"]
    with pytest.raises(ServiceError) as e:
        layer.update("tlm", "1201", {"payload": v})
    assert (e.value.code, e.value.path) == ("validation", "payload.spat.intersections[0].revision")


def test_TP_IS_TLM_GEN_MSGF_BV_04(with_map, codec, clock):
    """The SPATEM carries timestamps, filled by the service from the clock (moy and DSecond)."""
    clock.advance(12.345)
    v = example("spatem")
    for k in ("moy", "timeStamp"):
        del v["spat"]["intersections"][0][k]
    del v["spat"]["timeStamp"]
    with_map.trigger("tlm", {"payload": v})
    spat = decoded(codec, spatems(with_map)[0])["spat"]
    moy, dsec = moy_dsecond(clock.now())
    assert spat["timeStamp"] == moy
    assert (spat["intersections"][0]["moy"], spat["intersections"][0]["timeStamp"]) == (moy, dsec) == (192000, 12345)


def test_TP_IS_TLM_GEN_MSGF_BV_05(with_map):
    """Every signal group the MAPEM defines must be in the SPAT (and no other): refused otherwise."""
    v = example("spatem")
    v["spat"]["intersections"][0]["states"].pop()  # drop signal group 12
    with pytest.raises(ServiceError) as e:
        with_map.trigger("tlm", {"payload": v})
    assert e.value.code == "signal_group_mismatch"
    assert e.value.path == "payload.spat.intersections[0].states"
    assert "[12] defined by the MAPEM are missing" in e.value.reason
    v = example("spatem")
    v["spat"]["intersections"][0]["states"][0]["signalGroup"] = 42
    with pytest.raises(ServiceError) as e:
        with_map.trigger("tlm", {"payload": v})
    assert "[42] are not defined by the MAPEM" in e.value.reason
    assert with_map.list("tlm") == []  # refused triggers start nothing


def test_TP_IS_TLM_GEN_EVGN_BV_01(with_map):
    """An application start request (the first trigger) produces a SPATEM at once."""
    answer = with_map.trigger("tlm", {"payload": example("spatem")})
    assert answer["started"] is True
    assert len(spatems(with_map)) == 1
    assert with_map.list("tlm")[0]["state"] == "active"


def test_TP_IS_TLM_GEN_EVGN_BV_02(with_map, codec, clock):
    """Successive SPATEMs are sent in time order."""
    stamps = []
    for _ in range(5):
        with_map.trigger("tlm", {"payload": example("spatem")})
        [tx] = spatems(with_map)
        ix = decoded(codec, tx)["spat"]["intersections"][0]
        stamps.append((ix["moy"], ix["timeStamp"]))
        clock.advance(0.25)
    assert stamps == sorted(stamps) and len(set(stamps)) == 5


def test_TP_IS_TLM_GEN_EVGN_BV_03(with_map, clock):
    """A stop request ends SPATEM transmission: later triggers need a new start, nothing is repeated."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    assert len(spatems(with_map)) == 1
    answer = with_map.terminate("tlm", "1201")
    assert answer["terminated"] == "stopped"
    clock.advance(5)
    assert spatems(with_map) == [] and with_map.list("tlm") == []
    with pytest.raises(ServiceError) as e:
        with_map.update("tlm", "1201", {"payload": example("spatem")})
    assert e.value.code == "unknown_id"


def test_TP_IS_TLM_GEN_EVGN_BV_04(with_map, codec, clock):
    """Each application trigger produces one SPATEM with that state; the facility never repeats a state."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    assert len(spatems(with_map)) == 1
    v = example("spatem")
    v["spat"]["intersections"][0]["states"][0]["state-time-speed"][0]["eventState"] = "stop-And-Remain"
    clock.advance(0.5)
    with_map.update("tlm", "1201", {"payload": v})
    [tx] = spatems(with_map)
    assert tx.fresh
    assert (
        decoded(codec, tx)["spat"]["intersections"][0]["states"][0]["state-time-speed"][0]["eventState"]
        == "stop-And-Remain"
    )
    for _ in range(10):  # no stale state is repeated by the facility
        clock.advance(1)
        assert spatems(with_map) == []


def test_TP_IS_TLM_GEN_COM_BV_01(with_map):
    """The TLM service supplies the destination area: a circle around the intersection's MAP reference point."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    [tx] = spatems(with_map)
    area = tx.params.destination
    assert area is not None and area.shape == "circle" and area.a == 300
    assert (round(area.latitude, 6), round(area.longitude, 6)) == (44.837592, -0.579431)


def test_TP_IS_TLM_GEN_COM_BV_02(with_map):
    """SPATEM goes to BTP-B port 2004 (the transport takes the port from the parameters' kind)."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    [tx] = spatems(with_map)
    assert tx.params.btp_port == 2004 and tx.params.kind is catalog.SPATEM


def test_TP_IS_TLM_GEN_COMM_BV_03(with_map):
    """SPATEM is sent GeoBroadcast (a destination area is set); an explicit null gives SHB, an area is kept."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    assert spatems(with_map)[0].params.destination is not None
    area = {"latitude": 44.8, "longitude": -0.57, "shape": "rectangle", "a": 400, "b": 200, "angle": 90}
    with_map.update("tlm", "1201", {"payload": example("spatem"), "dissemination": {"destination": area}})
    [tx] = spatems(with_map, with_map.clock.now() + 0.2)
    assert (tx.params.destination.shape, tx.params.destination.a, tx.params.destination.b) == ("rectangle", 400, 200)


def test_TP_IS_TLM_GEN_RATE_BV_01(with_map, codec, clock):
    """At most 10 SPATEMs per second per intersection in the long run, none closer than 50 ms: an early trigger
    is deferred (``deferred_by_s``), the newest state wins."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    assert len(spatems(with_map)) == 1
    t0 = clock.now()
    clock.advance(0.03)
    a1 = with_map.update("tlm", "1201", {"payload": example("spatem")})
    assert a1["deferred_by_s"] == pytest.approx(0.02)  # half an interval after the last send
    clock.advance(0.01)
    newest = example("spatem")
    newest["spat"]["intersections"][0]["states"][0]["state-time-speed"][0]["eventState"] = "protected-clearance"
    with_map.update("tlm", "1201", {"payload": newest})
    assert spatems(with_map) == []  # still too early
    assert with_map.next_deadline() == pytest.approx(t0 + 0.05)
    [tx] = spatems(with_map, t0 + 0.05)
    assert (
        decoded(codec, tx)["spat"]["intersections"][0]["states"][0]["state-time-speed"][0]["eventState"]
        == "protected-clearance"
    )
    # triggers every 20 ms for 10 s: 10 per second and the bucket's one ahead, never two within 50 ms
    sends = drive(with_map, codec, clock, [t0 + 1 + 0.02 * i for i in range(500)])
    times = [t for t, _ in sends]
    assert len(times) <= 10 * (times[-1] - times[0]) + 2.01  # (float times: a hair of slack)
    assert most_in_one_second(times) <= 11
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.05 - 1e-6


def drive(layer, codec, clock, triggers, ix="1201"):
    """The daemon's loop on a manual clock: a state of ``ix`` triggered at each time of ``triggers`` (the
    stream is active), every transmission taken at its deadline. The SPATEMs sent: (time, trigger time of
    the state it carries), the state known by the time stamp the service filled in."""
    stamped = {moy_dsecond(t): t for t in triggers}
    sent = []

    def run_until(t):
        while (d := layer.next_deadline()) is not None and d <= t:
            clock.set(max(d, clock.now()))
            for tx in spatems(layer):
                state = decoded(codec, tx)["spat"]["intersections"][0]
                sent.append((clock.now(), stamped[(state["moy"], state["timeStamp"])]))

    for t in triggers:
        run_until(t)
        clock.set(t)
        layer.update("tlm", ix, {"payload": example("spatem")})
    run_until(triggers[-1] + 1)
    return sent


def most_in_one_second(times):
    """The most of ``times`` (sorted) in any window (t - 1 s, t] (to 0.1 ms: the clock's times are floats that
    1 s apart may differ by a hair less)."""
    j, most = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1 + 1e-4:
            j += 1
        most = max(most, i - j + 1)
    return most


def test_TLM_rate_a_late_state_does_not_delay_the_next(with_map, codec, clock):
    """A controller sending exactly every 100 ms whose states sometimes reach the service late (the daemon was
    busy, up to half an interval): each goes out when it comes, and the states after it are not delayed at all
    (with "100 ms after the last send" every later state would be as late as the latest one, for ever)."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    spatems(with_map)
    t0 = clock.now() + 0.1
    late = {12: 0.04, 25: 0.05, 31: 0.03, 47: 0.045}  # state index -> how late it reaches the service
    triggers = [t0 + 0.1 * k + late.get(k, 0.0) for k in range(60)]
    sends = drive(with_map, codec, clock, triggers)
    assert [trigger for _, trigger in sends] == triggers  # every state sent, none superseded
    assert all(t == trigger for t, trigger in sends)  # each one at once
    assert most_in_one_second([t for t, _ in sends]) <= 11


def test_TLM_rate_a_source_faster_than_the_rate(with_map, codec, clock):
    """A controller a hair faster than 10 Hz (every 99 ms): held to 10 per second in the long run (11 at most in
    any one second, the bucket's one ahead), never two within 50 ms; a state waits at most one interval, and
    what goes out is always the freshest state (the one it replaced is counted superseded, never sent late)."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    spatems(with_map)
    t0 = clock.now() + 0.1
    triggers = [t0 + 0.099 * k for k in range(400)]  # 39.6 s: 400 states, about 397 may go out
    sends = drive(with_map, codec, clock, triggers)
    times = [t for t, _ in sends]
    assert len(times) <= 10 * (times[-1] - times[0]) + 2.01  # (float times: a hair of slack)
    assert len(times) < len(triggers)  # some states were superseded
    assert most_in_one_second(times) <= 11
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.05 - 1e-6
    assert max(t - trigger for t, trigger in sends) <= 0.1 + 1e-6
    for t, trigger in sends:  # the freshest: no later state had been triggered when it went out
        assert not any(trigger < x < t - 1e-6 for x in triggers)


def test_TLM_rate_a_burst_is_spaced_and_the_freshest_wins(with_map, codec, clock):
    """20 triggers 5 ms apart: never two SPATEMs within 50 ms, each the newest state at its time."""
    with_map.trigger("tlm", {"payload": example("spatem")})
    spatems(with_map)
    t0 = clock.now() + 0.1
    triggers = [t0 + 0.005 * k for k in range(20)]
    sends = drive(with_map, codec, clock, triggers)
    times = [t for t, _ in sends]
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.05 - 1e-6
    assert len(sends) < len(triggers) and sends[-1][1] == triggers[-1]  # the last state goes out
    for t, trigger in sends:
        assert not any(trigger < x < t - 1e-6 for x in triggers)


def test_TLM_rate_a_stream_that_ends_and_restarts_starts_clean(with_map, clock):
    """After terminate the intersection's rate state is forgotten (the table holds active intersections only):
    a new stream of it goes out at once."""
    tlm = with_map.entity("tlm")
    with_map.trigger("tlm", {"payload": example("spatem")})
    assert len(spatems(with_map)) == 1 and set(tlm._rate) == {"1201"}
    with_map.terminate("tlm", "1201")
    assert tlm._rate == {}
    clock.advance(0.01)
    answer = with_map.trigger("tlm", {"payload": example("spatem")})
    assert answer["started"] and "deferred_by_s" not in answer
    assert len(spatems(with_map)) == 1


def test_TLM_rate_applies_to_every_intersection_of_an_entry(with_map, clock):
    """One SPATEM of intersections 1201 and 1202: the limit holds for both, and both are forgotten when it ends
    (1202 alone then starts clean)."""
    tlm = with_map.entity("tlm")
    two = example("spatem")
    other = copy.deepcopy(two["spat"]["intersections"][0])
    other["id"] = {"id": 1202}
    two["spat"]["intersections"].append(other)
    assert with_map.trigger("tlm", {"payload": two})["id"] == "1201+1202"
    assert len(spatems(with_map)) == 1 and set(tlm._rate) == {"1201", "1202"}
    clock.advance(0.01)
    assert with_map.update("tlm", "1201+1202", {"payload": two})["deferred_by_s"] == pytest.approx(0.04)
    with_map.terminate("tlm", "1201+1202")
    assert tlm._rate == {}
    one = example("spatem")
    one["spat"]["intersections"][0]["id"] = {"id": 1202}
    answer = with_map.trigger("tlm", {"payload": one})
    assert answer["id"] == "1202" and "deferred_by_s" not in answer


def test_TLM_trigger_not_persisted_as_state(make_layer, codec, clock):
    """After a restart the TLM stream is still started, but no stale state comes back on the air."""
    layer = make_layer()
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.trigger("tlm", {"payload": example("spatem")})
    layer.due()
    layer.close()
    clock.advance(3)
    again = make_layer()
    [entry] = again.list("tlm")
    assert entry["state"] == "idle"
    assert by_service(again.due(), "tlm") == []
    again.update("tlm", "1201", {"payload": example("spatem")})
    assert len(by_service(again.due(), "tlm")) == 1


def test_TLM_kill_9_with_a_state_pending_never_sends_it_after_restart(make_layer, codec, clock):
    """kill -9 (the layer is abandoned, not closed) while a rate-limited state waits for its slot: the
    restarted layer sends no SPATEM at all, neither that state nor the last one sent, however long it
    runs, until the controller's next update, which goes out at once stamped with the new time."""
    layer = make_layer()
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.trigger("tlm", {"payload": example("spatem")})
    assert len(spatems(layer)) == 1
    clock.advance(0.02)
    answer = layer.update("tlm", "1201", {"payload": example("spatem")})
    assert answer["deferred_by_s"] > 0  # pending: the 10 Hz limit holds it back
    clock.advance(0.01)  # killed before its slot: no close(), the store is left as a crash leaves it
    again = make_layer()
    [entry] = again.list("tlm")
    assert entry["state"] == "idle" and entry["next_transmission"] is None
    for _ in range(50):  # 5 s of scheduler time after the restart
        assert spatems(again) == []
        clock.advance(0.1)
    again.update("tlm", "1201", {"payload": example("spatem")})
    [sent] = [t for t in again.due() if t.service == "tlm"]
    moy, dsec = moy_dsecond(clock.now())
    ix = decoded(codec, sent)["spat"]["intersections"][0]
    assert (ix["moy"], ix["timeStamp"]) == (moy, dsec)


# --- SSP (sender side): content the authorization tickets do not permit is never sent -----------------

SSP_CASES = [
    ("TP_IS_TLM_GEN_SSP_BV_02", {"intersectionState"}, "plain", True),
    ("TP_IS_TLM_GEN_SSP_BO_03", set(), "plain", False),
    ("TP_IS_TLM_GEN_SSP_BV_04", {"intersectionState", "prioritization"}, "example", True),
    ("TP_IS_TLM_GEN_SSP_BO_05", {"intersectionState"}, "example", False),
    ("TP_IS_TLM_GEN_SSP_BV_06", {"intersectionState", "maneuverAssist"}, "assist_ix", True),
    ("TP_IS_TLM_GEN_SSP_BV_07", {"intersectionState", "maneuverAssist"}, "assist_mv", True),
    ("TP_IS_TLM_GEN_SSP_BO_08", {"intersectionState"}, "assist_ix", False),
    ("TP_IS_TLM_GEN_SSP_BO_09", {"intersectionState"}, "assist_mv", False),
]


@pytest.mark.parametrize("tp,granted,payload,ok", SSP_CASES, ids=[c[0] for c in SSP_CASES])
def test_TP_IS_TLM_GEN_SSP(make_layer, tp, granted, payload, ok):
    """The TLM SSP test purposes, one per case (BV: sent when permitted; BO: refused, nothing sent)."""
    layer = make_layer(permission_check=permission_check(granted | {"intersections"}))
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.due()
    v = example("spatem") if payload == "example" else plain_spatem()
    assist = [{"connectionID": 1, "queueLength": 20}]
    if payload == "assist_ix":
        v["spat"]["intersections"][0]["maneuverAssistList"] = assist
    if payload == "assist_mv":
        v["spat"]["intersections"][0]["states"][0]["maneuverAssistList"] = assist
    if ok:
        layer.trigger("tlm", {"payload": v})
        assert len(spatems(layer)) == 1, tp
    else:
        with pytest.raises(ServiceError) as e:
            layer.trigger("tlm", {"payload": v})
        assert e.value.code == "ssp_not_permitted" and e.value.reason.startswith("SSP not permitted: "), tp
        assert spatems(layer) == [] and layer.list("tlm") == [], tp


def test_TLM_refuses_repetition_interval(with_map):
    with pytest.raises(ServiceError) as e:
        with_map.trigger("tlm", {"payload": example("spatem"), "dissemination": {"repetition_interval_s": 1}})
    assert e.value.path == "dissemination.repetition_interval_s" and "not repeated" in e.value.reason


def test_TLM_stop_time_ends_stream(with_map, clock):
    stop = iso_utc(clock.now() + 2)
    with_map.trigger("tlm", {"payload": example("spatem"), "dissemination": {"stop": stop}})
    assert with_map.list("tlm")
    clock.advance(2)
    spatems(with_map)
    assert with_map.list("tlm") == []
