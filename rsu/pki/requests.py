"""Enrolment (EC) and authorization (AT) requests and their responses, sans-I/O (facts §5-7).

Build a request, keep the returned :class:`PendingRequest` (it holds the new private key
and the AES key the answer will come back under), send :attr:`PendingRequest.body`
however you like, then hand the answer to :func:`process_response`. Nothing here does I/O,
reads the clock or draws randomness by itself: ``generation_time`` (Time64), ``now``
(POSIX seconds) and a :class:`rsu.pki.ecies.Randomness` are inputs.

Enrolment request (initial: outer signer ``self`` with the canonical key; re-enrolment:
outer signer ``digest`` of the current EC, ``itsId`` = its HashedId8)::

    Encrypted(EA) { Signed(outer) { EtsiTs102941Data { enrolmentRequest:
        Signed(self, new EC key) { InnerEcRequest } } } }

Authorization request (privacy variant, always with proof of possession)::

    Encrypted(AA) { Signed(self, new AT key) { EtsiTs102941Data { authorizationRequest:
        InnerAtRequest { publicKeys, hmacKey, sharedAtRequest,
                         encryptedEcSignature: Encrypted(EA) { Signed(EC digest) {extDataHash} } } } } }

A response is accepted only when every check passes: psk names our AES key, AES-CCM
authenticates, the signer is the EA/AA (digest) and its signature verifies, psid 623,
``requestHash`` = left 16 octets of SHA-256 of the body we sent, the response code, and
for ``ok`` the certificate: issued by the EA/AA (issuer digest and signature), carrying our
new key, permissions within what was asked, valid now. Failures raise
:class:`ResponseError` with a named ``reason``; a non-ok answer is a :class:`Response`
whose ``code`` is the standard's name (e.g. ``its-aa-keysdontmatch``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from rsu import catalog, clock
from rsu.pki import coer, ecies
from rsu.pki.errors import PkiError
from rsu.pki.signed import PSID_SCR, SignedDataError, open_signed, sign, signer_hashed_id8
from rsu.security import ssp as sspmod
from rsu.security.certs import Certificate, CertificateError, ssp_within_range
from rsu.security.keys import (
    CURVES,
    KeyMaterialError,
    SigningKey,
    curve_of,
    point_of_public_key,
    private_key_from_bytes,
    private_key_pem,
    same_public_key,
)

if TYPE_CHECKING:
    from rsu.pki.trustlist import TrustStore

# SCR SSP (psid 623) octet 1 bits, facts §10.1
SCR_ENROLMENT_REQUEST = 0x80
SCR_AUTHORIZATION_REQUEST = 0x40
EC_PERMISSIONS = [{"psid": PSID_SCR, "ssp": ("bitmapSsp", b"\x01\xc0")}]  # what an EC may do, §5.4

ENROLMENT_RESPONSE_CODES = (
    "ok",
    "cantparse",
    "badcontenttype",
    "imnottherecipient",
    "unknownencryptionalgorithm",
    "decryptionfailed",
    "unknownits",
    "invalidsignature",
    "invalidencryptionkey",
    "baditsstatus",
    "incompleterequest",
    "deniedpermissions",
    "invalidkeys",
    "deniedrequest",
)
AUTHORIZATION_RESPONSE_CODES = (
    "ok",
    "its-aa-cantparse",
    "its-aa-badcontenttype",
    "its-aa-imnottherecipient",
    "its-aa-unknownencryptionalgorithm",
    "its-aa-decryptionfailed",
    "its-aa-keysdontmatch",
    "its-aa-incompleterequest",
    "its-aa-invalidencryptionkey",
    "its-aa-outofsyncrequest",
    "its-aa-unknownea",
    "its-aa-invalidea",
    "its-aa-deniedpermissions",
    "aa-ea-cantreachea",
    "ea-aa-cantparse",
    "ea-aa-badcontenttype",
    "ea-aa-imnottherecipient",
    "ea-aa-unknownencryptionalgorithm",
    "ea-aa-decryptionfailed",
    "invalidaa",
    "invalidaasignature",
    "wrongea",
    "unknownits",
    "invalidsignature",
    "invalidencryptionkey",
    "deniedpermissions",
    "deniedtoomanycerts",
)


class RequestError(PkiError):
    """A request that cannot be built (``reason``: no-encryption-key, not-permitted, ...)."""


class ResponseError(PkiError):
    """A response refused. ``reason`` names the failed check (decryption-failed, invalid-signature,
    request-hash-mismatch, wrong-content, profile-violation, certificate-*)."""


@dataclass
class PendingRequest:
    """A request sent (or about to be): what its response is checked against. Keys never shown."""

    kind: str  # "enrolment" | "authorization"
    body: bytes  # the encrypted request, exactly as POSTed
    authority: Certificate  # EA (enrolment) or AA (authorization)
    aes_key: bytes = field(repr=False)
    private_key: SigningKey = field(repr=False)  # the new EC / AT key (a file key, or a key store's handle)
    requested: list[dict] = field(default_factory=list)  # appPermissions asked for
    hmac_key: bytes | None = field(default=None, repr=False)

    @property
    def request_hash(self) -> bytes:
        return hashlib.sha256(self.body).digest()[:16]

    def _file_key(self) -> ec.EllipticCurvePrivateKey:
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            raise RequestError("unsupported", "a key store's key cannot be saved in a request state")
        return self.private_key

    def to_state(self) -> dict:
        """JSON-able state for answering later (offline enrolment). Holds secrets: store it mode 0600."""
        return {
            "kind": self.kind,
            "body": self.body.hex(),
            "authority": self.authority.raw.hex(),
            "aesKey": self.aes_key.hex(),
            "privateKey": private_key_pem(self._file_key()).decode(),
            "requested": [
                {"psid": p["psid"], "ssp": p["ssp"][1].hex() if "ssp" in p else None} for p in self.requested
            ],
        }

    @classmethod
    def from_state(cls, state: dict) -> PendingRequest:
        try:
            requested = [
                {"psid": p["psid"], **({"ssp": ("bitmapSsp", bytes.fromhex(p["ssp"]))} if p["ssp"] is not None else {})}
                for p in state["requested"]
            ]
            return cls(
                state["kind"],
                bytes.fromhex(state["body"]),
                Certificate.from_bytes(bytes.fromhex(state["authority"])),
                bytes.fromhex(state["aesKey"]),
                private_key_from_bytes(state["privateKey"].encode(), label="pending request key"),
                requested,
            )
        except (KeyError, TypeError, ValueError, CertificateError, KeyMaterialError) as e:
            raise RequestError("bad-state", f"pending request state unusable: {type(e).__name__}") from None


@dataclass
class Response:
    """An authenticated answer. ``ok`` iff ``code == "ok"``; then ``certificate`` is checked and ours."""

    kind: str
    code: str
    certificate: Certificate | None = None
    private_key: SigningKey | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.code == "ok"


# ====================================================================== enrolment


def build_enrolment_request(
    *,
    its_id: bytes,
    signing_key: SigningKey,
    ea: Certificate,
    generation_time: int,
    random: ecies.Randomness,
    current_ec: Certificate | None = None,
    key_curve: str = "ecdsaNistP256",
    attributes: dict | None = None,
    new_key: SigningKey | None = None,
) -> PendingRequest:
    """InnerEcRequest with PoP, signed by the canonical key (``current_ec`` None) or the current EC.

    ``its_id``: the canonical identifier (initial enrolment); ignored for re-enrolment, where
    the itsId is the HashedId8 of ``current_ec``. ``attributes`` adds optional
    requestedSubjectAttributes (id, validityPeriod, region, assuranceLevel) to appPermissions.
    ``new_key``: the new EC key (e.g. a :class:`rsu.pki.keystore.KeyHandle`); default a fresh key
    from ``random`` on ``key_curve``.
    """
    if current_ec is not None:
        _require_scr_right(current_ec, SCR_ENROLMENT_REQUEST, "sign enrolment requests")
        _require_valid(current_ec, generation_time)
        its_id = signer_hashed_id8(current_ec)
    if new_key is None:
        new_key = random.private_key(CURVES[key_curve].ec_curve())
    key_curve = curve_of(new_key).name
    requested = [dict(p) for p in EC_PERMISSIONS]
    inner = {
        "itsId": bytes(its_id),
        "certificateFormat": 1,
        "publicKeys": {"verificationKey": (key_curve, point_of_public_key(new_key.public_key()))},
        "requestedSubjectAttributes": {**(attributes or {}), "appPermissions": requested},
    }
    pop = sign(new_key, psid=PSID_SCR, generation_time=generation_time, payload=coer.encode("InnerEcRequest", inner))
    data = b"\x01\x80" + pop  # EtsiTs102941Data { v1, enrolmentRequest <PoP> }
    outer = sign(
        signing_key,
        psid=PSID_SCR,
        generation_time=generation_time,
        payload=data,
        signer="self" if current_ec is None else "digest",
        certificate=current_ec,
    )
    enc = _encrypt(outer, ea, random)
    return PendingRequest("enrolment", enc.data, ea, enc.aes_key, new_key, requested)


# ====================================================================== authorization


def service_permissions(services: Iterable[str], provider: sspmod.ServiceProvider | None = None) -> list[dict]:
    """appPermissions for the services rsu runs: every permission bit of each one (catalog + SSP table)."""
    out = []
    for name in services:
        kind = catalog.by_name(name)
        lay = sspmod.layout(kind)
        ssp = sspmod.full(kind, provider if lay.provider_octets else None)
        out.append({"psid": kind.its_aid, "ssp": ("bitmapSsp", ssp)})
    return out


def check_permissions(requested: list[dict], ec: Certificate, aa: Certificate) -> None:
    """Never ask for more than the EC allows and the AA can issue; RequestError lists every excess."""
    problems = []
    ec_perms = {p: s for p, s in ec.app_permissions.items() if p not in (catalog.ITS_AID_SCR,)}
    for entry in requested:
        psid = entry["psid"]
        ssp = entry["ssp"][1] if "ssp" in entry else None
        if ec_perms and (psid not in ec_perms or not _ssp_subset(ssp, ec_perms[psid])):
            problems.append(f"{psid}: not allowed by the EC")
        if not ssp_within_range(ssp, aa.issue_range(psid)):
            problems.append(f"{psid}: outside what the AA may issue")
    if problems:
        raise RequestError("not-permitted", "; ".join(problems))


def build_authorization_request(
    *,
    ec: Certificate,
    ec_key: SigningKey,
    ea: Certificate,
    aa: Certificate,
    permissions: list[dict],
    generation_time: int,
    random: ecies.Randomness,
    key_curve: str = "ecdsaNistP256",
    validity: dict | None = None,
    new_key: SigningKey | None = None,
) -> PendingRequest:
    """AuthorizationRequestMessageWithPop with a fresh AT key, hmacKey/keyTag and encryptedEcSignature.

    ``new_key``: the fresh AT key (e.g. a key-store handle); default one from ``random``.
    """
    _require_scr_right(ec, SCR_AUTHORIZATION_REQUEST, "sign authorization requests")
    _require_valid(ec, generation_time)
    if not permissions:
        raise RequestError("not-permitted", "no appPermissions to request")
    check_permissions(permissions, ec, aa)
    at_key = new_key if new_key is not None else random.private_key(CURVES[key_curve].ec_curve())
    key_curve = curve_of(at_key).name
    verification_key = (key_curve, point_of_public_key(at_key.public_key()))
    hmac_key = random.token(32)
    key_tag = key_tag_for(hmac_key, verification_key)
    attributes: dict[str, Any] = {"appPermissions": [dict(p) for p in permissions]}
    if validity is not None:
        attributes["validityPeriod"] = validity
    shared = {
        "eaId": signer_hashed_id8(ea),
        "keyTag": key_tag,
        "certificateFormat": 1,
        "requestedSubjectAttributes": attributes,
    }
    ec_signature = sign(
        ec_key,
        psid=PSID_SCR,
        generation_time=generation_time,
        ext_data_hash=hashlib.sha256(coer.encode("SharedAtRequest", shared)).digest(),
        signer="digest",
        certificate=ec,
    )
    encrypted_ec_signature = _encrypt(ec_signature, ea, random).data
    inner = {
        "publicKeys": {"verificationKey": verification_key},
        "hmacKey": hmac_key,
        "sharedAtRequest": shared,
        "ecSignature": ("encryptedEcSignature", coer.decode("Ieee1609Dot2Data", encrypted_ec_signature)),
    }
    data = coer.encode("EtsiTs102941Data", {"version": 1, "content": ("authorizationRequest", inner)})
    pop = sign(at_key, psid=PSID_SCR, generation_time=generation_time, payload=data)
    enc = _encrypt(pop, aa, random)
    return PendingRequest("authorization", enc.data, aa, enc.aes_key, at_key, attributes["appPermissions"], hmac_key)


def key_tag_for(hmac_key: bytes, verification_key: tuple, encryption_key: dict | None = None) -> bytes:
    """keyTag: left 16 octets of HMAC-SHA256(hmacKey, COER(PublicVerificationKey) [|| COER(PublicEncryptionKey)])."""
    msg = coer.encode("PublicVerificationKey", verification_key)
    if encryption_key is not None:
        msg += coer.encode("PublicEncryptionKey", encryption_key)
    return hmac.new(hmac_key, msg, hashlib.sha256).digest()[:16]


# ====================================================================== responses

_CONTENT = {
    "enrolment": ("enrolmentResponse", 0x81, "InnerEcResponse", ENROLMENT_RESPONSE_CODES),
    "authorization": ("authorizationResponse", 0x83, "InnerAtResponse", AUTHORIZATION_RESPONSE_CODES),
}


def process_response(pending: PendingRequest, data: bytes, now: float, trust: TrustStore | None = None) -> Response:
    """Open and check the EA/AA answer to ``pending``; ResponseError names the first failed check.

    With ``trust`` the EA/AA must also be listed there (a Root CA CTL applied, not revoked, root
    valid now): the chain certificate -> EA/AA -> root is then complete.
    """
    alt, tag, inner_type, codes = _CONTENT[pending.kind]
    if trust is not None:
        _check_trusted(trust, pending, now)
    try:
        plaintext = ecies.decrypt_with_psk(bytes(data), pending.aes_key)
    except ecies.EciesError as e:
        raise ResponseError("decryption-failed", str(e)) from None
    try:
        opened = open_signed(plaintext)
        payload = opened.payload
    except SignedDataError as e:
        raise ResponseError("malformed", str(e)) from None
    authority = pending.authority
    if opened.signer_form != "digest" or opened.signer_digest != signer_hashed_id8(authority):
        raise ResponseError(
            "wrong-signer",
            f"response signer is {opened.signer_form} "
            f"{(opened.signer_digest or b'').hex()}, not the "
            f"{'EA' if pending.kind == 'enrolment' else 'AA'} "
            f"{signer_hashed_id8(authority).hex()}",
        )
    if opened.psid != PSID_SCR:
        raise ResponseError("wrong-psid", f"response psid {opened.psid} (expected {PSID_SCR})")
    if not opened.verify(authority.public_key, authority):
        raise ResponseError("invalid-signature", "response signature does not verify with the authority's key")
    if len(payload) < 2 or payload[0] != 1 or payload[1] != tag:
        raise ResponseError("wrong-content", f"payload is not EtsiTs102941Data v1 {alt}")
    try:
        inner, end = coer.decode_prefix(inner_type, payload, 2)
    except coer.CoerError as e:
        raise ResponseError("malformed", f"{inner_type}: {e}") from None
    if end != len(payload):
        raise ResponseError("malformed", f"{len(payload) - end} trailing bytes after {inner_type}")
    if inner["requestHash"] != pending.request_hash:
        raise ResponseError("request-hash-mismatch", "requestHash does not match the request we sent")
    code = inner["responseCode"]
    if code not in codes:  # an extension value from a newer standard
        code = f"unknown-{code}"
    if (code == "ok") != ("certificate" in inner):
        raise ResponseError(
            "profile-violation", f"responseCode {code} with{'out' if code == 'ok' else ''} a certificate"
        )
    if code != "ok":
        return Response(pending.kind, code)
    cert = _certificate_in(payload, inner_type)
    _check_issued(pending, cert, now)
    return Response(pending.kind, "ok", cert, pending.private_key)


def _certificate_in(payload: bytes, inner_type: str) -> Certificate:
    """The certificate of an ok InnerEcResponse/InnerAtResponse, sliced from the received bytes."""
    start = 2 + 1 + 16 + 1  # content tag, preamble, requestHash, responseCode ok (one octet)
    try:
        _, end = coer.decode_prefix("EtsiTs103097Certificate", payload, start)
        return Certificate.from_bytes(payload[start:end])
    except (coer.CoerError, CertificateError) as e:
        raise ResponseError("certificate-invalid", str(e)) from None


def _check_issued(pending: PendingRequest, cert: Certificate, now: float) -> None:
    authority = pending.authority
    if cert.issuer_id != authority.hashed_id8_for(cert.issuer_hash_name):
        raise ResponseError(
            "certificate-wrong-issuer", f"certificate issuer {cert.issuer} is not {signer_hashed_id8(authority).hex()}"
        )
    if not cert.signature_valid(authority):
        raise ResponseError("certificate-invalid-signature", "certificate signature does not verify")
    if not same_public_key(cert.public_key, pending.private_key.public_key()):
        raise ResponseError("certificate-key-mismatch", "certificate is for another verification key")
    if not cert.valid_at(now):
        raise ResponseError("certificate-not-valid", "certificate is not valid now")
    asked = {p["psid"]: (p["ssp"][1] if "ssp" in p else None) for p in pending.requested}
    for psid, ssp in cert.app_permissions.items():
        if psid not in asked or not _ssp_subset(ssp, asked[psid]):
            raise ResponseError(
                "certificate-permissions",
                f"certificate grants psid {psid} {ssp.hex() if ssp else ''} beyond the request",
            )
    if pending.kind == "enrolment" and PSID_SCR not in cert.app_permissions:
        raise ResponseError("certificate-permissions", f"EC without psid {PSID_SCR}")


# ====================================================================== helpers


def _check_trusted(trust: TrustStore, pending: PendingRequest, now: float) -> None:
    want = "ea" if pending.kind == "enrolment" else "aa"
    h8 = signer_hashed_id8(pending.authority)
    found = trust.authority(h8)
    if found is None or found[0] != want or found[1].certificate.raw != pending.authority.raw:
        raise ResponseError(
            "untrusted-authority", f"{want.upper()} {h8.hex()} is not listed (or revoked) in the trust store"
        )
    if trust.root(found[2], now) is None:
        raise ResponseError(
            "untrusted-authority", f"root {found[2].hex()} of {want.upper()} {h8.hex()} is not valid now"
        )


def _encrypt(plaintext: bytes, recipient: Certificate, random: ecies.Randomness) -> ecies.Encrypted:
    try:
        return ecies.encrypt_for_certificate(plaintext, recipient, random)
    except ecies.EciesError as e:
        raise RequestError(e.reason, e.detail) from None


def _require_scr_right(cert: Certificate, bit: int, what: str) -> None:
    ssp = cert.app_permissions.get(PSID_SCR)
    if not ssp or len(ssp) < 2 or not ssp[1] & bit:
        raise RequestError(
            "not-permitted",
            f"certificate {cert.hashed_id8.hex()} may not {what} (623 SSP {ssp.hex() if ssp else 'absent'})",
        )


def _require_valid(ec_cert: Certificate, generation_time: int) -> None:
    """An EC signs only inside its validity (an expired EC means: enrol again with the canonical key)."""
    if not ec_cert.valid_at(clock.time64_to_posix(generation_time)):
        raise RequestError(
            "ec-not-valid",
            f"EC {ec_cert.hashed_id8.hex()} is not valid at the generation time "
            f"(valid {clock.iso_utc(ec_cert.start_posix)} .. "
            f"{clock.iso_utc(ec_cert.end_posix)})",
        )


def _ssp_subset(ssp: bytes | None, allowed: bytes | None) -> bool:
    """Is a BitmapSsp no more than ``allowed``: same version octet and length, no extra bits set."""
    if allowed is None or ssp is None:
        return ssp == allowed
    if len(ssp) != len(allowed) or ssp[:1] != allowed[:1]:
        return False
    return all(a & ~b == 0 for a, b in zip(ssp[1:], allowed[1:]))
