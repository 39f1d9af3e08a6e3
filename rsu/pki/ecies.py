"""ECIES key wrapping and AES-128-CCM for TS 102 941 requests and responses (sans-I/O).

IEEE 1609.2 §5.3.5 as profiled by TS 102 941 (facts §3)::

    k, N      fresh AES-128 key and 12-byte nonce
    C         AES-128-CCM(k, N, plaintext), 16-byte tag appended, no associated data
    Z         ECDH x-coordinate between a fresh ephemeral key and the recipient's
              encryption key (same curve: NIST P-256 or brainpoolP256r1)
    P1        SHA-256 of the recipient certificate as received (certRecipInfo)
    ke || km  KDF2-SHA256(Z, P1), 16 + 32 bytes
    c         k XOR ke
    t         HMAC-SHA256(km, c), left 16 bytes (MAC1)

A response comes back under the same ``k`` with a ``pskRecipInfo`` naming it:
HashedId8 of COER ``SymmetricEncryptionKey.aes128Ccm(k)`` = SHA-256(0x80 || k), last 8.

Randomness is injected (:class:`Randomness`): tests pass a seeded one, the client
the system's. Every failure is an :class:`EciesError` with a short ``reason``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from rsu.pki import coer
from rsu.pki.errors import PkiError
from rsu.security.certs import Certificate
from rsu.security.keys import CURVES, KeyMaterialError, point_of_public_key, public_key_from_point

AES_KEY_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16

# EncryptedDataEncryptionKey / BasePublicEncryptionKey alternative -> signing-curve record (same curve)
ECIES_CURVES = {"eciesNistP256": CURVES["ecdsaNistP256"], "eciesBrainpoolP256r1": CURVES["ecdsaBrainpoolP256r1"]}


class EciesError(PkiError):
    """Encrypted data that cannot be built or opened. ``reason`` is a short stable name."""


class Randomness(Protocol):
    """Where fresh secrets come from (injected so that tests are deterministic)."""

    def token(self, n: int) -> bytes: ...

    def private_key(self, curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey: ...


class SystemRandomness:
    """The operating system's CSPRNG."""

    def token(self, n: int) -> bytes:
        return os.urandom(n)

    def private_key(self, curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(curve)


# ---------------------------------------------------------------------------- primitives


def kdf2_sha256(z: bytes, p1: bytes, length: int) -> bytes:
    """IEEE 1363a KDF2 with SHA-256: SHA256(Z || counter32 || P1) for counter 1, 2, ..."""
    out = b""
    counter = 1
    while len(out) < length:
        out += hashlib.sha256(z + counter.to_bytes(4, "big") + p1).digest()
        counter += 1
    return out[:length]


def mac1(km: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 truncated to its left 16 bytes."""
    return hmac.new(km, message, hashlib.sha256).digest()[:16]


def ccm_encrypt(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    """AES-128-CCM, returns ciphertext || 16-byte tag."""
    return AESCCM(key, tag_length=TAG_BYTES).encrypt(nonce, plaintext, None)


def ccm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise EciesError("malformed", f"AES-CCM nonce of {len(nonce)} bytes (expected 12)")
    try:
        return AESCCM(key, tag_length=TAG_BYTES).decrypt(nonce, ciphertext, None)
    except InvalidTag:
        raise EciesError("ccm-authentication-failed", "AES-CCM tag does not verify") from None
    except ValueError as e:
        raise EciesError("malformed", f"AES-CCM: {e}") from None


def psk_id(aes_key: bytes) -> bytes:
    """PreSharedKeyRecipientInfo naming ``aes_key``: HashedId8 of COER SymmetricEncryptionKey."""
    return hashlib.sha256(b"\x80" + aes_key).digest()[-8:]


# ---------------------------------------------------------------------------- key wrapping


@dataclass(frozen=True)
class WrappedKey:
    """EciesP256EncryptedKey plus the curve alternative it travels under."""

    alternative: str  # "eciesNistP256" | "eciesBrainpoolP256r1"
    v: tuple  # EccP256CurvePoint of the ephemeral public key
    c: bytes
    t: bytes

    def value(self) -> tuple:
        return (self.alternative, {"v": self.v, "c": self.c, "t": self.t})


def _shared_x(private_key: ec.EllipticCurvePrivateKey, public_key: ec.EllipticCurvePublicKey) -> bytes:
    return private_key.exchange(ec.ECDH(), public_key)


def wrap_key(
    aes_key: bytes,
    alternative: str,
    recipient_key: ec.EllipticCurvePublicKey,
    p1: bytes,
    ephemeral: ec.EllipticCurvePrivateKey,
) -> WrappedKey:
    z = _shared_x(ephemeral, recipient_key)
    ke_km = kdf2_sha256(z, p1, 48)
    c = bytes(a ^ b for a, b in zip(aes_key, ke_km[:16]))
    return WrappedKey(alternative, point_of_public_key(ephemeral.public_key()), c, mac1(ke_km[16:], c))


def unwrap_key(wrapped: WrappedKey, recipient_private: ec.EllipticCurvePrivateKey, p1: bytes) -> bytes:
    curve = ECIES_CURVES.get(wrapped.alternative)
    if curve is None:
        raise EciesError("unsupported-algorithm", f"key encryption {wrapped.alternative}")
    if not isinstance(recipient_private.curve, curve.ec_curve):
        raise EciesError("unsupported-algorithm", f"{wrapped.alternative} does not match the private key's curve")
    try:
        v = public_key_from_point(curve, wrapped.v)
    except KeyMaterialError as e:
        raise EciesError("malformed", f"ephemeral key: {e}") from None
    ke_km = kdf2_sha256(_shared_x(recipient_private, v), p1, 48)
    if not hmac.compare_digest(mac1(ke_km[16:], wrapped.c), wrapped.t):
        raise EciesError("ecies-tag-mismatch", "ECIES authentication tag does not verify")
    return bytes(a ^ b for a, b in zip(wrapped.c, ke_km[:16]))


# ---------------------------------------------------------------------------- EncryptedData


def recipient_encryption_key(cert: Certificate) -> tuple[str, ec.EllipticCurvePublicKey]:
    """(ECIES alternative, public key) of a certificate's encryptionKey; EciesError if it has none."""
    enc = cert.value["toBeSigned"].get("encryptionKey")
    if enc is None:
        raise EciesError("no-encryption-key", f"certificate {cert.hashed_id8.hex()} has no encryptionKey")
    alt, point = enc["publicKey"]
    curve = ECIES_CURVES.get(alt)
    if curve is None or enc.get("supportedSymmAlg", "aes128Ccm") != "aes128Ccm":
        raise EciesError("unsupported-algorithm", f"encryption key {alt}/{enc.get('supportedSymmAlg')}")
    try:
        return alt, public_key_from_point(curve, point)
    except KeyMaterialError as e:
        raise EciesError("malformed", f"certificate encryption key: {e}") from None


@dataclass(frozen=True)
class Encrypted:
    """An encrypted Ieee1609Dot2Data and the AES key its response will come back under."""

    data: bytes
    aes_key: bytes


def encrypt_for_certificate(plaintext: bytes, recipient: Certificate, random: Randomness) -> Encrypted:
    """EtsiTs103097Data-Encrypted-Unicast for ``recipient``'s encryptionKey (certRecipInfo)."""
    alt, recipient_key = recipient_encryption_key(recipient)
    aes_key, nonce = random.token(AES_KEY_BYTES), random.token(NONCE_BYTES)
    ephemeral = random.private_key(recipient_key.curve)
    p1 = recipient.digest("sha256")
    wrapped = wrap_key(aes_key, alt, recipient_key, p1, ephemeral)
    recipients = [("certRecipInfo", {"recipientId": recipient.hashed_id8, "encKey": wrapped.value()})]
    return Encrypted(_encrypted_data(recipients, aes_key, nonce, plaintext), aes_key)


def encrypt_with_psk(plaintext: bytes, aes_key: bytes, nonce: bytes) -> bytes:
    """EncryptedData under a pre-shared key (what an EA/AA answers with)."""
    return _encrypted_data([("pskRecipInfo", psk_id(aes_key))], aes_key, nonce, plaintext)


def _encrypted_data(recipients: list, aes_key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    ciphertext = ("aes128ccm", {"nonce": nonce, "ccmCiphertext": ccm_encrypt(aes_key, nonce, plaintext)})
    return coer.encode(
        "Ieee1609Dot2Data",
        {"protocolVersion": 3, "content": ("encryptedData", {"recipients": recipients, "ciphertext": ciphertext})},
    )


def parse_encrypted(data: bytes) -> tuple[tuple, bytes, bytes]:
    """Ieee1609Dot2Data with exactly one recipient -> (recipient CHOICE value, nonce, ccmCiphertext)."""
    try:
        value = coer.decode("Ieee1609Dot2Data", bytes(data))
    except coer.CoerError as e:
        raise EciesError("malformed", str(e)) from None
    if value["protocolVersion"] != 3:
        raise EciesError("malformed", f"protocolVersion {value['protocolVersion']} (expected 3)")
    alt, content = value["content"]
    if alt != "encryptedData":
        raise EciesError("not-encrypted", f"content is {alt}, not encryptedData")
    if len(content["recipients"]) != 1:
        raise EciesError("recipient-count", f"{len(content['recipients'])} recipients (unicast: exactly 1)")
    c_alt, c = content["ciphertext"]
    if c_alt != "aes128ccm":
        raise EciesError("unsupported-algorithm", f"symmetric cipher {c_alt}")
    return content["recipients"][0], c["nonce"], c["ccmCiphertext"]


def decrypt_with_private_key(
    data: bytes, recipient: Certificate | bytes, private_key: ec.EllipticCurvePrivateKey
) -> tuple[bytes, bytes]:
    """Open data sent to ``recipient`` (its certificate, or its raw COER bytes) -> (plaintext, aes_key)."""
    raw = recipient.raw if isinstance(recipient, Certificate) else bytes(recipient)
    return decrypt_with_p1(data, hashlib.sha256(raw).digest(), private_key)


def decrypt_with_p1(data: bytes, p1: bytes, private_key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    """As :func:`decrypt_with_private_key`, given P1 = SHA-256 of the recipient certificate."""
    (r_alt, info), nonce, ciphertext = parse_encrypted(data)
    if r_alt != "certRecipInfo":
        raise EciesError("unsupported-recipient", f"recipient is {r_alt}, not certRecipInfo")
    if info["recipientId"] != p1[-8:]:
        raise EciesError("not-the-recipient", f"recipientId {info['recipientId'].hex()} is not {p1[-8:].hex()}")
    k_alt, k = info["encKey"]
    aes_key = unwrap_key(WrappedKey(k_alt, k["v"], k["c"], k["t"]), private_key, p1)
    return ccm_decrypt(aes_key, nonce, ciphertext), aes_key


def decrypt_with_psk(data: bytes, aes_key: bytes) -> bytes:
    """Open a response encrypted under the AES key of our request."""
    (r_alt, info), nonce, ciphertext = parse_encrypted(data)
    if r_alt != "pskRecipInfo":
        raise EciesError("unsupported-recipient", f"recipient is {r_alt}, not pskRecipInfo")
    if info != psk_id(aes_key):
        raise EciesError("not-the-recipient", f"pskRecipInfo {info.hex()} does not name our request key")
    return ccm_decrypt(aes_key, nonce, ciphertext)
