"""parse_signed's direct reading of the common message shape (verify._parse_common) against asn1tools.

Messages are built with asn1tools from values that vary every part the direct reading looks at (payload
sizes across the COER length forms, psid sizes, the optional header fields, the extension, every signer
form, every signature alternative and curve point) and then damaged (truncated, one byte changed). For
each, parse_signed gives exactly what it gives when asn1tools reads the whole message (the same fields,
of the same types, or the same error), and the direct reading is what serves the common shapes.
"""

from __future__ import annotations

import random

import pytest
from sechelp import NOW

from rsu import catalog
from rsu import clock as clockmod
from rsu.security import coer
from rsu.security import verify as V

T64 = clockmod.time64(NOW)


def _value(rnd: random.Random, cert_value) -> tuple[dict, bool]:
    """A random signed message value; whether the direct reading should serve it whole."""
    header = {"psid": rnd.choice([0, 36, 137, 140, 141, 639, 2**20, 2**31 + 5])}
    common = True
    if rnd.random() < 0.9:
        header["generationTime"] = T64 + rnd.randrange(10**6)
    if rnd.random() < 0.3:
        header["expiryTime"] = T64 + 10**7
    if rnd.random() < 0.15:
        header["generationLocation"] = {"latitude": 448376000, "longitude": -5794000, "elevation": 100}
        common = False
    if rnd.random() < 0.15:
        header["inlineP2pcdRequest"] = [b"\x01\x02\x03"]
        common = False
    payload = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 70, 127, 128, 255, 256, 505, 1200])))
    signer = rnd.choice([("digest", bytes(rnd.randrange(256) for _ in range(8))), ("certificate", [cert_value])])
    if rnd.random() < 0.05:
        signer = ("self", None)
        common = False
    point = rnd.choice(["x-only", "compressed-y-0", "compressed-y-1", "fill", "uncompressedP256"])
    coord = bytes(rnd.randrange(256) for _ in range(32))
    r_sig = (point, None if point == "fill" else {"x": coord, "y": coord} if point == "uncompressedP256" else coord)
    alt = rnd.choice(["ecdsaNistP256Signature", "ecdsaBrainpoolP256r1Signature", "ecdsaNistP384Signature"])
    if alt == "ecdsaNistP384Signature":
        signature = (alt, {"rSig": ("x-only", bytes(48)), "sSig": bytes(range(48))})
    else:
        signature = (alt, {"rSig": r_sig, "sSig": bytes(range(32))})
    common = common and alt != "ecdsaNistP384Signature" and point not in ("fill", "uncompressedP256")
    tbs = {"payload": {"data": {"protocolVersion": 3, "content": ("unsecuredData", payload)}}, "headerInfo": header}
    signed = {"hashId": "sha256", "tbsData": tbs, "signer": signer, "signature": signature}
    return {"protocolVersion": 3, "content": ("signedData", signed)}, common


def _typed(x):
    """A value with the type of every leaf (bytes and bytearray compare equal; they must not differ here)."""
    if isinstance(x, dict):
        return {k: _typed(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_typed(v) for v in x)
    return (type(x).__name__, x)


def _outcome(data: bytes, known=None):
    try:
        m = V.parse_signed(data, known=known)
    except V.ParseError as e:
        return ("error", e.reason, e.detail)
    return ("parsed", m.hash_id, _typed(m.tbs), m.tbs_bytes, _typed(m.signer), m.signer_cert_bytes, _typed(m.signature))


def _damaged(data: bytes, rnd: random.Random):
    yield data[: rnd.randrange(len(data))]
    for _ in range(6):
        i = rnd.randrange(len(data))
        yield data[:i] + bytes([rnd.randrange(256)]) + data[i + 1 :]
    i = rnd.randrange(3, min(len(data), 40))  # the header region, where the direct reading decides
    yield data[:i] + bytes([data[i] ^ (1 << rnd.randrange(8))]) + data[i + 1 :]


@pytest.mark.parametrize("seed", range(4))
def test_direct_reading_gives_what_asn1tools_gives(seed, test_pki, monkeypatch):
    rnd = random.Random(seed)
    cert_value = coer.SECURITY.decode("Certificate", test_pki.ats["srem"].certificate.raw)
    messages = []
    served = 0
    for _ in range(60):
        value, common = _value(rnd, cert_value)
        data = coer.encode("Ieee1609Dot2Data", value)
        direct = V._parse_common(data)
        assert (direct is not None and direct[4] is not None) == common, value["content"][1]["headerInfo"]
        served += common
        messages.append(data)
        messages.extend(_damaged(data, rnd))
    assert served >= 15
    cert = test_pki.ats["srem"].certificate
    asked = []
    known = {cert.hashed_id8: cert}.get

    def known_cert(h8):  # the verifier's cache, with the certificate the messages carry
        asked.append(h8)
        return known(h8)

    fast = [_outcome(d) for d in messages]
    with_known = [_outcome(d, known_cert) for d in messages]
    assert asked.count(cert.hashed_id8) >= 10  # certificate signers were taken from the cache
    monkeypatch.setattr(V, "_parse_common", lambda data: None)  # asn1tools reads everything
    slow = [_outcome(d) for d in messages]
    for d, a, k, b in zip(messages, fast, with_known, slow, strict=True):
        assert a == b == k, d.hex()
    assert sum(o[0] == "error" for o in slow) > 50 and sum(o[0] == "parsed" for o in slow) > 60


def test_signed_facilities_messages_are_read_directly(test_pki):
    from rsu.security.sign import Signer

    issued = test_pki.ats["spatem"]
    signer = Signer(issued.certificate, issued.key)
    for kw in ({"with_certificate": False}, {"with_certificate": True}):
        data = signer.sign(bytes(205), catalog.SPATEM.its_aid, T64, **kw)
        direct = V._parse_common(data)
        assert direct is not None and direct[4] is not None
        assert (direct[2] is None) == kw["with_certificate"]  # a certificate signer is left to asn1tools
