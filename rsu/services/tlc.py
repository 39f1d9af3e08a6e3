"""TLC: the Traffic Light Control service (SREM in, SSEM out; SREM out as a relay).

Receive side: every received SREM updates the table of **pending requests**, keyed
``"<vehicle>:<intersection>:<requestID>"`` (``"station-2104711:1201:5"``), and reaches the
applications (IS_DataProviding) with the requestor, its role and the request ids. A request
ends when the requestor cancels it (requestType priorityCancellation), when its service
window (minute/second + duration) is over, or ``srem_request_timeout_s`` after it was last
heard when it gave no window.

SSEM: the application's **decision** on a pending request (``{"decision": {"request": KEY,
"status": "granted"}}``) becomes a SignalStatusPackage in the SSEM of that intersection (entry
``"ssem-1201"``), with the requester echoed from the SREM (id, request id, sequence number,
role). The SSEM is sent on every change and repeated while one of its requests is active; when
a request ends its package is removed, and the SSEM stops with its last request. Sequence numbers
(``ssm.sequenceNumber`` and each ``SignalStatus.sequenceNumber``) change when, and only when, the
content does. An application may instead give a whole SSEM as payload.

SREM generation (relay): an SREM payload is sent at once and repeated at its interval until
terminated (entry ``"srem-station-2104711"``); ``sequenceNumber`` changes with the content.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind
from rsu.clock import iso_utc
from rsu.codec import values as V
from rsu.codec.errors import InvalidValueError
from rsu.services.base import Context, ServiceEntity, intersection_key, next_revision, reject_unknown
from rsu.services.errors import ServiceError
from rsu.services.model import Entry, Plan, canonical_hash
from rsu.services.params import Dissemination
from rsu.services.rlt import RltEntity
from rsu.services.timefmt import moy_dsecond, moy_to_posix
from rsu.transports.base import GeoArea


def vehicle_key(vid: tuple[str, Any]) -> str:
    """VehicleID CHOICE -> ``"station-2104711"`` or ``"temp-0a1b2c3d"``."""
    alt, v = vid
    return f"station-{v}" if alt == "stationID" else f"temp-{bytes(v).hex()}"


@dataclass
class PendingRequest:
    key: str
    vehicle: tuple[str, Any]  # VehicleID value
    intersection: dict[str, Any]  # IntersectionReferenceID value
    request_id: int
    request_type: str
    sequence_number: int | None
    role: str | None
    inbound: Any
    outbound: Any
    minute: int | None
    second: int | None
    duration: int | None
    first_heard: float
    last_heard: float
    expires: float

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "intersection": intersection_key(self.intersection),
            "requestID": self.request_id,
            "requestType": self.request_type,
            "inBoundLane": _jer_access(self.inbound),
            "expires": iso_utc(self.expires),
        }
        if self.outbound is not None:
            out["outBoundLane"] = _jer_access(self.outbound)
        for k in ("minute", "second", "duration"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


def _jer_access(v: tuple[str, Any]) -> dict[str, Any]:
    return {v[0]: v[1]}


class TlcEntity(ServiceEntity):
    name = catalog.SSEM.service.lower()  # "tlc"
    kinds = (catalog.SSEM, catalog.SREM)

    def __init__(self, ctx: Context, rlt: RltEntity) -> None:
        super().__init__(ctx)
        self.rlt = rlt
        self.pending: dict[str, PendingRequest] = {}

    # --- requests -----------------------------------------------------------------------------
    def trigger(self, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "dissemination", "decision"})
        if ("payload" in req) == ("decision" in req):
            raise ServiceError("validation", "payload", "give either a payload (an SSEM or SREM) or a decision")
        if "decision" in req:
            return self._decide(req, now)
        kind = self.kind_of_payload(req["payload"], "payload")
        plan = Plan()
        value = self.parse_payload(req["payload"], kind, placeholders=_placeholders(kind), warnings=plan.warnings)
        entry_id = self._id_of(kind, value)
        if entry_id in self.entries:
            raise ServiceError("already_active", "payload", f"{kind.pdu} {entry_id!r} is already active (update it)")
        if kind is catalog.SSEM:
            for ix in entry_id[len("ssem-") :].split("+"):
                other = self._ssem_of(ix)
                if other is not None:
                    raise ServiceError(
                        "already_active",
                        "payload.ssm.status",
                        f"intersection {ix} is already answered by SSEM {other.id!r}",
                    )
        diss = self.dissemination(req, kind, None, now)
        links = self._links_for(kind, value) if kind is catalog.SSEM else {}
        return self._put(None, entry_id, kind, value, diss, plan, now, links)

    def update(self, entry: Entry, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "dissemination", "decision"})
        if "decision" in req:
            if entry.kind is not catalog.SSEM:
                raise ServiceError("validation", "decision", "a decision updates an SSEM, not an SREM")
            return self._decide(req, now, entry)
        plan = Plan()
        diss = self.dissemination(req, entry.kind, entry.dissemination, now)
        if "payload" not in req:
            if diss == entry.dissemination:
                plan.result = {"id": entry.id, "identification": entry.identification, "unchanged": True}
                return plan
            return self._put(
                entry, entry.id, entry.kind, copy.deepcopy(entry.content), diss, plan, now, entry.data.get("links", {})
            )
        kind = self.kind_of_payload(req["payload"], "payload")
        if kind is not entry.kind:
            raise ServiceError("validation", "payload", f"entry {entry.id} is an {entry.kind.pdu}, not an {kind.pdu}")
        value = self.parse_payload(req["payload"], kind, placeholders=_placeholders(kind), warnings=plan.warnings)
        if self._id_of(kind, value) != entry.id:
            raise ServiceError("validation", "payload", f"describes {self._id_of(kind, value)!r}, not {entry.id!r}")
        links = self._links_for(kind, value) if kind is catalog.SSEM else {}
        return self._put(entry, entry.id, kind, value, diss, plan, now, links)

    def terminate(self, entry: Entry, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"request"})
        if "request" in req:
            if entry.kind is not catalog.SSEM:
                raise ServiceError("validation", "request", "only an SSEM holds requests")
            key = req["request"]
            if not isinstance(key, str) or not _package_index(entry.value, key):
                raise ServiceError("unknown_request", "request", f"{key!r} is not answered in SSEM {entry.id}")
            return self._drop_requests(entry, {key}, now, "terminated by request")
        return super().terminate(entry, req, now)

    # --- decisions ----------------------------------------------------------------------------
    def _decide(self, req: dict[str, Any], now: float, entry: Entry | None = None) -> Plan:
        d = req["decision"]
        reject_unknown(d, {"request", "status", "minute", "second", "duration", "inboundOn", "outboundOn"}, "decision")
        key = d.get("request")
        if not isinstance(key, str):
            raise ServiceError("validation", "decision.request", "missing (the key of a pending SREM request)")
        pending = self.pending.get(key)
        if pending is None or pending.expires <= now:
            raise ServiceError("unknown_request", "decision.request", f"no pending SREM request {key!r}")
        schema = self.ctx.codec.schema
        pkg: dict[str, Any] = {
            "requester": {
                "id": pending.vehicle,
                "request": pending.request_id,
                "sequenceNumber": pending.sequence_number or 0,
            }
        }
        if pending.role is not None:
            pkg["requester"]["role"] = pending.role
        types = {
            "inboundOn": "IntersectionAccessPoint",
            "outboundOn": "IntersectionAccessPoint",
            "minute": "MinuteOfTheYear",
            "second": "DSecond",
            "duration": "DSecond",
            "status": "PrioritizationResponseStatus",
        }
        given: dict[str, Any] = {}
        for k, t in types.items():
            if k in d:
                try:
                    given[k] = V.from_jer(schema, schema.named("DSRC", t), d[k], f"decision.{k}")
                except InvalidValueError as e:
                    raise ServiceError("validation", e.path, e.reason) from None
        if "status" not in given:
            raise ServiceError("validation", "decision.status", "missing (e.g. granted, rejected, processing)")
        pkg["inboundOn"] = given.get("inboundOn", pending.inbound)
        if "outboundOn" in given or pending.outbound is not None:
            pkg["outboundOn"] = given.get("outboundOn", pending.outbound)
        for k in ("minute", "second", "duration"):
            v = given.get(k, getattr(pending, k))
            if v is not None:
                pkg[k] = v
        pkg["status"] = given["status"]
        ix = intersection_key(pending.intersection)
        current = self._ssem_of(ix)
        if entry is not None and entry is not current:
            raise ServiceError(
                "validation", "decision.request", f"request {key} is for intersection {ix}, not for SSEM {entry.id}"
            )
        entry = current
        entry_id = entry.id if entry is not None else f"ssem-{ix}"
        plan = Plan()
        if entry is None:
            value: dict[str, Any] = {
                "header": self.own_header(catalog.SSEM),
                "ssm": {"second": 0, "status": [{"sequenceNumber": 0, "id": pending.intersection, "sigStatus": [pkg]}]},
            }
            diss = self.dissemination(req, catalog.SSEM, None, now)
            links = {key: {"expires": pending.expires}}
        else:
            value = copy.deepcopy(entry.content)
            status = next(s for s in value["ssm"]["status"] if intersection_key(s["id"]) == ix)
            idx = _package_index(value, key)
            if idx:
                status["sigStatus"][idx[0][1]] = pkg
            else:
                if len(status["sigStatus"]) >= 32:
                    raise ServiceError("validation", "decision.request", f"SSEM {entry.id} already answers 32 requests")
                status["sigStatus"].append(pkg)
            diss = self.dissemination(req, catalog.SSEM, entry.dissemination, now)
            links = dict(entry.data.get("links", {}), **{key: {"expires": pending.expires}})
        return self._put(entry, entry_id, catalog.SSEM, value, diss, plan, now, links)

    # --- common write path --------------------------------------------------------------------
    def _put(
        self,
        entry: Entry | None,
        entry_id: str,
        kind: MessageKind,
        value: dict[str, Any],
        diss: Dissemination,
        plan: Plan,
        now: float,
        links: dict[str, Any],
    ) -> Plan:
        changed = self._stamp(entry, entry_id, kind, value, plan, now)  # always True without an entry
        if not changed and entry is not None:
            value = entry.content
        self.check_permission(kind, value)
        pdus = entry.pdus if not changed and entry is not None else (self.encode(kind, value),)
        ident = self._identification(kind, value)
        anchor = max(now, diss.start or now)
        if entry is None:
            new = self.new_entry(entry_id, kind, value, pdus, diss, ident, now, data={"links": links}, anchor=anchor)
        else:
            if not changed and diss == entry.dissemination and links == entry.data.get("links", {}):
                plan.result = {"id": entry.id, "identification": entry.identification, "unchanged": True}
                return plan
            new = entry.evolve(
                value=value,
                pdus=pdus,
                dissemination=diss,
                identification=ident,
                updated_at=now,
                generation=entry.generation + (1 if changed else 0),
                data=dict(entry.data, links=links),
                anchor=anchor,
                area=self.derive_area(kind, value),
            )
        plan.upserts.append(new)
        if changed:
            plan.fire[entry_id] = anchor
        plan.reschedule.append(entry_id)
        plan.result = {"id": entry_id, "identification": ident}
        return plan

    def _stamp(
        self, entry: Entry | None, entry_id: str, kind: MessageKind, value: dict[str, Any], plan: Plan, now: float
    ) -> bool:
        """Set sequence numbers and timestamps; return whether the content changed."""
        body = value[kind.body]
        moy, dsec = moy_dsecond(now)
        if kind is catalog.SSEM:
            for s in body["status"]:
                ix = intersection_key(s["id"])
                h = canonical_hash({k: v for k, v in s.items() if k != "sequenceNumber"})
                name = f"tlc.ssem.status.{ix}"
                seq, ch = next_revision(self.ctx.counter(name, plan), h, None)
                s["sequenceNumber"] = seq
                if ch:
                    plan.counters[name] = (seq, h)
        content = {k: v for k, v in body.items() if k not in ("timeStamp", "second", "sequenceNumber")}
        h = canonical_hash(content)
        name = f"tlc.{kind.name}.seq.{entry_id}"
        seq, counter_changed = next_revision(self.ctx.counter(name, plan), h, None)
        changed = True
        if entry is not None and entry.value is not None:
            old = {
                k: v for k, v in entry.value[kind.body].items() if k not in ("timeStamp", "second", "sequenceNumber")
            }
            changed = canonical_hash(old) != h
        body["sequenceNumber"] = seq
        if counter_changed:
            plan.counters[name] = (seq, h)
        if changed:
            body["timeStamp"], body["second"] = moy, dsec
        else:
            assert entry is not None and entry.value is not None
            body["timeStamp"] = entry.value[kind.body].get("timeStamp", moy)
            body["second"] = entry.value[kind.body]["second"]
        return changed

    def _ssem_of(self, ix: str) -> Entry | None:
        """The active SSEM that answers for intersection ``ix`` (at most one)."""
        for e in self.entries.values():
            if e.kind is catalog.SSEM and ix in e.id[len("ssem-") :].split("+"):
                return e
        return None

    def _id_of(self, kind: MessageKind, value: dict[str, Any]) -> str:
        body = value[kind.body]
        if kind is catalog.SSEM:
            keys = [intersection_key(s["id"]) for s in body["status"]]
            if len(set(keys)) != len(keys):
                raise ServiceError("validation", "payload.ssm.status", "an intersection appears twice")
            return "ssem-" + "+".join(keys)
        return "srem-" + vehicle_key(body["requestor"]["id"])

    def _links_for(self, kind: MessageKind, value: dict[str, Any]) -> dict[str, Any]:
        links: dict[str, Any] = {}
        for s in value["ssm"]["status"]:
            ix = intersection_key(s["id"])
            for p in s["sigStatus"]:
                r = p.get("requester")
                if r is None:
                    continue
                key = f"{vehicle_key(r['id'])}:{ix}:{r['request']}"
                if key in self.pending:
                    links[key] = {"expires": self.pending[key].expires}
        return links

    def _identification(self, kind: MessageKind, value: dict[str, Any]) -> dict[str, Any]:
        body = value[kind.body]
        if kind is catalog.SSEM:
            return {
                "message": catalog.SSEM.name,
                "sequenceNumber": body.get("sequenceNumber"),
                "intersections": [
                    {
                        "id": intersection_key(s["id"]),
                        "sequenceNumber": s["sequenceNumber"],
                        "requests": [_request_key(s, p) for p in s["sigStatus"]],
                    }
                    for s in body["status"]
                ],
            }
        return {
            "message": catalog.SREM.name,
            "sequenceNumber": body.get("sequenceNumber"),
            "requestor": vehicle_key(body["requestor"]["id"]),
            "requests": [
                {"intersection": intersection_key(r["request"]["id"]), "requestID": r["request"]["requestID"]}
                for r in body.get("requests") or []
            ],
        }

    # --- request life -------------------------------------------------------------------------
    def _link_expiry(self, key: str, link: dict[str, Any]) -> float:
        p = self.pending.get(key)
        expires: float = link["expires"]
        return max(expires, p.expires) if p else expires

    def _drop_requests(self, entry: Entry, keys: set[str], now: float, reason: str) -> Plan:
        value = copy.deepcopy(entry.content)
        for s in value["ssm"]["status"]:
            ix = intersection_key(s["id"])
            s["sigStatus"] = [p for p in s["sigStatus"] if _request_key_ix(ix, p) not in keys]
        value["ssm"]["status"] = [s for s in value["ssm"]["status"] if s["sigStatus"]]
        links = {k: v for k, v in entry.data.get("links", {}).items() if k not in keys}
        if not value["ssm"]["status"]:
            plan = Plan(deletes=[entry.id])
            plan.result = {"id": entry.id, "terminated": "stopped"}
            plan.events.append(self.ended_event(entry, reason, now))
            return plan
        return self._put(entry, entry.id, catalog.SSEM, value, entry.dissemination, Plan(), now, links)

    def expire(self, now: float) -> Plan:
        plan = super().expire(now)
        gone = set(plan.deletes)
        for e in list(self.entries.values()):
            if e.kind is not catalog.SSEM or e.id in gone:
                continue
            ended = {k for k, link in e.data.get("links", {}).items() if self._link_expiry(k, link) <= now}
            if ended:
                plan.merge(self._drop_requests(e, ended, now, "requests ended"))
        for k in [k for k, p in self.pending.items() if p.expires <= now]:
            del self.pending[k]
        return plan

    def next_event(self) -> float | None:
        times = [t for t in [super().next_event()] if t is not None]
        for e in self.entries.values():
            times.extend(self._link_expiry(k, link) for k, link in e.data.get("links", {}).items())
        times.extend(p.expires for p in self.pending.values())
        return min(times) if times else None

    # --- receive side -------------------------------------------------------------------------
    def on_received(self, kind: MessageKind, value: dict[str, Any], now: float) -> tuple[dict[str, Any], Plan | None]:
        if kind is not catalog.SREM:
            return {}, None
        srm = value["srm"]
        requestor = srm["requestor"]
        veh = vehicle_key(requestor["id"])
        rtype = requestor.get("type") or {}
        role = rtype.get("role")
        seq = srm.get("sequenceNumber")
        out_requests: list[dict[str, Any]] = []
        cancelled: set[str] = set()
        timeout = self.ctx.rules.srem_request_timeout_s
        for pkg in srm.get("requests") or []:
            r = pkg["request"]
            key = f"{veh}:{intersection_key(r['id'])}:{r['requestID']}"
            if r["requestType"] == "priorityCancellation":
                self.pending.pop(key, None)
                cancelled.add(key)
                out_requests.append(
                    {
                        "key": key,
                        "intersection": intersection_key(r["id"]),
                        "requestID": r["requestID"],
                        "requestType": r["requestType"],
                    }
                )
                continue
            expires = now + timeout
            start = moy_to_posix(pkg["minute"], pkg.get("second"), now) if "minute" in pkg else None
            if start is not None and "duration" in pkg:  # the window, read relative to now across the new year
                expires = max(now, start + pkg["duration"] / 1000)
            old = self.pending.get(key)
            p = PendingRequest(
                key,
                requestor["id"],
                r["id"],
                r["requestID"],
                r["requestType"],
                seq,
                role,
                r["inBoundLane"],
                r.get("outBoundLane"),
                pkg.get("minute"),
                pkg.get("second"),
                pkg.get("duration"),
                old.first_heard if old else now,
                now,
                expires,
            )
            self.pending.pop(key, None)  # least recently heard first
            self.pending[key] = p
            while len(self.pending) > self.ctx.rules.srem_pending_max:
                self.pending.pop(next(iter(self.pending)))
                self.ctx.on_limit("tlc-requests")
            item = p.to_json()
            item["status"] = "updated" if old else "new"
            out_requests.append(item)
        info = {
            "requestor": {
                "key": veh,
                "role": role,
                "subrole": rtype.get("subrole"),
                "importance": rtype.get("request"),
            },
            "sequenceNumber": seq,
            "requests": out_requests,
        }
        info["requestor"] = {k: v for k, v in info["requestor"].items() if v is not None}
        plan = Plan()
        for e in list(self.entries.values()):
            if e.kind is catalog.SSEM:
                hit = cancelled & set(e.data.get("links", {}))
                if hit:
                    plan.merge(self._drop_requests(e, hit, now, "request cancelled by the requestor"))
        return {"tlc": info}, (plan if plan else None)

    def derive_area(self, kind: MessageKind, value: dict[str, Any] | None) -> GeoArea | None:
        if not value:
            return None
        body = value[kind.body]
        refs = (
            [s["id"] for s in body["status"]]
            if kind is catalog.SSEM
            else [r["request"]["id"] for r in body.get("requests") or []]
        )
        pts = []
        for ref in refs:
            info = self.rlt.intersection(intersection_key(ref))
            if info is not None:
                pts.append((info[3]["lat"], info[3]["long"]))
        return self.area_from(kind, pts)


def _placeholders(kind: MessageKind) -> Callable[[dict[str, Any]], None]:
    def fill(body: dict[str, Any]) -> None:
        body.setdefault("second", 0)
        if kind is catalog.SSEM and isinstance(body.get("status"), list):
            # body is a shallow copy of the request's (ServiceEntity.parse_payload): copy what is filled in
            body["status"] = [
                dict(s, sequenceNumber=s.get("sequenceNumber", 0)) if isinstance(s, dict) else s for s in body["status"]
            ]

    return fill


def _request_key_ix(ix: str, pkg: dict[str, Any]) -> str | None:
    r = pkg.get("requester")
    return f"{vehicle_key(r['id'])}:{ix}:{r['request']}" if r else None


def _request_key(status: dict[str, Any], pkg: dict[str, Any]) -> str | None:
    return _request_key_ix(intersection_key(status["id"]), pkg)


def _package_index(value: dict[str, Any] | None, key: str) -> list[tuple[int, int]]:
    if not value:
        return []
    out = []
    for i, s in enumerate(value["ssm"]["status"]):
        ix = intersection_key(s["id"])
        for j, p in enumerate(s["sigStatus"]):
            if _request_key_ix(ix, p) == key:
                out.append((i, j))
    return out
