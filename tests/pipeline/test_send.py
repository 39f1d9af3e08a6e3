"""The send pipeline (rsu.pipeline.send) with a manual clock, real keys and certificates and the real GN and
MQTT cores: one outcome per target transport, refusals as outcomes, one signature per secured GN transport and
one shared by the other transports, nothing decoded while signing, restored messages signed like fresh ones."""

from __future__ import annotations

import dataclasses

import pytest
from services.secured import authorities, make_at, trust
from services.support import PROVIDER, START, STATION, example

from rsu import catalog
from rsu.clock import ManualClock
from rsu.pipeline.outcomes import Dropped, Sent, Skipped
from rsu.pipeline.send import SIGNING_REFUSED, GnFramer, MqttFramer, Published, SendPipeline
from rsu.security import ssp
from rsu.security.pool import AtPool, AuthorizationTicket
from rsu.security.request import SignRequest
from rsu.security.service import SecurityService
from rsu.security.sign import Signer
from rsu.security.verify import Verifier
from rsu.services.layer import ServiceLayer, ServicesConfig
from rsu.services.model import Transmission
from rsu.transports import gn
from rsu.transports.base import DisseminationParams, GeoArea
from rsu.transports.config import GnUdpConfig, MqttConfig
from rsu.transports.drops import DropReason
from rsu.transports.gn_core import GnCore
from rsu.transports.mqtt_core import MqttCore

LAT, LON = 44.837592, -0.579431
AREA = GeoArea(LAT, LON, "circle", 300)


class CountingSigner:
    """The real security service behind the Signer port, keeping every request it was given."""

    def __init__(self, security: SecurityService) -> None:
        self.security = security
        self.requests: list[SignRequest] = []

    def sign(self, request: SignRequest) -> bytes:
        self.requests.append(request)
        return self.security.sign(request)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def security_for(clock, *permissions: dict) -> SecurityService:
    root, aa = authorities()
    ats = [make_at(clock, p) for p in permissions]
    pool = AtPool(
        [AuthorizationTicket(a.certificate, Signer(a.certificate, a.key)) for a in ats],
        clock,
        issuers=[aa.certificate, root.certificate],
    )
    return SecurityService(pool, Verifier(clock, trust()), clock)


def framers(clock, *, secured: bool = True) -> list:
    """Two GN transports (secured unless told) and two MQTT transports, all defaults."""
    out: list = []
    for i, name in enumerate(("gn-a", "gn-b")):
        cfg = GnUdpConfig(name=name, latitude=LAT, longitude=LON, secured=secured, mac=f"02:00:00:00:0a:0{i + 1}")
        cfg.validate()
        out.append(GnFramer(GnCore(cfg, clock)))
    for name in ("mqtt-a", "mqtt-b"):
        cfg = MqttConfig(name=name, latitude=LAT, longitude=LON, source="rsu_1")
        cfg.validate()
        out.append(MqttFramer(MqttCore(cfg, clock)))
    return out


def transmission(codec, name: str = "spatem", fresh: bool = True, **params) -> Transmission:
    kind = catalog.by_name(name)
    _, value = codec.from_jer(example(name), kind)
    pdu = codec.encode(value, kind)
    p = DisseminationParams(kind, destination=AREA, **params)
    return Transmission("tlm", "1", kind, pdu, p, fresh, 0, None, START_S, 0, ssp.required(kind, value))


START_S = ManualClock(START).now()


def test_every_target_transport_gets_exactly_one_outcome(clock, codec):
    """In the order the parameters name them: the configured ones Sent, an unknown name Dropped with its reason."""
    fs = framers(clock)
    pipeline = SendPipeline(fs, [f.name for f in fs], CountingSigner(security_for(clock, {"spatem": None})))
    tx = transmission(codec, transports=("mqtt-b", "gn-a", "lte", "gn-b", "mqtt-a"))
    out = pipeline.send(tx, clock.now())
    assert [o.transport for o in out] == ["mqtt-b", "gn-a", "lte", "gn-b", "mqtt-a"]
    assert [type(o).__name__ for o in out] == ["Published", "Sent", "Dropped", "Sent", "Published"]
    lte = out[2]
    assert isinstance(lte, Dropped) and lte.reason == str(DropReason.UNKNOWN_TRANSPORT) and lte.message == "spatem"
    assert all(o.kind is catalog.SPATEM and o.repetition is False for o in out if isinstance(o, Sent))
    # no transport named: the defaults, each once
    assert sorted(o.transport for o in pipeline.send(transmission(codec, fresh=False), clock.now())) == [
        "gn-a",
        "gn-b",
        "mqtt-a",
        "mqtt-b",
    ]


def test_secured_gn_signs_its_own_headers_once_per_transport_and_mqtt_shares_one_signature(clock, codec):
    """Each secured GN transport asks for one signature over CH | EH | BTP-B | PDU with the PDU's offset; the MQTT
    transports carry one signature of the PDU alone, with the full certificate; a neighbour accepts all."""
    fs = framers(clock)
    signer = CountingSigner(security_for(clock, {"spatem": None}))
    tx = transmission(codec)
    out = SendPipeline(fs, [f.name for f in fs], signer).send(tx, clock.now())
    gn_requests = [r for r in signer.requests if r.pdu_offset]
    pdu_requests = [r for r in signer.requests if not r.pdu_offset]
    assert len(gn_requests) == 2 and len(pdu_requests) == 1 and len(signer.requests) == 3
    assert all(r.payload[r.pdu_offset :] == tx.pdu and r.its_aid == catalog.SPATEM.its_aid for r in signer.requests)
    assert pdu_requests[0].payload == tx.pdu and pdu_requests[0].with_certificate is True
    mqtt = [o for o in out if isinstance(o, Published)]
    assert len(mqtt) == 2 and mqtt[0].frame == mqtt[1].frame == mqtt[0].publication.payload  # one shared signature
    neighbour = Verifier(clock, trust())
    assert neighbour.verify(mqtt[0].frame, catalog.SPATEM).ok
    for o in out:
        if not isinstance(o, Published):
            pkt = gn.parse_packet(o.frame[14:])
            assert pkt.is_secured and pkt.payload == tx.pdu
            res = neighbour.verify(pkt.secured, catalog.SPATEM, payload_offset=pkt.payload_offset)
            assert res.ok, res.detail


def test_a_refused_signature_is_an_outcome_of_each_target(clock, codec):
    """No AT permits a SPATEM: every PDU-signed transport gets Dropped signing-refused (one attempt, shared), each
    secured GN transport Dropped sign-failed (its own signature failed), as the daemon counted them before."""
    fs = framers(clock)
    signer = CountingSigner(security_for(clock, {"mapem": None}))
    out = SendPipeline(fs, [f.name for f in fs], signer).send(transmission(codec), clock.now())
    assert {o.transport: o.reason for o in out if isinstance(o, Dropped)} == {
        "gn-a": str(DropReason.SIGN_FAILED),
        "gn-b": str(DropReason.SIGN_FAILED),
        "mqtt-a": SIGNING_REFUSED,
        "mqtt-b": SIGNING_REFUSED,
    }
    assert "ITS-AID 137" in next(o.detail for o in out if o.transport == "mqtt-a")
    assert len([r for r in signer.requests if not r.pdu_offset]) == 1


def test_signing_refused_is_the_metrics_reason():
    from rsu.ops.metrics import TxReason

    assert str(TxReason.SIGNING_REFUSED) == SIGNING_REFUSED


def test_nothing_is_decoded_while_sending(clock, codec, monkeypatch):
    """The requirement travels with the transmission: a codec whose decode raises changes nothing."""
    fs = framers(clock)
    pipeline = SendPipeline(fs, [f.name for f in fs], security_for(clock, {"spatem": None}))
    tx = transmission(codec)

    def no_decode(data, **kw):
        raise AssertionError("decoded on the send path")

    monkeypatch.setattr(codec, "decode", no_decode)
    out = pipeline.send(tx, clock.now())
    assert len(out) == 4 and all(isinstance(o, Sent) for o in out)


def test_a_framing_error_drops_only_that_transport(clock, codec):
    """GN cannot carry a hop limit of 300 (bad-params); MQTT can."""
    fs = framers(clock)
    out = SendPipeline(fs, [f.name for f in fs], security_for(clock, {"spatem": None})).send(
        transmission(codec, hop_limit=300), clock.now()
    )
    assert {o.transport: (type(o).__name__, getattr(o, "reason", None)) for o in out} == {
        "gn-a": ("Dropped", str(DropReason.BAD_PARAMS)),
        "gn-b": ("Dropped", str(DropReason.BAD_PARAMS)),
        "mqtt-a": ("Published", None),
        "mqtt-b": ("Published", None),
    }


def test_without_security_the_bare_pdu_goes_out(clock, codec):
    fs = framers(clock, secured=False)
    tx = transmission(codec)
    out = SendPipeline(fs, [f.name for f in fs], None).send(tx, clock.now())
    for o in out:
        if isinstance(o, Published):
            assert o.frame == tx.pdu
        else:
            pkt = gn.parse_packet(o.frame[14:])
            assert not pkt.is_secured and pkt.payload == tx.pdu


def test_an_unsecured_gn_transport_of_a_signing_station_sends_the_bare_pdu(clock, codec):
    """As before the pipeline: the PDU is signed once for the transports that carry it signed; the unsecured GN
    transport puts the bare PDU in its packet, and is dropped with the others when no AT permits the content."""
    fs = framers(clock, secured=False)
    tx = transmission(codec)
    out = SendPipeline(fs, [f.name for f in fs], security_for(clock, {"spatem": None})).send(tx, clock.now())
    assert all(gn.parse_packet(o.frame[14:]).payload == tx.pdu for o in out if not isinstance(o, Published))
    refused = SendPipeline(fs, [f.name for f in fs], security_for(clock, {"mapem": None})).send(tx, clock.now())
    assert [o.reason for o in refused] == [SIGNING_REFUSED] * 4


def test_a_message_restored_from_the_store_is_signed_with_its_requirement(tmp_path, clock, codec):
    """After a restart the transmissions of a restored MAPEM carry the requirement of its content (from the
    stored value), and the pipeline signs them as before the restart."""

    def layer() -> ServiceLayer:
        return ServiceLayer(
            ServicesConfig(tmp_path / "state", station_id=STATION, ivi_provider=PROVIDER), clock=clock, codec=codec
        )

    first = layer()
    first.trigger("rlt", {"payload": example("mapem")})
    [before] = [t for t in first.due() if t.service == "rlt"]
    first.close()
    restored = layer()
    clock.advance(1.0)
    try:
        [after] = [t for t in restored.due() if t.service == "rlt"]
    finally:
        restored.close()
    _, value = codec.from_jer(example("mapem"), catalog.MAPEM)
    assert after.requirement == before.requirement == ssp.required(catalog.MAPEM, value)
    fs = framers(clock)
    out = SendPipeline(fs, [f.name for f in fs], security_for(clock, {"mapem": None})).send(
        dataclasses.replace(after, params=dataclasses.replace(after.params, destination=AREA)), clock.now()
    )
    assert len(out) == 4 and all(isinstance(o, Sent) for o in out)


def test_the_clock_gate_skips_a_timed_message_before_anything_is_signed(clock, codec):
    """clock.unsynchronized: stop and no synchronized reading: the SPATEM is one Skipped outcome and nothing is
    signed; a MAPEM (not timed) goes out; once the clock is read as synchronized the SPATEM goes out too."""
    from rsu.health.clock import ClockGate, ClockReading

    fs = framers(clock)
    signer = CountingSigner(security_for(clock, {"spatem": None, "mapem": None}))
    gate = ClockGate("stop", ("spatem", "ssem"))
    pipeline = SendPipeline(fs, [f.name for f in fs], signer, gate=gate)
    out = pipeline.send(transmission(codec), clock.now())
    assert out == [Skipped("TLM", "spatem", "clock-unsynchronized", "SPATEM 1 not sent")]
    assert signer.requests == []
    mapem = pipeline.send(transmission(codec, "mapem"), clock.now())
    assert len(mapem) == 4 and all(isinstance(o, Sent) for o in mapem)
    gate.update(ClockReading("kernel", True, 0.0, 0.001), clock.now())
    assert len([o for o in pipeline.send(transmission(codec), clock.now()) if isinstance(o, Sent)]) == 4
