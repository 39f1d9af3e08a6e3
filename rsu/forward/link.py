"""The daemon's forwarding slot: the sinks towards the centre and the pre-signed forwarder, as one part.

Layer: takes the ``forward:`` section, the state directory, the IS_DataProviding hub and what the
pre-signed forwarder needs from the daemon (its security entity, the transports, a verifier that
gives released frames their fate); gives start/stop/reload for the daemon's lifecycle, ``refresh`` for
housekeeping, ``status`` for /v1/status and ``routes`` for the API (answered by whichever forwarder
runs now, so a reload does not restart the API).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsu.clock import Clock

if TYPE_CHECKING:
    from aiohttp import web

    from rsu.forward.api import Forwarder
    from rsu.forward.config import ForwardSection
    from rsu.forward.runtime import ForwardMetrics, ForwardRuntime, Hub


class ForwardLink:
    def __init__(
        self,
        clock: Clock,
        metrics: ForwardMetrics,
        *,
        security: Callable[[], Any],
        verify: Callable[[bytes], Any],
        transports: Callable[[], dict[str, Any]],
        on_sent: Callable[[Any, str, bool], None],
        count: Callable[[str], None],
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._security, self._verify, self._transports = security, verify, transports
        self._on_sent, self._count = on_sent, count
        self.runtime: ForwardRuntime | None = None
        self.presigned: Forwarder | None = None

    @property
    def sinks(self) -> dict[str, Any]:
        """The running sinks by name (empty before start)."""
        return self.runtime.sinks if self.runtime is not None else {}

    def start(self, config: ForwardSection, state_dir: Path, station: int, hub: Hub) -> None:
        from rsu.forward.runtime import ForwardRuntime

        self.runtime = ForwardRuntime(config, state_dir, self._clock, station, self._metrics)
        self.runtime.start(hub)
        self._start_presigned(config, state_dir)

    def _start_presigned(self, config: ForwardSection, state_dir: Path) -> None:
        from rsu.forward.api import Forwarder

        self.presigned = Forwarder(
            config.presigned,
            state_dir,
            self._clock,
            security=self._security,
            verify=self._verify,
            transports=self._transports,
            on_sent=self._on_sent,
            count=self._count,
        )
        self.presigned.start()

    async def reload(self, config: ForwardSection, state_dir: Path, station: int, hub: Hub) -> None:
        """New sinks and forwarder settings; the queues are on disk, so delivery goes on where it was."""
        if self.runtime is not None:
            await self.runtime.reload(config, state_dir, station, hub)
        if self.presigned is not None:
            await self.presigned.stop()
        self._start_presigned(config, state_dir)

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        if self.presigned is not None:
            await self.presigned.stop()

    def refresh(self) -> None:
        if self.runtime is not None:
            self.runtime.refresh()

    def status(self) -> dict[str, Any] | None:
        return self.runtime.status() if self.runtime is not None else None

    def routes(self) -> list[web.RouteDef]:
        """POST/GET /v1/forward, DELETE /v1/forward/{id}: answered by the forwarder running now."""
        from rsu.api.extras import routes_of_current
        from rsu.forward.api import ROUTES

        return routes_of_current(
            [(method, path) for method, path, _role in ROUTES], lambda: self.presigned, "no forwarder"
        )
