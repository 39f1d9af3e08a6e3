"""Pre-signed messages from the centre: POST /v1/forward on a daemon running in this process, with real
signatures (ATs of the daemon's own PKI for the centre, and of a foreign PKI), a real Mosquitto behind
the daemon's MQTT transport, and a subscriber that sees exactly the bytes the centre signed."""

from __future__ import annotations

import asyncio
import base64
import dataclasses

import aiohttp
import aiomqtt
import pytest

import tests.security.samples as samples
from rsu import catalog
from rsu import clock as clockmod
from rsu.clock import ManualClock
from rsu.forward.presigned import Schedule
from rsu.ops.daemon import Daemon
from rsu.security import pki
from rsu.security.sign import Signer
from tests.forward.centre import until
from tests.ops.rxharness import Neighbour, daemon_config
from tests.transports.conftest import Mosquitto

START = 1_780_000_000.0


@pytest.fixture
async def rig(tmp_path, mosquitto_bin):
    """(daemon, centre signer helper, received publications, base URL)"""
    broker = Mosquitto(mosquitto_bin, tmp_path)
    broker.start()
    clock = ManualClock(START)
    base = daemon_config(tmp_path / "state")
    transports = [
        base.transports[0],
        dataclasses.replace(base.transports[1], host=broker.host, port=broker.port, subscribe=()),
    ]
    d = Daemon(base.model_copy(update={"transports": transports}), clock=clock)
    await d.start()
    received: list[tuple[str, bytes]] = []
    async with aiomqtt.Client(
        broker.host, broker.port, identifier="watcher", protocol=aiomqtt.ProtocolVersion.V5
    ) as watcher:
        await watcher.subscribe("#", qos=1)

        async def listen():
            async for m in watcher.messages:
                received.append((m.topic.value, bytes(m.payload)))

        task = asyncio.create_task(listen())
        await d.transports["mqtt"].wait_connected(30)
        try:
            yield d, Neighbour(d.config.pki_path, clock), clock, received, f"http://127.0.0.1:{d.api_port}"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await d.stop()
            broker.stop()


def signed(signer: Signer, kind, value, clock, nb: Neighbour, *, certificate: bool = True) -> bytes:
    return signer.sign(nb.pdu(kind, value), kind.its_aid, clockmod.time64(clock.now()), with_certificate=certificate)


async def post(url: str, body) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.post(f"{url}/v1/forward", json=body) as r:
        return r.status, await r.json()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_a_verified_message_goes_out_unchanged_once(rig):
    d, nb, clock, received, url = rig
    centre = nb.new_signer(catalog.IVIM)  # the centre's own AT, under the RSU's trusted AA
    data = signed(centre, catalog.IVIM, samples.ivim(), clock, nb)
    status, answer = await post(url, {"data": b64(data)})
    assert status == 201, answer
    assert answer["message"] == "ivim" and answer["transports"] == ["mqtt"] and answer["sent"] == 1
    assert answer["signer"] == centre.certificate.hashed_id8.hex()
    await until(lambda: len(received) == 1)
    topic, payload = received[0]
    assert payload == data  # not re-signed, not re-encoded
    assert "/ivim/" in topic
    assert d.metrics.presigned.labels("accepted")._value.get() == 1


async def test_the_routes_state_their_role_in_the_openapi_document(rig):
    d, nb, clock, received, url = rig
    async with aiohttp.ClientSession() as s, s.get(f"{url}/openapi.json") as r:
        paths = (await r.json())["paths"]
    assert paths["/v1/forward"]["post"]["x-rsu-role"] == "operator"
    assert paths["/v1/forward"]["get"]["x-rsu-role"] == "monitor"
    assert paths["/v1/forward/{id}"]["delete"]["x-rsu-role"] == "operator"


async def test_a_repetition_schedule_sends_the_same_bytes_and_can_be_listed(rig):
    d, nb, clock, received, url = rig
    data = signed(nb.new_signer(catalog.IVIM), catalog.IVIM, samples.ivim(), clock, nb)
    status, answer = await post(url, {"data": b64(data), "repetition": {"interval_s": 0.5, "count": 3}})
    assert status == 201 and answer["remaining"] == 2, answer
    async with aiohttp.ClientSession() as s, s.get(f"{url}/v1/forward") as r:
        listed = (await r.json())["repeating"]
    assert [e["id"] for e in listed] == [answer["id"]] and listed[0]["remaining"] == 2
    await until(lambda: len(received) == 1)
    for n in (2, 3):
        clock.advance(0.5)  # the manual clock makes the next repetition due
        await until(lambda n=n: len(received) == n)
    assert {p for _, p in received} == {data}
    assert len(d.forward.presigned.schedule) == 0
    clock.advance(5)
    await asyncio.sleep(0.3)  # a fourth transmission would be counted below
    assert len(received) == 3


@pytest.mark.parametrize(
    "case, reason",
    [
        ("bad-signature", "invalid-signature"),
        ("wrong-ssp", "ssp-violation"),
        ("unknown-digest", "signer-certificate-unknown"),
        ("foreign-pki", "unknown-issuer"),
        ("too-old", "generation-time-too-old"),
        ("gn", "gn-needs-rsu-signature"),
        ("unknown-transport", "unknown-transport"),
    ],
)
async def test_refused_with_a_named_reason_and_nothing_sent(rig, case, reason):
    d, nb, clock, received, url = rig
    kind, value, signer = catalog.IVIM, samples.ivim(), nb.new_signer(catalog.IVIM)
    body: dict = {}
    if case == "wrong-ssp":  # may not request any role's priority (the SREM asks for a bus's)
        kind, value, signer = catalog.SREM, samples.srem(), nb.new_signer(catalog.SREM, bytes.fromhex("02800000"))
    if case == "foreign-pki":
        t32 = clockmod.time32(clock.now() - 3600)
        root = pki.make_root(t32, name="foreign root")
        at = pki.make_at(pki.make_aa(root, t32), t32, [(kind.its_aid, None)])
        signer = Signer(at.certificate, at.key)
    if case == "too-old":
        clock.advance(-120)
    data = signed(signer, kind, value, clock, nb, certificate=case != "unknown-digest")
    if case == "too-old":
        clock.advance(120)
    if case == "bad-signature":
        data = data[:-5] + bytes([data[-5] ^ 0x5A]) + data[-4:]
    if case == "gn":
        body["transports"] = ["gn", "mqtt"]
    if case == "unknown-transport":
        body["transports"] = ["nowhere"]
    status, answer = await post(url, {"data": b64(data), **body})
    assert status == 422 and answer["error"]["reason"] == reason, answer
    assert answer["error"]["code"] == "presigned_refused"
    assert d.metrics.presigned.labels(reason)._value.get() == 1
    await asyncio.sleep(0.3)  # a publication would have reached the watcher by now (counted below)
    assert received == []


async def test_a_malformed_request_names_every_problem_at_once(rig):
    d, nb, clock, received, url = rig
    status, answer = await post(url, {"data": "!!", "repetition": {"interval_s": 0, "count": 0}, "extra": 1})
    assert status == 422 and answer["error"]["reason"] == "validation"
    for field in ("data", "repetition.interval_s", "repetition.count", "extra"):
        assert f"{field}:" in answer["error"]["detail"], field
    status, answer = await post(url, {"data": b64(b"\x03\x80\x02hi")})  # unsecured data
    assert status == 422 and answer["error"]["reason"] == "not-signed-data", answer


def test_the_repetition_schedule_survives_a_reopen_and_keeps_its_cadence(tmp_path):
    clock = ManualClock(START)
    s = Schedule(tmp_path / "p.sqlite", clock)
    first = s.add(b"signed", "ivim", ["mqtt"], 1.0, 3)
    s.close()
    s = Schedule(tmp_path / "p.sqlite", clock)
    assert s.due() == [] and s.next_deadline() == START + 1
    clock.advance(1)
    assert [(e.ident, e.remaining) for e in s.due()] == [(first.ident, 2)]
    clock.advance(10)  # a late loop sends once, not the ten slots it missed
    assert [e.remaining for e in s.due()] == [1] and s.due() == []
    clock.advance(1)
    assert [e.remaining for e in s.due()] == [0] and len(s) == 0
    assert s.add(b"x", "ivim", ["mqtt"], 1.0, 1).ident > first.ident  # ids never go back
