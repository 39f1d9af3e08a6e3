"""The daemon's status (``rsu status``, GET /v1/status) and the gauges of /metrics, from the parts the
daemon has now, each given explicitly.

:func:`daemon_status` takes the configuration, the service layer, the security entity, the transports, the
integrations and the PKI client runtime (each None when absent), the send records the scheduler keeps
((service, id) -> {"last", "count", "transports"}) and the reload counters; gives the JSON object.
:func:`refresh_gauges` sets the gauges of :class:`rsu.ops.metrics.Metrics` from the same parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rsu import __version__, catalog
from rsu.clock import iso_utc

if TYPE_CHECKING:
    from rsu.integrations.runtime import Integrations
    from rsu.ops.config import Config
    from rsu.ops.metrics import Metrics
    from rsu.pki.runtime import PkiRuntime
    from rsu.security.service import SecurityService
    from rsu.services.layer import ServiceLayer
    from rsu.transports.dispatch import TransportSet

SendRecords = dict[tuple[str, str], dict]


def note_sent(records: SendRecords, service: str, ident: str, now: float, transports: list[str]) -> None:
    """One scheduled transmission of entry (``service``, ``ident``) at ``now``: its last send, the transports
    it went out on and its count, for the status's message list."""
    record = records.setdefault((service, ident), {"count": 0})
    record.update(last=now, transports=transports)
    record["count"] += 1


def daemon_status(
    *,
    now: float,
    started_at: float | None,
    config: Config,
    config_path: str | None,
    layer: ServiceLayer,
    security: SecurityService | None,
    transports: TransportSet | None,
    integrations: Integrations | None,
    pki: PkiRuntime | None,
    sent: SendRecords,
    reloads: Mapping[str, object],
    forward: dict[str, Any] | None = None,
    clock: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What is on the air now. ``forward``: the forwarding sinks' status; ``clock``: the health monitor's
    (rsu.health.monitor); None without them."""
    messages = []
    for entry in layer.list():
        record = sent.get((entry["service"], entry["id"]), {})
        messages.append(
            {
                "service": entry["service"],
                "id": entry["id"],
                "message": entry["message"],
                "state": entry["state"],
                "identification": entry.get("identification"),
                "next_send": entry.get("next_transmission"),
                "last_send": iso_utc(record["last"]) if "last" in record else None,
                "count": record.get("count", 0),
                "transports": record.get("transports") or entry.get("dissemination", {}).get("transports") or [],
            }
        )
    tickets = []
    if security is not None:
        in_use: dict[str, list[str]] = {}
        for kind in catalog.MESSAGES:
            at = security.pool.current(kind)
            if at is not None:
                in_use[at.hashed_id8.hex()] = in_use.get(at.hashed_id8.hex(), []) + [kind.name]
        for t in security.pool.status():
            tickets.append({**t, "usedFor": in_use.get(t["hashedId8"], [])})
    return {
        "version": __version__,
        "now": iso_utc(now),
        "started_at": iso_utc(started_at) if started_at else None,
        "station_id": config.station.id,
        "config": config_path or "embedded default",
        "security": "on" if security else "off",
        "messages": messages,
        "authorization_tickets": tickets,
        "transports": list(transports.transports) if transports else [],
        "services": layer.stats(),
        "reloads": dict(reloads),
        "integrations": integrations.status() if integrations else None,
        "pki": pki.status() if pki is not None else None,
        "forward": forward,
        "clock": clock,
    }


def refresh_gauges(
    metrics: Metrics,
    *,
    layer: ServiceLayer,
    security: SecurityService | None,
    transports: TransportSet,
    api_connections: int | None,
) -> None:
    """Rates, pending P2PCD requests, the kernel's socket drops, API connections, active entries, AT
    expiry and MQTT connection state."""
    m = metrics
    m.update_rates()
    if security is not None:
        m.p2pcd_pending.set(len(security.pending_certificate_requests))
    for t in transports.transports.values():
        poll = getattr(t, "poll_socket_drops", None)
        if poll is not None:
            poll()
    if api_connections is not None:
        m.api_connections.set(api_connections)
    states = layer.states()
    for kind in catalog.MESSAGES:
        m.child(m.active, kind.service, kind.name).set(
            states[(kind.name, "active")] + states[(kind.name, "terminating")]
        )
    if security is not None:
        for kind in catalog.MESSAGES:
            hours = security.hours_to_expiry(kind)
            if hours is not None:
                m.at_expiry.labels(kind.service, str(kind.its_aid)).set(hours)
    for t in transports.transports.values():
        connected = getattr(t, "connected", None)
        if isinstance(connected, asyncio.Event):
            m.mqtt_connected.labels(t.name).set(1 if connected.is_set() else 0)
