"""its-client v2 JSON: messages shaped like the examples and schemas Orange its-client documents
(schema/<type>/<type>_schema_<version>.json: the envelope fields, snake_case bodies, enumerations as
integers, bit strings as 0/1 strings, the requestor's id as a bare station id) are read into the
PDUs they describe; what rsu writes has the envelope those schemas require; a real MQTT transport on
a real Mosquitto publishes and reads that form; a forward sink writes it too."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import aiomqtt
import pytest

import tests.security.samples as samples
from rsu import catalog
from rsu.clock import ManualClock, time64
from rsu.codec.facilities import get_codec
from rsu.forward.config import ForwardSection
from rsu.ops.daemon import Daemon
from rsu.transports import itsclient
from rsu.transports.base import DisseminationParams, ReceivedFrame
from rsu.transports.config import MqttConfig
from rsu.transports.drops import DropCounts
from rsu.transports.mqtt import MqttTransport
from rsu.transports.mqtt_core import MqttCore
from tests.forward.centre import Webhook, until
from tests.ops.rxharness import Neighbour, daemon_config, feed_gn
from tests.transports.conftest import Mosquitto, free_tcp_port

START = 1_780_000_000.0

# Shaped like its-client's SREM (schema 2.0.1) and SSEM (2.0.1) and SPATEM (2.0.0) documents
SREM = {
    "message_type": "srem",
    "source_uuid": "obu_bus_2417",
    "timestamp": 1780000000123,
    "version": "2.0.1",
    "message": {
        "protocol_version": 2,
        "station_id": 2104711,
        "timestamp": 192012,
        "second": 21800,
        "sequence_number": 17,
        "requests": [
            {
                "request": {
                    "id": {"region": 0, "id": 1201},
                    "request_id": 5,
                    "request_type": 1,
                    "inbound_lane": {"lane": 7},
                    "outbound_lane": {"lane": 3},
                },
                "minute": 192012,
                "second": 35800,
                "duration": 6000,
            }
        ],
        "requestor": {
            "id": 2104711,
            "type": {"role": 1, "subrole": 1, "request": 5, "hpms_type": 6},
            "position": {
                "position": {"latitude": 448365482, "longitude": -5793693, "elevation": 622},
                "heading": 120,
                "speed": {"transmission": 2, "speed": 415},
            },
            "name": "TBM 2417",
        },
    },
}
SSEM = {
    "message_type": "ssem",
    "source_uuid": "rsu_42",
    "timestamp": 1780000000456,
    "version": "2.0.1",
    "message": {
        "protocol_version": 2,
        "station_id": 42,
        "timestamp": 192012,
        "second": 22000,
        "sequence_number": 3,
        "status": [
            {
                "sequence_number": 1,
                "id": {"id": 1201},
                "sig_status": [
                    {
                        "requester": {"id": 2104711, "request": 5, "sequence_number": 17, "role": 1},
                        "inbound_on": {"lane": 7},
                        "outbound_on": {"lane": 3},
                        "status": 4,
                    }
                ],
            }
        ],
    },
}
SPATEM = {
    "message_type": "spatem",
    "origin": "global_application",
    "version": "2.0.0",
    "source_uuid": "tmc_1",
    "timestamp": 1780000000789,
    "message": {
        "protocol_version": 2,
        "station_id": 42,
        "timestamp": 192012,
        "intersections": [
            {
                "id": {"id": 1201},
                "revision": 3,
                "status": "0000000000000000",
                "states": [
                    {
                        "signal_group": 1,
                        "state_time_speed": [
                            {"event_state": 6, "timing": {"min_end_time": 7560, "max_end_time": 7682}}
                        ],
                    },
                    {"signal_group": 2, "state_time_speed": [{"event_state": 3}]},
                ],
            }
        ],
    },
}
MAPEM_NAMED = {
    "message_type": "mapem",
    "origin": "self",
    "version": "2.0.0",
    "source_uuid": "tmc_1",
    "timestamp": 1780000000000,
    "message": {
        "protocol_version": 2,
        "station_id": 42,
        "msg_issue_revision": 0,
        "intersections": [
            {
                "id": {"id": 1201},
                "revision": 1,
                "ref_point": {"latitude": 448365482, "longitude": -5793693},
                "lane_set": [
                    {
                        "lane_id": 1,
                        "lane_attributes": {
                            "directional_use": ["ingressPath"],
                            "shared_with": [],
                            "lane_type": {"vehicle": []},
                        },
                        "node_list": {
                            "nodes": [
                                {"delta": {"node_xy1": {"x": 100, "y": 100}}},
                                {"delta": {"node_xy1": {"x": 200, "y": 200}}},
                            ]
                        },
                    }
                ],
            }
        ],
    },
}


def decoded(obj: dict):
    kind, pdu, env = itsclient.decode_payload(json.dumps(obj).encode())
    d = get_codec().decode(pdu)
    assert d.kind is kind
    return kind, d.value, env


def test_an_its_client_srem_becomes_the_srem_it_describes():
    kind, v, env = decoded(SREM)
    assert kind is catalog.SREM and env["source_uuid"] == "obu_bus_2417" and env["timestamp"] == 1780000000123
    assert v["header"] == {"protocolVersion": 2, "messageID": catalog.SREM.message_id, "stationID": 2104711}
    req = v["srm"]["requests"][0]["request"]
    assert req["requestID"] == 5 and req["requestType"] == "priorityRequest"
    assert req["inBoundLane"] == ("lane", 7) and req["id"] == {"region": 0, "id": 1201}
    requestor = v["srm"]["requestor"]
    assert requestor["id"] == ("stationID", 2104711)
    assert requestor["type"]["role"] == "publicTransport" and requestor["type"]["hpmsType"] == "bus"
    assert requestor["position"]["position"]["lat"] == 448365482
    assert requestor["position"]["speed"]["transmisson"] == "forwardGears"


def test_an_its_client_ssem_and_spatem_become_what_they_describe():
    _, ssem, _ = decoded(SSEM)
    pkg = ssem["ssm"]["status"][0]["sigStatus"][0]
    assert pkg["requester"]["id"] == ("stationID", 2104711) and pkg["status"] == "granted"
    assert pkg["requester"]["role"] == "publicTransport"
    _, spat, env = decoded(SPATEM)
    assert env["origin"] == "global_application"
    states = spat["spat"]["intersections"][0]["states"]
    assert states[0]["state-time-speed"][0]["eventState"] == "protected-Movement-Allowed"
    assert states[1]["state-time-speed"][0]["eventState"] == "stop-And-Remain"
    assert spat["spat"]["intersections"][0]["status"] == (b"\x00\x00", 16)


def test_its_client_mapem_forms_enumeration_names_and_named_bit_lists_are_read():
    _, v, _ = decoded(MAPEM_NAMED)
    lane = v["map"]["intersections"][0]["laneSet"][0]
    assert lane["laneAttributes"]["directionalUse"] == (b"\x80", 2)


@pytest.mark.parametrize("name", sorted(itsclient.VERSIONS))
def test_what_rsu_writes_has_the_envelope_its_client_requires_and_reads_back_the_same_pdu(name):
    codec = get_codec()
    kind = catalog.BY_NAME[name]
    value = samples.ALL[name]()
    pdu = codec.encode(value, kind)
    payload = json.loads(itsclient.encode_payload(pdu, kind, "rsu_3120101", START))
    required = {"message_type", "version", "source_uuid", "timestamp", "message"}
    assert set(payload) == required | ({"origin"} if name in ("spatem", "mapem", "ivim", "rtcmem") else set())
    assert payload["message_type"] == name and payload["version"] == itsclient.VERSIONS[name]
    assert payload.get("origin", "self") == "self" and payload["timestamp"] == int(START * 1000)
    assert 1514764800000 <= payload["timestamp"] <= 1830297600000  # the schemas' bounds
    assert payload["message"]["station_id"] == value["header"]["stationID"]
    assert all(k == k.lower() and "-" not in k for k in _keys(payload["message"]))
    kind2, pdu2, _ = itsclient.decode_payload(json.dumps(payload).encode())
    assert kind2 is kind and pdu2 == pdu


def _keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v)


def test_a_message_that_does_not_fit_names_the_field():
    bad = json.loads(json.dumps(SREM))
    bad["message"]["requests"][0]["request"]["colour"] = "red"
    with pytest.raises(itsclient.ItsClientError) as e:
        itsclient.decode_payload(json.dumps(bad).encode())
    assert e.value.path == "message.requests[0].request.colour"
    bad = json.loads(json.dumps(SREM))
    bad["message"]["requests"][0]["request"]["request_type"] = 9
    with pytest.raises(itsclient.ItsClientError) as e:
        itsclient.decode_payload(json.dumps(bad).encode())
    assert e.value.path == "message.requests[0].request.request_type"
    with pytest.raises(itsclient.ItsClientError) as e:
        itsclient.decode_payload(json.dumps(dict(SREM, message_type="cam")).encode())
    assert e.value.path == "message_type"


def test_the_mqtt_core_reads_its_client_as_an_unsecured_frame_and_drops_a_mismatch():
    cfg = MqttConfig(payload_format="its-client", source="rsu_1", latitude=44.8, longitude=-0.58)
    core = MqttCore(cfg, ManualClock(START))
    topic = "default/outQueue/v2x/srem/obu_bus_2417/1/2/0/2"
    frame = core.receive(topic, json.dumps(SREM).encode())
    assert isinstance(frame, ReceivedFrame) and not frame.secured_packet
    assert get_codec().decode(frame.secured).kind is catalog.SREM
    drop = core.receive(topic.replace("/srem/", "/ssem/"), json.dumps(SREM).encode())
    assert str(drop.reason) == "malformed-mqtt-payload"


async def test_an_mqtt_transport_publishes_its_client_json_on_a_real_broker(tmp_path, mosquitto_bin, signer):
    broker = Mosquitto(mosquitto_bin, tmp_path)
    broker.start()
    clock = ManualClock(START)
    cfg = MqttConfig(
        host=broker.host,
        port=broker.port,
        payload_format="its-client",
        source="rsu_42",
        latitude=44.8,
        longitude=-0.58,
        subscribe=["srem"],
        subscribe_queue="inQueue",
        subscribe_depth=0,
        backoff_initial=0.1,
        backoff_max=0.5,
    )
    t = MqttTransport(cfg, clock=clock, drops=DropCounts())
    frames: list = []
    try:
        async with aiomqtt.Client(
            broker.host, broker.port, identifier="its-client-app", protocol=aiomqtt.ProtocolVersion.V5
        ) as app:
            await app.subscribe("default/inQueue/v2x/spatem/#", qos=1)
            await t.start(frames.append)
            await t.wait_connected(10)
            value = samples.spatem()
            pdu = get_codec().encode(value, catalog.SPATEM)
            signed = signer.sign(pdu, catalog.SPATEM.its_aid, time64(clock.now()), with_certificate=True)
            await t.send(signed, DisseminationParams(catalog.SPATEM, lifetime_s=5))
            message = await asyncio.wait_for(app.messages.__anext__(), 10)
            body = json.loads(message.payload)
            assert body["message_type"] == "spatem" and body["source_uuid"] == "rsu_42"
            assert body["message"]["intersections"][0]["states"][0]["state_time_speed"][0]["event_state"] == 6
            await app.publish("default/inQueue/v2x/srem/obu_bus_2417/1/2/0/2", json.dumps(SREM), qos=1)
            await until(lambda: len(frames) == 1, 30)
            assert get_codec().decode(frames[0].secured).value["srm"]["requestor"]["id"] == ("stationID", 2104711)
    finally:
        await t.stop()
        broker.stop()


async def test_a_forward_sink_writes_its_client_json(tmp_path):
    webhook = Webhook(free_tcp_port())
    await webhook.start()
    clock = ManualClock(START)
    base = daemon_config(tmp_path / "state")
    fwd = ForwardSection.model_validate(
        {"sinks": [{"type": "webhook", "name": "tmc", "url": webhook.url, "format": "its-client"}]}
    )
    d = Daemon(base.model_copy(update={"forward": fwd}), clock=clock)
    await d.start()
    try:
        nb = Neighbour(d.config.pki_path, clock)
        clock.advance(0.001)
        feed_gn(d, nb.frame(catalog.SREM, nb.pdu(catalog.SREM, samples.srem())))
        await until(lambda: len(webhook.received) == 1)
        ident, body, _ = webhook.received[0]
        assert ident == f"{d.config.station.id}-tmc-1"
        assert body["message_type"] == "srem" and body["source_uuid"] == f"rsu_{d.config.station.id}"
        assert body["message"]["station_id"] == samples.srem()["header"]["stationID"]
        kind, pdu, _ = itsclient.decode_payload(json.dumps(body).encode())
        assert get_codec().decode(pdu).value == get_codec().decode(nb.pdu(catalog.SREM, samples.srem())).value
    finally:
        await d.stop()
        await webhook.stop()


async def test_an_its_client_srem_reaches_is_dataproviding_only_when_unsecured_messages_are_accepted(tmp_path):
    """Through the daemon's real receive path: its-client messages carry no signature, so they are
    delivered as unsecured ones: with security.accept_unsecured, and dropped (unsecured) without it."""
    for accept in (False, True):
        clock = ManualClock(START)
        base = daemon_config(tmp_path / f"state-{accept}", accept_unsecured=accept)
        transports = [base.transports[0], dataclasses.replace(base.transports[1], payload_format="its-client")]
        d = Daemon(base.model_copy(update={"transports": transports}), clock=clock)
        await d.start()
        try:
            sub = d.hub.subscribe(types=["received"])
            topic = "default/inQueue/v2x/srem/obu_bus_2417/1/2/0/2"
            d.transports["mqtt"]._handle(aiomqtt.Message(topic, json.dumps(SREM).encode(), 1, False, 1, None))
            events = sub.drain()
            if accept:
                assert [e["message"] for e in events] == ["srem"]
                assert events[0]["security"]["secured"] is False and events[0]["station_id"] == 2104711
                assert events[0]["transport"]["timestamp_ms"] == SREM["timestamp"]
            else:
                assert events == []
                assert d.metrics.child(d.metrics.rx_dropped, "srem", "mqtt", "unsecured")._value.get() == 1
        finally:
            await d.stop()


def test_no_two_fields_of_any_message_share_an_its_client_name():
    """The reverse mapping (its-client name -> ASN.1 field) is unique in every SEQUENCE and CHOICE of the six PDUs."""
    codec = get_codec()
    seen: set[int] = set()
    stack = [codec.node(k) for k in catalog.MESSAGES]
    walked = 0
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.kind in ("SEQUENCE", "CHOICE"):
            names = [itsclient.snake(m.name) for m in node.members]
            assert len(names) == len(set(names)), (node.label, names)
            walked += 1
        stack.extend(m.node for m in node.members)
        if node.element is not None:
            stack.append(node.element)
        if node.kind == "REGEXT":
            stack.extend(codec.schema.regset_types(node.regset or "").values())
    assert walked > 100


@pytest.mark.parametrize("name", sorted(itsclient.VERSIONS))
def test_generated_pdus_of_every_type_go_through_its_client_and_back_unchanged(name):
    """Hypothesis PDUs (every optional field, choice alternative, extension and regional extension the
    schema allows): its-client JSON out and back in gives the same UPER bytes."""
    from hypothesis import HealthCheck, given, settings

    from tests.strategies import pdu_strategy

    codec = get_codec()
    kind = catalog.BY_NAME[name]

    @settings(max_examples=40, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(pdu_strategy(codec, kind))
    def roundtrip(value):
        pdu = codec.encode(value, kind)
        payload = itsclient.encode_payload(pdu, kind, "rsu_1", START)
        kind2, pdu2, _ = itsclient.decode_payload(payload)
        assert kind2 is kind and pdu2 == pdu

    roundtrip()
