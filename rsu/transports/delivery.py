"""Handing received frames up: the one place that calls the receive callback for every transport."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable

from rsu import catalog
from rsu.transports.base import ReceiveCallback, ReceivedFrame
from rsu.transports.drops import DropReason

log = logging.getLogger(__name__)


class FrameDelivery:
    """Calls the receive callback (sync or async) for each frame; a failing callback is logged and
    counted as an internal-error drop, never raised into the transport's I/O loop. Keeps the tasks
    of async callbacks so that :meth:`cancel` can end them at stop."""

    def __init__(self, name: str, drop: Callable[[DropReason, str, str | None], None]) -> None:
        self.name = name
        self._drop = drop
        self.callback: ReceiveCallback | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def deliver(self, frame: ReceivedFrame) -> None:
        if self.callback is None:
            return
        try:
            r = self.callback(frame)
        except Exception:
            log.exception("%s: receive callback failed", self.name)
            self._drop(DropReason.INTERNAL_ERROR, "callback", _message(frame))
            return
        if inspect.isawaitable(r):
            task = asyncio.ensure_future(r)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._done(t, frame))

    def _done(self, task: asyncio.Task[None], frame: ReceivedFrame) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: receive callback failed", self.name, exc_info=task.exception())
            self._drop(DropReason.INTERNAL_ERROR, "callback", _message(frame))

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _message(frame: ReceivedFrame) -> str:
    kind = catalog.BY_BTP_PORT.get(frame.btp_port) if frame.btp_port is not None else None
    return kind.name if kind else "unknown"
