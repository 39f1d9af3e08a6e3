"""The controller-neutral SPaT model and its SPATEM payload (sans-I/O).

Both feed formats (the JSON feed, the NTCIP 1202 TSCBM blob) are parsed into an
:class:`IntersectionUpdate` holding *absolute* POSIX times; :func:`spatem_payload` turns one into
the JER payload the TLM service takes, with every time converted to a TimeMark relative to the
SPATEM's own timestamp (:func:`rsu.clock.time_mark`): never in the past, 36000 for more than an
hour ahead, 36001 for unknown, correct across the hour rollover.

The payload leaves out what the TLM service owns (``moy``, ``timeStamp``, the header) and, unless
the feed gave one, the ``revision``, which TLM takes from the active MAPEM of the intersection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from rsu.clock import TIMEMARK_UNKNOWN, start_time_mark, time_marker
from rsu.integrations.config import reference_id

# MovementPhaseState identifiers (ISO TS 19091 / J2735), by value
MOVEMENT_PHASE_STATES = (
    "unavailable",
    "dark",
    "stop-Then-Proceed",
    "stop-And-Remain",
    "pre-Movement",
    "permissive-Movement-Allowed",
    "protected-Movement-Allowed",
    "permissive-clearance",
    "protected-clearance",
    "caution-Conflicting-Traffic",
)
PHASE_STATES = frozenset(MOVEMENT_PHASE_STATES)  # for membership tests
NO_TIMING = frozenset({"unavailable"})  # states sent without TimeChangeDetails when the feed gives none

# IntersectionStatusObject bits (BIT STRING SIZE(16), bit 0 = most significant bit of the first octet)
STATUS_BITS = (
    "manualControlIsEnabled",
    "stopTimeIsActivated",
    "failureFlash",
    "preemptIsActive",
    "signalPriorityIsActive",
    "fixedTimeOperation",
    "trafficDependentOperation",
    "standbyOperation",
    "failureMode",
    "off",
    "recentMAPmessageUpdate",
    "recentChangeInMAPassignedLanesIDsUsed",
    "noValidMAPisAvailableAtThisTime",
    "noValidSPATisAvailableAtThisTime",
)
NO_VALID_SPAT = STATUS_BITS.index("noValidSPATisAvailableAtThisTime")


def status_with(status: int, *bits: int) -> int:
    """A 16-bit IntersectionStatusObject value with the named bit numbers set."""
    for b in bits:
        status |= 0x8000 >> b
    return status


class SignalEvent(NamedTuple):
    """One MovementEvent: a state and its times (POSIX seconds, None = not known / not given). Immutable; a
    named tuple (made a dozen times per feed message: it costs a quarter of a frozen dataclass to make)."""

    state: str
    start: float | None = None
    min_end: float | None = None
    max_end: float | None = None
    likely: float | None = None
    confidence: int | None = None  # TimeIntervalConfidence 0..15
    next_time: float | None = None
    timing: bool = True  # False: send no TimeChangeDetails at all


class SignalGroupState(NamedTuple):
    signal_group: int
    events: tuple[SignalEvent, ...]  # current state first, then predicted ones (1..16)


@dataclass(frozen=True)
class IntersectionUpdate:
    """The state of one intersection at the controller's time ``timestamp`` (POSIX seconds)."""

    key: str  # "1201" / "7.1201"
    timestamp: float
    groups: tuple[SignalGroupState, ...]
    revision: int | None = None  # None: the active MAPEM's (filled by TLM)
    status: int = 0  # IntersectionStatusObject as a 16-bit number
    name: str | None = None
    plan: int | None = None  # controller timing plan (TSCBM), for information
    notes: tuple[str, ...] = field(default=())  # what the parser corrected or could not map


def spatem_payload(update: IntersectionUpdate, ref: float) -> tuple[dict, list[str]]:
    """(JER payload for ``tlm`` trigger, corrections made) for a SPATEM stamped ``ref``."""
    corrections: list[str] = []
    ix = _intersection_state(update, ref, corrections, f"{update.status:04x}")
    return {"spat": {"intersections": [ix]}}, corrections


def spat_value(update: IntersectionUpdate, ref: float) -> tuple[dict, list[str]] | None:
    """(SPAT body as a Python value, corrections made) for a SPATEM stamped ``ref``: what the TLM service reads
    from :func:`spatem_payload`'s JER (:mod:`rsu.codec.values` form, members in schema order), for the services'
    value port (``trigger_spat``), which takes it without reading or validating it again.

    Every member is in its type's range by construction (the feed's parser validated the update; TimeMarks
    are made in range), except what a parser does not bound the way the ASN.1 type does: those are checked
    here, and an update with one outside its type (a name that is not IA5 text, an id or number out of range)
    gives None: :func:`spatem_payload` then takes it to the service's own validation and its refusal.
    """
    if not _vouched(update):
        return None
    corrections: list[str] = []
    ix = _intersection_state(update, ref, corrections, (update.status.to_bytes(2, "big"), 16))
    return {"intersections": [ix]}, corrections


def _intersection_state(update: IntersectionUpdate, ref: float, corrections: list[str], status: object) -> dict:
    """The IntersectionState (its members in schema order; JER and Python value differ only in ``status``)."""
    states = []
    mark = time_marker(ref)
    for g in update.groups:
        events = []
        for i, ev in enumerate(g.events):
            e: dict = {"eventState": ev.state}
            timing = _timing(ev, ref, mark, corrections, g.signal_group, i)
            if timing is not None:
                e["timing"] = timing
            events.append(e)
        states.append({"signalGroup": g.signal_group, "state-time-speed": events})
    ix: dict = {}
    if update.name:
        ix["name"] = update.name
    ix["id"] = reference_id(update.key)
    if update.revision is not None:
        ix["revision"] = update.revision
    ix["status"] = status
    ix["states"] = states
    return ix


def _is_int(v: object, lo: int, hi: int) -> bool:
    return v.__class__ is int and lo <= v <= hi  # type: ignore[operator]


def _vouched(update: IntersectionUpdate) -> bool:
    """Whether every member :func:`spat_value` makes fits its ASN.1 type (DSRC ranges and sizes)."""
    region, _, ident = update.key.rpartition(".")
    if not (
        ident.isdecimal() and int(ident) <= 65535 and (not region or (region.isdecimal() and int(region) <= 65535))
    ):
        return False
    name = update.name
    if name and not (name.__class__ is str and len(name) <= 63 and name.isascii()):  # DescriptiveName
        return False
    if update.revision is not None and not _is_int(update.revision, 0, 127):  # MsgCount
        return False
    if not _is_int(update.status, 0, 0xFFFF) or not 1 <= len(update.groups) <= 255:  # MovementList
        return False
    for g in update.groups:
        if not _is_int(g.signal_group, 0, 255) or not 1 <= len(g.events) <= 16:  # MovementEventList
            return False
        for ev in g.events:
            if ev.state not in PHASE_STATES:
                return False
            sent = ev.timing and ev.likely is not None and ev.confidence is not None  # as _timing sends it
            if sent and not _is_int(ev.confidence, 0, 15):  # TimeIntervalConfidence
                return False
    return True


def _timing(
    ev: SignalEvent, ref: float, mark: Callable[[float | None], int], corrections: list[str], group: int, index: int
) -> dict | None:
    """The TimeChangeDetails of ``ev`` in a SPATEM stamped ``ref`` (``mark``: :func:`rsu.clock.time_marker` of
    ``ref``), None when the event is sent without; what had to be corrected goes to ``corrections``."""
    if not ev.timing:
        return None
    lo, hi, likely = ev.min_end, ev.max_end, ev.likely
    if (
        ev.state in NO_TIMING
        and lo is None
        and hi is None
        and likely is None
        and ev.next_time is None
        and ev.start is None
    ):
        return None
    where = f"signal group {group} event {index}"
    # order the absolute times before they become TimeMarks (TimeMarks wrap at the hour)
    if lo is not None and hi is not None and hi < lo:
        corrections.append(f"{where}: maxEndTime before minEndTime; raised to minEndTime")
        hi = lo
    if likely is not None:
        clamped = likely
        if lo is not None and clamped < lo:
            clamped = lo
        if hi is not None and clamped > hi:
            clamped = hi
        if clamped != likely:
            corrections.append(f"{where}: likelyTime outside [minEndTime, maxEndTime]; clamped")
            likely = clamped
    if lo is not None and lo < ref - 0.0005:
        corrections.append(f"{where}: minEndTime in the past; sent as the message time")
    out: dict = {}
    start = start_time_mark(ev.start, ref) if ev.start is not None else None
    if start is not None:
        out["startTime"] = start
    out["minEndTime"] = mark(lo) if lo is not None else TIMEMARK_UNKNOWN
    if hi is not None:
        out["maxEndTime"] = mark(hi)
    if likely is not None:
        out["likelyTime"] = mark(likely)
    if ev.confidence is not None and likely is not None:
        out["confidence"] = ev.confidence
    if ev.next_time is not None:
        out["nextTime"] = mark(ev.next_time)
    return out
