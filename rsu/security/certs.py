"""EtsiTs103097Certificate: parsing, HashedId8, validity, permissions, and the certificate signature check.

Layer: certificates as COER bytes (files, or the signer field of a message).

A :class:`Certificate` keeps the bytes it was built from; every hash (HashedId8,
the signer hash that enters a message signature, the issuer hash of a child
certificate) is taken over those bytes and computed once per certificate.

Time: validity is kept in the certificate's own scale (Time32 = TAI seconds since
2004-01-01, see :mod:`rsu.clock`). ``Duration.years`` is taken as 31 556 952 s
(365.2425 days, the IEEE 1609.2 definition); vanetza uses 365 days. No ETSI
certificate seen uses ``years``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from rsu import clock
from rsu.security import coer
from rsu.security.keys import (
    CURVES,
    Curve,
    KeyMaterialError,
    public_key_from_point,
    signature_rs,
    verify_digest,
)

DURATION_SECONDS = {
    "microseconds": 1e-6,
    "milliseconds": 1e-3,
    "seconds": 1,
    "minutes": 60,
    "hours": 3600,
    "sixtyHours": 216000,
    "years": 31556952,
}


class CertificateError(Exception):
    """Bytes that are not a usable EtsiTs103097Certificate (the message says why)."""


def hashed_id8(data: bytes, hash_name: str = "sha256") -> bytes:
    """HashedId8 = the last 8 octets of H(data)."""
    return hashlib.new(hash_name, data).digest()[-8:]


def hashed_id3(data: bytes, hash_name: str = "sha256") -> bytes:
    return hashlib.new(hash_name, data).digest()[-3:]


@dataclass(eq=False)
class Certificate:
    """One explicit certificate (root, AA or AT) and what rsu needs from it."""

    raw: bytes
    value: dict[str, Any] = field(repr=False)  # the decoded COER value (asn1tools value form)
    tbs_bytes: bytes = field(repr=False)  # COER of toBeSigned, sliced from ``raw``
    source: str | None = None  # file name, for messages

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bytes(cls, data: bytes, source: str | None = None) -> Certificate:
        data = bytes(data)
        return cls._checked(data, _decode(data), source)

    @classmethod
    def _checked(cls, data: bytes, decoded: tuple[Any, int, int], source: str | None) -> Certificate:
        value, tbs_start, tbs_end = decoded
        cert = cls(data, value, data[tbs_start:tbs_end], source)
        cert._check_profile()
        return cert

    @classmethod
    def load(cls, path: str | Path) -> Certificate:
        """A certificate file; its decode is cached by its bytes (:mod:`rsu.security.certcache`: no asn1tools
        at a start whose files were decoded before), the checks run as for :meth:`from_bytes`."""
        from rsu.security import certcache

        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise CertificateError(f"{p}: {e.strerror or e}") from None
        try:
            return cls._checked(data, certcache.decoded(data, _decode), str(p))
        except CertificateError as e:
            raise CertificateError(f"{p}: {e}") from None

    def _check_profile(self) -> None:
        v, tbs = self.value, self.value["toBeSigned"]
        if v["type"] != "explicit":
            raise CertificateError("implicit certificates are not used in ETSI C-ITS")
        if "signature" not in v:
            raise CertificateError("explicit certificate without signature")
        if tbs["verifyKeyIndicator"][0] != "verificationKey":
            raise CertificateError("explicit certificate without verificationKey")
        if tbs["id"][0] in ("linkageData", "binaryId"):
            raise CertificateError(f"certificate id {tbs['id'][0]} is not allowed by TS 103 097")
        for absent in ("certRequestPermissions", "canRequestRollover"):
            if absent in tbs:
                raise CertificateError(f"{absent} is not allowed by TS 103 097")
        if not any(k in tbs for k in ("appPermissions", "certIssuePermissions")):
            raise CertificateError("certificate grants no permissions")
        if self.curve is None:
            raise CertificateError(f"unsupported verification key {self.verification_key[0]}")

    # ------------------------------------------------------------------ identity
    def digest(self, hash_name: str = "sha256") -> bytes:
        """H(certificate bytes), cached per hash algorithm."""
        cache: dict[str, bytes] = self.__dict__.setdefault("_digests", {})
        d = cache.get(hash_name)
        if d is None:
            d = cache[hash_name] = hashlib.new(hash_name, self.raw).digest()
        return d

    @cached_property
    def hashed_id8(self) -> bytes:
        """HashedId8 with SHA-256 (how messages and sha256AndDigest issuers name it)."""
        return self.digest("sha256")[-8:]

    @cached_property
    def hashed_id3(self) -> bytes:
        return self.digest("sha256")[-3:]

    def hashed_id8_for(self, hash_name: str) -> bytes:
        return self.digest(hash_name)[-8:]

    @property
    def id_hash_name(self) -> str:
        """Hash used when this certificate is named as an issuer / hashed as signer (its key's hash)."""
        return self.key_curve.hash_name

    @property
    def name(self) -> str | None:
        alt, v = self.value["toBeSigned"]["id"]
        return v if alt == "name" else None

    # ------------------------------------------------------------------ issuer
    # read for every chain walked on a received message: kept, as the validity below
    @cached_property
    def issuer(self) -> tuple[str, Any]:
        issuer: tuple[str, Any] = self.value["issuer"]
        return issuer

    @cached_property
    def is_self_signed(self) -> bool:
        return self.issuer[0] == "self"

    @cached_property
    def issuer_id(self) -> bytes | None:
        """HashedId8 of the issuer (None for a self-signed root)."""
        alt, v = self.issuer
        return None if alt == "self" else v

    @property
    def issuer_hash_name(self) -> str:
        alt, v = self.issuer
        if alt == "self":
            return str(v)  # the HashAlgorithm identifier (an enumeration: a str)
        return "sha384" if alt == "sha384AndDigest" else "sha256"

    # ------------------------------------------------------------------ validity
    # validity is read on every message signed or verified: kept (a certificate's value never changes)
    @cached_property
    def start(self) -> int:
        """validityPeriod.start (Time32, TAI s since 2004)."""
        start: int = self.value["toBeSigned"]["validityPeriod"]["start"]
        return start

    @cached_property
    def duration_seconds(self) -> float:
        alt, n = self.value["toBeSigned"]["validityPeriod"]["duration"]
        seconds: float = n * DURATION_SECONDS[alt]
        return seconds

    @cached_property
    def end(self) -> float:
        """End of validity (Time32 scale, exclusive)."""
        return self.start + self.duration_seconds

    def valid_at_its(self, its_seconds: float) -> bool:
        return self.start <= its_seconds < self.end

    def valid_at(self, posix: float) -> bool:
        return self.valid_at_its(clock.posix_to_its_seconds(posix))

    def seconds_to_expiry(self, posix: float) -> float:
        return self.end - clock.posix_to_its_seconds(posix)

    @property
    def start_posix(self) -> float:
        return clock.time32_to_posix(self.start)

    @property
    def end_posix(self) -> float:
        return clock.its_seconds_to_posix(self.end)

    # ------------------------------------------------------------------ permissions
    @cached_property
    def app_permissions(self) -> dict[int, bytes | None]:
        """psid -> SSP bytes (bitmapSsp or opaque), None when the entry carries no SSP."""
        out: dict[int, bytes | None] = {}
        for entry in self.value["toBeSigned"].get("appPermissions", []):
            ssp = entry.get("ssp")
            out[entry["psid"]] = ssp[1] if ssp is not None else None
        return out

    @property
    def issue_permissions(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.value["toBeSigned"].get("certIssuePermissions", [])
        return groups

    def issue_range(self, psid: int) -> tuple[str, Any] | None:
        """The SspRange (or ("all", None)) under which this CA may issue ``psid``; None if it may not.

        Only groups whose eeType includes app are considered (ATs are app certificates).
        """
        fallback: tuple[str, Any] | None = None
        for group in self.issue_permissions:
            ee = group.get("eeType", (b"\x80", 8))
            if not (ee[0][0] & 0x80):
                continue
            alt, perms = group["subjectPermissions"]
            if alt == "all":
                fallback = ("all", None)
                continue
            for entry in perms:
                if entry["psid"] == psid:
                    rng: tuple[str, Any] = entry.get("sspRange", ("all", None))
                    return rng
        return fallback

    @property
    def region(self) -> tuple[str, Any] | None:
        region: tuple[str, Any] | None = self.value["toBeSigned"].get("region")
        return region

    # ------------------------------------------------------------------ keys and signature
    @property
    def verification_key(self) -> tuple[str, Any]:
        key: tuple[str, Any] = self.value["toBeSigned"]["verifyKeyIndicator"][1]
        return key

    @cached_property
    def curve(self) -> Curve | None:
        return CURVES.get(self.verification_key[0])

    @property
    def key_curve(self) -> Curve:
        """The curve of the verification key (a supported one: from_bytes checks it)."""
        curve = self.curve
        if curve is None:
            raise CertificateError(f"unsupported verification key {self.verification_key[0]}")
        return curve

    @cached_property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        try:
            return public_key_from_point(self.key_curve, self.verification_key[1])
        except KeyMaterialError as e:
            raise CertificateError(str(e)) from None

    def signed_digest(self, issuer: Certificate | None) -> bytes:
        """The digest the issuer signed: H(H(toBeSigned) || H(issuer cert)), or H('') for self."""
        if issuer is None:
            h = self.issuer_hash_name
            return hashlib.new(h, hashlib.new(h, self.tbs_bytes).digest() + hashlib.new(h, b"").digest()).digest()
        h = issuer.key_curve.hash_name
        return hashlib.new(h, hashlib.new(h, self.tbs_bytes).digest() + issuer.digest(h)).digest()

    def signature_valid(self, issuer: Certificate | None) -> bool:
        """Check this certificate's signature with ``issuer``'s key (``None``: self-signed)."""
        signer = self if issuer is None else issuer
        try:
            curve, r, s = signature_rs(self.value["signature"])
            if curve is not signer.curve:
                return False
            return verify_digest(signer.public_key, curve, self.signed_digest(issuer), r, s)
        except (KeyMaterialError, CertificateError):
            return False

    # ------------------------------------------------------------------ description
    def summary(self) -> dict[str, Any]:
        """JSON-able description (for ``rsu cert show`` and ``rsu decode``)."""
        from rsu.security import ssp as ssp_mod

        issuer_alt, issuer_v = self.issuer
        tbs = self.value["toBeSigned"]
        dur_alt, dur_n = tbs["validityPeriod"]["duration"]
        out: dict[str, Any] = {
            "hashedId8": self.hashed_id8.hex(),
            "id": self.name if self.name is not None else tbs["id"][0],
            "issuer": {"self": issuer_v} if issuer_alt == "self" else {issuer_alt: issuer_v.hex()},
            "validity": {
                "start": self.start,
                "startTime": clock.iso_utc(self.start_posix),
                "duration": {dur_alt: dur_n},
                "end": int(self.end),
                "endTime": clock.iso_utc(self.end_posix),
            },
            "region": _region_json(self.region),
            "verificationKey": self.verification_key[0],
            "appPermissions": [ssp_mod.describe_permission(psid, ssp) for psid, ssp in self.app_permissions.items()],
        }
        if "assuranceLevel" in tbs:
            out["assuranceLevel"] = tbs["assuranceLevel"].hex()
        if self.issue_permissions:
            out["certIssuePermissions"] = [_group_json(g) for g in self.issue_permissions]
        if "encryptionKey" in tbs:
            out["encryptionKey"] = tbs["encryptionKey"]["publicKey"][0]
        return out


def _decode(data: bytes) -> tuple[Any, int, int]:
    """The COER value of a whole EtsiTs103097Certificate and the byte span of its toBeSigned."""
    try:
        value = coer.decode("EtsiTs103097Certificate", data)
        tbs_start, tbs_end = _tbs_span(data)
    except coer.CoerError as e:
        raise CertificateError(f"not a COER certificate: {e}") from None
    return value, tbs_start, tbs_end


def _tbs_span(data: bytes) -> tuple[int, int]:
    """Byte span of toBeSigned inside a COER CertificateBase."""
    # preamble (1 octet: the signature presence bit), version (Uint8), type (ENUMERATED, 1 octet)
    if len(data) < 4:
        raise coer.CoerError("certificate truncated")
    _, after_issuer = coer.decode_prefix("IssuerIdentifier", data, 3)
    _, after_tbs = coer.decode_prefix("ToBeSignedCertificate", data, after_issuer)
    return after_issuer, after_tbs


def _region_json(region: tuple[str, Any] | None) -> Any:
    if region is None:
        return None
    alt, v = region
    if alt == "identifiedRegion":
        return {alt: [{a: b} for a, b in v]}
    return {alt: v}


def _group_json(group: dict[str, Any]) -> dict[str, Any]:
    alt, perms = group["subjectPermissions"]
    out: dict[str, Any] = {
        "minChainLength": group.get("minChainLength", 1),
        "chainLengthRange": group.get("chainLengthRange", 0),
    }
    if alt == "all":
        out["subjectPermissions"] = "all"
    else:
        items = []
        for e in perms:
            rng = e.get("sspRange")
            item: dict[str, Any] = {"psid": e["psid"]}
            if rng is None or rng[0] == "all":
                item["sspRange"] = "all"
            elif rng[0] == "bitmapSspRange":
                item["sspValue"] = rng[1]["sspValue"].hex()
                item["sspBitmask"] = rng[1]["sspBitmask"].hex()
            else:
                item["sspRange"] = {"opaque": [x.hex() for x in rng[1]]}
            items.append(item)
        out["subjectPermissions"] = items
    return out


def ssp_within_range(ssp: bytes | None, rng: tuple[str, Any] | None) -> bool:
    """Is an AT's SSP allowed by an issuer's SspRange (IEEE 1609.2 BitmapSspRange rule)?"""
    if rng is None:
        return False
    alt, v = rng
    if alt == "all":
        return True
    if alt == "opaque":
        return ssp is not None and (ssp in v)
    if alt == "bitmapSspRange":
        value, mask = v["sspValue"], v["sspBitmask"]
        if ssp is None or len(ssp) != len(value):
            return False
        return all((s & m) == (val & m) for s, val, m in zip(ssp, value, mask))
    return False
