"""Traffic-controller feed -> TLM (SPATEM), with the feed watchdog (sans-I/O core).

:class:`ControllerFeed` takes feed messages (JSON objects/bytes, TSCBM datagrams), turns each into
one SPATEM request for the TLM service (``services.trigger("tlm", ...)``) and watches every
intersection's feed:

* **Order.** An update older than the last one used for its intersection is dropped
  (``out-of-order``), an equal timestamp too (``duplicate``); one whose timestamp is further than
  ``max_clock_skew_s`` from our clock is dropped (``clock-skew``).
* **TimeMarks** are computed against the time the SPATEM is stamped with (the TLM service stamps
  it from the same clock, in the same call), never against the controller's "now".
* **MAP consistency** is the TLM service's (revision, signal groups against the active MAPEM):
  a refusal is counted as ``tlm-<code>`` (``tlm-signal_group_mismatch``, ...).
* **Watchdog.** No usable update for ``watchdog_timeout_s``: with ``stale_behaviour: stop`` the
  SPATEM stream is terminated (nothing stale stays on the air; TLM never repeats a state); with
  ``unavailable`` every signal group is reported ``unavailable`` (status bit
  noValidSPATisAvailableAtThisTime) every ``unavailable_interval_s``, and the stream stops after
  ``unavailable_max_s``. The next update restarts the stream. The feed age of every intersection
  goes to the ``on_feed_age(intersection, seconds)`` callback (the daemon sets the
  ``rsu_controller_feed_age_seconds`` gauge from it) and into :meth:`status`.

The asyncio parts (UDP listener, the watchdog timer) are in :mod:`rsu.integrations.controller_io`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rsu.clock import Clock, iso_utc
from rsu.integrations.config import ControllerFeedConfig, ControllerIntersectionConfig
from rsu.integrations.counters import Counters
from rsu.integrations.json_feed import FeedError, parse_json_feed
from rsu.integrations.spat import (
    NO_VALID_SPAT,
    IntersectionUpdate,
    SignalEvent,
    SignalGroupState,
    spat_value,
    spatem_payload,
    status_with,
)
from rsu.integrations.tscbm import TscbmError, parse_tscbm, resolve_time_of_day, tscbm_update
from rsu.services.errors import ServiceError
from rsu.transports.base import DropCounter

log = logging.getLogger("rsu.integrations.controller")

NEVER, LIVE, STALE, STOPPED = "never", "live", "stale", "stopped"


class Services(Protocol):
    """The port the integrations need from the services (a subset of :class:`rsu.services.ports.Triggering`, and
    :class:`rsu.services.ports.SpatTriggering` for the SPATEM states; :class:`rsu.services.layer.ServiceLayer` and
    :class:`rsu.services.ports.CurrentServices` implement it)."""

    def trigger(self, service: str, request: dict) -> dict: ...
    def trigger_spat(self, spat: dict) -> dict: ...
    def update(self, service: str, ident: str, request: dict) -> dict: ...
    def terminate(self, service: str, ident: str, request: dict | None = None) -> dict: ...
    def get(self, service: str, ident: str) -> dict: ...


FeedAgeCallback = Callable[[str, float], None]


@dataclass
class FeedResult:
    """What became of one feed message."""

    accepted: bool
    intersection: str | None = None
    reason: str | None = None  # why it was dropped/refused (a counter name)
    path: str = ""
    detail: str = ""
    answer: dict | None = None  # the TLM answer when accepted
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        out: dict[str, Any] = {"accepted": self.accepted, "intersection": self.intersection}
        if self.accepted:
            out["warnings"] = list((self.answer or {}).get("warnings", [])) + self.notes
            if self.answer and "deferred_by_s" in self.answer:
                out["deferred_by_s"] = self.answer["deferred_by_s"]
        else:
            out["error"] = {
                "code": self.reason,
                "path": self.path,
                "reason": self.detail,
                "message": f"{self.reason}: {self.path or '(message)'}: {self.detail}",
            }
        return out


@dataclass
class _Intersection:
    key: str
    mode: str = NEVER
    last_update: float | None = None  # our clock time of the newest used update
    last_timestamp: float | None = None  # controller timestamp of it
    groups: tuple[int, ...] = ()  # signal groups of the last update (for "unavailable" reports)
    name: str | None = None
    revision: int | None = None  # the revision the feed gave (None: the MAPEM's)
    stale_since: float | None = None
    next_unavailable: float | None = None
    updates: int = 0
    last_error: str | None = None


class ControllerFeed:
    def __init__(
        self,
        config: ControllerFeedConfig,
        services: Services,
        *,
        clock: Clock,
        on_feed_age: FeedAgeCallback | None = None,
        drops: DropCounter | None = None,
        source: str = "controller",
    ) -> None:
        self.config = config
        self.services = services
        self.clock = clock
        self.on_feed_age = on_feed_age
        self.counters = Counters(source, drops)
        self._ix: dict[str, _Intersection] = {}
        self._wakeup: Callable[[], None] | None = None
        self._by_controller: dict[str | None, ControllerIntersectionConfig] = {
            ix.controller: ix for ix in config.intersections
        }
        self._by_key: dict[str, ControllerIntersectionConfig] = {}  # config.intersection(key), one lookup per update
        for ix in config.intersections:
            self._by_key.setdefault(ix.key, ix)

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """Called when :meth:`next_deadline` may have moved (the watchdog timer re-arms)."""
        self._wakeup = callback

    # --- input ------------------------------------------------------------------------------------------
    def on_datagram(self, data: bytes, source: Any = None) -> FeedResult:
        """One UDP datagram in the configured format. ``source``: (host, port) of the sender."""
        if self.config.format == "tscbm":
            return self.on_tscbm(data, source)
        return self.on_json(data, source)

    def on_json(self, message: bytes | str | dict, source: Any = None) -> FeedResult:
        self.counters.count("received")
        now = self.clock.now()
        try:
            update = parse_json_feed(message)
        except FeedError as e:
            return self._drop(e.reason, e.path, e.detail)
        cfg = self._by_key.get(update.key)
        if cfg is None and self._by_key:
            return self._drop(
                "unknown-intersection",
                "intersection",
                f"intersection {update.key} is not configured for this feed",
                key=update.key,
            )
        if cfg is not None and cfg.name and update.name is None:
            update = dataclasses.replace(update, name=cfg.name)
        return self._apply(update, now)

    def on_tscbm(self, data: bytes, source: Any = None) -> FeedResult:
        self.counters.count("received")
        now = self.clock.now()
        host = source[0] if isinstance(source, (tuple, list)) and source else source
        ix = self._by_controller.get(host) or self._by_controller.get(None)
        if ix is None:
            return self._drop("unknown-controller", "", f"no intersection is configured for controller {host}")
        try:
            blob = parse_tscbm(bytes(data))
        except TscbmError as e:
            return self._drop(e.reason, "", e.detail, key=ix.key)
        timestamp = resolve_time_of_day(blob.time_of_day(), now)
        base = timestamp if self.config.time_source == "controller" else now
        update = tscbm_update(blob, ix, base, timestamp)
        for note in update.notes:
            self.counters.count("tscbm-unmapped-state")
            log.debug("TSCBM %s: %s", ix.key, note)
        # receipt time: the controller's clock is not trusted, so it is not checked against ours either
        return self._apply(update, now, check_skew=self.config.time_source == "controller")

    # --- watchdog -------------------------------------------------------------------------------------
    def tick(self, now: float | None = None, backlog_s: float = 0.0) -> None:
        """Run the watchdog at ``now``: report feed ages, stop or report unavailable where the feed is lost.

        ``backlog_s``: how long the oldest update received but not yet processed has waited (the I/O side
        sheds load with a queue): a feed is lost only after ``watchdog_timeout_s`` beyond that, so a daemon
        that is behind does not take its own lag for a lost controller."""
        now = self.clock.now() if now is None else now
        cfg = self.config
        for st in self._ix.values():
            if st.last_update is None:
                continue
            age = max(0.0, now - st.last_update)
            self._report_age(st.key, age)
            if st.mode == LIVE and age >= cfg.watchdog_timeout_s + backlog_s:
                self.counters.count("feed-lost")
                log.warning("controller feed of intersection %s lost (no update for %.1f s)", st.key, age)
                if cfg.stale_behaviour == "stop":
                    self._stop(st, "feed lost")
                else:
                    st.mode = STALE
                    st.stale_since = now
                    self._send_unavailable(st, now)
            elif st.mode == STALE:
                if now - (st.stale_since or now) >= cfg.unavailable_max_s:
                    self._stop(st, "feed lost for unavailable_max_s")
                elif st.next_unavailable is not None and now >= st.next_unavailable:
                    self._send_unavailable(st, now)

    def next_deadline(self, backlog_s: float = 0.0) -> float | None:
        """Absolute clock time of the next watchdog event (a timeout or an "unavailable" report); ``backlog_s``
        as for :meth:`tick`."""
        times = []
        for st in self._ix.values():
            if st.mode == LIVE and st.last_update is not None:
                times.append(st.last_update + self.config.watchdog_timeout_s + backlog_s)
            elif st.mode == STALE:
                times.append(
                    min(st.next_unavailable or float("inf"), (st.stale_since or 0.0) + self.config.unavailable_max_s)
                )
        return min(times) if times else None

    def feed_ages(self, now: float | None = None) -> dict[str, float]:
        now = self.clock.now() if now is None else now
        return {k: max(0.0, now - st.last_update) for k, st in self._ix.items() if st.last_update is not None}

    def status(self) -> dict:
        now = self.clock.now()
        out = {}
        for k, st in sorted(self._ix.items()):
            out[k] = {
                "state": st.mode,
                "updates": st.updates,
                "feed_age_s": None if st.last_update is None else round(max(0.0, now - st.last_update), 3),
                "last_update": None if st.last_update is None else iso_utc(st.last_update),
                "last_controller_time": None if st.last_timestamp is None else iso_utc(st.last_timestamp),
                "last_error": st.last_error,
            }
        return {
            "format": self.config.format,
            "watchdog_timeout_s": self.config.watchdog_timeout_s,
            "stale_behaviour": self.config.stale_behaviour,
            "intersections": out,
            **self.counters.snapshot(),
        }

    # --- internals ------------------------------------------------------------------------------------
    def _state(self, key: str) -> _Intersection:
        st = self._ix.get(key)
        if st is None:
            st = self._ix[key] = _Intersection(key)
        return st

    def _drop(self, reason: str, path: str, detail: str, key: str | None = None) -> FeedResult:
        self.counters.drop(reason, detail)
        if key is not None and key in self._ix:
            self._ix[key].last_error = f"{reason}: {detail}"
        return FeedResult(False, key, reason, path, detail)

    def _apply(self, update: IntersectionUpdate, now: float, *, check_skew: bool = True) -> FeedResult:
        cfg = self.config
        st = self._ix.get(update.key)
        if st is not None and st.last_timestamp is not None:
            if update.timestamp < st.last_timestamp:
                return self._drop(
                    "out-of-order",
                    "timestamp",
                    f"{iso_utc(update.timestamp)} is older than the last update used ({iso_utc(st.last_timestamp)})",
                    update.key,
                )
            if update.timestamp == st.last_timestamp:
                return self._drop("duplicate", "timestamp", f"{iso_utc(update.timestamp)} was already used", update.key)
        if check_skew and abs(update.timestamp - now) > cfg.max_clock_skew_s:
            return self._drop(
                "clock-skew",
                "timestamp",
                f"{iso_utc(update.timestamp)} is {update.timestamp - now:+.3f} s from this RSU's clock "
                f"(max_clock_skew_s {cfg.max_clock_skew_s:g})",
                update.key,
            )
        st = self._state(update.key)
        try:
            answer, corrections = self._trigger(update, now)
        except ServiceError as e:
            st.last_error = str(e)
            self.counters.drop(f"tlm-{e.code}", str(e))
            log.info("controller update of intersection %s refused by TLM: %s", update.key, e)
            return FeedResult(False, update.key, f"tlm-{e.code}", e.path, e.reason)
        was_live = st.mode == LIVE
        recovered = st.mode in (STALE, STOPPED)
        if recovered:
            self.counters.count("feed-recovered")
            log.info("controller feed of intersection %s is back", update.key)
        if corrections:
            self.counters.count("timing-corrected", len(corrections))
        st.mode = LIVE
        st.last_update = now
        st.last_timestamp = update.timestamp
        st.groups = tuple(g.signal_group for g in update.groups)
        st.name = update.name
        st.revision = update.revision
        st.stale_since = st.next_unavailable = None
        st.updates += 1
        st.last_error = None
        self.counters.count("accepted")
        self._report_age(update.key, 0.0)
        if self._wakeup is not None and not was_live:
            # a new deadline (a live intersection's only moves later): the watchdog re-arms. Not on every
            # update: each watchdog turn visits every intersection, which under load costs O(N) per update
            self._wakeup()
        return FeedResult(True, update.key, answer=answer, notes=list(update.notes) + corrections)

    def _trigger(self, update: IntersectionUpdate, now: float) -> tuple[dict, list[str]]:
        """TLM's answer to ``update`` as a SPATEM stamped ``now``, and the corrections made: through the value port
        (the update was validated by its parser), or as JER when it holds what TLM's validation must refuse."""
        built = spat_value(update, now)
        if built is None:
            payload, corrections = spatem_payload(update, now)
            return self.services.trigger("tlm", {"payload": payload}), corrections
        spat, corrections = built
        return self.services.trigger_spat(spat), corrections

    def _send_unavailable(self, st: _Intersection, now: float) -> None:
        st.next_unavailable = now + self.config.unavailable_interval_s
        if not st.groups:
            return
        update = IntersectionUpdate(
            key=st.key,
            timestamp=now,
            status=status_with(0, NO_VALID_SPAT),
            groups=tuple(SignalGroupState(g, (SignalEvent("unavailable", timing=False),)) for g in st.groups),
            name=st.name,
            revision=st.revision,
        )
        try:
            self._trigger(update, now)
            self.counters.count("unavailable-sent")
        except ServiceError as e:
            st.last_error = str(e)
            self.counters.drop(f"tlm-{e.code}", str(e))

    def _stop(self, st: _Intersection, why: str) -> None:
        st.mode = STOPPED
        st.stale_since = st.next_unavailable = None
        try:
            self.services.terminate("tlm", st.key, {})
            self.counters.count("stream-stopped")
            log.warning("SPATEM of intersection %s stopped: %s", st.key, why)
        except ServiceError as e:
            if e.code != "unknown_id":
                st.last_error = str(e)
                log.error("SPATEM of intersection %s could not be stopped: %s", st.key, e)

    def _report_age(self, key: str, age: float) -> None:
        if self.on_feed_age is not None:
            try:
                self.on_feed_age(key, age)
            except Exception:
                log.exception("feed age callback failed")
