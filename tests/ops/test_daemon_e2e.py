"""The daemon end to end, as a real subprocess: triggers through the API for all five services, signed
GN/BTP frames on a real multicast socket verified and decoded by a test receiver, two daemons
exchanging SREM/SSEM, MQTT through a real Mosquitto, metrics that move, status, SIGHUP reload,
kill -9 with the store intact, and malformed frames dropped and counted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time

import pytest

from rsu import catalog
from rsu import clock as clockmod
from rsu.clock import SystemClock
from rsu.security.certs import Certificate
from rsu.security.request import request_for_pdu
from rsu.security.verify import Reason, TrustStore, Verifier
from rsu.transports import gn
from rsu.transports.pcap import PcapError, read_capture
from tests.ops.daemonproc import MulticastReceiver, RsuDaemon, example, group_and_port
from tests.transports.conftest import Mosquitto, ensure_debian_tool

ETHERNET = 14

PAYLOADS = {
    "rlt": example("mapem-4arm-intersection.json"),
    "tlm": example("spatem-4arm-intersection.json"),
    "ivi": example("ivim-speed-limit.json"),  # no validTo: the example never expires
    "tlc": example("srem-bus-priority.json"),  # an RSU relaying a priority request
    "gpc": example("rtcmem-corrections.json"),
}


def open_frame(frame: bytes, trust_dir) -> tuple[gn.GnPacket, object]:
    """Test receiver: Ethernet + GN/BTP parse, 1609.2 verification against the daemon's trust store, decode."""
    assert frame[12:14] == b"\x89\x47", "ethertype of GeoNetworking"
    packet = gn.parse_packet(frame[ETHERNET:])
    assert packet.is_secured
    verifier = Verifier(SystemClock(), TrustStore.from_directory(trust_dir))
    for cert_file in (trust_dir / "at").glob("*.oer"):  # a receiver that has met the sender's ATs before
        verifier.add_certificate(Certificate.load(cert_file))
    kind = catalog.BY_BTP_PORT[packet.btp_port]
    result = verifier.verify(packet.secured, kind, payload_offset=packet.payload_offset)
    return packet, result


@pytest.fixture
def net():
    return group_and_port()


@pytest.fixture
def daemon(tmp_path, net):
    d = RsuDaemon(tmp_path, group=net[0], port=net[1]).start()
    yield d
    assert d.stop() == 0, d.log()


def test_all_five_services_on_the_air_signed_and_decodable(daemon, net):
    rx = MulticastReceiver(*net)
    try:
        answers = {service: daemon.trigger(service, payload) for service, payload in PAYLOADS.items()}
        assert answers["rlt"]["identification"]["msgIssueRevision"] == 3
        assert 1 <= answers["ivi"]["identification"]["iviIdentificationNumber"] <= 32767
        wanted = {k.btp_port for k in (catalog.MAPEM, catalog.SPATEM, catalog.IVIM, catalog.SREM, catalog.RTCMEM)}
        frames = rx.frames(lambda got: wanted <= {gn.parse_packet(f[ETHERNET:]).btp_port for f in got})
    finally:
        rx.close()
    seen = {}
    for frame in frames:
        packet, result = open_frame(frame, daemon.pki_dir)
        assert result.ok, (result.reason, result.detail)
        kind = result.pdu.kind
        assert catalog.BY_BTP_PORT[packet.btp_port] is kind and result.psid == kind.its_aid
        seen[kind.name] = (packet, result)
    assert set(seen) == {"mapem", "spatem", "ivim", "srem", "rtcmem"}
    # SPATEM/MAPEM go GeoBroadcast to an area around the intersection's reference point (TLM/RLT_GEN_COM)
    for name in ("spatem", "mapem"):
        packet, _ = seen[name]
        assert packet.header_type.name.startswith("GBC"), packet.header_type
        assert abs(packet.extended.area.latitude - 44.837592) < 0.01
    # the content is what was triggered, timestamps refreshed by the service
    assert seen["mapem"][1].pdu.value["map"]["intersections"][0]["id"]["id"] == 1201
    assert seen["ivim"][1].pdu.value["ivi"]["mandatory"]["serviceProviderId"]["providerIdentifier"] == 57
    # status shows every entry, with counts and the AT in use
    status = daemon.get("/v1/status")[1]
    by_service = {m["service"]: m for m in status["messages"]}
    assert set(by_service) == set(PAYLOADS)
    assert by_service["rlt"]["count"] >= 1 and by_service["rlt"]["transports"] == ["gn"]
    in_use = {k for t in status["authorization_tickets"] for k in t["usedFor"]}
    assert {"mapem", "spatem", "ivim", "srem", "rtcmem"} <= in_use
    # rsu status, the operator's view, from the CLI
    from tests.conftest import run_rsu

    cli = run_rsu("status", "--api", daemon.url)
    assert cli.returncode == 0, cli.stderr
    text = cli.stdout.decode()
    assert "5 message(s) on the air" in text and "mapem" in text and "expires in" in text
    # no private key material in any log line (DEBUG level in these tests)
    from rsu.security.keys import load_private_key

    log = daemon.log()
    for key_file in (daemon.pki_dir / "at").glob("*.key"):
        scalar = load_private_key(key_file).private_numbers().private_value.to_bytes(32, "big")
        assert scalar.hex() not in log and scalar.hex().upper() not in log
    # every frame of the daemon's own pcap verifies with rsu verify (layers found as rsu decode finds them)
    assert daemon.stop() == 0
    r = run_rsu("verify", str(daemon.pcap), "--trust", str(daemon.pki_dir))
    out = json.loads(r.stdout)
    assert r.returncode == 0, [f for f in out["frames"] if not f["valid"]][:3]
    assert out["summary"]["frames"] >= 5 and out["summary"]["rejected"] == 0
    for frame in out["frames"]:
        assert frame["layers"] == ["ethernet", "geonetworking", "secured", "geonetworking", "facilities"]
        assert frame["chain"] == "valid" and frame["sspCheck"] == "passed"
        assert catalog.by_name(frame["message"]).its_aid == frame["psid"]
    assert {f["message"] for f in out["frames"]} == {"MAPEM", "SPATEM", "IVIM", "SREM", "RTCMEM"}


def test_metrics_move_as_messages_flow(daemon, net):
    before_sent = daemon.metric("rsu_messages_sent_total", message="mapem", transport="gn")
    assert before_sent == 0
    assert daemon.metric("rsu_up") == 1
    daemon.trigger("rlt", PAYLOADS["rlt"], repetition_interval_s=0.2)
    rx = MulticastReceiver(*net)
    try:
        rx.frames(lambda got: len(got) >= 4, timeout=10)  # a few repetitions on the air
    finally:
        rx.close()
    assert daemon.metric("rsu_messages_sent_total", message="mapem", transport="gn", service="RLT") == 1
    assert daemon.metric("rsu_messages_repeated_total", message="mapem", transport="gn") >= 3
    assert daemon.metric("rsu_messages_triggered_total", service="RLT", message="mapem", action="trigger") == 1
    assert daemon.metric("rsu_active_messages", service="RLT", message="mapem") == 1
    assert daemon.metric("rsu_encode_seconds_count", message="mapem") >= 1
    assert daemon.metric("rsu_sign_seconds_count", message="mapem") >= 4
    assert daemon.metric("rsu_scheduler_lateness_seconds_count", service="RLT") >= 4
    assert 0 < daemon.metric("rsu_at_expiry_hours", service="RLT", its_aid="138") <= 168
    assert daemon.metric("rsu_dissemination_rate_per_second", message="mapem", transport="gn") > 0
    # terminate: active falls back to 0
    ident = daemon.get("/v1/rlt/messages")[1]["messages"][0]["id"]
    status, _ = daemon.post(f"/v1/rlt/messages/{ident}/terminate", {})
    assert status == 200
    assert daemon.metric("rsu_active_messages", service="RLT", message="mapem") == 0


class SseReader:
    """A real HTTP client on a server-sent-events stream; events parsed by a thread."""

    def __init__(self, url: str):
        import threading
        import urllib.request

        self.resp = urllib.request.urlopen(url, timeout=30)
        self.events: list[tuple[str, dict]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name, data = "message", []
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    with self.cond:
                        self.events.append((name, json.loads("\n".join(data))))
                        self.cond.notify_all()
                    name, data = "message", []
        except Exception:  # the test closed the stream (or the daemon stopped): the reader ends
            pass

    def next_event(self, name: str, timeout: float = 10.0) -> dict:
        with self.cond:
            assert self.cond.wait_for(lambda: any(n == name for n, _ in self.events), timeout), self.events
            return next(e for n, e in self.events if n == name)

    def close(self) -> None:
        self.resp.close()


def test_two_daemons_srem_in_ssem_out(tmp_path, net):
    """Daemon A relays a bus's SREM; daemon B (the intersection's RSU) receives it verified, the
    application decides, and B's SSEM goes out signed. Both trust one test PKI."""
    from tests.conftest import run_rsu

    pki = tmp_path / "pki"
    made = run_rsu("pki", "init", str(pki), "--provider", "FR:57")
    assert made.returncode == 0, made.stderr
    a = RsuDaemon(tmp_path, "a", group=net[0], port=net[1], station_id=2104711, pki_dir=pki).start()
    b = RsuDaemon(tmp_path, "b", group=net[0], port=net[1], station_id=3120101, pki_dir=pki).start()
    rx = MulticastReceiver(*net)
    events = SseReader(b.url + "/v1/received?service=tlc")
    try:
        a.trigger("tlc", PAYLOADS["tlc"])
        deadline = time.monotonic() + 10
        requests = []
        while time.monotonic() < deadline and not requests:  # bounded poll of B's pending requests
            requests = b.get("/v1/tlc/requests")[1]["requests"]
            time.sleep(0.05)
        assert requests, b.log()
        key = requests[0]["key"]
        assert key == "station-2104711:1201:5" and requests[0]["requestType"] == "priorityRequest"
        assert b.metric("rsu_messages_accepted_total", message="srem", transport="gn") >= 1
        # IS_DataProviding: the application on B gets the SREM with its security and transport information
        event = events.next_event("received")
        assert event["message"] == "srem" and event["pdu"]["header"]["stationID"] == 2104711
        assert event["security"]["verification"] == "ok" and event["security"]["its_aid"] == 140
        assert len(event["security"]["signer"]) == 16 and event["transport"]["transport"] == "gn"
        status, answer = b.post("/v1/tlc/messages", {"decision": {"request": key, "status": "granted"}})
        assert status in (200, 201), answer
        frames = rx.frames(lambda got: any(gn.parse_packet(f[ETHERNET:]).btp_port == 2008 for f in got))
        ssem_frame = next(f for f in frames if gn.parse_packet(f[ETHERNET:]).btp_port == 2008)
        _, result = open_frame(ssem_frame, pki)
        assert result.ok and result.psid == 637
        ssm = result.pdu.value["ssm"]
        package = ssm["status"][0]["sigStatus"][0]
        assert package["status"] == "granted"
        assert package["requester"]["id"] == ("stationID", 2104711)
    finally:
        rx.close()
        events.close()
        assert a.stop() == 0
        assert b.stop() == 0


def neighbour_frame(
    pki_dir,
    kind,
    jer: dict | None,
    *,
    corrupt_signature: bool = False,
    pdu: bytes | None = None,
    port: int | None = None,
    tickets=None,
) -> bytes:
    """A secured GN frame from another station (own MAC and GN address), signed with an AT of ``pki_dir``
    (or of ``tickets``); ``pdu`` replaces the encoded ``jer`` and ``port`` the BTP-B port."""
    from rsu.codec.facilities import get_codec
    from rsu.security.pool import AtPool
    from rsu.transports.base import DisseminationParams
    from rsu.transports.config import GnUdpConfig
    from rsu.transports.gn_core import GnCore

    clock = SystemClock()
    pool = AtPool(tickets, clock) if tickets else AtPool.load_directory(pki_dir / "at", clock)
    codec = get_codec()
    if pdu is None:
        _, value = codec.from_jer(jer, kind)
        pdu = codec.encode(value, kind)
    if port is not None:
        kind = catalog.MessageKind(
            kind.name,
            kind.pdu,
            kind.module,
            kind.body,
            kind.message_id,
            kind.protocol_version,
            kind.service,
            kind.its_aid,
            port,
        )

    def sign(inner: bytes, k) -> bytes:  # signs whatever it is given: the sender here is not our daemon
        at = next(t for t in pool.tickets if k.its_aid in t.certificate.app_permissions)
        return at.signer.sign(inner, k.its_aid, clockmod.time64(clock.now()), with_certificate=True)

    core = GnCore(GnUdpConfig(latitude=44.8376, longitude=-0.5794, mac="02:00:00:00:00:07"), clock, sign=sign)
    from rsu.transports.base import GeoArea

    area = GeoArea(44.837592, -0.579431, "circle", 500)  # GeoBroadcast (with a sequence number) over the RSU
    frame = bytearray(core.build_frame(pdu, DisseminationParams(kind, destination=area)))
    if corrupt_signature:
        frame[-10] ^= 0xFF  # inside the ECDSA signature's s: well formed, does not verify
    return bytes(frame)


def restricted_srem_ticket(pki_dir):
    """An AT from the daemon's own AA that may send SREM but request no role's priority (SSP 02 80 00 00)."""
    from rsu.security.certs import Certificate as Cert
    from rsu.security.keys import load_private_key
    from rsu.security.pki import Issued, make_at
    from rsu.security.pool import AuthorizationTicket
    from rsu.security.sign import Signer

    aa_cert = Cert.load(pki_dir / "aa.oer")
    aa = Issued(aa_cert, load_private_key(pki_dir / "aa.key", aa_cert.curve.name))
    at = make_at(aa, clockmod.time32(time.time() - 60), [(catalog.SREM.its_aid, bytes.fromhex("02800000"))])
    return AuthorizationTicket(at.certificate, Signer(at.certificate, at.key), "restricted")


def test_malformed_and_forged_frames_are_dropped_and_counted(daemon, net):
    good = neighbour_frame(daemon.pki_dir, catalog.SREM, PAYLOADS["tlc"])
    forged = neighbour_frame(daemon.pki_dir, catalog.SREM, PAYLOADS["tlc"], corrupt_signature=True)
    unknown_port = neighbour_frame(daemon.pki_dir, catalog.SREM, PAYLOADS["tlc"], port=2001)  # CAM's port
    not_a_pdu = neighbour_frame(daemon.pki_dir, catalog.SREM, None, pdu=b"\x02\x09" + os.urandom(12))
    ssp_violation = neighbour_frame(
        daemon.pki_dir, catalog.SREM, PAYLOADS["tlc"], tickets=[restricted_srem_ticket(daemon.pki_dir)]
    )
    bad_gn = bytearray(good)
    bad_gn[ETHERNET] = 0x00  # GN version 0
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    try:
        for datagram in (
            b"",
            os.urandom(40),
            b"\xff" * 12 + b"\x08\x00" + os.urandom(30),
            bytes(bad_gn),
            forged,
            good,
            good,
            unknown_port,
            not_a_pdu,
            ssp_violation,
        ):
            tx.sendto(datagram, net)
    finally:
        tx.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # bounded poll of the counters
        dropped = {
            dict(k[1]).get("reason"): v for k, v in daemon.metrics().items() if k[0] == "rsu_messages_dropped_total"
        }
        if sum(dropped.values()) >= 9:
            break
        time.sleep(0.05)
    assert dropped.get(f"security:{Reason.INVALID_SIGNATURE.value}", 0) == 1, dropped
    assert dropped.get("gn-duplicate", 0) == 1, dropped  # the same GN packet twice
    assert dropped.get("unknown-btp-port", 0) == 1, dropped
    assert dropped.get(f"security:{Reason.PAYLOAD_INVALID.value}", 0) == 1, dropped  # signed, not decodable
    assert dropped.get(f"security:{Reason.SSP_VIOLATION.value}", 0) == 1, dropped  # role not permitted
    transport_level = {
        r: v
        for r, v in dropped.items()
        if r and not r.startswith("security:") and r not in ("gn-duplicate", "unknown-btp-port")
    }
    assert sum(transport_level.values()) >= 4, dropped
    assert daemon.metric("rsu_messages_accepted_total", message="srem", transport="gn") == 1
    assert daemon.get("/v1/health")[0] == 200  # still serving


def test_kill_9_then_restart_resumes_every_active_message(tmp_path, net):
    d = RsuDaemon(tmp_path, group=net[0], port=net[1]).start()
    first = {s: d.trigger(s, PAYLOADS[s]) for s in ("rlt", "ivi", "gpc", "tlm")}
    before = {(m["service"], m["id"]): m for m in d.get("/v1/messages")[1]["messages"]}
    d.kill9()
    records_before = len(read_capture(d.pcap.read_bytes()).records)
    d.start()
    try:
        after = {(m["service"], m["id"]): m for m in d.get("/v1/messages")[1]["messages"]}
        assert set(after) == set(before)
        for key, entry in before.items():
            assert after[key]["identification"] == entry["identification"], key
            assert after[key]["state"] == ("idle" if key[0] == "tlm" else "active")
        # a new IVI of the same provider gets a number not used before the crash
        other = json.loads(json.dumps(PAYLOADS["ivi"]))
        del other["ivi"]["mandatory"]["iviIdentificationNumber"]  # the service allocates one
        second = d.trigger("ivi", other)
        assert (
            second["identification"]["iviIdentificationNumber"]
            != first["ivi"]["identification"]["iviIdentificationNumber"]
        )
        assert after[("rlt", first["rlt"]["id"])]["identification"]["msgIssueRevision"] == 3
        # the MAPEM is back on the air; the SPATEM state from before the kill is not (TLM never resumes one)
        ports = _ports_sent_since(d, records_before, until=lambda ports: catalog.MAPEM.btp_port in ports)
        assert catalog.SPATEM.btp_port not in ports
    finally:
        assert d.stop() == 0


def _ports_sent_since(d: RsuDaemon, index: int, until, timeout: float = 10.0) -> list[int]:
    """BTP ports of the frames in the daemon's pcap from record ``index`` on, once ``until(ports)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = read_capture(d.pcap.read_bytes()).records[index:]
        except PcapError:  # a record being written
            records = None
        if records is not None:
            ports = [gn.parse_packet(r.data[ETHERNET:]).btp_port for r in records]
            if until(ports) or time.monotonic() > deadline:
                return ports
        time.sleep(0.05)


def test_sighup_applies_a_valid_config_and_rejects_an_invalid_one(daemon):
    daemon.trigger("rlt", PAYLOADS["rlt"])
    entries = daemon.get("/v1/messages")[1]["messages"]
    # valid change: a different MAPEM default repetition and log level
    config = json.loads(json.dumps(daemon.config))
    config["logging"] = {"level": "INFO"}
    config["services"] = {"message_defaults": {"mapem": {"repetition_s": 0.5}}}
    daemon.write_config(config)
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while daemon.get("/v1/status")[1]["reloads"]["ok"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = daemon.get("/v1/status")[1]
    assert status["reloads"]["ok"] == 1, daemon.log()
    assert [m["id"] for m in status["messages"]] == [e["id"] for e in entries]  # nothing dropped
    # invalid: several errors, all logged; the daemon keeps the old configuration
    daemon.write_config(text="station: {id: -5}\napi: {prot: 1}\ntransports: [{type: pigeon}]\n")
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while daemon.get("/v1/status")[1]["reloads"]["rejected"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = daemon.get("/v1/status")[1]
    assert status["reloads"]["rejected"] == 1
    assert [m["id"] for m in status["messages"]] == [e["id"] for e in entries]
    log = daemon.log()
    for path in ("station.id", "api.prot", "transports[0].type"):
        assert f"reload rejected: {daemon.config_path}: {path}" in log, log
    assert daemon.get("/v1/health")[0] == 200


def test_mqtt_publishes_retained_signed_mapem_and_receives_srem(tmp_path, net):
    mosquitto = ensure_debian_tool("mosquitto", "mosquitto")
    broker = Mosquitto(mosquitto, tmp_path)
    broker.start()
    mqtt = {
        "type": "mqtt",
        "name": "mqtt",
        "host": "127.0.0.1",
        "port": broker.port,
        "prefix": "test",
        "subscribe_queue": "inQueue",
        "source": "rsu_e2e",
        "qos": 1,
    }
    d = RsuDaemon(tmp_path, group=net[0], port=net[1], extra_transports=[mqtt]).start()
    try:
        asyncio.run(_mqtt_checks(d, broker))
    finally:
        assert d.stop() == 0
        broker.stop()


async def _mqtt_checks(d: RsuDaemon, broker: Mosquitto) -> None:
    import aiomqtt

    from rsu.codec.facilities import get_codec
    from rsu.security.pool import AtPool
    from rsu.security.service import SecurityService
    from rsu.transports import quadkey
    from rsu.transports.config import MqttConfig
    from rsu.transports.mqtt_core import TopicScheme

    deadline = time.monotonic() + 10
    while d.metric("rsu_mqtt_connected", transport="mqtt") < 1:  # connected, so a send publishes at once
        assert time.monotonic() < deadline, d.log()
        await asyncio.sleep(0.05)
    d.trigger("rlt", PAYLOADS["rlt"])
    while d.metric("rsu_messages_sent_total", message="mapem", transport="mqtt") < 1:  # published first
        assert time.monotonic() < deadline, d.log()
        await asyncio.sleep(0.05)
    # a late subscriber still gets the retained MAPEM, signed over the PDU alone. The sent counter moves
    # when the message is queued, so the broker may not hold the retained copy yet (a loaded host): the
    # first message a new subscription gets is the retained copy once it exists, so subscribe until it is
    deadline = time.monotonic() + 10
    while True:
        async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe("test/inQueue/v2x/mapem/#")
            async with asyncio.timeout(10):
                async for message in client.messages:
                    topic = str(message.topic)
                    payload = bytes(message.payload)
                    break
        if message.retain:  # delivered to a late subscriber as the retained message
            break
        assert time.monotonic() < deadline, "the broker never held a retained MAPEM"
    assert topic.startswith("test/inQueue/v2x/mapem/rsu_e2e/")
    verifier = Verifier(SystemClock(), TrustStore.from_directory(d.pki_dir))
    result = verifier.verify(payload, catalog.MAPEM)
    assert result.ok and result.pdu.value["map"]["intersections"][0]["id"]["id"] == 1201
    # receive path: a neighbour publishes a signed SREM into the daemon's subscribed area
    clock = SystemClock()
    pool = AtPool.load_directory(d.pki_dir / "at", clock)
    signer = SecurityService(pool, Verifier(clock, TrustStore.from_directory(d.pki_dir)), clock)
    codec = get_codec()
    _, srem = codec.from_jer(PAYLOADS["tlc"], catalog.SREM)
    pdu = codec.encode(srem, catalog.SREM)
    secured = signer.sign(request_for_pdu(catalog.SREM, pdu, srem))
    scheme = TopicScheme(
        MqttConfig(
            prefix="test", subscribe_queue="inQueue", latitude=44.837592, longitude=-0.579431, source="bus_2104711"
        )
    )
    topic = scheme.publish_topic(catalog.SREM, quadkey.quadkey(44.837592, -0.579431, 22))
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(topic, secured, qos=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if d.metric("rsu_messages_accepted_total", message="srem", transport="mqtt") >= 1:
            break
        await asyncio.sleep(0.05)
    assert d.metric("rsu_messages_accepted_total", message="srem", transport="mqtt") == 1, d.log()
    assert d.metric("rsu_mqtt_connected", transport="mqtt") == 1
