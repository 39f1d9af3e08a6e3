"""ECIES / KDF2 / MAC1 / AES-128-CCM against IEEE 1609.2 Annex D, and the Bouncy Castle enrolment request."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rsu.pki import coer, ecies, signed
from rsu.security.keys import CURVES, private_key_from_bytes, public_key_from_point
from tests.pki.helpers import VECTORS, SeededRandomness, cert, encryption_key

ANNEX_D = json.loads((VECTORS / "ieee1609dot2-annexD.json").read_text())
BC = VECTORS / "bc-etsi-enrolment-request"


def _hex(s: str) -> bytes:
    return bytes.fromhex(s)


@pytest.mark.parametrize("v", ANNEX_D["aes128ccm"], ids=lambda v: v["id"])
def test_annex_d_aes_ccm(v):
    ct = ecies.ccm_encrypt(_hex(v["key"]), _hex(v["nonce"]), _hex(v["plaintext"]))
    assert ct == _hex(v["ciphertext_with_tag"])
    assert ecies.ccm_decrypt(_hex(v["key"]), _hex(v["nonce"]), ct) == _hex(v["plaintext"])


@pytest.mark.parametrize("v", ANNEX_D["kdf2_sha256"], ids=lambda v: v["id"])
def test_annex_d_kdf2(v):
    out = _hex(v["out"])
    assert ecies.kdf2_sha256(_hex(v["z"]), _hex(v["p1"]), len(out)) == out


@pytest.mark.parametrize("v", ANNEX_D["mac1_hmac_sha256_trunc16"], ids=lambda v: v["id"])
def test_annex_d_mac1(v):
    assert ecies.mac1(_hex(v["key"]), _hex(v["msg"])) == _hex(v["tag"])


@pytest.mark.parametrize("v", ANNEX_D["ecies_p256"], ids=lambda v: v["id"])
def test_annex_d_ecies(v):
    curve = ec.SECP256R1()
    eph = ec.derive_private_key(int(v["ephemeral_private"], 16), curve)
    rec = ec.derive_private_key(int(v["recipient_private"], 16), curve)
    assert eph.public_key().public_numbers().x == int(v["ephemeral_public_x"], 16)
    assert rec.public_key().public_numbers().y == int(v["recipient_public_y"], 16)
    p1 = _hex(v["p1_recipient_hash"])
    wrapped = ecies.wrap_key(_hex(v["aes_key"]), "eciesNistP256", rec.public_key(), p1, eph)
    assert wrapped.c == _hex(v["c"]) and wrapped.t == _hex(v["t"])
    if "shared_secret_x" in v:
        assert eph.exchange(ec.ECDH(), rec.public_key()) == _hex(v["shared_secret_x"])
    assert ecies.unwrap_key(wrapped, rec, p1) == _hex(v["aes_key"])
    bad = ecies.WrappedKey(wrapped.alternative, wrapped.v, wrapped.c, bytes(16))
    with pytest.raises(ecies.EciesError) as e:
        ecies.unwrap_key(bad, rec, p1)
    assert e.value.reason == "ecies-tag-mismatch"


# ------------------------------------------------------------------ the Bouncy Castle enrolment request


def _bc_decrypt(data: bytes):
    key = private_key_from_bytes(_hex((BC / "ea_encryption_private_key.hex").read_text().strip()), "ecdsaNistP256")
    p1 = _hex((BC / "p1_sha256_of_ea_certificate.hex").read_text().strip())
    return ecies.decrypt_with_p1(data, p1, key)


def test_bc_request_decrypts_to_the_known_plaintext():
    plaintext, aes_key = _bc_decrypt((BC / "enrolment_request_encrypted.oer").read_bytes())
    assert aes_key == _hex((BC / "expected_aes_key.hex").read_text().strip())
    assert plaintext == (BC / "decrypted_signed_enrolment_request.oer").read_bytes()
    assert ecies.psk_id(aes_key).hex() == "4e10c8c77b90ced0"  # facts §3.2, the response's pskRecipInfo


def test_bc_request_every_field_and_pop():
    plaintext, _ = _bc_decrypt((BC / "enrolment_request_encrypted.oer").read_bytes())
    outer = signed.open_signed(plaintext)
    assert (outer.psid, outer.signer_form, outer.message.hash_id) == (623, "self", "sha256")
    data = outer.payload
    assert data[:2] == b"\x01\x80"  # EtsiTs102941Data v1, enrolmentRequest
    pop = signed.open_signed(data[2:])
    assert (pop.psid, pop.signer_form) == (623, "self")
    inner = coer.decode("InnerEcRequest", pop.payload)
    assert inner["itsId"] == b"ETSI-ITS-001"
    assert inner["certificateFormat"] == 1
    vk_alt, point = inner["publicKeys"]["verificationKey"]
    assert vk_alt == "ecdsaNistP256" and point[0] == "compressed-y-1"
    assert "encryptionKey" not in inner["publicKeys"]
    attrs = inner["requestedSubjectAttributes"]
    assert attrs == {
        "id": ("name", "ETSI-ITS-001"),
        "validityPeriod": {"start": 493907545, "duration": ("hours", 120)},
        "region": ("identifiedRegion", [("countryOnly", 250), ("countryOnly", 380)]),
        "assuranceLevel": b"\x00",
        "appPermissions": [{"psid": 623, "ssp": ("bitmapSsp", b"\x01\xc0")}],
    }
    key = public_key_from_point(CURVES[vk_alt], point)
    assert pop.verify(key)
    # the PoP must fail after flipping any byte of its tbsData
    tbs = pop.message.tbs_bytes
    start = data[2:].index(tbs) + 2
    for i in range(len(tbs)):
        tampered = bytearray(data)
        tampered[start + i] ^= 0x01
        try:
            again = signed.open_signed(bytes(tampered[2:]))
        except signed.SignedDataError:
            continue
        assert not again.verify(key), f"tbs byte {i} flipped and the PoP still verifies"


def test_bc_request_refuses_any_flipped_byte():
    raw = (BC / "enrolment_request_encrypted.oer").read_bytes()
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x80
        with pytest.raises(ecies.EciesError):
            _bc_decrypt(bytes(tampered))


@pytest.mark.parametrize("recipient", ["CERT_TS_A_EA", "CERT_IUT_A_AA"])
def test_encrypt_to_etsi_authority_and_back(recipient):
    """Our encryption, opened with the authority's encryption key; the response comes back under psk."""
    rnd = SeededRandomness(recipient)
    target = cert(recipient)
    enc = ecies.encrypt_for_certificate(b"hello PKI", target, rnd)
    outer = coer.decode("Ieee1609Dot2Data", enc.data)
    ((alt, info),) = outer["content"][1]["recipients"]
    assert alt == "certRecipInfo" and info["recipientId"] == target.hashed_id8
    assert info["encKey"][0] == "eciesNistP256"
    plaintext, key = ecies.decrypt_with_private_key(enc.data, target, encryption_key(recipient))
    assert (plaintext, key) == (b"hello PKI", enc.aes_key)
    answer = ecies.encrypt_with_psk(b"answer", key, bytes(12))
    assert ecies.decrypt_with_psk(answer, enc.aes_key) == b"answer"
    with pytest.raises(ecies.EciesError) as e:
        ecies.decrypt_with_psk(answer, bytes(16))
    assert e.value.reason == "not-the-recipient"
    with pytest.raises(ecies.EciesError) as e:  # sent to the EA, opened as if we were the AA
        other = "CERT_IUT_A_AA" if recipient == "CERT_TS_A_EA" else "CERT_TS_A_EA"
        ecies.decrypt_with_private_key(enc.data, cert(other), encryption_key(other))
    assert e.value.reason == "not-the-recipient"


def test_brainpool_recipient_round_trip():
    """A brainpoolP256r1 encryption key travels as eciesBrainpoolP256r1 and opens again."""
    rnd = SeededRandomness("bp")
    recipient = ec.derive_private_key(123456789, ec.BrainpoolP256R1())
    p1 = bytes(32)
    wrapped = ecies.wrap_key(
        b"k" * 16, "eciesBrainpoolP256r1", recipient.public_key(), p1, rnd.private_key(ec.BrainpoolP256R1())
    )
    assert ecies.unwrap_key(wrapped, recipient, p1) == b"k" * 16
    with pytest.raises(ecies.EciesError) as e:
        ecies.unwrap_key(ecies.WrappedKey("eciesNistP256", wrapped.v, wrapped.c, wrapped.t), recipient, p1)
    assert e.value.reason == "unsupported-algorithm"


def test_certificate_without_encryption_key_is_refused():
    with pytest.raises(ecies.EciesError) as e:
        ecies.encrypt_for_certificate(b"x", cert("CERT_IUT_A_RCA"), SeededRandomness())
    assert e.value.reason == "no-encryption-key"


def test_brainpool_certificate_end_to_end():
    """A certificate whose encryptionKey is brainpoolP256r1: eciesBrainpoolP256r1 on the wire, opens again."""
    from rsu.security.keys import point_of_public_key
    from rsu.security.pki import Issued, issue_certificate
    from tests.pki.helpers import signing_key

    enc = ec.derive_private_key(987654321, ec.BrainpoolP256R1())
    sig = ec.derive_private_key(123123123, ec.BrainpoolP256R1())
    tbs = {
        "id": ("name", "bp EA"),
        "cracaId": b"\x00\x00\x00",
        "crlSeries": 0,
        "validityPeriod": {"start": 480000000, "duration": ("years", 1)},
        "appPermissions": [{"psid": 623, "ssp": ("bitmapSsp", b"\x01\x0e")}],
        "encryptionKey": {
            "supportedSymmAlg": "aes128Ccm",
            "publicKey": ("eciesBrainpoolP256r1", point_of_public_key(enc.public_key())),
        },
        "verifyKeyIndicator": ("verificationKey", ("ecdsaBrainpoolP256r1", point_of_public_key(sig.public_key()))),
    }
    ea = issue_certificate(tbs, Issued(cert("CERT_IUT_A_RCA"), signing_key("CERT_IUT_A_RCA")))
    sent = ecies.encrypt_for_certificate(b"brainpool", ea, SeededRandomness("bp-e2e"))
    ((alt, info),) = coer.decode("Ieee1609Dot2Data", sent.data)["content"][1]["recipients"]
    assert info["encKey"][0] == "eciesBrainpoolP256r1"
    assert ecies.decrypt_with_private_key(sent.data, ea, enc) == (b"brainpool", sent.aes_key)
    with pytest.raises(ecies.EciesError) as e:  # a NIST key cannot open it
        ecies.decrypt_with_private_key(sent.data, ea, encryption_key("CERT_TS_A_EA"))
    assert e.value.reason == "unsupported-algorithm"
