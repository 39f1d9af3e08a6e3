"""What a pipeline step decided, as data: the daemon acts on outcomes and counts them, never infers them.

Send side: each target transport of a transmission gets exactly one :class:`Sent` or :class:`Dropped`,
unless the whole transmission is :class:`Skipped` (the only outcome then).
Receive side: each received frame meets exactly one fate (:class:`Accepted`, :class:`Dropped` or
:class:`Held`); a held frame later gets a :class:`HoldEnded` followed by its fate.
``message`` is the metrics' message label (a :class:`rsu.catalog.MessageKind` name, or ``unknown``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rsu.catalog import MessageKind


@dataclass(frozen=True)
class Sent:
    """``frame`` (the bytes the transport writes: a GN packet, or the secured PDU for MQTT) goes out on ``transport``."""

    transport: str
    frame: bytes
    kind: MessageKind
    repetition: bool


@dataclass(frozen=True)
class Dropped:
    """Not sent / not accepted, with the reason label of ``rsu_*_dropped_total`` and a detail for the log."""

    reason: str
    transport: str
    message: str
    detail: str = ""


@dataclass(frozen=True)
class Skipped:
    """A transmission not sent on any transport (e.g. a timed message while the clock is not synchronized):
    counted in ``rsu_scheduled_sends_skipped_total{service, reason}``. ``service``: the catalog's service."""

    service: str
    message: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Held:
    """A received frame waits (e.g. for its signer's certificate) until ``until`` at the latest."""

    transport: str
    message: str
    until: float


@dataclass(frozen=True)
class HoldEnded:
    """A held frame leaves the hold (its fate follows as another outcome)."""

    transport: str
    message: str
    event: Literal["released", "expired", "evicted"]


@dataclass(frozen=True)
class Accepted:
    """A received message reached the services; ``event`` is what IS_DataProviding delivered."""

    transport: str
    message: str
    service: str
    event: dict[str, Any] = field(default_factory=dict)


SendOutcome = Sent | Dropped | Skipped
ReceiveOutcome = Accepted | Dropped | Held | HoldEnded
