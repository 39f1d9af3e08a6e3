"""The send pipeline, sans-I/O: one scheduled transmission in, one outcome per target transport out.

Layer: takes a :class:`rsu.services.model.Transmission` (the UPER facilities PDU the service encoded,
its DisseminationParams and the SSP requirement of its content) plus ``now``; gives, for every
transport the parameters name (or the default transports), exactly one :class:`Sent` (the bytes
or publication that transport writes) or :class:`Dropped` (why not). The daemon writes each Sent
with the transport's adapter and counts each outcome; it decides nothing.

One way, each stage once::

    transmission -> security (one SignRequest per signature) -> GN/BTP or MQTT framing -> Sent

* a secured GeoNetworking transport signs its own headers: :meth:`GnCore.frame` builds
  CH | EH | BTP-B | PDU and calls the signer once with the PDU's offset (EN 302 636-4-1);
* every other transport carries the PDU signed alone (TS 103 097), with the full certificate
  (indirect delivery: no neighbourhood to learn digests from), signed once per transmission and
  shared by all those transports; an unsecured GN transport sends the bare PDU but, as any
  transport of a secured station, only when the content could be signed;
* nothing is decoded or re-parsed: the requirement came with the transmission, the offset from
  the framer that placed the PDU.

Ports (what the pipeline needs of the next layers): :class:`Signer` (security),
:class:`Framer` (a transport's sans-I/O core: :class:`GnFramer`, :class:`MqttFramer`) and, on the
daemon's side, :class:`FrameWriter` (a transport's I/O adapter).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from rsu.catalog import MessageKind
from rsu.pipeline.outcomes import Dropped, SendOutcome, Sent, Skipped
from rsu.security.request import SignRequest
from rsu.services.model import Transmission
from rsu.transports.drops import DropReason
from rsu.transports.gn_core import GnCore, GnSendError, PayloadSigner
from rsu.transports.mqtt_core import MqttCore, Publication

log = logging.getLogger(__name__)

SIGNING_REFUSED = "signing-refused"  # rsu.ops.metrics.TxReason.SIGNING_REFUSED: no AT permits the content

OnSignTime = Callable[[MessageKind, float], None]
"""``on_sign_time(kind, seconds)``: one signature (made or refused) took ``seconds``."""


# ====================================================================== ports


class Signer(Protocol):
    """The security entity as the sender sees it (rsu.security.service.SecurityService)."""

    def sign(self, request: SignRequest) -> bytes:
        """``request.payload`` -> EtsiTs103097Data-Signed (COER). Raises SigningRefused."""
        ...


class FramingError(Exception):
    """A transport cannot carry this transmission: ``reason`` is the drop reason label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Framer(Protocol):
    """What the send pipeline needs of one transport's sans-I/O core."""

    @property
    def name(self) -> str:
        """The transport's name (DisseminationParams.transports, metrics label)."""
        ...

    @property
    def signs_headers(self) -> bool:
        """True: a secured GN transport, signing its own headers + BTP + PDU through ``sign``;
        False: it carries the PDU signed alone (``secured``, None when the station does not sign)."""
        ...

    def frame(self, tx: Transmission, secured: bytes | None, sign: PayloadSigner | None) -> Sent:
        """The outcome to write for ``tx``. Raises :class:`FramingError`."""
        ...


class FrameWriter(Protocol):
    """A transport's I/O adapter as the daemon sees it: writes what the pipeline framed (never raises)."""

    name: str

    def write(self, sent: Sent) -> None: ...


# ====================================================================== framers


@dataclass(frozen=True)
class Published(Sent):
    """A Sent on an MQTT transport: ``frame`` is the publication's payload, ``publication`` the whole
    decision (topic, QoS, retain, expiry) the adapter queues."""

    publication: Publication


class GnFramer:
    """:class:`Framer` of a GN/BTP transport: ``tx.pdu`` -> Ethernet frame (Ethernet II | GN packet)."""

    def __init__(self, core: GnCore) -> None:
        self.core = core

    @property
    def name(self) -> str:
        return self.core.name

    @property
    def signs_headers(self) -> bool:
        return bool(self.core.config.secured)

    def frame(self, tx: Transmission, secured: bytes | None, sign: PayloadSigner | None) -> Sent:
        # an unsecured GN packet carries the bare PDU (the PDU signature, if any, is not used)
        try:
            data = self.core.frame(tx.pdu, tx.params, sign)
        except GnSendError as e:
            raise FramingError(str(e.reason), e.detail) from None
        return Sent(self.name, data, tx.kind, not tx.fresh)


class MqttFramer:
    """:class:`Framer` of an MQTT transport: the (signed) PDU -> publication (topic, payload, properties)."""

    signs_headers = False

    def __init__(self, core: MqttCore) -> None:
        self.core = core

    @property
    def name(self) -> str:
        return self.core.config.name

    def frame(self, tx: Transmission, secured: bytes | None, sign: PayloadSigner | None) -> Sent:
        try:
            pub = self.core.publication(secured if secured is not None else tx.pdu, tx.params)
        except (ValueError, KeyError, TypeError) as e:
            raise FramingError(str(DropReason.BAD_PARAMS), str(e)) from None
        return Published(self.name, pub.payload, tx.kind, not tx.fresh, pub)


# ====================================================================== pipeline


class SendGate(Protocol):
    """Asked once per transmission before anything is signed (e.g. :class:`rsu.health.clock.ClockGate`):
    None lets it through, a reason (``clock-unsynchronized``) skips it."""

    def allows(self, kind: MessageKind, now: float) -> str | None: ...


class SendPipeline:
    """Transmission + now -> one outcome per target transport (see the module docstring).

    ``framers``: the configured transports' framers; ``defaults``: the names used when a
    transmission names none; ``signer``: None when the station does not sign (security off).
    ``on_sign_time`` hears each signature's duration (``timer`` measures it).
    """

    def __init__(
        self,
        framers: Iterable[Framer],
        defaults: Iterable[str],
        signer: Signer | None,
        *,
        on_sign_time: OnSignTime | None = None,
        timer: Callable[[], float] = time.perf_counter,
        gate: SendGate | None = None,
    ) -> None:
        self.framers: Mapping[str, Framer] = {f.name: f for f in framers}
        self.defaults = tuple(defaults)
        self.signer = signer
        self._on_sign_time = on_sign_time
        self._timer = timer
        self.gate = gate

    def targets(self, tx: Transmission) -> tuple[str, ...]:
        """The transport names ``tx`` goes to: the ones its parameters name, else the defaults."""
        return tx.params.transports or self.defaults

    def send(self, tx: Transmission, now: float) -> list[SendOutcome]:
        """One outcome per target transport, in the order the parameters name them; or one :class:`Skipped`
        when the gate holds the transmission back (nothing encoded is signed then)."""
        message = tx.kind.name
        if self.gate is not None:
            reason = self.gate.allows(tx.kind, now)
            if reason is not None:
                return [Skipped(tx.kind.service, message, reason, f"{tx.kind.pdu} {tx.id} not sent")]
        outcomes: list[SendOutcome] = []
        shared: _SharedSignature | None = None
        for name in self.targets(tx):
            framer = self.framers.get(name)
            if framer is None:
                outcomes.append(
                    Dropped(
                        str(DropReason.UNKNOWN_TRANSPORT),
                        name,
                        message,
                        f"{tx.kind.pdu} {tx.id} names transport {name!r}, which is not configured",
                    )
                )
                continue
            secured: bytes | None = None
            sign: PayloadSigner | None = None
            if self.signer is not None:
                if framer.signs_headers:
                    sign = self._header_signer(tx)
                else:
                    if shared is None:
                        shared = self._sign_pdu(tx)
                    if shared.refused is not None:
                        outcomes.append(Dropped(SIGNING_REFUSED, name, message, shared.refused))
                        continue
                    secured = shared.data
            try:
                outcomes.append(framer.frame(tx, secured, sign))
            except FramingError as e:
                log.debug("%s: %s %s dropped (%s): %s", name, tx.kind.pdu, tx.id, e.reason, e.detail)
                outcomes.append(Dropped(e.reason, name, message, e.detail))
            except Exception:  # a bug in a framer: this target's outcome, never a crash
                log.exception("%s: building the %s %s failed", name, tx.kind.pdu, tx.id)
                outcomes.append(Dropped(str(DropReason.INTERNAL_ERROR), name, message, "build"))
        return outcomes

    # ------------------------------------------------------------------ signing
    def _signed(self, request: SignRequest) -> bytes:
        assert self.signer is not None
        t0 = self._timer()
        try:
            return self.signer.sign(request)
        finally:
            if self._on_sign_time is not None:
                self._on_sign_time(request.kind, self._timer() - t0)

    def _sign_pdu(self, tx: Transmission) -> _SharedSignature:
        """The PDU signed alone with the full certificate (indirect delivery), or why not."""
        from rsu.security.pool import SigningRefused  # loaded with the security entity (none: never here)

        if tx.requirement is None:
            detail = "no content requirement known for these bytes"
        else:
            try:
                return _SharedSignature(self._signed(SignRequest(tx.requirement, tx.pdu, 0, True)), None)
            except SigningRefused as e:
                detail = str(e)
        log.error("%s %s not sent: %s", tx.kind.pdu, tx.id, detail)
        return _SharedSignature(b"", detail)

    def _header_signer(self, tx: Transmission) -> PayloadSigner:
        """The signer a secured GN framer calls once: CH | EH | BTP-B | PDU, the PDU at ``offset``."""

        def sign(payload: bytes, offset: int) -> bytes:
            if tx.requirement is None:
                from rsu.security.pool import SigningRefused

                raise SigningRefused(tx.kind, ("content",), "no content requirement known for these bytes")
            return self._signed(SignRequest(tx.requirement, payload, offset))

        return sign


@dataclass(frozen=True)
class _SharedSignature:
    data: bytes
    refused: str | None  # why no AT signed it (then ``data`` is empty)


__all__ = [
    "SIGNING_REFUSED",
    "FrameWriter",
    "Framer",
    "FramingError",
    "GnFramer",
    "MqttFramer",
    "Published",
    "SendPipeline",
    "SignRequest",
    "Signer",
]
