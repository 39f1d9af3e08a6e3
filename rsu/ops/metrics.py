"""Prometheus metrics of the daemon: every name defined here, once.

Names carry the ``rsu_`` prefix and the usual ``_total`` / ``_seconds`` suffixes; labels are
``service`` (TLM, RLT, IVI, TLC, GPC), ``message`` (spatem, ...), ``transport`` (the transport
instance name) and ``reason`` (why something was dropped). Each daemon owns one registry, so
several daemons (or tests) in one process do not mix their numbers.
"""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_FAST = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_LATENESS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.triggered = Counter("rsu_messages_triggered_total",
                                 "Application requests accepted (trigger/update/terminate)",
                                 ["service", "message", "action"], registry=r)
        self.sent = Counter("rsu_messages_sent_total", "Messages handed to a transport (first transmissions)",
                            ["service", "message", "transport"], registry=r)
        self.repeated = Counter("rsu_messages_repeated_total", "Repetitions handed to a transport",
                                ["service", "message", "transport"], registry=r)
        self.received = Counter("rsu_messages_received_total", "Frames received carrying an IS message",
                                ["message", "transport"], registry=r)
        self.accepted = Counter("rsu_messages_accepted_total",
                                "Received messages that passed security, SSP and decoding",
                                ["service", "message", "transport"], registry=r)
        self.dropped = Counter("rsu_messages_dropped_total", "Received or outgoing messages dropped, by reason",
                               ["transport", "reason"], registry=r)
        self.rate = Gauge("rsu_dissemination_rate_per_second",
                          "Messages sent per second over the last rate window", ["message", "transport"], registry=r)
        self.lateness = Histogram("rsu_scheduler_lateness_seconds",
                                  "How late the scheduler released a transmission against its schedule",
                                  ["service"], buckets=_LATENESS, registry=r)
        self.encode_time = Histogram("rsu_encode_seconds", "UPER encoding time", ["message"],
                                     buckets=_FAST, registry=r)
        self.sign_time = Histogram("rsu_sign_seconds", "Signing time (hash + ECDSA + COER)", ["message"],
                                   buckets=_FAST, registry=r)
        self.verify_time = Histogram("rsu_verify_seconds", "Verification time (signature + chain + SSP)",
                                     ["message"], buckets=_FAST, registry=r)
        self.active = Gauge("rsu_active_messages", "Messages currently on the air", ["service", "message"],
                            registry=r)
        self.at_expiry = Gauge("rsu_at_expiry_hours", "Hours until the authorization ticket in use expires",
                               ["service", "its_aid"], registry=r)
        self.mqtt_connected = Gauge("rsu_mqtt_connected", "1 while the MQTT connection is up", ["transport"],
                                    registry=r)
        self.feed_age = Gauge("rsu_controller_feed_age_seconds", "Age of the newest traffic-controller update",
                              ["intersection"], registry=r)
        self.api_connections = Gauge("rsu_api_connections", "Open connections to the HTTP API", registry=r)
        self.api_connections_closed = Counter(
            "rsu_api_connections_closed_total",
            "API connections closed or refused by the connection bounds (api.max_connections, "
            "api.header_timeout_s, api.idle_timeout_s), by reason", ["reason"], registry=r)
        self.up = Gauge("rsu_up", "1 while the daemon runs", registry=r)
        self.up.set(1)
        self._window: deque[tuple[float, str, str]] = deque()
        self.rate_window_s = 10.0

    # convenience used by the runtime --------------------------------------------------------
    def on_sent(self, service: str, message: str, transport: str, repetition: bool, now: float | None = None) -> None:
        (self.repeated if repetition else self.sent).labels(service, message, transport).inc()
        now = time.monotonic() if now is None else now
        self._window.append((now, message, transport))

    def update_rates(self, now: float | None = None) -> None:
        """Recompute rsu_dissemination_rate_per_second from the sends in the last window."""
        now = time.monotonic() if now is None else now
        horizon = now - self.rate_window_s
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()
        counts: dict[tuple[str, str], int] = {}
        for _, message, transport in self._window:
            counts[(message, transport)] = counts.get((message, transport), 0) + 1
        for labels in list(self.rate._metrics):  # reset series that went quiet
            if labels not in counts:
                self.rate.labels(*labels).set(0)
        for (message, transport), n in counts.items():
            self.rate.labels(message, transport).set(n / self.rate_window_s)

    def drop(self, transport: str, reason: str) -> None:
        """The DropCounter protocol of rsu.transports.base."""
        self.dropped.labels(transport, reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
