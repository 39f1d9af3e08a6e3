"""The forwarding runtime: IS_DataProviding events -> per-sink disk queues -> the centre (asyncio adapter).

Layer: takes the received-message events of the services' hub (:class:`rsu.services.received.ReceivedHub`,
the stream ``GET /v1/received`` serves) and gives them to each sink's centre, at least once, in order.

Each event a sink's filter takes is written to that sink's :class:`~rsu.forward.queue.DiskQueue` at
once (in the hub's publish call: nothing waits in memory), then a task per sink delivers the queue
oldest first and removes an item only once the centre acknowledged it. While the centre is
unreachable the task retries with an exponential backoff (``retry_initial`` .. ``retry_max``) and
the queue absorbs what arrives, within its bounds; after a restart the queue is delivered from
where it stopped. Metrics per sink: queued, delivered, dropped{reason}, oldest age.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rsu.clock import Clock
from rsu.forward import render
from rsu.forward.config import ForwardSection
from rsu.forward.queue import EXPIRED, QUEUE_FULL, DiskQueue
from rsu.forward.sinks import SinkError, sink_io
from rsu.transports.mqtt_core import Backoff

log = logging.getLogger("rsu.forward")

BATCH = 64
RENDER_ERROR = "render-error"  # an event the sink's format cannot express (counted, never queued)
DISK_ERROR = "disk-error"  # the queue file could not be written (disk full, I/O error)
DROP_REASONS = {
    QUEUE_FULL: "the queue was full: its oldest message was dropped",
    EXPIRED: "a message waited longer than queue_max_age",
    RENDER_ERROR: "the event could not be put in the sink's format",
    DISK_ERROR: "the sink's queue file could not be written",
}


class ForwardMetrics(Protocol):
    """What the runtime counts (rsu.ops.metrics.Metrics has these)."""

    forward_queued: Any  # Gauge [sink]
    forward_delivered: Any  # Counter [sink]
    forward_dropped: Any  # Counter [sink, reason]
    forward_oldest_age: Any  # Gauge [sink]


class HubSubscription(Protocol):
    """What the runtime uses of a subscription (rsu.services.received.Subscription)."""

    def set_waker(self, waker: Callable[[], None] | None) -> None: ...

    def drain(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class Hub(Protocol):
    def subscribe(self, services=None, types=None, last_id=None) -> HubSubscription: ...


@dataclass
class _Sink:
    cfg: Any
    queue: DiskQueue
    io: Any
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    last_error: str | None = None
    delivered: int = 0


class ForwardRuntime:
    def __init__(
        self, config: ForwardSection, state_dir: Path, clock: Clock, station: int, metrics: ForwardMetrics
    ) -> None:
        self.config = config
        self.dir = Path(state_dir) / "forward"
        self.clock = clock
        self.station = station
        self.metrics = metrics
        self.sinks: dict[str, _Sink] = {}
        self._sub: HubSubscription | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, hub: Hub) -> None:
        """Open every sink's queue, subscribe to ``hub`` and start delivering (nothing to do without sinks)."""
        self.sinks = self._open(self.config)
        self._start_delivery()
        if self.sinks:
            self._sub = hub.subscribe(types=["received"])
            self._sub.set_waker(self._take)
        self.refresh()

    async def reload(self, config: ForwardSection, state_dir: Path, station: int, hub: Hub) -> None:
        """New sink settings. The queues stay (same name, same file), and no received event is missed:
        the new sinks take events before the old ones' connections are closed."""
        self.config, self.dir, self.station = config, Path(state_dir) / "forward", station
        old, self.sinks = self.sinks, self._open(config)
        if self.sinks and self._sub is None:
            self._sub = hub.subscribe(types=["received"])
            self._sub.set_waker(self._take)
        await self._close(old)
        self._start_delivery()
        if not self.sinks and self._sub is not None:
            self._sub.close()
            self._sub = None
        self.refresh()

    def _open(self, config: ForwardSection) -> dict[str, _Sink]:
        sinks = {}
        for cfg in config.sinks:
            queue = DiskQueue(
                self.dir / f"{cfg.name}.sqlite", self.clock, max_items=cfg.queue_max_items, max_age_s=cfg.queue_max_age
            )
            dropped = queue.resize(cfg.queue_max_items, cfg.queue_max_age)  # bounds may be lower than last run
            self._count_drop(cfg.name, QUEUE_FULL, dropped)
            sinks[cfg.name] = _Sink(cfg, queue, sink_io(cfg, f"rsu_{self.station}_{cfg.name}"))
        return sinks

    def _start_delivery(self) -> None:
        for sink in self.sinks.values():
            if sink.task is None:
                sink.task = asyncio.create_task(self._deliver_loop(sink), name=f"forward:{sink.cfg.name}")
                if len(sink.queue):
                    sink.wake.set()

    async def stop(self) -> None:
        if self._sub is not None:
            self._take()
            self._sub.close()
            self._sub = None
        sinks, self.sinks = self.sinks, {}
        await self._close(sinks)

    @staticmethod
    async def _close(sinks: dict[str, _Sink]) -> None:
        for sink in sinks.values():
            if sink.task is not None:
                sink.task.cancel()
        for sink in sinks.values():
            if sink.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sink.task
            await sink.io.close()
            sink.queue.close()

    # ------------------------------------------------------------------ intake (synchronous, in the hub's publish)
    def _take(self) -> None:
        sub = self._sub
        if sub is None:
            return
        for event in sub.drain():
            self.offer(event)

    def offer(self, event: dict) -> None:
        """Queue ``event`` on every sink whose filter takes it."""
        now_ms = int(round(self.clock.now() * 1000))
        source = f"rsu_{self.station}"
        for name, sink in self.sinks.items():
            if not render.matches(sink.cfg, event):
                continue
            try:
                stored = render.record(sink.cfg, event, source, now_ms)
            except Exception:
                log.warning(
                    "%s: received %s not forwarded: cannot be rendered", name, event.get("message"), exc_info=True
                )
                self._count_drop(name, RENDER_ERROR, 1)
                continue
            try:
                _, dropped = sink.queue.push(stored)
            except sqlite3.Error as e:  # the receive path goes on; this sink misses the message (counted)
                log.error("%s: received %s not queued: %s", name, event.get("message"), e)
                self._count_drop(name, DISK_ERROR, 1)
                continue
            self._count_drop(name, QUEUE_FULL, dropped)
            sink.wake.set()
        self._gauges()

    # ------------------------------------------------------------------ delivery
    async def _deliver_loop(self, sink: _Sink) -> None:
        """Oldest first; an MQTT sink keeps up to ``inflight`` publications unacknowledged at once (one
        connection: the broker keeps their order), a webhook one request at a time (its order)."""
        cfg = sink.cfg
        backoff = Backoff(cfg.retry_initial, cfg.retry_max)
        window = getattr(cfg, "inflight", 1)
        while True:
            items = sink.queue.peek(window)
            if not items:
                sink.wake.clear()
                await sink.wake.wait()
                continue
            batch = []
            for item in items:
                try:
                    batch.append((item, render.delivery(cfg, item.seq, item.body, self.station)))
                except Exception:  # a queued record this version cannot read: never blocks the queue
                    log.exception("forward %s: queued message %d cannot be sent; dropped", cfg.name, item.seq)
                    sink.queue.remove(item.seq)
                    self._count_drop(cfg.name, RENDER_ERROR, 1)
            results = await asyncio.gather(*(sink.io.deliver(d) for _, d in batch), return_exceptions=True)
            failure = None
            for (item, _), result in zip(batch, results, strict=True):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    failure = result if isinstance(result, SinkError) else SinkError(repr(result))
                    break  # what follows is sent again: at least once, in order of first arrival
                sink.queue.ack(item.seq)
                sink.delivered += 1
                self.metrics.forward_delivered.labels(cfg.name).inc()
            if failure is None:
                if sink.last_error is not None:
                    log.info("forward %s: delivering again", cfg.name)
                sink.last_error = None
                backoff.reset()
            else:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # stop() cancelled us during a connect: asyncio.wait_for (Python 3.11) may have turned
                    # that into the connect's own error; honour the cancellation instead of retrying
                    raise asyncio.CancelledError
                if sink.last_error != str(failure):
                    log.warning("forward %s: not delivered, retrying: %s", cfg.name, failure)
                sink.last_error = str(failure)
                await asyncio.sleep(backoff.next_delay())
            self._gauges()

    # ------------------------------------------------------------------ bounds and gauges
    def refresh(self) -> None:
        """Expire what waited too long and update the gauges (the daemon's housekeeping calls this)."""
        for name, sink in self.sinks.items():
            self._count_drop(name, EXPIRED, sink.queue.expire())
        self._gauges()

    def _gauges(self) -> None:
        for name, sink in self.sinks.items():
            self.metrics.forward_queued.labels(name).set(len(sink.queue))
            self.metrics.forward_oldest_age.labels(name).set(sink.queue.oldest_age())

    def _count_drop(self, name: str, reason: str, n: int) -> None:
        if n:
            self.metrics.forward_dropped.labels(name, reason).inc(n)

    def status(self) -> dict:
        return {
            name: {
                "type": s.cfg.type,
                "queued": len(s.queue),
                "delivered": s.delivered,
                "oldest_age_s": round(s.queue.oldest_age(), 3),
                "connected": s.io.connected,
                "last_error": s.last_error,
            }
            for name, s in self.sinks.items()
        }
