"""Shared helpers of the TS 102 941 client tests: vector paths, ETSI test-PKI keys, seeded randomness."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from rsu.security.certs import Certificate
from rsu.security.keys import private_key_from_bytes

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "pki"
ETSI = VECTORS.parent / "etsi-ats-certs"  # shared with the security tests
EKEYS = VECTORS / "etsi-ats-ekeys"
ECTL_L0 = VECTORS / "ectl" / "eu_ectl_L0_seq22_tlm_8FFE810BDB0D71E6.oer"
CTL_FR_L1 = VECTORS / "ectl" / "fr_l1_ctl_tlm_C8EAAB4C86EBCDD2.oer"
TLM_FR_L1 = VECTORS / "ectl" / "fr_tlm_l1_C8EAAB4C86EBCDD2.cert"


def cert(name: str) -> Certificate:
    return Certificate.load(ETSI / f"{name}.oer")


def signing_key(name: str) -> ec.EllipticCurvePrivateKey:
    return private_key_from_bytes((ETSI / f"{name}.vkey").read_bytes(), cert(name).verification_key[0])


def encryption_key(name: str) -> ec.EllipticCurvePrivateKey:
    return private_key_from_bytes((EKEYS / f"{name}.ekey").read_bytes(), "ecdsaNistP256")


class SeededRandomness:
    """Deterministic stand-in for the system CSPRNG (SHA-256 in counter mode over a seed)."""

    def __init__(self, seed: bytes | str = b"rsu") -> None:
        self._seed = seed.encode() if isinstance(seed, str) else seed
        self._counter = 0
        self.tokens: list[bytes] = []

    def _block(self) -> bytes:
        self._counter += 1
        return hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()

    def token(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += self._block()
        self.tokens.append(out[:n])
        return out[:n]

    def private_key(self, curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
        scalar = int.from_bytes(self._block() + self._block(), "big") % (2**255) + 1
        return ec.derive_private_key(scalar, curve)
