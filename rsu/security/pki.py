"""A test PKI: root CA, authorization authority (AA) and one AT per service, as COER files.

For running the daemon and the tests without a real PKI. Certificates follow the
ETSI shape (B.1/B.3 of the security facts): explicit, canonical (compressed keys,
x-only rSig), root ``issuer self``, AA and ATs named by ``sha256AndDigest``,
root ``certIssuePermissions`` with ``minChainLength 2``, AT with ``id none``,
``cracaId 000000``, ``crlSeries 0``. Keys are PEM files with mode 0600.

Layout written by :func:`init_pki`::

    DIR/root.oer  DIR/root.key       self-signed root (trust anchor)
    DIR/aa.oer    DIR/aa.key         AA, issued by the root
    DIR/at/<service>[-<n>].oer/.key  ATs, issued by the AA
    DIR/pki.json                     what was made (no key material)

``DIR`` itself works as a trust store directory (``--trust DIR``) and ``DIR/at`` as
an AT pool directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from rsu import catalog
from rsu import clock as clockmod
from rsu.security import coer
from rsu.security import ssp as sspmod
from rsu.security.certs import Certificate
from rsu.security.keys import (
    CURVES,
    generate_private_key,
    point_of_public_key,
    sign_digest,
    signature_value,
    write_private_key,
)

CRL_PSID, CTL_PSID, SCR_PSID = catalog.ITS_AID_CRL, catalog.ITS_AID_CTL, catalog.ITS_AID_SCR


@dataclass
class Issued:
    certificate: Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)


def _tbs(
    *,
    name: str | None,
    start: int,
    hours: int,
    public_key: ec.EllipticCurvePublicKey,
    curve_name: str,
    app: list[dict[str, Any]] | None = None,
    issue: list[dict[str, Any]] | None = None,
    region: tuple[str, Any] | None = None,
) -> dict[str, Any]:
    tbs: dict[str, Any] = {
        "id": ("name", name) if name else ("none", None),
        "cracaId": b"\x00\x00\x00",
        "crlSeries": 0,
        "validityPeriod": {"start": start, "duration": ("hours", hours)},
    }
    if region is not None:
        tbs["region"] = region
    if app is not None:
        tbs["appPermissions"] = app
    if issue is not None:
        tbs["certIssuePermissions"] = issue
    tbs["verifyKeyIndicator"] = ("verificationKey", (curve_name, point_of_public_key(public_key)))
    return tbs


def issue_certificate(
    tbs: dict[str, Any], issuer: Issued | None, subject_key: ec.EllipticCurvePrivateKey | None = None
) -> Certificate:
    """Sign a ToBeSignedCertificate value with the issuer's key (``None``: self-signed with subject_key)."""
    tbs_bytes = coer.encode("ToBeSignedCertificate", tbs)
    issuer_field: tuple[str, Any]
    if issuer is None:
        if subject_key is None:
            raise ValueError("a self-signed certificate is signed with its own key: give subject_key")
        curve = CURVES[tbs["verifyKeyIndicator"][1][0]]
        h = curve.hash_name
        digest = hashlib.new(h, hashlib.new(h, tbs_bytes).digest() + hashlib.new(h, b"").digest()).digest()
        issuer_field = ("self", h)
        key = subject_key
    else:
        curve = issuer.certificate.key_curve
        h = curve.hash_name
        digest = hashlib.new(h, hashlib.new(h, tbs_bytes).digest() + issuer.certificate.digest(h)).digest()
        issuer_field = ("sha384AndDigest" if h == "sha384" else "sha256AndDigest", issuer.certificate.hashed_id8_for(h))
        key = issuer.key
    r, s = sign_digest(key, curve, digest)
    value = {
        "version": 3,
        "type": "explicit",
        "issuer": issuer_field,
        "toBeSigned": tbs,
        "signature": signature_value(curve, r, s),
    }
    return Certificate.from_bytes(coer.encode("EtsiTs103097Certificate", value))


def issue_range(kind: catalog.MessageKind) -> dict[str, Any]:
    """BitmapSspRange letting an AA grant any permission of the service (version and reserved bits fixed)."""
    lay = sspmod.layout(kind)
    mask = bytes([0xFF] + lay.reserved_masks()[1:])
    value = bytearray(lay.length)
    value[0] = lay.version
    for p in lay.permissions:
        value[p.octet] |= p.mask
    return {"psid": kind.its_aid, "sspRange": ("bitmapSspRange", {"sspValue": bytes(value), "sspBitmask": mask})}


def make_root(
    start: int, *, hours: int = 5 * 8760, curve_name: str = "ecdsaNistP256", name: str = "rsu test root"
) -> Issued:
    key = generate_private_key(curve_name)
    ranges = [issue_range(k) for k in catalog.MESSAGES]
    tbs = _tbs(
        name=name,
        start=start,
        hours=hours,
        public_key=key.public_key(),
        curve_name=curve_name,
        app=[{"psid": CRL_PSID, "ssp": ("bitmapSsp", b"\x01")}, {"psid": CTL_PSID, "ssp": ("bitmapSsp", b"\x01\x38")}],
        issue=[{"subjectPermissions": ("explicit", ranges), "minChainLength": 2}],
    )
    return Issued(issue_certificate(tbs, None, key), key)


def make_aa(
    root: Issued, start: int, *, hours: int = 3 * 8760, curve_name: str = "ecdsaNistP256", name: str = "rsu test AA"
) -> Issued:
    key = generate_private_key(curve_name)
    ranges = [issue_range(k) for k in catalog.MESSAGES]
    tbs = _tbs(
        name=name,
        start=start,
        hours=hours,
        public_key=key.public_key(),
        curve_name=curve_name,
        app=[{"psid": SCR_PSID, "ssp": ("bitmapSsp", b"\x01\x32")}],
        issue=[{"subjectPermissions": ("explicit", ranges)}],
    )
    return Issued(issue_certificate(tbs, root), key)


def make_at(
    aa: Issued,
    start: int,
    permissions: Iterable[tuple[int, bytes | None]],
    *,
    hours: int = 168,
    curve_name: str = "ecdsaNistP256",
    region: tuple[str, Any] | None = None,
) -> Issued:
    key = generate_private_key(curve_name)
    app = [{"psid": psid, **({"ssp": ("bitmapSsp", ssp)} if ssp is not None else {})} for psid, ssp in permissions]
    tbs = _tbs(
        name=None, start=start, hours=hours, public_key=key.public_key(), curve_name=curve_name, app=app, region=region
    )
    return Issued(issue_certificate(tbs, aa), key)


def parse_ssp_option(text: str, provider: sspmod.ServiceProvider) -> tuple[catalog.MessageKind, bytes]:
    """``SERVICE=perm,perm`` or ``SERVICE=hex:0180`` or ``SERVICE=`` (no permission bits)."""
    if "=" not in text:
        raise ValueError(f"--ssp {text!r}: expected SERVICE=PERMISSIONS")
    name, _, spec = text.partition("=")
    kind = catalog.by_name(name.strip())
    spec = spec.strip()
    if spec.startswith("hex:"):
        return kind, bytes.fromhex(spec[4:])
    perms = [p.strip() for p in spec.split(",") if p.strip()]
    lay = sspmod.layout(kind)
    return kind, sspmod.encode(kind, perms, provider if lay.provider_octets else None)


def parse_provider(text: str) -> sspmod.ServiceProvider:
    """``GB:31`` -> ServiceProvider (ITA2 country + issuer id)."""
    country, _, issuer = text.partition(":")
    if not issuer:
        raise ValueError(f"provider {text!r}: expected COUNTRY:ID, e.g. GB:31")
    return sspmod.ServiceProvider.of(country, int(issuer))


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def init_pki(
    directory: str | Path,
    *,
    now: float,
    at_hours: int = 168,
    ats_per_service: int = 1,
    key_type: str = "ecdsaNistP256",
    provider: sspmod.ServiceProvider | None = None,
    ssp_overrides: dict[str, bytes] | None = None,
    start: float | None = None,
    services: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Create the test PKI in ``directory``. Returns the manifest (also written to pki.json)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "at").mkdir(exist_ok=True)
    provider = provider or sspmod.ServiceProvider.of("GB", 31)
    ssp_overrides = ssp_overrides or {}
    t_start = clockmod.time32(start if start is not None else now - 3600)
    root = make_root(t_start - 86400, curve_name=key_type)
    aa = make_aa(root, t_start - 3600, curve_name=key_type)
    manifest: dict[str, Any] = {"root": {}, "aa": {}, "ats": []}
    for label, issued in (("root", root), ("aa", aa)):
        _write(folder / f"{label}.oer", issued.certificate.raw)
        write_private_key(folder / f"{label}.key", issued.key)
        manifest[label] = {"certificate": f"{label}.oer", "hashedId8": issued.certificate.hashed_id8.hex()}
    kinds = [catalog.by_name(s) for s in services] if services else list(catalog.MESSAGES)
    for kind in kinds:
        lay = sspmod.layout(kind)
        ssp = ssp_overrides.get(kind.name) or sspmod.full(kind, provider if lay.provider_octets else None)
        for n in range(ats_per_service):
            # successive ATs overlap by half their validity, so a pool can rotate without a gap
            at_start = t_start + n * (at_hours * 3600 // 2)
            at = make_at(aa, at_start, [(kind.its_aid, ssp)], hours=at_hours, curve_name=key_type)
            stem = kind.name if ats_per_service == 1 else f"{kind.name}-{n + 1}"
            _write(folder / "at" / f"{stem}.oer", at.certificate.raw)
            write_private_key(folder / "at" / f"{stem}.key", at.key)
            manifest["ats"].append(
                {
                    "service": lay.service,
                    "message": kind.pdu,
                    "itsAid": kind.its_aid,
                    "certificate": f"at/{stem}.oer",
                    "hashedId8": at.certificate.hashed_id8.hex(),
                    "ssp": ssp.hex(),
                    "start": clockmod.iso_utc(at.certificate.start_posix),
                    "end": clockmod.iso_utc(at.certificate.end_posix),
                }
            )
    manifest["keyType"] = key_type
    (folder / "pki.json").write_text(json.dumps(manifest, indent=2) + "\n")
    os.chmod(folder / "pki.json", 0o644)
    return manifest
