"""What other stations can make the security entity keep is bounded and counted: held frames (and
their fate: released, expired, pushed out), certificate requests (only for frames that pass every
check needing no certificate; a cap per outgoing message and in total; age-out), the certificate
cache, the replay window; and a SignerIdentifier alternative we do not know has its own reason."""

from __future__ import annotations

import os
from collections import Counter

import pytest
import samples
from sechelp import sign_with

from rsu import catalog
from rsu.security import coer
from rsu.security.pool import AtPool
from rsu.security.replay import ReplayWindow
from rsu.security.request import request_for_pdu
from rsu.security.service import SecurityService
from rsu.security.verify import Reason, Verifier


@pytest.fixture
def spatem_pdu(codec):
    return codec.encode(samples.spatem())


def counted(hits: Counter):
    return lambda name: hits.update([name])


def digest_signed(issued, pdu, psid, t):
    return sign_with(issued, pdu, psid, t=t, with_certificate=False)


def random_digest(frame: bytes) -> bytes:
    """The same frame with a random HashedId8 as signer: a signer nobody knows (never verified)."""
    i = len(frame) - 66 - 9  # signer digest (0x80 + 8 bytes) sits before the P-256 signature (2 + 64 bytes)
    assert frame[i] == 0x80
    return frame[: i + 1] + os.urandom(8) + frame[i + 9 :]


def test_unsupported_signer_alternative_has_its_own_reason(test_pki, verifier, clock, spatem_pdu):
    frame = digest_signed(test_pki.ats["spatem"], spatem_pdu, 137, clock.now())
    i = len(frame) - 66 - 9
    extension = frame[:i] + bytes([0x83, 0x01, 0x00]) + frame[i + 9 :]  # SignerIdentifier extension alternative 3
    res = verifier.verify(extension, catalog.SPATEM)
    assert res.reason is Reason.UNSUPPORTED_SIGNER, res.detail  # not a TypeError counted as malformed
    assert "extension alternative" in res.detail


def test_every_held_frame_leaves_the_hold_exactly_once(test_pki, clock, codec, spatem_pdu):
    hits = Counter()
    v = Verifier(clock, test_pki.trust, codec=codec, hold_seconds=2.0, hold_limit=3, on_limit=counted(hits))
    at = test_pki.ats["spatem"]
    held, left = 0, Counter()

    def feed(frame, context):
        nonlocal held
        res = v.verify(frame, catalog.SPATEM, context=context)
        held += res.held
        for r in res.released:
            assert r.from_hold
            left[str(r.reason) if not r.ok else "released"] += 1
        return res

    for n in range(5):  # five frames of one unknown signer, room for three
        feed(digest_signed(at, spatem_pdu, 137, clock.now()), n)
    assert held == 5 and v.held_count == 3
    assert left == {str(Reason.HOLD_QUEUE_FULL): 2} and hits["held-frames"] == 2
    clock.advance(2.5)
    expired = v.expire_held()  # what the daemon's housekeeping calls
    assert [r.reason for r in expired] == [Reason.HELD_EXPIRED] * 3 and v.held_count == 0
    assert all(r.from_hold and r.context in (2, 3, 4) for r in expired)
    feed(digest_signed(at, spatem_pdu, 137, clock.now()), 5)
    res = feed(sign_with(at, spatem_pdu, 137, t=clock.now()), 6)  # the certificate arrives
    assert res.ok and left["released"] == 1 and v.held_count == 0


def test_no_hold_means_a_plain_drop(test_pki, clock, codec, spatem_pdu):
    v = Verifier(clock, test_pki.trust, codec=codec, hold_limit=0)
    res = v.verify(digest_signed(test_pki.ats["spatem"], spatem_pdu, 137, clock.now()), catalog.SPATEM)
    assert res.reason is Reason.SIGNER_UNKNOWN and not res.held and res.request_certificate is not None


def test_certificate_requests_only_for_frames_we_would_otherwise_accept(test_pki, service, clock, spatem_pdu):
    at = test_pki.ats["spatem"]
    garbage = random_digest(digest_signed(at, b"\x02\x04" + os.urandom(20), 137, clock.now()))
    res = service.verify(garbage, catalog.SPATEM)
    assert res.reason is Reason.PAYLOAD_INVALID and res.request_certificate is None and not res.held
    old = random_digest(digest_signed(at, spatem_pdu, 137, clock.now() - 60))
    assert service.verify(old, catalog.SPATEM).reason is Reason.GENERATION_TIME_TOO_OLD
    wrong_port = random_digest(digest_signed(at, spatem_pdu, 137, clock.now()))
    assert service.verify(wrong_port, catalog.MAPEM).reason is Reason.PSID_MISMATCH
    assert service.pending_certificate_requests == []
    good = random_digest(digest_signed(at, spatem_pdu, 137, clock.now()))
    assert service.verify(good, catalog.SPATEM).held
    assert len(service.pending_certificate_requests) == 1


def test_certificate_requests_are_capped_per_message_and_in_total_and_age_out(test_pki, clock, codec, spatem_pdu):
    hits = Counter()
    pool = AtPool([test_pki.ticket(i, n) for n, i in test_pki.ats.items()], clock)
    svc = SecurityService(
        pool,
        Verifier(clock, test_pki.trust, codec=codec, on_limit=counted(hits)),
        clock,
        p2pcd_per_frame=3,
        p2pcd_pending=10,
        p2pcd_max_age=5.0,
        on_limit=counted(hits),
    )
    template = digest_signed(test_pki.ats["spatem"], spatem_pdu, 137, clock.now())
    for _ in range(25):
        svc.verify(random_digest(template), catalog.SPATEM)
    assert len(svc.pending_certificate_requests) == 10 and hits["p2pcd-pending"] == 15
    newest = svc.pending_certificate_requests

    def inline_requests(data: bytes) -> list[bytes]:
        header = coer.decode("Ieee1609Dot2Data", data)["content"][1]["tbsData"]["headerInfo"]
        return header.get("inlineP2pcdRequest", [])

    first = inline_requests(svc.sign(request_for_pdu(catalog.SPATEM, spatem_pdu)))
    assert first == newest[:3] and hits["p2pcd-per-frame"] == 1  # oldest first, at most the cap
    clock.advance(6.0)  # the rest is older than p2pcd_max_age: forgotten, never sent
    assert inline_requests(svc.sign(request_for_pdu(catalog.SPATEM, spatem_pdu))) == []
    assert svc.pending_certificate_requests == []


def test_certificate_cache_is_bounded(test_pki, clock, codec, spatem_pdu):
    hits = Counter()
    v = Verifier(clock, test_pki.trust, codec=codec, cache_size=2, on_limit=counted(hits))
    ats = [test_pki.at("spatem") for _ in range(4)]
    for at in ats:
        assert v.verify(sign_with(at, spatem_pdu, 137, t=clock.now()), catalog.SPATEM).ok
    assert hits["certificate-cache"] == 2
    assert v.known_certificate(ats[0].certificate.hashed_id8) is None  # least recently used went first
    assert v.known_certificate(ats[3].certificate.hashed_id8) is not None
    for c in test_pki.trust.certificates():  # the trust store is never pushed out
        assert v.known_certificate(c.hashed_id8) is not None


def test_replay_window_remembers_until_the_acceptance_window_ends_and_is_bounded(test_pki, service, clock, spatem_pdu):
    frame = sign_with(test_pki.ats["spatem"], spatem_pdu, 137, t=clock.now())
    first = service.verify(frame, catalog.SPATEM)
    assert first.ok and not service.replayed(first)
    again = service.verify(frame, catalog.SPATEM)
    assert again.ok and service.replayed(again)  # an exact copy: the signature is fine, it is a replay
    clock.advance(service.verifier.max_age + 0.001)
    assert service.verify(frame, catalog.SPATEM).reason is Reason.GENERATION_TIME_TOO_OLD
    hits = Counter()
    w = ReplayWindow(3, counted(hits))
    for i in range(5):
        assert not w.seen(bytes([i]), until=100.0, now=0.0)
    assert len(w) == 3 and hits["replay-window"] == 2
    assert w.seen(bytes([4]), until=100.0, now=1.0) and not w.seen(bytes([4]), until=200.0, now=150.0)


def test_held_frames_are_released_by_a_verified_certificate_even_if_its_message_fails(
    test_pki, clock, codec, spatem_pdu
):
    v = Verifier(clock, test_pki.trust, codec=codec)
    at = test_pki.at("spatem")
    assert v.verify(digest_signed(at, spatem_pdu, 137, clock.now()), catalog.SPATEM).held
    clock.advance(0.1)
    res = v.verify(sign_with(at, b"\x02\x04\x00", 137, t=clock.now()), catalog.SPATEM)  # not a SPATEM
    assert res.reason is Reason.PAYLOAD_INVALID
    (released,) = res.released  # the certificate itself verified and chained: the held frame is judged
    assert released.ok and released.from_hold and v.held_count == 0
    other = test_pki.at("spatem")
    assert v.verify(digest_signed(other, spatem_pdu, 137, clock.now()), catalog.SPATEM).held
    bad = bytearray(sign_with(other, spatem_pdu, 137, t=clock.now()))
    bad[-3] ^= 1
    res = v.verify(bytes(bad), catalog.SPATEM)
    assert res.reason is Reason.INVALID_SIGNATURE and res.released == [] and v.held_count == 1  # not by a forgery
