"""Trust lists of the EU CCMS (TS 102 941 §6.3): ECTL, Root CA CTL (full and delta), CRL.

Two layers, both sans-I/O (bytes and a POSIX ``now`` in, values out):

* :func:`parse_trust_list` splits a received list into a :class:`TrustList`: the signed
  envelope, the list body and, for every entry, the certificate **bytes as received**
  (sliced from the message, never re-encoded: they are hashed and signature-checked).
  Structural rules are enforced here (list kind vs psid, ECTL without EA/AA entries,
  Root CA CTL without root/TLM entries, no delete in a full list).
* :class:`TrustStore` is an immutable snapshot. ``with_ectl``, ``with_ctl`` and
  ``with_crl`` return a *new* store or raise :class:`TrustListError`; a list that does
  not verify completely changes nothing (facts §8.4).

Every refusal names a ``reason`` (a short stable string, see :data:`REASONS`).

Decisions where the sources leave room (facts §15):

* ``ctlSequence`` (0..255) wraps: a full list is newer when ``(new - old) mod 256`` is
  1..127; the same number is accepted again only for the identical bytes (a refresh),
  anything else is ``sequence-rollback`` / ``sequence-conflict``. A delta must be exactly
  ``old + 1`` (``sequence-gap``) and needs a full list of the same signer before it
  (``delta-without-base``).
* Signer form: an ECTL and a CTL may name their signer by certificate or by digest; a CRL
  likewise (VZ accepts both, open question 4/5). An inline certificate must be byte-equal
  to the trusted one.
* Signer rights (CTL SSP, facts §10.2): adding a root needs the RCA bit, a TLM the TLM bit,
  an EA/AA/DC the EA/AA/DC bit; a CRL signer needs psid 622.
* The signature field must be canonically encoded (:func:`rsu.pki.signed.open_signed`):
  asn1tools does not enforce the open-type length of the P-384 signature alternatives, so
  without this a changed length octet would still verify.
* TLM link certificate (facts §8.4 step 9, open question 3): a ``TlmLinkCertificateMessage``
  signed (psid 624, TLM bit) by a TLM the store trusts, not past its ``expiryTime``, whose
  ``certificateHash`` is the hash of the new TLM certificate as received, with the hash of the
  signing TLM's curve (SHA-384 for a P-384 TLM, else SHA-256; another algorithm is refused as
  ``link-mismatch``). The new TLM must be validly self-signed, valid and hold the TLM right.
  A TLM trusted through a link stays trusted across full ECTLs, like an anchor.
* Expired roots listed in an ECTL are kept (the list is still valid) but never trusted:
  :meth:`TrustStore.root` checks validity at use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from rsu import clock
from rsu.pki import coer
from rsu.pki.errors import PkiError
from rsu.pki.signed import PSID_CRL, PSID_CTL, Opened, SignedDataError, open_signed, signer_hashed_id8
from rsu.security.certs import Certificate, CertificateError
from rsu.security.coer import read_length

KINDS = {"certificateTrustListTlm": "ectl", "certificateTrustListRca": "ctl", "certificateRevocationList": "crl"}
KIND_PSID = {"ectl": PSID_CTL, "ctl": PSID_CTL, "crl": PSID_CRL}
# CTL SSP bits of the signer (octet 1 after the version octet), facts §10.2
CTL_RIGHT = {"tlm": 0x80, "rca": 0x40, "ea": 0x20, "aa": 0x10, "dc": 0x08}
ALLOWED_ADDS = {"ectl": {"rca", "tlm", "dc"}, "ctl": {"ea", "aa", "dc"}}

REASONS = (
    "malformed",
    "not-signed",
    "wrong-psid",
    "wrong-content",
    "unsupported-version",
    "profile-violation",
    "entry-invalid",
    "signer-unknown",
    "signer-mismatch",
    "signer-certificate-invalid",
    "signer-expired",
    "signer-permissions",
    "invalid-signature",
    "expired",
    "not-yet-valid",
    "sequence-rollback",
    "sequence-conflict",
    "sequence-gap",
    "delta-without-base",
    "crl-rollback",
    "unknown-issuer",
    "wrong-issuer",
    "link-mismatch",
)


class TrustListError(PkiError):
    """A trust list refused. ``reason`` is one of :data:`REASONS`; ``detail`` says what exactly."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(reason, detail)


# ====================================================================== parsing


@dataclass(frozen=True)
class Entry:
    """One CtlCommand. ``certificate``/``successor_to`` are parsed from the received bytes."""

    action: str  # "add" | "delete"
    kind: str  # add: rca/ea/aa/dc/tlm; delete: cert/dc
    certificate: Certificate | None = None
    successor_to: Certificate | None = None
    url: str | None = None  # dc url, TLM/AA access point, EA aaAccessPoint
    its_url: str | None = None  # EA itsAccessPoint
    hashes: tuple[bytes, ...] = ()  # dc: the roots it serves; delete cert: the one HashedId8

    @property
    def hashed_id8(self) -> bytes | None:
        return signer_hashed_id8(self.certificate) if self.certificate is not None else None

    @property
    def cert(self) -> Certificate:
        """The certificate an add command of a root, EA, AA or TLM carries (every one carries it)."""
        if self.certificate is None:
            raise TrustListError("malformed", f"{self.action} {self.kind} command without a certificate")
        return self.certificate

    @property
    def h8(self) -> bytes:
        """HashedId8 of :attr:`cert`."""
        return signer_hashed_id8(self.cert)

    @property
    def access_point(self) -> str:
        """The URL an EA (aaAccessPoint), AA or TLM entry carries (every one carries it)."""
        if self.url is None:
            raise TrustListError("malformed", f"{self.action} {self.kind} command without its access point")
        return self.url


class _Signed:
    """The signer of a parsed message (``self.signed``: :class:`Opened`)."""

    signed: Opened

    @property
    def signer_certificate(self) -> Certificate | None:
        return self.signed.signer_certificate if self.signed.signer_form == "certificate" else None

    @property
    def signer_id(self) -> bytes | None:
        """HashedId8 of the signer: the digest, or computed from the inline certificate."""
        if self.signed.signer_form == "digest":
            return self.signed.signer_digest
        cert = self.signer_certificate
        return signer_hashed_id8(cert) if cert is not None else None


@dataclass
class TrustList(_Signed):
    kind: str  # "ectl" | "ctl" | "crl"
    raw: bytes
    signed: Opened = field(repr=False)
    body: dict = field(repr=False)  # CtlFormat / ToBeSignedCrl without ctlCommands
    payload: bytes = field(repr=False, default=b"")

    @cached_property
    def entries(self) -> list[Entry]:
        """The commands, parsed on first use (after the signature check: parsing costs more)."""
        if self.kind == "crl":
            return []
        entries = _entries(self.payload, 2)
        _check_ctl_profile(self.kind, self.is_full, entries)
        return entries

    @property
    def next_update(self) -> int:
        """Time32 (TAI seconds since 2004)."""
        return self.body["nextUpdate"]

    @property
    def sequence(self) -> int | None:
        return self.body.get("ctlSequence")

    @property
    def is_full(self) -> bool:
        return self.kind == "crl" or bool(self.body["isFullCtl"])

    @property
    def this_update(self) -> int | None:
        return self.body.get("thisUpdate")

    @property
    def revoked(self) -> tuple[bytes, ...]:
        return tuple(self.body.get("entries", ())) if self.kind == "crl" else ()

    def adds(self, kind: str) -> list[Entry]:
        return [e for e in self.entries if e.action == "add" and e.kind == kind]


_CONTENT_TAGS = {0x84: "certificateRevocationList", 0x85: "certificateTrustListTlm", 0x86: "certificateTrustListRca"}


def parse_trust_list(data: bytes) -> TrustList:
    """Parse the envelope and list header and check them; raises TrustListError (nothing verified yet).

    The commands (:attr:`TrustList.entries`) are parsed when first used.
    """
    data = bytes(data)
    opened, payload = _open_data(data)
    alt = _CONTENT_TAGS.get(payload[1])
    if alt is None:
        raise TrustListError("wrong-content", f"content tag {payload[1]:#04x} is not a trust or revocation list")
    kind = KINDS[alt]
    try:
        if kind == "crl":
            body = coer.decode("EtsiTs102941Data", payload)["content"][1]
        else:
            body = _ctl_header(payload, 2)
    except coer.CoerError as e:
        raise TrustListError("malformed", f"EtsiTs102941Data: {e}") from None
    if opened.psid != KIND_PSID[kind]:
        raise TrustListError("wrong-psid", f"{kind} signed with psid {opened.psid} (expected {KIND_PSID[kind]})")
    if body["version"] != 1:
        raise TrustListError("unsupported-version", f"{kind} version {body['version']}")
    tl = TrustList(kind, data, opened, body, payload)
    try:
        tl.signer_certificate  # noqa: B018 - parse an inline signer certificate now, so that it is refused here
    except SignedDataError as e:
        raise TrustListError("signer-certificate-invalid", e.detail) from None
    return tl


@dataclass
class LinkCertificate(_Signed):
    """A TlmLinkCertificateMessage: the old TLM's signed statement that a new TLM certificate succeeds it."""

    raw: bytes
    signed: Opened = field(repr=False)
    expiry_time: int  # Time32
    hash_name: str  # "sha256" | "sha384" | the HashedData alternative when neither
    certificate_hash: bytes


_LINK_TLM_TAG = 0x8A  # EtsiTs102941DataContent extension alternative 10, linkCertificateTlm


def parse_link_certificate(data: bytes) -> LinkCertificate:
    """Parse a TlmLinkCertificateMessage (nothing verified yet); raises TrustListError."""
    data = bytes(data)
    opened, payload = _open_data(data)
    if payload[1] != _LINK_TLM_TAG:
        raise TrustListError("wrong-content", f"content tag {payload[1]:#04x} is not linkCertificateTlm")
    try:
        body = coer.decode("EtsiTs102941Data", payload)["content"][1]
    except coer.CoerError as e:
        raise TrustListError("malformed", f"EtsiTs102941Data: {e}") from None
    if opened.psid != PSID_CTL:
        raise TrustListError("wrong-psid", f"TLM link certificate signed with psid {opened.psid} (expected {PSID_CTL})")
    alt, value = body["certificateHash"]
    link = LinkCertificate(data, opened, body["expiryTime"], alt.removesuffix("HashedData"), bytes(value))
    try:
        link.signer_certificate  # noqa: B018 - parsed now, so that a bad inline certificate is refused here
    except SignedDataError as e:
        raise TrustListError("signer-certificate-invalid", e.detail) from None
    return link


def _open_data(data: bytes) -> tuple[Opened, bytes]:
    """The SignedData and its EtsiTs102941Data payload (version v1 checked)."""
    try:
        opened = open_signed(data)
        payload = opened.payload
    except SignedDataError as e:
        raise TrustListError("not-signed" if e.reason == "not-signed" else "malformed", e.detail) from None
    if len(payload) < 2 or payload[0] != 1:
        raise TrustListError("malformed", "EtsiTs102941Data version is not v1")
    return opened, payload


def _ctl_header(payload: bytes, start: int) -> dict:
    """CtlFormat up to ctlCommands (fixed layout after the version), and where the commands start."""
    p = start + 1  # preamble: the extension bit only
    n, p = read_length(payload, p)
    if n == 0 or p + n + 6 > len(payload):
        raise coer.CoerError("CtlFormat truncated")
    version = int.from_bytes(payload[p : p + n], "big")
    p += n
    full = payload[p + 4]
    if full not in (0x00, 0xFF):
        raise coer.CoerError(f"isFullCtl octet {full:#04x}")
    return {
        "version": version,
        "nextUpdate": int.from_bytes(payload[p : p + 4], "big"),
        "isFullCtl": full == 0xFF,
        "ctlSequence": payload[p + 5],
        "commandsAt": p + 6,
    }


def _entries(payload: bytes, start: int) -> list[Entry]:
    """Walk CtlFormat's commands over the received bytes, slicing each certificate."""
    try:
        p = _ctl_header(payload, start)["commandsAt"]
        qlen, p = read_length(payload, p)
        count = int.from_bytes(payload[p : p + qlen], "big")
        p += qlen
        out = []
        for _ in range(count):
            value, end = coer.decode_prefix("CtlCommand", payload, p)
            out.append(_entry(payload, p, value))
            p = end
        if p != len(payload):
            raise coer.CoerError(f"{len(payload) - p} trailing bytes after ctlCommands")
    except coer.CoerError as e:
        raise TrustListError("malformed", f"ctlCommands: {e}") from None
    return out


def _cert_at(payload: bytes, offset: int) -> tuple[Certificate, int]:
    _, end = coer.decode_prefix("EtsiTs103097Certificate", payload, offset)
    try:
        return Certificate.from_bytes(payload[offset:end]), end
    except CertificateError as e:
        raise TrustListError("entry-invalid", f"certificate at byte {offset}: {e}") from None


def _entry(payload: bytes, p: int, value: tuple) -> Entry:
    action, (kind, v) = value
    if action == "delete":
        if kind == "cert":
            return Entry("delete", "cert", hashes=(v,))
        return Entry("delete", kind, url=v)
    if kind in ("rca", "ea", "tlm"):  # SEQUENCE with an OPTIONAL: one preamble octet before the certificate
        cert, end = _cert_at(payload, p + 3)
    elif kind == "aa":
        cert, end = _cert_at(payload, p + 2)
    else:
        return Entry("add", kind, url=v["url"], hashes=tuple(v["cert"]))
    successor = None
    if kind in ("rca", "tlm") and "successorTo" in v:
        successor, _ = _cert_at(payload, end)
    if kind == "rca":
        return Entry("add", "rca", cert, successor)
    if kind == "tlm":
        return Entry("add", "tlm", cert, successor, url=v["accessPoint"])
    if kind == "ea":
        return Entry("add", "ea", cert, url=v["aaAccessPoint"], its_url=v.get("itsAccessPoint"))
    return Entry("add", "aa", cert, url=v["accessPoint"])


def _check_ctl_profile(kind: str, is_full: bool, entries: list[Entry]) -> None:
    allowed = ALLOWED_ADDS[kind]
    for e in entries:
        if e.action == "add" and e.kind not in allowed:
            raise TrustListError("profile-violation", f"{kind} must not add {e.kind} entries")
        if e.action == "delete" and is_full:
            raise TrustListError("profile-violation", "a full list must not contain delete commands")


# ====================================================================== verification


def verify_signature(tl: TrustList, signer: Certificate) -> bool:
    """Is ``tl`` signed by ``signer`` (its key; the certificate enters the hash)?"""
    return tl.signed.verify(signer.public_key, signer)


def _list_signer(tl: TrustList) -> bytes:
    """HashedId8 of the list's signer: lists are signed by digest or certificate (profile-violation otherwise)."""
    signer_id = tl.signer_id
    if tl.signed.signer_form not in ("certificate", "digest") or signer_id is None:
        raise TrustListError("profile-violation", f"{tl.kind} signer is {tl.signed.signer_form}")
    return signer_id


def _ctl_sequence(tl: TrustList) -> int:
    """ctlSequence of an ECTL or CTL (every CtlFormat has one)."""
    if tl.sequence is None:
        raise TrustListError("malformed", f"{tl.kind} without ctlSequence")
    return tl.sequence


def _crl_this_update(tl: TrustList) -> int:
    """thisUpdate of a CRL (every ToBeSignedCrl has one)."""
    if tl.this_update is None:
        raise TrustListError("malformed", f"{tl.kind} without thisUpdate")
    return tl.this_update


def _check_signed_by(tl: TrustList, trusted: dict[bytes, Certificate], now: float, what: str) -> Certificate:
    """Resolve the signer among ``trusted`` (HashedId8 -> cert), check rights, signature and dates."""
    inline = tl.signer_certificate if tl.signed.signer_form == "certificate" else None
    signer_id = _list_signer(tl)
    signer = trusted.get(signer_id)
    if signer is None:
        raise TrustListError("signer-unknown", f"{tl.kind} signer {signer_id.hex()} is not a trusted {what}")
    if inline is not None and inline.raw != signer.raw:
        raise TrustListError("signer-mismatch", f"inline signer certificate differs from the trusted {what}")
    its_now = clock.posix_to_its_seconds(now)
    if not signer.valid_at_its(its_now):
        raise TrustListError("signer-expired", f"{what} certificate {signer_id.hex()} is not valid now")
    if not verify_signature(tl, signer):
        raise TrustListError("invalid-signature", f"{tl.kind} signature does not verify with {signer_id.hex()}")
    perms = signer.app_permissions
    if KIND_PSID[tl.kind] not in perms:
        raise TrustListError("signer-permissions", f"{what} certificate lacks psid {KIND_PSID[tl.kind]}")
    if tl.kind != "crl":
        ssp = perms[PSID_CTL] or b""
        for e in tl.entries:
            if e.action == "add" and not (len(ssp) >= 2 and ssp[1] & CTL_RIGHT[e.kind]):
                raise TrustListError(
                    "signer-permissions", f"{what} may not list {e.kind} entries (CTL SSP {ssp.hex()})"
                )
    if tl.next_update < its_now:
        raise TrustListError(
            "expired", f"{tl.kind} nextUpdate {clock.iso_utc(clock.time32_to_posix(tl.next_update))} has passed"
        )
    if tl.kind == "crl" and _crl_this_update(tl) > its_now:
        raise TrustListError("not-yet-valid", "CRL thisUpdate is in the future")
    return signer


def _check_sequence(tl: TrustList, previous: ListState | None) -> None:
    if previous is None:
        if not tl.is_full:
            raise TrustListError("delta-without-base", f"delta {tl.kind} {tl.sequence} without a full list before it")
        return
    step = (_ctl_sequence(tl) - previous.sequence) % 256
    if not tl.is_full:
        if step != 1:
            raise TrustListError("sequence-gap", f"delta {tl.kind} {tl.sequence} does not follow {previous.sequence}")
    elif step == 0:
        if tl.raw != previous.raw:
            raise TrustListError("sequence-conflict", f"another {tl.kind} with the same sequence {tl.sequence}")
    elif step >= 128:
        raise TrustListError("sequence-rollback", f"{tl.kind} sequence {tl.sequence} is older than {previous.sequence}")


def _check_issued_by(entry: Entry, root: Certificate) -> None:
    cert = entry.cert
    if cert.issuer_id != root.hashed_id8_for(cert.issuer_hash_name):
        raise TrustListError(
            "wrong-issuer", f"{entry.kind} {entry.h8.hex()} is not issued by the root {signer_hashed_id8(root).hex()}"
        )
    if not cert.signature_valid(root):
        raise TrustListError("entry-invalid", f"{entry.kind} {entry.h8.hex()}: signature by the root does not verify")
    if "encryptionKey" not in cert.value["toBeSigned"]:
        raise TrustListError("entry-invalid", f"{entry.kind} {entry.h8.hex()} has no encryption key")


# ====================================================================== the store


@dataclass(frozen=True)
class ListState:
    """What is kept of an applied list: its bytes (persisted as is), sequence, dates, signer."""

    raw: bytes
    sequence: int
    next_update: int
    signer: bytes
    this_update: int | None = None


@dataclass(frozen=True)
class Authority:
    certificate: Certificate
    url: str  # AA: accessPoint; EA: aaAccessPoint
    its_url: str | None = None  # EA: itsAccessPoint

    @property
    def hashed_id8(self) -> bytes:
        return signer_hashed_id8(self.certificate)


@dataclass(frozen=True)
class RootState:
    certificate: Certificate
    successor_to: bytes | None = None
    ctl: ListState | None = None
    eas: dict = field(default_factory=dict)  # H8 -> Authority
    aas: dict = field(default_factory=dict)
    dcs: tuple = ()  # DC URLs listed in the root's own CTL
    crl: ListState | None = None
    revoked: frozenset = frozenset()


@dataclass(frozen=True)
class TrustStore:
    """Immutable trust snapshot; every ``with_*`` returns a new store or raises TrustListError."""

    anchors: dict  # H8 -> TLM certificate trusted out of band
    anchor_ids: frozenset = frozenset()  # TLM HashedId8s trusted out of band, certificate still to come
    tlms: dict = field(default_factory=dict)  # H8 -> TLM certificates trusted now (anchors + linked successors)
    ectl: ListState | None = None
    cpoc: str | None = None
    roots: dict = field(default_factory=dict)  # H8 -> RootState
    dcs: dict = field(default_factory=dict)  # URL -> tuple of root H8 (from the ECTL)
    linked: dict = field(default_factory=dict)  # H8 -> TLM certificates trusted through a link certificate

    @classmethod
    def with_anchor(cls, *tlm_certificates: Certificate) -> TrustStore:
        anchors = {signer_hashed_id8(c): c for c in tlm_certificates}
        return cls(anchors=anchors, tlms=dict(anchors))

    @classmethod
    def with_anchor_ids(cls, *tlm_ids: bytes) -> TrustStore:
        """Trust TLMs known only by HashedId8 (e.g. L0 ``8FFE810BDB0D71E6`` from configuration): an ECTL
        carrying that certificate inline, validly self-signed, then anchors the store (facts §8.4 step 1)."""
        return cls(anchors={}, anchor_ids=frozenset(bytes(h) for h in tlm_ids))

    def _trusted_tlms(self, tl: TrustList) -> dict[bytes, Certificate]:
        tlms = dict(self.tlms)
        inline, signer_id = tl.signer_certificate, tl.signer_id
        if inline is not None and signer_id is not None and signer_id in self.anchor_ids and signer_id not in tlms:
            if not inline.is_self_signed or not inline.signature_valid(None):
                raise TrustListError("signer-certificate-invalid", f"TLM {signer_id.hex()} is not validly self-signed")
            tlms[signer_id] = inline
        return tlms

    # ------------------------------------------------------------------ ECTL
    def with_ectl(self, data: bytes, now: float) -> TrustStore:
        tl = parse_trust_list(data)
        if tl.kind != "ectl":
            raise TrustListError("wrong-content", f"expected an ECTL, got a {tl.kind}")
        signer = _check_signed_by(tl, self._trusted_tlms(tl), now, "TLM")
        signer_id = signer_hashed_id8(signer)
        previous = self.ectl if self.ectl is not None and self.ectl.signer == signer_id else None
        _check_sequence(tl, previous)
        for e in tl.adds("rca"):
            if not e.cert.is_self_signed or not e.cert.signature_valid(None):
                raise TrustListError("entry-invalid", f"root {e.h8.hex()} is not validly self-signed")
        for e in tl.adds("tlm"):
            if not e.cert.is_self_signed or not e.cert.signature_valid(None):
                raise TrustListError("entry-invalid", f"TLM {e.h8.hex()} is not validly self-signed")
        roots = {} if tl.is_full else dict(self.roots)
        dcs = {} if tl.is_full else dict(self.dcs)
        tlms = {**self.anchors, **self.linked} if tl.is_full else dict(self.tlms)
        tlms[signer_id] = signer
        anchors = dict(self.anchors)
        if signer_id in self.anchor_ids:
            anchors[signer_id] = signer  # the configured id now has its certificate
        cpoc = None if tl.is_full else self.cpoc
        for e in tl.entries:
            if e.action == "delete":
                if e.kind == "cert":
                    roots.pop(e.hashes[0], None)
                    for url, hs in list(dcs.items()):
                        dcs[url] = tuple(h for h in hs if h != e.hashes[0])
                else:
                    dcs.pop(e.url, None)
            elif e.kind == "rca":
                h8 = e.h8
                old = self.roots.get(h8)
                keep = old if old is not None and old.certificate.raw == e.cert.raw else None
                roots[h8] = keep or RootState(e.cert, signer_hashed_id8(e.successor_to) if e.successor_to else None)
            elif e.kind == "dc":
                dcs[e.url] = e.hashes
            elif e.kind == "tlm":
                cpoc = e.url
                # a new TLM is trusted only when the list signed by a trusted TLM says it succeeds it
                if e.h8 in tlms or (
                    e.successor_to is not None
                    and signer_hashed_id8(e.successor_to) in tlms
                    and e.successor_to.raw == tlms[signer_hashed_id8(e.successor_to)].raw
                ):
                    tlms[e.h8] = e.cert
        state = ListState(tl.raw, _ctl_sequence(tl), tl.next_update, signer_id)
        return replace(self, anchors=anchors, tlms=tlms, ectl=state, cpoc=cpoc, roots=roots, dcs=dcs)

    # ------------------------------------------------------------------ TLM link certificate
    def with_tlm_link(self, data: bytes, candidates: list[bytes], now: float) -> tuple[TrustStore, bytes]:
        """Trust the new TLM that a link certificate signed by a trusted TLM names: (new store, the
        certificate bytes among ``candidates`` whose hash the link carries). Refused with a reason:
        not-signed, malformed, wrong-psid, signer-unknown/-mismatch/-expired/-permissions,
        invalid-signature, expired (past expiryTime), link-mismatch (no candidate has that hash, or the
        hash is not of the signer's curve), entry-invalid (the new TLM is not a valid TLM certificate)."""
        link = parse_link_certificate(data)
        signer_id = link.signer_id
        if link.signed.signer_form not in ("certificate", "digest") or signer_id is None:
            raise TrustListError("profile-violation", f"link certificate signer is {link.signed.signer_form}")
        signer = self.tlms.get(signer_id)
        if signer is None:
            raise TrustListError("signer-unknown", f"link certificate signer {signer_id.hex()} is not a trusted TLM")
        inline = link.signer_certificate
        if inline is not None and inline.raw != signer.raw:
            raise TrustListError("signer-mismatch", "inline signer certificate differs from the trusted TLM")
        its_now = clock.posix_to_its_seconds(now)
        if not signer.valid_at_its(its_now):
            raise TrustListError("signer-expired", f"TLM certificate {signer_id.hex()} is not valid now")
        if not link.signed.verify(signer.public_key, signer):
            raise TrustListError(
                "invalid-signature", f"link certificate signature does not verify with {signer_id.hex()}"
            )
        ssp = signer.app_permissions.get(PSID_CTL) or b""
        if not (len(ssp) >= 2 and ssp[1] & CTL_RIGHT["tlm"]):
            raise TrustListError(
                "signer-permissions", f"TLM {signer_id.hex()} lacks the TLM right (CTL SSP {ssp.hex()})"
            )
        if link.expiry_time < its_now:
            raise TrustListError(
                "expired",
                f"link certificate expiryTime {clock.iso_utc(clock.time32_to_posix(link.expiry_time))} has passed",
            )
        wanted = signer.id_hash_name
        if link.hash_name != wanted:
            raise TrustListError(
                "link-mismatch", f"certificateHash is {link.hash_name}, the signing TLM's curve needs {wanted}"
            )
        new = next((c for c in candidates if _hash(wanted, c) == link.certificate_hash), None)
        if new is None:
            raise TrustListError(
                "link-mismatch",
                f"no TLM certificate has the hash the link names ({link.certificate_hash.hex()[:16]}...)",
            )
        try:
            cert = Certificate.from_bytes(new)
        except CertificateError as e:
            raise TrustListError("entry-invalid", f"linked TLM certificate: {e}") from None
        cert_ssp = cert.app_permissions.get(PSID_CTL) or b""
        if not cert.is_self_signed or not cert.signature_valid(None):
            raise TrustListError("entry-invalid", "linked TLM certificate is not validly self-signed")
        if not cert.valid_at(now) or not (len(cert_ssp) >= 2 and cert_ssp[1] & CTL_RIGHT["tlm"]):
            raise TrustListError("entry-invalid", "linked TLM certificate is not valid now or lacks the TLM right")
        h8 = signer_hashed_id8(cert)
        return replace(self, tlms={**self.tlms, h8: cert}, linked={**self.linked, h8: cert}), cert.raw

    # ------------------------------------------------------------------ Root CA CTL
    def _root_list(self, data: bytes, kind: str, now: float) -> tuple[TrustList, RootState]:
        """Parse a list a Root CA signs, find that root in the applied ECTL, check the signature."""
        tl = parse_trust_list(data)
        if tl.kind != kind:
            raise TrustListError("wrong-content", f"expected a {kind.upper()}, got a {tl.kind.upper()}")
        signer_id = _list_signer(tl)  # a list signed otherwise is refused here, before the root is looked up
        root_state = self.roots.get(signer_id)
        if root_state is None:
            raise TrustListError("signer-unknown", f"{kind.upper()} signer {signer_id.hex()} is not a root of the ECTL")
        _check_signed_by(tl, {signer_id: root_state.certificate}, now, "root CA")
        return tl, root_state

    def with_ctl(self, data: bytes, now: float) -> TrustStore:
        tl, root_state = self._root_list(data, "ctl", now)
        root = root_state.certificate
        _check_sequence(tl, root_state.ctl)
        for e in tl.adds("ea") + tl.adds("aa"):
            _check_issued_by(e, root)
        eas = {} if tl.is_full else dict(root_state.eas)
        aas = {} if tl.is_full else dict(root_state.aas)
        dcs = [] if tl.is_full else list(root_state.dcs)
        for e in tl.entries:
            if e.action == "delete":
                if e.kind == "cert":
                    eas.pop(e.hashes[0], None)
                    aas.pop(e.hashes[0], None)
                elif e.url in dcs:
                    dcs.remove(e.url)
            elif e.kind == "ea":
                eas[e.h8] = Authority(e.cert, e.access_point, e.its_url)
            elif e.kind == "aa":
                aas[e.h8] = Authority(e.cert, e.access_point)
            elif e.kind == "dc" and e.url not in dcs:
                dcs.append(e.url)
        signer_id = _list_signer(tl)
        state = ListState(tl.raw, _ctl_sequence(tl), tl.next_update, signer_id)
        new_root = replace(root_state, ctl=state, eas=eas, aas=aas, dcs=tuple(dcs))
        return replace(self, roots={**self.roots, signer_id: new_root})

    # ------------------------------------------------------------------ CRL
    def with_crl(self, data: bytes, now: float) -> TrustStore:
        tl, root_state = self._root_list(data, "crl", now)
        signer_id, this_update = _list_signer(tl), _crl_this_update(tl)
        applied = root_state.crl.this_update if root_state.crl is not None else None  # a CRL's state has it
        if applied is not None and this_update < applied:
            raise TrustListError("crl-rollback", "CRL thisUpdate is older than the one applied")
        state = ListState(tl.raw, 0, tl.next_update, signer_id, this_update)
        new_root = replace(root_state, crl=state, revoked=frozenset(tl.revoked))
        return replace(self, roots={**self.roots, signer_id: new_root})

    # ------------------------------------------------------------------ queries
    def root(self, h8: bytes, now: float) -> Certificate | None:
        """A trusted root: listed in the applied ECTL and valid at ``now``."""
        state = self.roots.get(h8)
        if state is None or not state.certificate.valid_at(now):
            return None
        return state.certificate

    def is_revoked(self, h8: bytes) -> bool:
        return any(h8 in r.revoked for r in self.roots.values())

    def authority(self, h8: bytes) -> tuple[str, Authority, bytes] | None:
        """("ea"|"aa", authority, root H8) for a listed, unrevoked EA or AA."""
        for root_h8, r in self.roots.items():
            for kind, table in (("ea", r.eas), ("aa", r.aas)):
                if h8 in table and h8 not in r.revoked:
                    return kind, table[h8], root_h8
        return None

    def summary(self, now: float) -> dict[str, Any]:
        its_now = clock.posix_to_its_seconds(now)
        return {
            "tlm": sorted(h.hex() for h in self.tlms),
            "ectl": _list_json(self.ectl, its_now),
            "cpoc": self.cpoc,
            "roots": {
                h.hex(): {
                    "name": r.certificate.name,
                    "valid": r.certificate.valid_at(now),
                    "ctl": _list_json(r.ctl, its_now),
                    "crl": _list_json(r.crl, its_now),
                    "eas": sorted(a.hex() for a in r.eas),
                    "aas": sorted(a.hex() for a in r.aas),
                    "revoked": sorted(x.hex() for x in r.revoked),
                }
                for h, r in sorted(self.roots.items())
            },
            "dcs": {url: [h.hex() for h in hs] for url, hs in sorted(self.dcs.items())},
        }


def _hash(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def _list_json(state: ListState | None, its_now: float) -> dict | None:
    if state is None:
        return None
    return {
        "sequence": state.sequence,
        "nextUpdate": clock.iso_utc(clock.time32_to_posix(state.next_update)),
        "expired": state.next_update < its_now,
        "signer": state.signer.hex(),
    }


# ====================================================================== description (CLI)


def _iso_time64(t: int | None) -> str | None:
    return clock.iso_utc(clock.time64_to_posix(t)) if t is not None else None  # a list without generationTime: null


def describe(tl: TrustList, now: float | None, signer: Certificate | None = None) -> dict[str, Any]:
    """JSON description of a parsed list; ``signatureValid`` needs the signer (inline or given)."""
    cert = tl.signer_certificate or signer
    out: dict[str, Any] = {
        "kind": tl.kind,
        "generationTime": _iso_time64(tl.signed.generation_time),
        "nextUpdate": clock.iso_utc(clock.time32_to_posix(tl.next_update)),
        "nextUpdateTime32": tl.next_update,
        "signer": {
            "form": tl.signed.signer_form,
            "hashedId8": tl.signer_id.hex() if tl.signer_id else None,
            "name": cert.name if cert is not None else None,
        },
        "hashId": tl.signed.message.hash_id,
    }
    if tl.kind == "crl":
        out["thisUpdate"] = clock.iso_utc(clock.time32_to_posix(_crl_this_update(tl)))
        out["revoked"] = [h.hex() for h in tl.revoked]
    else:
        out["sequence"] = tl.sequence
        out["isFull"] = tl.is_full
        out["rootCAs"] = [
            {
                "hashedId8": e.h8.hex(),
                "name": e.cert.name,
                "successorTo": signer_hashed_id8(e.successor_to).hex() if e.successor_to else None,
            }
            for e in tl.adds("rca")
        ]
        out["dcs"] = [{"url": e.url, "rootCAs": [h.hex() for h in e.hashes]} for e in tl.adds("dc")]
        out["tlms"] = [{"hashedId8": e.h8.hex(), "name": e.cert.name, "accessPoint": e.url} for e in tl.adds("tlm")]
        out["eas"] = [
            {"hashedId8": e.h8.hex(), "aaAccessPoint": e.url, "itsAccessPoint": e.its_url} for e in tl.adds("ea")
        ]
        out["aas"] = [{"hashedId8": e.h8.hex(), "accessPoint": e.url} for e in tl.adds("aa")]
        out["deletes"] = [
            {"cert": e.hashes[0].hex()} if e.kind == "cert" else {"dc": e.url}
            for e in tl.entries
            if e.action == "delete"
        ]
    if cert is None:
        out["signatureValid"] = None
        out["validAtNow"] = None
        out["reason"] = "signer certificate not available (give --signer)"
        return out
    out["signatureValid"] = verify_signature(tl, cert)
    if now is not None:
        try:
            _check_signed_by(tl, {tl.signer_id: cert} if tl.signer_id else {}, now, "signer")
            out["validAtNow"], out["reason"] = True, None
        except TrustListError as e:
            out["validAtNow"], out["reason"] = False, e.reason
            out["detail"] = e.detail
        out["now"] = clock.iso_utc(now)
    return out
