"""CLI: rsu pki init / cert show / verify / decode, in real subprocesses."""

from __future__ import annotations

import json
import os
import time

import pytest
import samples
from sechelp import VECTORS

from rsu import catalog
from rsu import clock as clockmod
from rsu.security.pool import AtPool
from rsu.security.request import request_for_pdu
from rsu.security.service import SecurityService
from rsu.security.verify import TrustStore, Verifier
from tests.conftest import run_rsu


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    r = run_rsu("pki", "init", str(d), "--ssp", "ivim=textContainer,iso14823.regulatory", "--provider", "FR:7")
    assert r.returncode == 0, r.stderr
    return d, json.loads(r.stdout)


def test_pki_init_writes_a_usable_pki(pki_dir):
    d, manifest = pki_dir
    assert (d / "root.oer").exists() and (d / "aa.oer").exists()
    assert {a["message"] for a in manifest["ats"]} == {k.pdu for k in catalog.MESSAGES}
    for key in list(d.glob("*.key")) + list((d / "at").glob("*.key")):
        assert os.stat(key).st_mode & 0o777 == 0o600
    ivi = next(a for a in manifest["ats"] if a["message"] == "IVIM")
    assert ivi["ssp"] == "01" + "b28007" + "2020"  # FR = 1011001010, id 7; regulatory + text
    trust = TrustStore.from_directory(d)
    assert len({c.hashed_id8 for c in trust.certificates()}) == 2 and not trust.rejected


def test_signed_messages_from_pki_init_verify_in_the_cli(pki_dir, tmp_path, codec):
    d, _ = pki_dir
    clk = clockmod.SystemClock()
    pool = AtPool.load_directory(d / "at", clk)
    svc = SecurityService(pool, Verifier(clk), clk)
    msg = tmp_path / "spatem.oer"
    msg.write_bytes(svc.sign(request_for_pdu(catalog.SPATEM, codec.encode(samples.spatem(prioritization=True)))))
    r = run_rsu("verify", str(msg), "--trust", str(d))
    out = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout
    assert out["valid"] and out["signatureValid"] and out["chain"] == "valid" and out["psid"] == 137
    assert out["ssp"]["permissions"] == ["intersectionState", "prioritization", "maneuverAssist"]
    assert out["signer"]["form"] == "certificate"
    # judged a day later, the message is stale
    later = clockmod.iso_utc(time.time() + 86400)
    r = run_rsu("verify", str(msg), "--trust", str(d), "--time", later)
    assert r.returncode == 1 and json.loads(r.stdout)["reason"] == "generation-time-too-old"


def test_verify_without_trust_and_with_the_wrong_trust(pki_dir, tmp_path):
    vec = VECTORS / "vanetza" / "cam_signed_with_at_cert.oer"
    out = json.loads(run_rsu("verify", str(vec)).stdout)
    assert out["valid"] and out["chain"] == "not-checked" and out["signer"]["hashedId8"] == "127cff384ce0b890"
    r = run_rsu("verify", str(vec), "--trust", str(pki_dir[0]))
    assert r.returncode == 1 and json.loads(r.stdout)["reason"] == "unknown-issuer"


def test_cert_show_decodes_ssps_into_named_permissions(pki_dir):
    d, manifest = pki_dir
    r = run_rsu("cert", "show", str(d / "at" / "ivim.oer"))
    out = json.loads(r.stdout)
    ivi = next(a for a in manifest["ats"] if a["message"] == "IVIM")
    assert out["hashedId8"] == ivi["hashedId8"]
    assert out["issuer"] == {"sha256AndDigest": manifest["aa"]["hashedId8"]}
    perm = out["appPermissions"][0]
    assert perm["psid"] == 139 and perm["service"] == "IVI"
    assert perm["permissions"] == ["iso14823.regulatory", "textContainer"]
    assert perm["serviceProviderId"] == {"country": "FR", "countryCodeBits": "1011001010", "providerIdentifier": 7}
    out = json.loads(run_rsu("cert", "show", str(VECTORS / "etsi-ats-certs" / "CERT_IUT_A_RCA.oer")).stdout)
    assert out["issuer"] == {"self": "sha256"} and out["id"] == "ETSI Test RCA C certificate"


@pytest.mark.parametrize(
    "args",
    [
        ("cert", "show", "/nonexistent"),
        ("cert", "show", "0011223344"),
        ("verify", "00"),
        ("pki", "init", "/tmp/x", "--ssp", "spatem=bogus"),
    ],
)
def test_bad_input_is_one_line_no_traceback(args):
    r = run_rsu(*args)
    assert r.returncode in (1, 2)
    assert b"Traceback" not in r.stderr


def test_decode_shows_the_secured_layer_and_the_inner_pdu(pki_dir, tmp_path, codec):
    d, _ = pki_dir
    clk = clockmod.SystemClock()
    svc = SecurityService(AtPool.load_directory(d / "at", clk), Verifier(clk), clk)
    msg = tmp_path / "mapem.oer"
    msg.write_bytes(svc.sign(request_for_pdu(catalog.MAPEM, codec.encode(samples.mapem()))))
    r = run_rsu("decode", str(msg))
    assert r.returncode == 0, r.stderr
    layers = json.loads(r.stdout)["layers"]
    assert [layer["layer"] for layer in layers] == ["secured", "facilities"]
    sec = layers[0]
    assert sec["headerInfo"]["psid"] == 138 and sec["headerInfo"]["message"] == "MAPEM"
    assert sec["signer"]["certificate"][0]["appPermissions"][0]["permissions"] == ["intersections", "roadSegments"]


def test_secured_layer_hands_gn_headers_on_to_the_gn_dissector():
    """A secured GN packet signs common header + BTP + PDU: the secured layer passes them to GN."""
    from rsu.dissect import secured_layer

    layer = secured_layer((VECTORS / "vanetza" / "cam_signed_with_at_cert.oer").read_bytes())
    assert layer.payload is not None and layer.payload.hex().startswith("2050028000320100")
    assert layer.next_layers == ("geonetworking", "facilities")
    assert layer.fields["signer"]["certificate"][0]["hashedId8"] == "127cff384ce0b890"
    assert layer.fields["headerInfo"]["generationTimeIso"] == "2019-11-21T13:27:54.447061Z"
    assert secured_layer(b"\x02\x04\x00\x00") is None


def test_decode_lists_layers_when_the_payload_is_not_a_facilities_pdu():
    """vanetza's signed CAM carries a GN common header + BTP inside: decode shows the secured layer, no error."""
    r = run_rsu("decode", str(VECTORS / "vanetza" / "cam_signed_digest.oer"))
    assert r.returncode == 0, r.stderr
    layers = json.loads(r.stdout)["layers"]
    assert layers[0]["layer"] == "secured"
    assert "0ba2d2fb6a0c62d2" in json.dumps(layers[0])  # the signer digest of that vector
    r = run_rsu("decode", "--pdu", str(VECTORS / "vanetza" / "cam_signed_digest.oer"))
    assert r.returncode == 2 and b"no facilities PDU inside" in r.stderr


def _verify(*args, input=None):
    r = run_rsu("verify", *args, input=input)
    assert b"Traceback" not in r.stderr
    return r.returncode, json.loads(r.stdout) if r.stdout else r.stderr.decode()


GN_LAYERS = ["geonetworking", "secured", "geonetworking"]  # a CAM's BTP payload is not decoded further


def test_verify_takes_every_input_decode_takes(tmp_path):
    """vanetza's secured GN packet as a binary file, hex file, stdin, hex argument, Ethernet frame and pcap."""
    from rsu.transports import ethernet, pcap

    packet = (VECTORS / "vanetza" / "gn_packet_secured_cam_with_cert.bin").read_bytes()
    frame = ethernet.build_frame(packet, source=bytes.fromhex("020000000001"))
    (tmp_path / "frames.pcap").write_bytes(
        pcap.global_header() + pcap.record(1574342875.6, frame) + pcap.record(1574342876.6, frame)
    )
    (tmp_path / "frame.hex").write_text(frame.hex(":"))
    (tmp_path / "packet.hex").write_text(packet.hex() + "\n")
    cases = [
        ((str(VECTORS / "vanetza" / "gn_packet_secured_cam_with_cert.bin"),), None, GN_LAYERS),
        ((str(tmp_path / "packet.hex"),), None, GN_LAYERS),
        (("-",), packet, GN_LAYERS),
        ((packet.hex(),), None, GN_LAYERS),
        ((str(tmp_path / "frame.hex"),), None, ["ethernet", *GN_LAYERS]),
    ]
    for args, stdin, layers in cases:
        code, out = _verify(*args, input=stdin)
        assert code == 0, (args, out)
        assert out["layers"] == layers and out["valid"] and out["signatureValid"]
        assert out["psid"] == 36 and out["signer"] == {"form": "certificate", "hashedId8": "127cff384ce0b890"}
        assert out["sspCheck"] == "not-checked"  # a CAM: rsu does not decode it
    code, out = _verify(str(tmp_path / "frames.pcap"))
    assert code == 0, out
    assert out["summary"] == {"frames": 2, "valid": 2, "rejected": 0}
    assert [f["index"] for f in out["frames"]] == [0, 1] and out["frames"][0]["layers"] == ["ethernet", *GN_LAYERS]


def test_verify_reports_tampering_and_unsigned_frames_per_frame(tmp_path, codec):
    from rsu.transports import ethernet, pcap

    packet = bytearray((VECTORS / "vanetza" / "gn_packet_secured_cam_with_cert.bin").read_bytes())
    good = bytes(packet)
    packet[60] ^= 0x01  # inside the signed CAM
    code, out = _verify(bytes(packet).hex())
    assert code == 1 and out["reason"] == "invalid-signature" and out["signatureValid"] is False
    # a bare facilities PDU is found, but it is not signed
    pdu = codec.encode(samples.spatem())
    code, out = _verify(pdu.hex())
    assert code == 1 and out["layers"] == ["facilities"] and out["message"] == "SPATEM"
    assert out["reason"] == "not-signed-data" and out["sspCheck"] == "not-checked"
    # a pcap mixing them: one verdict per frame, exit 1
    src = bytes.fromhex("020000000001")
    (tmp_path / "mixed.pcap").write_bytes(
        pcap.global_header()
        + b"".join(
            pcap.record(1574342875.6 + i, ethernet.build_frame(p, source=src))
            for i, p in enumerate((good, bytes(packet)))
        )
    )
    code, out = _verify(str(tmp_path / "mixed.pcap"))
    assert code == 1 and out["summary"] == {"frames": 2, "valid": 1, "rejected": 1}
    assert [f["reason"] for f in out["frames"]] == [None, "invalid-signature"]


def test_verify_of_a_digest_signed_frame_says_how_to_give_the_certificate():
    """Offline there is nobody to ask for the certificate: the detail says what the user can do, and a
    capture whose earlier frame carries the certificate verifies the digest-signed frame after it."""
    code, out = _verify(str(VECTORS / "vanetza" / "cam_signed_digest.oer"))
    assert code == 1 and out["reason"] == "signer-certificate-unknown"
    assert "--cert" in out["detail"] and "requested" not in out["detail"]
