"""The dissemination scheduler: sans-I/O, drift-free, prioritised, bounded.

It knows *keys* (one per store entry) and *when* each is due; what to send is the entity's business.

* **Periodic** keys repeat at ``anchor + k * interval`` (k = 1, 2, ... or 0, 1, ...): the next time
  is computed from the schedule, never from "now + interval", so lateness never accumulates.
  When a call comes late by more than one interval, only the latest missed slot is sent and the
  older ones are counted as ``skipped`` (no bursts after a pause).
* **Start/stop**: no slot before ``start`` nor at or after ``stop``.
* **One-shot** ("fresh") transmissions: new content or an event generation (every SPATEM), at a
  given time (now, or later when a rate limit defers it). One pending one-shot per key: a newer
  one replaces the older (counted ``superseded``), so the fresh backlog is bounded by the number of keys.
* **Priority and overload**: :meth:`due` returns fresh items first, then by priority (7 first), then
  by slot time. With a ``limit`` (what the caller can send now), fresh items beyond the limit stay
  pending for the next call, and repetitions beyond it are dropped (counted ``dropped``) - their
  next slot comes anyway. So under overload a fresh SPATEM always wins over a repetition.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

_EPS = 1e-9

K = TypeVar("K", bound=Hashable)  # the caller's key type (the services layer's: (service, entry id))


@dataclass
class _Periodic:
    interval: float
    anchor: float
    k: int  # index of the next slot
    start: float | None
    stop: float | None
    priority: int

    def slot(self, k: int) -> float:
        return self.anchor + k * self.interval

    def first_index_at_or_after(self, t: float) -> int:
        return max(0, math.ceil((t - self.anchor) / self.interval - _EPS))

    def next_time(self) -> float | None:
        t = self.slot(self.k)
        if self.stop is not None and t >= self.stop - _EPS:
            return None
        return t


@dataclass
class _OneShot:
    at: float
    priority: int
    fresh: bool = True  # False: an extra repetition (the resend after a restart)


@dataclass(frozen=True)
class Due(Generic[K]):
    """One transmission the caller should make now."""

    key: K
    slot: float  # the scheduled time of this transmission
    fresh: bool  # new content / event generation (True) or a repetition (False)
    priority: int


class Scheduler(Generic[K]):
    """``on_skip(key, reason, n)``: told about transmissions not sent, with reason ``missed-slot`` (the
    caller was late by more than an interval), ``overload`` (repetitions beyond the caller's limit) or
    ``superseded`` (a pending one-shot replaced by a newer one before it was sent)."""

    def __init__(self, on_skip: Callable[[K, str, int], None] | None = None) -> None:
        self.on_skip = on_skip
        self._periodic: dict[K, _Periodic] = {}
        # the periodic keys by their next slot: (time, tie-break, key, entry); an entry whose key was removed,
        # replaced or moved on is stale and dropped when it reaches the top. So a pass costs O(due * log n),
        # not a visit of every key (with hundreds of MAPEMs that visit cost more than a SPATEM per pass)
        self._heap: list[tuple[float, int, K, _Periodic]] = []
        self._seq = itertools.count()
        self._order: dict[K, int] = {}  # first-set order of the periodic keys: ties go as before, in that order
        self._oneshot: dict[K, _OneShot] = {}
        # the pending one-shots by time, as the periodic keys (an entry whose key was sent, removed or fired
        # again is stale), and each key's place in the order of _oneshot (the order a pass releases ties in):
        # a pass and the next deadline cost O(due * log n), not a visit of every pending one-shot (a deferred
        # SPATEM of every intersection under load)
        self._shot_heap: list[tuple[float, int, K, _OneShot]] = []
        self._shot_order: dict[K, int] = {}
        self.emitted = 0
        self.skipped = 0  # periodic slots missed because the caller was late by more than one interval
        self.dropped = 0  # repetitions not sent because the caller's limit was reached (overload)
        self.superseded = 0  # pending one-shots replaced by a newer one before they were sent

    # --- configuration --------------------------------------------------------------------------
    def set_periodic(
        self,
        key: K,
        *,
        interval: float,
        anchor: float,
        now: float,
        start: float | None = None,
        stop: float | None = None,
        priority: int = 4,
        include_anchor: bool = False,
    ) -> None:
        """Repeat ``key`` at ``anchor + k*interval``; the first slot is the first one >= max(now, start)
        (strictly after the anchor unless ``include_anchor``, for the usual "fresh send at the anchor")."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        p = _Periodic(interval, anchor, 0, start, stop, priority)
        lower = max(now, start) if start is not None else now
        k = p.first_index_at_or_after(lower)
        if not include_anchor:
            k = max(k, 1)
        p.k = k
        self._periodic[key] = p
        self._order.setdefault(key, next(self._seq))
        self._push(key, p)

    def fire(self, key: K, at: float, priority: int, *, fresh: bool = True) -> None:
        """One fresh transmission of ``key`` at ``at`` (replaces a pending one of the same key, keeping
        the earlier time: a newer state never waits longer than the one it replaces). ``fresh=False``:
        one extra repetition of the same bytes (after a restart: back on the air without waiting for
        the next slot of the grid); like a fresh one it is kept, not dropped, beyond ``limit``."""
        old = self._oneshot.get(key)
        if old is not None:  # the pending one is never sent: its content is superseded
            if self.on_skip is not None:
                self.on_skip(key, "superseded", 1)
            self.superseded += 1
            at = min(at, old.at)
            fresh = fresh or old.fresh
        else:
            self._shot_order[key] = next(self._seq)
        o = self._oneshot[key] = _OneShot(at, priority, fresh)
        heapq.heappush(self._shot_heap, (at, next(self._seq), key, o))
        if len(self._shot_heap) > 2 * len(self._oneshot) + 64:  # mostly stale (keys fired again and again)
            self._shot_heap = [(x.at, next(self._seq), k, x) for k, x in self._oneshot.items()]
            heapq.heapify(self._shot_heap)

    def remove(self, key: K) -> None:
        self._periodic.pop(key, None)
        self._order.pop(key, None)
        self._oneshot.pop(key, None)
        self._shot_order.pop(key, None)

    def pending_fire(self, key: K) -> float | None:
        o = self._oneshot.get(key)
        return o.at if o else None

    def next_time(self, key: K) -> float | None:
        times = []
        if key in self._oneshot:
            times.append(self._oneshot[key].at)
        p = self._periodic.get(key)
        if p is not None and (t := p.next_time()) is not None:
            times.append(t)
        return min(times) if times else None

    def __contains__(self, key: K) -> bool:
        return key in self._periodic or key in self._oneshot

    # --- driving ------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """The earliest time anything is due (None: nothing scheduled)."""
        best = self._shot_top()
        top = self._top()
        if top is not None:
            best = top if best is None else min(best, top)
        return best

    def _push(self, key: K, p: _Periodic) -> None:
        t = p.next_time()
        if t is not None:
            heapq.heappush(self._heap, (t, next(self._seq), key, p))

    def _top(self) -> float | None:
        """The earliest next slot of a periodic key (stale heap entries are dropped on the way)."""
        heap = self._heap
        while heap:
            t, _, key, p = heap[0]
            if self._periodic.get(key) is p and p.next_time() == t:
                return t
            heapq.heappop(heap)
        return None

    def _shot_top(self) -> float | None:
        """The earliest pending one-shot's time (stale heap entries are dropped on the way)."""
        heap = self._shot_heap
        while heap:
            at, _, key, o = heap[0]
            if self._oneshot.get(key) is o:
                return at
            heapq.heappop(heap)
        return None

    def _due_shots(self, now: float) -> list[tuple[K, _OneShot]]:
        """The pending one-shots due at ``now``, taken off the heap, in the order of ``_oneshot``."""
        shots = []
        while (at := self._shot_top()) is not None and at <= now + _EPS:
            _, _, key, o = heapq.heappop(self._shot_heap)
            shots.append((key, o))
        shots.sort(key=lambda ko: self._shot_order[ko[0]])
        return shots

    def _keep(self, shots: list[tuple[K, _OneShot]]) -> None:
        """Due one-shots a pass did not release (beyond its limit) go back on the heap."""
        for key, o in shots:
            if self._oneshot.get(key) is o:
                heapq.heappush(self._shot_heap, (o.at, next(self._seq), key, o))

    def due(self, now: float, limit: int | None = None) -> list[Due[K]]:
        """Everything due at ``now``, most urgent first (see the module text for ``limit``)."""
        items: dict[K, Due[K]] = {}
        ready: list[tuple[K, _Periodic]] = []
        while (t := self._top()) is not None and t <= now + _EPS:
            _, _, key, p = heapq.heappop(self._heap)
            ready.append((key, p))
        ready.sort(key=lambda kp: self._order[kp[0]])
        for key, p in ready:
            latest = max(p.k, math.floor((now - p.anchor) / p.interval + _EPS))
            if p.stop is not None:
                while latest > p.k and p.slot(latest) >= p.stop - _EPS:
                    latest -= 1
            self.skipped += latest - p.k
            if latest > p.k and self.on_skip is not None:
                self.on_skip(key, "missed-slot", latest - p.k)
            items[key] = Due(key, p.slot(latest), False, p.priority)
            p.k = latest + 1
            self._push(key, p)
        due_shots = self._due_shots(now)
        shots: set[K] = set()
        for key, o in due_shots:
            shots.add(key)
            items[key] = Due(key, o.at, o.fresh, max(o.priority, items[key].priority if key in items else 0))
        ordered = sorted(items.values(), key=lambda d: (not d.fresh, d.key not in shots, -d.priority, d.slot))
        if limit is not None and len(ordered) > limit:
            sent, rest = ordered[:limit], ordered[limit:]
            for d in rest:
                if d.key not in shots:
                    self.dropped += 1
                    if self.on_skip is not None:
                        self.on_skip(d.key, "overload", 1)
            ordered = sent
        for d in ordered:
            if d.key in shots:
                self._oneshot.pop(d.key, None)
                self._shot_order.pop(d.key, None)
        self._keep(due_shots)
        self.emitted += len(ordered)
        return ordered

    def stats(self) -> dict[str, int]:
        return {
            "periodic": len(self._periodic),
            "pending_fresh": len(self._oneshot),
            "emitted": self.emitted,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "superseded": self.superseded,
        }
