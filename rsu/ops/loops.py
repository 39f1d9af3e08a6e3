"""The daemon's two timers, as coroutines over explicit parts (asyncio only; the decisions stay in the layers).

* :func:`scheduler_loop`: sleeps until the service layer's next deadline (or a wake-up: a trigger made
  something due sooner), releases at most ``batch`` due transmissions (the scheduler orders them by
  priority) and hands each to ``send``; when more are due it goes round again after letting other tasks run.
* :func:`every`: calls ``fn`` every ``seconds`` (housekeeping); an exception is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from rsu.aio import wait_event
from rsu.clock import Clock
from rsu.services.model import Transmission

log = logging.getLogger("rsu.daemon")


class Schedule(Protocol):
    """What the scheduler loop needs of the service layer."""

    def next_deadline(self) -> float | None: ...

    def due(self, now: float | None = None, limit: int | None = None) -> list[Transmission]: ...


async def scheduler_loop(
    layer: Callable[[], Schedule], clock: Clock, wake: asyncio.Event, send: Callable[[Transmission], None], batch: int
) -> None:
    """``layer()`` gives the service layer now (a reload may replace it)."""
    while True:
        deadline = layer().next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - clock.now())
        if timeout is None or timeout > 0:
            await wait_event(wake, timeout)  # a SIGTERM cancellation always gets through
        wake.clear()
        try:
            released = layer().due(limit=batch)
        except Exception:
            log.exception("scheduler: releasing transmissions failed")
            await asyncio.sleep(0.1)
            continue
        for tx in released:
            send(tx)
        if len(released) >= batch:
            wake.set()  # more are due: go round again, letting other tasks run first
            await asyncio.sleep(0)


async def every(seconds: float, fn: Callable[[], None], what: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            fn()
        except Exception:
            log.exception("%s failed", what)
