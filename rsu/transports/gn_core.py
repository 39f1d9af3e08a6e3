"""The GeoNetworking + BTP-B end node, sans-I/O: secured data in, Ethernet frames out, and back.

Layer: *takes* secured data (a signed ``Ieee1609Dot2Data`` whose unsecuredData is the facilities
PDU, or a bare facilities PDU) with its :class:`DisseminationParams`, *gives* an Ethernet frame
(Ethernet II | GN basic header | ...). Received Ethernet frames become a :class:`ReceivedFrame`
or a :class:`Drop` with a named reason. The clock is injected; nothing here touches a socket.

Why the PDU is signed again: a secured GN packet signs the GN common and extended headers and
BTP-B together with the PDU (basic header | Ieee1609Dot2Data{unsecuredData = CH | EH | BTP | PDU}),
so the signature the services made over the bare PDU (right for MQTT) cannot be reused. The
send pipeline (rsu.pipeline.send) gives :meth:`GnCore.frame` the bare PDU and a signer; the core
builds CH | EH | BTP | PDU and asks the signer once for the Ieee1609Dot2Data, telling it where the
PDU starts. (:meth:`GnCore.build_frame` takes secured data or a bare PDU and signs with the
``sign(payload, kind)`` given at construction: for test stations and tools.)

GN behaviour of this end node (see docs/transports.md): no forwarding (an RSU delivers, it does not
relay), no location service, no beacons; duplicate packet detection for TSB/GBC by (source, SN);
GeoBroadcasts delivered only when the RSU is inside the destination area (configurable).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind
from rsu.clock import Clock, timestamp_its
from rsu.limits import OnLimit, ignore
from rsu.transports import envelope, ethernet
from rsu.transports import gn as g
from rsu.transports.base import DisseminationParams, GeoArea, ReceivedFrame
from rsu.transports.config import GnUdpConfig
from rsu.transports.drops import Drop, DropReason

SignFunction = Callable[[bytes, MessageKind], bytes]
"""``sign(payload, kind) -> COER Ieee1609Dot2Data``: signs ``payload`` (here CH | EH | BTP | PDU)
with the authorization ticket for ``kind`` (psid ``kind.its_aid``, generationTime now)."""

PayloadSigner = Callable[[bytes, int], bytes]
"""``sign(payload, pdu_offset) -> COER Ieee1609Dot2Data``: signs CH | EH | BTP-B | PDU, the PDU
starting at ``pdu_offset`` (the send pipeline's signer for one transmission)."""


_CACHED_PARTS = 64  # lifetimes and destination areas whose encodings are kept (a few per deployment)


class GnSendError(Exception):
    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def facilities_pdu(data: bytes) -> tuple[bytes, bool]:
    """The facilities PDU inside secured data given to a transport -> (pdu, was_secured).

    Signed or unsecured ``Ieee1609Dot2Data`` -> its unsecuredData; anything else is taken as a bare
    UPER PDU (its first octet is the ItsPduHeader protocolVersion, never 3 with a content tag
    after it for the messages in the catalog). Raises ``envelope.EnvelopeError``.
    """
    if envelope.is_ieee1609dot2(data):
        if data[1] == 0x80:
            n, start = envelope.read_length(data, 2)
            if start + n != len(data):
                raise envelope.EnvelopeError("unsecuredData length does not match the data")
            return bytes(data[start:]), False
        return envelope.signed_payload(data), True
    return bytes(data), False


class GnCore:
    """One GN end node: our address, position, sequence number and duplicate list."""

    def __init__(
        self,
        config: GnUdpConfig,
        clock: Clock,
        *,
        sign: SignFunction | None = None,
        mac: bytes | None = None,
        on_limit: OnLimit = ignore,
        first_sn: int | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.clock = clock
        self.sign = sign
        self.mac = mac or (ethernet.parse_mac(config.mac) if config.mac else ethernet.random_local_mac())
        self.address = g.GnAddress(self.mac, config.station_type, config.manual_address)
        if config.latitude is None or config.longitude is None:  # validate() refuses it; a config built in code may not
            raise ValueError(f"{config.name}: latitude/longitude: the RSU position is required")
        self.latitude = float(config.latitude)
        self.longitude = float(config.longitude)
        self.ports = config.ports
        self.duplicates = g.DuplicateDetector(config.duplicate_entries, on_limit)
        # a random first sequence number: after a restart with a configured (fixed) MAC, neighbours still
        # remember our last numbers for a packet lifetime and would take new packets for duplicates
        self._sn = secrets.randbelow(0x10000) if first_sn is None else first_sn & 0xFFFF
        # header parts that do not change between packets (see packet()); each table bounded
        self._lpv_head = self.address.to_bytes()
        self._lpv_key: tuple[float, float, bool] | None = None
        self._lpv_cached = b""
        self._lifetimes: dict[object, int] = {}
        self._areas: dict[GeoArea, bytes] = {}
        self._btp: dict[int, bytes] = {}

    # ------------------------------------------------------------------ send
    def position_vector(self) -> g.LongPositionVector:
        """Our long position vector now (TST = TAI ms since 2004 mod 2^32, speed 0, heading 0)."""
        return g.LongPositionVector(
            self.address,
            timestamp_its(self.clock.now()) & 0xFFFFFFFF,
            g.to_tenth_microdegree(self.latitude),
            g.to_tenth_microdegree(self.longitude),
            self.config.position_accurate,
            0,
            0,
        )

    def next_sequence_number(self) -> int:
        sn = self._sn
        self._sn = (self._sn + 1) & 0xFFFF
        return sn

    def build_packet(self, data: bytes, params: DisseminationParams) -> bytes:
        """Secured data (or a bare PDU) + parameters -> GN packet, signed with the ``sign`` given at
        construction when the transport is secured. Raises :class:`GnSendError`."""
        try:
            pdu, _ = facilities_pdu(data)
        except envelope.EnvelopeError as e:
            raise GnSendError(DropReason.BAD_PARAMS, f"secured data: {e}") from None
        sign = self.sign
        kind = params.kind
        return self.packet(pdu, params, None if sign is None else (lambda inner, offset: sign(inner, kind)))

    def build_frame(self, data: bytes, params: DisseminationParams) -> bytes:
        """Secured data + parameters -> Ethernet frame (broadcast destination, our MAC as source)."""
        return ethernet.build_frame(self.build_packet(data, params), self.mac)

    def packet(self, pdu: bytes, params: DisseminationParams, sign: PayloadSigner | None) -> bytes:
        """A bare facilities PDU + parameters -> GN packet (basic header | ...). Raises :class:`GnSendError`.

        Layer: takes the UPER PDU, gives the GN packet. A secured transport builds CH | EH | BTP-B | PDU
        and calls ``sign(that, pdu_offset)`` once (it knows where the PDU starts: it put it there);
        an unsecured one sends CH | EH | BTP-B | PDU as they are.
        """
        kind = params.kind
        tc, hops, lifetime = params.traffic_class, params.hop_limit, params.lifetime_s
        if not isinstance(tc, int) or not 0 <= tc <= 255:
            raise GnSendError(DropReason.BAD_PARAMS, f"traffic_class {tc!r} is not an octet (0..255)")
        if not isinstance(hops, int) or not 1 <= hops <= 255:
            raise GnSendError(DropReason.BAD_PARAMS, f"hop_limit {hops!r} is outside 1..255")
        lt = self._lifetimes.get(lifetime) if isinstance(lifetime, (int, float)) else None
        if lt is None:
            try:
                lt = g.encode_lifetime(float(lifetime))
            except (TypeError, ValueError) as e:
                raise GnSendError(DropReason.BAD_PARAMS, f"lifetime_s: {e}") from None
            if len(self._lifetimes) < _CACHED_PARTS:
                self._lifetimes[lifetime] = lt
        if len(pdu) + g.BTP_LEN > 0xFFFF:
            raise GnSendError(DropReason.BAD_PARAMS, f"PDU of {len(pdu)} bytes exceeds the GN payload length")
        # CH | EH | BTP-B from cached parts (what does not change between packets), around the PDU;
        # tests/transports/test_gn_build.py checks the bytes against the header objects of rsu.transports.gn
        lpv = self._lpv_head + (timestamp_its(self.clock.now()) & 0xFFFFFFFF).to_bytes(4, "big") + self._lpv_tail()
        destination = params.destination
        if destination is not None:
            ht = g.GBC_TYPES[destination.shape]
            area = self._areas.get(destination)
            if area is None:
                area = g.area_bytes(destination)
                if len(self._areas) < _CACHED_PARTS:
                    self._areas[destination] = area
            ext = self.next_sequence_number().to_bytes(2, "big") + b"\x00\x00" + lpv + area
        elif hops > 1:
            ht = g.HeaderType.TSB
            ext = self.next_sequence_number().to_bytes(2, "big") + b"\x00\x00" + lpv
        else:
            ht = g.HeaderType.SHB
            ext = lpv + b"\x00\x00\x00\x00"
        mhl = 1 if ht == g.HeaderType.SHB else hops
        common = (
            bytes((g.COMMON_NH_BTP_B << 4, ht, tc, 0)) + (g.BTP_LEN + len(pdu)).to_bytes(2, "big") + bytes((mhl, 0))
        )
        btp = self._btp.get(kind.btp_port)
        if btp is None:
            btp = self._btp[kind.btp_port] = g.btp_b(kind.btp_port)  # one per message type of the catalog
        inner = common + ext + btp + pdu
        if self.config.secured:
            if sign is None:
                raise GnSendError(DropReason.SIGN_FAILED, "secured GN transport without a signing function")
            try:
                secured = sign(inner, len(inner) - len(pdu))
            except Exception as e:  # the signer's own failure (no AT, HSM error): drop this packet
                raise GnSendError(DropReason.SIGN_FAILED, f"signing failed: {e}") from e
            return bytes(((g.GN_VERSION << 4) | g.BASIC_NH_SECURED, 0, lt, mhl)) + bytes(secured)
        return bytes(((g.GN_VERSION << 4) | g.BASIC_NH_COMMON, 0, lt, mhl)) + inner

    def _lpv_tail(self) -> bytes:
        """The position vector after its timestamp (position, PAI, speed 0, heading 0), made once per position."""
        key = (self.latitude, self.longitude, self.config.position_accurate)
        if self._lpv_key != key:
            self._lpv_key = key
            self._lpv_cached = g.LongPositionVector(
                self.address,
                0,
                g.to_tenth_microdegree(self.latitude),
                g.to_tenth_microdegree(self.longitude),
                self.config.position_accurate,
                0,
                0,
            ).to_bytes()[12:]
        return self._lpv_cached

    def frame(self, pdu: bytes, params: DisseminationParams, sign: PayloadSigner | None) -> bytes:
        """A bare facilities PDU + parameters -> the Ethernet frame the UDP adapter writes (see :meth:`packet`)."""
        return ethernet.build_frame(self.packet(pdu, params, sign), self.mac)

    # ------------------------------------------------------------------ receive
    def receive_frame(self, frame: bytes, link_source: str | None = None) -> ReceivedFrame | Drop:
        """Ethernet frame -> ReceivedFrame, or Drop with the reason. Never raises on bad bytes."""
        try:
            eth = ethernet.parse_frame(frame)
        except ethernet.EthernetError as e:
            return Drop(DropReason.MALFORMED_ETHERNET, str(e))
        if eth.ethertype != ethernet.ETHERTYPE_GN:
            return Drop(DropReason.NOT_GEONETWORKING, f"ethertype 0x{eth.ethertype:04x}")
        if eth.source == self.mac:
            return Drop(DropReason.OWN_FRAME, "our own Ethernet source address")
        link = {"ethernet_source": ethernet.format_mac(eth.source)}
        if link_source:
            link["link_source"] = link_source
        return self.receive_packet(eth.payload, link)

    def receive_packet(self, packet: bytes, link: dict[str, Any] | None = None) -> ReceivedFrame | Drop:
        """GN packet -> ReceivedFrame, or Drop with the reason."""
        try:
            pkt = g.parse_packet(packet)
        except g.GnError as e:
            return Drop(e.reason, e.detail)
        src = pkt.extended.source
        kind = catalog.BY_BTP_PORT.get(pkt.btp_port)
        message = kind.name if kind else None
        if src.address.mid == self.mac:
            return Drop(DropReason.OWN_FRAME, "our own GN address", message)
        if pkt.btp_port not in self.ports:
            return Drop(DropReason.UNKNOWN_BTP_PORT, f"BTP-B destination port {pkt.btp_port}", message)
        area = pkt.extended.area
        if (
            area is not None
            and self.config.check_destination_area
            and not g.area_contains(area, self.latitude, self.longitude)
        ):
            return Drop(
                DropReason.OUTSIDE_AREA,
                f"RSU outside the {area.shape} around {area.latitude:.7f},{area.longitude:.7f}",
                message,
            )
        now = self.clock.now()
        lifetime = g.decode_lifetime(pkt.basic.lifetime)
        sn = pkt.extended.sequence_number
        duplicate_key = None
        if sn is not None:
            if pkt.is_secured:
                # EN 302 636-4-1: a secured packet is verified before its common header is processed,
                # so duplicate detection waits for the verification (``ReceivedFrame.duplicate_key``);
                # checking here would let a forged packet with a guessed SN suppress the genuine one
                duplicate_key = (src.address.to_bytes(), sn, lifetime)
            elif self.duplicates.is_duplicate(src.address.to_bytes(), sn, now, lifetime):
                return Drop(
                    DropReason.DUPLICATE, f"source {src.address.hex()} sequence number {sn} seen before", message
                )
        info = {
            "header_type": pkt.header_type.label,
            "message_type": kind.name if kind else None,
            "lifetime_s": lifetime,
            "remaining_hop_limit": pkt.basic.rhl,
            "max_hop_limit": pkt.common.max_hop_limit,
            "traffic_class": pkt.common.traffic_class,
            "sequence_number": sn,
            "btp_port_info": pkt.btp_port_info,
            "station_type": src.address.station_type,
            "source_position": {"latitude": src.latitude / 1e7, "longitude": src.longitude / 1e7},
            "source_timestamp_ms": src.timestamp,
            **(link or {}),
        }
        if area is not None:
            info["destination_area"] = {
                "shape": area.shape,
                "latitude": area.latitude,
                "longitude": area.longitude,
                "a": area.a,
                "b": area.b,
                "angle": area.angle,
            }
        return ReceivedFrame(
            secured=pkt.secured if pkt.secured is not None else pkt.payload,  # is_secured, spelled for mypy
            transport=self.name,
            received_at=now,
            btp_port=pkt.btp_port,
            source=src.address.hex(),
            secured_packet=pkt.is_secured,
            info=info,
            payload_offset=pkt.payload_offset if pkt.is_secured else 0,
            duplicate_key=duplicate_key,
        )
