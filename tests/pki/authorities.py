"""Test PKI authorities as plain objects: a TLM, a Root CA publishing CTLs and CRLs (and, in
test_requests, an EA and an AA). They sign with the ETSI ATS test-PKI keys where those exist
(root CERT_IUT_A_RCA, EA CERT_TS_A_EA, AA CERT_IUT_A_AA); the TLM is made here (the ETSI set has none).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from rsu import clock
from rsu.pki import coer, signed
from rsu.security.certs import Certificate
from rsu.security.keys import point_of_public_key
from rsu.security.pki import Issued, issue_certificate
from tests.pki.helpers import SeededRandomness, cert, signing_key

# 2019-06-01: inside the validity of the ETSI test root, EA, AA and EC
NOW = clock.time32_to_posix(486_500_000)
T32 = clock.time32(NOW)


def make_tlm(seed: str = "tlm", *, ssp: bytes = b"\x01\xc8") -> Issued:
    key = SeededRandomness(seed).private_key(ec.SECP256R1())
    tbs = {"id": ("name", f"test TLM {seed}"), "cracaId": b"\x00\x00\x00", "crlSeries": 0,
           "validityPeriod": {"start": T32 - 86400 * 365, "duration": ("years", 4)},
           "appPermissions": [{"psid": 624, "ssp": ("bitmapSsp", ssp)}],
           "verifyKeyIndicator": ("verificationKey", ("ecdsaNistP256", point_of_public_key(key.public_key())))}
    return Issued(issue_certificate(tbs, None, key), key)


def etsi_root() -> Issued:
    return Issued(cert("CERT_IUT_A_RCA"), signing_key("CERT_IUT_A_RCA"))


def ctl_body(sequence: int, commands: list, *, full: bool = True, next_update: int | None = None) -> dict:
    return {"version": 1, "nextUpdate": next_update if next_update is not None else T32 + 30 * 86400,
            "isFullCtl": full, "ctlSequence": sequence, "ctlCommands": commands}


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


def signed_list(signer: Issued, content: str, body: dict, *, form: str = "certificate",
                psid: int | None = None, now: float = NOW) -> bytes:
    """A trust/revocation list message: EtsiTs102941Data{content: body}, signed by ``signer``."""
    payload = coer.encode("EtsiTs102941Data", {"version": 1, "content": (content, body)})
    if psid is None:
        psid = 622 if content == "certificateRevocationList" else 624
    return signed.sign(signer.key, psid=psid, generation_time=clock.time64(now), payload=payload,
                       signer=form, certificate=signer.certificate)


def ectl(tlm: Issued, sequence: int, commands: list, **kw) -> bytes:
    form = kw.pop("form", "certificate")
    return signed_list(tlm, "certificateTrustListTlm", ctl_body(sequence, commands, **kw), form=form)


def rca_ctl(root: Issued, sequence: int, commands: list, **kw) -> bytes:
    form = kw.pop("form", "certificate")
    return signed_list(root, "certificateTrustListRca", ctl_body(sequence, commands, **kw), form=form)


def crl(root: Issued, revoked: list[bytes], *, this_update: int = T32 - 3600, next_update: int = T32 + 7 * 86400,
        form: str = "digest") -> bytes:
    body = {"version": 1, "thisUpdate": this_update, "nextUpdate": next_update, "entries": revoked}
    return signed_list(root, "certificateRevocationList", body, form=form)
