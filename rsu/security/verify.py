"""Verification: EtsiTs103097Data-Signed bytes (COER) in, a result with a named reason out.

Layer: the secured envelope; on success the result carries the inner unsecured
bytes (the UPER facilities PDU) and, when the content check ran, the decoded PDU.

:meth:`Verifier.verify` never raises on received bytes: every outcome is a
:class:`VerificationResult` whose ``reason`` is a :class:`Reason` (a ``str`` enum;
``None`` when accepted). Checks, in order (cheap and structural first)::

    envelope and TS 103 097 profile    MALFORMED, UNSUPPORTED_VERSION, NOT_SIGNED, PROFILE_VIOLATION
    psid vs message type               PSID_MISMATCH
    generationTime / expiryTime        GENERATION_TIME_IN_FUTURE, GENERATION_TIME_TOO_OLD, MESSAGE_EXPIRED
    signer                             UNSUPPORTED_SIGNER (a SignerIdentifier alternative we do not know),
                                       SIGNER_UNKNOWN (digest not in the cache), SIGNER_CERTIFICATE_INVALID
    hash algorithm vs key              HASH_ALGORITHM_MISMATCH
    signature                          INVALID_SIGNATURE
    AT validity at generationTime      CERT_EXPIRED, CERT_NOT_YET_VALID
    revocation (PKI client's CRLs)     REVOKED (the AT or its issuer is listed in a CRL)
    chain AT -> AA -> root             UNKNOWN_ISSUER, CHAIN_INVALID_SIGNATURE, CHAIN_VALIDITY, CHAIN_PERMISSIONS
    root trusted (PKI client's ECTL)   UNTRUSTED_ROOT (the chain ends at a root the applied ECTL does
                                       not list, or lists but not valid now)
    AT appPermissions has the psid     PSID_NOT_PERMITTED
    content vs SSP                     PAYLOAD_INVALID, SSP_VIOLATION

Signer given as a digest: resolved from certificates seen before in valid
messages (and those of the trust store). When unknown, and only when the message
passed every check that needs no certificate (structure, psid, time window, and
the payload decodes as the expected message), the message is *held* (at most
``hold_limit`` frames, for ``hold_seconds``) and the result asks for the
certificate (``request_certificate`` = its HashedId3, to be put in our next
message's ``inlineP2pcdRequest``). When a later message brings that certificate,
the held messages are verified again. Every held message leaves the hold exactly
once, and comes back in the ``released`` list of some later result (or of
:meth:`Verifier.expire_held`): verified again, or failed with HELD_EXPIRED (its
``hold_seconds`` ran out) or HOLD_QUEUE_FULL (pushed out by newer ones); such
results have ``from_hold`` set. So a caller that counts ``held`` results and
``released`` ones always knows how many are still held.
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rsu import catalog
from rsu import clock as clockmod
from rsu.catalog import MessageKind
from rsu.codec.errors import CodecError
from rsu.limits import OnLimit, ignore
from rsu.security import coer
from rsu.security import ssp as sspmod
from rsu.security.certs import Certificate, CertificateError, ssp_within_range
from rsu.security.keys import KeyMaterialError, signature_rs, verify_digest

if TYPE_CHECKING:
    from rsu.codec.facilities import DecodedPdu, FacilitiesCodec


class Reason(str, enum.Enum):
    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported-protocol-version"
    NOT_SIGNED = "not-signed-data"
    PROFILE_VIOLATION = "ts103097-profile-violation"
    PSID_MISMATCH = "psid-mismatch"
    GENERATION_TIME_IN_FUTURE = "generation-time-in-future"
    GENERATION_TIME_TOO_OLD = "generation-time-too-old"
    MESSAGE_EXPIRED = "message-expired"
    SIGNER_UNKNOWN = "signer-certificate-unknown"
    UNSUPPORTED_SIGNER = "unsupported-signer"
    HELD_EXPIRED = "held-expired"
    HOLD_QUEUE_FULL = "hold-queue-full"
    SIGNER_CERTIFICATE_INVALID = "signer-certificate-invalid"
    HASH_ALGORITHM_MISMATCH = "hash-algorithm-mismatch"
    INVALID_SIGNATURE = "invalid-signature"
    CERT_EXPIRED = "certificate-expired"
    CERT_NOT_YET_VALID = "certificate-not-yet-valid"
    UNKNOWN_ISSUER = "unknown-issuer"
    CHAIN_INVALID_SIGNATURE = "chain-invalid-signature"
    CHAIN_VALIDITY = "chain-validity"
    CHAIN_PERMISSIONS = "chain-permissions"
    REVOKED = "revoked"
    UNTRUSTED_ROOT = "untrusted-root"
    PSID_NOT_PERMITTED = "psid-not-permitted"
    PAYLOAD_INVALID = "payload-invalid"
    SSP_VIOLATION = "ssp-violation"

    def __str__(self) -> str:
        return self.value


# ====================================================================== parsed envelope


@dataclass
class SignedMessage:
    """A structurally parsed signed message, with the byte spans that are hashed."""

    raw: bytes
    hash_id: str
    tbs_bytes: bytes
    tbs: dict[str, Any]  # ToBeSignedData (asn1tools value form, as are signer and signature)
    signer: tuple[str, Any]  # ("digest", h8) | ("certificate", [cert values]) | ("self", None)
    signer_cert_bytes: bytes | None
    signature: tuple[str, Any]
    # the signer certificate when its bytes are exactly those of one ``known`` gave parse_signed
    signer_known: Certificate | None = None

    @property
    def header(self) -> dict[str, Any]:
        header: dict[str, Any] = self.tbs["headerInfo"]
        return header

    @property
    def psid(self) -> int:
        psid: int = self.header["psid"]
        return psid

    @property
    def payload(self) -> bytes | None:
        data = self.tbs["payload"].get("data")
        if data and data["content"][0] == "unsecuredData":
            payload: bytes = data["content"][1]
            return payload
        return None


class ParseError(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_HASH_IDS = {0: "sha256", 1: "sha384"}
_HASHES: dict[str, Callable[[bytes], Any]] = {"sha256": hashlib.sha256, "sha384": hashlib.sha384}


_SIGNATURES = {0x80: "ecdsaNistP256Signature", 0x81: "ecdsaBrainpoolP256r1Signature"}
_CURVE_POINTS = {0x80: "x-only", 0x82: "compressed-y-0", 0x83: "compressed-y-1"}


def _coer_length(data: bytes, p: int) -> tuple[int, int]:
    """A COER length determinant at ``p`` in its shortest form (else -1): (length, where the content starts)."""
    b = data[p]
    if b < 0x80:
        return b, p + 1
    if b == 0x81 and data[p + 1] >= 0x80:
        return data[p + 1], p + 2
    if b == 0x82 and data[p + 1]:
        return data[p + 1] << 8 | data[p + 2], p + 3
    return -1, p


def _parse_common(
    data: bytes,
) -> tuple[dict[str, Any], int, tuple[str, Any] | None, int, tuple[str, Any] | None] | None:
    """The shape nearly every facilities message has, read directly: ToBeSignedData with unsecuredData,
    a headerInfo of psid, generationTime and perhaps expiryTime; a digest signer (or a certificate,
    left to asn1tools: signer None); an ECDSA 256-bit signature (None when another follows the signer).
    Gives the values asn1tools gives for them, with (tbs, tbs end, signer, signer end, signature),
    or None for anything else (asn1tools then reads the whole message and decides).
    tests/security/test_parse_fast.py checks it against asn1tools."""
    n = len(data)
    if n < 20 or data[3] != 0x40 or data[4] != 3 or data[5] != 0x80:
        return None  # not: SignedDataPayload {data} of Ieee1609Dot2Data v3 unsecuredData
    size, p = _coer_length(data, 6)
    if size < 0 or p + size + 3 > n:
        return None
    payload = data[p : p + size]
    p += size
    present = data[p]
    if present & ~0x60:  # extension bit or optional fields beyond generationTime and expiryTime
        return None
    psid_len = data[p + 1]
    if not 1 <= psid_len <= 4:
        return None
    p += 2
    header: dict[str, Any] = {"psid": int.from_bytes(data[p : p + psid_len], "big")}
    p += psid_len
    if present & 0x40:
        header["generationTime"] = int.from_bytes(data[p : p + 8], "big")
        p += 8
    if present & 0x20:
        header["expiryTime"] = int.from_bytes(data[p : p + 8], "big")
        p += 8
    if p + 1 > n:
        return None
    tbs = {"payload": {"data": {"protocolVersion": 3, "content": ("unsecuredData", payload)}}, "headerInfo": header}
    tbs_end = p
    signer: tuple[str, Any] | None = None
    if data[p] == 0x80:
        if p + 9 > n:
            return None
        signer = ("digest", data[p + 1 : p + 9])
        p += 9
    elif data[p] != 0x81:
        return None
    signature: tuple[str, Any] | None = None
    if signer is not None and p + 66 == n:
        alt, point = _SIGNATURES.get(data[p]), _CURVE_POINTS.get(data[p + 1])
        if alt is not None and point is not None:
            signature = (alt, {"rSig": (point, data[p + 2 : p + 34]), "sSig": data[p + 34 : p + 66]})
    elif signer is None and n - 66 > p:  # the certificate's end is not known here: the signature may end
        alt, point = _SIGNATURES.get(data[n - 66]), _CURVE_POINTS.get(data[n - 65])
        if alt is not None and point is not None:
            signature = (alt, {"rSig": (point, data[n - 64 : n - 32]), "sSig": data[n - 32 :]})
    return tbs, tbs_end, signer, p, signature


def _known_signer(
    data: bytes, p: int, known: Callable[[bytes], Certificate | None]
) -> tuple[tuple[str, Any] | None, int, Certificate | None]:
    """A certificate signer at ``p`` (one certificate, then a 256-bit signature to the end) whose bytes are
    those of a known certificate: (("certificate", [its value]), signer end, it); else (None, p, None)."""
    end = len(data) - 66
    if data[p + 1 : p + 3] != b"\x01\x01" or end <= p + 3:  # SEQUENCE OF quantity: 1
        return None, p, None
    candidate = data[p + 3 : end]
    cert = known(hashlib.sha256(candidate).digest()[-8:])
    if cert is None or cert.raw != candidate:
        return None, p, None
    return ("certificate", [cert.value]), end, cert


def parse_signed(
    data: bytes, *, check_profile: bool = True, known: Callable[[bytes], Certificate | None] | None = None
) -> SignedMessage:
    """Split a COER Ieee1609Dot2Data carrying signedData. Raises ParseError with a Reason.

    ``check_profile=False`` skips the facilities-message profile (TS 102 941 PKI messages
    use signer ``self`` and external payloads; rsu.pki checks their own rules).
    ``known``: HashedId8 -> a certificate decoded before (the verifier's cache); a signer certificate
    whose bytes are exactly a known one's is taken as that one's value instead of being decoded again
    (and given as ``signer_known``).
    """
    data = bytes(data)
    if len(data) < 3:
        raise ParseError(Reason.MALFORMED, f"{len(data)} bytes is too short for Ieee1609Dot2Data")
    if data[0] != 3:
        raise ParseError(Reason.UNSUPPORTED_VERSION, f"protocolVersion {data[0]} (expected 3)")
    if data[1] != 0x81:
        names = {0x80: "unsecuredData", 0x82: "encryptedData", 0x83: "signedCertificateRequest"}
        raise ParseError(Reason.NOT_SIGNED, f"content is {names.get(data[1], hex(data[1]))}, not signedData")
    hash_id = _HASH_IDS.get(data[2])
    if hash_id is None:
        raise ParseError(Reason.MALFORMED, f"unknown hashId {data[2]}")
    known_cert = None
    try:
        common = _parse_common(data)
        if common is not None:
            tbs, p, signer, signer_end, signature = common
            if signer is None and signature is not None and known is not None:
                signer, signer_end, known_cert = _known_signer(data, p, known)
            if signer is None:  # a certificate: asn1tools decodes the SEQUENCE OF Certificate
                signer, signer_end = coer.decode_prefix("SignerIdentifier", data, p)
        else:
            tbs, p = coer.decode_prefix("ToBeSignedData", data, 3)
            signer, signer_end = coer.decode_prefix("SignerIdentifier", data, p)
            signature = None
        tbs_bytes = data[3:p]
        signer_start = p
        p = signer_end
        if signature is not None and signer_end + len(signature[1]["sSig"]) * 2 + 2 == len(data):
            p = len(data)
        else:
            signature, p = coer.decode_prefix("Signature", data, p)
    except coer.CoerError as e:
        raise ParseError(Reason.MALFORMED, str(e)) from None
    if p != len(data):
        raise ParseError(Reason.MALFORMED, f"{len(data) - p} trailing bytes after the signature")
    cert_bytes = None
    if signer[0] == "certificate":
        if len(signer[1]) != 1:
            raise ParseError(
                Reason.PROFILE_VIOLATION, f"signer carries {len(signer[1])} certificates (TS 103 097: exactly 1)"
            )
        n, q = coer.read_length(data, signer_start + 1)  # quantity field of the SEQUENCE OF
        cert_bytes = data[q + n : signer_end]  # the one certificate runs to the end of the signer field
    msg = SignedMessage(data, hash_id, tbs_bytes, tbs, signer, cert_bytes, signature, known_cert)
    if check_profile:
        _check_profile(msg)
    return msg


def _check_profile(msg: SignedMessage) -> None:
    h = msg.header
    payload = msg.tbs["payload"]
    if "data" not in payload:
        raise ParseError(Reason.PROFILE_VIOLATION, "payload.data absent (external payload is not accepted)")
    inner = payload["data"]
    if inner["protocolVersion"] != 3 or inner["content"][0] != "unsecuredData":
        raise ParseError(Reason.PROFILE_VIOLATION, "payload.data is not unsecuredData")
    if "generationTime" not in h:
        raise ParseError(Reason.PROFILE_VIOLATION, "headerInfo.generationTime absent")
    for absent in ("p2pcdLearningRequest", "missingCrlIdentifier"):
        if absent in h:
            raise ParseError(Reason.PROFILE_VIOLATION, f"headerInfo.{absent} must be absent")
    if msg.signer[0] == "self":
        raise ParseError(Reason.PROFILE_VIOLATION, "self-signed messages are not accepted")
    if msg.signer[0] not in ("digest", "certificate"):
        raise ParseError(
            Reason.UNSUPPORTED_SIGNER,
            "SignerIdentifier is an extension alternative this "
            "implementation does not know (digest or certificate expected)",
        )


# ====================================================================== trust store


class TrustStore:
    """Trusted root certificates and the authorization authorities (AA) known under them.

    Roots are trusted because they are configured (a directory of COER files,
    normally filled from the ECTL). AAs are accepted only when they chain to a
    trusted root with a valid signature.
    """

    def __init__(self) -> None:
        self.roots: dict[bytes, Certificate] = {}
        self.authorities: dict[bytes, Certificate] = {}  # HashedId8 (any hash) -> AA
        self.rejected: list[tuple[str, str]] = []  # (source, why) for certificates not taken

    @classmethod
    def from_directory(cls, path: str | Path) -> TrustStore:
        store = cls()
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: trust store directory not found")
        certs = []
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() not in (".oer", ".cert", ".crt", ".coer"):
                continue
            try:
                certs.append(Certificate.load(f))
            except CertificateError as e:
                store.rejected.append((str(f), str(e)))
        store.add(*certs)
        return store

    def add(self, *certs: Certificate) -> None:
        for c in certs:
            if c.is_self_signed:
                if c.signature_valid(None):
                    self._index(self.roots, c)
                else:
                    self.rejected.append((c.source or c.hashed_id8.hex(), "root self-signature invalid"))
        for c in certs:
            if c.is_self_signed:
                continue
            if not c.issue_permissions:
                continue  # end-entity certificates are not trust anchors
            root = self.roots.get(c.issuer_id) if c.issuer_id is not None else None
            if root is None:
                self.rejected.append((c.source or c.hashed_id8.hex(), "issuer is not a trusted root"))
            elif not c.signature_valid(root):
                self.rejected.append((c.source or c.hashed_id8.hex(), "signature by root invalid"))
            else:
                self._index(self.authorities, c)

    @staticmethod
    def _index(table: dict[bytes, Certificate], c: Certificate) -> None:
        table[c.hashed_id8_for("sha256")] = c
        table[c.hashed_id8_for("sha384")] = c

    def issuer_of(self, cert: Certificate) -> Certificate | None:
        if cert.is_self_signed or cert.issuer_id is None:
            return None
        return self.authorities.get(cert.issuer_id) or self.roots.get(cert.issuer_id)

    def certificates(self) -> list[Certificate]:
        seen, out = set(), []
        for c in list(self.roots.values()) + list(self.authorities.values()):
            if id(c) not in seen:
                seen.add(id(c))
                out.append(c)
        return out


# ====================================================================== results


@dataclass
class VerificationResult:
    reason: Reason | None
    detail: str = ""
    psid: int | None = None
    generation_time: int | None = None  # Time64
    signer_form: str | None = None  # "digest" | "certificate"
    signer_id: bytes | None = None  # HashedId8 of the AT
    certificate: Certificate | None = None
    ssp: bytes | None = None
    signature_valid: bool | None = None
    chain: str = "not-checked"  # "valid" | "invalid" | "not-checked"
    payload: bytes | None = None  # the unsecured inner bytes (UPER facilities PDU)
    pdu: DecodedPdu | None = None  # when the content check ran
    missing_permissions: tuple[str, ...] = ()
    request_certificate: bytes | None = None  # HashedId3 we should ask for (unknown digest)
    p2pcd_requests: tuple[bytes, ...] = ()  # HashedId3s this message asks for (inlineP2pcdRequest)
    requested_certificate: Certificate | None = None  # headerInfo.requestedCertificate, when valid
    held: bool = False
    from_hold: bool = False  # this result is of a message that was held (released, expired or pushed out)
    tbs_hash: bytes | None = None  # SHA-256 of tbsData (after the signature check): the replay-detection key
    released: list[VerificationResult] = field(default_factory=list)
    context: Any = None  # the caller's opaque context (e.g. the received frame), also for released messages

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "valid": self.ok,
            "reason": str(self.reason) if self.reason else None,
            "detail": self.detail or None,
            "signatureValid": self.signature_valid,
            "chain": self.chain,
            "psid": self.psid,
            "generationTime": self.generation_time,
            "generationTimeIso": (
                clockmod.iso_utc(clockmod.time64_to_posix(self.generation_time))
                if self.generation_time is not None
                else None
            ),
            "signer": (
                {"form": self.signer_form, "hashedId8": self.signer_id.hex()} if self.signer_id is not None else None
            ),
            "ssp": None,
        }
        if self.psid is not None and self.certificate is not None:
            out["ssp"] = sspmod.describe_permission(self.psid, self.certificate.app_permissions.get(self.psid))
        if self.missing_permissions:
            out["missingPermissions"] = list(self.missing_permissions)
        if self.request_certificate:
            out["requestCertificate"] = self.request_certificate.hex()
        return out


# ====================================================================== verifier

PRECHECK_CACHE = 64  # content verdicts remembered for messages of unknown signers

# a held frame: (held at, signer h8, data, expected kind, payload offset, context)
HeldFrame = tuple[float, bytes, bytes, MessageKind | None, int, Any]


class Listed(Protocol):
    """An authority or root listed in the PKI client's trust store: its certificate."""

    @property
    def certificate(self) -> Certificate: ...


class PkiTrust(Protocol):
    """What the verifier asks of the PKI client's trust store (:class:`rsu.pki.trustlist.TrustStore`)."""

    @property
    def roots(self) -> Mapping[bytes, Listed]: ...

    def root(self, h8: bytes, now: float) -> Certificate | None: ...

    def is_revoked(self, h8: bytes) -> bool: ...

    def authority(self, h8: bytes) -> tuple[str, Listed, bytes] | None: ...


class Verifier:
    """Verifies received signed messages. Sans-I/O: bytes and an injected clock in, results out.

    ``trust``: a :class:`TrustStore`; ``None`` skips the chain check (result ``chain
    = "not-checked"``). ``max_age`` / ``max_future``: acceptance window for
    generationTime, seconds. ``check_content``: decode the payload as a facilities
    PDU and check it against the SSP (needs the payload to *be* a facilities PDU).
    """

    def __init__(
        self,
        clock: clockmod.Clock,
        trust: TrustStore | None = None,
        *,
        max_age: float = 30.0,
        max_future: float = 2.0,
        check_content: bool = True,
        cache_size: int = 4096,
        hold_seconds: float = 2.0,
        hold_limit: int = 64,
        codec: FacilitiesCodec | None = None,
        on_limit: OnLimit = ignore,
        pki_trust: Callable[[], PkiTrust | None] | None = None,
    ) -> None:
        self.clock = clock
        self.trust = trust
        # the PKI client's trust store now (rsu.pki.trustlist.TrustStore; a callable, as the client
        # replaces it at every list it applies), or None: then the local trust store alone decides
        self.pki_trust = pki_trust
        self.max_age = max_age
        self.max_future = max_future
        self.check_content = check_content
        self.hold_seconds = hold_seconds
        self.hold_limit = hold_limit
        self.on_limit = on_limit
        self._codec = codec
        self._cache: OrderedDict[bytes, Certificate] = OrderedDict()
        self._cache_size = max(1, cache_size)
        # AT h8 -> its issuer (once the AT's signature checked) and whether it grants beyond that issuer's range
        self._chain_ok: OrderedDict[bytes, tuple[Certificate, tuple[Reason, str] | None]] = OrderedDict()
        # held frames in arrival order: (held at, signer h8, data, expected kind, payload offset, context)
        self._held: OrderedDict[int, HeldFrame] = OrderedDict()
        self._held_by_signer: dict[bytes, list[int]] = {}
        self._held_seq = 0
        self._prechecked: OrderedDict[tuple[str, int, bytes | None], tuple[Reason | None, str]] = OrderedDict()
        # trust-store certificates are always known (outside the bounded cache)
        self._anchors: dict[bytes, Certificate] = {c.hashed_id8: c for c in trust.certificates()} if trust else {}

    # ------------------------------------------------------------------ certificate cache
    def _remember(self, cert: Certificate) -> None:
        self._cache[cert.hashed_id8] = cert
        self._cache.move_to_end(cert.hashed_id8)
        while len(self._cache) > self._cache_size:
            h8, _ = self._cache.popitem(last=False)
            self._chain_ok.pop(h8, None)
            self.on_limit("certificate-cache")

    def known_certificate(self, h8: bytes) -> Certificate | None:
        return self._cache.get(h8) or self._anchors.get(h8)

    def add_certificate(self, cert: Certificate) -> None:
        """Learn a certificate out of band (e.g. a requestedCertificate, our own ATs)."""
        self._remember(cert)

    @property
    def codec(self) -> FacilitiesCodec:
        if self._codec is None:
            from rsu.codec.facilities import get_codec

            self._codec = get_codec()
        return self._codec

    # ------------------------------------------------------------------ main entry
    def verify(
        self, data: bytes, expected: MessageKind | None = None, *, payload_offset: int = 0, context: Any = None
    ) -> VerificationResult:
        """Verify one received secured message (COER). Never raises on bad input.

        ``expected``: the message type the transport says this is (e.g. from the BTP
        port); the header psid must be its ITS-AID. ``payload_offset``: where the
        facilities PDU starts inside the unsecured data (a secured GeoNetworking packet
        signs its common/extended headers and BTP-B too; 0 when the PDU was signed alone).
        ``context`` comes back on the result, also when a held message is released later.
        """
        try:
            result = self._verify(bytes(data), expected, payload_offset, context)
        except Exception as e:  # last line of defence: a received frame never crashes the daemon
            result = VerificationResult(Reason.MALFORMED, f"unexpected error: {type(e).__name__}: {e}", context=context)
        released = self.expire_held()
        if result.signer_form == "certificate" and result.signer_id in self._cache:
            # the certificate passed signature, chain and psid checks (it is cached), whatever the content
            released.extend(self._release(result.signer_id))
        if result.held:
            released.extend(self._evict_held())
        result.released = released
        return result

    def _verify(
        self, data: bytes, expected: MessageKind | None, payload_offset: int = 0, context: Any = None
    ) -> VerificationResult:
        res = self._verify_inner(data, expected, payload_offset, context)
        res.context = context
        return res

    def _verify_inner(
        self, data: bytes, expected: MessageKind | None, payload_offset: int, context: Any
    ) -> VerificationResult:
        try:
            msg = parse_signed(data, known=self.known_certificate)
        except ParseError as e:
            return VerificationResult(e.reason, e.detail)
        h = msg.header
        psid = msg.psid
        res = VerificationResult(
            None,
            psid=psid,
            generation_time=h["generationTime"],
            p2pcd_requests=tuple(h.get("inlineP2pcdRequest", ())),
        )
        kind = catalog.BY_ITS_AID.get(psid)
        if expected is not None and psid != expected.its_aid:
            return self._fail(
                res,
                Reason.PSID_MISMATCH,
                f"psid {psid} but the message type {expected.pdu} is ITS-AID {expected.its_aid}",
            )
        kind = expected or kind

        # time window (receiver's clock)
        now = self.clock.now()
        now64 = clockmod.time64(now)
        gen = h["generationTime"]
        if gen > now64 + self.max_future * 1e6:
            return self._fail(
                res,
                Reason.GENERATION_TIME_IN_FUTURE,
                f"generationTime is {(gen - now64) / 1e6:.3f} s ahead (max {self.max_future} s)",
            )
        if gen < now64 - self.max_age * 1e6:
            return self._fail(
                res,
                Reason.GENERATION_TIME_TOO_OLD,
                f"generationTime is {(now64 - gen) / 1e6:.3f} s old (max {self.max_age} s)",
            )
        if "expiryTime" in h and (h["expiryTime"] <= gen or h["expiryTime"] < now64):
            return self._fail(res, Reason.MESSAGE_EXPIRED, "expiryTime has passed")

        # signer
        alt, sval = msg.signer
        res.signer_form = alt
        if alt == "digest":
            res.signer_id = sval
            cert = self.known_certificate(sval)
            if cert is None:
                # only a message we would otherwise accept is worth a certificate request: the checks
                # that need no certificate come first (a random digest on garbage asks for nothing)
                if self.check_content and kind is not None:
                    why = self._precheck_content(res, msg.payload, kind, payload_offset, psid)
                    if why is not None:
                        return why
                res.request_certificate = sval[-3:]
                if self.hold_seconds > 0 and self.hold_limit > 0:
                    self._hold(sval, data, expected, now, payload_offset, context)
                    res.held = True
                    return self._fail(
                        res,
                        Reason.SIGNER_UNKNOWN,
                        f"no certificate known for digest {sval.hex()}; held, certificate requested",
                    )
                return self._fail(
                    res, Reason.SIGNER_UNKNOWN, f"no certificate known for digest {sval.hex()}; certificate requested"
                )
        else:
            cert = msg.signer_known  # parse_signed found its bytes in the cache: the same lookup as below
            if cert is None:
                cert_bytes = msg.signer_cert_bytes
                assert cert_bytes is not None  # parse_signed slices it for every "certificate" signer
                h8 = hashlib.sha256(cert_bytes).digest()[-8:]
                cert = self.known_certificate(h8)
                if cert is None or cert.raw != cert_bytes:
                    try:
                        cert = Certificate.from_bytes(cert_bytes)
                    except CertificateError as e:
                        return self._fail(res, Reason.SIGNER_CERTIFICATE_INVALID, str(e))
            res.signer_id = cert.hashed_id8
        res.certificate = cert
        res.ssp = cert.app_permissions.get(psid)

        # signature
        try:
            curve, r, s = signature_rs(msg.signature)
        except KeyMaterialError as e:
            return self._fail(res, Reason.MALFORMED, str(e))
        if curve is not cert.curve or curve.hash_name != msg.hash_id:
            return self._fail(
                res,
                Reason.HASH_ALGORITHM_MISMATCH,
                f"hashId {msg.hash_id} / {msg.signature[0]} do not fit the key {cert.key_curve.name}",
            )
        H = curve.hash_name
        new_hash = _HASHES.get(H) or (lambda b: hashlib.new(H, b))
        tbs_hash = new_hash(msg.tbs_bytes).digest()
        digest = new_hash(tbs_hash + cert.digest(H)).digest()
        try:
            ok = verify_digest(cert.public_key, curve, digest, r, s)
        except CertificateError as e:
            return self._fail(res, Reason.SIGNER_CERTIFICATE_INVALID, str(e))
        res.signature_valid = ok
        if not ok:
            return self._fail(res, Reason.INVALID_SIGNATURE, "ECDSA signature does not verify")
        res.tbs_hash = tbs_hash if H == "sha256" else hashlib.sha256(msg.tbs_bytes).digest()

        # AT validity at generationTime
        gen_s = gen / 1e6
        if gen_s >= cert.end:
            return self._fail(
                res,
                Reason.CERT_EXPIRED,
                f"signer certificate expired before generationTime (valid until {clockmod.iso_utc(cert.end_posix)})",
            )
        if gen_s < cert.start:
            return self._fail(
                res,
                Reason.CERT_NOT_YET_VALID,
                f"signer certificate not yet valid at generationTime (valid from {clockmod.iso_utc(cert.start_posix)})",
            )

        # chain
        if self.trust is not None:
            broken = self._check_chain(cert, psid, gen_s)
            if broken is not None:
                res.chain = "invalid"
                return self._fail(res, broken[0], broken[1])
            res.chain = "valid"

        # permissions
        if psid not in cert.app_permissions:
            return self._fail(
                res, Reason.PSID_NOT_PERMITTED, f"signer certificate has no permission for ITS-AID {psid}"
            )

        # the signature is good: remember the certificate for digest signers
        self._remember(cert)
        if "requestedCertificate" in h:
            try:
                res.requested_certificate = Certificate.from_bytes(
                    coer.encode("Certificate", h["requestedCertificate"])
                )
            except (CertificateError, coer.CoerError):
                res.requested_certificate = None

        payload = msg.payload
        res.payload = payload
        if self.check_content and kind is not None:
            if res.pdu is None:
                failed = self._decode_content(res, payload, kind, payload_offset, psid)
                if failed is not None:
                    return failed
            assert res.pdu is not None  # _decode_content sets it when it does not fail
            chk = sspmod.check(kind, res.ssp, res.pdu.value)
            if not chk.ok:
                res.missing_permissions = chk.missing
                return self._fail(res, Reason.SSP_VIOLATION, chk.detail)
        return res

    def _precheck_content(
        self, res: VerificationResult, payload: bytes | None, kind: MessageKind, payload_offset: int, psid: int
    ) -> VerificationResult | None:
        """:meth:`_decode_content` for a message whose signer is unknown, remembering the verdict per PDU:
        a flood of copies with random signers costs one decode (the message is decoded again when released)."""
        key = (kind.name, payload_offset, payload)
        verdict = self._prechecked.get(key)
        if verdict is None:
            probe = VerificationResult(None)
            failed = self._decode_content(probe, payload, kind, payload_offset, psid)
            verdict = (failed.reason, failed.detail) if failed is not None else (None, "")
            self._prechecked[key] = verdict
            while len(self._prechecked) > PRECHECK_CACHE:
                self._prechecked.popitem(last=False)
        if verdict[0] is not None:
            return self._fail(res, verdict[0], verdict[1])
        return None

    def _decode_content(
        self, res: VerificationResult, payload: bytes | None, kind: MessageKind, payload_offset: int, psid: int
    ) -> VerificationResult | None:
        """Decode the facilities PDU into ``res.pdu``; the failed result when it is not a ``kind``."""
        if not 0 <= payload_offset <= len(payload or b""):
            return self._fail(res, Reason.PAYLOAD_INVALID, f"payload offset {payload_offset} is beyond the payload")
        assert payload is not None  # a signed facilities message has unsecuredData (parse_signed's profile)
        try:
            pdu = self.codec.decode(payload[payload_offset:])
        except CodecError as e:
            return self._fail(res, Reason.PAYLOAD_INVALID, f"payload is not a {kind.pdu}: {e}")
        if pdu.kind is not kind:
            return self._fail(
                res,
                Reason.PSID_MISMATCH,
                f"payload is a {pdu.kind.pdu} (ITS-AID {pdu.kind.its_aid}) signed under psid {psid}",
            )
        res.pdu = pdu
        return None

    @staticmethod
    def _fail(res: VerificationResult, reason: Reason, detail: str) -> VerificationResult:
        res.reason = reason
        res.detail = detail
        return res

    def _check_chain(self, at: Certificate, psid: int, gen_s: float) -> tuple[Reason, str] | None:
        assert self.trust is not None
        pki = self.pki_trust() if self.pki_trust is not None else None
        if pki is not None:  # every time: a CRL applied since the chain was first checked counts
            for what, h8 in (("signer", at.hashed_id8), ("issuer", at.issuer_id)):
                if h8 and pki.is_revoked(h8):
                    return Reason.REVOKED, f"{what} {h8.hex()} is revoked by a CRL"
        known = self._chain_ok.get(at.hashed_id8)
        if known is None:
            issuer = self._issuer_of(at, pki)
            if issuer is None:
                return Reason.UNKNOWN_ISSUER, (
                    f"issuer {at.issuer_id.hex() if at.issuer_id else 'self'} "
                    "is not a known authority under a trusted root"
                )
            if not at.signature_valid(issuer):
                return Reason.CHAIN_INVALID_SIGNATURE, f"AT signature by issuer {issuer.hashed_id8.hex()} invalid"
            known = self._chain_ok[at.hashed_id8] = (issuer, self._beyond_issue_permissions(at, issuer))
            while len(self._chain_ok) > self._cache_size:  # only ATs that chain to our trust store get here
                self._chain_ok.popitem(last=False)
        issuer, beyond = known
        ca: Certificate | None = issuer
        top = issuer
        while ca is not None:  # issuer (and its root) valid at generationTime, AT inside their validity
            if not ca.valid_at_its(gen_s):
                return Reason.CHAIN_VALIDITY, f"issuer {ca.hashed_id8.hex()} not valid at generationTime"
            if at.start < ca.start or at.end > ca.end:
                return Reason.CHAIN_VALIDITY, f"AT validity exceeds issuer {ca.hashed_id8.hex()} validity"
            top, ca = ca, self._issuer_of(ca, pki)
        if pki is not None and (not top.is_self_signed or pki.root(top.hashed_id8, self.clock.now()) is None):
            return Reason.UNTRUSTED_ROOT, (
                f"chain ends at {top.hashed_id8.hex()}, not a root of the applied ECTL valid now"
            )
        return beyond

    @staticmethod
    def _beyond_issue_permissions(at: Certificate, issuer: Certificate) -> tuple[Reason, str] | None:
        """CHAIN_PERMISSIONS when ``at`` grants more than ``issuer`` may (fixed per pair: kept with the chain)."""
        for p, ssp_bytes in at.app_permissions.items():
            rng = issuer.issue_range(p)
            if not ssp_within_range(ssp_bytes, rng):
                return Reason.CHAIN_PERMISSIONS, (
                    f"issuer {issuer.hashed_id8.hex()} may not grant ITS-AID {p}"
                    + (f" with SSP {ssp_bytes.hex()}" if ssp_bytes else "")
                )
        return None

    def _issuer_of(self, cert: Certificate, pki: PkiTrust | None) -> Certificate | None:
        """The issuer from the local trust store, else the PKI client's (listed unrevoked EA/AA, ECTL root)."""
        assert self.trust is not None  # only the chain check asks, and only with a trust store
        found = self.trust.issuer_of(cert)
        if found is not None or pki is None or cert.is_self_signed or not cert.issuer_id:
            return found
        listed = pki.authority(cert.issuer_id)
        if listed is not None:
            return listed[1].certificate
        root = pki.roots.get(cert.issuer_id)
        return root.certificate if root is not None else None

    # ------------------------------------------------------------------ held messages
    def _hold(
        self,
        h8: bytes,
        data: bytes,
        expected: MessageKind | None,
        now: float,
        payload_offset: int = 0,
        context: Any = None,
    ) -> None:
        self._held_seq += 1
        self._held[self._held_seq] = (now, h8, data, expected, payload_offset, context)
        self._held_by_signer.setdefault(h8, []).append(self._held_seq)

    def _take(self, seq: int) -> HeldFrame:
        item = self._held.pop(seq)
        seqs = self._held_by_signer.get(item[1])
        if seqs is not None:
            seqs.remove(seq)
            if not seqs:
                del self._held_by_signer[item[1]]
        return item

    def _left_hold(self, item: HeldFrame, reason: Reason, detail: str) -> VerificationResult:
        _, h8, _, expected, _, ctx = item
        return VerificationResult(
            reason,
            detail,
            psid=expected.its_aid if expected else None,
            signer_form="digest",
            signer_id=h8,
            from_hold=True,
            context=ctx,
        )

    def _evict_held(self) -> list[VerificationResult]:
        out = []
        while len(self._held) > self.hold_limit:
            item = self._take(next(iter(self._held)))
            self.on_limit("held-frames")
            out.append(
                self._left_hold(
                    item, Reason.HOLD_QUEUE_FULL, f"held frames limit {self.hold_limit} reached; the oldest was dropped"
                )
            )
        return out

    def expire_held(self) -> list[VerificationResult]:
        """Held messages whose ``hold_seconds`` ran out, as HELD_EXPIRED results (also called by :meth:`verify`)."""
        if not self._held:
            return []
        horizon = self.clock.now() - self.hold_seconds
        out = []
        while self._held:
            seq, item = next(iter(self._held.items()))
            if item[0] >= horizon:
                break  # arrival order: the rest is younger
            self._take(seq)
            out.append(
                self._left_hold(
                    item,
                    Reason.HELD_EXPIRED,
                    f"signer certificate {item[1].hex()} did not arrive within {self.hold_seconds} s",
                )
            )
        return out

    def _release(self, h8: bytes | None) -> list[VerificationResult]:
        seqs = list(self._held_by_signer.get(h8, ())) if h8 else []
        out = []
        for seq in seqs:
            _, _, data, expected, offset, ctx = self._take(seq)
            r = self._verify(data, expected, offset, ctx)
            r.from_hold = True
            out.append(r)
        return out

    @property
    def held_count(self) -> int:
        return len(self._held)
