"""Named counters of an integration: what was accepted, what was dropped and why.

Every reason is a stable, hyphenated string (it ends up in metrics labels). A :class:`Counters`
keeps its own numbers (``snapshot()`` for status pages and tests) and, when the daemon passes one,
forwards every *drop* to a :class:`rsu.transports.base.DropCounter` (``rsu.ops.metrics.Metrics``
is one) as ``drop(source, reason)``, so drops reach ``rsu_messages_dropped_total`` without a new
metric.
"""

from __future__ import annotations

import logging

from rsu.transports.base import DropCounter

log = logging.getLogger("rsu.integrations")


class ReasonError(Exception):
    """An input an integration refuses: ``reason`` is the stable drop reason, ``detail`` says why."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class Counters:
    """Counts by name. ``drop()`` counts a dropped input (and forwards it); ``count()`` anything else."""

    def __init__(self, source: str, drops: DropCounter | None = None) -> None:
        self.source = source
        self._drops = drops
        self._counts: dict[str, int] = {}
        self._dropped: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        self._counts[name] = self._counts.get(name, 0) + n

    def drop(self, reason: str, detail: str = "") -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        if detail:
            log.debug("%s: dropped (%s): %s", self.source, reason, detail)
        if self._drops is not None:
            try:
                self._drops.drop(self.source, reason)
            except Exception:  # metrics must never stop the feed
                log.exception("%s: drop counter failed", self.source)

    def get(self, name: str) -> int:
        return self._counts.get(name, 0)

    def dropped(self, reason: str) -> int:
        return self._dropped.get(reason, 0)

    def snapshot(self) -> dict:
        return {"counts": dict(sorted(self._counts.items())), "dropped": dict(sorted(self._dropped.items()))}
