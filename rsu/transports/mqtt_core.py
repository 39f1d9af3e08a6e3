"""MQTT v5 indirect delivery, sans-I/O: topics, payloads, expiry, the publish queue, reconnect backoff.

Layer: takes secured data (COER ``Ieee1609Dot2Data`` of a signed facilities PDU) + parameters,
gives an MQTT *publication* (topic, payload, QoS, retain, message expiry); takes a received
publication (topic, payload) and gives a :class:`ReceivedFrame` or a :class:`Drop`. The asyncio
adapter (:mod:`rsu.transports.mqtt`) only moves these over aiomqtt.

Topic scheme (its-client / 5GCroCo geo-broker convention, every part configurable)::

    {prefix}/{queue}/{suffix}/{type}/{source}/{q1}/{q2}/.../{qN}

``queue`` is ``inQueue`` when we publish and ``outQueue`` when we subscribe (a broker-side
copier moves inQueue to outQueue); ``q1..qN`` are the quadkey digits of the destination area's
centre, else the reference point the service gives (``params.extra["reference_point"]``, e.g.
the intersection), else the RSU position.

Payloads: ``secured`` = the 1609.2 bytes as they are; ``json`` = an envelope::

    {"message_type": "spatem", "source_uuid": "rsu_12", "timestamp": <ms UTC>,
     "validity_duration": <s>, "its_aid": 137, "btp_port": 2004, "secured": true,
     "version": 1, "message": "<base64 of the secured bytes>"}
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
from collections import OrderedDict
from dataclasses import dataclass

from rsu import catalog
from rsu.catalog import MessageKind
from rsu.clock import Clock
from rsu.transports import envelope, itsclient
from rsu.transports import quadkey as qk
from rsu.transports.base import DisseminationParams, ReceivedFrame
from rsu.transports.config import MqttConfig
from rsu.transports.drops import Drop, DropReason

ENVELOPE_VERSION = 1
MIN_EXPIRY_S = 1  # MQTT Message Expiry Interval is whole seconds; 0 would mean "no expiry"


# ============================================================================ topics


@dataclass(frozen=True)
class ParsedTopic:
    queue: str
    kind: MessageKind
    source: str
    quadkey: str


class TopicError(ValueError):
    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class TopicScheme:
    """Builds and parses topics of the configured scheme."""

    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self.prefix_levels = config.prefix.split("/")
        self.type_names = {catalog.BY_NAME[k]: v for k, v in config.type_names.items()}
        self.kinds_by_type_name = {v: k for k, v in self.type_names.items()}
        self.source = config.source_id

    def _head(self, queue: str) -> list[str]:
        return [*self.prefix_levels, queue, self.config.suffix]

    def publish_topic(self, kind: MessageKind, quadkey: str) -> str:
        name = self.type_names.get(kind)
        if name is None:
            raise KeyError(f"no topic name for message type {kind.name}")
        levels = [*self._head(self.config.publish_queue), name, self.source]
        if quadkey:
            levels += list(qk.validate(quadkey))
        return "/".join(levels)

    def subscription_filters(self, kinds: list[MessageKind], latitude: float, longitude: float) -> list[str]:
        """One filter per type and tile: ``.../{type}/+/{q1}/.../{qk}/#`` (or ``.../{type}/#`` at depth 0)."""
        depth = self.config.subscribe_depth
        tiles = [""]
        if depth:
            centre = qk.quadkey(latitude, longitude, depth)
            tiles = qk.neighbours(centre) if self.config.subscribe_neighbours else [centre]
        filters = []
        for kind in kinds:
            base = [*self._head(self.config.subscribe_queue), self.type_names[kind]]
            for tile in tiles:
                filters.append("/".join(base + (["+", *tile, "#"] if tile else ["#"])))
        return filters

    def parse(self, topic: str) -> ParsedTopic:
        """Topic -> its parts. Raises :class:`TopicError` (malformed topic / unknown type)."""
        levels = topic.split("/")
        n = len(self.prefix_levels)
        if len(levels) < n + 4 or levels[:n] != self.prefix_levels or levels[n + 1] != self.config.suffix:
            raise TopicError(DropReason.MALFORMED_TOPIC, f"topic {topic!r} does not follow the scheme")
        queue, type_name, source = levels[n], levels[n + 2], levels[n + 3]
        kind = self.kinds_by_type_name.get(type_name)
        if kind is None:
            raise TopicError(DropReason.UNKNOWN_MESSAGE_TYPE, f"message type {type_name!r} in topic {topic!r}")
        digits = levels[n + 4 :]
        if not source or any(len(d) != 1 or d not in "0123" for d in digits):
            raise TopicError(DropReason.MALFORMED_TOPIC, f"bad source or quadkey levels in {topic!r}")
        return ParsedTopic(queue, kind, source, "".join(digits))


# ============================================================================ payloads


def encode_envelope(
    secured: bytes, kind: MessageKind, source: str, now: float, validity_s: float, is_secured: bool = True
) -> bytes:
    return json.dumps(
        {
            "message_type": kind.name,
            "source_uuid": source,
            "timestamp": int(round(now * 1000)),
            "validity_duration": validity_s,
            "its_aid": kind.its_aid,
            "btp_port": kind.btp_port,
            "secured": is_secured,
            "version": ENVELOPE_VERSION,
            "message": base64.b64encode(secured).decode("ascii"),
        },
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True)
class Envelope:
    message: bytes
    message_type: str | None
    timestamp_ms: int | None
    validity_s: float | None
    secured: bool


class PayloadError(ValueError):
    pass


def decode_envelope(payload: bytes) -> Envelope:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise PayloadError(f"JSON envelope: {e}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("message"), str):
        raise PayloadError('JSON envelope: no "message" string')
    try:
        message = base64.b64decode(obj["message"], validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError('JSON envelope: "message" is not base64') from None
    ts, validity = obj.get("timestamp"), obj.get("validity_duration")
    if ts is not None and (not isinstance(ts, (int, float)) or isinstance(ts, bool)):
        raise PayloadError('JSON envelope: "timestamp" is not a number')
    if validity is not None and (not isinstance(validity, (int, float)) or isinstance(validity, bool)):
        raise PayloadError('JSON envelope: "validity_duration" is not a number')
    mtype = obj.get("message_type")
    return Envelope(
        message,
        mtype if isinstance(mtype, str) else None,
        int(ts) if ts is not None else None,
        float(validity) if validity is not None else None,
        obj.get("secured", True) is not False,
    )


# ============================================================================ publications and the queue


@dataclass
class Publication:
    """One MQTT publication waiting to be sent; ``deadline`` is when its content goes stale."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str
    created: float
    deadline: float

    def expiry_interval(self, now: float) -> int:
        """Message Expiry Interval to send now: the validity left, rounded up, at least 1 s."""
        return max(MIN_EXPIRY_S, int(math.ceil(self.deadline - now - 1e-9)))

    def is_stale(self, now: float) -> bool:
        return now >= self.deadline


class PublishQueue:
    """Publications waiting for the broker, oldest first, bounded; stale ones are never sent.

    While connected the queue is drained at once; while disconnected it holds what the services
    keep producing. On reconnect :meth:`pop` skips (and reports) everything whose validity ran out,
    so a SPATEM produced before a broker outage is never delivered late. A retained publication
    replaces a queued retained one on the same topic (only the newest MAPEM/IVIM matters).
    """

    def __init__(self, clock: Clock, max_items: int = 1000) -> None:
        self.clock = clock
        self.max_items = max_items
        self._items: OrderedDict[int, Publication] = OrderedDict()
        self._retained: dict[str, int] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, pub: Publication) -> list[Publication]:
        """Queue ``pub``; returns what it pushed out (replaced retained ones are not counted as lost)."""
        evicted: list[Publication] = []
        if pub.retain and pub.topic in self._retained:
            self._items.pop(self._retained.pop(pub.topic), None)
        key = self._next
        self._next += 1
        self._items[key] = pub
        if pub.retain:
            self._retained[pub.topic] = key
        while len(self._items) > self.max_items:
            old_key, old = self._items.popitem(last=False)
            self._forget(old_key, old)
            evicted.append(old)
        return evicted

    def push_front(self, pub: Publication) -> None:
        """Put back a publication whose send failed (it stays first in line)."""
        key = -self._next - 1
        self._next += 1
        if pub.retain:
            if pub.topic in self._retained:  # a newer one is already queued
                return
            self._retained[pub.topic] = key
        self._items[key] = pub
        self._items.move_to_end(key, last=False)

    def pop(self) -> tuple[Publication | None, list[Publication]]:
        """(next fresh publication or None, the stale ones skipped on the way)."""
        now = self.clock.now()
        stale = []
        while self._items:
            key, pub = self._items.popitem(last=False)
            self._forget(key, pub)
            if pub.is_stale(now):
                stale.append(pub)
                continue
            return pub, stale
        return None, stale

    def _forget(self, key: int, pub: Publication) -> None:
        if pub.retain and self._retained.get(pub.topic) == key:
            del self._retained[pub.topic]


# ============================================================================ reconnect backoff


class Backoff:
    """Exponential reconnect delay with jitter: initial, ×factor per failure, capped; reset on success."""

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        spread = base * self.jitter
        return max(0.0, min(self.maximum, base + self.rng.uniform(-spread, spread)))

    def reset(self) -> None:
        self.failures = 0


# ============================================================================ the core


class MqttCore:
    """Everything the MQTT adapter decides, without the network: what to publish, what to accept."""

    def __init__(self, config: MqttConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.name = config.name
        self.topics = TopicScheme(config)
        self.source = self.topics.source
        self.queue = PublishQueue(clock, config.queue_max)

    # ------------------------------------------------------------------ publish
    def quadkey_for(self, params: DisseminationParams) -> str:
        depth = self.config.quadkey_depth
        if params.destination is not None:
            return qk.quadkey(params.destination.latitude, params.destination.longitude, depth)
        extra = params.extra or {}
        if "quadkey" in extra:
            return qk.validate(str(extra["quadkey"]))[:depth]
        ref = extra.get("reference_point")
        if ref is not None:
            lat, lon = ref
            return qk.quadkey(float(lat), float(lon), depth)
        return qk.quadkey(*self._position(), depth)

    def _position(self) -> tuple[float, float]:
        lat, lon = self.config.latitude, self.config.longitude
        if lat is None or lon is None:  # validate() refuses such a config; one built in code may skip it
            raise ValueError(f"{self.name}: latitude/longitude: the RSU position is required")
        return lat, lon

    def expiry_for(self, params: DisseminationParams) -> float:
        override = self.config.expiry_s.get(params.kind.name)
        value = float(override if override is not None else params.lifetime_s)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"lifetime_s {params.lifetime_s!r} is not a positive number of seconds")
        return value

    def publication(self, secured: bytes, params: DisseminationParams) -> Publication:
        """Secured data + parameters -> Publication. Raises ValueError/KeyError on bad parameters."""
        kind = params.kind
        now = self.clock.now()
        validity = self.expiry_for(params)
        topic = self.topics.publish_topic(kind, self.quadkey_for(params))
        if self.config.payload_format == "json":
            payload = encode_envelope(secured, kind, self.source, now, validity)
        elif self.config.payload_format == "its-client":  # Orange its-client v2 JSON (no signature)
            payload = itsclient.encode_payload(secured, kind, self.source, now)
        else:
            payload = bytes(secured)
        retain = bool(params.retain or kind.name in self.config.retain_types)
        return Publication(topic, payload, self.config.qos, retain, kind.name, now, now + validity)

    # ------------------------------------------------------------------ receive
    def subscription_filters(self) -> list[str]:
        kinds = [catalog.BY_NAME[n] for n in self.config.subscribe]
        return self.topics.subscription_filters(kinds, *self._position())

    def receive(
        self, topic: str, payload: bytes, *, retained: bool = False, qos: int = 0, expiry_interval: int | None = None
    ) -> ReceivedFrame | Drop:
        """A received publication -> ReceivedFrame or Drop. Never raises on bad input."""
        try:
            parsed = self.topics.parse(topic)
        except TopicError as e:
            return Drop(e.reason, str(e))
        m = parsed.kind.name
        if parsed.source == self.source:
            return Drop(DropReason.OWN_FRAME, f"our own publication on {topic}", m)
        if not payload:
            return Drop(DropReason.MALFORMED_PAYLOAD, "empty payload", m)
        now = self.clock.now()
        secured = bytes(payload)
        is_secured = envelope.is_ieee1609dot2(secured)
        info = {
            "topic": topic,
            "queue": parsed.queue,
            "message_type": parsed.kind.name,
            "quadkey": parsed.quadkey,
            "retained": retained,
            "qos": qos,
        }
        if expiry_interval is not None:
            info["expiry_interval"] = expiry_interval
        if self.config.payload_format == "json":
            try:
                env = decode_envelope(payload)
            except PayloadError as e:
                return Drop(DropReason.MALFORMED_PAYLOAD, str(e), m)
            if env.message_type is not None and env.message_type != parsed.kind.name:
                return Drop(
                    DropReason.MALFORMED_PAYLOAD, f"envelope says {env.message_type}, topic says {parsed.kind.name}", m
                )
            if (
                env.timestamp_ms is not None
                and env.validity_s is not None
                and now > env.timestamp_ms / 1000 + env.validity_s
            ):
                return Drop(
                    DropReason.STALE, f"validity ended {now - env.timestamp_ms / 1000 - env.validity_s:.1f} s ago", m
                )
            secured, is_secured = env.message, env.secured
            if env.timestamp_ms is not None:
                info["timestamp_ms"] = env.timestamp_ms
        elif self.config.payload_format == "its-client":  # unsigned: delivered as any unsecured message
            try:
                kind, secured, fields = itsclient.decode_payload(payload)
            except itsclient.ItsClientError as e:
                return Drop(DropReason.MALFORMED_PAYLOAD, f"its-client message: {e}", m)
            if kind is not parsed.kind:
                return Drop(DropReason.MALFORMED_PAYLOAD, f"message_type {kind.name}, topic says {m}", m)
            is_secured = False
            info["timestamp_ms"] = fields["timestamp"]
        return ReceivedFrame(
            secured=secured,
            transport=self.name,
            received_at=now,
            btp_port=parsed.kind.btp_port,
            source=parsed.source,
            secured_packet=is_secured,
            info=info,
            payload_offset=0,
        )
