"""Prometheus metrics of the daemon: every name defined here, once.

Names carry the ``rsu_`` prefix and the usual ``_total`` / ``_seconds`` suffixes; labels are
``service`` (TLM, RLT, IVI, TLC, GPC), ``message`` (spatem, ...), ``transport`` (the transport
instance name) and ``reason`` (why something was dropped). Each daemon owns one registry, so
several daemons (or tests) in one process do not mix their numbers. docs/metrics.md lists every
metric and every reason (a test keeps it in sync with :func:`receive_reasons`, :func:`send_reasons`
and the registry).

Receive accounting: for every transport and message type, at every moment::

    rsu_messages_received_total = sum(rsu_messages_accepted_total over service)
                                + sum(rsu_messages_received_dropped_total over reason)
                                + rsu_messages_held

A frame is counted as received once, where its fate is first known: a transport that drops it
counts it (``drop(..., message=...)``), otherwise the daemon counts the receive pipeline's outcomes
(:meth:`Metrics.count_receive`: its ``Received`` outcome, then the frame's fate).
"""

from __future__ import annotations

import enum
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rsu.pipeline.outcomes import Accepted, Dropped, Held, HoldEnded, SendOutcome, Sent, Skipped

# the receive-side reasons the pipeline decides (re-exported: the metrics list every reason)
from rsu.pipeline.receive import Received, RxOutcome, RxReason, security_reason  # noqa: F401

_FAST = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_LATENESS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATE_AFTER_S = 0.05  # a scheduled send released later than this after its slot counts as late


def receive_reasons() -> dict[str, str]:
    """Every reason a received frame can be dropped for: label -> where it is decided."""
    from rsu.security.verify import Reason
    from rsu.services.received import RxDrop
    from rsu.transports.drops import RECEIVE_REASONS

    out = {str(r): "transport" for r in RECEIVE_REASONS}
    out.update({security_reason(r): "security" for r in Reason})
    out.update({str(r): "services" for r in RxDrop})
    out.update({str(r): "pipeline" for r in RxReason})
    return out


class TxReason(str, enum.Enum):
    SIGNING_REFUSED = "signing-refused"  # no authorization ticket permits the content

    def __str__(self) -> str:
        return self.value


def send_reasons() -> dict[str, str]:
    """Every reason an outgoing message can be dropped for: label -> where it is decided."""
    from rsu.transports.drops import SEND_REASONS

    out = {str(r): "transport" for r in SEND_REASONS}
    out.update({str(r): "daemon" for r in TxReason})
    return out


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.triggered = Counter(
            "rsu_messages_triggered_total",
            "Application requests accepted (trigger/update/terminate)",
            ["service", "message", "action"],
            registry=r,
        )
        self.sent = Counter(
            "rsu_messages_sent_total",
            "Messages handed to a transport (first transmissions)",
            ["service", "message", "transport"],
            registry=r,
        )
        self.repeated = Counter(
            "rsu_messages_repeated_total",
            "Repetitions handed to a transport",
            ["service", "message", "transport"],
            registry=r,
        )
        self.received = Counter(
            "rsu_messages_received_total",
            "Frames that reached a receive entry point, by the message type they name",
            ["message", "transport"],
            registry=r,
        )
        self.accepted = Counter(
            "rsu_messages_accepted_total",
            "Received messages that passed security, SSP and decoding",
            ["service", "message", "transport"],
            registry=r,
        )
        self.dropped = Counter(
            "rsu_messages_dropped_total",
            "Received or outgoing messages, and integration feed inputs, dropped, by reason",
            ["transport", "reason"],
            registry=r,
        )
        self.rx_dropped = Counter(
            "rsu_messages_received_dropped_total",
            "Received frames dropped, by message type and reason",
            ["message", "transport", "reason"],
            registry=r,
        )
        self.held = Gauge(
            "rsu_messages_held",
            "Received frames held until their signer's certificate arrives",
            ["message", "transport"],
            registry=r,
        )
        self.hold_events = Counter(
            "rsu_messages_hold_total",
            "Frames entering (held) and leaving (released, expired, evicted) the hold",
            ["message", "transport", "event"],
            registry=r,
        )
        self.limit_hits = Counter(
            "rsu_limit_hits_total", "A bound on state other stations can grow was reached", ["limit"], registry=r
        )
        self.p2pcd_pending = Gauge(
            "rsu_p2pcd_pending_requests",
            "Certificate requests waiting for an outgoing message to carry them",
            registry=r,
        )
        self.late = Counter(
            "rsu_scheduled_sends_late_total",
            f"Scheduled sends released more than {LATE_AFTER_S} s after their slot",
            ["service"],
            registry=r,
        )
        self.skipped = Counter(
            "rsu_scheduled_sends_skipped_total",
            "Scheduled sends not made (missed-slot: the loop was late by more than an "
            "interval; overload: more repetitions were due than one pass may send; superseded: "
            "a newer state replaced one not yet sent or not yet built; clock-unsynchronized: a "
            "timed message while the clock is not synchronized, under clock.unsynchronized: stop)",
            ["service", "reason"],
            registry=r,
        )
        self.rate = Gauge(
            "rsu_dissemination_rate_per_second",
            "Messages sent per second over the last rate window",
            ["message", "transport"],
            registry=r,
        )
        self.lateness = Histogram(
            "rsu_scheduler_lateness_seconds",
            "How late the scheduler released a transmission against its schedule",
            ["service"],
            buckets=_LATENESS,
            registry=r,
        )
        self.encode_time = Histogram("rsu_encode_seconds", "UPER encoding time", ["message"], buckets=_FAST, registry=r)
        self.sign_time = Histogram(
            "rsu_sign_seconds", "Signing time (hash + ECDSA + COER)", ["message"], buckets=_FAST, registry=r
        )
        self.verify_time = Histogram(
            "rsu_verify_seconds", "Verification time (signature + chain + SSP)", ["message"], buckets=_FAST, registry=r
        )
        self.active = Gauge("rsu_active_messages", "Messages currently on the air", ["service", "message"], registry=r)
        self.at_expiry = Gauge(
            "rsu_at_expiry_hours",
            "Hours until the authorization ticket in use expires",
            ["service", "its_aid"],
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "rsu_mqtt_connected", "1 while the MQTT connection is up", ["transport"], registry=r
        )
        self.feed_age = Gauge(
            "rsu_controller_feed_age_seconds",
            "Age of the newest traffic-controller update",
            ["intersection"],
            registry=r,
        )
        self.api_connections = Gauge("rsu_api_connections", "Open connections to the HTTP API", registry=r)
        self.api_connections_closed = Counter(
            "rsu_api_connections_closed_total",
            "API connections closed or refused by the connection bounds (api.max_connections, "
            "api.header_timeout_s, api.idle_timeout_s), by reason",
            ["reason"],
            registry=r,
        )
        self.store_events = Counter(
            "rsu_store_events_total",
            "What opening the store of active messages found: store_lost, store_behind, "
            "cursor_file_rebuilt (identifiers continue from the copy ahead; see docs/operations.md)",
            ["event"],
            registry=r,
        )
        # forwarding to the centre (rsu.forward), per sink; reasons: rsu.forward.runtime.DROP_REASONS
        self.forward_queued = Gauge(
            "rsu_forward_queued", "Received messages waiting in the sink's disk queue", ["sink"], registry=r
        )
        self.forward_delivered = Counter(
            "rsu_forward_delivered_total", "Messages the sink's centre acknowledged", ["sink"], registry=r
        )
        self.forward_dropped = Counter(
            "rsu_forward_dropped_total", "Messages a sink dropped, by reason", ["sink", "reason"], registry=r
        )
        self.forward_oldest_age = Gauge(
            "rsu_forward_oldest_age_seconds", "Age of the oldest queued message", ["sink"], registry=r
        )
        self.presigned = Counter(
            "rsu_presigned_total",
            "Pre-signed messages submitted: accepted, or the reason they were refused",
            ["result"],
            registry=r,
        )
        self.api_auth_failures = Counter(
            "rsu_api_auth_failures_total", "Failed API authentications, by reason", ["reason"], registry=r
        )
        self.api_requests_refused = Counter(
            "rsu_api_requests_refused_total",
            "API requests refused before their handler ran: banned, forbidden (role too low), rate_limited",
            ["reason"],
            registry=r,
        )
        self.api_bans = Counter(
            "rsu_api_bans_total", "Bans started by the lockout (client address or identity)", ["kind"], registry=r
        )
        self.api_rate_limited = Counter(
            "rsu_api_rate_limited_total",
            "State-changing API requests refused by the per-identity rate limit, by action",
            ["action"],
            registry=r,
        )
        self.audit_entries = Counter(
            "rsu_audit_entries_total", "Lines written to the audit log, by action", ["action"], registry=r
        )
        self.up = Gauge("rsu_up", "1 while the daemon runs", registry=r)
        self.up.set(1)
        # clock and GNSS health (rsu.health.monitor)
        self.clock_synchronized = Gauge(
            "rsu_clock_synchronized", "1 while the system clock is synchronized (clock.sync_source decides)", registry=r
        )
        self.clock_offset = Gauge(
            "rsu_clock_offset_seconds",
            "Estimated offset of the system clock from true time (positive: ahead)",
            registry=r,
        )
        self.clock_error = Gauge("rsu_clock_error_seconds", "Bound on the system clock's error", registry=r)
        self.clock_source = Gauge(
            "rsu_clock_source", "1 for the source of the clock's verdict (kernel, chrony, none)", ["source"], registry=r
        )
        self.clock_unsynchronized_sent = Counter(
            "rsu_clock_unsynchronized_sends_total",
            "Timed messages sent while the clock was not synchronized (clock.unsynchronized: warn)",
            ["service", "message"],
            registry=r,
        )
        self.gnss_connected = Gauge("rsu_gnss_connected", "1 while connected to gpsd", registry=r)
        self.gnss_fix_mode = Gauge("rsu_gnss_fix_mode", "gpsd fix mode: 0 unknown, 1 no fix, 2 2D, 3 3D", registry=r)
        self.gnss_latitude = Gauge("rsu_gnss_latitude_degrees", "GNSS latitude, WGS 84 (NaN without a fix)", registry=r)
        self.gnss_longitude = Gauge(
            "rsu_gnss_longitude_degrees", "GNSS longitude, WGS 84 (NaN without a fix)", registry=r
        )
        self.gnss_altitude = Gauge("rsu_gnss_altitude_metres", "GNSS altitude (NaN without a 3D fix)", registry=r)
        self.gnss_satellites_used = Gauge(
            "rsu_gnss_satellites_used", "Satellites used in the fix (NaN: not reported)", registry=r
        )
        self._children: dict = {}
        self._window: deque[tuple[float, tuple[str, str]]] = deque()  # (time, (message, transport)) of each send
        self._in_window: dict[tuple[str, str], int] = {}  # sends per (message, transport) in _window
        self.rate_window_s = 10.0

    # convenience used by the runtime --------------------------------------------------------
    def on_sent(self, service: str, message: str, transport: str, repetition: bool, now: float | None = None) -> None:
        self.child(self.repeated if repetition else self.sent, service, message, transport).inc()
        now = time.monotonic() if now is None else now
        key = (message, transport)
        self._window.append((now, key))
        self._in_window[key] = self._in_window.get(key, 0) + 1

    def update_rates(self, now: float | None = None) -> None:
        """Recompute rsu_dissemination_rate_per_second from the sends in the last window."""
        now = time.monotonic() if now is None else now
        horizon = now - self.rate_window_s
        counts = self._in_window  # kept as sends enter the window and leave it (not counted again each time)
        while self._window and self._window[0][0] < horizon:
            key = self._window.popleft()[1]
            counts[key] -= 1
            if not counts[key]:
                del counts[key]
        for labels in list(self.rate._metrics):  # reset series that went quiet
            if labels not in counts:
                self.rate.labels(*labels).set(0)
        for (message, transport), n in counts.items():
            self.rate.labels(message, transport).set(n / self.rate_window_s)

    def child(self, metric, *labels: str):
        """``metric.labels(*labels)``, remembered: the receive path counts several series per frame, and
        the label values come from small fixed sets (message types, transports, reasons)."""
        key = (metric, labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    def drop(self, transport: str, reason: str, message: str | None = None) -> None:
        """The DropCounter protocol of rsu.transports.base: with ``message``, a received frame the transport
        dropped (counted as received too); without, anything else (send side, integration feeds)."""
        reason = str(reason)
        self.child(self.dropped, transport, reason).inc()
        if message is not None:
            self.child(self.received, message, transport).inc()
            self.child(self.rx_dropped, message, transport, reason).inc()

    # receive accounting used by the daemon ------------------------------------------------
    def rx(self, message: str, transport: str) -> None:
        """A frame the transport handed up: received (its fate is counted by rx_drop, accept or hold)."""
        self.child(self.received, message, transport).inc()

    def rx_drop(self, message: str, transport: str, reason: str) -> None:
        reason = str(reason)
        self.child(self.dropped, transport, reason).inc()
        self.child(self.rx_dropped, message, transport, reason).inc()

    def accept(self, service: str, message: str, transport: str) -> None:
        self.child(self.accepted, service, message, transport).inc()

    def hold(self, message: str, transport: str, event: str) -> None:
        """event: held (one more held) or released / expired / evicted (one fewer)."""
        self.child(self.hold_events, message, transport, event).inc()
        self.child(self.held, message, transport).inc(1 if event == "held" else -1)

    def count_receive(self, outcome: RxOutcome) -> None:
        """One outcome of the receive pipeline, counted: Received (rx), Accepted (accept), Dropped (rx_drop),
        Held and HoldEnded (hold)."""
        match outcome:
            case Received():
                self.rx(outcome.message, outcome.transport)
            case Accepted():
                self.accept(outcome.service, outcome.message, outcome.transport)
            case Dropped():
                self.rx_drop(outcome.message, outcome.transport, outcome.reason)
            case Held():
                self.hold(outcome.message, outcome.transport, "held")
            case HoldEnded():
                self.hold(outcome.message, outcome.transport, outcome.event)

    def count_send(self, service: str, lateness_s: float, outcomes: list[SendOutcome]) -> list[str] | None:
        """The send pipeline's outcomes for one scheduled transmission of ``service`` (catalog service), counted:
        a Skipped transmission as skipped; otherwise its lateness, each Sent as sent or repeated, each Dropped
        by its reason. Gives the names of the transports it went out on (None: skipped)."""
        if len(outcomes) == 1 and isinstance(outcomes[0], Skipped):
            self.child(self.skipped, outcomes[0].service, outcomes[0].reason).inc()
            return None
        self.scheduled(service, lateness_s)
        sent_on = []
        for outcome in outcomes:
            if isinstance(outcome, Sent):
                self.on_sent(service, outcome.kind.name, outcome.transport, repetition=outcome.repetition)
                sent_on.append(outcome.transport)
            elif isinstance(outcome, Dropped):
                self.drop(outcome.transport, outcome.reason)
        return sent_on

    def skip(self, service: str, reason: str, n: int = 1) -> None:
        """Sends not made, per service and reason: the scheduler's, and controller-feed updates shed before
        they were built (``superseded``)."""
        self.child(self.skipped, service.upper(), reason).inc(n)

    def limit_hit(self, limit: str) -> None:
        self.child(self.limit_hits, limit).inc()

    # the API guard's counts (rsu.api.guard.GuardMetrics) -------------------------------------
    def auth_failure(self, reason: str) -> None:
        self.child(self.api_auth_failures, reason).inc()

    def api_refused(self, reason: str) -> None:
        self.child(self.api_requests_refused, reason).inc()

    def ban_started(self, permanent: bool) -> None:
        self.child(self.api_bans, "permanent" if permanent else "timed").inc()

    def rate_limited(self, action: str) -> None:
        self.child(self.api_rate_limited, action).inc()

    def audited(self, action: str) -> None:
        self.child(self.audit_entries, action).inc()

    def scheduled(self, service: str, lateness_s: float) -> None:
        self.child(self.lateness, service).observe(lateness_s)
        if lateness_s > LATE_AFTER_S:
            self.child(self.late, service).inc()

    def receive_accounting(self) -> dict[tuple[str, str], dict[str, float]]:
        """Per (message, transport): received, accepted, dropped, held (for tests and status pages)."""
        out: dict[tuple[str, str], dict[str, float]] = {}

        def row(message: str, transport: str) -> dict[str, float]:
            return out.setdefault((message, transport), {"received": 0.0, "accepted": 0.0, "dropped": 0.0, "held": 0.0})

        for metric, field in (
            (self.received, "received"),
            (self.accepted, "accepted"),
            (self.rx_dropped, "dropped"),
            (self.held, "held"),
        ):
            for sample in next(iter(metric.collect())).samples:
                if not sample.name.endswith("_created"):
                    row(sample.labels["message"], sample.labels["transport"])[field] += sample.value
        return out

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
