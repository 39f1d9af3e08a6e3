"""The services facade: five entities + store + scheduler + IS_DataProviding hub, as one sans-I/O object.

The daemon (and the API) drive it; it never sleeps, never opens sockets, and takes its time
from the injected clock::

    layer = ServiceLayer(ServicesConfig(state_dir="/var/lib/rsu", station_id=3120101),
                         clock=SystemClock(), permission_check=signer_ssp_check)
    # IS_Triggering (also what the HTTP API calls)
    layer.trigger("ivi", {"payload": {...JER...}, "dissemination": {"repetition_interval_s": 0.5}})
    # the daemon's loop
    while True:
        deadline = layer.next_deadline()          # absolute clock time, or None
        ... wait until then, or until the wakeup callback fires ...
        for tx in layer.due():                    # Transmission: UPER PDU + DisseminationParams
            sign(tx.pdu, tx.kind) and send(secured, tx.params)
    # IS_DataProviding
    layer.on_received(decoded_pdu, security_info, transport_info)

Every request is all-or-nothing: the entity computes a plan without touching anything, the
plan is committed to the store in one transaction, and only then applied to the entity and the
scheduler (which cannot fail). A refused request raises :class:`ServiceError`; a store failure
raises ``ServiceError("store_failure")`` and leaves memory as it was.

Not thread-safe: call it from one thread (the event loop).
"""

from __future__ import annotations

import builtins
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsu import catalog
from rsu.clock import Clock, iso_utc
from rsu.codec.errors import CodecError
from rsu.limits import ignore
from rsu.services.base import Context, ServiceEntity
from rsu.services.defaults import RULES, SERVICE_ALIASES, ServiceRules, message_default_issues, rule_issues
from rsu.services.errors import ServiceError
from rsu.services.gpc import GpcEntity
from rsu.services.ivi import IviEntity, country_code
from rsu.services.model import TERMINATING, Entry, EntryKey, PermissionCheck, Plan, Transmission
from rsu.services.received import ReceivedHub, RxDrop, Subscription
from rsu.services.rlt import RltEntity
from rsu.services.scheduler import Scheduler
from rsu.services.store import Durability, Store, StoredEntry, StoreError
from rsu.services.tlc import TlcEntity
from rsu.services.tlm import TlmEntity

if TYPE_CHECKING:
    from rsu.codec.facilities import DecodedPdu
    from rsu.pipeline.codec import Codec

log = logging.getLogger("rsu.services")

# The catalog's services, RLT first: TLM and TLC read its intersections ("rlt", "tlm", "ivi", "tlc", "gpc")
SERVICE_ORDER = (RltEntity.name, *(name for name in catalog.SERVICES if name != RltEntity.name))


@dataclass
class ServicesConfig:
    """Configuration of the services layer (the daemon builds it from its config file)."""

    state_dir: str | Path
    station_id: int | None = None  # ItsPduHeader stationID of everything we send (None: from the payloads)
    ivi_provider: dict[str, Any] | None = None  # {"countryCode": "FR", "providerIdentifier": 57}: our IVI provider
    rules: dict[str, Any] = field(default_factory=dict)  # overrides of rsu.services.defaults.ServiceRules fields
    message_defaults: dict[str, Any] = field(default_factory=dict)  # {"ivim": {"repetition_s": 0.5, ...}, ...}
    known_transports: Iterable[str] | None = None  # names a request may use (None: not checked)
    busy_timeout_ms: int = 2000
    store_durability: Durability = "power_cut"  # rsu.services.store.DURABILITY


class ServiceLayer:
    def __init__(
        self,
        config: ServicesConfig,
        *,
        clock: Clock,
        permission_check: PermissionCheck | None = None,
        codec: Codec | None = None,
        store: Store | None = None,
        on_limit: Callable[[str], None] | None = None,
        on_skip: Callable[[str, str, int], None] | None = None,
        hub: ReceivedHub | None = None,
    ) -> None:
        """``hub``: the IS_DataProviding hub to publish on, when it must outlive this layer (the daemon
        keeps one across reloads so that subscribers and event ids carry over); default a new one."""
        if codec is None:
            from rsu.codec.facilities import get_codec

            codec = get_codec()
        rules = _rules(config.rules)
        _check_message_defaults(config.message_defaults)
        self.clock = clock
        self.codec: Codec = codec
        self.config = config
        self.store = store or Store(
            config.state_dir, busy_timeout_ms=config.busy_timeout_ms, durability=config.store_durability
        )
        self.ctx = Context(
            clock=clock,
            codec=codec,
            rules=rules,
            station_id=config.station_id,
            permission_check=permission_check,
            known_transports=frozenset(config.known_transports) if config.known_transports is not None else None,
            overrides=config.message_defaults,
            ivi_provider=_provider(config.ivi_provider),
            on_limit=on_limit if on_limit is not None else ignore,
        )
        rlt = RltEntity(self.ctx)
        entities = (rlt, TlmEntity(self.ctx, rlt), IviEntity(self.ctx), TlcEntity(self.ctx, rlt), GpcEntity(self.ctx))
        self.services: dict[str, ServiceEntity] = {e.name: e for e in entities}
        self.scheduler: Scheduler[EntryKey] = Scheduler(
            on_skip=(lambda key, reason, n: on_skip(key[0], reason, n)) if on_skip else None
        )
        self.hub = hub if hub is not None else ReceivedHub(rules.received_history, rules.subscriber_queue)
        self.hub.resize(rules.received_history, rules.subscriber_queue)
        self._wakeup: Callable[[], None] | None = None
        self._expiry_retry_at: float | None = None
        # per service: the earliest time its entity.next_event() may be due (absent: not known, ask it). Kept
        # so that a trigger or a scheduler pass does not scan every entry of every service (O(N) per message)
        self._expiry: dict[str, float | None] = {}
        self.counts: dict[str, int] = {}
        self._restore()

    # --- start-up -------------------------------------------------------------------------------
    def _restore(self) -> None:
        for code, _ in self.store.start_events:  # already logged: a lost or stale store, a rebuilt cursor file
            self._count(code)
        try:
            self.ctx.counters.update(self.store.counters())
            rows = self.store.entries()
        except StoreError:
            self.store.close()
            raise
        by_service: dict[str, list[StoredEntry]] = {}
        for row in rows:
            if row.service not in self.services:
                log.error("store entry %s/%s is of an unknown service; it is left in the store", row.service, row.id)
                self._count("restore_failed")
                continue
            by_service.setdefault(row.service, []).append(row)
        now = self.clock.now()
        for name in SERVICE_ORDER:
            entity = self.services[name]
            restored = Plan()
            for row in by_service.get(name, []):
                try:
                    restored.upserts.append(entity.restore(row))
                except (CodecError, StopIteration, KeyError, ValueError, ServiceError) as e:
                    log.error("store entry %s/%s cannot be restored (%s); it is left in the store", name, row.id, e)
                    self._count("restore_failed")
            entity.apply(restored)  # into memory, with the derived indexes (RLT intersections)
        for name in SERVICE_ORDER:
            entity = self.services[name]
            for entry in entity.entries.values():
                self._schedule(entity, entry, now, include_anchor=True)
                start, stop = entity.window(entry)
                if (
                    entry.pdus
                    and entity.interval(entry) is not None
                    and (start is None or start <= now)
                    and (stop is None or stop > now)
                ):
                    # a repeated message was off the air while rsu was down: send it once now, then on its
                    # stored grid (never a message that is not repeated, such as a SPATEM state)
                    self.scheduler.fire(entry.key, now, entry.dissemination.priority, fresh=False)
        self._expire(now)

    # --- IS_Triggering ----------------------------------------------------------------------------
    def entity(self, service: str) -> ServiceEntity:
        name = SERVICE_ALIASES.get(str(service).lower())
        if name is None:
            raise ServiceError(
                "unknown_service",
                "service",
                f"{service!r} (expected one of: {', '.join(SERVICE_ORDER)} or a message name)",
            )
        return self.services[name]

    def trigger(self, service: str, request: dict[str, Any]) -> dict[str, Any]:
        entity = self.entity(service)
        return self._run(entity, lambda now: entity.trigger(_obj(request), now))

    def trigger_spat(self, spat: dict[str, Any]) -> dict[str, Any]:
        """:class:`rsu.services.ports.SpatTriggering`: ``trigger("tlm", ...)`` of a validated SPAT body value."""
        entity = self.services[TlmEntity.name]
        assert isinstance(entity, TlmEntity)
        return self._run(entity, lambda now: entity.trigger_spat(spat, now))

    def update(self, service: str, ident: str, request: dict[str, Any]) -> dict[str, Any]:
        entity = self.entity(service)
        return self._run(entity, lambda now: entity.update(self._entry(entity, ident), _obj(request), now))

    def terminate(self, service: str, ident: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        entity = self.entity(service)
        return self._run(entity, lambda now: entity.terminate(self._entry(entity, ident), _obj(request or {}), now))

    def list(self, service: str | None = None) -> builtins.list[dict[str, Any]]:
        now = self.clock.now()
        self._expire(now)
        names = [self.entity(service).name] if service else list(SERVICE_ORDER)
        return [
            self._entry_json(self.services[n], e, now, payload=False)
            for n in names
            for e in sorted(self.services[n].entries.values(), key=lambda e: (e.created_at, e.id))
        ]

    def states(self) -> Counter[tuple[str, str]]:
        """How many entries of each (message, state) :meth:`list` would show, without making their JSON (the
        daemon's gauges read it every second)."""
        now = self.clock.now()
        self._expire(now)
        return Counter(
            (e.kind.name, self._state_of(e, entity.window(e)[0], now))
            for entity in self.services.values()
            for e in entity.entries.values()
        )

    def get(self, service: str, ident: str) -> dict[str, Any]:
        entity = self.entity(service)
        now = self.clock.now()
        self._expire(now)
        return self._entry_json(entity, self._entry(entity, ident), now, payload=True)

    def pending_requests(self) -> builtins.list[dict[str, Any]]:
        """TLC: the SREM requests currently pending (what a decision can refer to)."""
        tlc = self.services[TlcEntity.name]
        assert isinstance(tlc, TlcEntity)
        now = self.clock.now()
        return [p.to_json() for p in tlc.pending.values() if p.expires > now]

    # --- scheduling -----------------------------------------------------------------------------
    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """Called after every change that may move :meth:`next_deadline` earlier (API requests, receptions)."""
        self._wakeup = callback

    def next_deadline(self) -> float | None:
        """Absolute clock time at which :meth:`due` has something to do (None: nothing scheduled)."""
        times = [t for t in [self.scheduler.next_deadline()] if t is not None]
        for entity in self.services.values():
            t = self._next_expiry(entity)
            if t is not None:  # an expiry that failed to commit is retried no sooner than planned
                times.append(t if self._expiry_retry_at is None else max(t, self._expiry_retry_at))
        return min(times) if times else None

    def due(self, now: float | None = None, limit: int | None = None) -> builtins.list[Transmission]:
        """The transmissions due at ``now`` (fresh ones first, then by priority). ``limit`` bounds how many
        entries are served; repetitions beyond it are dropped, fresh ones wait for the next call."""
        now = self.clock.now() if now is None else now
        self._expire(now)
        out: builtins.list[Transmission] = []
        for d in self.scheduler.due(now, limit):
            service, ident = d.key
            entity = self.services[service]
            entry = entity.entries.get(ident)
            if entry is None:
                self.scheduler.remove(d.key)
                continue
            txs = entity.transmissions(entry, d)
            out.extend(txs)
            self._count("transmissions", len(txs))
        return out

    # --- IS_DataProviding ---------------------------------------------------------------------
    def on_received(
        self, pdu: DecodedPdu | bytes | bytearray, security: dict[str, Any], transport: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A received facilities PDU (``DecodedPdu`` or UPER bytes) that the security layer verified.

        ``security``: ``{"its_aid", "ssp" (hex), "signer" (hex id), "verification" ("ok" or a reason)}``;
        ``transport``: what the transport knows (name, source, GN/MQTT details). Returns the published
        event, or None when the message is not delivered (not verified, undecodable, repeated IVI).
        """
        return self.receive(pdu, security, transport)[0]

    def receive(
        self, pdu: DecodedPdu | bytes | bytearray, security: dict[str, Any], transport: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, RxDrop | None]:
        """:meth:`on_received` that also says why a message was not delivered: (event, None) or (None, reason)."""
        now = self.clock.now()
        if (security or {}).get("verification") != "ok":  # only what the security layer accepted
            self._count("rx_not_verified")
            return None, RxDrop.NOT_VERIFIED
        if isinstance(pdu, (bytes, bytearray)):
            try:
                pdu = self.codec.decode(bytes(pdu))
            except CodecError:
                self._count("rx_undecodable")
                return None, RxDrop.DECODE_ERROR
        kind, value = pdu.kind, pdu.value
        entity = self.services[SERVICE_ALIASES[kind.name]]
        try:
            jer = self.codec.to_jer(kind, value)
            self._expiry.pop(entity.name, None)  # receptions change entity state outside plans (TLC requests)
            extra, plan = entity.on_received(kind, value, now)
        except Exception:  # peer input must never stop the daemon (e.g. an unknown extension alternative)
            log.warning("received %s not delivered: cannot be processed", kind.pdu, exc_info=True)
            self._count("rx_unprocessable")
            return None, RxDrop.UNPROCESSABLE
        if plan:
            try:
                self._commit(entity, plan, now)
            except ServiceError as e:
                log.error("%s: change after a received %s not applied: %s", entity.name, kind.pdu, e)
        collection = extra.get("ivi", {}).get("collection")
        if collection in ("duplicate", "outdated"):
            self._count(f"rx_ivi_{collection}")
            return None, (RxDrop.IVI_REPEAT if collection == "duplicate" else RxDrop.IVI_OUTDATED)
        event = {
            "type": "received",
            "service": entity.name,
            "message": kind.name,
            "received_at": iso_utc(now),
            "station_id": value["header"]["stationID"],
            "pdu": jer,
            "security": _security_json(security),
            "transport": dict(transport or {}),
            **extra,
        }
        self._count("rx_delivered")
        return self.hub.publish(event), None

    def subscribe(
        self, services: Iterable[str] | None = None, types: Iterable[str] | None = None, last_id: int | None = None
    ) -> Subscription:
        names = None
        if services:
            names = []
            for s in services:
                names.append(self.entity(s).name)
        return self.hub.subscribe(names, types, last_id)

    def stats(self) -> dict[str, Any]:
        return {
            "entries": {n: len(self.services[n].entries) for n in SERVICE_ORDER},
            "scheduler": self.scheduler.stats(),
            "received": self.hub.stats(),
            "counts": dict(self.counts),
        }

    def close(self) -> None:
        self.store.close()

    # --- internals ----------------------------------------------------------------------------
    def _entry(self, entity: ServiceEntity, ident: str) -> Entry:
        entry = entity.entries.get(ident)
        if entry is None:
            raise ServiceError("unknown_id", "id", f"no active {entity.name.upper()} message {ident!r}")
        return entry

    def _run(self, entity: ServiceEntity, compute: Callable[[float], Plan]) -> dict[str, Any]:
        now = self.clock.now()
        self._expire(now)
        plan = compute(now)
        self._commit(entity, plan, now)
        answer = {"service": entity.name, **plan.result, "warnings": plan.warnings}
        ident = plan.result.get("id")
        if ident in entity.entries:
            answer["next_transmission"] = _iso(self.scheduler.next_time((entity.name, ident)))
        return answer

    def _commit(self, entity: ServiceEntity, plan: Plan, now: float) -> None:
        new_ids = {e.id for e in plan.upserts if e.id not in entity.entries}
        if new_ids:
            total = sum(len(s.entries) for s in self.services.values()) + len(new_ids) - len(plan.deletes)
            if total > self.ctx.rules.max_entries:
                raise ServiceError(
                    "capacity", "", f"the store-and-repeat table holds at most {self.ctx.rules.max_entries} entries"
                )
        if not plan.memory_only:
            try:
                self.store.apply(
                    [entity.stored(e) for e in plan.upserts], [(entity.name, i) for i in plan.deletes], plan.counters
                )
            except StoreError as e:
                self._count("store_failures")
                raise ServiceError("store_failure", "", str(e)) from None
        self.ctx.counters.update(plan.counters)
        entity.apply(plan)
        self._note_expiry(entity, plan)
        for ident in plan.deletes:
            self.scheduler.remove((entity.name, ident))
        for ident in plan.reschedule:
            entry = entity.entries.get(ident)
            if entry is not None:
                self._schedule(entity, entry, now, include_anchor=ident not in plan.fire)
        for ident, at in plan.fire.items():
            entry = entity.entries.get(ident)
            if entry is not None:
                self.scheduler.fire((entity.name, ident), at, entry.dissemination.priority)
        for event in plan.events:
            self.hub.publish(dict(event, type="ended" if event.get("event") == "ended" else "service"))
        if self._wakeup is not None and (plan.fire or plan.reschedule or plan.deletes):
            self._wakeup()

    def _schedule(self, entity: ServiceEntity, entry: Entry, now: float, include_anchor: bool) -> None:
        key = (entity.name, entry.id)
        interval = entity.interval(entry)
        if interval is None or not entry.pdus:
            return
        start, stop = entity.window(entry)
        anchor = entry.anchor if entry.anchor is not None else max(now, start or now)
        self.scheduler.set_periodic(
            key,
            interval=interval,
            anchor=anchor,
            now=now,
            start=start,
            stop=stop,
            priority=entry.dissemination.priority,
            include_anchor=include_anchor,
        )

    def _expire(self, now: float) -> None:
        if self._expiry_retry_at is not None and now < self._expiry_retry_at:
            return
        self._expiry_retry_at = None
        for name in SERVICE_ORDER:
            entity = self.services[name]
            due = self._next_expiry(entity)
            if due is None or due > now:
                continue
            self._expiry.pop(name, None)
            plan = entity.expire(now)
            if not plan:
                continue
            try:
                self._commit(entity, plan, now)
            except ServiceError as e:
                log.error("%s: expiry not applied (%s); retrying in 1 s", name, e)
                self._expiry_retry_at = now + 1.0
                return

    def _next_expiry(self, entity: ServiceEntity) -> float | None:
        """``entity.next_event()``, asked once and kept until the entity changes (see :meth:`_note_expiry`)."""
        if entity.name not in self._expiry:
            self._expiry[entity.name] = entity.next_event()
        return self._expiry[entity.name]

    def _note_expiry(self, entity: ServiceEntity, plan: Plan) -> None:
        """After ``plan`` was applied: an entity whose next event is the earliest end time of its entries (the
        base rule) keeps its known time, moved earlier by the upserted entries' (never later: at worst
        :meth:`_expire` asks the entity once for nothing); any other entity is asked again."""
        name = entity.name
        if name not in self._expiry:
            return
        if type(entity).next_event is not ServiceEntity.next_event:
            del self._expiry[name]
            return
        known = self._expiry[name]
        for e in plan.upserts:
            t = entity.end_time(e)
            if t is not None and (known is None or t < known):
                known = t
        self._expiry[name] = known

    @staticmethod
    def _state_of(entry: Entry, start: float | None, now: float) -> str:
        """The entry's state as :meth:`list` shows it (``start``: its window's)."""
        if entry.state == TERMINATING:
            return "terminating"
        if not entry.pdus:
            return "idle"  # TLM after a restart: active, waiting for the application's next state
        if start is not None and start > now:
            return "pending"
        return "active"

    def _entry_json(self, entity: ServiceEntity, entry: Entry, now: float, *, payload: bool) -> dict[str, Any]:
        start, stop = entity.window(entry)
        state = self._state_of(entry, start, now)
        diss = entry.dissemination.to_display()
        params = entry.dissemination.to_params(entry.kind, entry.area)
        dest = params.destination
        diss["effective_destination"] = (
            None
            if dest is None
            else {
                "latitude": dest.latitude,
                "longitude": dest.longitude,
                "shape": dest.shape,
                "a": dest.a,
                "b": dest.b,
                "angle": dest.angle,
            }
        )
        diss["repetition_interval_s"] = entity.interval(entry)
        out = {
            "service": entity.name,
            "id": entry.id,
            "message": entry.kind.name,
            "state": state,
            "identification": entry.identification,
            "dissemination": diss,
            "generation": entry.generation,
            "fragments": len(entry.pdus),
            "created_at": iso_utc(entry.created_at),
            "updated_at": iso_utc(entry.updated_at),
            "window": {"start": _iso(start), "stop": _iso(stop)},
            "next_transmission": _iso(self.scheduler.next_time(entry.key)),
        }
        if payload:
            out["payload"] = self.codec.to_jer(entry.kind, entry.value) if entry.value is not None else None
            out["pdus_hex"] = [p.hex() for p in entry.pdus]
        return out

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def _raise_issues(issues: list[tuple[str, str]]) -> None:
    if issues:
        raise ValueError("; ".join(f"{path}: {message}" for path, message in issues))


def _rules(overrides: dict[str, Any]) -> ServiceRules:
    """ServiceRules with ``overrides``; ValueError lists every problem (field path, allowed range)."""
    _raise_issues(rule_issues(overrides))
    return replace(RULES, **overrides) if overrides else RULES


def _check_message_defaults(overrides: dict[str, Any]) -> None:
    _raise_issues(message_default_issues(overrides))


def _obj(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        raise ServiceError("bad_request", "", "the request must be a JSON object")
    return request


def _iso(t: float | None) -> str | None:
    return iso_utc(t) if t is not None else None


def _security_json(sec: dict[str, Any] | None) -> dict[str, Any]:
    sec = dict(sec or {})
    for k in ("ssp", "signer"):
        if isinstance(sec.get(k), (bytes, bytearray)):
            sec[k] = bytes(sec[k]).hex()
    return sec


def _provider(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """Config form of a ServiceProviderId -> Python value ({"countryCode": (bytes, 10), ...})."""
    if obj is None:
        return None
    cc = obj["countryCode"]
    if isinstance(cc, str) and len(cc) == 2 and cc.isalpha():
        code = country_code(cc)
    elif isinstance(cc, str):
        code = (bytes.fromhex(cc), 10)
    else:
        code = cc
    return {"countryCode": code, "providerIdentifier": int(obj["providerIdentifier"])}


__all__ = ["ServiceLayer", "ServicesConfig"]
