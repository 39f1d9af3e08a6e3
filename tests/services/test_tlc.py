"""TLC service: SREM received -> application -> decision -> SSEM; SREM generation (relay).

The TLC test purposes seen are partial (TS 103 191-2 TLCR_*); the SSEM ones are named as the
test-purpose list expects them (messageID 10, port 2008, sent in response, revised on change).
"""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.services.errors import ServiceError
from services.support import by_service, decoded, example, permission_check

SEC = {"its_aid": 140, "ssp": "0280000000", "signer": "0102030405060708", "verification": "ok"}
KEY = "station-2104711:1201:5"


def srem_bytes(codec, request_type="priorityRequest", request_id=5, duration=6000, seq=17) -> bytes:
    v = example("srem")
    pkg = v["srm"]["requests"][0]
    pkg["request"]["requestType"] = request_type
    pkg["request"]["requestID"] = request_id
    pkg["duration"] = duration
    v["srm"]["sequenceNumber"] = seq
    _, value = codec.from_jer(v, catalog.SREM)
    return codec.encode(value)


def ssems(layer, now=None):
    return [t for t in by_service(layer.due(now), "tlc") if t.kind is catalog.SSEM]


@pytest.fixture
def requested(layer, codec):
    """A bus asked intersection 1201 for priority (SREM received); the MAPEM is active."""
    layer.trigger("rlt", {"payload": example("mapem")})
    layer.due()
    event = layer.on_received(srem_bytes(codec), SEC, {"transport": "gn"})
    return layer, event


def test_TLC_RCV_SREM_delivered_with_requestor_role_and_ids(requested):
    """A received SREM reaches the application with the requestor, its role and the request ids."""
    layer, event = requested
    assert event["service"] == "tlc" and event["message"] == "srem"
    tlc = event["tlc"]
    assert tlc["requestor"] == {
        "key": "station-2104711",
        "role": "publicTransport",
        "subrole": "requestSubRole1",
        "importance": "requestImportanceLevel5",
    }
    assert tlc["sequenceNumber"] == 17
    [req] = tlc["requests"]
    assert (req["key"], req["intersection"], req["requestID"], req["requestType"], req["status"]) == (
        KEY,
        "1201",
        5,
        "priorityRequest",
        "new",
    )
    assert event["security"]["its_aid"] == 140
    assert [r["key"] for r in layer.pending_requests()] == [KEY]


def test_TP_IS_TLCS_GEN_MSGF_BV_01(requested, codec):
    """The decision becomes an SSEM: messageID ssem (10), protocolVersion 2, BTP port 2008, requester echoed."""
    layer, _ = requested
    answer = layer.trigger("tlc", {"decision": {"request": KEY, "status": "granted"}})
    assert answer["id"] == "ssem-1201"
    [tx] = ssems(layer)
    v = decoded(codec, tx)
    assert (v["header"]["messageID"], v["header"]["protocolVersion"], tx.params.btp_port) == (10, 2, 2008)
    pkg = v["ssm"]["status"][0]["sigStatus"][0]
    assert pkg["requester"] == {
        "id": ("stationID", 2104711),
        "request": 5,
        "sequenceNumber": 17,
        "role": "publicTransport",
    }
    assert pkg["status"] == "granted" and pkg["inboundOn"] == ("lane", 7) and pkg["outboundOn"] == ("lane", 3)
    assert (pkg["minute"], pkg["second"], pkg["duration"]) == (192012, 35800, 6000)
    assert v["ssm"]["status"][0]["id"] == {"id": 1201}


def test_TP_IS_TLCS_GEN_EVGN_BV_01(requested, codec, clock):
    """SSEM is sent on change, with new sequence numbers, and repeated unchanged while the request is active."""
    layer, _ = requested
    layer.trigger("tlc", {"decision": {"request": KEY, "status": "processing"}})
    [first] = ssems(layer)
    v1 = decoded(codec, first)["ssm"]
    clock.advance(1)
    [rep] = ssems(layer)
    assert rep.pdu == first.pdu and not rep.fresh  # a repetition reuses the bytes
    clock.advance(0.4)
    layer.trigger("tlc", {"decision": {"request": KEY, "status": "granted"}})  # a revised decision
    [changed] = ssems(layer)
    v2 = decoded(codec, changed)["ssm"]
    assert changed.fresh
    assert v2["sequenceNumber"] == (v1["sequenceNumber"] + 1) % 128
    assert v2["status"][0]["sequenceNumber"] == (v1["status"][0]["sequenceNumber"] + 1) % 128
    assert v2["status"][0]["sigStatus"][0]["status"] == "granted"
    answer = layer.trigger("tlc", {"decision": {"request": KEY, "status": "granted"}})  # same decision again
    assert answer["unchanged"] is True


def test_TLC_request_cancelled_by_requestor_stops_ssem(requested, codec, clock):
    layer, _ = requested
    layer.trigger("tlc", {"decision": {"request": KEY, "status": "granted"}})
    ssems(layer)
    clock.advance(0.5)
    event = layer.on_received(srem_bytes(codec, "priorityCancellation"), SEC, {})
    assert event["tlc"]["requests"][0]["requestType"] == "priorityCancellation"
    assert layer.list("tlc") == [] and layer.pending_requests() == []
    clock.advance(1)
    assert ssems(layer) == []


def test_TLC_ssem_ends_with_request_window(requested, codec, clock):
    """A granted request is answered until its service window ends (minute/second + duration), then silence."""
    layer, _ = requested
    layer.trigger("tlc", {"decision": {"request": KEY, "status": "granted"}})
    end = clock.now() + 12 * 60 + 41.8  # the window ends 08:12:41.8 (minute 192012, 35.8 s + 6 s)
    sent, last = 0, None
    while (deadline := layer.next_deadline()) is not None and deadline < end + 10:
        clock.set(deadline)
        n = len(ssems(layer))
        sent += n
        last = clock.now() if n else last
    assert sent == 762 and last == pytest.approx(end - 0.8)  # at 0, 1, ..., 761 s
    assert layer.list("tlc") == []


def test_TLC_two_requests_one_ssem(requested, codec):
    layer, _ = requested
    layer.on_received(srem_bytes(codec, request_id=6), SEC, {})
    layer.trigger("tlc", {"decision": {"request": KEY, "status": "granted"}})
    answer = layer.trigger("tlc", {"decision": {"request": "station-2104711:1201:6", "status": "rejected"}})
    assert answer["identification"]["intersections"][0]["requests"] == [KEY, "station-2104711:1201:6"]
    answer = layer.terminate("tlc", "ssem-1201", {"request": KEY})
    assert answer["identification"]["intersections"][0]["requests"] == ["station-2104711:1201:6"]
    statuses = [p["status"] for p in decoded(codec, ssems(layer)[-1])["ssm"]["status"][0]["sigStatus"]]
    assert statuses == ["rejected"]


def test_TLC_decision_errors(requested):
    layer, _ = requested
    with pytest.raises(ServiceError) as e:
        layer.trigger("tlc", {"decision": {"request": "station-1:1201:1", "status": "granted"}})
    assert (e.value.code, e.value.path) == ("unknown_request", "decision.request")
    with pytest.raises(ServiceError) as e:
        layer.trigger("tlc", {"decision": {"request": KEY, "status": "maybe"}})
    assert (e.value.code, e.value.path) == ("validation", "decision.status")
    assert "unknown value 'maybe'" in e.value.reason
    assert layer.list("tlc") == []


def test_TLC_ssem_payload_from_application(layer, codec):
    """An application may give the whole SSEM; the service owns its sequence numbers and timestamps."""
    answer = layer.trigger("tlc", {"payload": example("ssem")})
    assert answer["id"] == "ssem-1201"
    [tx] = ssems(layer)
    ssm = decoded(codec, tx)["ssm"]
    assert ssm["status"][0]["sigStatus"][0]["status"] == "granted"
    assert "timeStamp" in ssm and ssm["sequenceNumber"] == 0


def test_TP_IS_TLCR_GEN_MSGF_BV_01(layer, codec, clock):
    """SREM generation (an RSU relaying a request): messageID 9, port 2007, repeated, sequenceNumber on change."""
    answer = layer.trigger("tlc", {"payload": example("srem")})
    assert answer["id"] == "srem-station-2104711"
    [tx] = by_service(layer.due(), "tlc")
    v = decoded(codec, tx)
    assert (v["header"]["messageID"], v["header"]["protocolVersion"], tx.params.btp_port) == (9, 2, 2007)
    clock.advance(1)
    [rep] = by_service(layer.due(), "tlc")
    assert rep.pdu == tx.pdu
    changed = example("srem")
    changed["srm"]["requests"][0]["duration"] = 9000
    layer.update("tlc", "srem-station-2104711", {"payload": changed})
    [tx2] = by_service(layer.due(), "tlc")
    assert decoded(codec, tx2)["srm"]["sequenceNumber"] == (v["srm"]["sequenceNumber"] + 1) % 128
    layer.terminate("tlc", "srem-station-2104711")
    clock.advance(2)
    assert by_service(layer.due(), "tlc") == []


def test_TP_IS_TLCR_GEN_SEC_BO_04(make_layer):
    """No SREM requesting priority for a role the ATs do not permit."""
    layer = make_layer(permission_check=permission_check({"role:emergency"}))
    with pytest.raises(ServiceError) as e:
        layer.trigger("tlc", {"payload": example("srem")})
    assert e.value.code == "ssp_not_permitted" and e.value.reason == "SSP not permitted: role:publicTransport"
    assert layer.due() == [] and layer.list() == []


def test_TLC_decision_joins_the_ssem_that_answers_the_intersection(requested, codec):
    """An application SSEM for 1201+1202 already answers 1201: a decision for 1201 updates that SSEM."""
    layer, _ = requested
    v = example("ssem")
    second = dict(v["ssm"]["status"][0], id={"id": 1202})
    v["ssm"]["status"].append(second)
    assert layer.trigger("tlc", {"payload": v})["id"] == "ssem-1201+1202"
    with pytest.raises(ServiceError) as e:
        layer.trigger("tlc", {"payload": example("ssem")})
    assert e.value.code == "already_active" and "ssem-1201+1202" in e.value.reason
    answer = layer.trigger("tlc", {"decision": {"request": KEY, "status": "rejected"}})
    assert answer["id"] == "ssem-1201+1202"
    ssm = decoded(codec, ssems(layer)[-1])["ssm"]
    assert [p["status"] for p in ssm["status"][0]["sigStatus"]] == ["rejected"]
    assert [s["id"]["id"] for s in ssm["status"]] == [1201, 1202]


def test_TLC_request_table_is_bounded_and_counts_when_full(make_layer, codec):
    hits = []
    layer = make_layer(rules={"srem_pending_max": 2})
    layer.ctx.on_limit = hits.append
    for rid in (1, 2, 3):
        layer.on_received(srem_bytes(codec, request_id=rid), SEC, {})
    assert list(layer.services["tlc"].pending) == ["station-2104711:1201:2", "station-2104711:1201:3"]
    assert hits == ["tlc-requests"]
    layer.on_received(srem_bytes(codec, request_id=2), SEC, {})  # heard again: now the most recent
    layer.on_received(srem_bytes(codec, request_id=4), SEC, {})
    assert list(layer.services["tlc"].pending) == ["station-2104711:1201:2", "station-2104711:1201:4"]
