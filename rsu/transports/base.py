"""The interface between the facilities services and the networking & transport layer.

Layer contract: a transport *takes secured data* (COER bytes of a 1609.2 ``Ieee1609Dot2Data``,
i.e. a signed facilities PDU) together with its :class:`DisseminationParams`, and *delivers
received secured data* as :class:`ReceivedFrame` with what it knows about where it came from.
Everything below (GeoNetworking + BTP headers, Ethernet/UDP, MQTT topics) is the transport's
business; everything above (signing, verification, decoding) is not.

Several transports run at once; each message goes to the transports its parameters name
(``DisseminationParams.transports``; empty = every transport configured as default).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rsu.catalog import MessageKind

if TYPE_CHECKING:
    from rsu.pipeline.outcomes import Sent


@dataclass(frozen=True)
class GeoArea:
    """A GeoNetworking destination area (EN 302 636-4-1): centre and shape.

    ``shape`` is ``circle`` (``a`` = radius), ``rectangle`` or ``ellipse`` (``a``/``b`` = half-axes);
    distances in metres, ``angle`` in degrees clockwise from north (the long axis).
    Latitude/longitude in degrees (WGS 84).
    """

    latitude: float
    longitude: float
    shape: str = "circle"
    a: float = 300.0
    b: float = 0.0
    angle: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in ("circle", "rectangle", "ellipse"):
            raise ValueError(f"shape: {self.shape!r} is not circle, rectangle or ellipse")
        if not -90.0 <= self.latitude <= 90.0:
            raise ValueError(f"latitude: {self.latitude} is outside -90..90")
        if not -180.0 <= self.longitude <= 180.0:
            raise ValueError(f"longitude: {self.longitude} is outside -180..180")
        if not 0 < self.a <= 65535 or not 0 <= self.b <= 65535:
            raise ValueError("a/b: distances must be within 0..65535 m (a > 0)")
        if not 0 <= self.angle < 360:
            raise ValueError(f"angle: {self.angle} is outside 0..360")


@dataclass(frozen=True)
class DisseminationParams:
    """How one message is to be sent: what the service and the application decided, per message."""

    kind: MessageKind  # message type (gives the BTP port and ITS-AID via rsu.catalog)
    destination: GeoArea | None = None  # GBC area; None = single-hop broadcast (SHB)
    traffic_class: int = 0  # GN traffic class (store-carry-forward bit, channel offload, TC id 0..63)
    lifetime_s: float = 1.0  # GN packet lifetime / MQTT message expiry
    hop_limit: int = 1  # GN maximum hop limit
    transports: tuple[str, ...] = ()  # names of the transports to use; empty = the default ones
    retain: bool = False  # MQTT: keep as the retained message of its topic (MAPEM, IVIM)
    # transport-specific hints, e.g. {"quadkey": "120203..."} or {"station_type": 15}
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def btp_port(self) -> int:
        return self.kind.btp_port


@dataclass(frozen=True)
class ReceivedFrame:
    """Secured data received by a transport, with what the transport knows about it."""

    secured: bytes  # COER Ieee1609Dot2Data (or, for unsecured GN packets, the raw BTP payload)
    transport: str  # name of the transport instance that received it
    received_at: float  # UTC POSIX seconds (from the injected clock)
    btp_port: int | None = None
    source: str | None = None  # e.g. the GN source address (hex) or the MQTT topic
    secured_packet: bool = True  # False when the GN common header said "not secured"
    info: dict[str, Any] = field(default_factory=dict)  # transport details (GN header fields, MQTT properties)
    # Secured GN packets sign the GN common + extended headers and BTP-B together with the PDU
    # (EN 302 636-4-1: basic header | Ieee1609Dot2Data{unsecuredData = CH | EH | BTP | PDU}).
    # After verification the facilities PDU is ``unsecuredData[payload_offset:]``; 0 for MQTT.
    payload_offset: int = 0
    # (source address, sequence number, lifetime s) of a secured GN packet: the receiver checks it
    # for duplicates *after* verification (rsu.transports.gn.DuplicateDetector), None otherwise
    duplicate_key: tuple[bytes, int, float] | None = None


ReceiveCallback = Callable[[ReceivedFrame], Awaitable[None] | None]


class Transport(Protocol):
    """An asyncio adapter that sends and receives secured data."""

    name: str

    async def start(self, on_receive: ReceiveCallback) -> None:
        """Open sockets/connections; call ``on_receive`` for every frame received from now on."""

    async def send(self, secured: bytes, params: DisseminationParams) -> None:
        """Send one secured PDU (framed by the transport's own core: a standalone station). Must not block
        the loop; may drop (and count) when it cannot send."""

    def write(self, sent: Sent) -> None:
        """Write what the daemon's send pipeline framed for this transport (rsu.pipeline.send): I/O only,
        never blocks the loop, never raises; failures are counted."""

    async def stop(self) -> None:
        """Close everything; idempotent."""


class DropCounter(Protocol):
    """Where transports and integration feeds count what they drop, by reason (malformed GN, unknown
    port, stale, ...); ``transport`` names the source (a transport, or a feed such as ``map-files``).

    ``message`` is given for a *received* frame the transport drops: the message type its BTP port or
    topic named (``"unknown"`` when none). Such a frame was received and dropped at once, so a counter
    that keeps receive accounting (received = accepted + dropped + held) counts it as received too.
    Send-side drops give no ``message``."""

    def drop(self, transport: str, reason: str, message: str | None = None) -> None: ...
