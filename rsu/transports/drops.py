"""Why a transport dropped something, and a simple in-memory :class:`~rsu.transports.base.DropCounter`.

Layer: transport-level reasons only (Ethernet, GeoNetworking, BTP, MQTT, queues). Security,
decoding and service reasons are counted by the stages above with their own names.
Every reason is a stable string: it is what ends up in metrics labels.
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from dataclasses import dataclass


class DropReason(str, enum.Enum):
    # ---- receive: socket
    SOCKET_OVERFLOW = "socket-overflow"  # the kernel dropped datagrams: the socket's receive buffer was full
    # ---- receive: link layer
    MALFORMED_ETHERNET = "malformed-ethernet"  # shorter than the 14-byte Ethernet II header
    NOT_GEONETWORKING = "not-geonetworking"  # ethertype is not 0x8947
    OWN_FRAME = "own-frame"  # our own frame/publication came back (multicast loop, broker echo)
    # ---- receive: GeoNetworking
    MALFORMED_GN = "malformed-gn"  # truncated/inconsistent basic, common or extended header
    UNSUPPORTED_GN = "unsupported-gn"  # GN version, header type (beacon, GUC, LS, ...) or NH we do not deliver
    MALFORMED_SECURED_ENVELOPE = "malformed-secured-envelope"  # NH=secured but no signed unsecuredData inside
    DUPLICATE = "gn-duplicate"  # GN duplicate packet detection (same source and sequence number)
    OUTSIDE_AREA = "outside-destination-area"  # GeoBroadcast whose area does not contain this RSU
    # ---- receive: BTP
    MALFORMED_BTP = "malformed-btp"  # fewer than 4 bytes of BTP header, or BTP-A where BTP-B is expected
    UNKNOWN_BTP_PORT = "unknown-btp-port"  # destination port of no message type we handle
    # ---- receive: MQTT
    MALFORMED_TOPIC = "malformed-mqtt-topic"  # topic does not follow the configured scheme
    UNKNOWN_MESSAGE_TYPE = "unknown-message-type"  # topic type level names no message type we handle
    MALFORMED_PAYLOAD = "malformed-mqtt-payload"  # empty payload, bad JSON envelope, bad base64
    STALE = "stale"  # the message's validity had run out when it arrived / when it could be sent
    # ---- send
    QUEUE_FULL = "queue-full"  # the oldest queued publication was evicted to make room
    SEND_FAILED = "send-failed"  # the socket or the broker refused it
    NOT_STARTED = "not-started"  # send() before start() / after stop()
    SIGN_FAILED = "sign-failed"  # the GN transport's signing function raised
    BAD_PARAMS = "bad-params"  # the dissemination parameters cannot be put on this medium
    UNKNOWN_TRANSPORT = "unknown-transport"  # DisseminationParams.transports names no configured transport
    # ---- either
    INTERNAL_ERROR = "internal-error"  # a bug: logged with its traceback, the frame is dropped

    def __str__(self) -> str:
        return self.value


SEND_REASONS = frozenset(
    {
        DropReason.QUEUE_FULL,
        DropReason.SEND_FAILED,
        DropReason.NOT_STARTED,
        DropReason.SIGN_FAILED,
        DropReason.BAD_PARAMS,
        DropReason.UNKNOWN_TRANSPORT,
        DropReason.STALE,
        DropReason.INTERNAL_ERROR,
    }
)
RECEIVE_REASONS = frozenset(r for r in DropReason if r not in SEND_REASONS) | {
    DropReason.STALE,
    DropReason.INTERNAL_ERROR,
}


@dataclass(frozen=True)
class Drop:
    """What a sans-I/O core returns instead of a ReceivedFrame: the reason, a human detail and, when the
    frame said, the message type it carried (``catalog`` name; None when unknown)."""

    reason: DropReason
    detail: str
    message: str | None = None


class DropCounts:
    """Counts drops by ``(transport, reason)``. Thread-safe; ``snapshot()`` for metrics/tests."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def drop(self, transport: str, reason: str, message: str | None = None) -> None:
        with self._lock:
            self._counts[(transport, str(reason))] += 1

    def count(self, reason: str, transport: str | None = None) -> int:
        """How many drops with ``reason`` (for one transport, or all)."""
        reason = str(reason)
        with self._lock:
            return sum(n for (t, r), n in self._counts.items() if r == reason and (transport is None or t == transport))

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
