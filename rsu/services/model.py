"""Plain data shared by the entities, the facade and the API: entries, plans, transmissions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from rsu.catalog import MessageKind
from rsu.security.ssp import Requirement, required
from rsu.services.params import Dissemination
from rsu.transports.base import DisseminationParams, GeoArea

# The injected permission check: (message kind, whole PDU value) -> name of the missing permission, or None.
PermissionCheck = Callable[[MessageKind, dict[str, Any]], "str | None"]

# An entry's key in the scheduler and the store: (service, entry id); a transmission's Due is a Due[EntryKey]
EntryKey = tuple[str, str]

# Entry states
ACTIVE = "active"  # being sent (or waiting for its start time / next trigger)
TERMINATING = "terminating"  # IVI: a cancellation or negation is being repeated before the entry ends


@dataclass(frozen=True)
class Entry:
    """One active message of one service: what the store-and-repeat table holds.

    ``pdus`` are the cached UPER encodings sent on every repetition (several for a fragmented
    MAPEM); they change only when the content changes, and ``generation`` counts those changes
    (a signer may cache per (service, id, generation, fragment)).
    """

    service: str
    id: str
    kind: MessageKind
    value: dict[str, Any] | None  # whole PDU (Python value form); None = no content (TLM after a restart)
    pdus: tuple[bytes, ...]
    dissemination: Dissemination
    identification: dict[str, Any]
    state: str = ACTIVE
    data: dict[str, Any] = field(default_factory=dict)  # entity-specific, JSON-able, persisted
    generation: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    anchor: float | None = None  # drift-free schedule anchor (time of the first send of this content)
    area: GeoArea | None = None  # destination area derived from the content (used when destination is auto)

    def evolve(self, **changes: Any) -> Entry:
        return replace(self, **changes)

    @property
    def content(self) -> dict[str, Any]:
        """``value`` of an entry that always has one (every service's entries but TLM's; ValueError without)."""
        if self.value is None:
            raise ValueError(f"{self.service}/{self.id}: the entry has no content")
        return self.value

    @cached_property
    def requirement(self) -> Requirement | None:
        """What the content needs of the signer's SSP (rsu.security.ssp), None without content.

        Worked out from ``value`` once per content (every repetition and fragment shares it); an
        entry restored from the store has its value again (rsu.services.base.restore), so it has
        its requirement too."""
        return required(self.kind, self.value) if self.value is not None else None

    @property
    def key(self) -> EntryKey:
        return (self.service, self.id)

    def pack(self, decode: Callable[[bytes], dict[str, Any]]) -> bool:
        """Hold the value as the one UPER PDU it encodes to (``pdus[0]``) instead of as Python objects:
        ``value`` then decodes it again at every read (``decode``: bytes -> value, the codec's). For
        entries that are sent far more often than read (a MAPEM: ~47 kB of dicts for 417 bytes, read
        by an update or the API). Packs only when the PDU decodes to an equal value, after working out
        ``requirement``; tries once per entry (cheap to call again); says whether the entry is packed.
        The entry stays what it was to every reader; it never raises."""
        state = self.__dict__
        value = state.get("value")
        if isinstance(value, _Packed):
            return True
        if state.get("_pack_tried") or not isinstance(value, dict) or len(self.pdus) != 1:
            return False
        state["_pack_tried"] = True
        try:
            same = decode(self.pdus[0]) == value
        except Exception:  # noqa: BLE001 - not packed: the value stays as it is
            return False
        if not same:
            return False
        _ = self.requirement  # from the value in hand, cached
        state["value"] = _Packed(self.pdus[0], decode)  # frozen: the field as stored, same content
        return True

    @property
    def packed(self) -> bool:
        return isinstance(self.__dict__.get("value"), _Packed)


class _Packed:
    """A packed entry's value: its UPER PDU and the decoder that gives the value back."""

    __slots__ = ("data", "decode")

    def __init__(self, data: bytes, decode: Callable[[bytes], dict[str, Any]]) -> None:
        self.data, self.decode = data, decode

    def __deepcopy__(self, memo: dict[int, Any]) -> _Packed:
        return self  # bytes and a decoder: nothing in it changes


class _EntryValue:
    """``Entry.value``: the field as stored; for a packed entry, the value decoded from its PDU.

    A packed entry's value is a fresh decode at every read: changing it in place changes nothing, and
    each read costs a decode (entries are replaced by ``evolve``, never changed in place; read it once)."""

    def __get__(self, entry: Entry | None, owner: type | None = None) -> Any:
        if entry is None:
            return self
        value = entry.__dict__["value"]
        return value.decode(value.data) if isinstance(value, _Packed) else value

    def __set__(self, entry: Entry, value: dict[str, Any] | None) -> None:
        entry.__dict__["value"] = value


setattr(Entry, "value", _EntryValue())  # noqa: B010 - after @dataclass, which reads the class' fields first


@dataclass
class Plan:
    """What one request (or one time event) changes; computed first, then committed all at once."""

    upserts: list[Entry] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)  # entry ids (same service)
    counters: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    fire: dict[str, float] = field(default_factory=dict)  # entry id -> time of a fresh transmission
    reschedule: list[str] = field(default_factory=list)  # entry ids whose periodic schedule is (re)set
    result: dict[str, Any] = field(default_factory=dict)  # the answer's service-specific members
    warnings: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # service events for IS_DataProviding subscribers
    memory_only: bool = False  # nothing to persist (a SPATEM state update: stale states are never kept)

    def schedule_entry(self, entry: Entry, at: float, *, fresh: bool = True, changed: bool | None = None) -> None:
        """Store ``entry``, send it fresh at ``at`` (if ``fresh``), (re)set its repetition, answer with its id.

        ``changed`` (updates only) is reported as ``content_changed`` in the answer.
        """
        self.upserts.append(entry)
        if fresh:
            self.fire[entry.id] = at
        self.reschedule.append(entry.id)
        self.result = {"id": entry.id, "identification": entry.identification}
        if changed is not None:
            self.result["content_changed"] = changed

    def merge(self, other: Plan) -> Plan:
        self.upserts.extend(other.upserts)
        self.deletes.extend(other.deletes)
        self.counters.update(other.counters)
        self.fire.update(other.fire)
        self.reschedule.extend(other.reschedule)
        self.warnings.extend(other.warnings)
        self.events.extend(other.events)
        return self

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.counters or self.fire or self.reschedule or self.events)


@dataclass(frozen=True)
class Transmission:
    """One facilities PDU to sign and send now (layer: UPER facilities PDU + DisseminationParams)."""

    service: str
    id: str
    kind: MessageKind
    pdu: bytes
    params: DisseminationParams
    fresh: bool  # new content or an event generation (False: a repetition of the same bytes)
    generation: int  # same (service, id, generation, fragment) -> same bytes
    fragment: int | None  # MAPEM fragment index (1-based), None when not fragmented
    slot: float  # scheduled time
    priority: int
    # what the content needs of the signer's SSP, from the whole PDU's value (for a fragmented
    # MAPEM: the unfragmented value, a superset of each fragment's content): the sign request
    # carries it, so nothing is decoded to sign; None only without content (nothing to sign)
    requirement: Requirement | None = None


def canonical_hash(obj: Any) -> str:
    """Stable hash of a JSON-able value (used to tell content changes; stored with revision counters,
    so its text must never change: :func:`canonical_text`)."""
    return text_hash(canonical_text(obj))


def canonical_text(obj: Any) -> str:
    """The canonical JSON text :func:`canonical_hash` hashes (sorted keys, no spaces, bytes tagged)."""
    return _CANONICAL.encode(obj)


def text_hash(text: str) -> str:
    """:func:`canonical_hash` of the value whose :func:`canonical_text` is ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def object_text(members: dict[str, str]) -> str:
    """:func:`canonical_text` of an object given its members' canonical texts (so the texts of parts
    already serialised are reused: the same text as serialising the whole object)."""
    return "{" + ",".join(f"{_CANONICAL.encode(k)}:{members[k]}" for k in sorted(members)) + "}"


def value_to_json(value: Any, payload: bytes) -> str:
    """A PDU's Python value as JSON text that :func:`value_from_json` gives back exactly (bytes and
    tuples - CHOICEs, BIT STRINGs - are tagged; ASN.1 member names never start with ``$``), bound
    to the UPER ``payload`` it was encoded to by its digest."""
    return json.dumps(
        {"payload_sha256": hashlib.sha256(payload).hexdigest(), "value": _tagged(value)}, separators=(",", ":")
    )


def value_from_json(text: str, payload: bytes) -> Any:
    """The value saved by :func:`value_to_json`; None when it does not belong to ``payload``."""
    obj = json.loads(text, object_hook=_untag)
    if not isinstance(obj, dict) or obj.get("payload_sha256") != hashlib.sha256(payload).hexdigest():
        return None
    return obj.get("value")


def _tagged(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _tagged(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_tagged(x) for x in v]
    if isinstance(v, tuple):
        return {"$t": [_tagged(x) for x in v]}
    if isinstance(v, (bytes, bytearray)):
        return {"$b": bytes(v).hex()}
    return v


def _untag(d: dict[str, Any]) -> Any:
    if len(d) == 1:
        if "$t" in d:
            return tuple(d["$t"])
        if "$b" in d:
            return bytes.fromhex(d["$b"])
    return d


def _default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray)):
        return {"$bytes": bytes(o).hex()}
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o).__name__)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_default)


def strip_keys(value: Any, drop: Callable[[tuple[str, ...]], bool], path: tuple[str, ...] = ()) -> Any:
    """Copy of a Python value without the members whose path ``drop`` selects (for content hashes)."""
    if isinstance(value, dict):
        return {k: strip_keys(v, drop, path + (k,)) for k, v in value.items() if not drop(path + (k,))}
    if isinstance(value, list):
        return [strip_keys(v, drop, path + ("[]",)) for v in value]
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return (value[0], strip_keys(value[1], drop, path + (value[0],)))
    return value
