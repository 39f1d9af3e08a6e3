"""AT pool rotation with an injected clock, the signer-identifier policy, P2PCD, key files."""

from __future__ import annotations

import os

import pytest
import samples
from sechelp import NOW, sign_with

from rsu import catalog
from rsu import clock as clockmod
from rsu.security import coer
from rsu.security.keys import KeyMaterialError, load_private_key, write_private_key
from rsu.security.pool import AtPool, SigningRefused
from rsu.security.request import request_for_pdu
from rsu.security.service import SecurityService
from rsu.security.verify import Verifier


def _signer_form(data: bytes) -> str:
    return coer.decode("Ieee1609Dot2Data", data)["content"][1]["signer"][0]


def test_rotation_before_expiry_without_gap(test_pki, clock, codec):
    t32 = clockmod.time32(NOW)
    first = test_pki.at("spatem", start=t32 - 3600, hours=10)  # ends NOW + 9 h
    second = test_pki.at("spatem", start=t32 + 4 * 3600, hours=10)  # from NOW + 4 h to NOW + 14 h
    pool = AtPool([test_pki.ticket(second, "2"), test_pki.ticket(first, "1")], clock, rotation_margin=3600)
    svc = SecurityService(pool, Verifier(clock, test_pki.trust, codec=codec), clock)
    verifier = Verifier(clock, test_pki.trust, codec=codec)
    pdu, value = codec.encode(samples.spatem()), samples.spatem()
    used = []
    for minute in range(0, 14 * 60, 10):  # sweep 14 hours in 10-minute steps: never a gap
        clock.set(NOW + minute * 60)
        data = svc.sign(request_for_pdu(catalog.SPATEM, pdu, value))
        res = verifier.verify(data)
        assert res.ok, (minute, res.detail)
        used.append((minute, pool.current(catalog.SPATEM).label, svc.hours_to_expiry(catalog.SPATEM)))
    switch = next(m for m, label, _ in used if label == "2")
    assert switch == 8 * 60  # first AT is within the 1 h margin from NOW + 8 h
    assert all(label == "1" for m, label, _ in used if m < switch)
    assert used[0][2] == pytest.approx(9.0) and used[switch // 10][2] == pytest.approx(6.0)


def test_old_at_is_used_to_its_real_end_then_signing_stops(test_pki, clock, codec):
    at = test_pki.at("spatem", start=clockmod.time32(NOW) - 3600, hours=2)  # ends NOW + 1 h
    pool = AtPool([test_pki.ticket(at)], clock, rotation_margin=7200)
    svc = SecurityService(pool, Verifier(clock), clock)
    pdu, value = codec.encode(samples.spatem()), samples.spatem()
    svc.sign(request_for_pdu(catalog.SPATEM, pdu, value))  # inside the margin, no successor: still signs
    assert svc.hours_to_expiry(catalog.SPATEM) == pytest.approx(1.0)
    clock.advance(3600 - 1)
    svc.sign(request_for_pdu(catalog.SPATEM, pdu, value))
    clock.advance(1)
    with pytest.raises(SigningRefused, match="no AT valid now"):
        svc.sign(request_for_pdu(catalog.SPATEM, pdu, value))


def test_pool_picks_the_at_whose_ssp_permits_the_content(test_pki, clock, codec):
    text_only = test_pki.at("ivim", bytes.fromhex("015cc01f0020"))
    signs_only = test_pki.at("ivim", bytes.fromhex("015cc01f2000"))
    pool = AtPool([test_pki.ticket(text_only, "text"), test_pki.ticket(signs_only, "signs")], clock)
    svc = SecurityService(pool, Verifier(clock), clock)
    svc.sign(request_for_pdu(catalog.IVIM, codec.encode(samples.ivim())))
    assert pool.current(catalog.IVIM).label == "signs"
    svc.sign(request_for_pdu(catalog.IVIM, codec.encode(samples.ivim(signs=[], text=True))))
    assert pool.current(catalog.IVIM).label == "text"
    with pytest.raises(SigningRefused):
        svc.sign(request_for_pdu(catalog.IVIM, codec.encode(samples.ivim(text=True))))  # needs both bits in one AT


def test_certificate_at_least_once_per_second_otherwise_digest(service, codec):
    pdu, value = codec.encode(samples.spatem()), samples.spatem()
    forms = []
    for dt in (0, 0.1, 0.5, 0.5, 0.3, 0.8):
        service.clock.advance(dt)
        forms.append(_signer_form(service.sign(request_for_pdu(catalog.SPATEM, pdu, value))))
    assert forms == ["certificate", "digest", "digest", "certificate", "digest", "certificate"]


def test_neighbour_request_brings_our_certificate(test_pki, service, codec, clock):
    pdu, value = codec.encode(samples.spatem()), samples.spatem()
    service.sign(request_for_pdu(catalog.SPATEM, pdu, value))
    clock.advance(0.1)
    ours = test_pki.ats["spatem"].certificate
    peer = sign_with(
        test_pki.ats["mapem"],
        codec.encode(samples.mapem()),
        138,
        t=clock.now(),
        inline_p2pcd_request=[ours.hashed_id3, test_pki.aa.certificate.hashed_id3],
    )
    assert service.verify(peer).ok
    data = service.sign(request_for_pdu(catalog.SPATEM, pdu, value))
    assert _signer_form(data) == "certificate"
    header = coer.decode("Ieee1609Dot2Data", data)["content"][1]["tbsData"]["headerInfo"]
    assert header["requestedCertificate"] == test_pki.aa.certificate.value  # the AA it asked for


def test_unknown_signer_makes_our_next_message_ask_for_it(test_pki, service, codec, clock):
    stranger = test_pki.at("mapem")
    res = service.verify(sign_with(stranger, codec.encode(samples.mapem()), 138, with_certificate=False))
    assert res.request_certificate == stranger.certificate.hashed_id3
    data = service.sign(request_for_pdu(catalog.SPATEM, codec.encode(samples.spatem())))
    header = coer.decode("Ieee1609Dot2Data", data)["content"][1]["tbsData"]["headerInfo"]
    assert header["inlineP2pcdRequest"] == [stranger.certificate.hashed_id3]
    assert service.pending_certificate_requests == []


def test_private_key_files_must_be_owner_only(tmp_path, test_pki):
    path = tmp_path / "at.key"
    write_private_key(path, test_pki.ats["spatem"].key)
    assert os.stat(path).st_mode & 0o777 == 0o600
    load_private_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600") as e:
        load_private_key(path)
    assert "PRIVATE" not in str(e.value)


def test_pool_loads_a_directory_and_refuses_a_mismatched_key(tmp_path, test_pki, clock):
    for name in ("spatem", "mapem"):
        (tmp_path / f"{name}.oer").write_bytes(test_pki.ats[name].certificate.raw)
        write_private_key(tmp_path / f"{name}.key", test_pki.ats[name].key)
    pool = AtPool.load_directory(tmp_path, clock)
    assert sorted(t.label for t in pool.tickets) == ["mapem", "spatem"]
    assert "PRIVATE" not in repr(pool.tickets[0].signer)
    write_private_key(tmp_path / "mapem.key", test_pki.ats["spatem"].key)
    with pytest.raises(KeyMaterialError, match="does not match"):
        AtPool.load_directory(tmp_path, clock)


def test_choice_is_remembered_until_something_it_depends_on_changes(test_pki, clock, codec, monkeypatch):
    """A second select with nothing changed checks no SSP; the rotation margin, an expiry, a new ticket
    list and another requirement that moved the current AT each take effect at the very next select."""
    from rsu.security import ssp as sspmod

    t32 = clockmod.time32(NOW)
    first = test_pki.at("spatem", start=t32 - 3600, hours=3)  # ends NOW + 2 h: margin from NOW + 1 h
    second = test_pki.at("spatem", start=t32 - 60, hours=10)
    third = test_pki.at("spatem", start=t32 - 60, hours=20)
    pool = AtPool([test_pki.ticket(first, "1"), test_pki.ticket(second, "2")], clock, rotation_margin=3600)
    checks = []
    real_check = sspmod.check
    monkeypatch.setattr(sspmod, "check", lambda *a, **kw: checks.append(a[0]) or real_check(*a, **kw))
    req = sspmod.required(catalog.SPATEM, samples.spatem())
    assert pool.select(catalog.SPATEM, req).label == "1"  # the soonest-ending fresh AT
    made = len(checks)
    assert made > 0 and pool.select(catalog.SPATEM, req).label == "1" and len(checks) == made  # remembered
    clock.set(NOW + 3600 - 0.001)
    assert pool.select(catalog.SPATEM, req).label == "1"
    clock.set(NOW + 3600)  # the first AT enters its rotation margin: the next select rotates
    assert pool.select(catalog.SPATEM, req).label == "2" and pool.current(catalog.SPATEM).label == "2"
    pool.replace([test_pki.ticket(third, "3")])  # a new ticket list: chosen afresh
    assert pool.select(catalog.SPATEM, req).label == "3"
    pool.tickets = [test_pki.ticket(first, "1")]  # assigned directly: chosen afresh too
    assert pool.select(catalog.SPATEM, req).label == "1"
    clock.set(NOW + 2 * 3600)  # its end: refused at once, not served from memory
    with pytest.raises(SigningRefused, match="no AT valid now"):
        pool.select(catalog.SPATEM, req)
    clock.set(NOW + 3600)  # the clock set back: the choice is made again for that instant
    assert pool.select(catalog.SPATEM, req).label == "1"


def test_remembered_choice_follows_the_current_at_across_requirements(test_pki, clock):
    from rsu.security import ssp as sspmod

    text_only = test_pki.at("ivim", bytes.fromhex("015cc01f0020"))
    signs_only = test_pki.at("ivim", bytes.fromhex("015cc01f2000"))
    both = test_pki.at("ivim", bytes.fromhex("015cc01f2020"))
    pool = AtPool([test_pki.ticket(text_only, "text"), test_pki.ticket(signs_only, "signs")], clock)
    signs = sspmod.required(catalog.IVIM, samples.ivim())
    text = sspmod.required(catalog.IVIM, samples.ivim(signs=[], text=True))
    assert [pool.select(catalog.IVIM, r).label for r in (signs, text, signs, signs, text)] == [
        "signs",
        "text",
        "signs",
        "signs",
        "text",
    ]
    pool.replace([test_pki.ticket(both, "both"), test_pki.ticket(text_only, "text")])
    assert pool.current(catalog.IVIM).label == "text"  # kept: still in the new set
    assert [pool.select(catalog.IVIM, r).label for r in (text, signs, text)] == ["text", "both", "both"]
