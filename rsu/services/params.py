"""Dissemination parameters as applications give them (JSON) and as the store keeps them.

Request form (``"dissemination"`` member of a trigger/update request; every member optional)::

    {
      "transports": ["gn"],                  # transport names; [] = the default transports
      "destination": {"latitude": 44.8, "longitude": -0.58, "shape": "circle", "a": 300},
                                             # GBC area; null = single-hop broadcast; absent = derived
      "traffic_class": 2,                    # GN traffic class octet 0..255
      "lifetime_s": 1.0,                     # GN lifetime / MQTT expiry, 0.05..6300 s
      "hop_limit": 3,                        # 1..255
      "repetition_interval_s": 1.0,          # within the service's bounds (not for TLM)
      "start": "2025-05-14T08:00:00Z",       # ISO 8601 or POSIX seconds; null = now
      "stop": "2025-05-14T20:00:00Z",        # null = until terminated
      "priority": 4,                         # 0..7, 7 = most urgent
      "retain": true                         # MQTT retained message
    }

On update, members given replace the stored ones; ``null`` resets a member to its default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from rsu.catalog import MessageKind
from rsu.clock import iso_utc, parse_iso8601
from rsu.services.defaults import LIFETIME_RANGE_S, MessageDefaults
from rsu.services.errors import ServiceError
from rsu.transports.base import DisseminationParams, GeoArea

_FIELDS = (
    "transports",
    "destination",
    "traffic_class",
    "lifetime_s",
    "hop_limit",
    "repetition_interval_s",
    "start",
    "stop",
    "priority",
    "retain",
)
_AUTO = "auto"  # destination derived from the content (intersection reference point, IVI zone)


@dataclass(frozen=True)
class Dissemination:
    """Everything about *how* an entry is sent; JSON round-trips through :meth:`to_json`/:meth:`from_json`."""

    transports: tuple[str, ...] = ()
    destination: GeoArea | None | str = _AUTO  # GeoArea, None (SHB) or "auto"
    traffic_class: int = 0
    lifetime_s: float = 1.0
    hop_limit: int = 1
    repetition_interval_s: float | None = None
    start: float | None = None
    stop: float | None = None
    priority: int = 4
    retain: bool = False
    explicit: frozenset[str] = field(default_factory=frozenset)  # members the application set

    @classmethod
    def defaults(cls, d: MessageDefaults) -> Dissemination:
        return cls(
            traffic_class=d.traffic_class,
            lifetime_s=d.lifetime_s,
            hop_limit=d.hop_limit,
            repetition_interval_s=d.repetition_s,
            priority=d.priority,
            retain=d.retain,
        )

    def to_json(self) -> dict[str, Any]:
        dest: Any
        if isinstance(self.destination, GeoArea):
            a = self.destination
            dest = {
                "latitude": a.latitude,
                "longitude": a.longitude,
                "shape": a.shape,
                "a": a.a,
                "b": a.b,
                "angle": a.angle,
            }
        else:
            dest = self.destination
        return {
            "transports": list(self.transports),
            "destination": dest,
            "traffic_class": self.traffic_class,
            "lifetime_s": self.lifetime_s,
            "hop_limit": self.hop_limit,
            "repetition_interval_s": self.repetition_interval_s,
            "start": self.start,
            "stop": self.stop,
            "priority": self.priority,
            "retain": self.retain,
            "explicit": sorted(self.explicit),
        }

    def to_display(self) -> dict[str, Any]:
        """JSON for API answers: times as ISO 8601."""
        out = self.to_json()
        out.pop("explicit")
        out["start"] = iso_utc(self.start) if self.start is not None else None
        out["stop"] = iso_utc(self.stop) if self.stop is not None else None
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Dissemination:
        dest = obj.get("destination", _AUTO)
        if isinstance(dest, dict):
            dest = GeoArea(**dest)
        return cls(
            transports=tuple(obj.get("transports") or ()),
            destination=dest,
            traffic_class=obj["traffic_class"],
            lifetime_s=obj["lifetime_s"],
            hop_limit=obj["hop_limit"],
            repetition_interval_s=obj.get("repetition_interval_s"),
            start=obj.get("start"),
            stop=obj.get("stop"),
            priority=obj["priority"],
            retain=obj.get("retain", False),
            explicit=frozenset(obj.get("explicit") or ()),
        )

    def to_params(
        self, kind: MessageKind, area: GeoArea | None = None, extra: dict[str, Any] | None = None
    ) -> DisseminationParams:
        """The transport-layer parameters; ``area`` is the derived destination used when ``destination`` is auto."""
        dest = self.destination if isinstance(self.destination, GeoArea) or self.destination is None else area
        return DisseminationParams(
            kind=kind,
            destination=dest,
            traffic_class=self.traffic_class,
            lifetime_s=self.lifetime_s,
            hop_limit=self.hop_limit,
            transports=self.transports,
            retain=self.retain,
            extra=dict(extra or {}),
        )


def _number(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ServiceError("validation", path, f"expected a number, found {type(v).__name__}")
    if not math.isfinite(v):  # JSON 1e400 arrives as inf
        raise ServiceError("validation", path, f"expected a finite number, found {v}")
    return float(v)


def _int(v: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ServiceError("validation", path, f"expected an integer {lo}..{hi}, found {type(v).__name__}")
    if not lo <= v <= hi:
        raise ServiceError("validation", path, f"{v} is outside {lo}..{hi}")
    return v


TIME_RANGE = (0.0, 4102444800.0)  # POSIX seconds: 1970-01-01 .. 2100-01-01 (start, stop, validity)


def parse_time(v: Any, path: str) -> float | None:
    """ISO 8601 text or POSIX seconds -> POSIX seconds within TIME_RANGE; None stays None."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            t = parse_iso8601(v).timestamp()
        except (ValueError, OverflowError):
            raise ServiceError("validation", path, f"{v!r} is not an ISO 8601 date-time") from None
    else:
        t = _number(v, path)
    lo, hi = TIME_RANGE
    if not lo <= t <= hi:
        raise ServiceError(
            "validation",
            path,
            f"{v!r} is outside 1970-01-01T00:00:00Z..2100-01-01T00:00:00Z (POSIX seconds {lo:.0f}..{hi:.0f})",
        )
    return t


def _area(v: Any, path: str) -> GeoArea:
    if not isinstance(v, dict):
        raise ServiceError("validation", path, "expected an object {latitude, longitude, shape, a, b, angle} or null")
    allowed = {"latitude", "longitude", "shape", "a", "b", "angle"}
    for k in v:
        if k not in allowed:
            raise ServiceError("validation", f"{path}.{k}", f"unknown field (expected: {', '.join(sorted(allowed))})")
    for k in ("latitude", "longitude"):
        if k not in v:
            raise ServiceError("validation", f"{path}.{k}", "missing")
    args: dict[str, Any] = {}
    for k in ("latitude", "longitude", "a", "b", "angle"):
        if k in v:
            args[k] = _number(v[k], f"{path}.{k}")
    if "shape" in v:
        args["shape"] = v["shape"]
    try:
        return GeoArea(**args)
    except ValueError as e:
        field_name, _, reason = str(e).partition(": ")
        if reason and field_name.split("/")[0] in allowed:
            raise ServiceError("validation", f"{path}.{field_name.split('/')[0]}", reason) from None
        raise ServiceError("validation", path, str(e)) from None


def parse_dissemination(
    obj: Any,
    base: Dissemination,
    d: MessageDefaults,
    *,
    path: str = "dissemination",
    known_transports: frozenset[str] | None = None,
    now: float | None = None,
) -> Dissemination:
    """Apply a request's ``dissemination`` object on top of ``base`` (defaults, or the stored parameters)."""
    if obj is None:
        return base
    if not isinstance(obj, dict):
        raise ServiceError("validation", path, "expected an object")
    for k in obj:
        if k not in _FIELDS:
            raise ServiceError("validation", f"{path}.{k}", f"unknown field (expected one of: {', '.join(_FIELDS)})")
    dflt = Dissemination.defaults(d)
    changes: dict[str, Any] = {}
    explicit = set(base.explicit)
    for k, v in obj.items():
        p = f"{path}.{k}"
        if v is None and k not in ("destination", "start", "stop"):
            changes[k] = getattr(dflt, k)
            explicit.discard(k)
            continue
        explicit.add(k)
        if k == "transports":
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise ServiceError("validation", p, "expected a list of transport names")
            if known_transports is not None:
                for i, name in enumerate(v):
                    if name not in known_transports:
                        raise ServiceError(
                            "validation",
                            f"{p}[{i}]",
                            f"unknown transport {name!r} (configured: {', '.join(sorted(known_transports)) or 'none'})",
                        )
            changes[k] = tuple(v)
        elif k == "destination":
            if v == _AUTO:
                changes[k] = _AUTO
            else:
                changes[k] = None if v is None else _area(v, p)
        elif k == "traffic_class":
            changes[k] = _int(v, p, 0, 255)
        elif k == "lifetime_s":
            t = _number(v, p)
            lo, hi = LIFETIME_RANGE_S
            if not lo <= t <= hi:
                raise ServiceError("validation", p, f"{t} s is outside {lo:g}..{hi:g} s (GN lifetime)")
            changes[k] = t
        elif k == "hop_limit":
            changes[k] = _int(v, p, 1, 255)
        elif k == "repetition_interval_s":
            t = _number(v, p)
            if d.repetition_s is None:
                raise ServiceError(
                    "validation",
                    p,
                    f"{d.kind.pdu} is not repeated by the facility (each application trigger is one transmission)",
                )
            if not d.min_interval_s <= t <= d.max_interval_s:
                raise ServiceError(
                    "validation",
                    p,
                    f"{t} s is outside the configured bounds "
                    f"{d.min_interval_s:g}..{d.max_interval_s:g} s for {d.kind.pdu}",
                )
            changes[k] = t
        elif k in ("start", "stop"):
            changes[k] = parse_time(v, p)
        elif k == "priority":
            changes[k] = _int(v, p, 0, 7)
        elif k == "retain":
            if not isinstance(v, bool):
                raise ServiceError("validation", p, "expected true or false")
            changes[k] = v
    out = replace(base, **changes, explicit=frozenset(explicit))
    if out.start is not None and out.stop is not None and out.stop <= out.start:
        raise ServiceError("validation", f"{path}.stop", "stop must be after start")
    if now is not None and "stop" in changes and out.stop is not None and out.stop <= now:
        raise ServiceError("validation", f"{path}.stop", f"{iso_utc(out.stop)} is in the past")
    return out
