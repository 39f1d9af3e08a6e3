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

from rsu import catalog, clock as clockmod
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
    return cfgmod.parse({
        "state_dir": str(state_dir), "api": {"port": free_tcp_port()}, "logging": {"level": "ERROR"},
        "services": {"ivi_provider": PROVIDER},
        "security": security,
        "transports": [{"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port()},
                       {"type": "mqtt", "name": "mqtt", "port": free_tcp_port(), "subscribe": ["srem", "ivim"],
                        "subscribe_queue": "inQueue", "backoff_initial": 30.0}],
    })


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
        self.core = GnCore(GnUdpConfig(latitude=RSU_LAT + 0.0001, longitude=RSU_LON, mac=mac), clock,
                           sign=self._sign)
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
        return signer.sign(inner, kind.its_aid, clockmod.time64(self.clock.now()),
                           with_certificate=self._with_certificate)

    def frame(self, kind: MessageKind, pdu: bytes, *, signer: Signer | None = None, with_certificate: bool = True,
              area: GeoArea | None = None, secured: bool = True) -> bytes:
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
    return frame[:i + 1] + os.urandom(8) + frame[i + 9:]


def feed_gn(daemon: Daemon, frame: bytes) -> None:
    daemon.transports["gn"]._datagram(frame, ("127.0.0.1", 4711))


def feed_mqtt(daemon: Daemon, message: aiomqtt.Message) -> None:
    daemon.transports["mqtt"]._handle(message)


def kinds() -> list[MessageKind]:
    return list(catalog.MESSAGES)
