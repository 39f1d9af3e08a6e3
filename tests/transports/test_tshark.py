"""Our frames as Wireshark sees them: captures written by the GN transport are dissected by real
tshark (Debian's): no malformed packets, the expected GN header types, BTP-B ports, 1609.2
security header with the right psid, and the ITS message types. Also the UDP tunnel itself
(Decode As: UDP port -> Ethernet), as a user would capture it on the wire."""

from __future__ import annotations

import asyncio
import struct
import subprocess

from rsu import catalog
from rsu.clock import ManualClock
from rsu.transports.base import DisseminationParams, GeoArea
from rsu.transports.drops import DropCounts
from rsu.transports.gn_udp import GnUdpTransport
from rsu.transports.pcap import PcapWriter, read_capture

from .conftest import NOW, RSU_LAT, RSU_LON, free_udp_port, random_group
from .test_gn_udp import gn_config, plain_receiver, recv

PLAN = [  # message, dissemination, expected GN header type octet
    (catalog.SPATEM, DisseminationParams(catalog.SPATEM, lifetime_s=1.0), "0x50"),
    (
        catalog.MAPEM,
        DisseminationParams(
            catalog.MAPEM, destination=GeoArea(RSU_LAT, RSU_LON, "circle", 300.0), lifetime_s=60.0, hop_limit=10
        ),
        "0x40",
    ),
    (
        catalog.IVIM,
        DisseminationParams(
            catalog.IVIM, destination=GeoArea(RSU_LAT, RSU_LON, "rectangle", 800.0, 200.0, 30.0), lifetime_s=600.0
        ),
        "0x41",
    ),
    (
        catalog.SREM,
        DisseminationParams(catalog.SREM, destination=GeoArea(RSU_LAT, RSU_LON, "ellipse", 400.0, 150.0, 120.0)),
        "0x42",
    ),
    (catalog.SSEM, DisseminationParams(catalog.SSEM, hop_limit=3, traffic_class=0x01), "0x51"),
    (catalog.RTCMEM, DisseminationParams(catalog.RTCMEM, lifetime_s=5.0), "0x50"),
]
FIELDS = [
    "frame.protocols",
    "geonw.bh.nh",
    "geonw.ch.htype",
    "btpb.dstport",
    "ieee1609dot2.psid",
    "its.messageID",
    "_ws.malformed",
    "_ws.expert.severity",
]
PI_ERROR = 0x00800000


def run_tshark(tshark: str, path, *extra: str) -> list[dict[str, str]]:
    args = [
        tshark,
        "-r",
        str(path),
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        *extra,
    ]
    for f in FIELDS:
        args += ["-e", f]
    proc = subprocess.run(args, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    rows = []
    for line in proc.stdout.decode().splitlines():
        values = line.split("\t")
        rows.append(dict(zip(FIELDS, values + [""] * (len(FIELDS) - len(values)))))
    return rows


def assert_clean(rows):
    for i, row in enumerate(rows, 1):
        assert row["_ws.malformed"] == "", f"frame {i} malformed: {row}"
        severities = [int(s, 0) for s in row["_ws.expert.severity"].split(",") if s]
        assert all(s < PI_ERROR for s in severities), f"frame {i} has expert errors: {row}"


async def _capture_exchange(tmp_path, pdus, sign_for, secured: bool):
    group, port = random_group(), free_udp_port()
    clock = ManualClock(NOW)
    sign = sign_for(clock) if secured else None
    tx = GnUdpTransport(
        gn_config(group, port, tmp_path, "tx", secured=secured), clock=clock, drops=DropCounts(), sign=sign
    )
    rx = GnUdpTransport(
        gn_config(group, port, tmp_path, "rx", secured=secured, check_destination_area=False),
        clock=clock,
        drops=DropCounts(),
        sign=sign,
    )
    got: asyncio.Queue = asyncio.Queue()
    wire = plain_receiver(group, port)
    datagrams = []
    try:
        await tx.start(lambda f: None)
        await rx.start(got.put_nowait)
        for kind, params, _ in PLAN:
            data = sign(pdus[kind.name], kind) if secured else pdus[kind.name]
            await tx.send(data, params)
            clock.advance(0.1)
        for _ in PLAN:
            await asyncio.wait_for(got.get(), 5)
            datagrams.append(await recv(wire))
    finally:
        await tx.stop()
        await rx.stop()
        wire.close()
    return port, datagrams


async def test_tshark_dissects_secured_captures_of_both_stations(tshark, tmp_path, pdus, make_sign):
    await _capture_exchange(tmp_path, pdus, make_sign, secured=True)
    for name in ("tx", "rx"):
        rows = run_tshark(tshark, tmp_path / f"{name}.pcap")
        assert len(rows) == len(PLAN)
        assert_clean(rows)
        for row, (kind, _, htype) in zip(rows, PLAN):
            assert row["geonw.bh.nh"] == "2"  # secured packet
            assert row["ieee1609dot2.psid"].split(",")[0] == str(kind.its_aid)
            assert row["frame.protocols"].startswith("eth:ethertype:gnw:ieee1609dot2")
            if kind is catalog.RTCMEM:
                # Wireshark hands the signed payload back to GN only for the psids it knows
                # (36, 37, 137-141, 637, 639): RTCMEM stops at the security header in 4.0
                assert row["btpb.dstport"] in ("", "2013")
                continue
            assert row["geonw.ch.htype"] == htype
            assert row["btpb.dstport"] == str(kind.btp_port)
            assert row["its.messageID"].split(",")[0] == str(kind.message_id)
            assert row["frame.protocols"].endswith("btpb:its")


async def test_tshark_dissects_unsecured_captures_down_to_the_its_message(tshark, tmp_path, pdus):
    await _capture_exchange(tmp_path, pdus, None, secured=False)
    rows = run_tshark(tshark, tmp_path / "tx.pcap")
    assert len(rows) == len(PLAN)
    assert_clean(rows)
    for row, (kind, _, htype) in zip(rows, PLAN):
        assert row["geonw.bh.nh"] == "1" and row["geonw.ch.htype"] == htype
        assert row["btpb.dstport"] == str(kind.btp_port)
        assert row["ieee1609dot2.psid"] == ""
        if kind is not catalog.RTCMEM:  # Wireshark 4.0 has no RTCMEM dissector on port 2013
            assert row["its.messageID"] == str(kind.message_id)


def _ip_udp_frame(payload: bytes, port: int) -> bytes:
    """Ethernet/IPv4/UDP around one of our datagrams, as a capture on the interface shows it."""
    udp = struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 1, 17, 0, bytes((192, 0, 2, 1)), bytes((239, 118, 122, 97))
    )
    csum = sum(struct.unpack("!10H", ip))
    while csum >> 16:
        csum = (csum & 0xFFFF) + (csum >> 16)
    ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
    return bytes.fromhex("01005e767a61") + bytes.fromhex("020000000001") + b"\x08\x00" + ip + udp


async def test_tshark_reads_the_udp_tunnel_with_decode_as_ethernet(tshark, tmp_path, pdus, make_sign):
    port, datagrams = await _capture_exchange(tmp_path, pdus, make_sign, secured=True)
    path = tmp_path / "wire.pcap"
    w = PcapWriter(path)
    for i, d in enumerate(datagrams):
        w.write(NOW + i, _ip_udp_frame(d, port))
    w.close()
    assert len(read_capture(path.read_bytes()).records) == len(PLAN)
    rows = run_tshark(tshark, path, "-d", f"udp.port=={port},eth")
    assert_clean(rows)
    assert [r["btpb.dstport"] for r in rows[:5]] == [str(k.btp_port) for k, _, _ in PLAN[:5]]
    assert all("udp:eth:ethertype:gnw:ieee1609dot2" in r["frame.protocols"] for r in rows)
