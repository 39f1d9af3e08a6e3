"""The asyncio side of the controller feed: a UDP listener and the watchdog timer (thin; no protocol here).

    runner = ControllerRunner(feed)          # feed: rsu.integrations.controller.ControllerFeed
    await runner.start()                     # binds config.host:config.port (UDP) unless port is null
    ...
    await runner.stop()

Every datagram goes to :meth:`ControllerFeed.on_datagram`; the watchdog task sleeps until the
feed's next deadline (or ``age_report_interval_s``, so feed ages keep being reported) and calls
:meth:`ControllerFeed.tick`. ``on_result`` (optional) sees every :class:`FeedResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from rsu.aio import wait_event
from rsu.integrations.controller import ControllerFeed, FeedResult

log = logging.getLogger("rsu.integrations.controller")


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, runner: ControllerRunner) -> None:
        self.runner = runner

    def datagram_received(self, data: bytes, addr) -> None:
        self.runner.handle(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("controller feed socket error: %s", exc)


class ControllerRunner:
    def __init__(self, feed: ControllerFeed, *, on_result: Callable[[FeedResult], None] | None = None) -> None:
        self.feed = feed
        self.on_result = on_result
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound UDP address (host, port), or None without a listener."""
        if self._transport is None:
            return None
        return self._transport.get_extra_info("sockname")[:2]

    async def start(self) -> None:
        cfg = self.feed.config
        loop = asyncio.get_running_loop()
        if cfg.port is not None:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(cfg.host, cfg.port)
            )
            log.info("controller feed (%s) listening on udp %s:%s", cfg.format, *(self.address or (cfg.host, cfg.port)))
        self.feed.set_wakeup(self._wake.set)
        self._task = asyncio.create_task(self._watchdog(), name="controller-watchdog")

    async def stop(self) -> None:
        self.feed.set_wakeup(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            await asyncio.sleep(0)  # the socket closes on the next loop pass: free the port for a restart now

    def handle(self, data: bytes, addr) -> None:
        try:
            result = self.feed.on_datagram(data, addr)
        except Exception:  # a bug must not stop the listener: count it, keep serving
            log.exception("controller datagram from %s could not be processed", addr)
            self.feed.counters.drop("internal-error")
            return
        if self.on_result is not None:
            self.on_result(result)

    async def _watchdog(self) -> None:
        feed = self.feed
        while True:
            now = feed.clock.now()
            timeout = feed.config.age_report_interval_s
            deadline = feed.next_deadline()
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
            await wait_event(self._wake, timeout)
            self._wake.clear()
            try:
                feed.tick()
            except Exception:
                log.exception("controller watchdog failed")
