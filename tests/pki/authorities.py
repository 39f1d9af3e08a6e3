"""Test PKI authorities as plain objects: a TLM, a Root CA publishing CTLs and CRLs (and, in
test_requests, an EA and an AA). They sign with the ETSI ATS test-PKI keys where those exist
(root CERT_IUT_A_RCA, EA CERT_TS_A_EA, AA CERT_IUT_A_AA); the TLM is made here (the ETSI set has none).
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec

from rsu import clock
from rsu.pki import coer, ecies, requests, signed
from rsu.security.certs import Certificate
from rsu.security.keys import CURVES, point_of_public_key, public_key_from_point
from rsu.security.pki import Issued, issue_certificate
from tests.pki.helpers import SeededRandomness, cert, encryption_key, signing_key

# 2019-06-01: inside the validity of the ETSI test root, EA, AA and EC
NOW = clock.time32_to_posix(486_500_000)
T32 = clock.time32(NOW)


def make_tlm(seed: str = "tlm", *, ssp: bytes = b"\x01\xc8", start: int = T32 - 86400 * 365) -> Issued:
    key = SeededRandomness(seed).private_key(ec.SECP256R1())
    tbs = {
        "id": ("name", f"test TLM {seed}"),
        "cracaId": b"\x00\x00\x00",
        "crlSeries": 0,
        "validityPeriod": {"start": start, "duration": ("years", 4)},
        "appPermissions": [{"psid": 624, "ssp": ("bitmapSsp", ssp)}],
        "verifyKeyIndicator": ("verificationKey", ("ecdsaNistP256", point_of_public_key(key.public_key()))),
    }
    return Issued(issue_certificate(tbs, None, key), key)


def etsi_root() -> Issued:
    return Issued(cert("CERT_IUT_A_RCA"), signing_key("CERT_IUT_A_RCA"))


def ctl_body(sequence: int, commands: list, *, full: bool = True, next_update: int | None = None) -> dict:
    return {
        "version": 1,
        "nextUpdate": next_update if next_update is not None else T32 + 30 * 86400,
        "isFullCtl": full,
        "ctlSequence": sequence,
        "ctlCommands": commands,
    }


def add_rca(c: Certificate, successor_to: Certificate | None = None) -> tuple:
    entry = {"selfsignedRootCa": c.value}
    if successor_to is not None:
        entry["successorTo"] = successor_to.value
    return ("add", ("rca", entry))


def add_tlm(c: Certificate, access_point: str, successor_to: Certificate | None = None) -> tuple:
    entry = {"selfSignedTLMCertificate": c.value, "accessPoint": access_point}
    if successor_to is not None:
        entry["successorTo"] = successor_to.value
    return ("add", ("tlm", entry))


def add_dc(url: str, *roots: Certificate) -> tuple:
    return ("add", ("dc", {"url": url, "cert": [signed.signer_hashed_id8(r) for r in roots]}))


def add_ea(c: Certificate, aa_url: str, its_url: str | None = None) -> tuple:
    entry = {"eaCertificate": c.value, "aaAccessPoint": aa_url}
    if its_url is not None:
        entry["itsAccessPoint"] = its_url
    return ("add", ("ea", entry))


def add_aa(c: Certificate, url: str) -> tuple:
    return ("add", ("aa", {"aaCertificate": c.value, "accessPoint": url}))


def signed_list(
    signer: Issued, content: str, body: dict, *, form: str = "certificate", psid: int | None = None, now: float = NOW
) -> bytes:
    """A trust/revocation list message: EtsiTs102941Data{content: body}, signed by ``signer``."""
    payload = coer.encode("EtsiTs102941Data", {"version": 1, "content": (content, body)})
    if psid is None:
        psid = 622 if content == "certificateRevocationList" else 624
    return signed.sign(
        signer.key,
        psid=psid,
        generation_time=clock.time64(now),
        payload=payload,
        signer=form,
        certificate=signer.certificate,
    )


def ectl(tlm: Issued, sequence: int, commands: list, **kw) -> bytes:
    form = kw.pop("form", "certificate")
    return signed_list(tlm, "certificateTrustListTlm", ctl_body(sequence, commands, **kw), form=form)


def rca_ctl(root: Issued, sequence: int, commands: list, **kw) -> bytes:
    form = kw.pop("form", "certificate")
    return signed_list(root, "certificateTrustListRca", ctl_body(sequence, commands, **kw), form=form)


def crl(
    root: Issued,
    revoked: list[bytes],
    *,
    this_update: int = T32 - 3600,
    next_update: int = T32 + 7 * 86400,
    form: str = "digest",
) -> bytes:
    body = {"version": 1, "thisUpdate": this_update, "nextUpdate": next_update, "entries": revoked}
    return signed_list(root, "certificateRevocationList", body, form=form)


def tlm_link(
    tlm: Issued,
    new: Certificate,
    *,
    expiry: int = T32 + 30 * 86400,
    hash_name: str | None = None,
    psid: int = 624,
    form: str = "certificate",
    now: float = NOW,
) -> bytes:
    """A TlmLinkCertificateMessage: ``tlm`` signs expiryTime and the hash of ``new`` (by default the hash of
    ``tlm``'s own curve, as rsu expects)."""
    hash_name = hash_name or tlm.certificate.id_hash_name
    body = {
        "expiryTime": expiry,
        "certificateHash": (f"{hash_name}HashedData", hashlib.new(hash_name, new.raw).digest()),
    }
    payload = coer.encode("EtsiTs102941Data", {"version": 1, "content": ("linkCertificateTlm", body)})
    return signed.sign(
        tlm.key, psid=psid, generation_time=clock.time64(now), payload=payload, signer=form, certificate=tlm.certificate
    )


# ====================================================================== EA and AA


class TestEA:
    """An Enrolment Authority with the ETSI test EA keys. ``answer`` forces a response code; the
    ``tamper`` hooks make it misbehave (wrong requestHash, certificate for another key, garbage)."""

    __test__ = False  # a test authority, not a pytest test class

    def __init__(self, canonical: dict[bytes, object] | None = None, *, seed: str = "ea") -> None:
        self.cert = cert("CERT_TS_A_EA")
        self.issued = Issued(self.cert, signing_key("CERT_TS_A_EA"))
        self.enc_key = encryption_key("CERT_TS_A_EA")
        self.canonical = dict(canonical or {})  # itsId -> canonical public key
        self.ecs: dict[bytes, Certificate] = {}  # H8 -> ECs issued (and the ETSI test EC)
        self.random = SeededRandomness(seed)
        self.answer: str | None = None
        self.tamper: str | None = None
        self.seen: list[dict] = []

    def add_ec(self, c: Certificate) -> None:
        self.ecs[c.hashed_id8] = c

    def handle(self, body: bytes, now: float = NOW) -> bytes:
        plaintext, aes_key = ecies.decrypt_with_private_key(body, self.cert, self.enc_key)
        outer = signed.open_signed(plaintext)
        pop = signed.open_signed(outer.payload[2:])
        inner = coer.decode("InnerEcRequest", pop.payload)
        vk = inner["publicKeys"]["verificationKey"]
        new_key = public_key_from_point(CURVES[vk[0]], vk[1])
        code = "ok"
        if outer.signer_form == "self":
            canonical = self.canonical.get(inner["itsId"])
            if canonical is None:
                code = "unknownits"
            elif not outer.verify(canonical):
                code = "invalidsignature"
        else:
            ec_cert = self.ecs.get(outer.signer_digest)
            if ec_cert is None or inner["itsId"] != outer.signer_digest:
                code = "unknownits"
            elif not outer.verify(ec_cert.public_key, ec_cert):
                code = "invalidsignature"
        if not pop.verify(new_key):
            code = "invalidsignature"
        self.seen.append({"inner": inner, "outer_signer": outer.signer_form, "psid": outer.psid, "pop_psid": pop.psid})
        code = self.answer or code
        response = {"requestHash": hashlib.sha256(body).digest()[:16], "responseCode": code}
        if self.tamper == "request-hash":
            response["requestHash"] = bytes(16)
        if code == "ok":
            subject = new_key if self.tamper != "other-key" else self.random.private_key(ec.SECP256R1())
            if not isinstance(subject, ec.EllipticCurvePublicKey):
                subject = subject.public_key()
            tbs = {
                "id": ("none", None),
                "cracaId": b"\x00\x00\x00",
                "crlSeries": 0,
                "validityPeriod": {"start": clock.time32(now) - 60, "duration": ("years", 1)},
                "appPermissions": inner["requestedSubjectAttributes"]["appPermissions"],
                "verifyKeyIndicator": ("verificationKey", (vk[0], point_of_public_key(subject))),
            }
            ec_cert = issue_certificate(tbs, self.issued)
            self.add_ec(ec_cert)
            response["certificate"] = ec_cert.value
        return self._respond("enrolmentResponse", "InnerEcResponse", response, aes_key, now)

    def _respond(self, alt: str, inner_type: str, response: dict, aes_key: bytes, now: float) -> bytes:
        payload = coer.encode("EtsiTs102941Data", {"version": 1, "content": (alt, response)})
        signed_data = signed.sign(
            self.issued.key,
            psid=623,
            generation_time=clock.time64(now),
            payload=payload,
            signer="digest",
            certificate=self.issued.certificate,
        )
        if self.tamper == "garbage":
            return b"\x03\x82garbage"
        if self.tamper == "wrong-psk":
            aes_key = bytes(16)
        return ecies.encrypt_with_psk(signed_data, aes_key, self.random.token(12))

    def validate(self, shared: dict, ec_signature: tuple) -> tuple[str, dict | None]:
        """Authorization validation (AA -> EA), as a plain call: (code, confirmed attributes)."""
        alt, value = ec_signature
        if alt != "encryptedEcSignature":
            return "badcontenttype", None
        try:
            plaintext, _ = ecies.decrypt_with_private_key(
                coer.encode("Ieee1609Dot2Data", value), self.cert, self.enc_key
            )
        except ecies.EciesError:
            return "decryptionfailed", None
        sig = signed.open_signed(plaintext)
        ec_cert = self.ecs.get(sig.signer_digest)
        if ec_cert is None:
            return "unknownits", None
        if sig.ext_data_hash != hashlib.sha256(coer.encode("SharedAtRequest", shared)).digest() or not sig.verify(
            ec_cert.public_key, ec_cert
        ):
            return "invalidsignature", None
        return "ok", shared["requestedSubjectAttributes"]


class TestAA(TestEA):
    """An Authorization Authority with the ETSI test AA keys, validating through ``ea`` directly."""

    def __init__(self, ea: TestEA, *, seed: str = "aa") -> None:
        super().__init__(seed=seed)
        self.ea = ea
        self.cert = cert("CERT_IUT_A_AA")
        self.issued = Issued(self.cert, signing_key("CERT_IUT_A_AA"))
        self.enc_key = encryption_key("CERT_IUT_A_AA")
        self.grant_extra: list[dict] = []
        self.region: tuple | None = None  # the GeographicRegion put in the ATs issued (None: none)

    def handle(self, body: bytes, now: float = NOW) -> bytes:
        plaintext, aes_key = ecies.decrypt_with_private_key(body, self.cert, self.enc_key)
        pop = signed.open_signed(plaintext)
        data = coer.decode("EtsiTs102941Data", pop.payload)
        alt, inner = data["content"]
        vk = inner["publicKeys"]["verificationKey"]
        at_key = public_key_from_point(CURVES[vk[0]], vk[1])
        self.seen.append({"inner": inner, "pop_signer": pop.signer_form, "psid": pop.psid})
        code = "ok"
        if not pop.verify(at_key):
            code = "its-aa-badcontenttype"
        elif requests.key_tag_for(inner["hmacKey"], vk) != inner["sharedAtRequest"]["keyTag"]:
            code = "its-aa-keysdontmatch"
        elif inner["sharedAtRequest"]["eaId"] != self.ea.cert.hashed_id8:
            code = "its-aa-unknownea"
        else:
            verdict, confirmed = self.ea.validate(inner["sharedAtRequest"], inner["ecSignature"])
            code = (
                "ok"
                if verdict == "ok"
                else {
                    "unknownits": "unknownits",
                    "invalidsignature": "invalidsignature",
                    "decryptionfailed": "ea-aa-decryptionfailed",
                }.get(verdict, "wrongea")
            )
        code = self.answer or code
        response = {"requestHash": hashlib.sha256(body).digest()[:16], "responseCode": code}
        if self.tamper == "request-hash":
            response["requestHash"] = bytes(16)
        if code == "ok":
            subject = at_key if self.tamper != "other-key" else self.random.private_key(ec.SECP256R1()).public_key()
            perms = inner["sharedAtRequest"]["requestedSubjectAttributes"]["appPermissions"] + self.grant_extra
            tbs = {
                "id": ("none", None),
                "cracaId": b"\x00\x00\x00",
                "crlSeries": 0,
                "validityPeriod": {"start": clock.time32(now) - 60, "duration": ("hours", 168)},
                "appPermissions": perms,
                "verifyKeyIndicator": ("verificationKey", (vk[0], point_of_public_key(subject))),
            }
            if self.region is not None:
                tbs["region"] = self.region
            issuer = self.issued if self.tamper != "wrong-issuer" else self.ea.issued
            response["certificate"] = issue_certificate(tbs, issuer).value
        return self._respond("authorizationResponse", "InnerAtResponse", response, aes_key, now)
