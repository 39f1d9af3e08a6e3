"""IVI: the Infrastructure to Vehicle Information service (IVIM).

Sending (TS 103 301 / TP IVI_GEN_EV*):

* **new**: the service allocates an ``iviIdentificationNumber`` that none of the provider's
  active IVIs uses (a persisted cursor moves forward, so an id is not reused soon, not even
  across a restart), sets ``iviStatus`` = new and ``timeStamp`` = now. An application may ask
  for a specific number; it gets it when free.
* **update**: same number, ``iviStatus`` = update; ``timeStamp`` refreshed when, and only when,
  the content changes (validity changes included). Parameter-only updates change no byte.
* ``validFrom`` / ``validTo`` start and stop transmission by themselves (with the dissemination
  start/stop, whichever is narrower). Repetition within the configured interval bounds.
* **termination**: by request (``stop``: silence), by validTo (silence), by **cancellation**
  (default: an IVIM with iviStatus = cancellation, the same number and the last timeStamp,
  repeated for ``ivi_termination_repeat_s``), and **negation** of another provider's IVI
  (trigger with iviStatus = negation: its provider, its number, the timeStamp of the latest one
  received; needs the SSP negation permission).

Receiving: :class:`IviCollection`, keyed by (serviceProviderId, iviIdentificationNumber):
new / update / duplicate / outdated / cancellation / negation (TP IVI_RCV_EVUP_BV_01..06).

Entry ids: ``"FR57-310"`` (country letters + issuer id, number); negations ``"neg-DE12-17"``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind
from rsu.clock import iso_utc, timestamp_its, timestamp_its_to_posix
from rsu.services.base import Context, ServiceEntity, reject_unknown
from rsu.services.errors import ServiceError
from rsu.services.model import ACTIVE, TERMINATING, Entry, Plan
from rsu.transports.base import GeoArea

STATUS_NAMES = {0: "new", 1: "update", 2: "cancellation", 3: "negation"}
NEW, UPDATE, CANCELLATION, NEGATION = 0, 1, 2, 3

_ITA2 = {
    "A": "11000",
    "B": "10011",
    "C": "01110",
    "D": "10010",
    "E": "10000",
    "F": "10110",
    "G": "01011",
    "H": "00101",
    "I": "01100",
    "J": "11010",
    "K": "11110",
    "L": "01001",
    "M": "00111",
    "N": "00110",
    "O": "00011",
    "P": "01101",
    "Q": "11101",
    "R": "01010",
    "S": "10100",
    "T": "00001",
    "U": "11100",
    "V": "01111",
    "W": "11001",
    "X": "10111",
    "Y": "10101",
    "Z": "10001",
}
_ITA2_REV = {v: k for k, v in _ITA2.items()}


def country_letters(code: tuple[bytes, int]) -> str | None:
    """10-bit ISO 14816 CountryCode (two ITA2 letters) -> "FR"; None when the bits are not two letters."""
    data, nbits = code
    bits = "".join(f"{b:08b}" for b in data)[:nbits]
    if len(bits) != 10:
        return None
    a, b = _ITA2_REV.get(bits[:5]), _ITA2_REV.get(bits[5:])
    return a + b if a and b else None


def country_code(letters: str) -> tuple[bytes, int]:
    """ "FR" -> the 10-bit CountryCode value (bytes, 10)."""
    bits = _ITA2[letters[0].upper()] + _ITA2[letters[1].upper()]
    n = int(bits, 2) << 6
    return (n.to_bytes(2, "big"), 10)


def provider_key(provider: dict[str, Any]) -> str:
    """ServiceProviderId -> ``"FR57"`` (or the country bits in hex when they are not ITA2 letters)."""
    letters = country_letters(provider["countryCode"])
    if letters:
        return f"{letters}{provider['providerIdentifier']}"
    return f"x{provider['countryCode'][0].hex()}_{provider['providerIdentifier']}"


def provider_json(provider: dict[str, Any]) -> dict[str, Any]:
    letters = country_letters(provider["countryCode"])
    return {
        "countryCode": letters or provider["countryCode"][0].hex(),
        "providerIdentifier": provider["providerIdentifier"],
    }


def _content(value: dict[str, Any]) -> Any:
    """What counts as IVI content: everything but the header, timeStamp and iviStatus."""
    ivi = copy.copy(value["ivi"])
    ivi["mandatory"] = {k: v for k, v in ivi["mandatory"].items() if k not in ("timeStamp", "iviStatus")}
    return ivi


def check_references(ivi: dict[str, Any], path: str = "payload.ivi") -> None:
    """Containers must reference what exists (TP IVI_GEN_LOC_BV_01, GENAPP_BV_01/02/05, TEXT_BV_01/04, RCC_BV_01):
    zone ids defined by a geographic location container (also those of road-configuration lanes), layout ids
    defined by a layout container, and per general IVI container part at least one relevance zone and one
    road sign code (GENAPP_BV_04). Two location containers never share a reference position (LOC_BV_03)."""
    opt = ivi.get("optional") or []
    zones: set[int] = set()
    layouts: set[int] = set()
    origins: dict[tuple[Any, ...], int] = {}
    for i, (alt, c) in enumerate(opt):
        if alt == "glc":
            zones.update(part["zoneId"] for part in c["parts"])
            ref = c["referencePosition"]
            at = (ref["latitude"], ref["longitude"])
            if at in origins:  # TP IVI_GEN_LOC_BV_03
                raise ServiceError(
                    "validation",
                    f"{path}.optional[{i}].glc.referencePosition",
                    f"the reference position of optional[{origins[at]}] again: zones that share a "
                    "reference position belong in one geographic location container",
                )
            origins[at] = i
        elif alt == "lac":
            layouts.add(c["layoutId"])
    for i, (alt, c) in enumerate(opt):
        if alt not in ("giv", "tc", "rcc"):
            continue
        for j, part in enumerate(c):
            where = f"{path}.optional[{i}].{alt}[{j}]"
            referrers = [(where, part)]
            if alt == "rcc":  # lanes of a road configuration may name their own zones
                referrers += [
                    (f"{where}.laneConfiguration[{n}]", lane)
                    for n, lane in enumerate(part.get("laneConfiguration") or [])
                ]
            for spot, item in referrers:
                for member in ("detectionZoneIds", "relevanceZoneIds", "driverAwarenessZoneIds"):
                    for k, z in enumerate(item.get(member) or []):
                        if z not in zones:
                            raise ServiceError(
                                "validation",
                                f"{spot}.{member}[{k}]",
                                f"zone {z} is not defined by a geographic location container "
                                f"(defined: {sorted(zones) or 'none'})",
                            )
            if alt == "giv" and not part.get("relevanceZoneIds"):
                raise ServiceError(
                    "validation",
                    f"{where}.relevanceZoneIds",
                    "missing: a general IVI container part references at least one relevance zone",
                )
            if alt == "giv" and not part.get("roadSignCodes"):  # SIZE(1..4, ...): the extension would allow 0
                raise ServiceError(
                    "validation",
                    f"{where}.roadSignCodes",
                    "empty: a general IVI container part carries at least one road sign code",
                )
            if alt in ("giv", "tc") and "layoutId" in part and part["layoutId"] not in layouts:
                raise ServiceError(
                    "validation",
                    f"{where}.layoutId",
                    f"layout {part['layoutId']} is not defined by a layout container "
                    f"(defined: {sorted(layouts) or 'none'})",
                )


class IviEntity(ServiceEntity):
    name = catalog.IVIM.service.lower()  # "ivi"
    kinds = (catalog.IVIM,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.collection = IviCollection(ctx.rules.ivi_received_max, ctx.on_limit)

    # --- requests -----------------------------------------------------------------------------
    def trigger(self, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "dissemination"})
        if "payload" not in req:
            raise ServiceError("validation", "payload", "missing (the IVIM content)")
        plan = Plan()
        value, supplied = self._intake(req["payload"], plan, None)
        status = supplied.get("iviStatus")
        if status == NEGATION:
            return self._negation(value, supplied, req, plan, now)
        if status not in (None, NEW):
            raise ServiceError(
                "validation",
                "payload.ivi.mandatory.iviStatus",
                f"{STATUS_NAMES.get(status, status)} is not a new IVI: update an active IVI with an "
                "update request, end it with a terminate request",
            )
        m = value["ivi"]["mandatory"]
        own = self.ctx.ivi_provider
        if own is not None and m["serviceProviderId"] != own:
            raise ServiceError(
                "validation",
                "payload.ivi.mandatory.serviceProviderId",
                f"{provider_key(m['serviceProviderId'])} is not this station's provider {provider_key(own)}",
            )
        pkey = provider_key(m["serviceProviderId"])
        number = supplied.get("iviIdentificationNumber")
        if number is not None:
            self._check_number(pkey, number)
        else:
            number = self._allocate(pkey, plan)
        m["iviIdentificationNumber"] = number
        m["iviStatus"] = NEW
        m["timeStamp"] = timestamp_its(now)
        self._check_validity(m, now)
        check_references(value["ivi"])
        diss = self.dissemination(req, catalog.IVIM, None, now)
        self.check_permission(catalog.IVIM, value)
        pdu = self.encode(catalog.IVIM, value, intake=True)
        entry_id = f"{pkey}-{number}"
        entry = self.new_entry(
            entry_id, catalog.IVIM, value, (pdu,), diss, {}, now, data={"provider": pkey, "number": number}
        )
        start, _ = self.window(entry)
        t0 = max(now, start or now)
        entry = entry.evolve(anchor=t0, identification=self._identification(value))
        plan.schedule_entry(entry, t0)
        return plan

    def update(self, entry: Entry, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "dissemination"})
        if entry.state != ACTIVE:
            raise ServiceError("not_active", "", f"IVI {entry.id} is {entry.state}; it cannot be updated")
        plan = Plan()
        diss = self.dissemination(req, catalog.IVIM, entry.dissemination, now)
        current = self.content_of(entry)
        value, changed = current, False
        if "payload" in req:
            value, supplied = self._intake(req["payload"], plan, entry)
            m = value["ivi"]["mandatory"]
            old = current["ivi"]["mandatory"]
            if m["serviceProviderId"] != old["serviceProviderId"]:
                raise ServiceError(
                    "validation",
                    "payload.ivi.mandatory.serviceProviderId",
                    f"an update keeps the provider {entry.data['provider']}",
                )
            if supplied.get("iviIdentificationNumber") not in (None, entry.data["number"]):
                raise ServiceError(
                    "validation",
                    "payload.ivi.mandatory.iviIdentificationNumber",
                    f"{supplied['iviIdentificationNumber']}: an update keeps the number "
                    f"{entry.data['number']} (TS 103 301: same iviIdentificationNumber)",
                )
            if supplied.get("iviStatus") not in (None, UPDATE):
                raise ServiceError(
                    "validation",
                    "payload.ivi.mandatory.iviStatus",
                    f"{STATUS_NAMES.get(supplied['iviStatus'], supplied['iviStatus'])}: an update "
                    "carries iviStatus update (end an IVI with a terminate request)",
                )
            m["iviIdentificationNumber"] = entry.data["number"]
            # equality of two values of the codec's value form (same schema, same types per member) is
            # equality of their canonical texts, without serialising either
            changed = _content(value) != _content(current)
            if changed:
                self._check_validity(m, now)
                check_references(value["ivi"])
                m["iviStatus"] = UPDATE
                m["timeStamp"] = timestamp_its(now)
                self.check_permission(catalog.IVIM, value)
            else:
                value = current
        if not changed and diss == entry.dissemination:
            plan.result = {"id": entry.id, "identification": entry.identification, "unchanged": True}
            return plan
        pdus = (self.encode(catalog.IVIM, value, intake=True),) if changed else entry.pdus
        new = entry.evolve(
            value=value,
            pdus=pdus,
            dissemination=diss,
            updated_at=now,
            generation=entry.generation + (1 if changed else 0),
            identification=self._identification(value),
            area=self.derive_area(entry.kind, value),
        )
        start, stop = self.window(new)
        if stop is not None and stop <= now:
            raise ServiceError("validation", "dissemination.stop", "the update would end the IVI now; terminate it")
        t0 = max(now, start or now)
        new = new.evolve(anchor=t0)
        plan.schedule_entry(new, t0, fresh=changed, changed=changed)
        return plan

    def terminate(self, entry: Entry, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"mode"})
        mode = req.get("mode", "cancellation")
        if mode not in ("cancellation", "stop"):
            raise ServiceError(
                "validation",
                "mode",
                f"{mode!r}: an IVI is ended by 'cancellation' (default) or 'stop' "
                "(negation is for another provider's IVI: trigger an IVIM with iviStatus negation)",
            )
        plan = Plan()
        start, _ = self.window(entry)
        never_sent = entry.state == ACTIVE and start is not None and start > now
        if mode == "stop" or never_sent:
            plan.deletes.append(entry.id)
            plan.result = {"id": entry.id, "terminated": "stopped"}
            plan.events.append(self.ended_event(entry, "terminated by request", now))
            return plan
        if entry.state == TERMINATING:
            plan.result = {
                "id": entry.id,
                "identification": entry.identification,
                "terminated": "cancellation",
                "unchanged": True,
            }
            return plan
        current = self.content_of(entry)
        old = current["ivi"]["mandatory"]
        m = dict(old, iviStatus=CANCELLATION)  # same number, provider and the last timeStamp
        value = {"header": current["header"], "ivi": {"mandatory": m}}
        self.check_permission(catalog.IVIM, value)
        pdu = self.encode(catalog.IVIM, value, intake=True)
        until = now + self.ctx.rules.ivi_termination_repeat_s
        if "validTo" in old:
            until = min(until, max(now, timestamp_its_to_posix(old["validTo"])))
        new = entry.evolve(
            value=value,
            pdus=(pdu,),
            state=TERMINATING,
            updated_at=now,
            anchor=now,
            generation=entry.generation + 1,
            data=dict(entry.data, terminate_until=until),
            identification=self._identification(value),
        )
        plan.upserts.append(new)
        plan.fire[entry.id] = now
        plan.reschedule.append(entry.id)
        plan.result = {
            "id": entry.id,
            "identification": new.identification,
            "terminated": "cancellation",
            "repeated_until": iso_utc(until),
        }
        return plan

    # --- negation -----------------------------------------------------------------------------
    def _negation(
        self, value: dict[str, Any], supplied: dict[str, Any], req: dict[str, Any], plan: Plan, now: float
    ) -> Plan:
        m = value["ivi"]["mandatory"]
        path = "payload.ivi.mandatory"
        own = self.ctx.ivi_provider
        if own is not None and m["serviceProviderId"] == own:
            raise ServiceError(
                "validation",
                f"{path}.serviceProviderId",
                "negation withdraws another provider's IVI; end your own with a cancellation",
            )
        if supplied.get("iviIdentificationNumber") is None:
            raise ServiceError(
                "validation", f"{path}.iviIdentificationNumber", "missing (the number of the IVI to negate)"
            )
        pkey = provider_key(m["serviceProviderId"])
        number = m["iviIdentificationNumber"]
        latest = self.collection.latest(pkey, number, now)
        if latest is not None:
            m["timeStamp"] = latest
        elif supplied.get("timeStamp") is None:
            raise ServiceError(
                "validation",
                f"{path}.timeStamp",
                f"missing, and no IVI {pkey}-{number} was received "
                "to take it from (a negation carries the timeStamp of the latest IVI it negates)",
            )
        m["iviStatus"] = NEGATION
        entry_id = f"neg-{pkey}-{number}"
        if entry_id in self.entries:
            raise ServiceError(
                "already_active", f"{path}.iviIdentificationNumber", f"IVI {pkey}-{number} is already being negated"
            )
        diss = self.dissemination(req, catalog.IVIM, None, now)
        self.check_permission(catalog.IVIM, value)
        pdu = self.encode(catalog.IVIM, value, intake=True)
        until = now + self.ctx.rules.ivi_termination_repeat_s
        entry = self.new_entry(
            entry_id,
            catalog.IVIM,
            value,
            (pdu,),
            diss,
            self._identification(value),
            now,
            data={"provider": pkey, "number": number, "terminate_until": until},
            anchor=now,
        )
        entry = entry.evolve(state=TERMINATING)
        plan.upserts.append(entry)
        plan.fire[entry_id] = now
        plan.reschedule.append(entry_id)
        plan.result = {"id": entry_id, "identification": entry.identification, "repeated_until": iso_utc(until)}
        return plan

    # --- internals ----------------------------------------------------------------------------
    def _intake(self, raw: Any, plan: Plan, entry: Entry | None) -> tuple[dict[str, Any], dict[str, Any]]:
        supplied: dict[str, Any] = {}

        def placeholders(body: dict[str, Any]) -> None:
            m = body.get("mandatory")
            if not isinstance(m, dict):
                return
            body["mandatory"] = m = dict(m)  # body is a shallow copy: copy what is filled in
            for k, default in (("iviIdentificationNumber", 1), ("iviStatus", 0), ("timeStamp", 0)):
                supplied[k] = m.get(k)
                m.setdefault(k, default)

        value = self.parse_payload(raw, catalog.IVIM, placeholders=placeholders, warnings=plan.warnings)
        m = value["ivi"]["mandatory"]
        if isinstance(raw, str):
            supplied = {k: m.get(k) for k in ("iviIdentificationNumber", "iviStatus", "timeStamp")}
        if supplied.get("iviStatus") is not None and supplied["iviStatus"] not in STATUS_NAMES:
            raise ServiceError(
                "validation",
                "payload.ivi.mandatory.iviStatus",
                f"{supplied['iviStatus']} is not one of 0 new, 1 update, 2 cancellation, 3 negation",
            )
        return value, supplied

    def _check_number(self, pkey: str, number: int) -> None:
        rules = self.ctx.rules
        if not rules.ivi_id_min <= number <= rules.ivi_id_max:
            raise ServiceError(
                "validation",
                "payload.ivi.mandatory.iviIdentificationNumber",
                f"{number} is outside {rules.ivi_id_min}..{rules.ivi_id_max}",
            )
        if f"{pkey}-{number}" in self.entries:
            raise ServiceError(
                "id_in_use",
                "payload.ivi.mandatory.iviIdentificationNumber",
                f"{number} is used by the active IVI {pkey}-{number}",
            )

    def _allocate(self, pkey: str, plan: Plan) -> int:
        rules = self.ctx.rules
        span = rules.ivi_id_max - rules.ivi_id_min + 1
        name = f"ivi.next.{pkey}"
        cur = self.ctx.counter(name, plan)
        start = cur[0] if cur else rules.ivi_id_min
        for step in range(span):
            n = rules.ivi_id_min + (start - rules.ivi_id_min + step) % span
            if f"{pkey}-{n}" not in self.entries:
                nxt = rules.ivi_id_min + (n - rules.ivi_id_min + 1) % span
                plan.counters[name] = (nxt, None)
                return n
        raise ServiceError(
            "id_exhausted",
            "payload.ivi.mandatory.iviIdentificationNumber",
            f"all {span} numbers of provider {pkey} are in use",
        )

    def _check_validity(self, m: dict[str, Any], now: float) -> None:
        path = "payload.ivi.mandatory"
        vf, vt = m.get("validFrom"), m.get("validTo")
        if vt is not None and timestamp_its_to_posix(vt) <= now:
            raise ServiceError(
                "validation", f"{path}.validTo", f"{vt} ({iso_utc(timestamp_its_to_posix(vt))}) is not in the future"
            )
        if vf is not None and vt is not None and vf >= vt:
            raise ServiceError("validation", f"{path}.validFrom", f"{vf} is not before validTo {vt}")

    def _identification(self, value: dict[str, Any]) -> dict[str, Any]:
        m = value["ivi"]["mandatory"]
        out = {
            "serviceProviderId": provider_json(m["serviceProviderId"]),
            "iviIdentificationNumber": m["iviIdentificationNumber"],
            "iviStatus": STATUS_NAMES.get(m["iviStatus"], m["iviStatus"]),
            "timeStamp": m.get("timeStamp"),
        }
        for k in ("validFrom", "validTo"):
            if k in m:
                out[k] = iso_utc(timestamp_its_to_posix(m[k]))
        return out

    def window(self, entry: Entry) -> tuple[float | None, float | None]:
        d = entry.dissemination
        if entry.state == TERMINATING:
            return None, entry.data.get("terminate_until")
        m = entry.value["ivi"]["mandatory"] if entry.value else {}
        starts = [
            t for t in (d.start, timestamp_its_to_posix(m["validFrom"]) if "validFrom" in m else None) if t is not None
        ]
        stops = [t for t in (d.stop, timestamp_its_to_posix(m["validTo"]) if "validTo" in m else None) if t is not None]
        return (max(starts) if starts else None), (min(stops) if stops else None)

    def expire(self, now: float) -> Plan:
        plan = Plan()
        for e in self.entries.values():
            end = self.end_time(e)
            if end is None or end > now:
                continue
            plan.deletes.append(e.id)
            if e.state == TERMINATING:
                reason = "termination repeated long enough"
            elif e.dissemination.stop is not None and e.dissemination.stop <= now:
                reason = "stop time reached"
            else:
                reason = "validTo reached"
            plan.events.append(self.ended_event(e, reason, now))
        return plan

    def derive_area(self, kind: MessageKind, value: dict[str, Any] | None) -> GeoArea | None:
        if not value:
            return None
        pts = []
        for c in value["ivi"].get("optional") or []:
            if c[0] == "glc":
                rp = c[1]["referencePosition"]
                pts.append((rp["latitude"], rp["longitude"]))
        return self.area_from(kind, pts)

    # --- receive side -------------------------------------------------------------------------
    def on_received(self, kind: MessageKind, value: dict[str, Any], now: float) -> tuple[dict[str, Any], Plan | None]:
        cls, key = self.collection.classify(value, now)
        return {"ivi": {"collection": cls, "serviceProviderId": key[0], "iviIdentificationNumber": key[1]}}, None


class IviCollection:
    """Received IVIs keyed by (provider, number): the receive-side collection management.

    Bounded: at most ``max_items``; when full, the IVI heard least recently is forgotten and
    ``on_limit("ivi-collection")`` is called. Items leave when their validTo has passed."""

    PRUNE_EVERY_S = 1.0

    def __init__(self, max_items: int = 4096, on_limit: Callable[[str], None] | None = None) -> None:
        self._items: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()  # least recently heard first
        self.max_items = max(1, max_items)
        self.on_limit = on_limit or (lambda name: None)
        self._pruned_at: float | None = None

    def latest(self, pkey: str, number: int, now: float) -> int | None:
        item = self._get((pkey, number), now)
        return item["timeStamp"] if item else None

    def _get(self, key: tuple[str, int], now: float) -> dict[str, Any] | None:
        self._prune(now)
        item = self._items.get(key)
        if item is not None and item["validTo"] is not None and item["validTo"] <= now:
            del self._items[key]
            return None
        return item

    def classify(self, value: dict[str, Any], now: float) -> tuple[str, tuple[str, int]]:
        """new / update / duplicate / outdated / cancellation / negation (TP IVI_RCV_EVUP_BV_01..06)."""
        m = value["ivi"]["mandatory"]
        key = (provider_key(m["serviceProviderId"]), m["iviIdentificationNumber"])
        ts, status = m.get("timeStamp"), m["iviStatus"]
        known = self._get(key, now)
        if status in (CANCELLATION, NEGATION):
            self._items.pop(key, None)
            return ("cancellation" if status == CANCELLATION else "negation"), key
        if known is not None and ts is not None and known["timeStamp"] is not None:
            if ts == known["timeStamp"]:
                return "duplicate", key
            if ts < known["timeStamp"]:
                return "outdated", key
        valid_to = timestamp_its_to_posix(m["validTo"]) if "validTo" in m else None
        self._items.pop(key, None)
        self._items[key] = {"timeStamp": ts, "status": status, "validTo": valid_to, "received_at": now}
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
            self.on_limit("ivi-collection")
        if known is None or status == NEW:
            return "new", key
        return "update", key

    def _prune(self, now: float) -> None:
        if self._pruned_at is not None and self._pruned_at <= now < self._pruned_at + self.PRUNE_EVERY_S:
            return
        self._pruned_at = now
        for k in [k for k, v in self._items.items() if v["validTo"] is not None and v["validTo"] <= now]:
            del self._items[k]

    def __len__(self) -> int:
        return len(self._items)
