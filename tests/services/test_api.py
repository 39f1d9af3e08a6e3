"""The HTTP API over a real localhost socket: all five services, every failure reason, the event stream."""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rsu import catalog
from rsu.api.app import STATUS, create_app, serve
from rsu.services.errors import CODES
from rsu.services.store import DB_NAME
from services.support import by_service, example, new_ivim, permission_check


@pytest.fixture
async def make_api(make_layer):
    clients: list[TestClient] = []

    async def make(**layer_kw):
        layer = make_layer(**layer_kw)
        client = TestClient(TestServer(create_app(layer, keepalive_s=0.2), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client, layer

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
async def api(make_api):
    return await make_api()


async def post(client, path, body, status):
    resp = await client.post(path, data=body if isinstance(body, (str, bytes)) else json.dumps(body))
    got = await resp.json()
    assert resp.status == status, got
    return got


async def expect_error(client, method, path, body, code, err_path=None):
    data = None if body is None else (body if isinstance(body, (str, bytes)) else json.dumps(body))
    resp = await client.request(method, path, data=data)
    got = await resp.json()
    assert resp.status == STATUS.get(code, resp.status), got
    assert got["error"]["code"] == code, got
    if err_path is not None:
        assert got["error"]["path"] == err_path, got
    assert got["error"]["reason"] and got["error"]["message"].startswith(code)
    return got["error"]


async def test_openapi_document_is_served(api):
    client, _ = api
    resp = await client.get("/openapi.json")
    doc = await resp.json()
    assert resp.status == 200 and doc["openapi"].startswith("3.")
    assert {"/v1/{service}/messages", "/v1/{service}/messages/{id}", "/v1/received"} <= set(doc["paths"])
    assert set(CODES) <= set(doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])


async def test_all_five_services_through_the_api(api):
    client, layer = api
    bodies = {
        "rlt": {"payload": example("mapem")},
        "tlm": {"payload": example("spatem")},
        "ivi": {"payload": new_ivim(), "dissemination": {"repetition_interval_s": 0.5, "priority": 5}},
        "tlc": {"payload": example("ssem")},
        "gpc": {"rtcm": example("rtcmem")["rtcmc"]["msgs"], "stream": "base-1"},
    }
    ids = {}
    for service, body in bodies.items():
        resp = await client.post(f"/v1/{service}/messages", json=body)
        answer = await resp.json()
        assert resp.status == 201, answer
        assert answer["service"] == service and answer["identification"]
        assert resp.headers["Location"] == f"/v1/{service}/messages/{answer['id']}"
        ids[service] = answer["id"]
    assert ids == {"rlt": "1201", "tlm": "1201", "ivi": "FR57-1", "tlc": "ssem-1201", "gpc": "base-1"}
    listed = (await (await client.get("/v1/messages")).json())["messages"]
    assert sorted((m["service"], m["id"]) for m in listed) == sorted(ids.items())
    txs = layer.due()
    assert sorted(t.kind.name for t in txs) == ["ivim", "mapem", "rtcmem", "spatem", "ssem"]
    assert next(t for t in txs if t.service == "ivi").priority == 5
    # SREM relay through the message-name alias
    answer = await post(client, "/v1/srem/messages", {"payload": example("srem")}, 201)
    assert answer["service"] == "tlc" and answer["id"] == "srem-station-2104711"


async def test_get_update_terminate_by_id(api):
    client, layer = api
    v = example("mapem")
    second = copy.deepcopy(v["map"]["intersections"][0])
    second["id"] = {"region": 7, "id": 1202}
    v["map"]["intersections"].append(second)
    answer = await post(client, "/v1/rlt/messages", {"payload": v}, 201)
    assert answer["id"] == "1201+7.1202"
    path = "/v1/rlt/messages/1201%2B7.1202"
    got = await (await client.get(path)).json()
    assert got["payload"]["map"]["intersections"][1]["id"] == {"region": 7, "id": 1202}
    resp = await client.put(path, json={"dissemination": {"repetition_interval_s": 2}})
    assert resp.status == 200 and (await resp.json())["service"] == "rlt"
    assert layer.get("rlt", "1201+7.1202")["dissemination"]["repetition_interval_s"] == 2
    resp = await client.delete(path)
    assert resp.status == 200 and (await resp.json())["terminated"] == "stopped"
    ivi = await post(client, "/v1/ivim/messages", {"payload": new_ivim()}, 201)
    answer = await post(client, f"/v1/ivi/messages/{ivi['id']}/terminate", {"mode": "cancellation"}, 200)
    assert answer["terminated"] == "cancellation"
    resp = await client.delete(f"/v1/ivi/messages/{ivi['id']}?mode=stop")
    assert resp.status == 200 and layer.list() == []


async def test_pending_requests_and_decision(api, codec):
    client, layer = api
    _, value = codec.from_jer(example("srem"), catalog.SREM)
    layer.on_received(codec.encode(value), {"its_aid": 140, "verification": "ok"}, {})
    reqs = (await (await client.get("/v1/tlc/requests")).json())["requests"]
    assert [r["key"] for r in reqs] == ["station-2104711:1201:5"]
    answer = await post(client, "/v1/tlc/messages", {"decision": {"request": reqs[0]["key"], "status": "granted"}}, 201)
    assert answer["id"] == "ssem-1201"


# --- one test per failure reason -------------------------------------------------------------------


async def test_error_bad_request(api):
    client, layer = api
    await expect_error(client, "POST", "/v1/ivi/messages", "{not json", "bad_request", "")
    await expect_error(client, "POST", "/v1/ivi/messages", "[1, 2]", "bad_request")
    await expect_error(client, "POST", "/v1/ivi/messages", "", "bad_request")
    assert layer.list() == []


async def test_error_validation(api, clock):
    client, layer = api
    err = await expect_error(
        client,
        "POST",
        "/v1/ivi/messages",
        {"payload": new_ivim(validTo=1)},
        "validation",
        "payload.ivi.mandatory.validTo",
    )
    assert "not in the future" in err["reason"]
    v = example("spatem")
    v["spat"]["intersections"][0]["states"][3]["signalGroup"] = 300
    err = await expect_error(
        client,
        "POST",
        "/v1/tlm/messages",
        {"payload": v},
        "validation",
        "payload.spat.intersections[0].states[3].signalGroup",
    )
    assert "300 > 255" in err["reason"]
    await expect_error(client, "POST", "/v1/rlt/messages", {"payload": "zz"}, "validation", "payload")
    await expect_error(
        client, "POST", "/v1/rlt/messages", {"payload": example("mapem"), "extra": 1}, "validation", "extra"
    )
    await expect_error(
        client,
        "POST",
        "/v1/ivi/messages",
        {"payload": new_ivim(), "dissemination": {"destination": {"latitude": 95, "longitude": 0}}},
        "validation",
        "dissemination.destination.latitude",
    )
    await expect_error(
        client,
        "POST",
        "/v1/ivi/messages",
        {"payload": new_ivim(), "dissemination": {"start": "yesterday"}},
        "validation",
        "dissemination.start",
    )
    await expect_error(client, "DELETE", "/v1/ivi/messages/FR57-1?force=1", None, "validation", "force")
    assert layer.list() == []


async def test_error_ssp_not_permitted(make_api):
    client, layer = await make_api(permission_check=permission_check({"intersections"}))
    err = await expect_error(
        client, "POST", "/v1/ivi/messages", {"payload": new_ivim()}, "ssp_not_permitted", "payload"
    )
    assert err["reason"] == "SSP not permitted: regulatory"
    assert layer.list() == [] and layer.due() == []


async def test_error_unknown_service_and_route(api):
    client, _ = api
    await expect_error(client, "POST", "/v1/cam/messages", {"payload": {}}, "unknown_service", "service")
    resp = await client.get("/v2/nothing")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


async def test_error_unknown_id(api):
    client, _ = api
    await expect_error(client, "GET", "/v1/ivi/messages/FR57-999", None, "unknown_id", "id")
    await expect_error(client, "PUT", "/v1/rlt/messages/1201", {"payload": example("mapem")}, "unknown_id")
    await expect_error(client, "DELETE", "/v1/gpc/messages/default", None, "unknown_id")


async def test_error_unknown_request(api):
    client, _ = api
    await expect_error(
        client,
        "POST",
        "/v1/tlc/messages",
        {"decision": {"request": "station-1:1201:1", "status": "granted"}},
        "unknown_request",
        "decision.request",
    )


async def test_error_revision_mismatch(api):
    client, layer = api
    await post(client, "/v1/rlt/messages", {"payload": example("mapem")}, 201)
    v = example("spatem")
    v["spat"]["intersections"][0]["revision"] = 2
    await expect_error(
        client,
        "POST",
        "/v1/tlm/messages",
        {"payload": v},
        "revision_mismatch",
        "payload.spat.intersections[0].revision",
    )
    assert layer.list("tlm") == []


async def test_error_signal_group_mismatch(api):
    client, _ = api
    await post(client, "/v1/rlt/messages", {"payload": example("mapem")}, 201)
    v = example("spatem")
    v["spat"]["intersections"][0]["states"] = v["spat"]["intersections"][0]["states"][:4]
    err = await expect_error(
        client,
        "POST",
        "/v1/tlm/messages",
        {"payload": v},
        "signal_group_mismatch",
        "payload.spat.intersections[0].states",
    )
    assert "[5, 6, 7, 8, 9, 10, 11, 12]" in err["reason"]


async def test_error_already_active(api):
    client, _ = api
    await post(client, "/v1/gpc/messages", {"payload": example("rtcmem")}, 201)
    await expect_error(client, "POST", "/v1/gpc/messages", {"payload": example("rtcmem")}, "already_active", "stream")


async def test_error_id_in_use(api):
    client, _ = api
    await post(client, "/v1/ivi/messages", {"payload": new_ivim(iviIdentificationNumber=77)}, 201)
    await expect_error(
        client,
        "POST",
        "/v1/ivi/messages",
        {"payload": new_ivim(iviIdentificationNumber=77)},
        "id_in_use",
        "payload.ivi.mandatory.iviIdentificationNumber",
    )


async def test_error_id_exhausted(make_api):
    client, _ = await make_api(rules={"ivi_id_max": 1})
    await post(client, "/v1/ivi/messages", {"payload": new_ivim()}, 201)
    await expect_error(client, "POST", "/v1/ivi/messages", {"payload": new_ivim()}, "id_exhausted")


async def test_error_not_active(api):
    client, _ = api
    ivi = await post(client, "/v1/ivi/messages", {"payload": new_ivim()}, 201)
    await post(client, f"/v1/ivi/messages/{ivi['id']}/terminate", {}, 200)  # cancellation being repeated
    await expect_error(client, "PUT", f"/v1/ivi/messages/{ivi['id']}", {"payload": new_ivim()}, "not_active")


async def test_error_capacity(make_api):
    client, layer = await make_api(rules={"max_entries": 1})
    await post(client, "/v1/rlt/messages", {"payload": example("mapem")}, 201)
    await expect_error(client, "POST", "/v1/ivi/messages", {"payload": new_ivim()}, "capacity")
    assert [m["service"] for m in layer.list()] == ["rlt"]


async def test_error_store_failure(make_api, state_dir):
    client, layer = await make_api(busy_timeout_ms=50)
    blocker = sqlite3.connect(str(state_dir / DB_NAME), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        err = await expect_error(client, "POST", "/v1/ivi/messages", {"payload": new_ivim()}, "store_failure")
        assert str(state_dir) not in json.dumps(err)  # the store's path and SQLite's words stay in the log
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert layer.list() == [] and layer.due() == []
    await post(client, "/v1/ivi/messages", {"payload": new_ivim()}, 201)  # and it works again


def test_every_failure_reason_has_an_api_test():
    """Each code of rsu.services.errors.CODES is exercised above through HTTP (test_error_<code>)."""
    tested = {name[len("test_error_") :] for name in globals() if name.startswith("test_error_")}
    tested |= {"unknown_service"}  # test_error_unknown_service_and_route
    assert set(CODES) <= tested, set(CODES) - tested


# --- IS_DataProviding: server-sent events ---------------------------------------------------------


async def read_event(resp, timeout=2.0) -> tuple[str, dict]:
    """Next SSE event (skipping comments / keepalives): (event name, data)."""
    name, data = None, None
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), timeout)).decode().rstrip("\n")
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and data is not None:
            return name, data


async def test_received_stream_filtered_by_service(api, codec):
    client, layer = api
    resp = await client.get("/v1/received?service=ivi,tlc")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    await resp.content.readline()  # the opening comment: the subscription exists
    sec = {"its_aid": 139, "ssp": "01000000000000", "signer": "0a0b0c0d0e0f1011", "verification": "ok"}
    for name in ("spatem", "ivim"):
        _, value = codec.from_jer(example(name), catalog.BY_NAME[name])
        layer.on_received(
            codec.encode(value), sec, {"transport": "gn", "source": "aabbccddeeff", "gn": {"header": b"\x01\x02"}}
        )
    name, event = await read_event(resp)
    assert name == "received" and event["message"] == "ivim"  # the SPATEM was filtered out
    assert event["security"] == sec and event["transport"]["source"] == "aabbccddeeff"
    assert event["transport"]["gn"] == {"header": "0102"}  # bytes from a transport arrive as hex
    assert event["ivi"]["collection"] == "new"
    resp.close()
    # resume after a reconnect: Last-Event-ID replays what came after
    resp = await client.get("/v1/received", headers={"Last-Event-ID": str(event["id"] - 1)})
    _, again = await read_event(resp)
    assert again["id"] == event["id"]
    resp.close()
    await expect_error(client, "GET", "/v1/received?service=cam", None, "unknown_service")


async def test_serve_binds_localhost_by_default(layer):
    runner = await serve(create_app(layer), port=0)
    try:
        [(host, port)] = runner.addresses
        assert host == "127.0.0.1" and port > 0
    finally:
        await runner.cleanup()


async def test_api_trigger_then_scheduler(api, clock):
    """What the API accepts is what the scheduler sends, at the interval asked for."""
    client, layer = api
    await post(client, "/v1/ivi/messages", {"payload": new_ivim(), "dissemination": {"repetition_interval_s": 2}}, 201)
    t0 = clock.now()
    seen = []
    for _ in range(3):
        clock.set(layer.next_deadline())
        seen += [clock.now() - t0 for _ in by_service(layer.due(), "ivi")]
    assert seen == [0, 2, 4]
