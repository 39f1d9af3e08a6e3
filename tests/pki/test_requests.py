"""Enrolment and authorization requests against a test EA and AA (ETSI test-PKI keys), sans-I/O."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rsu import clock
from rsu.pki import coer, ecies
from rsu.pki import requests as R
from rsu.pki.signed import signer_hashed_id8
from rsu.security import ssp as sspmod
from tests.pki.authorities import NOW, TestAA, TestEA
from tests.pki.helpers import SeededRandomness, cert, signing_key

ITS_ID = b"RSU-TEST-0001"
GEN = clock.time64(NOW)
SERVICES = ["spatem", "mapem", "ivim"]  # the ETSI test AA range for 140 predates the TLC SSP layout
PROVIDER = sspmod.ServiceProvider.of("FR", 7)


@pytest.fixture
def canonical():
    return SeededRandomness("canonical").private_key(ec.SECP256R1())


@pytest.fixture
def ea(canonical):
    ea = TestEA({ITS_ID: canonical.public_key()})
    ea.add_ec(cert("CERT_TS_A_EC"))
    return ea


@pytest.fixture
def aa(ea):
    return TestAA(ea)


def enrol(ea, canonical, seed="rsu"):
    pending = R.build_enrolment_request(
        its_id=ITS_ID, signing_key=canonical, ea=ea.cert, generation_time=GEN, random=SeededRandomness(seed)
    )
    return pending, ea.handle(pending.body)


# ====================================================================== enrolment


def test_initial_enrolment(ea, canonical):
    pending, answer = enrol(ea, canonical)
    seen = ea.seen[-1]
    assert (seen["outer_signer"], seen["psid"], seen["pop_psid"]) == ("self", 623, 623)
    assert seen["inner"]["itsId"] == ITS_ID and seen["inner"]["certificateFormat"] == 1
    assert seen["inner"]["requestedSubjectAttributes"] == {
        "appPermissions": [{"psid": 623, "ssp": ("bitmapSsp", b"\x01\xc0")}]
    }
    outer = coer.decode("Ieee1609Dot2Data", pending.body)
    ((alt, info),) = outer["content"][1]["recipients"]
    assert alt == "certRecipInfo" and info["recipientId"] == ea.cert.hashed_id8
    response = R.process_response(pending, answer, NOW)
    assert response.ok and response.code == "ok"
    assert response.certificate.issuer_id == ea.cert.hashed_id8
    assert response.private_key is pending.private_key
    assert response.certificate.app_permissions == {623: b"\x01\xc0"}


def test_brainpool_ec_key(ea, canonical):
    pending = R.build_enrolment_request(
        its_id=ITS_ID,
        signing_key=canonical,
        ea=ea.cert,
        generation_time=GEN,
        random=SeededRandomness("bp"),
        key_curve="ecdsaBrainpoolP256r1",
    )
    response = R.process_response(pending, ea.handle(pending.body), NOW)
    assert response.ok and response.certificate.verification_key[0] == "ecdsaBrainpoolP256r1"


def test_each_request_has_its_own_secrets_and_hides_them(ea, canonical):
    a = R.build_enrolment_request(
        its_id=ITS_ID, signing_key=canonical, ea=ea.cert, generation_time=GEN, random=SeededRandomness("x")
    )
    b = R.build_enrolment_request(
        its_id=ITS_ID, signing_key=canonical, ea=ea.cert, generation_time=GEN, random=SeededRandomness("y")
    )
    assert a.body != b.body and a.aes_key != b.aes_key
    assert a.request_hash == hashlib.sha256(a.body).digest()[:16]
    shown = repr(a)
    assert a.aes_key.hex() not in shown and "aes_key" not in shown and "private_key" not in shown
    assert str(a.private_key.private_numbers().private_value) not in shown


def test_re_enrolment_signed_with_the_current_ec(ea, canonical):
    _, first = enrol(ea, canonical)
    current = cert("CERT_TS_A_EC")
    pending = R.build_enrolment_request(
        its_id=b"ignored",
        signing_key=signing_key("CERT_TS_A_EC"),
        ea=ea.cert,
        generation_time=GEN,
        random=SeededRandomness("renew"),
        current_ec=current,
    )
    answer = ea.handle(pending.body)
    seen = ea.seen[-1]
    assert seen["outer_signer"] == "digest" and seen["inner"]["itsId"] == current.hashed_id8
    response = R.process_response(pending, answer, NOW)
    assert response.ok and response.certificate.hashed_id8 != current.hashed_id8
    # a wrong key for the current EC: the EA says invalidsignature, and the code is named
    bad = R.build_enrolment_request(
        its_id=b"",
        signing_key=signing_key("CERT_TS_A_EA"),
        ea=ea.cert,
        generation_time=GEN,
        random=SeededRandomness("bad"),
        current_ec=current,
    )
    assert R.process_response(bad, ea.handle(bad.body), NOW).code == "invalidsignature"


def test_expired_ec_cannot_sign(ea, aa):
    current = cert("CERT_TS_A_EC")  # valid during 2019
    later = clock.time64(clock.time32_to_posix(current.start + 400 * 86400))
    with pytest.raises(R.RequestError) as e:
        R.build_enrolment_request(
            its_id=b"",
            signing_key=signing_key("CERT_TS_A_EC"),
            ea=ea.cert,
            generation_time=later,
            random=SeededRandomness(),
            current_ec=current,
        )
    assert e.value.reason == "ec-not-valid"
    with pytest.raises(R.RequestError) as e:
        R.build_authorization_request(
            ec=current,
            ec_key=signing_key("CERT_TS_A_EC"),
            ea=ea.cert,
            aa=aa.cert,
            permissions=R.service_permissions(["spatem"]),
            generation_time=later,
            random=SeededRandomness(),
        )
    assert e.value.reason == "ec-not-valid"


def test_unknown_canonical_id(ea, canonical):
    pending = R.build_enrolment_request(
        its_id=b"NOT-REGISTERED", signing_key=canonical, ea=ea.cert, generation_time=GEN, random=SeededRandomness()
    )
    response = R.process_response(pending, ea.handle(pending.body), NOW)
    assert (response.ok, response.code, response.certificate) == (False, "unknownits", None)


@pytest.mark.parametrize("code", R.ENROLMENT_RESPONSE_CODES[1:])
def test_every_enrolment_response_code_is_named(ea, canonical, code):
    ea.answer = code
    pending, answer = enrol(ea, canonical)
    response = R.process_response(pending, answer, NOW)
    assert (response.ok, response.code, response.certificate) == (False, code, None)


@pytest.mark.parametrize(
    "tamper,reason",
    [
        ("request-hash", "request-hash-mismatch"),
        ("other-key", "certificate-key-mismatch"),
        ("garbage", "decryption-failed"),
        ("wrong-psk", "decryption-failed"),
    ],
)
def test_enrolment_response_refused(ea, canonical, tamper, reason):
    ea.tamper = tamper
    pending, answer = enrol(ea, canonical)
    with pytest.raises(R.ResponseError) as e:
        R.process_response(pending, answer, NOW)
    assert e.value.reason == reason


def test_response_for_another_request_or_from_another_signer(ea, aa, canonical):
    pending, answer = enrol(ea, canonical)
    other, _ = enrol(ea, canonical, seed="other")
    with pytest.raises(R.ResponseError) as e:
        R.process_response(other, answer, NOW)
    assert e.value.reason == "decryption-failed"  # psk names another AES key
    aa_answer = aa._respond(
        "enrolmentResponse",
        "InnerEcResponse",
        {"requestHash": pending.request_hash, "responseCode": "deniedrequest"},
        pending.aes_key,
        NOW,
    )
    with pytest.raises(R.ResponseError) as e:
        R.process_response(pending, aa_answer, NOW)
    assert e.value.reason == "wrong-signer"
    with pytest.raises(R.ResponseError) as e:  # an expired certificate is not taken
        R.process_response(pending, answer, clock.time32_to_posix(clock.time32(NOW) + 2 * 31556952))
    assert e.value.reason == "certificate-not-valid"


def test_flipped_response_bytes_are_refused(ea, canonical):
    pending, answer = enrol(ea, canonical)
    for i in range(0, len(answer), 3):
        tampered = bytearray(answer)
        tampered[i] ^= 0x04
        with pytest.raises(R.ResponseError):
            R.process_response(pending, bytes(tampered), NOW)


# ====================================================================== authorization


def enrolled(ea, canonical):
    pending, answer = enrol(ea, canonical)
    r = R.process_response(pending, answer, NOW)
    return r.certificate, r.private_key


def authorize(ea, aa, canonical, seed="at", services=SERVICES):
    ec_cert, ec_key = enrolled(ea, canonical)
    pending = R.build_authorization_request(
        ec=ec_cert,
        ec_key=ec_key,
        ea=ea.cert,
        aa=aa.cert,
        permissions=R.service_permissions(services, PROVIDER),
        generation_time=GEN,
        random=SeededRandomness(seed),
    )
    return ec_cert, pending, aa.handle(pending.body)


def test_authorization_ticket(ea, aa, canonical):
    ec_cert, pending, answer = authorize(ea, aa, canonical)
    seen = aa.seen[-1]
    assert seen["pop_signer"] == "self" and seen["psid"] == 623
    inner = seen["inner"]
    assert inner["ecSignature"][0] == "encryptedEcSignature"
    assert inner["sharedAtRequest"]["eaId"] == ea.cert.hashed_id8
    assert len(inner["hmacKey"]) == 32 and len(inner["sharedAtRequest"]["keyTag"]) == 16
    # privacy: what the AA can read does not name the EC
    plaintext, _ = ecies.decrypt_with_private_key(pending.body, aa.cert, aa.enc_key)
    assert ec_cert.hashed_id8 not in plaintext and signer_hashed_id8(ec_cert) not in plaintext
    response = R.process_response(pending, answer, NOW)
    assert response.ok
    at = response.certificate
    assert at.issuer_id == aa.cert.hashed_id8
    assert set(at.app_permissions) == {137, 138, 139}
    assert at.app_permissions[137] == sspmod.full("spatem")


def test_each_at_gets_fresh_keys(ea, aa, canonical):
    ec_cert, ec_key = enrolled(ea, canonical)
    rnd = SeededRandomness("pool")
    perms = R.service_permissions(["spatem"])
    made = [
        R.build_authorization_request(
            ec=ec_cert, ec_key=ec_key, ea=ea.cert, aa=aa.cert, permissions=perms, generation_time=GEN, random=rnd
        )
        for _ in range(3)
    ]
    keys = {p.private_key.public_key().public_numbers().x for p in made}
    assert len(keys) == 3 and len({p.hmac_key for p in made}) == 3 and len({p.aes_key for p in made}) == 3
    for p in made:
        assert R.process_response(p, aa.handle(p.body), NOW).ok


def test_never_more_than_allowed(ea, aa, canonical):
    ec_cert, ec_key = enrolled(ea, canonical)
    with pytest.raises(R.RequestError) as e:  # the ETSI test AA may not issue SSEM or RTCMEM
        R.build_authorization_request(
            ec=ec_cert,
            ec_key=ec_key,
            ea=ea.cert,
            aa=aa.cert,
            permissions=R.service_permissions(["ssem", "rtcmem"]),
            generation_time=GEN,
            random=SeededRandomness(),
        )
    assert e.value.reason == "not-permitted" and "637" in e.value.detail and "540802" in e.value.detail
    with pytest.raises(R.RequestError) as e:  # an EA certificate (623:010E) may not sign AT requests
        R.build_authorization_request(
            ec=cert("CERT_TS_A_EA"),
            ec_key=signing_key("CERT_TS_A_EA"),
            ea=ea.cert,
            aa=aa.cert,
            permissions=R.service_permissions(["spatem"]),
            generation_time=GEN,
            random=SeededRandomness(),
        )
    assert e.value.reason == "not-permitted"
    wide = R.service_permissions(["spatem"])
    wide[0]["ssp"] = ("bitmapSsp", b"\x01\xff")  # reserved bits set: beyond the AA's range
    with pytest.raises(R.RequestError):
        R.build_authorization_request(
            ec=ec_cert,
            ec_key=ec_key,
            ea=ea.cert,
            aa=aa.cert,
            permissions=wide,
            generation_time=GEN,
            random=SeededRandomness(),
        )


def test_ec_unknown_to_the_ea(ea, aa, canonical):
    ec_cert, ec_key = enrolled(ea, canonical)
    ea.ecs.clear()
    pending = R.build_authorization_request(
        ec=ec_cert,
        ec_key=ec_key,
        ea=ea.cert,
        aa=aa.cert,
        permissions=R.service_permissions(["spatem"]),
        generation_time=GEN,
        random=SeededRandomness(),
    )
    assert R.process_response(pending, aa.handle(pending.body), NOW).code == "unknownits"


@pytest.mark.parametrize("code", R.AUTHORIZATION_RESPONSE_CODES[1:])
def test_every_authorization_response_code_is_named(ea, aa, canonical, code):
    aa.answer = code
    _, pending, answer = authorize(ea, aa, canonical)
    response = R.process_response(pending, answer, NOW)
    assert (response.ok, response.code, response.certificate) == (False, code, None)


@pytest.mark.parametrize(
    "tamper,reason",
    [
        ("request-hash", "request-hash-mismatch"),
        ("other-key", "certificate-key-mismatch"),
        ("wrong-issuer", "certificate-wrong-issuer"),
        ("extra", "certificate-permissions"),
        ("garbage", "decryption-failed"),
    ],
)
def test_authorization_response_refused(ea, aa, canonical, tamper, reason):
    if tamper == "extra":
        aa.grant_extra = [{"psid": 36, "ssp": ("bitmapSsp", b"\x01\xff\xfc")}]
    else:
        aa.tamper = tamper
    _, pending, answer = authorize(ea, aa, canonical)
    with pytest.raises(R.ResponseError) as e:
        R.process_response(pending, answer, NOW)
    assert e.value.reason == reason


def test_response_checked_against_the_trust_store(ea, aa, canonical):
    from rsu.pki import trustlist as T
    from tests.pki import authorities as A

    tlm, root = A.make_tlm(), A.etsi_root()
    store = T.TrustStore.with_anchor(tlm.certificate).with_ectl(A.ectl(tlm, 0, [A.add_rca(root.certificate)]), NOW)
    listed = store.with_ctl(A.rca_ctl(root, 0, [A.add_ea(ea.cert, "http://ea/"), A.add_aa(aa.cert, "http://aa/")]), NOW)
    ec_cert, pending, answer = authorize(ea, aa, canonical)
    assert R.process_response(pending, answer, NOW, listed).ok
    for untrusted in (store, listed.with_crl(A.crl(root, [aa.cert.hashed_id8]), NOW)):
        with pytest.raises(R.ResponseError) as e:
            R.process_response(pending, answer, NOW, untrusted)
        assert e.value.reason == "untrusted-authority"


def test_pending_state_round_trip(ea, canonical):
    pending, answer = enrol(ea, canonical)
    again = R.PendingRequest.from_state(R.PendingRequest.to_state(pending))
    assert again.request_hash == pending.request_hash
    assert R.process_response(again, answer, NOW).ok
    with pytest.raises(R.RequestError) as e:
        R.PendingRequest.from_state({"kind": "enrolment"})
    assert e.value.reason == "bad-state"
