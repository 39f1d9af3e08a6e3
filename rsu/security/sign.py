"""Signing: facilities PDU bytes (UPER) in, EtsiTs103097Data-Signed bytes (COER) out.

One :class:`Signer` per authorization ticket. Everything constant per AT is
prepared once: the signer field in both forms (digest / certificate), the
certificate hash that enters every signature, the signature tag, the start of
headerInfo per psid. Per message the work is: the tbsData parts around the
payload (a few bytes each), two SHA-256 (the first over the parts, the payload
not copied) and one ECDSA signature, and one join of the whole message.

Signed structure (TS 103 097 §5.2, IEEE 1609.2 §6.3)::

    Ieee1609Dot2Data { protocolVersion 3, content signedData: SignedData {
        hashId sha256,
        tbsData { payload { data { 3, unsecuredData <pdu> } },
                  headerInfo { psid, generationTime [, inlineP2pcdRequest] [, requestedCertificate] } },
        signer digest <HashedId8> | certificate { <AT> },
        signature ecdsaNistP256Signature | ecdsaBrainpoolP256r1Signature { rSig x-only, sSig } } }

    signature = ECDSA( H( H(COER tbsData) || H(COER signer certificate) ) )

The common header (psid + generationTime only) is written by hand; a header with
the inline P2PCD extensions goes through the asn1tools encoder. A test checks that
both give the asn1tools bytes.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any

from rsu.security import coer
from rsu.security.certs import Certificate
from rsu.security.keys import KeyMaterialError, SigningKey, curve_of, same_public_key, sign_digest

_SIG_TAG = {"ecdsaNistP256": 0x80, "ecdsaBrainpoolP256r1": 0x81}  # Signature root alternatives
_HASH_ID = {"sha256": 0x00}  # HashAlgorithm; rsu signs with 256-bit curves only


class Signer:
    """Signs with one AT and its private key. Pure function of its inputs: no clock, no I/O."""

    def __init__(self, certificate: Certificate, private_key: SigningKey) -> None:
        curve = certificate.curve
        if curve is None or curve.name not in _SIG_TAG:
            raise KeyMaterialError(
                f"rsu signs with NIST P-256 or brainpoolP256r1 keys, not {certificate.verification_key[0]}"
            )
        if curve_of(private_key) is not curve or not same_public_key(private_key.public_key(), certificate.public_key):
            raise KeyMaterialError("private key does not match the certificate's verification key")
        self.certificate = certificate
        self._key = private_key
        self._curve = curve
        self._h = curve.hash_name
        self._cert_hash = certificate.digest(self._h)
        self._prefix = bytes((3, 0x81, _HASH_ID[self._h]))
        self._signer_digest = b"\x80" + certificate.hashed_id8
        self._signer_cert = b"\x81\x01\x01" + certificate.raw
        self._sig_prefix = bytes((_SIG_TAG[curve.name], 0x80))  # alternative, rSig x-only
        self._size = curve.size
        self._hash = getattr(hashlib, self._h, None) or functools.partial(hashlib.new, self._h)
        self._headers: dict[int, bytes] = {}  # psid -> HeaderInfo's first octets (see _header_start)

    @property
    def hashed_id8(self) -> bytes:
        return self.certificate.hashed_id8

    def __repr__(self) -> str:  # never shows the key
        return f"Signer(AT {self.hashed_id8.hex()})"

    def tbs_data(
        self,
        payload: bytes,
        psid: int,
        generation_time: int,
        *,
        inline_p2pcd_request: Sequence[bytes] = (),
        requested_certificate: Certificate | None = None,
    ) -> bytes:
        """COER ToBeSignedData for ``payload`` (the UPER facilities PDU)."""
        data = b"\x40\x03\x80" + coer.length_prefix(len(payload)) + payload
        if not inline_p2pcd_request and requested_certificate is None:
            header = b"\x40" + coer.psid_bytes(psid) + generation_time.to_bytes(8, "big")
        else:
            value: dict[str, Any] = {"psid": psid, "generationTime": generation_time}
            if inline_p2pcd_request:
                value["inlineP2pcdRequest"] = list(inline_p2pcd_request)
            if requested_certificate is not None:
                value["requestedCertificate"] = requested_certificate.value
            header = coer.encode("HeaderInfo", value)
        return data + header

    def sign(
        self,
        payload: bytes,
        psid: int,
        generation_time: int,
        *,
        with_certificate: bool = False,
        inline_p2pcd_request: Sequence[bytes] = (),
        requested_certificate: Certificate | None = None,
    ) -> bytes:
        """Sign ``payload`` (UPER facilities PDU) -> EtsiTs103097Data-Signed (COER).

        ``generation_time`` is Time64 (TAI µs since 2004, see :func:`rsu.clock.time64`).
        ``with_certificate`` selects the signer form (full AT instead of its HashedId8).
        """
        head = b"\x40\x03\x80" + coer.length_prefix(len(payload))  # tbsData up to the payload
        if not inline_p2pcd_request and requested_certificate is None:
            tail = self._header_start(psid) + generation_time.to_bytes(8, "big")  # headerInfo
        else:
            tail = self.tbs_data(
                b"",
                psid,
                generation_time,
                inline_p2pcd_request=inline_p2pcd_request,
                requested_certificate=requested_certificate,
            )[4:]
        inner = self._hash(head)  # H(tbsData) over its parts: the payload is not copied to be hashed
        inner.update(payload)
        inner.update(tail)
        digest = self._hash(inner.digest() + self._cert_hash).digest()
        r, s = sign_digest(self._key, self._curve, digest)
        n = self._size
        return b"".join(
            (
                self._prefix,
                head,
                payload,
                tail,
                self._signer_cert if with_certificate else self._signer_digest,
                self._sig_prefix,
                r.to_bytes(n, "big"),
                s.to_bytes(n, "big"),
            )
        )

    def _header_start(self, psid: int) -> bytes:
        """COER of HeaderInfo up to generationTime (presence bitmap, psid), kept per psid."""
        start = self._headers.get(psid)
        if start is None:
            start = b"\x40" + coer.psid_bytes(psid)
            if len(self._headers) < 64:  # the catalog's ITS-AIDs: a handful
                self._headers[psid] = start
        return start
