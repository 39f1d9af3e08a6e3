"""An rsu daemon running in this process (real sockets, real security, real services, an injected
clock) and a neighbouring station that signs GN frames for it with real keys. Frames are handed to
the daemon's transports at their receive entry points (the GN datagram handler, the MQTT message
handler): the code path the sockets drive, without UDP losing any of them. Used by the receive
accounting tests and by bench/bench_flood.py."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import aiomqtt

from rsu import catalog
from rsu import clock as clockmod
from rsu.catalog import MessageKind
from rsu.codec.facilities import get_codec
from rsu.ops import config as cfgmod
from rsu.ops.daemon import Daemon
from rsu.security import ssp as sspmod
from rsu.security.certs import Certificate
from rsu.security.keys import load_private_key
from rsu.security.pki import Issued, make_at
from rsu.security.pool import AtPool
from rsu.security.sign import Signer
from rsu.transports.base import DisseminationParams, GeoArea
from rsu.transports.config import GnUdpConfig, MqttConfig
from rsu.transports.gn_core import GnCore
from rsu.transports.mqtt_core import TopicScheme
from tests.transports.conftest import free_tcp_port, free_udp_port, random_group

RSU_LAT, RSU_LON = 44.837592, -0.579431
PROVIDER = {"country": "GB", "issuer": 31}  # the provider of tests/security/samples.ivim()
OVER_THE_RSU = GeoArea(RSU_LAT, RSU_LON, "circle", 500)


def daemon_config(state_dir: Path, **security: Any) -> cfgmod.Config:
    """GN on its own group and port, an MQTT transport whose broker is absent (frames are handed to its
    receive handler), the API on a free port, the IVI provider of the samples."""
    return cfgmod.parse(
        {
            "state_dir": str(state_dir),
            "api": {"port": free_tcp_port()},
            "logging": {"level": "ERROR"},
            "services": {"ivi_provider": PROVIDER},
            "security": security,
            "transports": [
                {"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port()},
                {
                    "type": "mqtt",
                    "name": "mqtt",
                    "port": free_tcp_port(),
                    "subscribe": ["srem", "ivim"],
                    "subscribe_queue": "inQueue",
                    "backoff_initial": 30.0,
                },
            ],
        }
    )


@contextlib.asynccontextmanager
async def running_daemon(state_dir: Path, clock: clockmod.Clock, **security: Any):
    d = Daemon(daemon_config(state_dir, **security), clock=clock)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


class Neighbour:
    """Another station: GN frames signed with the daemon's own ATs (certificates the daemon knows), or with
    new ATs of the daemon's AA (certificates it does not know yet)."""

    def __init__(self, pki_dir: Path, clock: clockmod.Clock, mac: str = "02:00:00:00:00:07") -> None:
        self.clock = clock
        self.codec = get_codec()
        self.pool = AtPool.load_directory(pki_dir / "at", clock)
        aa_cert = Certificate.load(pki_dir / "aa.oer")
        self.aa = Issued(aa_cert, load_private_key(pki_dir / "aa.key", aa_cert.curve.name))
        self.core = GnCore(GnUdpConfig(latitude=RSU_LAT + 0.0001, longitude=RSU_LON, mac=mac), clock, sign=self._sign)
        self._signer: Signer | None = None
        self._pdus: dict[tuple[str, str], bytes] = {}
        self._with_certificate = True
        self.mqtt_topics = TopicScheme(MqttConfig(source="neighbour", latitude=RSU_LAT, longitude=RSU_LON))

    def known_signer(self, kind: MessageKind) -> Signer:
        return next(t.signer for t in self.pool.tickets if kind.its_aid in t.certificate.app_permissions)

    def new_signer(self, kind: MessageKind, ssp: bytes | None = None) -> Signer:
        """An AT of the daemon's AA that the daemon has never seen (full SSP unless given)."""
        provider = sspmod.ServiceProvider.of(PROVIDER["country"], PROVIDER["issuer"])
        lay = sspmod.layout(kind)
        if ssp is None:
            ssp = sspmod.full(kind, provider if lay.provider_octets else None)
        at = make_at(self.aa, clockmod.time32(self.clock.now() - 60), [(kind.its_aid, ssp)])
        return Signer(at.certificate, at.key)

    def pdu(self, kind: MessageKind, value: dict) -> bytes:
        """UPER bytes of ``value`` (the same bytes again for the same content: encoded once)."""
        key = (kind.name, repr(value))
        pdu = self._pdus.get(key)
        if pdu is None:
            pdu = self._pdus[key] = self.codec.encode(value, kind, validate=False)
            if len(self._pdus) > 256:
                self._pdus.pop(next(iter(self._pdus)))
        return pdu

    def _sign(self, inner: bytes, kind: MessageKind) -> bytes:
        signer = self._signer or self.known_signer(kind)
        return signer.sign(
            inner, kind.its_aid, clockmod.time64(self.clock.now()), with_certificate=self._with_certificate
        )

    def frame(
        self,
        kind: MessageKind,
        pdu: bytes,
        *,
        signer: Signer | None = None,
        with_certificate: bool = True,
        area: GeoArea | None = None,
        secured: bool = True,
    ) -> bytes:
        """An Ethernet + GN frame (SHB, or GBC over the RSU with ``area``) carrying ``pdu``."""
        self._signer, self._with_certificate = signer, with_certificate
        self.core.config.secured = secured
        try:
            return self.core.build_frame(pdu, DisseminationParams(kind, destination=area))
        finally:
            self.core.config.secured = True

    def mqtt_message(self, kind: MessageKind, pdu: bytes, *, signer: Signer | None = None) -> aiomqtt.Message:
        """A publication as the broker would deliver it: the PDU signed alone, full certificate."""
        signer = signer or self.known_signer(kind)
        data = signer.sign(pdu, kind.its_aid, clockmod.time64(self.clock.now()), with_certificate=True)
        topic = self.mqtt_topics.publish_topic(kind, "1202")
        return aiomqtt.Message(topic, data, 1, False, 1, None)


def random_digest(frame: bytes, signature_len: int = 66) -> bytes:
    """``frame`` (digest-signed) with a random HashedId8 as signer: a station nobody knows. The signature
    is left as it is: a frame whose signer is unknown is never verified, only held and asked about."""
    i = len(frame) - signature_len - 9
    assert frame[i] == 0x80, "a digest signer right before a P-256 signature"
    return frame[: i + 1] + os.urandom(8) + frame[i + 9 :]


def feed_gn(daemon: Daemon, frame: bytes) -> None:
    daemon.transports["gn"]._datagram(frame, ("127.0.0.1", 4711))


def feed_mqtt(daemon: Daemon, message: aiomqtt.Message) -> None:
    daemon.transports["mqtt"]._handle(message)


def kinds() -> list[MessageKind]:
    return list(catalog.MESSAGES)


def outgoing_gn_frame(
    daemon: Daemon, kind: MessageKind, value: dict, pdu: bytes, params: DisseminationParams | None = None
) -> bytes:
    """The Ethernet frame the daemon's send pipeline makes of ``pdu`` for its "gn" transport (signed as it
    signs a scheduled transmission)."""
    import dataclasses

    from rsu.services.model import Transmission

    params = dataclasses.replace(params or DisseminationParams(kind), transports=("gn",))
    now = daemon.clock.now()
    tx = Transmission("test", "out", kind, pdu, params, True, 0, None, now, 0, sspmod.required(kind, value))
    [outcome] = daemon.pipeline.send(tx, now)
    return outcome.frame


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def inline_requests(frame: bytes) -> list[bytes]:
    """The inlineP2pcdRequest of an outgoing secured GN frame (Ethernet | basic header | 1609.2 data)."""
    from rsu.security import coer

    data = coer.decode("Ieee1609Dot2Data", frame[14 + 4 :])
    return data["content"][1]["tbsData"]["headerInfo"].get("inlineP2pcdRequest", [])


def flood(
    daemon: Daemon,
    nb: Neighbour,
    clock: clockmod.ManualClock,
    n: int,
    *,
    valid_every: int = 100,
    warmup: int = 3000,
    send_every: int = 1000,
) -> dict:
    """``n`` frames from distinct random digest signers (one signature reused: a signer nobody knows is
    never verified), a valid certificate-signed SPATEM every ``valid_every`` frames, and an outgoing SPATEM
    built by the daemon's GN transport (signed by its security entity) every ``send_every`` frames.
    ``warmup`` flood frames and as many valid ones as IS_DataProviding keeps in its history first fill
    every bounded table, then RSS is measured across the ``n`` frames."""
    import gc

    kind = catalog.SPATEM
    value = {
        "header": {"protocolVersion": 2, "messageID": 4, "stationID": 4711},
        "spat": {
            "intersections": [
                {
                    "id": {"id": 1201},
                    "revision": 3,
                    "status": (b"\x00\x00", 16),
                    "states": [{"signalGroup": 1, "state-time-speed": [{"eventState": "protected-Movement-Allowed"}]}],
                }
            ]
        },
    }
    pdu = nb.pdu(kind, value)
    template = nb.frame(kind, pdu, with_certificate=False)
    params = DisseminationParams(kind)

    def accepted() -> float:
        return daemon.metrics.child(daemon.metrics.accepted, "TLM", "spatem", "gn")._value.get()

    valid = max_inline = sent = 0
    for _ in range(warmup):
        feed_gn(daemon, random_digest(template))
    for _ in range(daemon.layer.ctx.rules.received_history):  # IS_DataProviding keeps this many events
        clock.advance(0.001)
        feed_gn(daemon, nb.frame(kind, pdu))
    gc.collect()
    before, accepted_before = rss_bytes(), accepted()
    for i in range(1, n + 1):
        feed_gn(daemon, random_digest(template))
        if i % valid_every == 0:
            clock.advance(0.01)  # fresh generationTime for the valid ones (and the flood stays in its window)
            feed_gn(daemon, nb.frame(kind, pdu))
            valid += 1
        if i % send_every == 0:
            max_inline = max(max_inline, len(inline_requests(outgoing_gn_frame(daemon, kind, value, pdu, params))))
            sent += 1
    gc.collect()
    return {
        "frames": n,
        "rss_growth_bytes": rss_bytes() - before,
        "valid_sent": valid,
        "valid_accepted": accepted() - accepted_before,
        "outgoing_frames": sent,
        "max_inline_requests": max_inline,
        "pending_requests": len(daemon.security.pending_certificate_requests),
        "held": daemon.security.verifier.held_count,
    }
