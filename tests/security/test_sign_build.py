"""Signer.sign assembles the signed message from cached parts around the payload: the bytes are the
reference assembly's (ToBeSignedData as ``Signer.tbs_data`` writes it, itself checked against asn1tools
in test_sign_verify.py), and the signature is over the reference digest H(H(tbsData) || H(certificate)).

Over generated payloads (lengths on both sides of the COER long-form boundaries), every ITS-AID of the
catalog, generation times, both signer forms, inline P2PCD requests and a requested certificate, on
both curves rsu signs with. ECDSA signatures are randomised, so the message up to the signature is
compared byte for byte and the signature is verified against the reference digest.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsu import catalog
from rsu.security.keys import verify_digest
from rsu.security.sign import Signer

CURVES = ("ecdsaNistP256", "ecdsaBrainpoolP256r1")


@pytest.fixture(scope="module")
def signers(test_pki):
    out = {}
    for curve in CURVES:
        issued = test_pki.at(catalog.SPATEM, curve=curve)
        out[curve] = Signer(issued.certificate, issued.key)
    return out


def reference_message(
    signer: Signer, payload: bytes, psid: int, t: int, with_certificate: bool, inline=(), requested=None
) -> tuple[bytes, bytes]:
    """(message up to the signature's r and s, digest signed), assembled as before the parts were cached."""
    tbs = signer.tbs_data(payload, psid, t, inline_p2pcd_request=inline, requested_certificate=requested)
    cert = signer.certificate
    h = cert.curve.hash_name
    digest = hashlib.new(h, hashlib.new(h, tbs).digest() + cert.digest(h)).digest()
    signer_field = b"\x81\x01\x01" + cert.raw if with_certificate else b"\x80" + cert.hashed_id8
    sig_tag = {"ecdsaNistP256": 0x80, "ecdsaBrainpoolP256r1": 0x81}[cert.curve.name]
    return bytes((3, 0x81, 0x00)) + tbs + signer_field + bytes((sig_tag, 0x80)), digest


def _check(signer: Signer, payload: bytes, psid: int, t: int, with_certificate: bool, inline=(), requested=None):
    got = signer.sign(
        payload,
        psid,
        t,
        with_certificate=with_certificate,
        inline_p2pcd_request=inline,
        requested_certificate=requested,
    )
    head, digest = reference_message(signer, payload, psid, t, with_certificate, inline, requested)
    n = signer.certificate.curve.size
    assert len(got) == len(head) + 2 * n
    assert got[: len(head)] == head
    r, s = int.from_bytes(got[-2 * n : -n], "big"), int.from_bytes(got[-n:], "big")
    assert verify_digest(signer.certificate.public_key, signer.certificate.curve, digest, r, s)


payloads = st.one_of(
    st.binary(max_size=300), st.integers(120, 135).map(bytes), st.integers(250, 260).map(bytes), st.just(bytes(70000))
)


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(
    payload=payloads,
    kind=st.sampled_from(catalog.MESSAGES),
    t=st.integers(0, 2**64 - 1),
    with_certificate=st.booleans(),
    curve=st.sampled_from(CURVES),
)
def test_cached_parts_give_the_reference_message(signers, payload, kind, t, with_certificate, curve):
    signer = signers[curve]
    _check(signer, payload, kind.its_aid, t, with_certificate)
    _check(signer, payload, kind.its_aid, t, with_certificate)  # the cached headerInfo start again


@settings(max_examples=20, derandomize=True, database=None, deadline=None)
@given(
    payload=st.binary(max_size=200),
    inline=st.lists(st.binary(min_size=3, max_size=3), max_size=4),
    requested=st.booleans(),
    with_certificate=st.booleans(),
)
def test_p2pcd_headers_give_the_reference_message(signers, test_pki, payload, inline, requested, with_certificate):
    signer = signers["ecdsaNistP256"]
    cert = test_pki.aa.certificate if requested else None
    if not inline and cert is None:
        inline = [b"\x01\x02\x03"]
    _check(signer, payload, catalog.SPATEM.its_aid, 123456789, with_certificate, tuple(inline), cert)


def test_a_psid_beyond_one_octet(signers):
    """A psid of two or more octets (none in the catalog today) is written in full."""
    for psid in (0x80, 0x4001, 0x20407F, 2**32 - 1):
        _check(signers["ecdsaNistP256"], b"\x02\x04\x00", psid, 42, False)


def test_signed_messages_verify(service, verifier, codec, test_pki):
    """The service's signatures over a real SPATEM pass the verifier (both signer forms)."""
    import json
    from pathlib import Path

    from rsu.security import ssp
    from rsu.security.request import SignRequest

    example = Path(__file__).resolve().parents[2] / "config" / "examples" / "spatem-4arm-intersection.json"
    _, value = codec.from_jer(json.loads(example.read_text()), catalog.SPATEM)
    pdu = codec.encode(value, catalog.SPATEM)
    for with_certificate in (True, None):
        data = service.sign(SignRequest(ssp.required(catalog.SPATEM, value), pdu, 0, with_certificate))
        result = verifier.verify(data, catalog.SPATEM)
        assert result.ok, result.reason
        assert result.payload == pdu
