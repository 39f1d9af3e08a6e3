"""The daemon: the asyncio runtime that wires the sans-I/O layers to clocks, sockets and signals.

    config -> security (PKI, AT pool, verifier)
           -> services (ServiceLayer: entities, scheduler, SQLite store)
           -> transports (GN/BTP over UDP, MQTT)       <- received frames -> verify -> decode -> services
           -> integrations (traffic-controller feed -> TLM, MAP files -> RLT, NTRIP -> GPC)
           -> HTTP API (IS_Triggering, IS_DataProviding, /metrics, /v1/status, /v1/health)
           -> systemd (READY, RELOADING, STOPPING, watchdog from the loop)

Send path, per transmission the scheduler releases: the services give a UPER facilities PDU and
its DisseminationParams; a secured GeoNetworking transport signs its own headers + BTP + PDU
(EN 302 636-4-1), every other transport gets the PDU signed alone (TS 103 097). Receive path:
frame -> transport (GN/BTP or MQTT, drops counted there) -> verification with the payload offset
the transport reports -> services -> IS_DataProviding; every drop is counted by reason.

SIGTERM/SIGINT stop cleanly (store closed, transports and API stopped); SIGHUP re-reads the
configuration file: a valid one replaces the parts whose sections changed (active messages stay:
they live in the store), an invalid one is logged with all its errors and the daemon keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from rsu.aio import wait_event
from rsu import __version__, catalog
from rsu.clock import Clock, SystemClock, iso_utc
from rsu.ops import config as cfgmod
from rsu.ops import logging as rlog
from rsu.ops.config_core import ConfigError
from rsu.ops.metrics import CONTENT_TYPE, Metrics, RxReason, TxReason, security_reason
from rsu.ops.systemd import Notifier
from rsu.transports.drops import DropReason
from rsu.transports.gn import DuplicateDetector

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("rsu.daemon")

DUE_BATCH = 64  # transmissions released per scheduler pass; the scheduler orders them by priority
HOUSEKEEPING_S = 1.0


# ====================================================================== security

def build_security(config: cfgmod.Config, clock: Clock, on_limit=None, pki=None):
    """The SecurityService for ``config`` (creating the local test PKI when allowed), or None.

    ``pki`` (a :class:`rsu.pki.runtime.PkiRuntime`, when ``pki:`` is configured): the pool starts
    empty and takes the client's ATs (``pki.pick_up``), no test PKI is made, and the verifier
    consults the client's trust store (ECTL roots, CTL authorities, CRLs) besides ``trust_dir``."""
    if not config.security.enabled:
        return None
    from rsu.security import ssp as sspmod
    from rsu.security.pki import init_pki
    from rsu.security.pool import AtPool
    from rsu.security.service import SecurityService
    from rsu.security.verify import TrustStore, Verifier

    sec = config.security
    tickets = config.tickets_path
    if pki is None and sec.create_test_pki and _test_pki_needed(config, clock):
        provider = sspmod.ServiceProvider.of(config.services.ivi_provider.country, config.services.ivi_provider.issuer)
        init_pki(config.pki_path, now=clock.now(), at_hours=sec.test_pki_at_hours, provider=provider)
        log.warning("created a local TEST PKI in %s: fine for a bench, not trusted by any vehicle", config.pki_path)
    if pki is None:
        trust = TrustStore.from_directory(config.trust_path)
        pool = AtPool.load_directory(tickets, clock, rotation_margin=sec.rotation_margin,
                                     issuers=trust.certificates())
    else:  # operator certificates in trust_dir still count, if any; the client's store decides the roots
        trust = TrustStore.from_directory(config.trust_path) if config.trust_path.is_dir() else TrustStore()
        pool = AtPool([], clock, rotation_margin=sec.rotation_margin, issuers=trust.certificates())
    lim = sec.limits
    on_limit = on_limit or (lambda name: None)
    verifier = Verifier(clock, trust, max_age=sec.max_age, max_future=sec.max_future,
                        cache_size=lim.certificate_cache, hold_seconds=lim.hold_seconds, hold_limit=lim.held_frames,
                        on_limit=on_limit, pki_trust=(lambda: pki.client.trust) if pki is not None else None)
    return SecurityService(pool, verifier, clock, certificate_interval=sec.certificate_interval,
                           p2pcd_per_frame=lim.p2pcd_per_frame, p2pcd_pending=lim.p2pcd_pending,
                           p2pcd_max_age=lim.p2pcd_max_age, replay_entries=lim.replay_entries, on_limit=on_limit)


def _test_pki_needed(config: cfgmod.Config, clock: Clock) -> bool:
    """No authorization ticket at all, or a test PKI we made whose ATs have all expired (renewed at start)."""
    tickets = list(config.tickets_path.glob("*.oer")) if config.tickets_path.is_dir() else []
    if not tickets:
        return True
    if not (config.pki_path / "pki.json").exists():
        return False  # operator's PKI: never overwritten
    from rsu.security.certs import Certificate

    now = clock.now()
    return not any(Certificate.load(p).valid_at(now) for p in tickets)


def permission_check(security):
    """The services' sender-side guard: which permission is missing for this content (None: fine)."""
    from rsu.security import ssp as sspmod
    from rsu.security.pool import SigningRefused

    def check(kind: catalog.MessageKind, value: dict) -> str | None:
        try:
            security.pool.select(kind, sspmod.required(kind, value))
        except SigningRefused as e:
            missing = ", ".join(e.missing) if e.missing else "permission"
            return f"{missing} ({e.detail})"
        return None

    return check


# ====================================================================== helpers

class TimedCodec:
    """The facilities codec with encode time recorded in rsu_encode_seconds (same interface).

    ``load`` (``get_codec``) runs at first use: a restart puts the restored messages back on the air
    (stored bytes, no codec needed) before the ASN.1 specification is read; ``start`` then warms it.
    """

    def __init__(self, load, metrics: Metrics):
        self._load = load
        self._codec = None
        self._metrics = metrics

    @property
    def codec(self):
        if self._codec is None:
            self._codec = self._load()
        return self._codec

    def warm(self) -> None:
        self.codec  # noqa: B018 - loads it

    def encode(self, value, kind=None, *, validate: bool = True):
        t0 = time.perf_counter()
        try:
            return self.codec.encode(value, kind, validate=validate)
        finally:
            label = kind.name if kind is not None else "unknown"
            self._metrics.encode_time.labels(label).observe(time.perf_counter() - t0)

    def __getattr__(self, name):
        return getattr(self.codec, name)


class Facade:
    """What the API serves: the ServiceLayer, with metrics on requests and the daemon's status."""

    def __init__(self, daemon: "Daemon"):
        self._d = daemon

    def _counted(self, action: str, service: str, fn, *args):
        result = fn(*args)
        entity = self._d.layer.entity(service)
        kind = result.get("message") if isinstance(result, dict) else None
        if kind is None:  # the answer names the entry, not its message type
            entry = entity.entries.get(result.get("id")) if isinstance(result, dict) else None
            kinds = [entry.kind] if entry is not None else [k for k in catalog.MESSAGES if k.service == entity.name.upper()]
            kind = kinds[0].name if len(kinds) == 1 else None
        # service label as in every other metric: TLM, RLT, IVI, TLC, GPC
        self._d.metrics.triggered.labels(entity.name.upper(), kind or "?", action).inc()
        return result

    def trigger(self, service, request):
        return self._counted("trigger", service, self._d.layer.trigger, service, request)

    def update(self, service, ident, request):
        return self._counted("update", service, self._d.layer.update, service, ident, request)

    def terminate(self, service, ident, request=None):
        return self._counted("terminate", service, self._d.layer.terminate, service, ident, request)

    def stats(self):
        return self._d.status()

    def __getattr__(self, name):
        return getattr(self._d.layer, name)


class CurrentLayer:
    """The daemon's service layer as it is now (a reload may replace it): for long-lived users."""

    def __init__(self, daemon: "Daemon"):
        self._d = daemon

    def __getattr__(self, name):
        return getattr(self._d.layer, name)


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
        self.pki = None  # rsu.pki.runtime.PkiRuntime when pki: is configured
        self._pki_task: asyncio.Task | None = None
        self._pki_stop = asyncio.Event()
        self.layer = None
        self.hub = None  # IS_DataProviding: one for the daemon's lifetime, so subscribers survive reloads
        self.transports = None
        self.integrations = None
        self._runner: web.AppRunner | None = None
        self.guard = None  # rsu.api.guard.Guard: authentication, lockout, rate limits, audit (made with the API)
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._sent: dict[tuple[str, str], dict] = {}
        self._duplicates: dict[str, DuplicateDetector] = {}
        self.started_at: float | None = None
        self.reloads = {"ok": 0, "rejected": 0, "last_error": None}
        from rsu.pki.runtime import CurrentPkiCollector

        self.metrics.registry.register(CurrentPkiCollector(lambda: self.pki))

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        rlog.setup(self.config.logging.level)
        self.config.state_path.mkdir(parents=True, exist_ok=True)
        self._open_pki()
        self.security = build_security(self.config, self.clock, self.metrics.limit_hit, self.pki)
        self._pki_pick_up()
        self.layer = self._build_layer()
        await self._start_transports()
        # the restored messages go back on the air first (after kill -9 every second off air counts);
        # integrations and the API (aiohttp) come up while they are sent
        self._tasks = [asyncio.create_task(self._scheduler_loop(), name="rsu-scheduler")]
        await asyncio.sleep(0)
        self.layer.codec.warm()  # now read the ASN.1 specification (see TimedCodec)
        await self._start_integrations()
        await self._start_api()
        self._start_pki()
        self._tasks += [asyncio.create_task(self._housekeeping_loop(), name="rsu-housekeeping"),
                        asyncio.create_task(self.notifier.watchdog_loop(), name="rsu-watchdog")]
        self.started_at = self.clock.now()
        api = self.config.api
        log.info("rsu %s running: API %s://%s:%d, state %s, transports %s, security %s", __version__,
                 "https" if api.tls else "http", api.host, self.api_port, self.config.state_path,
                 ", ".join(self.transports.transports), "on" if self.security else "OFF")
        self.notifier.ready(f"serving on {api.host}:{self.api_port}")

    async def run(self) -> None:
        """Start, then serve until SIGTERM/SIGINT; SIGHUP reloads the configuration."""
        loop = asyncio.get_running_loop()
        await self.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        try:
            await self._stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def stop(self) -> None:
        self.notifier.stopping()
        log.info("stopping")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self._stop_pki()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.integrations is not None:
            await self.integrations.stop()
        if self.transports is not None:
            await self.transports.stop()
        if self.guard is not None:
            self.guard.close()
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
        rlog.setup(new.logging.level)
        changed = {name for name in ("station", "state_dir", "security", "services", "transports", "api",
                                     "integrations", "pki") if getattr(old, name) != getattr(new, name)}
        if changed & {"pki", "state_dir", "station", "services"} and (old.pki or new.pki):
            # position (regions), IVI provider (permissions), state or client settings: a new client
            await self._stop_pki()
            self._open_pki()
            changed.add("pki")
        if changed & {"security", "state_dir", "pki"}:
            self._drop_held()  # frames held by the old security entity leave with it
            self.security = build_security(new, self.clock, self.metrics.limit_hit, self.pki)
            self._pki_pick_up()
        if "pki" in changed:
            self._start_pki()
        if changed & {"station", "state_dir", "services", "security", "pki"}:
            # the store holds every active message: reopening keeps ids, revisions and schedules;
            # the API and the integrations reach the layer through the daemon, so they follow
            self.layer.close()
            self.layer = self._build_layer()
            self._wake.set()
        if changed & {"station", "transports", "security", "pki"}:
            await self.transports.stop()
            await self._start_transports()
        if "integrations" in changed:
            await self.integrations.stop()
            await self._start_integrations()
        else:
            self.integrations.reload()  # SIGHUP always re-reads the MAP files
        if "api" in changed:
            self.guard.configure(new.api.host, new.api.tls, new.api.auth, new.api.audit)
        if "api" in changed and (old.api.host, old.api.port, old.api.tls) == (new.api.host, new.api.port, new.api.tls):
            from rsu.api.app import TABLE_KEY

            self._runner.app[TABLE_KEY].limits = new.api.limits()  # new bounds, same server and streams
        elif "api" in changed:  # a new address (integration routes follow self.integrations)
            await self._runner.cleanup()
            await self._start_api()

    # ------------------------------------------------------------------ PKI client
    def _open_pki(self) -> None:
        """The PKI client of ``pki:`` (none without it); a key store that cannot be opened stops the start."""
        self.pki = None
        if self.config.pki is not None and self.config.security.enabled:
            from rsu.pki.runtime import PkiRuntime

            self.pki = PkiRuntime.open(self.config, self.clock)

    def _start_pki(self) -> None:
        if self.pki is not None:
            self._pki_stop = asyncio.Event()
            self._pki_task = asyncio.create_task(self.pki.run(self._pki_stop, lambda outcome: self._pki_pick_up()),
                                                 name="rsu-pki")

    async def _stop_pki(self) -> None:
        """Stop the client's loop (an HTTP exchange in progress is abandoned: nothing half-applied)."""
        self._pki_stop.set()
        if self._pki_task is not None:
            self._pki_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pki_task
            self._pki_task = None
        if self.pki is not None:
            await self.pki.close()

    def _pki_check(self) -> bool:
        """The admin's "PKI check now" (POST /v1/admin/pki/check): wake the client; False without one."""
        if self.pki is None:
            return False
        self.pki.wake.set()
        return True

    def _pki_pick_up(self) -> None:
        """The signer takes the client's usable ATs (after each client outcome, and every housekeeping pass:
        expiries and CRLs apply without a request); our own ATs verify our looped-back messages."""
        if self.pki is None or self.security is None:
            return
        if self.pki.pick_up(self.security.pool):
            for t in self.security.pool.tickets:
                self.security.verifier.add_certificate(t.certificate)

    # ------------------------------------------------------------------ builders
    def _build_layer(self):
        from rsu.codec.facilities import get_codec
        from rsu.services.layer import ServiceLayer, ServicesConfig

        c = self.config
        services = ServicesConfig(
            state_dir=c.state_path, station_id=c.station.id,
            ivi_provider={"countryCode": c.services.ivi_provider.country,
                          "providerIdentifier": c.services.ivi_provider.issuer},
            rules=dict(c.services.rules), message_defaults=dict(c.services.message_defaults),
            known_transports=[cfg.name for _, cfg in cfgmod.transport_configs(c)])
        metrics = self.metrics
        layer = ServiceLayer(services, clock=self.clock, codec=TimedCodec(get_codec, metrics),
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
        from rsu.transports import gn as gnmod
        from rsu.transports.dispatch import TransportSet
        from rsu.transports.gn_udp import GnUdpTransport

        built: list = []
        for kind, cfg in cfgmod.transport_configs(self.config):
            if kind == "gn-udp":
                if self.security is None:
                    cfg = dataclasses.replace(cfg, secured=False)
                built.append(GnUdpTransport(cfg, clock=self.clock, drops=self.metrics,
                                            sign=self._gn_signer(gnmod) if self.security else None,
                                            on_limit=self.metrics.limit_hit))
            else:
                from rsu.transports.mqtt import MqttTransport  # aiomqtt only when an MQTT transport is configured

                built.append(MqttTransport(cfg, clock=self.clock, drops=self.metrics))
        self.transports = TransportSet(built, drops=self.metrics)
        self._duplicates = {t.name: DuplicateDetector(t.config.duplicate_entries, self.metrics.limit_hit)
                            for t in built if isinstance(t, GnUdpTransport)}
        await self.transports.start(self._on_frame)

    def _gn_signer(self, gnmod):
        def sign(inner: bytes, kind: catalog.MessageKind) -> bytes:
            offset = gnmod.parse_inner(inner, exact=True)[5]  # CH | EH | BTP-B | PDU
            t0 = time.perf_counter()
            try:
                return self.security.sign(kind, inner, pdu_offset=offset)
            finally:
                self.metrics.sign_time.labels(kind.name).observe(time.perf_counter() - t0)
        return sign

    async def _start_integrations(self) -> None:
        from rsu.integrations.runtime import Integrations

        self.integrations = Integrations(cfgmod.integrations_config(self.config), CurrentLayer(self), clock=self.clock,
                                         drops=self.metrics,
                                         on_feed_age=lambda ix, age: self.metrics.feed_age.labels(str(ix)).set(age))
        await self.integrations.start()

    async def _start_api(self) -> None:
        from rsu.api.app import create_app, serve
        from rsu.api.guard import Guard, admin_routes
        from rsu.api.tls import server_context

        api = self.config.api
        if self.guard is None:  # one for the daemon's life: counts, bans and the audit file survive reloads
            self.guard = Guard(state_dir=self.config.state_path, clock=self.clock, host=api.host, tls=api.tls,
                               auth=api.auth, audit=api.audit, metrics=self.metrics)
        tls = api.tls
        ssl_context = None if tls is None else server_context(
            tls.cert_file, tls.key_file, tls.client_ca_file,
            require_client_certificate=tls.client_ca_file is not None and not api.auth.tokens)
        app = create_app(Facade(self), guard=self.guard)
        app.add_routes(admin_routes(self.guard, self.reload if self.config_path else None, self._pki_check))
        app.add_routes(self._integration_routes())
        app.router.add_get("/metrics", self._metrics_handler)
        app.router.add_get("/v1/health", self._health_handler)
        from rsu.api.limits import ensure_nofile

        nofile, need = ensure_nofile(api.limits())
        if nofile < need:
            log.warning("open-file limit %d is below the %d that api.max_connections %d needs (raise LimitNOFILE "
                        "or lower api.max_connections)", nofile, need, api.max_connections)
        self._runner = await serve(app, api.host, api.port, api.limits(),
                                   on_close=lambda reason: self.metrics.api_connections_closed.labels(reason).inc(),
                                   ssl_context=ssl_context)

    def _integration_routes(self) -> list[web.RouteDef]:
        """Every route an integration may serve, each answered by the integrations running now: a reload
        that changes the integrations does not restart the API (and cut its event streams)."""
        from aiohttp import web  # imported once the messages are back on the air (see start)

        from rsu.integrations.routes import ROUTES

        def forward(method: str, path: str):
            async def handler(request: web.Request) -> web.StreamResponse:
                for route in self.integrations.routes():
                    if route.method == method and route.path == path:
                        return await route.handler(request)
                raise web.HTTPNotFound(reason=f"{path}: that integration is not configured")
            return handler

        return [web.route(method, path, forward(method, path)) for method, path in ROUTES]

    @property
    def api_port(self) -> int:
        if self._runner is None:
            return self.config.api.port
        for site in self._runner.sites:
            server = getattr(site, "_server", None)
            if server is not None and server.sockets:
                return server.sockets[0].getsockname()[1]
        return self.config.api.port

    # ------------------------------------------------------------------ HTTP extras
    async def _metrics_handler(self, request: web.Request) -> web.Response:
        from aiohttp import web  # imported once the messages are back on the air (see start)

        self._refresh_gauges()
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _health_handler(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.json_response({"status": "ok", "version": __version__})

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
                await self._send(tx)
            if len(batch) >= DUE_BATCH:
                self._wake.set()  # more are due: go round again, letting other tasks run first
                await asyncio.sleep(0)

    async def _send(self, tx) -> None:
        from rsu.security.pool import SigningRefused
        from rsu.transports.gn_udp import GnUdpTransport

        now = self.clock.now()
        self.metrics.scheduled(tx.kind.service, max(0.0, now - tx.slot))
        targets, unknown = self.transports.targets(tx.params)
        for name in unknown:
            self.metrics.drop(name, str(DropReason.UNKNOWN_TRANSPORT))
        if self.security is not None and tx.value is not None:
            self.security.note_content(tx.kind, tx.pdu, tx.value)
        signed: bytes | None = None
        sent_on = []
        for transport in targets:
            data = tx.pdu
            gn_signs = isinstance(transport, GnUdpTransport) and transport.config.secured
            if self.security is not None and not gn_signs:
                if signed is None:
                    t0 = time.perf_counter()
                    try:  # indirect delivery: always the full certificate (no neighbourhood to learn it)
                        signed = self.security.sign(tx.kind, tx.pdu, tx.value, with_certificate=True)
                    except SigningRefused as e:
                        log.error("%s %s not sent: %s", tx.kind.pdu, tx.id, e)
                        self.metrics.drop(transport.name, str(TxReason.SIGNING_REFUSED))
                        continue
                    finally:
                        self.metrics.sign_time.labels(tx.kind.name).observe(time.perf_counter() - t0)
                data = signed
            await transport.send(data, tx.params)
            self.metrics.on_sent(tx.kind.service, tx.kind.name, transport.name, repetition=not tx.fresh)
            sent_on.append(transport.name)
        record = self._sent.setdefault((tx.service, tx.id), {"count": 0})
        record.update(last=now, transports=sent_on)
        record["count"] += 1

    # ------------------------------------------------------------------ receiving
    # Every frame a transport hands up is counted received once (Metrics.rx) and then meets exactly
    # one fate: accepted, dropped with a reason, or held (until it is released, expires or is pushed
    # out of the hold, when it meets its fate). See docs/metrics.md "Receive accounting".
    def _on_frame(self, frame) -> None:
        message = _message(frame)
        self.metrics.rx(message, frame.transport)
        try:
            if not frame.secured_packet:
                if self.config.security.accept_unsecured or self.security is None:
                    self._deliver_unsecured(frame)
                else:
                    self.metrics.rx_drop(message, frame.transport, RxReason.UNSECURED)
                return
            if self.security is None:
                self.metrics.rx_drop(message, frame.transport, RxReason.SECURITY_DISABLED)
                return
            kind = catalog.BY_BTP_PORT.get(frame.btp_port) if frame.btp_port is not None else None
            t0 = time.perf_counter()
            result = self.security.verify(frame.secured, kind, payload_offset=frame.payload_offset, context=frame)
            self.metrics.child(self.metrics.verify_time, message).observe(time.perf_counter() - t0)
        except Exception:  # a bug: this frame's fate is an internal error, never a crash
            log.exception("received frame not processed")
            self.metrics.rx_drop(message, frame.transport, DropReason.INTERNAL_ERROR)
            return
        for r in (result, *result.released):
            self._judged(r)

    def _judged(self, r) -> None:
        """One verification result: the fate of its frame (and the hold bookkeeping)."""
        frame = r.context
        message = _message(frame)
        if r.from_hold:
            event = {"held-expired": "expired", "hold-queue-full": "evicted"}.get(str(r.reason), "released")
            self.metrics.hold(message, frame.transport, event)
        if r.held:
            self.metrics.hold(message, frame.transport, "held")
            return
        try:
            reason = self._deliver_verified(r)
        except Exception:
            log.exception("received frame not processed")
            reason = DropReason.INTERNAL_ERROR
        if reason is not None:
            self.metrics.rx_drop(message, frame.transport, reason)

    def _drop_held(self) -> None:
        """The security entity is replaced (reload): its held frames are dropped as expired."""
        if self.security is not None:
            verifier = self.security.verifier
            verifier.hold_seconds = -1.0
            for r in verifier.expire_held():
                self._judged(r)

    def _deliver_verified(self, r) -> str | None:
        """Deliver an accepted result; the drop reason otherwise."""
        frame = r.context
        if not r.ok:
            return security_reason(r.reason)
        if frame.duplicate_key is not None:  # GN duplicate detection, after verification (EN 302 636-4-1)
            source, sn, lifetime = frame.duplicate_key
            detector = self._duplicates.setdefault(frame.transport, DuplicateDetector(on_limit=self.metrics.limit_hit))
            if detector.is_duplicate(source, sn, frame.received_at, lifetime):
                return str(DropReason.DUPLICATE)
        if self.security.replayed(r):
            return str(RxReason.REPLAY)
        security = {"its_aid": r.psid, "ssp": r.ssp.hex() if r.ssp is not None else None,
                    "signer": r.signer_id.hex() if r.signer_id else None, "verification": "ok"}
        return self._deliver(frame, r.pdu if r.pdu is not None else r.payload[frame.payload_offset:], security)

    def _deliver_unsecured(self, frame) -> None:
        payload = frame.secured[frame.payload_offset:]
        reason = self._deliver(frame, payload, {"its_aid": None, "ssp": None, "signer": None, "verification": "ok",
                                                "secured": False})
        if reason is not None:
            self.metrics.rx_drop(_message(frame), frame.transport, reason)

    def _deliver(self, frame, pdu, security: dict) -> str | None:
        """Hand a verified PDU to the services: None when delivered (counted accepted), else the drop reason."""
        transport = {"transport": frame.transport, "source": frame.source, "btp_port": frame.btp_port,
                     "received_at": iso_utc(frame.received_at), **{k: v for k, v in frame.info.items()
                                                                     if isinstance(v, (str, int, float, bool))}}
        try:
            event, reason = self.layer.receive(pdu, security, transport)
        except Exception:  # peer input never stops the daemon
            log.exception("received message not processed")
            return str(DropReason.INTERNAL_ERROR)
        if event is None:
            return str(reason)
        kind = catalog.BY_NAME.get(event.get("message", ""))
        self.metrics.accept(kind.service if kind else "?", _message(frame), frame.transport)
        return None

    # ------------------------------------------------------------------ status & gauges
    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                self._refresh_gauges()
            except Exception:
                log.exception("housekeeping failed")

    def _refresh_gauges(self) -> None:
        m = self.metrics
        m.update_rates()
        self._pki_pick_up()
        if self.security is not None:
            for r in self.security.expire_held():
                self._judged(r)
            m.p2pcd_pending.set(len(self.security.pending_certificate_requests))
        for t in self.transports.transports.values():
            poll = getattr(t, "poll_socket_drops", None)
            if poll is not None:
                poll()
        if self._runner is not None:
            from rsu.api.app import TABLE_KEY

            m.api_connections.set(len(self._runner.app[TABLE_KEY]))
        counts = {(k.service, k.name): 0 for k in catalog.MESSAGES}
        for entry in self.layer.list():
            if entry.get("state") in ("active", "terminating"):
                kind = catalog.BY_NAME.get(entry["message"])
                if kind is not None:
                    counts[(kind.service, kind.name)] += 1
        for (service, message), n in counts.items():
            m.active.labels(service, message).set(n)
        if self.security is not None:
            for kind in catalog.MESSAGES:
                hours = self.security.hours_to_expiry(kind)
                if hours is not None:
                    m.at_expiry.labels(kind.service, str(kind.its_aid)).set(hours)
        for t in self.transports.transports.values():
            connected = getattr(t, "connected", None)
            if isinstance(connected, asyncio.Event):
                m.mqtt_connected.labels(t.name).set(1 if connected.is_set() else 0)

    def status(self) -> dict[str, Any]:
        """What is on the air now (``rsu status`` and GET /v1/status)."""
        now = self.clock.now()
        messages = []
        for entry in self.layer.list():
            sent = self._sent.get((entry["service"], entry["id"]), {})
            messages.append({
                "service": entry["service"], "id": entry["id"], "message": entry["message"],
                "state": entry["state"], "identification": entry.get("identification"),
                "next_send": entry.get("next_transmission"),
                "last_send": iso_utc(sent["last"]) if "last" in sent else None,
                "count": sent.get("count", 0),
                "transports": sent.get("transports") or entry.get("dissemination", {}).get("transports") or [],
            })
        tickets = []
        if self.security is not None:
            in_use = {}
            for kind in catalog.MESSAGES:
                t = self.security.pool.current(kind)
                if t is not None:
                    in_use[t.hashed_id8.hex()] = in_use.get(t.hashed_id8.hex(), []) + [kind.name]
            for t in self.security.pool.status():
                tickets.append({**t, "usedFor": in_use.get(t["hashedId8"], [])})
        return {
            "version": __version__, "now": iso_utc(now),
            "started_at": iso_utc(self.started_at) if self.started_at else None,
            "station_id": self.config.station.id, "config": self.config_path or "embedded default",
            "security": "on" if self.security else "off",
            "messages": messages, "authorization_tickets": tickets,
            "transports": list(self.transports.transports) if self.transports else [],
            "services": self.layer.stats(), "reloads": dict(self.reloads),
            "integrations": self.integrations.status() if self.integrations else None,
            "pki": self.pki.status() if self.pki is not None else None,
        }


def _message(frame) -> str:
    """The message type a received frame names (BTP port / MQTT topic): the metrics' message label."""
    kind = catalog.BY_BTP_PORT.get(frame.btp_port) if frame.btp_port is not None else None
    return kind.name if kind else "unknown"


def run(config_path: str | None, overrides: tuple[str, ...] | list[str] = ()) -> int:
    """``rsu run``: load the configuration (``--set`` overrides on top), run until stopped. Exit 2 on an
    invalid configuration."""
    try:
        config = cfgmod.load(config_path, overrides)
    except ConfigError as e:
        import sys

        print(f"rsu: error: invalid configuration ({e.source or 'config'}):", file=sys.stderr)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    from rsu.ops.preflight import host_issues

    found = host_issues(config, running_rsu_is_fine=False)
    if any(h.fatal for h in found):
        import sys

        print(f"rsu: error: cannot start with this configuration on this host ({config_path or 'embedded default'}):",
              file=sys.stderr)
        for h in found:
            print(f"  {h.issue}", file=sys.stderr)
        return 1  # not 2: a port in use or a missing directory may be gone at the next try
    rlog.setup(config.logging.level)
    for h in found:  # the daemon runs; these fail where they are used, and are logged there again
        log.error("configuration %s: %s", config_path or "embedded default", h.issue)
    try:
        import uvloop  # optional: the faster event loop when installed
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    daemon = Daemon(config, config_path=config_path, overrides=overrides)
    try:
        runner(daemon.run())
    except KeyboardInterrupt:
        pass
    except Exception as e:  # start-up failure (port in use, unreadable PKI...): one log line, exit 1, no traceback
        from rsu.services.store import StoreDamaged

        rlog.setup(config.logging.level)
        log.critical("cannot start: %s: %s", type(e).__name__, e)
        # a damaged store waits for the operator (exit 2: systemd's RestartPreventExitStatus, no restart loop)
        return 2 if isinstance(e, StoreDamaged) else 1
    return 0
