"""The JSON controller feed (UDP datagrams or HTTP bodies) -> :class:`IntersectionUpdate` (sans-I/O).

One message describes one intersection at one instant; every time is *absolute* (ISO 8601 UTC or
POSIX seconds), so the SPATEM's TimeMarks are computed against the SPATEM's own timestamp, not
the controller's idea of "now". Schema (documented with an example in ``docs/integrations.md``)::

    {"intersection": 1201 | "7.1201" | {"region": 7, "id": 1201},
     "timestamp": "2025-05-14T08:12:23.450Z",           # controller time of this state
     "revision": 3,                                       # optional (default: the active MAPEM's)
     "status": ["trafficDependentOperation"] | "0200",   # optional IntersectionStatusObject
     "name": "...",                                       # optional
     "signal_groups": [
        {"signal_group": 1, "state": "permissive-Movement-Allowed",
         "start_time": T, "min_end_time": T, "max_end_time": T, "likely_time": T, "confidence": 12,
         "next_time": T,
         "next": [{"state": "permissive-clearance", "min_end_time": T, ...}, ...]}]}

A bad message raises :class:`FeedError` with a stable reason and the field's path.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, overload

from rsu.integrations.config import ConfigError, intersection_key
from rsu.integrations.spat import (
    MOVEMENT_PHASE_STATES,
    PHASE_STATES,
    STATUS_BITS,
    IntersectionUpdate,
    SignalEvent,
    SignalGroupState,
)

_TOP = {"intersection", "timestamp", "revision", "status", "name", "signal_groups"}
_GROUP = {
    "signal_group",
    "state",
    "start_time",
    "min_end_time",
    "max_end_time",
    "likely_time",
    "confidence",
    "next_time",
    "next",
}
_EVENT = _GROUP - {"signal_group", "next"}
_TIMES = (  # in SignalEvent's order
    ("start_time", "start"),
    ("min_end_time", "min_end"),
    ("max_end_time", "max_end"),
    ("likely_time", "likely"),
    ("next_time", "next_time"),
)
_LEAP = re.compile(r"^(.*T\d{2}:\d{2}:)60((?:[.,]\d+)?(?:Z|z|[+-]\d{2}:?\d{2})?)$")
MAX_DATAGRAM = 65507
EARLIEST, LATEST = 946684800.0, 4102444800.0  # times outside 2000..2100 are refused (clearly not SPaT times)


class FeedError(Exception):
    """A feed message that cannot be used: ``reason`` (stable, for counters), ``path``, ``detail``."""

    def __init__(self, reason: str, path: str, detail: str):
        self.reason = reason
        self.path = path
        self.detail = detail
        super().__init__(f"{reason}: {path or '(message)'}: {detail}")

    def to_json(self) -> dict:
        return {"code": self.reason, "path": self.path, "reason": self.detail, "message": str(self)}


def parse_json_feed(data: bytes | str | dict) -> IntersectionUpdate:
    """A JSON feed message (bytes/str of JSON, or the parsed object) -> IntersectionUpdate."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_DATAGRAM:
            raise FeedError("too-large", "", f"{len(data)} bytes")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise FeedError("malformed-json", "", f"not UTF-8: {e}") from None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, RecursionError) as e:
            raise FeedError("malformed-json", "", f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise FeedError("malformed-json", "", "a feed message is a JSON object")
    _unknown(data, _TOP, "")
    key = _intersection(data.get("intersection"))
    timestamp = _time(data, "timestamp", "timestamp", required=True)
    revision = None
    if data.get("revision") is not None:
        revision = _int(data["revision"], "revision", 0, 127)
    status = _status(data.get("status"))
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 63):
        raise FeedError("invalid-field", "name", "a string of 1..63 characters")
    groups_raw = data.get("signal_groups")
    if not isinstance(groups_raw, list) or not groups_raw:
        raise FeedError("invalid-field", "signal_groups", "a non-empty list of signal group states is required")
    if len(groups_raw) > 255:
        raise FeedError("invalid-field", "signal_groups", "at most 255 signal groups")
    groups = []
    seen: set[int] = set()
    for i, g in enumerate(groups_raw):
        if not isinstance(g, dict):
            raise FeedError("invalid-field", _path(i, None), "expected an object")
        if not g.keys() <= _GROUP:
            _unknown(g, _GROUP, _path(i, None))
        sg = g.get("signal_group")
        if sg.__class__ is not int or not 1 <= sg <= 255:
            sg = _int(sg, f"{_path(i, None)}.signal_group", 1, 255)
        if sg in seen:
            raise FeedError("invalid-field", f"{_path(i, None)}.signal_group", f"signal group {sg} appears twice")
        seen.add(sg)
        events = [_event(g, i, None)]
        nxt = g.get("next") or []
        if not isinstance(nxt, list):
            raise FeedError("invalid-field", f"{_path(i, None)}.next", "expected a list of predicted states")
        if len(nxt) > 15:
            raise FeedError("invalid-field", f"{_path(i, None)}.next", "at most 15 predicted states (16 events in all)")
        for j, ev in enumerate(nxt):
            if not isinstance(ev, dict):
                raise FeedError("invalid-field", _path(i, j), "expected an object")
            if not ev.keys() <= _EVENT:
                _unknown(ev, _EVENT, _path(i, j))
            events.append(_event(ev, i, j))
        groups.append(SignalGroupState(sg, tuple(events)))
    return IntersectionUpdate(
        key=key, timestamp=timestamp, groups=tuple(groups), revision=revision, status=status, name=name
    )


# --- members ------------------------------------------------------------------------------------------------
def _event(obj: dict, group: int, index: int | None) -> SignalEvent:
    """The event ``signal_groups[group]`` (``index`` None) or ``signal_groups[group].next[index]``; its times are
    read in :data:`_TIMES` order, the path of a bad one is made only when it is refused."""
    state = obj.get("state")
    if state.__class__ is not str or state not in PHASE_STATES:
        state = _state(state, _path(group, index))
    times: list[float | None] = []
    for name, _ in _TIMES:
        v = obj.get(name)
        if v is None:
            times.append(None)
        elif v.__class__ is float and EARLIEST <= v < LATEST:  # the usual POSIX seconds (NaN and inf fail this)
            times.append(v)
        else:
            times.append(_time(obj, name, f"{_path(group, index)}.{name}"))
    confidence = obj.get("confidence")
    if confidence is not None and (confidence.__class__ is not int or not 0 <= confidence <= 15):
        confidence = _int(confidence, f"{_path(group, index)}.confidence", 0, 15)
    start, min_end, max_end, likely, next_time = times
    return SignalEvent(state, start, min_end, max_end, likely, confidence, next_time)


def _path(group: int, index: int | None) -> str:
    return f"signal_groups[{group}]" if index is None else f"signal_groups[{group}].next[{index}]"


def _state(state: Any, path: str) -> Any:
    if isinstance(state, int) and not isinstance(state, bool) and 0 <= state < len(MOVEMENT_PHASE_STATES):
        state = MOVEMENT_PHASE_STATES[state]
    if state not in MOVEMENT_PHASE_STATES:
        raise FeedError(
            "invalid-field",
            f"{path}.state",
            f"{state!r} is not a MovementPhaseState ({', '.join(MOVEMENT_PHASE_STATES)})",
        )
    return state


def _unknown(obj: dict, allowed: set[str], path: str) -> None:
    for k in obj:
        if k not in allowed:
            where = f"{path}.{k}" if path else str(k)
            raise FeedError("invalid-field", where, f"unknown member (expected: {', '.join(sorted(allowed))})")


def _intersection(v: Any) -> str:
    if v is None:
        raise FeedError("invalid-field", "intersection", "missing (the intersection id)")
    if isinstance(v, dict):
        extra = set(v) - {"region", "id"}
        if extra or "id" not in v:
            raise FeedError("invalid-field", "intersection", 'expected {"id": N} or {"region": R, "id": N}')
        ident = _int(v["id"], "intersection.id", 0, 65535)
        if v.get("region") is not None:
            return f"{_int(v['region'], 'intersection.region', 0, 65535)}.{ident}"
        return str(ident)
    try:
        return intersection_key(v, "intersection")
    except ConfigError as e:
        raise FeedError("invalid-field", "intersection", str(e).split(": ", 1)[-1]) from None


def _int(v: Any, path: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise FeedError("invalid-field", path, f"{v!r} is not an integer within {lo}..{hi}")
    return v


def _status(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, str):
        if re.fullmatch(r"[0-9a-fA-F]{4}", v) is None:
            raise FeedError("invalid-field", "status", "4 hex digits (16 bits) or a list of status bit names")
        value = int(v, 16)
        if value & 0x0003:
            raise FeedError("invalid-field", "status", "bits 14 and 15 are reserved")
        return value
    if isinstance(v, list):
        value = 0
        for i, name in enumerate(v):
            if name not in STATUS_BITS:
                raise FeedError("invalid-field", f"status[{i}]", f"{name!r} is not an IntersectionStatusObject bit")
            value |= 0x8000 >> STATUS_BITS.index(name)
        return value
    raise FeedError("invalid-field", "status", "4 hex digits (16 bits) or a list of status bit names")


@overload
def _time(obj: dict[str, Any], name: str, path: str, *, required: Literal[True]) -> float: ...
@overload
def _time(obj: dict[str, Any], name: str, path: str, *, required: bool = False) -> float | None: ...
def _time(obj: dict[str, Any], name: str, path: str, *, required: bool = False) -> float | None:
    v = obj.get(name)
    if v is None:
        if required:
            raise FeedError("invalid-field", path, "missing (an ISO 8601 UTC time or POSIX seconds)")
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if not math.isfinite(v) or not EARLIEST <= v < LATEST:
            raise FeedError("invalid-field", path, f"{v!r} is not a POSIX time in seconds (years 2000..2099)")
        return float(v)
    if isinstance(v, str):
        t = _iso(v, path)
        if not EARLIEST <= t < LATEST:
            raise FeedError("invalid-field", path, f"{v!r} is not within the years 2000..2099")
        return t
    raise FeedError("invalid-field", path, f"{v!r} is not an ISO 8601 UTC time or POSIX seconds")


def _iso(text: str, path: str) -> float:
    s = text.strip()
    leap = _LEAP.match(s)
    if leap:  # 23:59:60.x: POSIX time has no leap second; take the following second (rsu.clock convention)
        s = leap.group(1) + "59" + leap.group(2)
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        if leap:
            dt += timedelta(seconds=1)
        return dt.timestamp()
    except (ValueError, OverflowError):
        raise FeedError("invalid-field", path, f"{text!r} is not an ISO 8601 time") from None
