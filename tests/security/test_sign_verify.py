"""Signing and verification with a real test PKI: layout, and one negative test per rejection reason."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import samples
from sechelp import NOW, sign_with

from rsu import catalog
from rsu import clock as clockmod
from rsu.security import coer, pki, ssp
from rsu.security.request import SignRequest
from rsu.security.sign import Signer
from rsu.security.verify import Reason, Verifier


@pytest.fixture
def spatem_pdu(codec):
    return codec.encode(samples.spatem())


def test_TP_IS_TLM_RCV_SEC_BV_01_signed_spatem_verifies_with_chain(test_pki, verifier, spatem_pdu):
    data = sign_with(test_pki.ats["spatem"], spatem_pdu, 137)
    res = verifier.verify(data, catalog.SPATEM)
    assert res.ok, res.detail
    assert (res.signature_valid, res.chain, res.psid) == (True, "valid", 137)
    assert res.payload == spatem_pdu and res.pdu.kind is catalog.SPATEM
    assert res.signer_id == test_pki.ats["spatem"].certificate.hashed_id8


def test_hand_built_structure_equals_the_asn1_encoder(test_pki, spatem_pdu):
    at = test_pki.ats["spatem"]
    signer = Signer(at.certificate, at.key)
    t64 = clockmod.time64(NOW)
    for kw in ({}, {"inline_p2pcd_request": [b"\x01\x02\x03"]}, {"requested_certificate": test_pki.aa.certificate}):
        tbs = signer.tbs_data(spatem_pdu, 137, t64, **kw)
        value = {
            "payload": {"data": {"protocolVersion": 3, "content": ("unsecuredData", spatem_pdu)}},
            "headerInfo": {"psid": 137, "generationTime": t64},
        }
        if "inline_p2pcd_request" in kw:
            value["headerInfo"]["inlineP2pcdRequest"] = kw["inline_p2pcd_request"]
        if "requested_certificate" in kw:
            value["headerInfo"]["requestedCertificate"] = kw["requested_certificate"].value
        assert tbs == coer.encode("ToBeSignedData", value)
    for with_cert in (False, True):
        data = signer.sign(spatem_pdu, 137, t64, with_certificate=with_cert)
        assert coer.encode("EtsiTs103097Data-Signed", coer.decode("EtsiTs103097Data-Signed", data)) == data
        sd = coer.decode("Ieee1609Dot2Data", data)["content"][1]
        assert sd["hashId"] == "sha256"
        assert sd["signer"] == (
            ("certificate", [at.certificate.value]) if with_cert else ("digest", at.certificate.hashed_id8)
        )
        assert sd["signature"][0] == "ecdsaNistP256Signature" and sd["signature"][1]["rSig"][0] == "x-only"


def test_brainpool_signing(test_pki, clock, codec, spatem_pdu):
    at = test_pki.at("spatem", curve="ecdsaBrainpoolP256r1")
    data = sign_with(at, spatem_pdu, 137)
    assert coer.decode("Ieee1609Dot2Data", data)["content"][1]["signature"][0] == "ecdsaBrainpoolP256r1Signature"
    assert Verifier(clock, test_pki.trust, codec=codec).verify(data).ok


# ---------------------------------------------------------------------- rejection reasons


def test_tampered_payload_is_invalid_signature(test_pki, verifier, spatem_pdu):
    data = bytearray(sign_with(test_pki.ats["spatem"], spatem_pdu, 137))
    data[10] ^= 0x01  # inside the UPER payload
    res = verifier.verify(bytes(data))
    assert res.reason is Reason.INVALID_SIGNATURE and res.signature_valid is False


def test_wrong_key_is_invalid_signature(test_pki, verifier, spatem_pdu):
    a, b = test_pki.ats["spatem"], test_pki.at("spatem")
    data = sign_with(b, spatem_pdu, 137)  # signed by B's key...
    forged = data.replace(b.certificate.raw, a.certificate.raw)  # ...but claims A's certificate
    assert forged != data
    assert verifier.verify(forged).reason is Reason.INVALID_SIGNATURE


def test_expired_certificate(test_pki, verifier, spatem_pdu):
    old = test_pki.at("spatem", start=clockmod.time32(NOW - 10 * 3600), hours=2)
    assert verifier.verify(sign_with(old, spatem_pdu, 137)).reason is Reason.CERT_EXPIRED


def test_not_yet_valid_certificate(test_pki, verifier, spatem_pdu):
    future = test_pki.at("spatem", start=clockmod.time32(NOW + 3600))
    assert verifier.verify(sign_with(future, spatem_pdu, 137)).reason is Reason.CERT_NOT_YET_VALID


def test_psid_does_not_match_the_message_type(test_pki, verifier, spatem_pdu):
    both = pki.make_at(
        test_pki.aa, clockmod.time32(NOW - 60), [(137, bytes.fromhex("01e0")), (138, bytes.fromhex("01c0"))]
    )
    res = verifier.verify(sign_with(both, spatem_pdu, 138))  # a SPATEM signed as MAPEM
    assert res.reason is Reason.PSID_MISMATCH
    res = verifier.verify(sign_with(test_pki.ats["spatem"], spatem_pdu, 137), catalog.MAPEM)  # BTP port says MAPEM
    assert res.reason is Reason.PSID_MISMATCH


def test_TP_IS_TLM_RCV_SEC_BO_01_signer_without_the_its_aid(test_pki, verifier, spatem_pdu):
    res = verifier.verify(sign_with(test_pki.ats["mapem"], spatem_pdu, 137))
    assert res.reason is Reason.PSID_NOT_PERMITTED


def test_unknown_issuer(test_pki, verifier, spatem_pdu):
    other_root = pki.make_root(clockmod.time32(NOW - 86400))
    other_aa = pki.make_aa(other_root, clockmod.time32(NOW - 86400))
    at = test_pki.at("spatem", aa=other_aa)
    res = verifier.verify(sign_with(at, spatem_pdu, 137))
    assert res.reason is Reason.UNKNOWN_ISSUER and res.signature_valid and res.chain == "invalid"


def test_at_not_signed_by_its_named_issuer(test_pki, verifier, spatem_pdu):
    impostor = pki.Issued(test_pki.aa.certificate, pki.make_aa(test_pki.root, clockmod.time32(NOW)).key)
    at = test_pki.at("spatem", aa=impostor)
    assert verifier.verify(sign_with(at, spatem_pdu, 137)).reason is Reason.CHAIN_INVALID_SIGNATURE


def test_at_outliving_its_issuer(test_pki, verifier, spatem_pdu):
    at = test_pki.at("spatem", hours=5 * 8760)
    assert verifier.verify(sign_with(at, spatem_pdu, 137)).reason is Reason.CHAIN_VALIDITY


def test_at_ssp_outside_the_issuer_range(test_pki, verifier, spatem_pdu):
    at = test_pki.at("spatem", bytes.fromhex("01e1"))  # a reserved bit the AA range fixes to 0
    assert verifier.verify(sign_with(at, spatem_pdu, 137)).reason is Reason.CHAIN_PERMISSIONS


def test_stale_generation_time(test_pki, verifier, spatem_pdu):
    data = sign_with(test_pki.ats["spatem"], spatem_pdu, 137, t=NOW - 31)
    assert verifier.verify(data).reason is Reason.GENERATION_TIME_TOO_OLD


def test_future_generation_time(test_pki, verifier, spatem_pdu):
    data = sign_with(test_pki.ats["spatem"], spatem_pdu, 137, t=NOW + 2.5)
    assert verifier.verify(data).reason is Reason.GENERATION_TIME_IN_FUTURE
    assert verifier.verify(sign_with(test_pki.ats["spatem"], spatem_pdu, 137, t=NOW + 1.5)).ok


def test_windows_are_configurable(test_pki, clock, codec, spatem_pdu):
    data = sign_with(test_pki.ats["spatem"], spatem_pdu, 137, t=NOW - 31)
    assert Verifier(clock, test_pki.trust, max_age=60, codec=codec).verify(data).ok


def _rebuild(data: bytes, mutate) -> bytes:
    value = coer.decode("Ieee1609Dot2Data", data)
    mutate(value["content"][1])
    return coer.encode("Ieee1609Dot2Data", value)


def test_expired_message(test_pki, verifier, spatem_pdu):
    data = sign_with(test_pki.ats["spatem"], spatem_pdu, 137)
    t64 = clockmod.time64(NOW)
    expired = _rebuild(data, lambda sd: sd["tbsData"]["headerInfo"].update(expiryTime=t64 - 1_000_000))
    assert verifier.verify(expired).reason is Reason.MESSAGE_EXPIRED


def test_profile_violations(test_pki, verifier, spatem_pdu):
    data = sign_with(test_pki.ats["spatem"], spatem_pdu, 137)
    no_time = _rebuild(data, lambda sd: sd["tbsData"]["headerInfo"].pop("generationTime"))
    assert verifier.verify(no_time).reason is Reason.PROFILE_VIOLATION
    learning = _rebuild(data, lambda sd: sd["tbsData"]["headerInfo"].update(p2pcdLearningRequest=b"abc"))
    assert verifier.verify(learning).reason is Reason.PROFILE_VIOLATION
    two = _rebuild(data, lambda sd: sd["signer"][1].append(sd["signer"][1][0]))
    assert verifier.verify(two).reason is Reason.PROFILE_VIOLATION


def test_hash_algorithm_must_fit_the_key(test_pki, verifier, spatem_pdu):
    data = bytearray(sign_with(test_pki.ats["spatem"], spatem_pdu, 137))
    data[2] = 1  # hashId sha384 with a P-256 key
    assert verifier.verify(bytes(data)).reason is Reason.HASH_ALGORITHM_MISMATCH


def test_payload_that_is_not_the_message_type(test_pki, verifier):
    res = verifier.verify(sign_with(test_pki.ats["spatem"], b"\x02\x04\xff", 137))
    assert res.reason is Reason.PAYLOAD_INVALID and res.signature_valid


def test_signer_certificate_that_is_not_etsi_profile(test_pki, verifier, spatem_pdu):
    data = sign_with(test_pki.ats["spatem"], spatem_pdu, 137)
    bad = _rebuild(data, lambda sd: sd["signer"][1][0].update(type="implicit"))
    assert verifier.verify(bad).reason is Reason.SIGNER_CERTIFICATE_INVALID


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", Reason.MALFORMED),
        (b"\x03\x81\x00\x40", Reason.MALFORMED),
        (b"\x02\x81\x00", Reason.UNSUPPORTED_VERSION),
        (b"\x03\x80\x03abc", Reason.NOT_SIGNED),
    ],
)
def test_structurally_bad_frames(verifier, data, reason):
    assert verifier.verify(data).reason is reason


def test_trailing_bytes_are_malformed(test_pki, verifier, spatem_pdu):
    assert verifier.verify(sign_with(test_pki.ats["spatem"], spatem_pdu, 137) + b"\x00").reason is Reason.MALFORMED


def test_random_corruption_never_raises(test_pki, verifier, spatem_pdu):
    data = sign_with(test_pki.ats["spatem"], spatem_pdu, 137)
    rnd = random.Random(7)
    reasons = set()
    for _ in range(400):
        b = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        b = bytes(b[: rnd.randrange(len(b) + 1)]) if rnd.random() < 0.3 else bytes(b)
        res = verifier.verify(b)  # must not raise
        assert res.ok or isinstance(res.reason, Reason)
        reasons.add(res.reason)
    assert Reason.MALFORMED in reasons and Reason.INVALID_SIGNATURE in reasons


def test_unknown_digest_is_held_then_released_when_the_certificate_arrives(test_pki, clock, codec, spatem_pdu):
    v = Verifier(clock, test_pki.trust, codec=codec)
    at = test_pki.ats["spatem"]
    first = sign_with(at, spatem_pdu, 137, with_certificate=False)
    res = v.verify(first)
    assert res.reason is Reason.SIGNER_UNKNOWN and res.held
    assert res.request_certificate == at.certificate.hashed_id8[-3:]
    assert v.held_count == 1
    clock.advance(0.5)
    res2 = v.verify(sign_with(at, spatem_pdu, 137, t=clock.now(), with_certificate=True))
    assert res2.ok and len(res2.released) == 1 and res2.released[0].ok
    assert v.held_count == 0
    assert v.verify(sign_with(at, spatem_pdu, 137, t=clock.now(), with_certificate=False)).ok  # now cached


def test_every_reason_has_a_test():
    text = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    untested = [r.name for r in Reason if not re.search(rf"Reason\.{r.name}\b", text)]
    assert untested == []


def test_gn_style_payload_offset_and_context_survive_holding(test_pki, clock, codec, spatem_pdu):
    """A secured GN packet signs headers | PDU: the content check starts at payload_offset,
    and a held message comes back with its context when its certificate arrives."""
    v = Verifier(clock, test_pki.trust, codec=codec)
    at = test_pki.ats["spatem"]
    headers = bytes.fromhex("2050028000320100") + bytes.fromhex("07d40000")  # stand-in CH + BTP-B
    first = sign_with(at, headers + spatem_pdu, 137, with_certificate=False)
    res = v.verify(first, payload_offset=len(headers), context="frame-1")
    assert res.held and res.context == "frame-1"
    res2 = v.verify(
        sign_with(at, headers + spatem_pdu, 137, t=clock.now(), with_certificate=True),
        payload_offset=len(headers),
        context="frame-2",
    )
    assert res2.ok and res2.context == "frame-2" and res2.pdu.kind is catalog.SPATEM
    (released,) = res2.released
    assert released.ok and released.context == "frame-1" and released.pdu.kind is catalog.SPATEM
    # without the offset the headers are taken for the PDU and the content check fails
    bad = v.verify(sign_with(at, headers + spatem_pdu, 137, t=clock.now()))
    assert bad.reason is Reason.PAYLOAD_INVALID
    beyond = v.verify(sign_with(at, spatem_pdu, 137, t=clock.now()), payload_offset=len(spatem_pdu) + 1)
    assert beyond.reason is Reason.PAYLOAD_INVALID and "beyond" in beyond.detail


def test_a_sign_request_signs_headers_and_pdu_without_decoding(service, codec, spatem_pdu, monkeypatch):
    value = codec.decode(spatem_pdu).value
    request = SignRequest(ssp.required(catalog.SPATEM, value), bytes(12) + spatem_pdu, pdu_offset=12)
    headers = bytes(12)

    def no_decode(data, **kw):
        raise AssertionError("decoded although the request carries the content's requirement")

    monkeypatch.setattr(codec, "decode", no_decode)
    signed = service.sign(request)
    monkeypatch.undo()
    res = service.verify(signed, catalog.SPATEM, payload_offset=len(headers))
    assert res.ok, res.detail
