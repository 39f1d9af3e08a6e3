"""Signed data for TS 102 941 messages: build (PoP, outer, EC signature) and open (responses, lists).

Signature input as for every IEEE 1609.2 signature (facts §4.1)::

    H( H(COER tbsData) || H(signer certificate as received) )    signer digest / certificate
    H( H(COER tbsData) || H("") )                                signer self

H is SHA-256 for 256-bit keys and SHA-384 for P-384 keys. headerInfo carries psid and
generationTime only (§4.2). Parsing reuses :func:`rsu.security.verify.parse_signed`
without the facilities-message profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from rsu import catalog
from rsu.pki.errors import PkiError
from rsu.security import coer
from rsu.security.certs import Certificate, CertificateError
from rsu.security.keys import (
    KeyMaterialError,
    SigningKey,
    curve_of,
    sign_digest,
    signature_rs,
    signature_value,
    verify_digest,
)
from rsu.security.verify import ParseError, SignedMessage, parse_signed

PSID_CRL, PSID_SCR, PSID_CTL = catalog.ITS_AID_CRL, catalog.ITS_AID_SCR, catalog.ITS_AID_CTL
_HASH_ALG = {"sha256": 0, "sha384": 1}


class SignedDataError(PkiError):
    """Signed data that does not parse or verify. ``reason`` is a short stable name."""


def signer_hashed_id8(cert: Certificate) -> bytes:
    """HashedId8 naming ``cert`` as a signer or issuer (SHA-384 for a P-384 key, else SHA-256)."""
    return cert.hashed_id8_for(cert.id_hash_name)


def sign(
    private_key: SigningKey,
    *,
    psid: int,
    generation_time: int,
    payload: bytes | None = None,
    ext_data_hash: bytes | None = None,
    signer: str = "self",
    certificate: Certificate | None = None,
) -> bytes:
    """Ieee1609Dot2Data signedData over ``payload`` (unsecuredData) or an external SHA-256 hash.

    ``signer``: "self", "digest" or "certificate" (the last two need ``certificate``).
    """
    curve = curve_of(private_key)
    if (payload is None) == (ext_data_hash is None):
        raise ValueError("exactly one of payload and ext_data_hash")
    body = (
        {"data": {"protocolVersion": 3, "content": ("unsecuredData", payload)}}
        if payload is not None
        else {"extDataHash": ("sha256HashedData", ext_data_hash)}
    )
    tbs = coer.encode(
        "ToBeSignedData", {"payload": body, "headerInfo": {"psid": psid, "generationTime": generation_time}}
    )
    if signer == "self":
        signer_bytes, signer_hash = b"\x82", curve.hash(b"")
    elif certificate is None:
        raise ValueError(f"signer {signer} needs the certificate")
    elif signer == "digest":
        signer_bytes, signer_hash = b"\x80" + signer_hashed_id8(certificate), certificate.digest(curve.hash_name)
    elif signer == "certificate":
        signer_bytes, signer_hash = b"\x81\x01\x01" + certificate.raw, certificate.digest(curve.hash_name)
    else:
        raise ValueError(f"unknown signer form {signer}")
    r, s = sign_digest(private_key, curve, curve.hash(curve.hash(tbs) + signer_hash))
    return (
        bytes((3, 0x81, _HASH_ALG[curve.hash_name]))
        + tbs
        + signer_bytes
        + coer.encode("Signature", signature_value(curve, r, s))
    )


@dataclass
class Opened:
    """A parsed PKI SignedData (not yet verified)."""

    message: SignedMessage

    @property
    def psid(self) -> int:
        return self.message.psid

    @property
    def generation_time(self) -> int | None:
        return self.message.header.get("generationTime")

    @property
    def signer_form(self) -> str:
        return self.message.signer[0]

    @property
    def signer_digest(self) -> bytes | None:
        return self.message.signer[1] if self.signer_form == "digest" else None

    @property
    def signer_certificate(self) -> Certificate:
        if self.message.signer_cert_bytes is None:
            raise SignedDataError("malformed", "signer is not a certificate")
        try:
            return Certificate.from_bytes(self.message.signer_cert_bytes)
        except CertificateError as e:
            raise SignedDataError("signer-certificate-invalid", str(e)) from None

    @property
    def payload(self) -> bytes:
        data = self.message.tbs["payload"].get("data")
        if data is None or data["content"][0] != "unsecuredData":
            raise SignedDataError("malformed", "payload is not unsecuredData")
        return data["content"][1]

    @property
    def ext_data_hash(self) -> bytes | None:
        h = self.message.tbs["payload"].get("extDataHash")
        return h[1] if h is not None and h[0] == "sha256HashedData" else None

    def verify(self, public_key: ec.EllipticCurvePublicKey, signer_cert: Certificate | None = None) -> bool:
        """Signature check with ``public_key``; ``signer_cert`` enters the hash unless the signer is self."""
        try:
            curve, r, s = signature_rs(self.message.signature)
            if curve is not curve_of(public_key) or curve.hash_name != self.message.hash_id:
                return False
            if self.signer_form == "self":
                second = curve.hash(b"")
            elif signer_cert is None:
                return False
            else:
                second = signer_cert.digest(curve.hash_name)
            digest = curve.hash(curve.hash(self.message.tbs_bytes) + second)
            return verify_digest(public_key, curve, digest, r, s)
        except KeyMaterialError:
            return False


def open_signed(data: bytes) -> Opened:
    """Parse an Ieee1609Dot2Data signedData (any signer form, any payload form)."""
    try:
        msg = parse_signed(bytes(data), check_profile=False)
    except ParseError as e:
        raise SignedDataError("malformed" if e.reason.value == "malformed" else "not-signed", e.detail) from None
    if "generationTime" not in msg.header:
        raise SignedDataError("malformed", "headerInfo.generationTime absent")
    # The signature is not covered by itself: insist on its canonical encoding, so that a lenient
    # decoder (asn1tools ignores the open-type length of the P-384 alternatives) cannot make two
    # different byte strings the same accepted message.
    try:
        canonical = coer.encode("Signature", msg.signature)
    except coer.CoerError as e:
        raise SignedDataError("malformed", str(e)) from None
    if not msg.raw.endswith(canonical):
        raise SignedDataError("malformed", "signature is not canonically encoded")
    return Opened(msg)
