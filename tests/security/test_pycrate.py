"""Cross-check against pycrate's independent IEEE 1609.2 / TS 103 097 modules (pycrate_asn1dir.ITS_IEEE1609_2)."""

from __future__ import annotations

import pytest

pytest.importorskip("pycrate_asn1dir.ITS_IEEE1609_2")
import samples  # noqa: E402
from pycrate_asn1dir import ITS_IEEE1609_2 as P  # noqa: E402
from sechelp import NOW, sign_with  # noqa: E402

from rsu import clock as clockmod  # noqa: E402
from rsu.security import coer  # noqa: E402
from rsu.security.certs import Certificate  # noqa: E402
from rsu.security.verify import parse_signed  # noqa: E402


def _pycrate(type_, data: bytes):
    obj = getattr(P.Ieee1609Dot2, type_)
    obj.from_coer(data)
    return obj


@pytest.mark.parametrize("name", ["root", "aa", "spatem", "ivim", "srem", "rtcmem"])
def test_our_certificates_decode_identically_in_pycrate(name, test_pki):
    issued = {"root": test_pki.root, "aa": test_pki.aa}.get(name) or test_pki.ats[name]
    cert = issued.certificate
    obj = _pycrate("Certificate", cert.raw)
    assert obj.to_coer() == cert.raw
    theirs = obj.get_val()
    assert theirs["issuer"] == cert.issuer
    tbs, ours = theirs["toBeSigned"], cert.value["toBeSigned"]
    assert tbs["validityPeriod"] == ours["validityPeriod"]
    assert tbs["verifyKeyIndicator"] == ours["verifyKeyIndicator"]
    assert tbs.get("appPermissions") == ours.get("appPermissions")
    assert theirs["signature"] == cert.value["signature"]


@pytest.mark.parametrize("with_certificate", [False, True])
def test_our_signed_messages_decode_identically_in_pycrate(with_certificate, test_pki, codec):
    pdu = codec.encode(samples.spatem(prioritization=True))
    data = sign_with(
        test_pki.ats["spatem"], pdu, 137, with_certificate=with_certificate, inline_p2pcd_request=[b"\xaa\xbb\xcc"]
    )
    obj = _pycrate("Ieee1609Dot2Data", data)
    assert obj.to_coer() == data
    v = obj.get_val()
    assert v["protocolVersion"] == 3 and v["content"][0] == "signedData"
    sd = v["content"][1]
    assert sd["hashId"] == "sha256"
    h = sd["tbsData"]["headerInfo"]
    assert h["psid"] == 137 and h["generationTime"] == clockmod.time64(NOW)
    assert h["inlineP2pcdRequest"] == [b"\xaa\xbb\xcc"]
    assert sd["tbsData"]["payload"]["data"]["content"] == ("unsecuredData", pdu)
    assert sd["signer"][0] == ("certificate" if with_certificate else "digest")


def test_pycrate_built_certificate_and_message_decode_here(test_pki):
    # take one of ours apart in pycrate, change fields there, encode with pycrate, read it here
    obj = _pycrate("Certificate", test_pki.ats["mapem"].certificate.raw)
    v = obj.get_val()
    v["toBeSigned"]["appPermissions"] = [
        {"psid": 138, "ssp": ("bitmapSsp", b"\x01\x80")},
        {"psid": 540802, "ssp": ("bitmapSsp", b"\x01")},
    ]
    v["toBeSigned"]["region"] = ("identifiedRegion", [("countryOnly", 276)])
    obj.set_val(v)
    cert = Certificate.from_bytes(obj.to_coer())
    assert cert.app_permissions == {138: b"\x01\x80", 540802: b"\x01"}
    assert cert.region == ("identifiedRegion", [("countryOnly", 276)])
    assert not cert.signature_valid(test_pki.aa.certificate)  # content changed, signature no longer fits

    msg = _pycrate("Ieee1609Dot2Data", sign_with(test_pki.ats["mapem"], b"\x02\x05payload", 138))
    mv = msg.get_val()
    mv["content"][1]["tbsData"]["headerInfo"]["expiryTime"] = 123456789
    msg.set_val(mv)
    parsed = parse_signed(msg.to_coer())
    assert parsed.header["expiryTime"] == 123456789 and parsed.payload == b"\x02\x05payload"
    ours = coer.decode("Ieee1609Dot2Data", msg.to_coer())["content"][1]["tbsData"]["headerInfo"]
    assert ours == mv["content"][1]["tbsData"]["headerInfo"]
