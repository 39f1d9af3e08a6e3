"""RLT: the Road and Lane Topology service (MAPEM).

* The application triggers a MAPEM with its content; the service repeats it at the configured
  interval (default 1 s) until terminated or its stop time.
* Revision counters (each ``IntersectionGeometry.revision`` / ``RoadSegment.revision`` and
  ``MapData.msgIssueRevision``) change when, and only when, the content they cover changes
  (TP RLT_GEN_MSGF_BV_02/03). They are counters in the store, keyed by intersection or road
  segment (and by entry for msgIssueRevision), with the hash of the content they were given for:
  a restart, a delete and a re-trigger never reset them.
* A MAPEM whose encoding exceeds ``mapem_max_bytes`` is sent as fragments carrying ``layerID``
  (``10 x count + index``), split by whole intersections / road segments, and by lanes when one
  element alone is too big. A MAPEM that fits carries no layerID (TP RLT_GEN_FRAG_BV_01/02).
* Lane numbers are unique per intersection and connections end on a lane of the intersection
  (or name a remote one); see :func:`_check_connections` (TP RLT_GEN_MSGF_BV_04/06).
* The entry id is the list of its elements: ``"1201"``, ``"7.1201+1202"``, ``"rs12"``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind
from rsu.services.base import Context, ServiceEntity, intersection_key, next_revision, reject_unknown
from rsu.services.errors import ServiceError
from rsu.services.model import (
    Entry,
    EntryKey,
    Plan,
    Transmission,
    canonical_text,
    object_text,
    text_hash,
)
from rsu.services.scheduler import Due
from rsu.services.store import StoredEntry
from rsu.services.timefmt import minute_of_the_year
from rsu.transports.base import GeoArea

MAX_FRAGMENTS = 9  # layerID = 10 x count + index must stay within LayerID (0..100)

_ELEMENTS = (("intersections", "", "laneSet"), ("roadSegments", "rs", "roadLaneSet"))


def layer_id(count: int, index: int) -> int:
    """layerID of fragment ``index`` (1-based) of ``count`` (the one place that defines the coding)."""
    return 10 * count + index


def element_keys(mapdata: dict[str, Any]) -> list[tuple[str, int, str]]:
    """[(member, index, key)] for every intersection and road segment of a MapData value."""
    out = []
    for member, prefix, _ in _ELEMENTS:
        for i, el in enumerate(mapdata.get(member) or []):
            out.append((member, i, prefix + intersection_key(el["id"])))
    return out


def signal_groups(geometry: dict[str, Any]) -> set[int]:
    """Signal groups an IntersectionGeometry defines (laneSet[*].connectsTo[*].signalGroup)."""
    groups = set()
    for lane in geometry.get("laneSet") or []:
        for conn in lane.get("connectsTo") or []:
            if "signalGroup" in conn:
                groups.add(conn["signalGroup"])
    return groups


class RltEntity(ServiceEntity):
    name = catalog.MAPEM.service.lower()  # "rlt"
    kinds = (catalog.MAPEM,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # intersection key -> (entry id, revision, signal groups, refPoint) of the active MAPEMs
        self._index: dict[str, tuple[str, int, set[int], dict[str, Any]]] = {}
        # entry id -> the intersection keys it put in ``_index``: a change re-indexes only that entry's
        # intersections (a rebuild of every intersection per MAPEM made loading N MAP files cost N^2)
        self._keys_of: dict[str, list[str]] = {}
        self._owner: dict[str, str] = {}  # element key (an id part, "i1201") -> the active MAPEM that holds it
        self._sent_once: set[str] = set()  # restored entries sent once since the restart, to be packed next time

    # --- what TLM asks --------------------------------------------------------------------------
    def intersection(self, key: str) -> tuple[str, int, set[int], dict[str, Any]] | None:
        return self._index.get(key)

    # --- requests -----------------------------------------------------------------------------
    def trigger(self, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "dissemination"})
        if "payload" not in req:
            raise ServiceError("validation", "payload", "missing (the MAPEM content)")
        plan = Plan()
        value, supplied = self._intake(req["payload"], plan)
        keys = element_keys(value["map"])
        entry_id = "+".join(k for _, _, k in keys)
        if entry_id in self.entries:
            raise ServiceError("already_active", "payload.map", f"MAPEM {entry_id!r} is already active (update it)")
        self._check_overlap(keys, None)
        diss = self.dissemination(req, catalog.MAPEM, None, now)
        self._revise(value, supplied, None, entry_id, plan, now)
        pdus = self._encode_fragments(value)
        self.check_permission(catalog.MAPEM, value)
        t0 = max(now, diss.start or now)
        entry = self.new_entry(
            entry_id, catalog.MAPEM, value, pdus, diss, self._identification(value, pdus), now, anchor=t0
        )
        plan.schedule_entry(entry, t0)
        return plan

    def update(self, entry: Entry, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "dissemination"})
        plan = Plan()
        diss = self.dissemination(req, catalog.MAPEM, entry.dissemination, now)
        current = self.content_of(entry)
        value, pdus, changed = current, entry.pdus, False
        if "payload" in req:
            value, supplied = self._intake(req["payload"], plan)
            keys = "+".join(k for _, _, k in element_keys(value["map"]))
            if keys != entry.id:
                raise ServiceError(
                    "validation",
                    "payload.map",
                    f"describes {keys!r}, not {entry.id!r}: an update keeps "
                    "the same intersections and road segments (trigger a new MAPEM for others)",
                )
            changed = self._revise(value, supplied, current, entry.id, plan, now)
            if changed:
                pdus = self._encode_fragments(value)
                self.check_permission(catalog.MAPEM, value)
            else:
                value, pdus = current, entry.pdus
        return self.plan_update(plan, entry, value, pdus, diss, changed, lambda: self._identification(value, pdus), now)

    # --- internals ----------------------------------------------------------------------------
    def _intake(self, raw: Any, plan: Plan) -> tuple[dict[str, Any], dict[str, Any]]:
        supplied: dict[str, int | None] = {}

        def placeholders(body: dict[str, Any]) -> None:
            supplied["msgIssueRevision"] = body.get("msgIssueRevision")
            body.setdefault("msgIssueRevision", 0)
            for member, prefix, _ in _ELEMENTS:
                els = body.get(member)
                if isinstance(els, list):
                    body[member] = els = list(els)  # body is a shallow copy: copy what is filled in
                    for i, el in enumerate(els):
                        if isinstance(el, dict):
                            given = el.get("id")
                            ref: dict[str, Any] = given if isinstance(given, dict) else {}
                            k = prefix + (f"{ref['region']}.{ref.get('id')}" if "region" in ref else str(ref.get("id")))
                            supplied[k] = el.get("revision")
                            if "revision" not in el:
                                els[i] = {**el, "revision": 0}

        value = self.parse_payload(raw, catalog.MAPEM, placeholders=placeholders, warnings=plan.warnings)
        if isinstance(raw, str):  # UPER: every revision was given
            supplied = {"msgIssueRevision": value["map"]["msgIssueRevision"]}
            supplied.update({k: value["map"][m][i]["revision"] for m, i, k in element_keys(value["map"])})
        m = value["map"]
        if "layerID" in m:
            raise ServiceError(
                "validation", "payload.map.layerID", "set by the service when it fragments a MAPEM; leave it out"
            )
        keys = element_keys(m)
        if not keys:
            raise ServiceError("validation", "payload.map", "needs intersections or roadSegments")
        seen: dict[str, str] = {}
        for member, i, k in keys:
            if k in seen:
                raise ServiceError("validation", f"payload.map.{member}[{i}].id", f"{k} appears twice")
            seen[k] = member
            lanes_member = "laneSet" if member == "intersections" else "roadLaneSet"
            lane_ids: set[int] = set()
            for j, lane in enumerate(m[member][i][lanes_member]):
                if lane["laneID"] in lane_ids:  # TP RLT_GEN_MSGF_BV_06: unique lane numbers
                    raise ServiceError(
                        "validation",
                        f"payload.map.{member}[{i}].{lanes_member}[{j}].laneID",
                        f"lane {lane['laneID']} appears twice in {k}",
                    )
                lane_ids.add(lane["laneID"])
            if member == "intersections":
                _check_connections(m[member][i], lane_ids, f"payload.map.{member}[{i}]", k)
        return value, supplied

    def _check_overlap(self, keys: list[tuple[str, int, str]], own_id: str | None) -> None:
        for member, i, k in keys:
            other = self._owner.get(k)
            if other is not None and other != own_id:
                raise ServiceError(
                    "already_active",
                    f"payload.map.{member}[{i}].id",
                    f"{k} is already in active MAPEM {other!r}",
                )

    def _revise(
        self,
        value: dict[str, Any],
        supplied: dict[str, Any],
        old: dict[str, Any] | None,
        entry_id: str,
        plan: Plan,
        now: float,
    ) -> bool:
        """Set every revision counter of ``value`` (and timeStamp); return whether the content changed."""
        m = value["map"]
        parts = element_texts(m)
        for member, i, k in element_keys(m):
            el = m[member][i]
            h = text_hash(object_text(parts[member][i]))
            name = f"rlt.rev.{k}"
            rev, changed = next_revision(self.ctx.counter(name, plan), h, supplied.get(k))
            if supplied.get(k) is not None and supplied[k] != rev:
                why = "changed" if changed else "did not change"
                plan.warnings.append(
                    f"payload.map.{member}[{i}].revision: {supplied[k]} ignored: the content of {k} "
                    f"{why}, so its revision is {rev} (the service counts revisions)"
                )
            el["revision"] = rev
            if changed:
                plan.counters[name] = (rev, h)
        h = message_hash(m, parts)
        name = f"rlt.msg.{entry_id}"
        rev, changed = next_revision(self.ctx.counter(name, plan), h, supplied.get("msgIssueRevision"))
        if supplied.get("msgIssueRevision") is not None and supplied["msgIssueRevision"] != rev:
            plan.warnings.append(
                f"payload.map.msgIssueRevision: {supplied['msgIssueRevision']} ignored: the service counts it ({rev})"
            )
        m["msgIssueRevision"] = rev
        if changed:
            plan.counters[name] = (rev, h)
        # Python equality of two values of the codec's value form is equality of their canonical texts
        # (same schema, same types per member), without serialising either
        content_changed = old is None or _content(old) != _content(value)
        if "timeStamp" not in m:
            if not content_changed and old is not None and "timeStamp" in old["map"]:
                m["timeStamp"] = old["map"]["timeStamp"]
            else:
                m["timeStamp"] = minute_of_the_year(now)
        return content_changed or (old is not None and old["map"].get("timeStamp") != m.get("timeStamp"))

    def _encode_fragments(self, value: dict[str, Any]) -> tuple[bytes, ...]:
        full = self.encode(catalog.MAPEM, value, intake=True)
        limit = self.ctx.rules.mapem_max_bytes
        if len(full) <= limit:
            return (full,)
        return tuple(self.encode(catalog.MAPEM, f, intake=True) for f in fragment(value, limit, self._size))

    def _size(self, value: dict[str, Any]) -> int:
        return len(self.ctx.codec.encode(value, catalog.MAPEM, validate=False))

    def _identification(self, value: dict[str, Any], pdus: tuple[bytes, ...]) -> dict[str, Any]:
        m = value["map"]
        out: dict[str, Any] = {"msgIssueRevision": m["msgIssueRevision"], "fragments": len(pdus)}
        for member, prefix, _ in _ELEMENTS:
            if m.get(member):
                out[member] = [
                    {"id": prefix + intersection_key(el["id"]), "revision": el["revision"]} for el in m[member]
                ]
        return out

    def derive_area(self, kind: MessageKind, value: dict[str, Any] | None) -> GeoArea | None:
        if not value:
            return None
        m = value["map"]
        pts = [
            (el["refPoint"]["lat"], el["refPoint"]["long"])
            for member, _, _ in _ELEMENTS
            for el in (m.get(member) or [])
        ]
        return self.area_from(kind, pts)

    def restored(self, entry: Entry, row: StoredEntry) -> Entry:
        if row.payload is not None and len(row.payload) <= self.ctx.rules.mapem_max_bytes:
            pdus: tuple[bytes, ...] = (row.payload,)  # the whole MAPEM is stored: its bytes, not re-encoded
        else:
            pdus = self._encode_fragments(entry.value) if entry.value is not None else ()
        return entry.evolve(pdus=pdus, area=self.derive_area(entry.kind, entry.value))

    def apply(self, plan: Plan) -> None:
        """Take the plan into memory and re-index the intersections of the entries it upserts or deletes
        (and of nothing else: the cost is that of the change, not of every active MAPEM)."""
        super().apply(plan)
        for ident in [*plan.deletes, *(e.id for e in plan.upserts)]:
            self._sent_once.discard(ident)
            for key in self._keys_of.pop(ident, ()):
                if self._index.get(key, ("",))[0] == ident:
                    del self._index[key]
            for part in ident.split("+"):
                if self._owner.get(part) == ident:
                    del self._owner[part]
        for ident in dict.fromkeys(e.id for e in plan.upserts):
            e = self.entries.get(ident)
            if e is None:
                continue
            self._owner.update(dict.fromkeys(ident.split("+"), ident))
            if e.value is None:
                continue
            keys = self._keys_of.setdefault(ident, [])
            for el in e.value["map"].get("intersections") or []:
                key = intersection_key(el["id"])
                self._index[key] = (e.id, el["revision"], signal_groups(el), el["refPoint"])
                keys.append(key)
        for e in plan.upserts:  # new content, sent at once: packed now (Entry.pack), so that MAP files loaded
            if e.id in plan.fire:  # together do not all hold their values at the same time (a high-water mark)
                e.pack(self._unpack)

    def transmissions(self, entry: Entry, due: Due[EntryKey]) -> list[Transmission]:
        out = super().transmissions(entry, due)
        if not entry.packed:  # restored: packed at its second send, once everything is back on the air
            if entry.id in self._sent_once:
                self._sent_once.discard(entry.id)
                entry.pack(self._unpack)
            else:
                self._sent_once.add(entry.id)
        return out

    def _unpack(self, data: bytes) -> dict[str, Any]:
        value: dict[str, Any] = self.ctx.codec.decode(data, validate=False).value
        return value


def _check_connections(geometry: dict[str, Any], lane_ids: set[int], path: str, key: str) -> None:
    """Connections must lead somewhere (TP RLT_GEN_MSGF_BV_04): a connection within the intersection ends on
    one of its lanes, and a connection trajectory (addGrpC) belongs to a connection of its lane."""
    for j, lane in enumerate(geometry["laneSet"]):
        where = f"{path}.laneSet[{j}]"
        conns = lane.get("connectsTo") or []
        for c, conn in enumerate(conns):
            target = conn["connectingLane"]["lane"]
            if "remoteIntersection" not in conn and target not in lane_ids:
                raise ServiceError(
                    "validation",
                    f"{where}.connectsTo[{c}].connectingLane.lane",
                    f"lane {target} is not a lane of intersection {key} (a connection to another "
                    "intersection names it in remoteIntersection)",
                )
        ids = {conn["connectionID"] for conn in conns if "connectionID" in conn}
        for e, ext in enumerate(lane.get("regional") or []):
            v = ext.get("regExtValue")
            if ext.get("regionId") == 3 and isinstance(v, dict) and "nodes" in v and "connectionID" in v:  # noqa: SIM102  which extension, then the check
                if v["connectionID"] not in ids:
                    raise ServiceError(
                        "validation",
                        f"{where}.regional[{e}].regExtValue.connectionID",
                        f"trajectory of connection {v['connectionID']}, which lane {lane['laneID']} "
                        f"does not have (its connections: {sorted(ids) or 'none'})",
                    )


def element_texts(mapdata: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """member -> per intersection / road segment, the canonical texts of its members but ``revision``:
    each element's content hash is ``text_hash(object_text(...))`` of them (= ``canonical_hash`` of the
    element without its revision), and :func:`message_hash` reuses them."""
    return {
        member: [{k: canonical_text(v) for k, v in el.items() if k != "revision"} for el in mapdata[member]]
        for member, _, _ in _ELEMENTS
        if mapdata.get(member)
    }


def message_hash(mapdata: dict[str, Any], parts: dict[str, list[dict[str, str]]]) -> str:
    """``canonical_hash`` of the MapData but msgIssueRevision and timeStamp (the elements with their
    revisions), from the elements' texts of :func:`element_texts` (each element is serialised once)."""
    members: dict[str, str] = {}
    for k, v in mapdata.items():
        if k in ("msgIssueRevision", "timeStamp"):
            continue
        if k in parts:
            els = [object_text({**p, "revision": canonical_text(el["revision"])}) for p, el in zip(parts[k], v)]
            members[k] = "[" + ",".join(els) + "]"
        else:
            members[k] = canonical_text(v)
    return text_hash(object_text(members))


def _content(value: dict[str, Any]) -> dict[str, Any]:
    """What counts as MAPEM content (everything but the service-owned counters and timestamp)."""
    m = {k: v for k, v in value["map"].items() if k not in ("msgIssueRevision", "timeStamp")}
    for member, _, _ in _ELEMENTS:
        if member in m:
            m[member] = [{k: v for k, v in el.items() if k != "revision"} for el in m[member]]
    return m


def fragment(value: dict[str, Any], limit: int, size: Callable[[dict[str, Any]], int]) -> list[dict[str, Any]]:
    """Split a MAPEM into fragments that each encode to at most ``limit`` bytes, with layerID set."""
    m = value["map"]
    base = {k: v for k, v in m.items() if k not in ("intersections", "roadSegments")}
    elements: list[tuple[str, dict[str, Any]]] = [
        (member, el) for member, _, _ in _ELEMENTS for el in (m.get(member) or [])
    ]

    def build(group: list[tuple[str, dict[str, Any]]], layer: int) -> dict[str, Any]:
        body = dict(base, layerID=layer)
        for member, el in group:
            body.setdefault(member, []).append(el)
        return {"header": value["header"], "map": body}

    def fits(group: list[tuple[str, dict[str, Any]]]) -> bool:
        return size(build(group, 99)) <= limit

    pieces: list[tuple[str, dict[str, Any]]] = []
    for member, el in elements:
        if fits([(member, el)]):
            pieces.append((member, el))
        else:
            pieces.extend((member, part) for part in _split_lanes(member, el, fits))
    groups: list[list[tuple[str, dict[str, Any]]]] = []
    current: list[tuple[str, dict[str, Any]]] = []
    for piece in pieces:
        if current and not fits(current + [piece]):
            groups.append(current)
            current = []
        current.append(piece)
    if current:
        groups.append(current)
    if len(groups) > MAX_FRAGMENTS:
        raise ServiceError(
            "validation",
            "payload.map",
            f"needs {len(groups)} fragments of at most {limit} bytes; layerID allows {MAX_FRAGMENTS}",
        )
    return [build(g, layer_id(len(groups), i + 1)) for i, g in enumerate(groups)]


def _split_lanes(
    member: str, el: dict[str, Any], fits: Callable[[list[tuple[str, dict[str, Any]]]], bool]
) -> list[dict[str, Any]]:
    """Split one intersection / road segment by its lanes into copies that each fit."""
    lanes_member = "laneSet" if member == "intersections" else "roadLaneSet"
    lanes = el[lanes_member]
    if len(lanes) <= 1:
        raise ServiceError(
            "validation",
            f"payload.map.{member}",
            f"{intersection_key(el['id'])}: one lane alone exceeds the MAPEM size limit",
        )
    half = len(lanes) // 2
    out = []
    for part in (lanes[:half], lanes[half:]):
        piece = copy.copy(el)
        piece[lanes_member] = part
        out.extend([piece] if fits([(member, piece)]) else _split_lanes(member, piece, fits))
    return out
