"""Real certificates and signed frames from vanetza, veloce and the ETSI ATS: parse, hash, verify."""

from __future__ import annotations

import hashlib

import pytest
from sechelp import VECTORS

from rsu import clock
from rsu.clock import ManualClock
from rsu.security import coer
from rsu.security.certs import Certificate, ssp_within_range
from rsu.security.keys import private_key_from_bytes, signature_rs, verify_digest
from rsu.security.sign import Signer
from rsu.security.verify import Reason, TrustStore, Verifier, parse_signed

ETSI = VECTORS / "etsi-ats-certs"
CERT_FILES = sorted(ETSI.glob("*.oer")) + sorted((VECTORS / "veloce").glob("*.cert"))
MESSAGES = [
    VECTORS / "vanetza" / "cam_signed_digest.oer",
    VECTORS / "vanetza" / "cam_signed_with_at_cert.oer",
    VECTORS / "veloce" / "cam_signed_with_at_cert.oer",
]
ETSI_2019 = clock.time32_to_posix(480000000)  # 2019-03 inside the ETSI test ATs' validity


@pytest.mark.parametrize("path", CERT_FILES, ids=lambda p: p.name)
def test_certificate_round_trips_byte_for_byte(path):
    data = path.read_bytes()
    cert = Certificate.from_bytes(data)
    assert coer.encode("EtsiTs103097Certificate", cert.value) == data
    assert cert.tbs_bytes == coer.encode("ToBeSignedCertificate", cert.value["toBeSigned"])


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_signed_message_round_trips_byte_for_byte(path):
    data = path.read_bytes()
    assert coer.encode("EtsiTs103097Data-Signed", coer.decode("EtsiTs103097Data-Signed", data)) == data
    msg = parse_signed(data)
    assert msg.psid == 36 and data[3 : 3 + len(msg.tbs_bytes)] == msg.tbs_bytes


@pytest.mark.parametrize(
    "name, h8",
    [
        ("etsi-ats-certs/CERT_IUT_A_RCA.oer", "c6f1125e19b175ee"),
        ("etsi-ats-certs/CERT_IUT_A_AA.oer", "34556d34931e5e5c"),
        ("etsi-ats-certs/CERT_IUT_A_AT.oer", "c2fe8b6161528326"),
        ("etsi-ats-certs/CERT_TS_A_AT.oer", "5a6ffa3d8352ca01"),
        ("etsi-ats-certs/CERT_IUT_A_B_AT.oer", "ba7523292c51fc94"),
        ("veloce/AT_0.cert", "6d39e6d3a206591c"),
        ("veloce/AT_examples.cert", "9fb3c43e3287452b"),
    ],
)
def test_hashed_id8_vectors(name, h8):
    cert = Certificate.load(VECTORS / name)
    assert cert.hashed_id8.hex() == h8
    assert cert.hashed_id3.hex() == h8[-6:]


def test_hashed_id8_of_the_vanetza_at_and_sha384_issuer_digest():
    msg = parse_signed((VECTORS / "vanetza" / "cam_signed_with_at_cert.oer").read_bytes())
    assert Certificate.from_bytes(msg.signer_cert_bytes).hashed_id8.hex() == "127cff384ce0b890"
    rca = Certificate.load(VECTORS / "veloce" / "RCA.cert")  # brainpoolP384r1 root
    aa = Certificate.load(VECTORS / "veloce" / "AA.cert")
    assert aa.issuer == ("sha384AndDigest", bytes.fromhex("a1333b3f8489f688"))
    assert rca.hashed_id8_for("sha384") == aa.issuer_id
    assert aa.signature_valid(rca)  # SHA-384 on both hashes, P-384 key


def test_signature_hash_vector_data_hash_first_then_signer_hash():
    data = (VECTORS / "vanetza" / "cam_signed_with_at_cert.oer").read_bytes()
    msg = parse_signed(data)
    cert = Certificate.from_bytes(msg.signer_cert_bytes)
    h_tbs = hashlib.sha256(msg.tbs_bytes).digest()
    h_cert = hashlib.sha256(msg.signer_cert_bytes).digest()
    digest = hashlib.sha256(h_tbs + h_cert).digest()
    assert digest.hex() == "acd753f0c5aac12da4b8aaaa0ac09d7d08a2837269702104828d30352c4e98aa"
    curve, r, s = signature_rs(msg.signature)
    assert verify_digest(cert.public_key, curve, digest, r, s)
    assert not verify_digest(cert.public_key, curve, hashlib.sha256(h_cert + h_tbs).digest(), r, s)


@pytest.mark.parametrize("path", MESSAGES[1:], ids=lambda p: p.parent.name)
def test_real_signed_cam_verifies(path):
    data = path.read_bytes()
    t = clock.time64_to_posix(parse_signed(data).header["generationTime"])
    res = Verifier(ManualClock(t + 0.5)).verify(data)
    assert res.ok, res.detail
    assert res.signature_valid and res.chain == "not-checked" and res.psid == 36


def test_digest_signed_vector_asks_for_the_certificate():
    data = (VECTORS / "vanetza" / "cam_signed_digest.oer").read_bytes()
    res = Verifier(ManualClock(clock.time64_to_posix(501427754847055))).verify(data)
    assert res.reason is Reason.SIGNER_UNKNOWN
    assert res.signer_id.hex() == "0ba2d2fb6a0c62d2" and res.request_certificate.hex() == "0c62d2"


def test_etsi_test_pki_chain_and_trust_store():
    trust = TrustStore.from_directory(ETSI)
    rca = Certificate.load(ETSI / "CERT_IUT_A_RCA.oer")
    aa = Certificate.load(ETSI / "CERT_IUT_A_AA.oer")
    at = Certificate.load(ETSI / "CERT_IUT_A_AT.oer")
    assert rca.signature_valid(None) and aa.signature_valid(rca) and at.signature_valid(aa)
    assert trust.roots[rca.hashed_id8] is not None and trust.issuer_of(at).hashed_id8 == aa.hashed_id8
    assert not at.signature_valid(rca)
    # the ETSI root's issue ranges for the IS services
    assert aa.issue_range(137) == (
        "bitmapSspRange",
        {"sspValue": bytes.fromhex("01e0"), "sspBitmask": bytes.fromhex("ff1f")},
    )


def _etsi_signer(name):
    cert = Certificate.load(ETSI / f"{name}.oer")
    key = private_key_from_bytes((ETSI / f"{name}.vkey").read_bytes(), cert.curve.name)
    return Signer(cert, key)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("CERT_IUT_A_AT", None),
        ("CERT_IUT_A_B_AT", None),  # brainpoolP256r1
        ("CERT_IUT_A1_AT", Reason.CERT_EXPIRED),  # 2018 + 1 year
        ("CERT_IUT_A2_AT", Reason.CERT_NOT_YET_VALID),  # starts 2020
        ("CERT_IUT_A3_AT", Reason.PSID_NOT_PERMITTED),  # no CA permission
    ],
)
def test_etsi_test_ats_sign_and_verify_in_2019(name, reason):
    clk = ManualClock(ETSI_2019)
    data = _etsi_signer(name).sign(
        b"\x02\x02\x00\x00\x00\x01payload", 36, clock.time64(clk.now()), with_certificate=True
    )
    res = Verifier(clk, TrustStore.from_directory(ETSI)).verify(data)
    assert res.reason is reason, res.detail
    if reason is None:
        assert res.chain == "valid"


def test_etsi_root_ranges_accept_our_full_ssps_for_tlm_rlt_ivi():
    from rsu import catalog
    from rsu.security import ssp

    aa = Certificate.load(ETSI / "CERT_IUT_A_AA.oer")
    for kind in (catalog.SPATEM, catalog.MAPEM, catalog.IVIM):
        full = ssp.full(kind, ssp.ServiceProvider.of("GB", 31) if kind is catalog.IVIM else None)
        assert ssp_within_range(full, aa.issue_range(kind.its_aid)), kind.name
