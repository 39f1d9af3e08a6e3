"""The daemon: the asyncio runtime that wires the sans-I/O layers to clocks, sockets and signals.

    config -> security (PKI, AT pool, verifier)
           -> services (ServiceLayer: entities, scheduler, SQLite store)
           -> transports (GN/BTP over UDP, MQTT)       <- received frames -> verify -> decode -> services
           -> integrations (traffic-controller feed -> TLM, MAP files -> RLT, NTRIP -> GPC)
           -> HTTP API (IS_Triggering, IS_DataProviding, /metrics, /v1/status, /v1/health, the web view /ui)
           -> systemd (READY, RELOADING, STOPPING, watchdog from the loop)

Send path, per transmission the scheduler releases: the services give a UPER facilities PDU and
its DisseminationParams; a secured GeoNetworking transport signs its own headers + BTP + PDU
(EN 302 636-4-1), every other transport gets the PDU signed alone (TS 103 097). Receive path:
frame -> transport (GN/BTP or MQTT, drops counted there) -> rsu.pipeline.receive (verification with
the payload offset the transport reports, hold, duplicates, replay) -> services -> IS_DataProviding;
the daemon counts every outcome the pipeline returns, each drop by its reason.

SIGTERM/SIGINT stop cleanly (store closed, transports and API stopped); SIGHUP re-reads the
configuration file: a valid one replaces the parts whose sections changed (:mod:`rsu.ops.reload`;
active messages stay: they live in the store), an invalid one is logged with all its errors and the
daemon keeps running.

The daemon builds and connects; the parts live in their layers: the security entity
(:mod:`rsu.security.setup`), the PKI client slot (:class:`rsu.pki.runtime.PkiLink`), status and gauges
(:mod:`rsu.ops.status`), the API's extra routes and serving (:mod:`rsu.api.extras`), ``rsu run``
(:mod:`rsu.ops.runner`). The API and the integrations reach the services through explicit ports
(:mod:`rsu.services.ports`: :class:`CurrentServices`, wrapped for the API by
:class:`rsu.api.services.ApiServices`), which follow the layer a reload puts in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from rsu import __version__
from rsu.aio import wait_event
from rsu.clock import Clock, SystemClock
from rsu.ops import config as cfgmod
from rsu.ops import logging as rlog
from rsu.ops.config_core import ConfigError
from rsu.ops.metrics import CONTENT_TYPE, Metrics
from rsu.ops.reload import parts_to_rebuild
from rsu.ops.status import daemon_status, refresh_gauges
from rsu.ops.systemd import Notifier
from rsu.pipeline.outcomes import Sent
from rsu.pipeline.receive import ReceivePipeline, RxOutcome
from rsu.pipeline.receive_ports import SecurityServicePort
from rsu.security.setup import build_security, permission_check
from rsu.services.ports import CurrentServices

if TYPE_CHECKING:
    from aiohttp import web

    from rsu.pki.runtime import PkiRuntime

log = logging.getLogger("rsu.daemon")

DUE_BATCH = 64  # transmissions released per scheduler pass; the scheduler orders them by priority
HOUSEKEEPING_S = 1.0


# ====================================================================== helpers



# ====================================================================== daemon

class Daemon:
    def __init__(self, config: cfgmod.Config, *, config_path: str | None = None, clock: Clock | None = None,
                 notifier: Notifier | None = None, overrides: tuple[str, ...] | list[str] = ()):
        self.config = config
        self.config_path = config_path
        self.overrides = tuple(overrides)  # ``rsu run --set``: applied again on every reload
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.security = None
        from rsu.pki.runtime import CurrentPkiCollector, PkiLink

        self.pki_link = PkiLink(self.clock, lambda: self.security)  # the PKI client when pki: is configured
        self.layer = None
        self.services = CurrentServices(lambda: self.layer)  # the layer a reload leaves, for the API/integrations
        self.hub = None  # IS_DataProviding: one for the daemon's lifetime, so subscribers survive reloads
        self.transports = None
        self.pipeline = None  # rsu.pipeline.send.SendPipeline over the transports' cores
        self.integrations = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._sent: dict[tuple[str, str], dict] = {}
        self.receive: ReceivePipeline | None = None  # built at start, once the services and security exist
        self.started_at: float | None = None
        self.reloads = {"ok": 0, "rejected": 0, "last_error": None}
        self.metrics.registry.register(CurrentPkiCollector(lambda: self.pki))

    @property
    def pki(self) -> PkiRuntime | None:
        """The PKI client's :class:`rsu.pki.runtime.PkiRuntime` (None without ``pki:``)."""
        return self.pki_link.runtime

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        rlog.setup(self.config.logging.level)
        self.config.state_path.mkdir(parents=True, exist_ok=True)
        self.pki_link.open(self.config)
        self.security = build_security(self.config, self.clock, self.metrics.limit_hit, self.pki)
        self.pki_link.pick_up()
        self.layer = self._build_layer()
        self.receive = ReceivePipeline(
            self.layer, self._security_port(), accept_unsecured=self.config.security.accept_unsecured,
            on_limit=self.metrics.limit_hit,
            on_verify_seconds=lambda message, s: self.metrics.child(self.metrics.verify_time, message).observe(s))
        await self._start_transports()
        # the restored messages go back on the air first (after kill -9 every second off air counts);
        # integrations and the API (aiohttp) come up while they are sent
        self._tasks = [asyncio.create_task(self._scheduler_loop(), name="rsu-scheduler")]
        await asyncio.sleep(0)
        self.layer.codec.warm()  # now read the ASN.1 specification (see rsu.pipeline.codec.LazyCodec)
        await self._start_integrations()
        await self._start_api()
        self.pki_link.start()
        self._tasks += [asyncio.create_task(self._housekeeping_loop(), name="rsu-housekeeping"),
                        asyncio.create_task(self.notifier.watchdog_loop(), name="rsu-watchdog")]
        self.started_at = self.clock.now()
        api = self.config.api
        log.info("rsu %s running: API http://%s:%d, state %s, transports %s, security %s", __version__,
                 api.host, self.api_port, self.config.state_path, ", ".join(self.transports.transports),
                 "on" if self.security else "OFF")
        self.notifier.ready(f"serving on {api.host}:{self.api_port}")

    async def run(self) -> None:
        """Start, then serve until SIGTERM/SIGINT; SIGHUP reloads the configuration."""
        from rsu.ops.runner import serve

        await serve(self.start, self.reload, self.stop, self._stop)

    async def stop(self) -> None:
        self.notifier.stopping()
        log.info("stopping")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.pki_link.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.integrations is not None:
            await self.integrations.stop()
        if self.transports is not None:
            await self.transports.stop()
        if self.layer is not None:
            self.layer.close()  # the store is synchronous=FULL: every acknowledged change is on disk
        self.metrics.up.set(0)
        self.notifier.close()
        log.info("stopped")

    async def reload(self) -> bool:
        """Re-read the configuration file; apply it if valid, else keep running on the old one."""
        if self.config_path is None:
            log.warning("SIGHUP: running on the embedded default configuration; nothing to reload")
            return False
        self.notifier.reloading()
        try:
            new = cfgmod.load(self.config_path, self.overrides)
        except ConfigError as e:
            for issue in e.issues:
                log.error("reload rejected: %s: %s", self.config_path, issue)
            self.reloads["rejected"] += 1
            self.reloads["last_error"] = str(e)
            self.notifier.ready("reload rejected: configuration invalid, running on the previous one")
            return False
        old, self.config = self.config, new
        try:
            await self._apply(old, new)
        except Exception as e:  # e.g. a port that cannot be bound: go back to the old configuration
            log.error("reload failed while applying (%s); restoring the previous configuration", e)
            self.config = old
            await self._apply(new, old)
            self.reloads["rejected"] += 1
            self.reloads["last_error"] = str(e)
            self.notifier.ready("reload failed, running on the previous configuration")
            return False
        self.reloads["ok"] += 1
        self.reloads["last_error"] = None
        log.info("configuration reloaded from %s", self.config_path)
        self.notifier.ready("configuration reloaded")
        return True

    async def _apply(self, old: cfgmod.Config, new: cfgmod.Config) -> None:
        """Rebuild the parts whose sections changed (:mod:`rsu.ops.reload`), in dependency order."""
        rlog.setup(new.logging.level)
        parts = parts_to_rebuild(old, new)
        if "pki" in parts:
            await self.pki_link.stop()
            self.pki_link.open(new)
        if "security" in parts:
            self.security = build_security(new, self.clock, self.metrics.limit_hit, self.pki)
            self.pki_link.pick_up()
            # frames held by the old security entity leave with it
            self._count(self.receive.use_security(self._security_port(), now=self.clock.now(),
                                                  accept_unsecured=new.security.accept_unsecured))
        if "pki" in parts:
            self.pki_link.start()
        if "layer" in parts:
            # the store holds every active message: reopening keeps ids, revisions and schedules;
            # the API and the integrations reach the layer through self.services, so they follow
            self.layer.close()
            self.layer = self._build_layer()
            self.receive.use_services(self.layer)
            self._wake.set()
        if "transports" in parts:
            await self.transports.stop()
            await self._start_transports()
        if "integrations" in parts:
            await self.integrations.stop()
            await self._start_integrations()
        else:
            self.integrations.reload()  # SIGHUP always re-reads the MAP files
        if "api" in parts and (old.api.host, old.api.port) == (new.api.host, new.api.port):
            from rsu.api.extras import set_limits

            set_limits(self._runner, new.api.limits())  # new bounds, same server and streams
        elif "api" in parts:  # a new address (integration routes follow self.integrations)
            await self._runner.cleanup()
            await self._start_api()

    # ------------------------------------------------------------------ builders
    def _build_layer(self):
        from rsu.codec.facilities import get_codec
        from rsu.pipeline.codec import LazyCodec
        from rsu.services.layer import ServiceLayer, ServicesConfig

        c = self.config
        services = ServicesConfig(
            state_dir=c.state_path, station_id=c.station.id,
            ivi_provider={"countryCode": c.services.ivi_provider.country,
                          "providerIdentifier": c.services.ivi_provider.issuer},
            rules=dict(c.services.rules), message_defaults=dict(c.services.message_defaults),
            known_transports=[cfg.name for _, cfg in cfgmod.transport_configs(c)])
        metrics = self.metrics
        codec = LazyCodec(get_codec, lambda kind, seconds: metrics.encode_time.labels(
            kind.name if kind is not None else "unknown").observe(seconds))
        layer = ServiceLayer(services, clock=self.clock, codec=codec,
                             permission_check=permission_check(self.security) if self.security else None,
                             on_limit=metrics.limit_hit,
                             on_skip=lambda service, reason, n: metrics.skipped.labels(service.upper(), reason).inc(n),
                             hub=self.hub)
        self.hub = layer.hub
        for event in ("store_lost", "store_behind", "cursor_file_rebuilt"):  # found when the store opened
            if layer.counts.get(event):
                self.metrics.store_events.labels(event).inc(layer.counts[event])
        layer.set_wakeup(self._wake.set)
        return layer

    async def _start_transports(self) -> None:
        """The transports (I/O adapters) and the send pipeline over their sans-I/O cores."""
        from rsu.pipeline.send import GnFramer, MqttFramer, SendPipeline
        from rsu.transports.dispatch import TransportSet
        from rsu.transports.gn_udp import GnUdpTransport

        built: list = []
        framers: list = []
        for kind, cfg in cfgmod.transport_configs(self.config):
            if kind == "gn-udp":
                if self.security is None:
                    cfg = dataclasses.replace(cfg, secured=False)
                gn_t = GnUdpTransport(cfg, clock=self.clock, drops=self.metrics, on_limit=self.metrics.limit_hit,
                                      framed_outside=True)
                built.append(gn_t)
                framers.append(GnFramer(gn_t.core))
            else:
                from rsu.transports.mqtt import MqttTransport  # aiomqtt only when an MQTT transport is configured

                mqtt_t = MqttTransport(cfg, clock=self.clock, drops=self.metrics)
                built.append(mqtt_t)
                framers.append(MqttFramer(mqtt_t.core))
        self.transports = TransportSet(built)
        self.pipeline = SendPipeline(framers, self.transports.defaults, self.security,
                                     on_sign_time=lambda k, s: self.metrics.sign_time.labels(k.name).observe(s))
        self.receive.use_duplicate_tables({t.name: t.config.duplicate_entries for t in built
                                           if isinstance(t, GnUdpTransport)})
        await self.transports.start(self._on_frame)

    async def _start_integrations(self) -> None:
        from rsu.integrations.runtime import Integrations

        self.integrations = Integrations(cfgmod.integrations_config(self.config), self.services, clock=self.clock,
                                         drops=self.metrics,
                                         on_feed_age=lambda ix, age: self.metrics.feed_age.labels(str(ix)).set(age))
        await self.integrations.start()

    async def _start_api(self) -> None:
        from rsu.api import extras, ui
        from rsu.api.app import create_app
        from rsu.api.services import ApiServices

        m = self.metrics
        app = create_app(ApiServices(self.services, status=self.status,
                                     on_request=lambda service, kind, action: m.triggered.labels(
                                         service, kind, action).inc()))
        app.add_routes(extras.integration_routes(lambda: self.integrations))
        app.router.add_get("/metrics", extras.metrics_handler(self._refresh_gauges, m.exposition, CONTENT_TYPE))
        app.router.add_get("/v1/health", extras.health_handler)
        ui.add_routes(app, ui.daemon_sources(status=self.status, metrics=m, transports=lambda: self.transports,
                                             now=self.clock.now))
        self._runner = await extras.start(app, self.config.api,
                                          on_close=lambda reason: m.api_connections_closed.labels(reason).inc())

    @property
    def api_port(self) -> int:
        """The port the API listens on (api.port 0 asks for a free one)."""
        from rsu.api.extras import bound_port

        return bound_port(self._runner, self.config.api.port)

    # ------------------------------------------------------------------ sending
    async def _scheduler_loop(self) -> None:
        while True:
            deadline = self.layer.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            if timeout is None or timeout > 0:
                await wait_event(self._wake, timeout)  # a SIGTERM cancellation always gets through
            self._wake.clear()
            try:
                batch = self.layer.due(limit=DUE_BATCH)
            except Exception:
                log.exception("scheduler: releasing transmissions failed")
                await asyncio.sleep(0.1)
                continue
            for tx in batch:
                self._send(tx)
            if len(batch) >= DUE_BATCH:
                self._wake.set()  # more are due: go round again, letting other tasks run first
                await asyncio.sleep(0)

    def _send(self, tx) -> None:
        """One released transmission: the pipeline's outcomes written to the transports and counted."""
        now = self.clock.now()
        self.metrics.scheduled(tx.kind.service, max(0.0, now - tx.slot))
        sent_on = []
        for outcome in self.pipeline.send(tx, now):
            if isinstance(outcome, Sent):
                self.transports[outcome.transport].write(outcome)
                self.metrics.on_sent(tx.kind.service, outcome.kind.name, outcome.transport,
                                     repetition=outcome.repetition)
                sent_on.append(outcome.transport)
            else:
                self.metrics.drop(outcome.transport, outcome.reason)
        record = self._sent.setdefault((tx.service, tx.id), {"count": 0})
        record.update(last=now, transports=sent_on)
        record["count"] += 1

    # ------------------------------------------------------------------ receiving
    # Every frame a transport hands up goes through the receive pipeline (rsu.pipeline.receive), which
    # decides its fate; each outcome is counted (docs/metrics.md "Receive accounting").
    def _on_frame(self, frame) -> None:
        self._count(self.receive.receive(frame, self.clock.now()))

    def _count(self, outcomes: list[RxOutcome]) -> None:
        for outcome in outcomes:
            self.metrics.count_receive(outcome)

    def _security_port(self) -> SecurityServicePort | None:
        return SecurityServicePort(self.security) if self.security is not None else None

    # ------------------------------------------------------------------ status & gauges
    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                self._refresh_gauges()
            except Exception:
                log.exception("housekeeping failed")

    def _refresh_gauges(self) -> None:
        """Housekeeping: the PKI client's ATs, held frames that expired, then the gauges."""
        from rsu.api.extras import open_connections

        self.pki_link.pick_up()
        self._count(self.receive.expire(self.clock.now()))
        refresh_gauges(self.metrics, layer=self.layer, security=self.security, transports=self.transports,
                       api_connections=open_connections(self._runner))

    def status(self) -> dict[str, Any]:
        """What is on the air now (``rsu status`` and GET /v1/status): :func:`rsu.ops.status.daemon_status`."""
        return daemon_status(now=self.clock.now(), started_at=self.started_at, config=self.config,
                      config_path=self.config_path, layer=self.layer, security=self.security,
                      transports=self.transports, integrations=self.integrations, pki=self.pki, sent=self._sent,
                      reloads=self.reloads)


