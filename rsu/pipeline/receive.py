"""The receive pipeline: one received frame plus ``now`` in, what became of it out (sans-I/O).

Layer: takes a :class:`rsu.transports.base.ReceivedFrame` (secured data, or the BTP payload of an
unsecured GN packet, as a transport hands it up); gives the facilities PDU with its security and
transport facts to the services (:class:`~rsu.pipeline.receive_ports.ReceiveServices`) and returns
outcomes (:mod:`rsu.pipeline.outcomes`, plus :class:`Received`), which the daemon counts.

The path of one frame: unsecured frames are taken only when ``accept_unsecured`` is set or security
is off; a secured one is verified (:class:`~rsu.pipeline.receive_ports.ReceiveSecurity`) with the
payload offset the transport reports (a secured GN packet signs its headers and BTP with the PDU);
a verified one is checked for GN duplicates (EN 302 636-4-1: after verification, so a forged copy
cannot shadow the real one), then for replay, then handed to the services.

Outcomes of :meth:`ReceivePipeline.receive`: first ``Received`` for the frame, then its fate
(``Accepted``, ``Dropped`` or ``Held``), then, for every held frame that left the hold meanwhile
(released by a certificate this frame brought, expired, or evicted), ``HoldEnded`` and its fate. So
received = accepted + dropped + held at every moment (docs/metrics.md "Receive accounting").
A bug anywhere on the path is a ``Dropped`` with reason ``internal-error`` (logged), never an exception.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rsu import catalog
from rsu.clock import iso_utc
from rsu.pipeline.outcomes import Accepted, Dropped, Held, HoldEnded, ReceiveOutcome
from rsu.pipeline.receive_ports import ReceiveSecurity, ReceiveServices
from rsu.transports.base import ReceivedFrame
from rsu.transports.drops import DropReason
from rsu.transports.gn import DuplicateDetector

if TYPE_CHECKING:
    from rsu.security.verify import VerificationResult

log = logging.getLogger("rsu.pipeline.receive")

# how a held frame left the hold, by its result's reason (any other: released, i.e. verified again)
_LEFT_HOLD: dict[str, Literal["expired", "evicted"]] = {"held-expired": "expired", "hold-queue-full": "evicted"}


class RxReason(str, enum.Enum):
    """Receive-side drop reasons decided by this pipeline (transports, security and services have theirs)."""

    UNSECURED = "unsecured"  # an unsigned frame while security.accept_unsecured is off
    SECURITY_DISABLED = "security-disabled"  # a signed frame while security is off (nothing can verify it)
    REPLAY = "replay"  # an exact copy of a message accepted before, within its acceptance window

    def __str__(self) -> str:
        return self.value


def security_reason(reason: object) -> str:
    """The drop-reason label of a security (verification) reason."""
    return f"security:{reason}"


@dataclass(frozen=True)
class Received:
    """A frame reached the pipeline (counted received once; its fate follows in the same outcome list)."""

    transport: str
    message: str


RxOutcome = Received | ReceiveOutcome


def message_label(frame: ReceivedFrame) -> str:
    """The message type a received frame names (BTP port / MQTT topic): the metrics' message label."""
    kind = catalog.BY_BTP_PORT.get(frame.btp_port) if frame.btp_port is not None else None
    return kind.name if kind else "unknown"


def _ignore(*_: object) -> None:
    return None


class ReceivePipeline:
    """Received frames to the services, each frame's fate returned as outcomes.

    ``security``: None when security is off. ``accept_unsecured``: the configuration's
    ``security.accept_unsecured``. ``on_limit(name)``: a bound was reached (the GN duplicate table).
    ``on_verify_seconds(message, seconds)``: how long one verification took.
    ``now`` is the injected clock's time; the security entity reads the same clock for its hold.
    """

    def __init__(
        self,
        services: ReceiveServices,
        security: ReceiveSecurity | None,
        *,
        accept_unsecured: bool,
        on_limit: Callable[[str], None] = _ignore,
        on_verify_seconds: Callable[[str, float], None] = _ignore,
    ) -> None:
        self._services = services
        self._security = security
        self.accept_unsecured = accept_unsecured
        self._on_limit = on_limit
        self._on_verify_seconds = on_verify_seconds
        self._duplicates: dict[str, DuplicateDetector] = {}  # per transport name (bounded by the transports)

    # ------------------------------------------------------------------ wiring (reloads)
    def use_services(self, services: ReceiveServices) -> None:
        """From now on, received messages go to ``services`` (a reload built a new service layer)."""
        self._services = services

    def use_security(self, security: ReceiveSecurity | None, *, accept_unsecured: bool, now: float) -> list[RxOutcome]:
        """Replace the security entity: the frames the old one holds leave with it (expired, dropped)."""
        old = self._security
        out = self.released(old.drop_held(), now) if old is not None else []
        self._security = security
        self.accept_unsecured = accept_unsecured
        return out

    def use_duplicate_tables(self, sizes: Mapping[str, int]) -> None:
        """New, empty GN duplicate tables: ``{transport name: entries}`` (the transports were started anew)."""
        self._duplicates = {name: DuplicateDetector(n, self._on_limit) for name, n in sizes.items()}

    # ------------------------------------------------------------------ frames
    def receive(self, frame: ReceivedFrame, now: float) -> list[RxOutcome]:
        """One frame a transport handed up: ``Received``, its fate, and the fates of frames that left the hold."""
        message = message_label(frame)
        out: list[RxOutcome] = [Received(frame.transport, message)]
        security = self._security
        try:
            if not frame.secured_packet:
                if self.accept_unsecured or security is None:
                    out.append(
                        self._deliver(
                            frame,
                            message,
                            frame.secured[frame.payload_offset :],
                            {"its_aid": None, "ssp": None, "signer": None, "verification": "ok", "secured": False},
                        )
                    )
                else:
                    out.append(
                        Dropped(
                            str(RxReason.UNSECURED),
                            frame.transport,
                            message,
                            "unsigned frame; security.accept_unsecured is off",
                        )
                    )
                return out
            if security is None:
                out.append(
                    Dropped(str(RxReason.SECURITY_DISABLED), frame.transport, message, "signed frame; security is off")
                )
                return out
            kind = catalog.BY_BTP_PORT.get(frame.btp_port) if frame.btp_port is not None else None
            t0 = time.perf_counter()
            result = security.verify(frame.secured, kind, payload_offset=frame.payload_offset, context=frame)
            self._on_verify_seconds(message, time.perf_counter() - t0)
        except Exception as e:  # a bug: this frame's fate is an internal error, never a crash
            log.exception("received frame not processed")
            out.append(Dropped(str(DropReason.INTERNAL_ERROR), frame.transport, message, f"{type(e).__name__}: {e}"))
            return out
        out.extend(self._judged(result, now))
        out.extend(self.released(result.released, now))
        return out

    def released(self, results: Iterable[VerificationResult], now: float) -> list[RxOutcome]:
        """Fates of held frames that a verification outside this pipeline released (e.g. a pre-signed
        message from the centre carrying the certificate they waited for)."""
        out: list[RxOutcome] = []
        for r in results:
            out.extend(self._judged(r, now))
        return out

    def expire(self, now: float) -> list[RxOutcome]:
        """Held frames whose time ran out: ``HoldEnded`` (expired) and ``Dropped`` each (housekeeping calls it)."""
        if self._security is None:
            return []
        return self.released(self._security.expire_held(), now)

    # ------------------------------------------------------------------ steps
    def _judged(self, r: VerificationResult, now: float) -> list[RxOutcome]:
        """One verification result: the fate of its frame (and the hold bookkeeping)."""
        frame: ReceivedFrame = r.context
        message = message_label(frame)
        out: list[RxOutcome] = []
        if r.from_hold:
            out.append(HoldEnded(frame.transport, message, _LEFT_HOLD.get(str(r.reason), "released")))
        if r.held:
            security = self._security
            hold = security.hold_seconds if security is not None else 0.0
            out.append(Held(frame.transport, message, now + hold))
            return out
        try:
            out.append(self._verified(r, frame, message))
        except Exception as e:
            log.exception("received frame not processed")
            out.append(Dropped(str(DropReason.INTERNAL_ERROR), frame.transport, message, f"{type(e).__name__}: {e}"))
        return out

    def _verified(self, r: VerificationResult, frame: ReceivedFrame, message: str) -> Accepted | Dropped:
        """A result that is not held: its drop reason, or the services' verdict."""
        if not r.ok:
            return Dropped(security_reason(r.reason), frame.transport, message, r.detail)
        if frame.duplicate_key is not None:  # GN duplicate detection, after verification (EN 302 636-4-1)
            source, sn, lifetime = frame.duplicate_key
            detector = self._duplicates.get(frame.transport)
            if detector is None:
                detector = self._duplicates[frame.transport] = DuplicateDetector(on_limit=self._on_limit)
            if detector.is_duplicate(source, sn, frame.received_at, lifetime):
                return Dropped(
                    str(DropReason.DUPLICATE),
                    frame.transport,
                    message,
                    f"GN source {source.hex()} sequence number {sn} seen before",
                )
        security = self._security
        if security is not None and security.replayed(r):
            return Dropped(
                str(RxReason.REPLAY), frame.transport, message, "accepted before, within its acceptance window"
            )
        info = {
            "its_aid": r.psid,
            "ssp": r.ssp.hex() if r.ssp is not None else None,
            "signer": r.signer_id.hex() if r.signer_id else None,
            "verification": "ok",
            "secured_data": bytes(frame.secured).hex(),
        }  # as received (forward sinks' envelope option)
        pdu: Any = r.pdu if r.pdu is not None else r.payload[frame.payload_offset :]  # type: ignore[index]
        return self._deliver(frame, message, pdu, info)

    def _deliver(self, frame: ReceivedFrame, message: str, pdu: Any, security: dict[str, Any]) -> Accepted | Dropped:
        """Hand a PDU to the services: ``Accepted`` with the event they published, else ``Dropped`` (their reason)."""
        transport = {
            "transport": frame.transport,
            "source": frame.source,
            "btp_port": frame.btp_port,
            "received_at": iso_utc(frame.received_at),
            **{k: v for k, v in frame.info.items() if isinstance(v, (str, int, float, bool))},
        }
        try:
            event, reason = self._services.receive(pdu, security, transport)
        except Exception as e:  # peer input never stops the daemon
            log.exception("received message not processed")
            return Dropped(str(DropReason.INTERNAL_ERROR), frame.transport, message, f"{type(e).__name__}: {e}")
        if event is None:
            return Dropped(str(reason), frame.transport, message)
        kind = catalog.BY_NAME.get(event.get("message", ""))
        return Accepted(frame.transport, message, kind.service if kind else "?", event)
