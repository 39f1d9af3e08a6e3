"""ECDSA keys and signatures in their IEEE 1609.2 forms (curve points, r/s), via ``cryptography``.

Supported curves: NIST P-256 and brainpoolP256r1 (SHA-256), brainpoolP384r1 and
NIST P-384 (SHA-384; verification of foreign certificates only, rsu signs with
256-bit curves).

Private key files: PEM (PKCS#8, as written by ``rsu pki init``) or the raw
big-endian scalar used by the ETSI test material (``*.vkey``, 32 or 48 bytes; the
curve then comes from the certificate). A key file must not be readable by group
or others (mode 0600 or stricter): :func:`load_private_key` refuses it otherwise.
Key material never appears in an exception message or a log line.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)


class KeyMaterialError(Exception):
    """A key cannot be loaded or used (message never contains key material)."""


class SigningKey(Protocol):
    """A private key that signs: ``cryptography``'s ``EllipticCurvePrivateKey`` or a key store's handle
    (:class:`rsu.pki.keystore.KeyHandle`, which cannot be exported)."""

    @property
    def curve(self) -> ec.EllipticCurve: ...

    def public_key(self) -> ec.EllipticCurvePublicKey: ...

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm, /) -> bytes: ...


@dataclass(frozen=True)
class Curve:
    name: str  # PublicVerificationKey alternative, e.g. "ecdsaNistP256"
    signature_alt: str  # Signature alternative, e.g. "ecdsaNistP256Signature"
    ec_curve: type[ec.EllipticCurve]
    size: int  # field size in bytes (32 / 48)
    hash_name: str  # "sha256" / "sha384" (HashAlgorithm identifier)

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    @cached_property
    def prehashed(self) -> ec.ECDSA:
        """The signature algorithm over a digest of this curve's hash (immutable: made once per curve)."""
        return ec.ECDSA(Prehashed(hashes.SHA256() if self.hash_name == "sha256" else hashes.SHA384()))


CURVES: dict[str, Curve] = {
    c.name: c
    for c in (
        Curve("ecdsaNistP256", "ecdsaNistP256Signature", ec.SECP256R1, 32, "sha256"),
        Curve("ecdsaBrainpoolP256r1", "ecdsaBrainpoolP256r1Signature", ec.BrainpoolP256R1, 32, "sha256"),
        Curve("ecdsaBrainpoolP384r1", "ecdsaBrainpoolP384r1Signature", ec.BrainpoolP384R1, 48, "sha384"),
        Curve("ecdsaNistP384", "ecdsaNistP384Signature", ec.SECP384R1, 48, "sha384"),
    )
}
BY_SIGNATURE_ALT: dict[str, Curve] = {c.signature_alt: c for c in CURVES.values()}
KEY_TYPES = {"p256": "ecdsaNistP256", "brainpoolp256r1": "ecdsaBrainpoolP256r1"}  # CLI names -> curve


def curve_of(private_key: SigningKey | ec.EllipticCurvePublicKey) -> Curve:
    for c in CURVES.values():
        if isinstance(private_key.curve, c.ec_curve):
            return c
    raise KeyMaterialError(f"unsupported curve {private_key.curve.name}")


def public_key_from_point(curve: Curve, point: tuple[str, Any]) -> ec.EllipticCurvePublicKey:
    """EccP256CurvePoint / EccP384CurvePoint CHOICE value -> public key. KeyMaterialError if unusable."""
    alt, value = point
    if alt == "compressed-y-0":
        encoded = b"\x02" + value
    elif alt == "compressed-y-1":
        encoded = b"\x03" + value
    elif alt in ("uncompressedP256", "uncompressedP384"):
        encoded = b"\x04" + value["x"] + value["y"]
    else:
        raise KeyMaterialError(f"a public key cannot be given as {alt}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve.ec_curve(), encoded)
    except ValueError:
        raise KeyMaterialError(f"{curve.name} public key is not a point on the curve") from None


def point_of_public_key(public_key: ec.EllipticCurvePublicKey) -> tuple[str, bytes]:
    """Public key -> canonical (compressed) curve point CHOICE value."""
    raw = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    return ("compressed-y-0" if raw[0] == 2 else "compressed-y-1", raw[1:])


def sign_digest(private_key: SigningKey, curve: Curve, digest: bytes) -> tuple[int, int]:
    """ECDSA over an already-computed digest; returns (r, s)."""
    return decode_dss_signature(private_key.sign(digest, curve.prehashed))


def verify_digest(public_key: ec.EllipticCurvePublicKey, curve: Curve, digest: bytes, r: int, s: int) -> bool:
    try:
        public_key.verify(encode_dss_signature(r, s), digest, curve.prehashed)
        return True
    except (InvalidSignature, ValueError):
        return False


def signature_value(curve: Curve, r: int, s: int) -> tuple[str, dict[str, Any]]:
    """(r, s) -> Signature CHOICE value with rSig as x-only (the canonical form)."""
    n = curve.size
    return (curve.signature_alt, {"rSig": ("x-only", r.to_bytes(n, "big")), "sSig": s.to_bytes(n, "big")})


def signature_rs(signature: tuple[str, Any]) -> tuple[Curve, int, int]:
    """Signature CHOICE value -> (curve, r, s). rSig may be x-only or compressed (x is r)."""
    alt, value = signature
    curve = BY_SIGNATURE_ALT.get(alt)
    if curve is None:
        raise KeyMaterialError(f"unsupported signature type {alt}")
    r_alt, r_val = value["rSig"]
    if r_alt in ("x-only", "compressed-y-0", "compressed-y-1"):
        r = int.from_bytes(r_val, "big")
    elif r_alt.startswith("uncompressed"):
        r = int.from_bytes(r_val["x"], "big")
    else:
        raise KeyMaterialError(f"unusable rSig form {r_alt}")
    return curve, r, int.from_bytes(value["sSig"], "big")


def generate_private_key(curve_name: str = "ecdsaNistP256") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVES[curve_name].ec_curve())


def check_key_file_mode(path: Path) -> None:
    """Refuse a private key file that group or others may read or write."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError(
            f"{path}: private key file is accessible by group/others "
            f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}"
        )


def load_private_key(
    path: str | os.PathLike[str], curve_name: str | None = None, *, check_mode: bool = True
) -> ec.EllipticCurvePrivateKey:
    """Load a PEM (PKCS#8 / SEC1) or raw-scalar private key file.

    ``curve_name`` is needed for a raw scalar (it comes from the matching certificate).
    """
    p = Path(path)
    try:
        if check_mode:
            check_key_file_mode(p)
        data = p.read_bytes()
    except FileNotFoundError:
        raise KeyMaterialError(f"{p}: no such key file") from None
    except PermissionError:
        raise KeyMaterialError(f"{p}: permission denied") from None
    return private_key_from_bytes(data, curve_name, label=str(p))


def private_key_from_bytes(
    data: bytes, curve_name: str | None = None, *, label: str = "key"
) -> ec.EllipticCurvePrivateKey:
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise KeyMaterialError(f"{label}: not a readable unencrypted PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyMaterialError(f"{label}: not an elliptic-curve key")
        curve_of(key)
        return key
    if curve_name is None:
        raise KeyMaterialError(f"{label}: raw key needs the curve of its certificate")
    curve = CURVES[curve_name]
    if len(data) != curve.size:
        raise KeyMaterialError(f"{label}: raw {curve.name} key must be {curve.size} bytes, got {len(data)}")
    try:
        return ec.derive_private_key(int.from_bytes(data, "big"), curve.ec_curve())
    except ValueError:
        raise KeyMaterialError(f"{label}: scalar out of range for {curve.name}") from None


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_private_key(path: str | os.PathLike[str], key: ec.EllipticCurvePrivateKey) -> None:
    """Write a PEM key file created with mode 0600 (never world-readable, not even briefly)."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, private_key_pem(key))
    finally:
        os.close(fd)


def same_public_key(a: ec.EllipticCurvePublicKey, b: ec.EllipticCurvePublicKey) -> bool:
    f = serialization.PublicFormat.UncompressedPoint
    return a.public_bytes(serialization.Encoding.X962, f) == b.public_bytes(serialization.Encoding.X962, f)
