"""asn1/pki compiled with asn1/security: golden COER encodings and real PKI messages round-trip."""

from __future__ import annotations

import json

import pytest

from rsu.pki import coer
from tests.pki.helpers import CTL_FR_L1, ECTL_L0, VECTORS

GOLDEN = json.loads((VECTORS / "coer-golden-v2x-pki-client.json").read_text())
BYTE_FIELDS = {"itsId", "eaId", "keyTag"}


def _value(obj, key=None):
    """The golden file's JSON values -> asn1tools values (hex strings and utf8: prefixes -> bytes)."""
    if isinstance(obj, dict):
        return {k: _value(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        if len(obj) == 2 and isinstance(obj[0], str) and key not in ("appPermissions",):
            alt, v = obj
            if alt in ("compressed-y-0", "compressed-y-1"):
                return (alt, bytes.fromhex(v))
            if alt == "unsecuredData":
                return (alt, bytes.fromhex(v))
            return (alt, _value(v, alt))
        return [_value(v) for v in obj]
    if isinstance(obj, str) and key in BYTE_FIELDS:
        return obj[5:].encode() if obj.startswith("utf8:") else bytes.fromhex(obj)
    return obj


@pytest.mark.parametrize("type_name", ["InnerEcRequest", "SharedAtRequest", "ToBeSignedData"])
def test_golden_encodings(type_name):
    golden = GOLDEN[type_name]
    value = _value(golden["value"])
    encoded = coer.encode(type_name, value)
    assert encoded.hex() == golden["coer"]
    assert coer.decode(type_name, encoded) == value


@pytest.mark.parametrize(
    "content,tag",
    [
        ("enrolmentResponse", 0x81),
        ("authorizationResponse", 0x83),
        ("certificateRevocationList", 0x84),
        ("certificateTrustListTlm", 0x85),
        ("certificateTrustListRca", 0x86),
    ],
)
def test_etsi_data_tags(content, tag):
    """EtsiTs102941Data: version is one octet 01; each alternative keeps its standard tag (facts §12)."""
    values = {
        "enrolmentResponse": {"requestHash": bytes(16), "responseCode": "deniedrequest"},
        "authorizationResponse": {"requestHash": bytes(16), "responseCode": "its-aa-keysdontmatch"},
        "certificateRevocationList": {"version": 1, "thisUpdate": 1, "nextUpdate": 2, "entries": []},
        "certificateTrustListTlm": {
            "version": 1,
            "nextUpdate": 2,
            "isFullCtl": True,
            "ctlSequence": 3,
            "ctlCommands": [],
        },
        "certificateTrustListRca": {
            "version": 1,
            "nextUpdate": 2,
            "isFullCtl": False,
            "ctlSequence": 3,
            "ctlCommands": [("delete", ("cert", bytes(8)))],
        },
    }
    encoded = coer.encode("EtsiTs102941Data", {"version": 1, "content": (content, values[content])})
    assert encoded[:2] == bytes((1, tag))
    assert coer.decode("EtsiTs102941Data", encoded)["content"] == (content, values[content])


def test_non_ok_at_response_bytes():
    """facts §7.2: a non-ok InnerAtResponse is a preamble octet, the 16-byte hash and the enum octet."""
    encoded = coer.encode("InnerAtResponse", {"requestHash": bytes(range(16)), "responseCode": "its-aa-keysdontmatch"})
    assert encoded == b"\x00" + bytes(range(16)) + b"\x06"


def test_ctl_version_is_two_octets():
    encoded = coer.encode(
        "CtlFormat", {"version": 1, "nextUpdate": 0, "isFullCtl": True, "ctlSequence": 0, "ctlCommands": []}
    )
    assert encoded[:3] == b"\x00\x01\x01"  # preamble, then unconstrained Version = length 1, value 1


@pytest.mark.parametrize("path", [ECTL_L0, CTL_FR_L1], ids=["eu-l0-ectl", "fr-l1-ctl"])
def test_real_trust_lists_round_trip(path):
    raw = path.read_bytes()
    outer = coer.decode("Ieee1609Dot2Data", raw)
    assert coer.encode("Ieee1609Dot2Data", outer) == raw
    payload = outer["content"][1]["tbsData"]["payload"]["data"]["content"][1]
    data = coer.decode("EtsiTs102941Data", payload)
    assert data["content"][0] == "certificateTrustListTlm"
    assert coer.encode("EtsiTs102941Data", data) == payload
