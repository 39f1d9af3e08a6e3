"""The receive pipeline alone: received frames in, outcomes out, with a manual clock, real signatures
(a test root and AA, ATs made here), a real security entity and a real service layer.

Each test asserts the whole outcome list of a step: ``Received`` once per frame, then its fate, then
the fates of held frames that left the hold."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from services.secured import make_at, trust
from services.support import PROVIDER, START, STATION, example

from rsu import catalog
from rsu import clock as clockmod
from rsu.clock import ManualClock
from rsu.ops.metrics import Metrics
from rsu.pipeline.outcomes import Accepted, Dropped, Held, HoldEnded
from rsu.pipeline.receive import Received, ReceivePipeline
from rsu.pipeline.receive_ports import SecurityServicePort
from rsu.security.pool import AtPool
from rsu.security.service import SecurityService
from rsu.security.sign import Signer
from rsu.security.verify import Verifier
from rsu.services.layer import ServiceLayer, ServicesConfig
from rsu.transports.base import ReceivedFrame

SPATEM = catalog.SPATEM
HOLD_S = 2.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def spatem(codec) -> bytes:
    _, value = codec.from_jer(example("spatem"), SPATEM)
    return codec.encode(value, SPATEM)


@pytest.fixture
def make_layer(tmp_path, clock, codec):
    """Service layers on their own state directories (two at once: a reload's old and new one)."""
    numbers = itertools.count()
    with contextlib.ExitStack() as closing:

        def make() -> ServiceLayer:
            config = ServicesConfig(tmp_path / f"state{next(numbers)}", station_id=STATION, ivi_provider=PROVIDER)
            return closing.enter_context(contextlib.closing(ServiceLayer(config, clock=clock, codec=codec)))

        yield make


@pytest.fixture
def make_security(clock, codec):
    def make(hold_limit: int = 64) -> SecurityServicePort:
        verifier = Verifier(clock, trust(), codec=codec, hold_seconds=HOLD_S, hold_limit=hold_limit)
        return SecurityServicePort(SecurityService(AtPool([], clock), verifier, clock))

    return make


@pytest.fixture
def peer(clock):
    """A neighbour's AT (full SPATEM permissions) that the receiver has never seen."""
    at = make_at(clock, {"spatem": None})
    return Signer(at.certificate, at.key)


def signed(clock, signer: Signer, pdu: bytes, *, with_certificate: bool = True) -> bytes:
    return signer.sign(pdu, SPATEM.its_aid, clockmod.time64(clock.now()), with_certificate=with_certificate)


def frame(clock, data: bytes, *, secured: bool = True, duplicate_key=None) -> ReceivedFrame:
    """As the MQTT transport hands it up (the PDU signed alone), or as GN does with ``duplicate_key``."""
    return ReceivedFrame(
        data,
        "gn",
        clock.now(),
        btp_port=SPATEM.btp_port,
        source="0a0b0c",
        secured_packet=secured,
        duplicate_key=duplicate_key,
    )


def accepted(sub) -> Accepted:
    """The Accepted outcome of the one event the subscriber got."""
    (event,) = sub.drain()
    return Accepted("gn", "spatem", "TLM", event)


def test_unsecured_frames_are_taken_only_when_configured(clock, make_layer, make_security, spatem):
    layer = make_layer()
    sub = layer.subscribe()
    refusing = ReceivePipeline(layer, make_security(), accept_unsecured=False)
    assert refusing.receive(frame(clock, spatem, secured=False), clock.now()) == [
        Received("gn", "spatem"),
        Dropped("unsecured", "gn", "spatem", "unsigned frame; security.accept_unsecured is off"),
    ]
    assert len(sub) == 0

    taking = ReceivePipeline(layer, make_security(), accept_unsecured=True)
    out = taking.receive(frame(clock, spatem, secured=False), clock.now())
    assert out == [Received("gn", "spatem"), accepted(sub)]
    assert out[1].event["security"]["secured"] is False


def test_without_security_unsecured_frames_pass_and_signed_ones_cannot(clock, make_layer, peer, spatem):
    layer = make_layer()
    sub = layer.subscribe()
    pipeline = ReceivePipeline(layer, None, accept_unsecured=False)
    assert pipeline.receive(frame(clock, spatem, secured=False), clock.now()) == [
        Received("gn", "spatem"),
        accepted(sub),
    ]
    assert pipeline.receive(frame(clock, signed(clock, peer, spatem)), clock.now()) == [
        Received("gn", "spatem"),
        Dropped("security-disabled", "gn", "spatem", "signed frame; security is off"),
    ]
    assert len(sub) == 0


def test_a_signed_frame_is_verified_and_delivered_with_its_signer(clock, make_layer, make_security, peer, spatem):
    layer = make_layer()
    sub = layer.subscribe()
    pipeline = ReceivePipeline(layer, make_security(), accept_unsecured=False)
    out = pipeline.receive(frame(clock, signed(clock, peer, spatem)), clock.now())
    assert out == [Received("gn", "spatem"), accepted(sub)]
    assert out[1].event["security"]["signer"] == peer.certificate.hashed_id8.hex()


def test_a_bad_signature_is_dropped_with_its_security_reason(clock, make_layer, make_security, peer, spatem):
    layer = make_layer()
    sub = layer.subscribe()
    data = bytearray(signed(clock, peer, spatem))
    data[-1] ^= 0x01  # the last octet of the signature's s
    pipeline = ReceivePipeline(layer, make_security(), accept_unsecured=False)
    assert pipeline.receive(frame(clock, bytes(data)), clock.now()) == [
        Received("gn", "spatem"),
        Dropped("security:invalid-signature", "gn", "spatem", "ECDSA signature does not verify"),
    ]
    assert len(sub) == 0


def test_an_unknown_signer_is_held_then_released_by_its_certificate(clock, make_layer, make_security, peer, spatem):
    layer = make_layer()
    sub = layer.subscribe()
    pipeline = ReceivePipeline(layer, make_security(), accept_unsecured=False)
    t0 = clock.now()
    assert pipeline.receive(frame(clock, signed(clock, peer, spatem, with_certificate=False)), t0) == [
        Received("gn", "spatem"),
        Held("gn", "spatem", t0 + HOLD_S),
    ]
    assert len(sub) == 0
    clock.advance(0.5)
    out = pipeline.receive(frame(clock, signed(clock, peer, spatem)), clock.now())  # brings the certificate
    first, second = sub.drain()
    assert out == [
        Received("gn", "spatem"),
        Accepted("gn", "spatem", "TLM", first),
        HoldEnded("gn", "spatem", "released"),
        Accepted("gn", "spatem", "TLM", second),
    ]
    assert pipeline.expire(clock.advance(10)) == []  # nothing is held any more


def test_a_held_frame_expires_when_the_clock_passes_its_time(clock, make_layer, make_security, peer, spatem):
    pipeline = ReceivePipeline(make_layer(), make_security(), accept_unsecured=False)
    t0 = clock.now()
    assert pipeline.receive(frame(clock, signed(clock, peer, spatem, with_certificate=False)), t0)[1] == Held(
        "gn", "spatem", t0 + HOLD_S
    )
    assert pipeline.expire(clock.advance(HOLD_S)) == []  # until is the last moment it may wait
    detail = f"signer certificate {peer.certificate.hashed_id8.hex()} did not arrive within {HOLD_S} s"
    assert pipeline.expire(clock.advance(0.001)) == [
        HoldEnded("gn", "spatem", "expired"),
        Dropped("security:held-expired", "gn", "spatem", detail),
    ]
    assert pipeline.expire(clock.advance(1)) == []


def test_a_full_hold_evicts_its_oldest_frame(clock, make_layer, make_security, peer, spatem):
    pipeline = ReceivePipeline(make_layer(), make_security(hold_limit=1), accept_unsecured=False)
    now = clock.now()
    pipeline.receive(frame(clock, signed(clock, peer, spatem, with_certificate=False)), now)
    clock.advance(0.1)
    out = pipeline.receive(frame(clock, signed(clock, peer, spatem, with_certificate=False)), clock.now())
    assert out == [
        Received("gn", "spatem"),
        Held("gn", "spatem", clock.now() + HOLD_S),
        HoldEnded("gn", "spatem", "evicted"),
        Dropped("security:hold-queue-full", "gn", "spatem", "held frames limit 1 reached; the oldest was dropped"),
    ]


def test_replacing_the_security_entity_drops_what_it_holds(clock, make_layer, make_security, peer, spatem):
    pipeline = ReceivePipeline(make_layer(), make_security(), accept_unsecured=False)
    pipeline.receive(frame(clock, signed(clock, peer, spatem, with_certificate=False)), clock.now())
    detail = f"signer certificate {peer.certificate.hashed_id8.hex()} did not arrive within -1.0 s"
    assert pipeline.use_security(make_security(), accept_unsecured=True, now=clock.now()) == [
        HoldEnded("gn", "spatem", "expired"),
        Dropped("security:held-expired", "gn", "spatem", detail),
    ]
    assert pipeline.accept_unsecured is True
    assert pipeline.expire(clock.advance(10)) == []  # the new entity holds nothing


def test_gn_duplicates_and_replays_are_dropped_after_verification(clock, make_layer, make_security, peer, spatem):
    layer = make_layer()
    sub = layer.subscribe()
    pipeline = ReceivePipeline(layer, make_security(), accept_unsecured=False)
    pipeline.use_duplicate_tables({"gn": 16})
    key = (bytes.fromhex("0a0b0c0d0e0f0102"), 7, 10.0)
    data = signed(clock, peer, spatem)
    assert pipeline.receive(frame(clock, data, duplicate_key=key), clock.now()) == [
        Received("gn", "spatem"),
        accepted(sub),
    ]
    assert pipeline.receive(frame(clock, data, duplicate_key=key), clock.now()) == [
        Received("gn", "spatem"),
        Dropped("gn-duplicate", "gn", "spatem", "GN source 0a0b0c0d0e0f0102 sequence number 7 seen before"),
    ]
    # the same signed message again without a GN sequence number (an SHB, or MQTT): a replay
    assert pipeline.receive(frame(clock, data), clock.now()) == [
        Received("gn", "spatem"),
        Dropped("replay", "gn", "spatem", "accepted before, within its acceptance window"),
    ]
    # a forged copy (bad signature) with a new sequence number does not enter the duplicate table
    forged = bytearray(signed(clock, peer, spatem))
    forged[-1] ^= 0x01
    key2 = (key[0], 8, 10.0)
    assert pipeline.receive(frame(clock, bytes(forged), duplicate_key=key2), clock.now())[1].reason == (
        "security:invalid-signature"
    )
    clock.advance(0.01)
    assert pipeline.receive(frame(clock, signed(clock, peer, spatem), duplicate_key=key2), clock.now()) == [
        Received("gn", "spatem"),
        accepted(sub),
    ]


def test_the_services_drop_reason_is_returned(clock, make_layer, make_security):
    layer = make_layer()
    pipeline = ReceivePipeline(layer, None, accept_unsecured=True)
    assert pipeline.receive(frame(clock, b"\x02\x04\xff", secured=False), clock.now()) == [
        Received("gn", "spatem"),
        Dropped("decode-error", "gn", "spatem"),
    ]


class BrokenServices:
    """A service layer with a bug: every received message raises."""

    def receive(self, pdu, security: dict, transport: dict):
        raise RuntimeError("bug")


def test_an_exception_in_the_services_is_an_internal_error(clock, make_security, peer, spatem):
    pipeline = ReceivePipeline(BrokenServices(), make_security(), accept_unsecured=True)
    assert pipeline.receive(frame(clock, signed(clock, peer, spatem)), clock.now()) == [
        Received("gn", "spatem"),
        Dropped("internal-error", "gn", "spatem", "RuntimeError: bug"),
    ]
    assert pipeline.receive(frame(clock, spatem, secured=False), clock.now()) == [
        Received("gn", "spatem"),
        Dropped("internal-error", "gn", "spatem", "RuntimeError: bug"),
    ]


def test_a_frame_the_pipeline_cannot_read_is_an_internal_error(clock, make_layer, make_security):
    pipeline = ReceivePipeline(make_layer(), make_security(), accept_unsecured=True)
    broken = ReceivedFrame(
        None,
        "gn",
        clock.now(),
        btp_port=SPATEM.btp_port,  # type: ignore[arg-type]
        secured_packet=False,
    )
    assert pipeline.receive(broken, clock.now()) == [
        Received("gn", "spatem"),
        Dropped("internal-error", "gn", "spatem", "TypeError: 'NoneType' object is not subscriptable"),
    ]


def test_a_new_service_layer_receives_and_the_duplicate_table_stays(clock, make_layer, make_security, peer, spatem):
    old, new = make_layer(), make_layer()
    old_sub, new_sub = old.subscribe(), new.subscribe()
    pipeline = ReceivePipeline(old, make_security(), accept_unsecured=False)
    key = (bytes(8), 1, 10.0)
    assert pipeline.receive(frame(clock, signed(clock, peer, spatem), duplicate_key=key), clock.now())[1] == (
        accepted(old_sub)
    )
    pipeline.use_services(new)
    clock.advance(0.01)
    assert pipeline.receive(frame(clock, signed(clock, peer, spatem), duplicate_key=key), clock.now())[1].reason == (
        "gn-duplicate"
    )
    clock.advance(0.01)
    assert pipeline.receive(frame(clock, signed(clock, peer, spatem)), clock.now()) == [
        Received("gn", "spatem"),
        accepted(new_sub),
    ]
    assert len(old_sub) == 0


def test_counted_outcomes_keep_the_receive_accounting_identity(clock, make_layer, make_security, peer, spatem):
    """received = accepted + dropped + held, after each step (docs/metrics.md "Receive accounting")."""
    metrics = Metrics()
    pipeline = ReceivePipeline(make_layer(), make_security(), accept_unsecured=False)
    unknown = make_at(clock, {"spatem": None})
    late = Signer(unknown.certificate, unknown.key)

    def step(outcomes) -> dict:
        for o in outcomes:
            metrics.count_receive(o)
        row = metrics.receive_accounting()[("spatem", "gn")]
        assert row["received"] == row["accepted"] + row["dropped"] + row["held"]
        return row

    step(pipeline.receive(frame(clock, signed(clock, peer, spatem, with_certificate=False)), clock.now()))
    step(pipeline.receive(frame(clock, signed(clock, late, spatem, with_certificate=False)), clock.now()))
    step(pipeline.receive(frame(clock, spatem, secured=False), clock.now()))
    clock.advance(0.1)  # not the same generation time as the held one: a copy of it would be a replay
    row = step(pipeline.receive(frame(clock, signed(clock, peer, spatem)), clock.now()))
    assert row == {"received": 4.0, "accepted": 2.0, "dropped": 1.0, "held": 1.0}
    row = step(pipeline.expire(clock.advance(HOLD_S + 1)))
    assert row == {"received": 4.0, "accepted": 2.0, "dropped": 2.0, "held": 0.0}
