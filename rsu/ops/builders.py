"""What the daemon builds from its configuration, one function per part; each takes explicit parts and
gives the built object (the daemon only calls these and keeps the results).

* :func:`build_layer`: the service layer (rsu.services) over the store in the state directory, with the
  codec port (encode time in ``rsu_encode_seconds``), the sender-side permission check and the metrics.
* :func:`build_transports`: the transport adapters (GN/BTP over UDP, MQTT), the send pipeline over their
  sans-I/O cores, and the GN duplicate-table sizes for the receive pipeline.
* :func:`build_forward`: the forwarding slot (sinks towards the centre, the pre-signed forwarder) with its
  metrics.
* :func:`build_app`: the HTTP API (IS_Triggering, IS_DataProviding, /metrics, /v1/health, the integrations'
  and the forwarder's routes, the web view) as an aiohttp application, not yet serving.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rsu.clock import Clock
from rsu.ops import config as cfgmod
from rsu.ops.metrics import CONTENT_TYPE, Metrics
from rsu.security.setup import permission_check

if TYPE_CHECKING:
    from aiohttp import web

    from rsu.api.guard import Guard
    from rsu.forward.link import ForwardLink
    from rsu.pipeline.send import SendGate, SendPipeline
    from rsu.security.service import SecurityService
    from rsu.services.layer import ServiceLayer
    from rsu.services.ports import CurrentServices
    from rsu.services.received import ReceivedHub
    from rsu.transports.dispatch import TransportSet

STORE_EVENTS = ("store_lost", "store_behind", "cursor_file_rebuilt")  # what opening the store may find


def build_layer(
    config: cfgmod.Config,
    clock: Clock,
    metrics: Metrics,
    security: SecurityService | None,
    hub: ReceivedHub | None,
    wake: Callable[[], None],
) -> ServiceLayer:
    """The service layer of ``config``; ``hub`` (IS_DataProviding) is kept across rebuilds so that subscribers
    stay; ``wake`` is called when a transmission becomes due earlier than the scheduler expected."""
    from rsu.codec.facilities import get_codec
    from rsu.pipeline.codec import LazyCodec
    from rsu.services.layer import ServiceLayer, ServicesConfig

    services = ServicesConfig(
        state_dir=config.state_path,
        station_id=config.station.id,
        ivi_provider={
            "countryCode": config.services.ivi_provider.country,
            "providerIdentifier": config.services.ivi_provider.issuer,
        },
        rules=dict(config.services.rules),
        message_defaults=dict(config.services.message_defaults),
        known_transports=[cfg.name for _, cfg in cfgmod.transport_configs(config)],
        store_durability=config.services.store_durability,
    )
    codec = LazyCodec(
        get_codec,
        lambda kind, seconds: metrics.child(metrics.encode_time, kind.name if kind is not None else "unknown").observe(
            seconds
        ),
    )
    layer = ServiceLayer(
        services,
        clock=clock,
        codec=codec,
        permission_check=permission_check(security) if security else None,
        on_limit=metrics.limit_hit,
        on_skip=metrics.skip,
        hub=hub,
    )
    for event in STORE_EVENTS:
        if layer.counts.get(event):
            metrics.store_events.labels(event).inc(layer.counts[event])
    layer.set_wakeup(wake)
    return layer


def build_transports(
    config: cfgmod.Config, clock: Clock, metrics: Metrics, security: SecurityService | None, gate: SendGate | None
) -> tuple[TransportSet, SendPipeline, dict[str, int]]:
    """The transports (I/O adapters, not started), the send pipeline over their cores, and
    ``{GN transport name: duplicate-table entries}`` for the receive pipeline."""
    from rsu.pipeline.send import Framer, GnFramer, MqttFramer, SendPipeline
    from rsu.transports.dispatch import TransportSet
    from rsu.transports.gn_udp import GnUdpTransport

    built: list[Any] = []
    framers: list[Framer] = []
    duplicates: dict[str, int] = {}
    for kind, cfg in cfgmod.transport_configs(config):
        if kind == "gn-udp":
            if security is None:
                cfg = dataclasses.replace(cfg, secured=False)
            gn_t = GnUdpTransport(cfg, clock=clock, drops=metrics, on_limit=metrics.limit_hit, framed_outside=True)
            built.append(gn_t)
            framers.append(GnFramer(gn_t.core))
            duplicates[gn_t.name] = cfg.duplicate_entries
        else:
            from rsu.transports.mqtt import MqttTransport  # aiomqtt only when an MQTT transport is configured

            mqtt_t = MqttTransport(cfg, clock=clock, drops=metrics)
            built.append(mqtt_t)
            framers.append(MqttFramer(mqtt_t.core))
    transports = TransportSet(built)
    pipeline = SendPipeline(
        framers,
        transports.defaults,
        security,
        on_sign_time=lambda k, s: metrics.child(metrics.sign_time, k.name).observe(s),
        gate=gate,
    )
    return transports, pipeline, duplicates


def build_app(
    *,
    services: CurrentServices,
    metrics: Metrics,
    clock: Clock,
    status: Callable[[], dict[str, Any]],
    refresh: Callable[[], None],
    integrations: Callable[[], Any],
    transports: Callable[[], Any],
    forward: ForwardLink,
    guard: Guard,
    reload: Callable[[], Awaitable[bool]] | None,
    pki_check: Callable[[], bool],
) -> web.Application:
    """The API application behind ``guard`` (authentication, roles, lockout, rate limits, audit):
    IS_Triggering/IS_DataProviding over ``services`` (request metrics counted), the admin routes (``reload``:
    None when there is no file to re-read; ``pki_check`` wakes the PKI client), /metrics (gauges refreshed
    first), /v1/health, the routes of whichever integrations and forwarder run now, and the web view."""
    from rsu.api import extras, ui, ui_session
    from rsu.api.app import create_app
    from rsu.api.guard import admin_routes
    from rsu.api.services import ApiServices

    app = create_app(
        ApiServices(
            services,
            status=status,
            on_request=lambda service, kind, action: metrics.triggered.labels(service, kind, action).inc(),
        ),
        guard=guard,
    )
    app.add_routes(admin_routes(guard, reload, pki_check))
    app.add_routes(extras.integration_routes(integrations))
    app.add_routes(forward.routes())
    app.router.add_get("/metrics", extras.metrics_handler(refresh, metrics.exposition, CONTENT_TYPE))
    app.router.add_get("/v1/health", extras.health_handler)
    app.add_routes(ui_session.routes(guard))  # before the web view's /ui/{asset}
    ui.add_routes(app, ui.daemon_sources(status=status, metrics=metrics, transports=transports, now=clock.now))
    return app


def build_forward(
    clock: Clock,
    metrics: Metrics,
    *,
    security: Callable[[], Any],
    verify: Callable[[bytes], Any],
    transports: Callable[[], dict[str, Any]],
) -> ForwardLink:
    """Received messages to the centre, pre-signed messages from it (POST /v1/forward), counted in ``metrics``."""
    from rsu.forward.link import ForwardLink

    return ForwardLink(
        clock,
        metrics,
        security=security,
        verify=verify,
        transports=transports,
        on_sent=lambda kind, name, fresh: metrics.on_sent(kind.service, kind.name, name, repetition=not fresh),
        count=lambda result: metrics.presigned.labels(result).inc(),
    )
