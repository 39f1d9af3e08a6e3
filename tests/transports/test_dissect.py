"""``rsu decode`` on GN packets (with or without the Ethernet header) and pcap/pcapng files:
each layer shows its fields, a bad record never hides the others, and the real Vanetza packet
reads through the CLI in a subprocess."""

from __future__ import annotations

import json
import struct

import pytest
from conftest import run_rsu  # tests/conftest.py (the lead's), on sys.path via rootdir

from rsu import catalog
from rsu.clock import ManualClock
from rsu.dissect import LayerError, dissect, ethernet_layer, gn_layer, pcap_layer, to_json
from rsu.transports import envelope
from rsu.transports.base import DisseminationParams, GeoArea
from rsu.transports.config import GnUdpConfig
from rsu.transports.gn_core import GnCore
from rsu.transports.pcap import PcapError, PcapWriter, read_capture

from .conftest import GN_VECTOR, NOW, RSU_LAT, RSU_LON

MAC = bytes.fromhex("02000000d15c")


def builder(clock, sign=None) -> GnCore:
    cfg = GnUdpConfig(latitude=RSU_LAT, longitude=RSU_LON, secured=sign is not None)
    cfg.validate()
    return GnCore(cfg, clock, sign=sign, mac=MAC, first_sn=0)


def names(layers) -> list[str]:
    return [layer.name for layer in layers]


def test_ethernet_gn_unsecured_spatem_shows_every_layer(pdus):
    frame = builder(ManualClock(NOW)).build_frame(
        pdus["spatem"],
        DisseminationParams(
            catalog.SPATEM, destination=GeoArea(RSU_LAT, RSU_LON, "ellipse", 300.0, 100.0, 20.0), hop_limit=4
        ),
    )
    layers = dissect(frame)
    assert names(layers) == ["ethernet", "geonetworking", "facilities"]
    eth, gnl, fac = (layer.fields for layer in layers)
    assert eth == {"destination": "ff:ff:ff:ff:ff:ff", "source": "02:00:00:00:d1:5c", "ethertype": "0x8947"}
    assert gnl["basic_header"]["next_header"] == "common-header" and gnl["secured"] is False
    assert gnl["common_header"]["header_type"] == "gbc-ellipse" and gnl["common_header"]["max_hop_limit"] == 4
    ext = gnl["extended_header"]
    assert ext["sequence_number"] == 0 and ext["source_position_vector"]["station_type"] == 15
    assert ext["area"] == {
        "shape": "ellipse",
        "latitude": RSU_LAT,
        "longitude": RSU_LON,
        "distance_a_m": 300.0,
        "distance_b_m": 100.0,
        "angle_deg": 20.0,
    }
    assert gnl["btp"] == {"type": "B", "destination_port": 2004, "destination_port_info": 0, "message": "SPATEM"}
    assert fac["type"] == "SPATEM"
    # the same GN packet without its Ethernet header
    assert names(dissect(frame[14:])) == ["geonetworking", "facilities"]


def test_secured_gn_packet_hands_the_envelope_to_the_security_layer(pdus, make_sign):
    clock = ManualClock(NOW)
    sign = make_sign(clock)
    frame = builder(clock, sign).build_frame(sign(pdus["mapem"], catalog.MAPEM), DisseminationParams(catalog.MAPEM))
    layers = dissect(frame)
    assert names(layers)[:3] == ["ethernet", "geonetworking", "secured"]
    assert layers[1].fields["secured"] is True and layers[1].next_layers == ("secured",)
    assert layers[1].payload == frame[18:]
    assert layers[2].fields["headerInfo"]["psid"] == 138
    if "geonetworking" in names(layers)[3:]:  # the security dissector handed its payload back to GN
        assert names(layers)[3:] == ["geonetworking", "facilities"]
        assert layers[3].fields["part"] == "secured payload"


def test_the_secured_payload_form_starts_with_a_common_header():
    inner = envelope.signed_payload(GN_VECTOR.read_bytes()[4:])
    layer = gn_layer(inner)
    assert layer.fields["part"] == "secured payload"
    assert layer.fields["common_header"]["header_type"] == "shb" and layer.fields["common_header"]["mobile"]
    assert layer.fields["extended_header"]["source_position_vector"]["mid"] == "fe:38:4c:e0:b8:90"
    assert layer.fields["btp"]["destination_port"] == 2001 and layer.fields["btp"]["message"] is None
    # a CAM is no message type of ours: shown as hex, not handed to the facilities codec
    assert layer.payload is None and layer.fields["btp"]["payload_hex"] == inner[40:].hex()
    assert layer.fields["btp"]["payload_length"] == 46
    # with a port of ours, the payload goes on to the facilities dissector
    ours = inner[:36] + bytes.fromhex("07d40000") + inner[40:]
    layer = gn_layer(ours)
    assert layer.payload == inner[40:] and layer.next_layers == ("facilities",)


def test_gn_dissector_leaves_other_layers_alone(pdus):
    for data in (pdus["spatem"], pdus["rtcmem"], bytes.fromhex("0381004003800100"), b"", b"\x11\x00"):
        assert gn_layer(data) is None
    assert ethernet_layer(bytes(12) + b"\x08\x00" + bytes(40)) is None
    assert pcap_layer(pdus["ivim"]) is None


@pytest.mark.parametrize(
    "data, needle",
    [
        (bytes.fromhex("11000501") + bytes.fromhex("2050"), "too short for the 8-byte common header"),
        (bytes.fromhex("11000501") + bytes.fromhex("2010000000000100") + bytes(24), "beacon is not delivered"),
        (bytes.fromhex("01000501") + bytes(40), "protocol version 0"),
    ],
)
def test_malformed_gn_packets_are_explained(data, needle):
    with pytest.raises(LayerError, match=needle):
        dissect(data)


def test_pcap_file_dissects_each_record_and_survives_a_bad_one(tmp_path, pdus):
    clock = ManualClock(NOW)
    b = builder(clock)
    path = tmp_path / "cap.pcap"
    w = PcapWriter(path)
    w.write(NOW, b.build_frame(pdus["ssem"], DisseminationParams(catalog.SSEM)))
    w.write(NOW + 0.25, bytes.fromhex("ffffffffffff020000000001") + b"\x89\x47" + b"\x11\x00\x05\x01\x20")
    w.write(NOW + 0.5, b.build_frame(pdus["ivim"], DisseminationParams(catalog.IVIM, hop_limit=2)))
    w.close()
    [layer] = dissect(path.read_bytes())
    assert layer.name == "pcap" and layer.payload is None
    assert layer.fields == {"format": "pcap", "link_type": 1, "records": 3}
    first, bad, third = layer.frames
    assert names(first) == ["record", "ethernet", "geonetworking", "facilities"]
    assert first[0].fields == {
        "index": 0,
        "time": "2023-11-14T22:13:20Z",
        "captured_length": len(b.build_frame(pdus["ssem"], DisseminationParams(catalog.SSEM))),
        "original_length": first[0].fields["original_length"],
    }
    assert names(bad) == ["record", "error"] and "common header" in bad[1].fields["error"]
    assert third[2].fields["common_header"]["header_type"] == "tsb" and third[3].fields["type"] == "IVIM"
    assert to_json([layer])[0]["frames"][2][0]["time"] == "2023-11-14T22:13:20.500000Z"


def _pcapng(frames: list[tuple[float, bytes]]) -> bytes:
    """A minimal little-endian pcapng: section header, one Ethernet interface (µs), enhanced packets."""

    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535))
    for ts, data in frames:
        t = int(round(ts * 1e6))
        out += block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(data), len(data)) + data)
    return out


def test_pcapng_files_are_read_too(pdus):
    frame = builder(ManualClock(NOW)).build_frame(pdus["srem"], DisseminationParams(catalog.SREM))
    cap = read_capture(_pcapng([(NOW + 0.000001, frame)]))
    assert cap.format == "pcapng" and cap.linktype == 1
    assert cap.records[0].data == frame and cap.records[0].timestamp == pytest.approx(NOW + 0.000001)
    [layer] = dissect(_pcapng([(NOW, frame)]))
    assert names(layer.frames[0]) == ["record", "ethernet", "geonetworking", "facilities"]
    with pytest.raises(PcapError):
        read_capture(_pcapng([(NOW, frame)])[:-6])


def test_pcap_writer_appends_and_refuses_a_foreign_file(tmp_path):
    path = tmp_path / "x.pcap"
    for i in range(2):
        w = PcapWriter(path)
        w.write(NOW + i, b"\x00" * 20)
        w.close()
    assert [r.timestamp for r in read_capture(path.read_bytes()).records] == [NOW, NOW + 1]
    other = tmp_path / "notes.txt"
    other.write_text("this is not a capture, do not append to it\n")
    with pytest.raises(ValueError, match="not a little-endian"):
        PcapWriter(other)


def test_rsu_decode_cli_reads_gn_packets_and_pcap_files(tmp_path, pdus):
    # the real Vanetza packet (a file), then our own Ethernet frame (hex on the command line)
    proc = run_rsu("decode", str(GN_VECTOR))
    assert proc.returncode == 0, proc.stderr
    layers = json.loads(proc.stdout)["layers"]
    assert [x["layer"] for x in layers][:2] == ["geonetworking", "secured"]
    assert layers[0]["basic_header"]["lifetime_s"] == 1.0 and layers[1]["headerInfo"]["psid"] == 36

    frame = builder(ManualClock(NOW)).build_frame(pdus["spatem"], DisseminationParams(catalog.SPATEM))
    proc = run_rsu("decode", frame.hex())
    assert proc.returncode == 0, proc.stderr
    layers = json.loads(proc.stdout)["layers"]
    assert [x["layer"] for x in layers] == ["ethernet", "geonetworking", "facilities"]
    assert layers[1]["btp"]["destination_port"] == 2004

    proc = run_rsu("decode", "--pdu", frame.hex())
    assert proc.returncode == 0 and json.loads(proc.stdout)["header"]["messageID"] == 4

    path = tmp_path / "two.pcap"
    w = PcapWriter(path)
    w.write(NOW, frame)
    w.write(NOW + 1, frame[:20])
    w.close()
    proc = run_rsu("decode", str(path))
    assert proc.returncode == 0, proc.stderr
    [pcap] = json.loads(proc.stdout)["layers"]
    assert pcap["records"] == 2 and [x["layer"] for x in pcap["frames"][1]] == ["record", "error"]
    assert pcap["frames"][0][3]["pdu"]["header"]["messageID"] == 4
