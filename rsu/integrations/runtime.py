"""All configured integrations as one object the daemon starts, reloads and stops.

    integrations = Integrations(IntegrationsConfig.from_dict(cfg["integrations"]), layer, clock=clock,
                                drops=metrics,                                   # DropCounter: drops
                                on_feed_age=lambda ix, age: metrics.feed_age.labels(ix).set(age))
    await integrations.start()         # UDP listener + watchdog, MAP files (first load), NTRIP client
    app.add_routes(integrations.routes())   # HTTP JSON feed + status routes
    integrations.reload()              # on SIGHUP: re-read the MAP files now
    integrations.status()              # for /v1/integrations/status and the logs
    await integrations.stop()

``layer`` implements the :class:`rsu.integrations.controller.Services` port (``trigger``/``update``/
``terminate``/``get``): a :class:`rsu.services.layer.ServiceLayer`, or in the daemon a
:class:`rsu.services.ports.CurrentServices` (the layer current at each call: a reload may replace it). Everything runs on the daemon's event loop, like the layer itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from rsu.clock import Clock
from rsu.integrations.config import IntegrationsConfig
from rsu.integrations.mapfiles import MapFileLoader, MapFilePoller
from rsu.transports.base import DropCounter

if TYPE_CHECKING:  # each integration's modules are imported when it is configured
    from aiohttp import web

    from rsu.integrations.controller import ControllerFeed, FeedAgeCallback, Services
    from rsu.integrations.controller_io import ControllerRunner
    from rsu.integrations.ntrip_io import NtripClient

log = logging.getLogger("rsu.integrations")


class Integrations:
    def __init__(
        self,
        config: IntegrationsConfig,
        services: Services,
        *,
        clock: Clock,
        drops: DropCounter | None = None,
        on_feed_age: FeedAgeCallback | None = None,
        on_skip: Callable[[str, str, int], None] | None = None,
    ) -> None:
        """``on_skip(service, reason, n)``: feed updates shed before they were built (``superseded``: a newer
        update of the same intersection arrived first), as the services layer reports skipped sends."""
        self.config = config
        self.controller: ControllerFeed | None = None
        self.controller_runner: ControllerRunner | None = None
        if config.controller:
            from rsu.integrations.controller import ControllerFeed
            from rsu.integrations.controller_io import ControllerRunner

            self.controller = ControllerFeed(
                config.controller, services, clock=clock, on_feed_age=on_feed_age, drops=drops
            )
            superseded = (lambda n: on_skip("tlm", "superseded", n)) if on_skip is not None else None
            self.controller_runner = ControllerRunner(self.controller, on_superseded=superseded)
        self.maps = MapFileLoader(config.map_files, services, clock=clock, drops=drops) if config.map_files else None
        self.map_poller = MapFilePoller(self.maps) if self.maps else None
        self.ntrip: NtripClient | None = None
        if config.ntrip:
            from rsu.integrations.ntrip_io import NtripClient

            self.ntrip = NtripClient(config.ntrip, services, clock=clock, drops=drops)

    async def start(self) -> None:
        """MAP files first (so the first SPATEMs find their MAPEM), then the controller feed, then NTRIP.

        If a part cannot start (e.g. the UDP port is taken), what already started is stopped and the
        error is raised.
        """
        try:
            if self.maps is not None:
                self.maps.reload()
            if self.map_poller is not None:
                await self.map_poller.start()
            if self.controller_runner is not None:
                await self.controller_runner.start()
            if self.ntrip is not None:
                await self.ntrip.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for part in (self.ntrip, self.controller_runner, self.map_poller):
            if part is not None:
                try:
                    await part.stop()
                except Exception:
                    log.exception("stopping %s failed", type(part).__name__)

    def reload(self) -> dict:
        """SIGHUP: re-read every MAP file now. Returns what changed per intersection."""
        if self.maps is None:
            return {}
        return {
            c.intersection: {"action": c.action, "revisions": c.revisions, "error": c.error} for c in self.maps.reload()
        }

    def status(self) -> dict:
        return {
            "controller": self.controller.status() if self.controller else None,
            "map_files": self.maps.status() if self.maps else None,
            "ntrip": self.ntrip.status() if self.ntrip else None,
        }

    def routes(self) -> list[web.RouteDef]:
        from rsu.integrations.routes import feed_routes, status_routes

        out = feed_routes(self.controller) if self.controller else []
        return out + status_routes(self.status)
