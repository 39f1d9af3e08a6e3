"""The daemon: the asyncio runtime that wires the sans-I/O layers to clocks, sockets and signals.

It builds the parts (:mod:`rsu.ops.builders`, :mod:`rsu.security.setup`, :class:`rsu.pki.runtime.PkiLink`,
:class:`rsu.forward.link.ForwardLink`, :class:`rsu.health.monitor.HealthMonitor`), runs the scheduler and
housekeeping loops, hands each released transmission to the send pipeline (:mod:`rsu.pipeline.send`) and
each received frame to the receive pipeline (:mod:`rsu.pipeline.receive`), writes the frames they give to
the transports and counts every outcome they return. It decides nothing about a message itself.
docs/architecture.md follows a SPATEM and an SREM through the layers.

SIGTERM/SIGINT stop cleanly (store closed, transports and API stopped); SIGHUP re-reads the configuration
file: a valid one rebuilds the parts whose sections changed (:mod:`rsu.ops.reload`; active messages stay:
they live in the store), an invalid one is logged with all its errors and the daemon keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from rsu import __version__
from rsu.clock import Clock, SystemClock
from rsu.ops import config as cfgmod
from rsu.ops import logging as rlog
from rsu.ops.builders import build_app, build_forward, build_layer, build_transports
from rsu.ops.config_core import ConfigError
from rsu.ops.loops import every, scheduler_loop
from rsu.ops.metrics import Metrics
from rsu.ops.reload import parts_to_rebuild
from rsu.ops.status import daemon_status, note_sent, refresh_gauges
from rsu.ops.systemd import Notifier
from rsu.pipeline.codec import LazyCodec
from rsu.pipeline.outcomes import Sent
from rsu.pipeline.receive import ReceivePipeline, RxOutcome
from rsu.pipeline.receive_ports import SecurityServicePort
from rsu.security.setup import build_security
from rsu.services.ports import CurrentServices

if TYPE_CHECKING:
    from aiohttp import web

    from rsu.api.guard import Guard
    from rsu.integrations.runtime import Integrations
    from rsu.pipeline.send import SendPipeline
    from rsu.pki.runtime import PkiRuntime
    from rsu.security.service import SecurityService
    from rsu.services.layer import ServiceLayer
    from rsu.services.model import Transmission
    from rsu.services.received import ReceivedHub
    from rsu.transports.dispatch import TransportSet

log = logging.getLogger("rsu.daemon")

DUE_BATCH = 64  # transmissions released per scheduler pass; the scheduler orders them by priority
HOUSEKEEPING_S = 1.0

_Part = TypeVar("_Part")


def _started(part: _Part | None) -> _Part:
    """A part that :meth:`Daemon.start` builds; reaching it before the start is a wiring bug."""
    if part is None:
        raise RuntimeError("the daemon is not started")
    return part


class Reloads(TypedDict):
    """SIGHUP outcomes for ``rsu status``."""

    ok: int
    rejected: int
    last_error: str | None


class Daemon:
    def __init__(
        self,
        config: cfgmod.Config,
        *,
        config_path: str | None = None,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        overrides: tuple[str, ...] | list[str] = (),
    ):
        self.config = config
        self.config_path = config_path
        self.overrides = tuple(overrides)  # ``rsu run --set``: applied again on every reload
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.security: SecurityService | None = None
        from rsu.pki.runtime import CurrentPkiCollector, PkiLink

        self.pki_link = PkiLink(self.clock, lambda: self.security)  # the PKI client when pki: is configured
        self.layer: ServiceLayer | None = None
        # the layer a reload leaves, for the API/integrations
        self.services = CurrentServices(lambda: _started(self.layer))
        # IS_DataProviding: one for the daemon's lifetime, so subscribers survive reloads
        self.hub: ReceivedHub | None = None
        self.transports: TransportSet | None = None
        self.pipeline: SendPipeline | None = None  # over the transports' cores
        self.integrations: Integrations | None = None
        self.forward = build_forward(
            self.clock,
            self.metrics,
            security=lambda: self.security,
            verify=self._verify_presigned,
            transports=lambda: _started(self.transports).transports,
        )
        self._runner: web.AppRunner | None = None
        self.guard: Guard | None = None  # authentication, lockout, rate limits, audit (made with the API)
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._sent: dict[tuple[str, str], dict] = {}
        self.receive: ReceivePipeline | None = None  # built at start, once the services and security exist
        self.started_at: float | None = None
        self.reloads: Reloads = {"ok": 0, "rejected": 0, "last_error": None}
        self.metrics.registry.register(CurrentPkiCollector(lambda: self.pki))
        from rsu.health.monitor import HealthMonitor

        self.health = HealthMonitor(config.clock, clock=self.clock, metrics=self.metrics)  # clock/GNSS, the gate

    @property
    def pki(self) -> PkiRuntime | None:
        """The PKI client's :class:`rsu.pki.runtime.PkiRuntime` (None without ``pki:``)."""
        return self.pki_link.runtime

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        rlog.setup(self.config.logging.level)
        self.config.state_path.mkdir(parents=True, exist_ok=True)
        await self.health.start()  # the clock is read before the first send
        self.pki_link.open(self.config)
        self.security = build_security(self.config, self.clock, self.metrics.limit_hit, self.pki)
        self.pki_link.pick_up()
        self.layer = layer = self._build_layer()
        self.receive = ReceivePipeline(
            layer,
            self._security_port(),
            accept_unsecured=self.config.security.accept_unsecured,
            on_limit=self.metrics.limit_hit,
            on_verify_seconds=lambda message, s: self.metrics.child(self.metrics.verify_time, message).observe(s),
        )
        await self._start_transports()
        self.forward.start(self.config.forward, self.config.state_path, self.config.station.id, _started(self.hub))
        # the restored messages go back on the air first (after kill -9 every second off air counts), then
        # what the integrations put on (a MAP file's MAPEM); the API (aiohttp: ~0.1 s to import) comes last
        self._tasks = [
            asyncio.create_task(
                scheduler_loop(lambda: _started(self.layer), self.clock, self._wake, self._send, DUE_BATCH),
                name="rsu-scheduler",
            )
        ]
        await asyncio.sleep(0)
        codec = layer.codec
        if isinstance(codec, LazyCodec):  # build_layer's codec: now read the ASN.1 specification
            codec.warm()
        await self._start_integrations()
        await asyncio.sleep(0)  # the scheduler sends what they made due
        await self._start_api()
        self.pki_link.start()
        self._tasks += [
            asyncio.create_task(every(HOUSEKEEPING_S, self._refresh_gauges, "housekeeping"), name="rsu-housekeeping"),
            asyncio.create_task(self.notifier.watchdog_loop(), name="rsu-watchdog"),
        ]
        self.started_at = self.clock.now()
        api = self.config.api
        log.info(
            "rsu %s running: API %s://%s:%d, state %s, transports %s, security %s",
            __version__,
            "https" if api.tls else "http",
            api.host,
            self.api_port,
            self.config.state_path,
            ", ".join(_started(self.transports).transports),
            "on" if self.security else "OFF",
        )
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
        await self.health.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.forward.stop()
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
        """Rebuild the parts whose sections changed (:mod:`rsu.ops.reload`), in dependency order."""
        rlog.setup(new.logging.level)
        parts = parts_to_rebuild(old, new)
        if "health" in parts:
            await self.health.reconfigure(new.clock)
        if "pki" in parts:
            await self.pki_link.stop()
            self.pki_link.open(new)
        if "security" in parts:
            self.security = build_security(new, self.clock, self.metrics.limit_hit, self.pki)
            self.pki_link.pick_up()
            # frames held by the old security entity leave with it
            self._count(
                _started(self.receive).use_security(
                    self._security_port(), now=self.clock.now(), accept_unsecured=new.security.accept_unsecured
                )
            )
        if "pki" in parts:
            self.pki_link.start()
        if "layer" in parts:
            # the store holds every active message: reopening keeps ids, revisions and schedules;
            # the API and the integrations reach the layer through self.services, so they follow
            _started(self.layer).close()
            self.layer = layer = self._build_layer()
            _started(self.receive).use_services(layer)
            self._wake.set()
        if "transports" in parts:
            await _started(self.transports).stop()
            await self._start_transports()
        if "forward" in parts:  # the queues are on disk: delivery goes on where it was
            await self.forward.reload(new.forward, new.state_path, new.station.id, _started(self.hub))
        if "integrations" in parts:
            await _started(self.integrations).stop()
            await self._start_integrations()
        else:
            _started(self.integrations).reload()  # SIGHUP always re-reads the MAP files
        if "api" in parts:  # roles, limits, audit file: the same gate, whose counts and bans stay
            _started(self.guard).configure(new.api.host, new.api.tls, new.api.auth, new.api.audit)
        if "api" in parts and (old.api.host, old.api.port, old.api.tls) == (new.api.host, new.api.port, new.api.tls):
            from rsu.api.extras import set_limits

            set_limits(_started(self._runner), new.api.limits())  # new bounds, same server and streams
        elif "api" in parts:  # a new address (integration routes follow self.integrations)
            await _started(self._runner).cleanup()
            await self._start_api()

    # ------------------------------------------------------------------ builders
    def _build_layer(self) -> ServiceLayer:
        layer = build_layer(self.config, self.clock, self.metrics, self.security, self.hub, self._wake.set)
        self.hub = layer.hub
        return layer

    async def _start_transports(self) -> None:
        """The transports (I/O adapters) and the send pipeline over their sans-I/O cores."""
        self.transports, self.pipeline, duplicates = build_transports(
            self.config, self.clock, self.metrics, self.security, self.health.gate
        )
        _started(self.receive).use_duplicate_tables(duplicates)
        await self.transports.start(self._on_frame)

    async def _start_integrations(self) -> None:
        from rsu.integrations.runtime import Integrations

        self.integrations = integrations = Integrations(
            cfgmod.integrations_config(self.config),
            self.services,
            clock=self.clock,
            drops=self.metrics,
            on_feed_age=lambda ix, age: self.metrics.child(self.metrics.feed_age, str(ix)).set(age),
            on_skip=self.metrics.skip,
        )
        await integrations.start()

    async def _start_api(self) -> None:
        from rsu.api import extras
        from rsu.api.guard import Guard

        m, api = self.metrics, self.config.api
        if self.guard is None:  # one for the daemon's life: counts, bans and the audit file survive reloads
            self.guard = guard = Guard(
                state_dir=self.config.state_path,
                clock=self.clock,
                host=api.host,
                tls=api.tls,
                auth=api.auth,
                audit=api.audit,
                metrics=m,
            )
        else:
            guard = self.guard
        app = build_app(
            services=self.services,
            metrics=m,
            clock=self.clock,
            status=self.status,
            refresh=self._refresh_gauges,
            integrations=lambda: self.integrations,
            transports=lambda: self.transports,
            forward=self.forward,
            guard=guard,
            reload=self.reload if self.config_path else None,
            pki_check=self.pki_link.wake,
        )
        self._runner = await extras.start(
            app, self.config.api, on_close=lambda reason: m.api_connections_closed.labels(reason).inc()
        )

    @property
    def api_port(self) -> int:
        """The port the API listens on (api.port 0 asks for a free one)."""
        from rsu.api.extras import bound_port

        return bound_port(self._runner, self.config.api.port)

    # ------------------------------------------------------------------ sending
    def _send(self, tx: Transmission) -> None:
        """One released transmission: the pipeline's frames written to the transports, its outcomes counted."""
        now = self.clock.now()
        outcomes = _started(self.pipeline).send(tx, now)
        for outcome in outcomes:
            if isinstance(outcome, Sent):
                _started(self.transports)[outcome.transport].write(outcome)
        sent_on = self.metrics.count_send(tx.kind.service, max(0.0, now - tx.slot), outcomes)
        if sent_on is not None:
            note_sent(self._sent, tx.service, tx.id, now, sent_on)

    # ------------------------------------------------------------------ receiving
    # Every frame a transport hands up goes through the receive pipeline (rsu.pipeline.receive), which
    # decides its fate; each outcome is counted (docs/metrics.md "Receive accounting").
    def _on_frame(self, frame) -> None:
        self._count(_started(self.receive).receive(frame, self.clock.now()))

    def _count(self, outcomes: list[RxOutcome]) -> None:
        for outcome in outcomes:
            self.metrics.count_receive(outcome)

    def _verify_presigned(self, data: bytes) -> Any:
        """A pre-signed message verified by our security entity; held frames it releases meet their fate."""
        result = _started(self.security).verify(data)
        self._count(_started(self.receive).released(result.released, self.clock.now()))
        return result

    def _security_port(self) -> SecurityServicePort | None:
        return SecurityServicePort(self.security) if self.security is not None else None

    # ------------------------------------------------------------------ status & gauges
    def _refresh_gauges(self) -> None:
        """Housekeeping: the PKI client's ATs, held frames that expired, then the gauges."""
        from rsu.api.extras import open_connections

        self.pki_link.pick_up()
        self._count(_started(self.receive).expire(self.clock.now()))
        self.forward.refresh()
        refresh_gauges(
            self.metrics,
            layer=_started(self.layer),
            security=self.security,
            transports=_started(self.transports),
            api_connections=open_connections(self._runner),
        )
        self.health.refresh_gauges()

    def status(self) -> dict[str, Any]:
        """What is on the air now (``rsu status`` and GET /v1/status): :func:`rsu.ops.status.daemon_status`."""
        return daemon_status(
            now=self.clock.now(),
            started_at=self.started_at,
            config=self.config,
            config_path=self.config_path,
            layer=_started(self.layer),
            security=self.security,
            transports=self.transports,
            integrations=self.integrations,
            pki=self.pki,
            sent=self._sent,
            reloads=self.reloads,
            forward=self.forward.status(),
            clock=self.health.status(),
        )
