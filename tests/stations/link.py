"""Two (or more) full stations connected in memory: the harness of the two-station tests.

In the style of aioquic's tests: no sockets, no sleeps, one :class:`rsu.clock.ManualClock` shared by
every station. A :class:`Station` is the daemon's sans-I/O chain, built from the real parts:

    ServiceLayer (own state directory) -> SendPipeline (SecurityService + GnFramer over a GnCore)
    GnCore.receive_frame -> ReceivePipeline (SecurityServicePort) -> ServiceLayer -> ReceivedHub

A :class:`Link` carries every frame a station's pipeline returns as :class:`Sent` to the other
stations' GnCore, at the clock's current time; a :class:`Wire` (one per direction) can lose, hold back
and reorder frames and keeps a log of everything that crossed it. :meth:`Link.advance` moves the clock
through every deadline of every station (the daemon's scheduler loop, without the waiting).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from services.secured import authorities
from services.support import PROVIDER

from rsu import catalog
from rsu import clock as clockmod
from rsu.clock import ManualClock
from rsu.pipeline.outcomes import Accepted, Dropped, Sent
from rsu.pipeline.receive import ReceivePipeline, RxOutcome
from rsu.pipeline.receive_ports import SecurityServicePort
from rsu.pipeline.send import GnFramer, SendPipeline
from rsu.security import pki, ssp
from rsu.security.certs import Certificate
from rsu.security.pool import AtPool, AuthorizationTicket
from rsu.security.service import SecurityService
from rsu.security.setup import permission_check
from rsu.security.sign import Signer
from rsu.security.verify import TrustStore, Verifier, parse_signed
from rsu.services.layer import ServiceLayer, ServicesConfig
from rsu.transports import gn
from rsu.transports.config import GnUdpConfig
from rsu.transports.drops import Drop
from rsu.transports.gn_core import GnCore

# both stations stand at the reference point of config/examples/mapem-4arm-intersection.json, so the
# GeoBroadcast areas derived from the example messages contain them
LATITUDE, LONGITUDE = 44.837592, -0.579431
TRANSPORT = "gn"


ALL = ("spatem", "mapem", "ivim", "srem", "ssem", "rtcmem")
OWN_PROVIDER = ssp.ServiceProvider.of(PROVIDER["countryCode"], PROVIDER["providerIdentifier"])


def make_at(clock: ManualClock, *messages: str, start_s: float = -3600.0, hours: int = 168) -> pki.Issued:
    """An AT from the test AA (tests/services/secured.py) with the full SSP of each message type, valid from
    ``start_s`` seconds relative to now, for ``hours``."""
    _, aa = authorities()
    perms = []
    for name in messages:
        kind = catalog.by_name(name)
        perms.append((kind.its_aid, ssp.full(kind, OWN_PROVIDER if ssp.layout(kind).provider_octets else None)))
    return pki.make_at(aa, clockmod.time32(clock.now() + start_s), perms, hours=hours)


@dataclass(frozen=True)
class Frame:
    """One frame on a wire: when it was sent, by whom, and the Ethernet frame the GN framer built."""

    at: float
    source: str
    sent: Sent

    @property
    def data(self) -> bytes:
        return self.sent.frame

    @property
    def packet(self) -> gn.GnPacket:
        """The GN packet inside the frame (Ethernet II header stripped)."""
        return gn.parse_packet(self.sent.frame[14:])

    @property
    def signer(self) -> tuple[str, str]:
        """How the secured packet names its signer: ("digest" or "certificate", the AT's HashedId8 in hex)."""
        msg = parse_signed(self.packet.secured)
        if msg.signer[0] == "certificate":
            assert msg.signer_cert_bytes is not None
            return "certificate", Certificate.from_bytes(msg.signer_cert_bytes).hashed_id8.hex()
        return msg.signer[0], bytes(msg.signer[1]).hex()


@dataclass(frozen=True)
class Arrival:
    """What a station's receive side made of one frame: the transport's Drop, or the pipeline's outcomes."""

    at: float
    frame: Frame | None  # None: housekeeping (held frames whose time ran out)
    outcomes: tuple[RxOutcome, ...] = ()
    gn_drop: Drop | None = None


class Station:
    """One RSU: its service layer, security entity, GN core and both pipelines, on the shared clock.

    ``ats``: the station's authorization tickets (issued by the test PKI whose ``trust`` it is given);
    ``received`` is an IS_DataProviding subscription (the hub) taken at construction.
    """

    def __init__(
        self,
        name: str,
        state_dir: Path,
        clock: ManualClock,
        codec,
        *,
        ats: Iterable[pki.Issued],
        issuers: Iterable[pki.Issued],
        trust: TrustStore,
        station_id: int,
        ivi_provider: dict | None = None,
        rotation_margin: float = 3600.0,
        certificate_interval: float = 1.0,
        hold_seconds: float = 2.0,
        mac: int = 1,
    ) -> None:
        self.name = name
        self.clock = clock
        tickets = [
            AuthorizationTicket(a.certificate, Signer(a.certificate, a.key), f"{name}-{i}") for i, a in enumerate(ats)
        ]
        pool = AtPool(tickets, clock, rotation_margin=rotation_margin, issuers=[i.certificate for i in issuers])
        verifier = Verifier(clock, trust, codec=codec, hold_seconds=hold_seconds)
        self.security = SecurityService(pool, verifier, clock, certificate_interval=certificate_interval)
        self.layer = ServiceLayer(
            ServicesConfig(state_dir, station_id=station_id, ivi_provider=ivi_provider, known_transports=[TRANSPORT]),
            clock=clock,
            codec=codec,
            permission_check=permission_check(self.security),
        )
        config = GnUdpConfig(
            name=TRANSPORT, latitude=LATITUDE, longitude=LONGITUDE, secured=True, mac=f"02:00:00:00:00:{mac:02x}"
        )
        config.validate()
        self.gn = GnCore(config, clock, first_sn=0)
        self.send = SendPipeline([GnFramer(self.gn)], [TRANSPORT], self.security)
        self.receive = ReceivePipeline(self.layer, SecurityServicePort(self.security), accept_unsecured=False)
        self.receive.use_duplicate_tables({TRANSPORT: config.duplicate_entries})
        self.received = self.layer.subscribe(types=["received"])
        self.sent: list[Frame] = []  # every frame this station's pipeline returned as Sent
        self.dropped: list[Dropped] = []  # send-side drops
        self.arrivals: list[Arrival] = []  # every frame handed to this station

    # ------------------------------------------------------------------ send side
    def transmit(self) -> list[Frame]:
        """What the services have due now, through the send pipeline: the frames to put on the air."""
        now = self.clock.now()
        frames: list[Frame] = []
        for tx in self.layer.due(now):
            for outcome in self.send.send(tx, now):
                if isinstance(outcome, Sent):
                    frames.append(Frame(now, self.name, outcome))
                else:
                    self.dropped.append(outcome)
        self.sent.extend(frames)
        return frames

    # ------------------------------------------------------------------ receive side
    def deliver(self, frame: Frame) -> Arrival:
        """One frame from the air: GnCore (Ethernet, GN, BTP) then the receive pipeline."""
        now = self.clock.now()
        got = self.gn.receive_frame(frame.data)
        if isinstance(got, Drop):
            arrival = Arrival(now, frame, gn_drop=got)
        else:
            arrival = Arrival(now, frame, tuple(self.receive.receive(got, now)))
        self.arrivals.append(arrival)
        return arrival

    def housekeeping(self) -> list[RxOutcome]:
        """Held frames whose time ran out (the daemon's housekeeping loop)."""
        out = self.receive.expire(self.clock.now())
        if out:
            self.arrivals.append(Arrival(self.clock.now(), None, tuple(out)))
        return out

    # ------------------------------------------------------------------ what happened
    def outcomes(self, *types: type) -> list[RxOutcome]:
        """Every receive outcome so far (of the given types), in order."""
        return [o for a in self.arrivals for o in a.outcomes if not types or isinstance(o, types)]

    def accepted(self, message: str | None = None) -> list[Accepted]:
        return [o for o in self.outcomes(Accepted) if message is None or o.message == message]

    def events(self, message: str | None = None) -> list[dict]:
        """IS_DataProviding: the received-message events of the hub subscription, drained."""
        return [e for e in self.received.drain() if message is None or e["message"] == message]

    def close(self) -> None:
        self.received.close()
        self.layer.close()


@dataclass
class Wire:
    """One direction of a link. ``lose`` frames are lost (the next ones first); while ``paused`` frames wait
    in ``queue`` until :meth:`release` hands them over (in the order given: reordering). ``log``: every
    frame that entered the wire, delivered or not."""

    source: Station
    target: Station
    lose: int = 0
    paused: bool = False
    queue: list[Frame] = field(default_factory=list)
    log: list[Frame] = field(default_factory=list)
    lost: list[Frame] = field(default_factory=list)

    def carry(self, frame: Frame) -> None:
        self.log.append(frame)
        if self.lose > 0:
            self.lose -= 1
            self.lost.append(frame)
        elif self.paused:
            self.queue.append(frame)
        else:
            self.target.deliver(frame)

    def release(self, order: Iterable[int] | None = None) -> list[Arrival]:
        """Deliver the waiting frames now (``order``: their indexes in ``queue``, e.g. reversed) and resume."""
        queue, self.queue, self.paused = self.queue, [], False
        picked = [queue[i] for i in order] if order is not None else queue
        return [self.target.deliver(f) for f in picked]


class Link:
    """Stations on one shared medium: every frame one sends reaches each other (through its :class:`Wire`)."""

    def __init__(self, clock: ManualClock, *stations: Station) -> None:
        self.clock = clock
        self.stations = stations
        self.wires = {(a.name, b.name): Wire(a, b) for a in stations for b in stations if a is not b}

    def wire(self, source: Station, target: Station) -> Wire:
        return self.wires[(source.name, target.name)]

    def step(self) -> list[Frame]:
        """Every station sends what is due now; each frame crosses the wires at once."""
        frames: list[Frame] = []
        for station in self.stations:
            for frame in station.transmit():
                frames.append(frame)
                for target in self.stations:
                    if target is not station:
                        self.wire(station, target).carry(frame)
        for station in self.stations:
            station.housekeeping()
        return frames

    def advance(self, seconds: float) -> list[Frame]:
        """Move the clock ``seconds`` ahead, stopping at every deadline of every station on the way (and at the
        end) to send what is due. Returns the frames sent, in order."""
        end = self.clock.now() + seconds
        frames = self.step()
        for _ in range(100_000):  # bounded: a station whose deadline never moves is a bug the test must see
            deadlines = [t for s in self.stations if (t := s.layer.next_deadline()) is not None and t <= end]
            if not deadlines:
                break
            self.clock.set(max(self.clock.now(), min(deadlines)))
            frames += self.step()
        else:
            raise AssertionError("the stations' deadlines do not move forward")
        self.clock.set(end)
        return frames + self.step()


__all__ = ["ALL", "Arrival", "Frame", "Link", "Station", "Wire", "make_at"]
