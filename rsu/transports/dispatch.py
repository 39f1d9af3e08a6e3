"""Several transports at once: each message goes where its parameters say.

Layer: takes secured data + :class:`DisseminationParams` and hands them to the transports named
in ``params.transports`` (empty: every transport configured as a default); all transports deliver
received frames to one callback. No protocol logic here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable

from rsu.transports.base import DisseminationParams, DropCounter, ReceiveCallback, Transport
from rsu.transports.drops import DropReason

log = logging.getLogger(__name__)


class TransportSet:
    """The daemon's transports by name. ``defaults``: names used when a message names none."""

    def __init__(self, transports: Iterable[Transport], *, drops: DropCounter,
                 defaults: Iterable[str] | None = None) -> None:
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
        self.drops = drops
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

    def targets(self, params: DisseminationParams) -> tuple[list[Transport], list[str]]:
        """(transports to use, names that are not configured)."""
        names = params.transports or self.defaults
        found = [self.transports[n] for n in names if n in self.transports]
        return found, [n for n in names if n not in self.transports]

    async def send(self, secured: bytes, params: DisseminationParams) -> list[str]:
        """Send to every target transport concurrently; returns the names used."""
        targets, missing = self.targets(params)
        for name in missing:
            log.warning("message names transport %r, which is not configured", name)
            self.drops.drop(name, str(DropReason.UNKNOWN_TRANSPORT))
        if targets:
            await asyncio.gather(*(t.send(secured, params) for t in targets))
        return [t.name for t in targets]

    async def stop(self) -> None:
        started, self._started = self._started, []
        for t in reversed(started):
            try:
                await t.stop()
            except Exception:
                log.exception("stopping transport %s failed", t.name)
