"""TLM: the Traffic Light Manoeuvre service (SPATEM).

* Each application trigger (or update) of an intersection's state is one fresh SPATEM; the
  facility never repeats a state (no stale state on the air, TS 103 301 5.4.2). The first trigger
  of an intersection starts its stream (the store keeps that it is active and how it is sent,
  never the state itself); terminate stops it.
* The service fills the timestamps: ``spat.timeStamp`` and each intersection's ``moy`` /
  ``timeStamp`` (MinuteOfTheYear / DSecond of the trigger time), so successive SPATEMs are in
  time order (TP TLM_GEN_EVGN_BV_02).
* Consistency with the active MAPEM of the intersection (TP TLM_GEN_MSGF_BV_03/05): the
  revision must be the MAPEM's (filled from it when the application leaves it out) and the
  signal groups must be those the MAPEM defines. ``tlm_map_check`` says reject / warn / off.
* Per-intersection rate limit (default 10 Hz, interval T = 0.1 s): a trigger that comes too early
  is sent at the earliest allowed time (``deferred_by_s`` in the answer); a newer trigger before
  then replaces it (the freshest state wins). The standard asks only for "a valid transmission
  rate"; the rule is ours (:data:`rsu.catalog.RATE_TOLERANCE`, :data:`rsu.catalog.RATE_MIN_SPACING`):
  a token bucket of two sends refilled at the rate (a send may come up to one T ahead of the
  rate's schedule: never more than the rate in the long run) and no two sends less than T/2 apart
  (no bursts). Why not "T after the last send": a controller sends every T exactly, so one late
  state (the daemon was busy) would delay every later state of its intersection by as much, and the
  delay ratchets up to the largest seen; "at most 10 in any 1 s" carries it too, one second on.
  The bucket absorbs a delay of up to one T; its state is dropped when the stream ends.
* The entry id is the list of intersections: ``"1201"``, ``"7.1201+1202"``.
"""

from __future__ import annotations

from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind
from rsu.services.base import Context, ServiceEntity, intersection_key, reject_unknown
from rsu.services.errors import ServiceError
from rsu.services.model import Entry, EntryKey, Plan, Transmission
from rsu.services.rlt import RltEntity
from rsu.services.scheduler import Due
from rsu.services.timefmt import moy_dsecond
from rsu.transports.base import GeoArea


class TlmEntity(ServiceEntity):
    name = catalog.SPATEM.service.lower()  # "tlm"
    kinds = (catalog.SPATEM,)

    def __init__(self, ctx: Context, rlt: RltEntity) -> None:
        super().__init__(ctx)
        self.rlt = rlt
        # intersection key -> (the rate's schedule: when its next SPATEM is due at the rate, its last SPATEM's time)
        self._rate: dict[str, tuple[float, float]] = {}

    def trigger(self, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "dissemination"})
        if "payload" not in req:
            raise ServiceError("validation", "payload", "missing (the SPATEM content)")
        plan = Plan()
        return self._start(self._intake(req["payload"], plan, now), req, plan, now)

    def trigger_spat(self, spat: dict[str, Any], now: float) -> Plan:
        """The value port (:meth:`rsu.services.layer.ServiceLayer.trigger_spat`): ``spat`` is the Python value of a
        SPAT body whose every member its maker validated (:func:`rsu.integrations.spat.spat_value`), an
        intersection's ``revision`` left out to take the active MAPEM's. The same plan, answer and errors as
        :meth:`trigger` with that body as the JER payload, without reading JER or validating it again."""
        plan = Plan()
        return self._start(self._intake_value(spat, plan, now), {}, plan, now)

    def _start(self, value: dict[str, Any], req: dict[str, Any], plan: Plan, now: float) -> Plan:
        """A trigger's intaken value: a fresh state of the stream of its intersections, or the start of one."""
        entry_id = "+".join(intersection_key(i["id"]) for i in value["spat"]["intersections"])
        existing = self.entries.get(entry_id)
        if existing is not None:
            return self._generate(existing, value, req, plan, now)
        for other in self.entries.values():
            overlap = set(other.id.split("+")) & set(entry_id.split("+"))
            if overlap:
                raise ServiceError(
                    "already_active",
                    "payload.spat.intersections",
                    f"intersection {sorted(overlap)[0]} is already in active SPATEM stream {other.id!r}",
                )
        diss = self.dissemination(req, catalog.SPATEM, None, now)
        self.check_permission(catalog.SPATEM, value)
        pdu = self.encode(catalog.SPATEM, value, intake=True)
        entry = self.new_entry(entry_id, catalog.SPATEM, value, (pdu,), diss, self._identification(value), now)
        plan.upserts.append(entry)
        plan.fire[entry_id] = self._earliest(entry_id, now, diss.start)
        plan.result = {"id": entry_id, "identification": entry.identification, "started": True}
        return plan

    def update(self, entry: Entry, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "dissemination"})
        plan = Plan()
        if "payload" not in req:
            diss = self.dissemination(req, catalog.SPATEM, entry.dissemination, now)
            plan.upserts.append(entry.evolve(dissemination=diss, updated_at=now))
            plan.result = {"id": entry.id, "identification": entry.identification}
            return plan
        value = self._intake(req["payload"], plan, now)
        entry_id = "+".join(intersection_key(i["id"]) for i in value["spat"]["intersections"])
        if entry_id != entry.id:
            raise ServiceError("validation", "payload.spat.intersections", f"describes {entry_id!r}, not {entry.id!r}")
        return self._generate(entry, value, req, plan, now)

    # --- internals ----------------------------------------------------------------------------
    def _generate(self, entry: Entry, value: dict[str, Any], req: dict[str, Any], plan: Plan, now: float) -> Plan:
        diss = self.dissemination(req, catalog.SPATEM, entry.dissemination, now)
        self.check_permission(catalog.SPATEM, value)
        pdu = self.encode(catalog.SPATEM, value, intake=True)
        new = entry.evolve(
            value=value,
            pdus=(pdu,),
            dissemination=diss,
            updated_at=now,
            generation=entry.generation + 1,
            identification=self._identification(value),
            area=self.derive_area(catalog.SPATEM, value),
        )
        plan.upserts.append(new)
        plan.memory_only = diss == entry.dissemination
        at = self._earliest(entry.id, now, diss.start)
        plan.fire[entry.id] = at
        plan.result = {"id": entry.id, "identification": new.identification}
        if at > now:
            plan.result["deferred_by_s"] = round(at - now, 3)
        return plan

    def _earliest(self, entry_id: str, now: float, start: float | None) -> float:
        """The earliest time a new state of ``entry_id`` may go out: not before ``now`` (nor ``start``), and
        for each of its intersections not more than RATE_TOLERANCE intervals ahead of the rate's schedule nor
        less than RATE_MIN_SPACING intervals after its last SPATEM."""
        interval = self.ctx.defaults(catalog.SPATEM).min_interval_s
        ahead, spacing = catalog.RATE_TOLERANCE * interval, catalog.RATE_MIN_SPACING * interval
        at = max(now, start or now)
        for k in entry_id.split("+"):
            state = self._rate.get(k)
            if state is not None:
                at = max(at, state[0] - ahead, state[1] + spacing)
        return at

    def _intake(self, raw: Any, plan: Plan, now: float) -> dict[str, Any]:
        omitted: set[int] = set()

        def placeholders(body: dict[str, Any]) -> None:  # body: a shallow copy; the request is left as it is
            intersections = body.get("intersections")
            if not isinstance(intersections, list):
                return
            body["intersections"] = intersections = list(intersections)
            for i, ix in enumerate(intersections):
                if isinstance(ix, dict) and "revision" not in ix:
                    omitted.add(i)
                    intersections[i] = {**ix, "revision": 0}

        value = self.parse_payload(raw, catalog.SPATEM, placeholders=placeholders, warnings=plan.warnings)
        return self._complete(value, omitted, plan, now)

    def _intake_value(self, spat: dict[str, Any], plan: Plan, now: float) -> dict[str, Any]:
        """:meth:`_intake` of a validated SPAT body value: the PDU as :meth:`parse_payload` makes it (header
        filled, a left-out revision's placeholder at its place in schema order), new containers for what is
        filled in (the caller's value is not changed)."""
        header = self.own_header(catalog.SPATEM)
        intersections = list(spat["intersections"])
        omitted: set[int] = set()
        for i, ix in enumerate(intersections):
            fresh: dict[str, Any] = {}
            for k, v in ix.items():
                fresh[k] = v
                if k == "id" and "revision" not in ix:
                    fresh["revision"] = 0
                    omitted.add(i)
            intersections[i] = fresh
        return self._complete({"header": header, "spat": {**spat, "intersections": intersections}}, omitted, plan, now)

    def _complete(self, value: dict[str, Any], omitted: set[int], plan: Plan, now: float) -> dict[str, Any]:
        """What the service fills in and checks of an intaken SPATEM (``omitted``: the intersections whose
        revision is the active MAPEM's): timestamps, revision, the MAP consistency check."""
        spat = value["spat"]
        moy, dsec = moy_dsecond(now)
        spat["timeStamp"] = moy
        seen = set()
        mode = self.ctx.rules.tlm_map_check
        for i, ix in enumerate(spat["intersections"]):
            key = intersection_key(ix["id"])
            path = f"payload.spat.intersections[{i}]"
            if key in seen:
                raise ServiceError("validation", f"{path}.id", f"intersection {key} appears twice")
            seen.add(key)
            ix["moy"] = moy
            ix["timeStamp"] = dsec
            info = self.rlt.intersection(key)
            if i in omitted:
                if info is None:
                    raise ServiceError(
                        "validation",
                        f"{path}.revision",
                        f"missing, and no active MAPEM of intersection {key} to take it from",
                    )
                ix["revision"] = info[1]
            if mode == "off":
                continue
            if info is None:
                plan.warnings.append(
                    f"{path}: no active MAPEM of intersection {key}; revision and signal groups not checked"
                )
                continue
            problems = []
            if ix["revision"] != info[1]:
                problems.append(
                    (
                        "revision_mismatch",
                        f"{path}.revision",
                        f"{ix['revision']} differs from revision {info[1]} of intersection {key} in the "
                        f"active MAPEM {info[0]!r}",
                    )
                )
            groups = {s["signalGroup"] for s in ix["states"]}
            missing, unknown = sorted(info[2] - groups), sorted(groups - info[2])
            if missing or unknown:
                parts = []
                if missing:
                    parts.append(f"signal groups {missing} defined by the MAPEM are missing")
                if unknown:
                    parts.append(f"signal groups {unknown} are not defined by the MAPEM")
                problems.append(("signal_group_mismatch", f"{path}.states", f"intersection {key}: " + "; ".join(parts)))
            for code, p, reason in problems:
                if mode == "reject":
                    raise ServiceError(code, p, reason)
                plan.warnings.append(f"{p}: {reason}")
        return value

    def _identification(self, value: dict[str, Any]) -> dict[str, Any]:
        spat = value["spat"]
        return {
            "intersections": [
                {"id": intersection_key(i["id"]), "revision": i["revision"]} for i in spat["intersections"]
            ],
            "moy": spat.get("timeStamp"),
            "timeStamp": spat["intersections"][0].get("timeStamp"),
        }

    def derive_area(self, kind: MessageKind, value: dict[str, Any] | None) -> GeoArea | None:
        if not value:
            return None
        pts = []
        for ix in value["spat"]["intersections"]:
            info = self.rlt.intersection(intersection_key(ix["id"]))
            if info is not None:
                pts.append((info[3]["lat"], info[3]["long"]))
        return self.area_from(kind, pts)

    def persist_payload(self, entry: Entry) -> bool:
        return False  # a SPATEM state is never repeated, so never restored either

    def interval(self, entry: Entry) -> float | None:
        return None

    def transmissions(self, entry: Entry, due: Due[EntryKey]) -> list[Transmission]:
        if not due.fresh:
            return []
        out = super().transmissions(entry, due)
        if out:
            interval = self.ctx.defaults(catalog.SPATEM).min_interval_s
            for k in entry.id.split("+"):
                state = self._rate.get(k)
                self._rate[k] = (max(state[0], due.slot) + interval if state else due.slot + interval, due.slot)
        return out

    def apply(self, plan: Plan) -> None:
        """Take the plan into memory; an ended stream's intersections forget their rate state (a new stream of
        them starts clean, and the table holds only active intersections)."""
        super().apply(plan)
        for ident in plan.deletes:
            for k in ident.split("+"):
                self._rate.pop(k, None)
