"""The MQTT transport against a real Mosquitto (started by the fixture on a free port): topics,
message expiry, retained MAPEM, the receive path with its drop reasons, two stations exchanging
over the broker, a broker restart in the middle of a run (reconnect, no stale replay), and TLS
with client certificates and a password."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess

import aiomqtt
import pytest

from rsu import catalog
from rsu.clock import ManualClock
from rsu.transports import quadkey as qk
from rsu.transports.base import DisseminationParams, GeoArea, ReceivedFrame
from rsu.transports.config import MqttConfig
from rsu.transports.drops import DropCounts, DropReason
from rsu.transports.mqtt import MqttTransport

from .conftest import NOW, RSU_LAT, RSU_LON

DIGITS = "/".join(qk.quadkey(RSU_LAT, RSU_LON, 22))


def mqtt_config(broker, **kw) -> MqttConfig:
    base = dict(
        host=broker.host,
        port=broker.port,
        latitude=RSU_LAT,
        longitude=RSU_LON,
        source="rsu_42",
        backoff_initial=0.1,
        backoff_max=0.5,
    )
    base.update(kw)
    return MqttConfig(**base)


class Client:
    """A plain aiomqtt v5 client for the test side."""

    def __init__(self, broker, name: str, **kw) -> None:
        self.client = aiomqtt.Client(
            broker.host, broker.port, identifier=name, protocol=aiomqtt.ProtocolVersion.V5, **kw
        )

    async def __aenter__(self) -> Client:
        await asyncio.wait_for(self.client.__aenter__(), 5)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.__aexit__(*exc)

    async def subscribe(self, *filters: str) -> None:
        for f in filters:
            await self.client.subscribe(f, qos=1)

    async def next(self, timeout: float = 5.0) -> aiomqtt.Message:
        return await asyncio.wait_for(self.client.messages.__anext__(), timeout)

    async def publish(self, topic: str, payload: bytes, **kw) -> None:
        await self.client.publish(topic, payload, qos=1, **kw)


@pytest.fixture
def secured(make_sign, pdus):
    sign = make_sign(ManualClock(NOW))
    return {k.name: sign(pdus[k.name], k) for k in catalog.MESSAGES}


async def started(cfg, clock, drops, sink=None) -> MqttTransport:
    t = MqttTransport(cfg, clock=clock, drops=drops)
    await t.start(sink.put_nowait if sink is not None else (lambda f: None))
    await t.wait_connected(5)
    return t


async def test_topics_expiry_and_retained_mapem(broker, secured):
    drops = DropCounts()
    t = await started(mqtt_config(broker), ManualClock(NOW), drops)
    try:
        async with Client(broker, "watcher") as w:
            await w.subscribe("default/inQueue/v2x/#")
            area = GeoArea(RSU_LAT, RSU_LON, "circle", 250.0)
            await t.send(secured["spatem"], DisseminationParams(catalog.SPATEM, destination=area, lifetime_s=2.0))
            msg = await w.next()
            assert msg.topic.value == f"default/inQueue/v2x/spatem/rsu_42/{DIGITS}"
            assert msg.payload == secured["spatem"] and not msg.retain and msg.qos == 1
            assert msg.properties.MessageExpiryInterval in (1, 2)
            await t.send(secured["mapem"], DisseminationParams(catalog.MAPEM, destination=area, lifetime_s=1.0))
            msg = await w.next()
            assert msg.topic.value == f"default/inQueue/v2x/mapem/rsu_42/{DIGITS}"
        # a late subscriber still gets the MAPEM: it was published retained
        async with Client(broker, "late") as late:
            await late.subscribe("default/inQueue/v2x/mapem/#")
            msg = await late.next()
            assert msg.retain and msg.payload == secured["mapem"]
            assert msg.properties.MessageExpiryInterval <= 1
        # ... until its expiry has passed: the broker forgets it (broker time, so a real wait)
        await asyncio.sleep(2.2)
        async with Client(broker, "later") as later:
            await later.subscribe("default/inQueue/v2x/mapem/#", "test/marker")
            await later.publish("test/marker", b"m")
            msg = await later.next()
            assert msg.topic.value == "test/marker"  # nothing retained came before the marker
        assert t.published == 2 and drops.total() == 0
    finally:
        await t.stop()


async def test_receive_path_and_drop_reasons_through_the_broker(broker, secured):
    drops = DropCounts()
    got: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
    t = await started(mqtt_config(broker, subscribe=("srem",), subscribe_depth=16), ManualClock(NOW), drops, got)
    x, y, _ = qk.to_tile(qk.quadkey(RSU_LAT, RSU_LON, 16))
    neighbour = "/".join(qk.from_tile(x + 1, y + 1, 16)) + "/1/1"
    far = "/".join(qk.quadkey(-33.87, 151.21, 22))
    try:
        async with Client(broker, "car") as car:
            base = "default/outQueue/v2x/srem"
            await car.publish(f"{base}/car7/{DIGITS}", secured["srem"])
            frame = await asyncio.wait_for(got.get(), 5)
            assert frame.btp_port == 2007 and frame.source == "car7" and frame.secured == secured["srem"]
            assert (
                frame.secured_packet and frame.transport == "mqtt" and frame.info["quadkey"] == DIGITS.replace("/", "")
            )
            # outside the subscribed region: the broker does not even deliver it
            await car.publish(f"{base}/car8/{far}", secured["srem"])
            await car.publish(f"{base}/car8/{neighbour}", secured["srem"])
            frame = await asyncio.wait_for(got.get(), 5)
            assert frame.source == "car8" and frame.info["quadkey"].startswith(neighbour.replace("/", "")[:16])
            # what arrives but does not fit is dropped and counted
            await car.publish(f"{base}/rsu_42/{DIGITS}", secured["srem"])  # our own source id
            await car.publish(f"{base}/car9/{DIGITS}/9", secured["srem"])  # not a quadkey digit
            await car.publish(f"{base}/car9/{DIGITS}", b"")  # empty payload
            await car.publish(f"{base}/car10/{DIGITS}", secured["srem"])
            frame = await asyncio.wait_for(got.get(), 5)
            assert frame.source == "car10" and got.empty()
        assert {r: n for (_, r), n in drops.snapshot().items()} == {
            "own-frame": 1,
            "malformed-mqtt-topic": 1,
            "malformed-mqtt-payload": 1,
        }
        assert t.received == 3
    finally:
        await t.stop()


@pytest.mark.parametrize("payload_format", ["secured", "json"])
async def test_two_stations_exchange_over_a_plain_broker(broker, secured, payload_format):
    # without an inQueue -> outQueue copier, stations subscribe to inQueue themselves
    common = dict(payload_format=payload_format, subscribe_queue="inQueue", subscribe=("srem", "ssem"))
    drops = DropCounts()
    clock = ManualClock(NOW)
    got_a: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
    got_b: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
    a = await started(mqtt_config(broker, name="mqtt-a", source="rsu_a", **common), clock, drops, got_a)
    b = await started(mqtt_config(broker, name="mqtt-b", source="vehicle_b", **common), clock, drops, got_b)
    try:
        await b.send(secured["srem"], DisseminationParams(catalog.SREM, lifetime_s=5.0))
        frame = await asyncio.wait_for(got_a.get(), 5)
        assert frame.secured == secured["srem"] and frame.btp_port == 2007 and frame.source == "vehicle_b"
        await a.send(secured["ssem"], DisseminationParams(catalog.SSEM, lifetime_s=5.0))
        frame = await asyncio.wait_for(got_b.get(), 5)
        assert frame.secured == secured["ssem"] and frame.btp_port == 2008 and frame.source == "rsu_a"
        # no station hears itself (MQTT v5 no-local subscriptions)
        assert got_a.empty() and got_b.empty() and drops.total() == 0
    finally:
        await a.stop()
        await b.stop()


async def test_broker_restart_reconnects_without_replaying_stale_messages(broker, secured):
    clock = ManualClock(NOW)
    drops = DropCounts()
    got: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
    # a fixed ~1 s backoff, so the watcher below is subscribed before the transport is back
    cfg = mqtt_config(broker, backoff_initial=1.0, backoff_max=1.0, subscribe=("srem",), subscribe_depth=0)
    t = await started(cfg, clock, drops, got)
    try:
        broker.stop()
        await asyncio.wait_for(t.disconnected.wait(), 5)
        # produced during the outage: a SPATEM valid 1 s, and a MAPEM valid 60 s
        await t.send(secured["spatem"], DisseminationParams(catalog.SPATEM, lifetime_s=1.0))
        await t.send(secured["mapem"], DisseminationParams(catalog.MAPEM, lifetime_s=60.0))
        clock.advance(5.0)  # the outage lasts 5 s: the SPATEM is stale, the MAPEM is not
        broker.start()  # same port
        async with Client(broker, "watcher") as w:
            await w.subscribe("default/inQueue/v2x/#")
            await t.wait_connected(10)
            assert t.connections == 2
            msg = await w.next()
            assert msg.topic.value.startswith("default/inQueue/v2x/mapem/") and msg.payload == secured["mapem"]
            assert msg.properties.MessageExpiryInterval == 55  # the validity left, not 60
            fresh = secured["spatem"] + b""  # a new SPATEM after the reconnect is delivered
            await t.send(fresh, DisseminationParams(catalog.SPATEM, lifetime_s=1.0))
            msg = await w.next()
            assert msg.topic.value.startswith("default/inQueue/v2x/spatem/")
            # the subscription came back with the session: the receive path works again
            await w.publish(f"default/outQueue/v2x/srem/car1/{DIGITS}", secured["srem"])
            frame = await asyncio.wait_for(got.get(), 5)
            assert frame.btp_port == 2007
        assert drops.count(DropReason.STALE) == 1 and t.published == 2
    finally:
        await t.stop()


# ---------------------------------------------------------------------------- TLS + password


def _tls_material(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, path):
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("rsu test CA"))
        .issuer_name(name("rsu test CA"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who, san in (
        ("server", [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
        ("client", [x509.DNSName("rsu_42")]),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(who))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(2 if who == "server" else 3)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (tmp_path / f"{who}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, tmp_path / f"{who}.key")


async def test_tls_with_client_certificate_and_password(broker_factory, tmp_path, secured):
    _tls_material(tmp_path)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "rsu", "s3cret"], check=True, capture_output=True)
    b = broker_factory(
        f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\n"
        f"keyfile {tmp_path / 'server.key'}\nrequire_certificate true\n"
        f"allow_anonymous false\npassword_file {passwd}\n"
    )
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "bad_pw").write_text("wrong\n")
    tls = dict(
        ca_file=str(tmp_path / "ca.pem"),
        cert_file=str(tmp_path / "client.pem"),
        key_file=str(tmp_path / "client.key"),
        username="rsu",
    )
    drops = DropCounts()
    clock = ManualClock(NOW)
    t = await started(mqtt_config(b, password_file=str(tmp_path / "pw"), **tls), clock, drops)
    bad = MqttTransport(
        mqtt_config(b, name="bad", source="rsu_43", password_file=str(tmp_path / "bad_pw"), **tls),
        clock=clock,
        drops=drops,
    )
    try:
        import ssl

        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        ctx.load_cert_chain(str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
        async with Client(b, "watcher", username="rsu", password="s3cret", tls_context=ctx) as w:
            await w.subscribe("default/inQueue/v2x/#")
            await t.send(secured["ivim"], DisseminationParams(catalog.IVIM, lifetime_s=30.0))
            msg = await w.next()
            assert msg.payload == secured["ivim"] and "/ivim/rsu_42/" in msg.topic.value
        # a wrong password never gets a session; the error is kept for diagnosis
        await bad.start(lambda f: None)
        for _ in range(100):
            if bad.last_error:
                break
            await asyncio.sleep(0.05)
        assert not bad.connected.is_set() and bad.connections == 0
        assert "authori" in bad.last_error.lower() or "password" in bad.last_error.lower(), bad.last_error
    finally:
        await t.stop()
        await bad.stop()
