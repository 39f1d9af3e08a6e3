"""What every service entity shares: the context it runs in, payload intake, and the common entry life cycle.

An entity is sans-I/O: it reads its own in-memory state and the context (clock, codec, config,
counters, permission check), and *returns* a :class:`~rsu.services.model.Plan`. It never writes
the store nor the scheduler; the facade commits a plan to the store and only then applies it
(:meth:`ServiceEntity.apply`), so a failed commit leaves the entity exactly as it was.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rsu.catalog import MessageKind
from rsu.clock import Clock, iso_utc
from rsu.codec.errors import CodecError, DecodeError, InvalidValueError
from rsu.codec.values import validate as validate_value
from rsu.limits import ignore
from rsu.services.defaults import MessageDefaults, ServiceRules, message_defaults
from rsu.services.errors import ServiceError, prefixed
from rsu.services.model import (
    ACTIVE,
    Entry,
    EntryKey,
    PermissionCheck,
    Plan,
    Transmission,
    value_from_json,
)
from rsu.services.params import Dissemination, parse_dissemination
from rsu.services.scheduler import Due
from rsu.services.store import StoredEntry
from rsu.transports.base import GeoArea

log = logging.getLogger("rsu.services")


@dataclass
class Context:
    """What entities may read. ``counters`` is the facade's committed view of the store's counters."""

    clock: Clock
    codec: Any  # rsu.codec.facilities.FacilitiesCodec
    rules: ServiceRules
    station_id: int | None
    permission_check: PermissionCheck | None
    known_transports: frozenset[str] | None
    overrides: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    ivi_provider: dict[str, Any] | None = None  # this RSU's ServiceProviderId (Python value), if configured
    on_limit: Callable[[str], None] = ignore  # a bound of received state was reached (rsu.limits)

    def defaults(self, kind: MessageKind) -> MessageDefaults:
        return message_defaults(kind.name, self.overrides)

    def counter(self, name: str, plan: Plan | None = None) -> tuple[int, str | None] | None:
        """A counter as committed, or as already changed by ``plan`` (a plan reads its own writes)."""
        if plan is not None and name in plan.counters:
            return plan.counters[name]
        return self.counters.get(name)


class ServiceEntity:
    """Base of the five entities. Subclasses set ``name`` and ``kinds`` and override the hooks."""

    name = ""
    kinds: tuple[MessageKind, ...] = ()

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.entries: dict[str, Entry] = {}

    # --- payload intake -----------------------------------------------------------------------
    def kind_of_payload(self, raw: Any, path: str) -> MessageKind:
        """Which of this service's message types the payload is (one type: that one)."""
        if len(self.kinds) == 1:
            return self.kinds[0]
        body_keys = {k.body: k for k in self.kinds}
        ids = {k.message_id: k for k in self.kinds}
        if isinstance(raw, dict):
            header = raw.get("header")
            if isinstance(header, dict) and isinstance(header.get("messageID"), int):
                kind = ids.get(header["messageID"])
                if kind is None:
                    raise ServiceError(
                        "validation",
                        f"{path}.header.messageID",
                        f"{header['messageID']} is not a {self.name.upper()} message "
                        f"({', '.join(f'{k.pdu} {k.message_id}' for k in self.kinds)})",
                    )
                return kind
            found = [body_keys[k] for k in raw if k in body_keys]
            if len(found) == 1:
                return found[0]
            raise ServiceError(
                "validation",
                path,
                "cannot tell the message type: give header.messageID or one of " + ", ".join(body_keys),
            )
        if isinstance(raw, str):
            data = _hex(raw, path)
            if len(data) >= 2 and data[1] in ids:
                return ids[data[1]]
            raise ServiceError(
                "validation",
                path,
                f"messageID {data[1] if len(data) > 1 else '?'} is not one of "
                + ", ".join(f"{k.pdu} {k.message_id}" for k in self.kinds),
            )
        raise ServiceError("validation", path, "expected the JER JSON object of the PDU, or its UPER encoding as hex")

    def own_header(self, kind: MessageKind) -> dict[str, Any]:
        """The ItsPduHeader of a PDU this station makes: the catalog's protocol version and message id, the
        configured station id (0 when none is configured)."""
        return {
            "protocolVersion": kind.protocol_version,
            "messageID": kind.message_id,
            "stationID": self.ctx.station_id or 0,
        }

    def parse_payload(
        self,
        raw: Any,
        kind: MessageKind,
        *,
        path: str = "payload",
        placeholders: Callable[[dict[str, Any]], None] | None = None,
        warnings: list[str] | None = None,
    ) -> dict[str, Any]:
        """Request payload (JER object or UPER hex) -> validated Python value of the whole PDU.

        The ItsPduHeader may be left out (it is filled from the catalog and the configured station id).
        ``placeholders`` puts values into service-owned mandatory JER members the application may omit
        (they are overwritten by the entity afterwards); it gets a shallow copy of the body and copies
        any nested object or list it changes (``raw`` is never changed).
        """
        codec = self.ctx.codec
        value: dict[str, Any]
        if isinstance(raw, dict):
            # the request is never changed: the header and the body are shallow copies (placeholders
            # copy what they fill in), and from_jer builds the value from new objects
            obj = dict(raw)
            header = obj.get("header", {})
            if not isinstance(header, dict):
                raise ServiceError("validation", f"{path}.header", "expected an object")
            obj["header"] = {**self.own_header(kind), **header}
            if placeholders is not None and isinstance(obj.get(kind.body), dict):
                obj[kind.body] = body = dict(obj[kind.body])
                placeholders(body)
            try:
                _, value = codec.from_jer(obj, kind)
            except InvalidValueError as e:
                raise ServiceError("validation", prefixed(e.path, path), e.reason) from None
            except CodecError as e:
                raise ServiceError("validation", path, str(e)) from None
        elif isinstance(raw, str):
            data = _hex(raw, path)
            try:
                decoded = codec.decode(data)
            except DecodeError as e:
                raise ServiceError("validation", path, f"not a valid UPER {kind.pdu}: {e}") from None
            if decoded.kind is not kind:
                raise ServiceError("validation", path, f"is a {decoded.kind.pdu}, expected {kind.pdu}")
            value = decoded.value
        else:
            raise ServiceError(
                "validation", path, "expected the JER JSON object of the PDU, or its UPER encoding as hex"
            )
        sid = self.ctx.station_id
        if sid is not None and value["header"]["stationID"] != sid:
            if isinstance(raw, dict) and "stationID" in (raw.get("header") or {}) and warnings is not None:
                warnings.append(
                    f"{path}.header.stationID: {value['header']['stationID']} replaced by this station's id {sid}"
                )
            value["header"]["stationID"] = sid
        return value

    def encode(self, kind: MessageKind, value: dict[str, Any], path: str = "payload", *, intake: bool = False) -> bytes:
        """The UPER PDU of ``value``; errors as :class:`ServiceError` naming the field path.

        ``intake=True``: the value came from :meth:`parse_payload` (or a validated decode), so it was
        validated once at the edge and only the fields the service fills in since can differ. Those are
        in range by construction (timestamps of the clock, revisions and identification numbers from
        bounded counters) except the header's stationID (the configured one), which is checked here;
        the body is not validated again.
        """
        codec = self.ctx.codec
        if intake:
            schema = codec.schema
            header = schema.pdu(kind.pdu).member_map["header"]
            try:
                validate_value(schema, header.node, value.get("header"), "header")
            except InvalidValueError as e:
                raise ServiceError("validation", prefixed(e.path, path), e.reason) from None
        try:
            data: bytes = codec.encode(value, kind, validate=not intake)
            return data
        except InvalidValueError as e:
            raise ServiceError("validation", prefixed(e.path, path), e.reason) from None
        except CodecError as e:
            raise ServiceError("validation", path, str(e)) from None

    @staticmethod
    def content_of(entry: Entry) -> dict[str, Any]:
        """The value of an entry that always holds one (an IVI, a MAPEM); a TLM entry after a restart holds none."""
        value = entry.value  # read once: a packed entry (Entry.pack) decodes it at each read
        if value is None:
            raise ServiceError("not_active", "", f"{entry.kind.pdu} {entry.id} holds no content")
        return value

    def check_permission(self, kind: MessageKind, value: dict[str, Any], path: str = "payload") -> None:
        check = self.ctx.permission_check
        if check is None:
            return
        missing = check(kind, value)
        if missing:
            raise ServiceError("ssp_not_permitted", path, f"SSP not permitted: {missing}")

    def dissemination(
        self, req: dict[str, Any], kind: MessageKind, base: Dissemination | None, now: float
    ) -> Dissemination:
        d = self.ctx.defaults(kind)
        start = base if base is not None else Dissemination.defaults(d)
        return parse_dissemination(
            req.get("dissemination"), start, d, known_transports=self.ctx.known_transports, now=now
        )

    # --- request hooks (override) -------------------------------------------------------------
    def trigger(self, req: dict[str, Any], now: float) -> Plan:
        raise NotImplementedError

    def update(self, entry: Entry, req: dict[str, Any], now: float) -> Plan:
        raise NotImplementedError

    def terminate(self, entry: Entry, req: dict[str, Any], now: float) -> Plan:
        """Default termination: stop sending and forget the entry."""
        plan = Plan(deletes=[entry.id])
        plan.result = {"id": entry.id, "terminated": "stopped"}
        return plan

    # --- time (override where the content carries its own validity) ---------------------------
    def window(self, entry: Entry) -> tuple[float | None, float | None]:
        """(start, stop) of transmission; stop ends the entry."""
        return entry.dissemination.start, entry.dissemination.stop

    def interval(self, entry: Entry) -> float | None:
        return entry.dissemination.repetition_interval_s

    def end_time(self, entry: Entry) -> float | None:
        return self.window(entry)[1]

    def expire(self, now: float) -> Plan:
        """Entries whose time is over end (default: at the stop of their window)."""
        plan = Plan()
        for e in self.entries.values():
            end = self.end_time(e)
            if end is not None and end <= now:
                plan.deletes.append(e.id)
                plan.events.append(self.ended_event(e, "stop time reached", now))
        return plan

    def next_event(self) -> float | None:
        times = [t for e in self.entries.values() if (t := self.end_time(e)) is not None]
        return min(times) if times else None

    def ended_event(self, entry: Entry, reason: str, now: float) -> dict[str, Any]:
        return {"event": "ended", "service": self.name, "entry": entry.id, "reason": reason, "at": iso_utc(now)}

    # --- transmissions ------------------------------------------------------------------------
    def transmissions(self, entry: Entry, due: Due[EntryKey]) -> list[Transmission]:
        if not entry.pdus:
            return []
        params = entry.dissemination.to_params(entry.kind, entry.area)
        n = len(entry.pdus)
        return [
            Transmission(
                self.name,
                entry.id,
                entry.kind,
                pdu,
                params,
                due.fresh,
                entry.generation,
                (i + 1) if n > 1 else None,
                due.slot,
                due.priority,
                entry.requirement,
            )
            for i, pdu in enumerate(entry.pdus)
        ]

    # --- persistence ----------------------------------------------------------------------------
    def stored(self, entry: Entry) -> StoredEntry:
        payload = None
        if entry.value is not None and self.persist_payload(entry):
            payload = (
                entry.pdus[0]
                if len(entry.pdus) == 1
                else self.ctx.codec.encode(entry.value, entry.kind, validate=False)
            )
        return StoredEntry(
            entry.service,
            entry.id,
            entry.kind.name,
            entry.state,
            payload,
            entry.dissemination.to_json(),
            entry.anchor,
            entry.identification,
            entry.data,
            entry.generation,
            entry.created_at,
            entry.updated_at,
            # no value_json: serialising the value cost more than the rest of the write, and a restart decodes
            # the payload with the generated codec (decode(encode(v)) == v) in about the time reading the JSON took
        )

    def persist_payload(self, entry: Entry) -> bool:
        return True

    def restore(self, row: StoredEntry) -> Entry:
        """Rebuild an entry from its row (the payload is decoded once; repetitions reuse its bytes). A row
        written by an earlier version may carry its value as JSON too: that is read instead of decoding."""
        kind = next(k for k in self.kinds if k.name == row.kind)
        value = None
        if row.payload is not None:
            value = _cached_value(row)
            if value is None:
                value = self.ctx.codec.decode(row.payload).value
        entry = Entry(
            row.service,
            row.id,
            kind,
            value,
            (),
            Dissemination.from_json(row.dissemination),
            row.identification,
            row.state,
            row.data,
            row.generation,
            row.created_at,
            row.updated_at,
            row.anchor,
        )
        return self.restored(entry, row)

    def restored(self, entry: Entry, row: StoredEntry) -> Entry:
        """Fill what is derived from the content (cached PDUs, area). Override for fragmented content."""
        pdus = (row.payload,) if row.payload is not None else ()
        return entry.evolve(pdus=pdus, area=self.derive_area(entry.kind, entry.value) if entry.value else None)

    # --- receive side (override) ------------------------------------------------------------------
    def on_received(self, kind: MessageKind, value: dict[str, Any], now: float) -> tuple[dict[str, Any], Plan | None]:
        """Service processing of a received PDU: extra event members, and a plan when it changes entries."""
        return {}, None

    # --- state --------------------------------------------------------------------------------
    def apply(self, plan: Plan) -> None:
        """Take a committed plan into memory. Cannot fail (plain assignments)."""
        for e in plan.upserts:
            self.entries[e.id] = e
        for ident in plan.deletes:
            self.entries.pop(ident, None)

    # --- helpers ------------------------------------------------------------------------------
    def derive_area(self, kind: MessageKind, value: dict[str, Any] | None) -> GeoArea | None:
        return None

    def area_from(self, kind: MessageKind, points: list[tuple[int, int]]) -> GeoArea | None:
        """A circle covering DSRC/ITS positions (1e-7 degree units) plus the message's default radius."""
        radius = self.ctx.defaults(kind).area_radius_m
        pts = [
            (lat / 1e7, lon / 1e7) for lat, lon in points if abs(lat) <= 900000000 and abs(lon) <= 1800000000
        ]  # beyond: "unavailable"
        if radius is None or not pts:
            return None
        clat = sum(p[0] for p in pts) / len(pts)
        clon = sum(p[1] for p in pts) / len(pts)
        k = math.cos(math.radians(clat))
        spread = max(math.hypot((p[0] - clat) * 111_320.0, (p[1] - clon) * 111_320.0 * k) for p in pts)
        return GeoArea(latitude=clat, longitude=clon, shape="circle", a=min(65535.0, radius + spread))

    def plan_update(
        self,
        plan: Plan,
        entry: Entry,
        value: dict[str, Any],
        pdus: tuple[bytes, ...],
        diss: Dissemination,
        changed: bool,
        identification: Callable[[], dict[str, Any]],
        now: float,
    ) -> Plan:
        """The end of an update: content and parameters as they were answer ``unchanged``; else the entry
        evolves (a new generation when the content changed) and is scheduled from its start."""
        if not changed and diss == entry.dissemination:
            plan.result = {"id": entry.id, "identification": entry.identification, "unchanged": True}
            return plan
        t0 = max(now, diss.start or now)
        new = entry.evolve(
            value=value,
            pdus=pdus,
            dissemination=diss,
            updated_at=now,
            anchor=t0,
            generation=entry.generation + (1 if changed else 0),
            identification=identification(),
            area=self.derive_area(entry.kind, value),
        )
        plan.schedule_entry(new, t0, fresh=changed, changed=changed)
        return plan

    def new_entry(
        self,
        entry_id: str,
        kind: MessageKind,
        value: dict[str, Any],
        pdus: tuple[bytes, ...],
        diss: Dissemination,
        identification: dict[str, Any],
        now: float,
        **kw: Any,
    ) -> Entry:
        return Entry(
            self.name,
            entry_id,
            kind,
            value,
            pdus,
            diss,
            identification,
            ACTIVE,
            kw.pop("data", {}),
            kw.pop("generation", 1),
            now,
            now,
            kw.pop("anchor", None),
            self.derive_area(kind, value),
            **kw,
        )


def _cached_value(row: StoredEntry) -> dict[str, Any] | None:
    """The value saved with the row (fast), or None when there is none, it is unusable or it is not the
    payload's (then the payload, the authority, is decoded)."""
    if not row.value_json or row.payload is None:
        return None
    try:
        value = value_from_json(row.value_json, row.payload)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) and "header" in value else None


def _hex(text: str, path: str) -> bytes:
    cleaned = "".join(text.split())
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise ServiceError(
            "validation", path, "not a hex string (a JSON object gives JER, a string gives UPER hex)"
        ) from None
    if not data:
        raise ServiceError("validation", path, "empty")
    return data


def intersection_key(ref: dict[str, Any]) -> str:
    """IntersectionReferenceID -> ``"1201"`` or ``"7.1201"`` (region.id)."""
    return f"{ref['region']}.{ref['id']}" if "region" in ref else str(ref["id"])


def reject_unknown(req: dict[str, Any], allowed: set[str], path: str = "") -> None:
    if not isinstance(req, dict):
        raise ServiceError("bad_request", path, "expected a JSON object")
    for k in req:
        if k not in allowed:
            raise ServiceError(
                "validation", prefixed(k, path), f"unknown member (expected: {', '.join(sorted(allowed))})"
            )


def next_revision(
    prev: tuple[int, str | None] | None, content_hash: str, supplied: int | None, modulo: int = 128
) -> tuple[int, bool]:
    """A revision-like counter that changes when, and only when, the content changes.

    ``prev`` is the committed (value, content hash). The first time, the application's value
    seeds the counter (so a revision carried over from another system continues), else 0. After
    that the service owns it: the same content keeps the value, changed content gets the previous
    value plus 1 (modulo ``modulo``), whatever the application wrote (an application value could
    bring back a revision that vehicles already cached for other content). Returns (value, changed).
    """
    if prev is None:
        return (supplied if supplied is not None else 0), True
    value, old_hash = prev
    if old_hash == content_hash:
        return value, False
    return (value + 1) % modulo, True
