"""Several transports at once: the daemon's transports by name, started and stopped together.

Layer: holds the I/O adapters (GN/BTP over UDP, MQTT); all of them deliver received frames to one
callback. Where a message goes (the transports its parameters name, else the defaults) is the send
pipeline's decision (:class:`rsu.pipeline.send.SendPipeline`); no protocol logic here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from rsu.transports.base import ReceiveCallback, Transport

log = logging.getLogger(__name__)


class TransportSet:
    """The daemon's transports by name. ``defaults``: names used when a message names none."""

    def __init__(self, transports: Iterable[Transport], *, defaults: Iterable[str] | None = None) -> None:
        self.transports: dict[str, Transport] = {}
        for t in transports:
            if t.name in self.transports:
                raise ValueError(f"transports: two transports are named {t.name!r}")
            self.transports[t.name] = t
        if defaults is None:
            defaults = [n for n, t in self.transports.items() if getattr(getattr(t, "config", None), "default", True)]
        self.defaults = tuple(defaults)
        for n in self.defaults:
            if n not in self.transports:
                raise ValueError(f"transports: default {n!r} is not a configured transport")
        self._started: list[Transport] = []

    def __getitem__(self, name: str) -> Transport:
        return self.transports[name]

    async def start(self, on_receive: ReceiveCallback) -> None:
        """Start every transport; if one fails, stop those already started and re-raise."""
        try:
            for t in self.transports.values():
                await t.start(on_receive)
                self._started.append(t)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        started, self._started = self._started, []
        for t in reversed(started):
            try:
                await t.stop()
            except Exception:
                log.exception("stopping transport %s failed", t.name)
