"""GN + BTP-B over real UDP multicast on the loopback interface: two stations exchange signed IS
messages, a plain-socket receiver parses what is on the wire, bad datagrams are counted and
never stop the receiver, and both stations' pcap captures hold what they sent and received."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from rsu import catalog
from rsu.clock import ManualClock
from rsu.transports import envelope, ethernet, gn
from rsu.transports.base import DisseminationParams, GeoArea, ReceivedFrame
from rsu.transports.config import ConfigError, GnUdpConfig
from rsu.transports.drops import DropCounts, DropReason
from rsu.transports.gn_udp import GnUdpTransport
from rsu.transports.pcap import read_capture

from .conftest import NOW, RSU_LAT, RSU_LON, free_udp_port, random_group

MESSAGES = [
    (catalog.SPATEM, DisseminationParams(catalog.SPATEM, lifetime_s=1.0, traffic_class=0)),
    (
        catalog.MAPEM,
        DisseminationParams(
            catalog.MAPEM, destination=GeoArea(RSU_LAT, RSU_LON, "circle", 300.0), lifetime_s=60.0, hop_limit=10
        ),
    ),
    (
        catalog.IVIM,
        DisseminationParams(
            catalog.IVIM, destination=GeoArea(RSU_LAT, RSU_LON, "rectangle", 500.0, 100.0, 45.0), lifetime_s=10.0
        ),
    ),
]


def gn_config(group, port, tmp_path=None, name="gn", **kw) -> GnUdpConfig:
    return GnUdpConfig(
        name=name,
        group=group,
        port=port,
        latitude=RSU_LAT,
        longitude=RSU_LON,
        pcap=str(tmp_path / f"{name}.pcap") if tmp_path else None,
        **kw,
    )


def plain_receiver(group: str, port: int) -> socket.socket:
    """A test receiver on a real socket, joined to the group on lo (no rsu code)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((group, port))
    mreqn = struct.pack("=4s4si", socket.inet_aton(group), socket.inet_aton("0.0.0.0"), socket.if_nametoindex("lo"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
    s.setblocking(False)
    return s


def plain_sender(group: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mreqn = struct.pack("=4s4si", socket.inet_aton(group), socket.inet_aton("0.0.0.0"), socket.if_nametoindex("lo"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    return s


async def recv(sock: socket.socket, timeout: float = 5.0) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65535), timeout)


async def test_two_stations_exchange_signed_messages_over_udp(pdus, make_sign, tmp_path):
    group, port = random_group(), free_udp_port()
    clock = ManualClock(NOW)
    drops = DropCounts()
    a = GnUdpTransport(gn_config(group, port, tmp_path, "a"), clock=clock, drops=drops, sign=make_sign(clock))
    b = GnUdpTransport(gn_config(group, port, tmp_path, "b"), clock=clock, drops=drops, sign=make_sign(clock))
    got_a: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
    got_b: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
    wire = plain_receiver(group, port)
    try:
        await a.start(got_a.put_nowait)
        await b.start(got_b.put)  # coroutine callbacks work too
        for kind, params in MESSAGES:
            await a.send(make_sign(clock)(pdus[kind.name], kind), params)
        for kind, params in MESSAGES:
            frame = await asyncio.wait_for(got_b.get(), 5)
            assert frame.btp_port == kind.btp_port and frame.transport == "b"
            assert frame.secured_packet and frame.source == gn.GnAddress(a.mac).hex()
            inner = envelope.signed_payload(frame.secured)
            assert inner[frame.payload_offset :] == pdus[kind.name]
            assert frame.info["lifetime_s"] == params.lifetime_s
            assert frame.info["header_type"] == (
                "shb" if params.destination is None else f"gbc-{params.destination.shape}"
            )
            # what the plain socket saw: Ethernet II + GN, parsed independently of the transport
            datagram = await recv(wire)
            eth = ethernet.parse_frame(datagram)
            assert eth.ethertype == 0x8947 and eth.source == a.mac and eth.destination == b"\xff" * 6
            pkt = gn.parse_packet(eth.payload)
            assert pkt.btp_port == kind.btp_port and pkt.payload == pdus[kind.name]
            assert pkt.extended.source.address.station_type == 15
        # b answers; a hears b, and neither delivered its own frames
        await b.send(make_sign(clock)(pdus["ssem"], catalog.SSEM), DisseminationParams(catalog.SSEM))
        frame = await asyncio.wait_for(got_a.get(), 5)
        assert frame.btp_port == 2008
        assert got_a.empty() and got_b.empty()
        assert drops.count(DropReason.OWN_FRAME, "a") == 3 and drops.count(DropReason.OWN_FRAME, "b") == 1
        assert a.sent == 3 and b.received == 3
    finally:
        await a.stop()
        await b.stop()
        wire.close()
    # the captures: a wrote its 3 sent frames and the one it received; own frames are not doubled
    cap_a = read_capture((tmp_path / "a.pcap").read_bytes())
    cap_b = read_capture((tmp_path / "b.pcap").read_bytes())
    assert cap_a.linktype == 1 and len(cap_a.records) == 4 and len(cap_b.records) == 4
    assert [gn.parse_packet(r.data[14:]).btp_port for r in cap_a.records] == [2004, 2003, 2006, 2008]
    assert all(r.timestamp == NOW for r in cap_b.records)


async def test_bad_datagrams_are_counted_and_the_receiver_keeps_working(pdus, tmp_path):
    group, port = random_group(), free_udp_port()
    clock = ManualClock(NOW)
    drops = DropCounts()
    rx = GnUdpTransport(gn_config(group, port, tmp_path, "rx", secured=False), clock=clock, drops=drops)
    got: asyncio.Queue[ReceivedFrame] = asyncio.Queue()
    from rsu.transports.gn_core import GnCore

    builder = GnCore(gn_config(group, port, secured=False), clock, mac=bytes.fromhex("02000000cafe"))
    good = builder.build_frame(pdus["srem"], DisseminationParams(catalog.SREM))
    bad = [
        (b"", DropReason.MALFORMED_ETHERNET),
        (good[:10], DropReason.MALFORMED_ETHERNET),
        (good[:12] + b"\x86\xdd" + good[14:], DropReason.NOT_GEONETWORKING),
        (good[:14] + b"\x11\x00", DropReason.MALFORMED_GN),
        (good[:14] + b"\x21" + good[15:], DropReason.UNSUPPORTED_GN),
        (good[: 14 + 4] + b"\x10" + good[14 + 5 :], DropReason.MALFORMED_BTP),
        (good[: -len(pdus["srem"]) - 4] + b"\x07\xd1\x00\x00" + pdus["srem"], DropReason.UNKNOWN_BTP_PORT),
        (good[:14] + b"\x12\x00\x05\x01" + b"\x03\x81\x00\x40\x03\x80\x7f", DropReason.MALFORMED_SECURED_ENVELOPE),
        (bytes(range(256)) * 4, DropReason.NOT_GEONETWORKING),
    ]
    tx = plain_sender(group)
    try:
        await rx.start(got.put_nowait)
        for data, _ in bad:
            tx.sendto(data, (group, port))
        tx.sendto(good, (group, port))
        frame = await asyncio.wait_for(got.get(), 5)  # datagrams arrive in order on lo
        assert frame.btp_port == 2007 and not frame.secured_packet and frame.secured == pdus["srem"]
        expected: dict[str, int] = {}
        for _, reason in bad:
            expected[str(reason)] = expected.get(str(reason), 0) + 1
        assert {r: n for (t, r), n in drops.snapshot().items() if t == "rx"} == expected
    finally:
        await rx.stop()
        tx.close()
    # every received datagram is in the capture, malformed ones included
    assert len(read_capture((tmp_path / "rx.pcap").read_bytes()).records) == len(bad) + 1


async def test_send_before_start_and_a_bad_message_are_counted_not_raised(pdus):
    group, port = random_group(), free_udp_port()
    drops = DropCounts()
    t = GnUdpTransport(gn_config(group, port, secured=False), clock=ManualClock(NOW), drops=drops)
    await t.send(pdus["spatem"], DisseminationParams(catalog.SPATEM))
    assert drops.count(DropReason.NOT_STARTED) == 1
    await t.start(lambda f: None)
    try:
        await t.send(pdus["spatem"], DisseminationParams(catalog.SPATEM, hop_limit=300))
        assert drops.count(DropReason.BAD_PARAMS) == 1 and t.sent == 0
    finally:
        await t.stop()
        await t.stop()  # idempotent


def test_configuration_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="^secured:"):
        GnUdpTransport(gn_config("239.1.2.3", 8947), clock=ManualClock(NOW), drops=DropCounts())
    with pytest.raises(ConfigError, match="^group:"):
        gn_config("10.0.0.1", 8947).validate()
    with pytest.raises(ConfigError, match="^interface:"):
        gn_config("239.1.2.3", 8947, interface="nosuchif0").validate()
    with pytest.raises(ConfigError, match="^mac:"):
        gn_config("239.1.2.3", 8947, mac="01:00:5e:00:00:01").validate()
    with pytest.raises(ConfigError, match="^pcap:"):
        GnUdpConfig(latitude=1, longitude=2, pcap=str(tmp_path / "no" / "such" / "x.pcap")).validate()
    with pytest.raises(ConfigError, match="^latitude/longitude:"):
        GnUdpConfig().validate()
    with pytest.raises(ConfigError, match="^gn.tll: unknown option"):
        GnUdpConfig.from_dict({"tll": 3, "latitude": 1, "longitude": 2}, prefix="gn.")
    cfg = GnUdpConfig.from_dict({"latitude": 1.5, "longitude": 2, "accept_ports": [2007]})
    assert cfg.ports == frozenset({2007}) and cfg.port == 8947 and cfg.group == "239.118.122.97"
