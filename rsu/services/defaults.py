"""The one table of service defaults, and the readings we chose where the standards are silent.

Every number the facilities services use on their own (the IVI identifier range, the MAPEM size
limit, GN parameters, ...) is here, with the open question it answers; the per-message repetition
intervals, their bounds and the SPATEM rate limit are part of a message type's identity and come
from :mod:`rsu.catalog`. ``docs/services.md`` explains each choice; change them there or here and
nowhere else. A deployment overrides them through :class:`rsu.services.layer.ServicesConfig`
(``overrides``), never by editing the services.

Units: seconds for times, bytes for sizes, GN traffic class as the whole TC octet
(store-carry-forward bit, channel-offload bit, 6-bit TC id), priority 0..7 (7 = most urgent).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, fields, replace
from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind


@dataclass(frozen=True)
class MessageDefaults:
    """Dissemination defaults for one message type of one service."""

    kind: MessageKind
    repetition_s: float | None  # default repetition interval; None = the facility never repeats
    min_interval_s: float  # lower bound of the repetition interval (and the rate limit for TLM)
    max_interval_s: float  # upper bound of the repetition interval
    priority: int  # scheduler priority 0..7, 7 = most urgent
    traffic_class: int  # GN traffic class octet
    lifetime_s: float  # GN packet lifetime / MQTT expiry
    hop_limit: int  # GN maximum hop limit (GBC)
    retain: bool  # MQTT retained message
    area_radius_m: float | None  # radius of the destination area derived from the content; None = SHB


# Aliases accepted wherever a service is named (API path, CLI): message names lead to their service.
SERVICE_ALIASES: dict[str, str] = catalog.SERVICE_ALIASES


def _defaults(
    kind: MessageKind,
    priority: int,
    traffic_class: int,
    lifetime_s: float,
    hop_limit: int,
    retain: bool,
    area_radius_m: float | None,
) -> MessageDefaults:
    """The defaults of ``kind``: its repetition interval and bounds from the catalog (a message the facility
    never repeats gets the rate limit as both bounds), the rest as given."""
    lo = kind.min_interval_s
    hi = kind.max_interval_s if kind.max_interval_s is not None else lo
    return MessageDefaults(
        kind, kind.repetition_s, lo, hi, priority, traffic_class, lifetime_s, hop_limit, retain, area_radius_m
    )


# Per message: priority, GN traffic class, lifetime, hop limit, MQTT retain, area radius. The repetition
# intervals, their bounds and the readings behind them are in rsu.catalog (TLM: never repeated, min_interval_s
# is the per-intersection rate limit, 10 Hz, the common reading of TP TLM_GEN_RATE_BV_01).
MESSAGE_DEFAULTS: dict[str, MessageDefaults] = {
    catalog.SPATEM.name: _defaults(catalog.SPATEM, 7, 1, 1.0, 3, False, 300.0),
    catalog.MAPEM.name: _defaults(catalog.MAPEM, 4, 2, 1.0, 3, True, 300.0),
    catalog.IVIM.name: _defaults(catalog.IVIM, 4, 2, 1.0, 3, True, 1000.0),
    catalog.SSEM.name: _defaults(catalog.SSEM, 6, 1, 1.0, 3, False, 300.0),
    catalog.SREM.name: _defaults(catalog.SREM, 6, 1, 1.0, 3, False, 300.0),
    catalog.RTCMEM.name: _defaults(catalog.RTCMEM, 3, 3, 1.0, 3, False, 1000.0),
}


@dataclass(frozen=True)
class ServiceRules:
    """Numbers that are not per-message dissemination parameters."""

    # IVI: IviIdentificationNumber ::= INTEGER (1..32767, ...) in ISO TS 19321; we allocate
    # root values only, monotonically (a persisted cursor), skipping the provider's active ones.
    ivi_id_min: int = 1
    ivi_id_max: int = 32767
    # IVI cancellation / negation IVIMs are repeated for this long (at the entry's interval,
    # never past validTo), then the entry ends. No source: long enough for vehicles that only
    # hear every few repetitions.
    ivi_termination_repeat_s: float = 10.0
    # RLT: a MAPEM whose UPER encoding exceeds this is fragmented (layerID). 1100 octets leaves
    # room for the 1609.2 signature (with a full certificate), GN and BTP headers inside a
    # 1500-octet frame. The TS limit was not seen.
    mapem_max_bytes: int = 1100
    # TLM: what to do when a SPATEM disagrees with the active MAPEM of its intersection:
    # "reject" (the request fails with a reason), "warn" (sent; the answer carries a warning)
    # or "off".
    tlm_map_check: str = "reject"
    # TLC: a received SREM request without a service window expires this long after it was
    # last heard (vehicles repeat their requests while approaching). No source.
    srem_request_timeout_s: float = 30.0
    # Scheduler: how many active entries the store-and-repeat table holds (bounded queues).
    max_entries: int = 1024
    # IS_DataProviding: events kept for reconnecting subscribers (Last-Event-ID), and the
    # bound of each subscriber's queue (oldest dropped first, counted).
    received_history: int = 1000
    subscriber_queue: int = 1000
    # Receive-side tables other stations fill (rsu.limits): received IVIs kept for the collection
    # (TP IVI_RCV_EVUP: new / update / repeat / outdated), and pending SREM requests. When full,
    # the one heard least recently is forgotten (counted in rsu_limit_hits_total).
    ivi_received_max: int = 4096
    srem_pending_max: int = 1024


RULES = ServiceRules()


# Allowed ranges of the numbers above (what a deployment may set; config and API refuse the rest).
# GN lifetime: the LT field holds 50 ms .. 63 x 100 s (EN 302 636-4-1); GN area distances are
# 16-bit metres; priority and traffic class as described at the top of this module.
LIFETIME_RANGE_S = (0.05, 6300.0)
MESSAGE_DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "priority": (0, 7),
    "traffic_class": (0, 255),
    "lifetime_s": LIFETIME_RANGE_S,
    "hop_limit": (1, 255),
    "area_radius_m": (1, 65535),
}
RULE_RANGES: dict[str, tuple[float, float]] = {
    "ivi_id_min": (1, 32767),
    "ivi_id_max": (1, 32767),  # IviIdentificationNumber root range
    "ivi_termination_repeat_s": (0, 3600),
    "mapem_max_bytes": (200, 65535),  # below 200 no lane fits a fragment; above, no UDP datagram
    "srem_request_timeout_s": (1, 3600),
    "max_entries": (1, 100_000),
    "received_history": (0, 100_000),
    "subscriber_queue": (1, 100_000),
    "ivi_received_max": (1, 1_000_000),  # received IVIs kept (attacker-fed: bounded)
    "srem_pending_max": (1, 1_000_000),  # pending SREM requests kept (attacker-fed: bounded)
}
RULE_CHOICES: dict[str, tuple[str, ...]] = {"tlm_map_check": ("reject", "warn", "off")}


def _type_ok(value: object, hint: Any) -> bool:
    for t in typing.get_args(hint) or (hint,):
        if t is type(None) and value is None:
            return True
        if t is bool and isinstance(value, bool):
            return True
        if (
            t in (int, float, str)
            and isinstance(value, (int, float) if t is float else t)
            and not isinstance(value, bool)
            and (t is not float or math.isfinite(value))
        ):
            return True
    return False


def _expected(hint: Any) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in typing.get_args(hint) or (hint,))


def _in_range(path: str, value: float | None, lo: float, hi: float, unit: str = "") -> list[tuple[str, str]]:
    if value is None or lo <= value <= hi:
        return []
    return [(path, f"expected {lo:g}..{hi:g}{unit}, found {value!r}")]


def _typed(path: str, cls: type[Any], values: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Unknown keys and wrong types of ``values`` as fields of dataclass ``cls``; and the well-typed ones."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls) if f.name != "kind"]
    issues: list[tuple[str, str]] = []
    good: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            issues.append((f"{path}.{key}", f"unknown setting (expected one of: {', '.join(known)})"))
        elif not _type_ok(value, hints[key]):
            issues.append((f"{path}.{key}", f"expected {_expected(hints[key])}, found {value!r}"))
        else:
            good[key] = value
    return issues, good


def rule_issues(overrides: dict[str, Any] | None, path: str = "rules") -> list[tuple[str, str]]:
    """Every problem of ServiceRules overrides at once: (field path, what is wrong with the allowed range)."""
    issues, good = _typed(path, ServiceRules, overrides or {})
    for key, value in good.items():
        if key in RULE_RANGES:
            issues += _in_range(f"{path}.{key}", value, *RULE_RANGES[key])
        if key in RULE_CHOICES and value not in RULE_CHOICES[key]:
            issues.append((f"{path}.{key}", f"expected one of {', '.join(RULE_CHOICES[key])}, found {value!r}"))
    if not issues:
        rules = replace(RULES, **good)
        if rules.ivi_id_min > rules.ivi_id_max:
            issues.append((f"{path}.ivi_id_min", f"{rules.ivi_id_min} is above ivi_id_max {rules.ivi_id_max}"))
    return issues


def message_default_issues(overrides: dict[str, Any] | None, path: str = "message_defaults") -> list[tuple[str, str]]:
    """Every problem of MessageDefaults overrides at once: unknown messages and keys, types, ranges, and
    the repetition bounds: kind.min_interval_s <= min_interval_s <= repetition_s <= max_interval_s <=
    kind.max_interval_s (the catalog's hard limits; SPATEM is never repeated)."""
    issues: list[tuple[str, str]] = []
    for name, values in (overrides or {}).items():
        p = f"{path}.{name}"
        if name not in MESSAGE_DEFAULTS:
            issues.append((p, f"not a message type (expected one of: {', '.join(MESSAGE_DEFAULTS)})"))
            continue
        if not isinstance(values, dict):
            issues.append((p, f"expected a mapping of settings, found {values!r}"))
            continue
        found, good = _typed(p, MessageDefaults, values)
        issues += found
        for key, value in good.items():
            if key in MESSAGE_DEFAULT_RANGES:
                issues += _in_range(f"{p}.{key}", value, *MESSAGE_DEFAULT_RANGES[key])
        kind = MESSAGE_DEFAULTS[name].kind
        d = replace(
            MESSAGE_DEFAULTS[name],
            **{k: v for k, v in good.items() if k in ("repetition_s", "min_interval_s", "max_interval_s")},
        )
        lo, hi = kind.min_interval_s, kind.max_interval_s
        if hi is None:  # never repeated: only the rate limit applies
            if d.repetition_s is not None:
                issues.append(
                    (
                        f"{p}.repetition_s",
                        f"{kind.pdu} is not repeated by the facility (each "
                        f"application trigger is one transmission): expected null, found {d.repetition_s!r}",
                    )
                )
            issues += _in_range(f"{p}.min_interval_s", d.min_interval_s, lo, 60.0, " s")
            continue
        for key in ("min_interval_s", "max_interval_s"):
            issues += _in_range(
                f"{p}.{key}",
                getattr(d, key),
                lo,
                hi,
                f" s (at most {kind.max_rate_hz:g} Hz, at least every {hi:g} s for {kind.pdu})",
            )
        if d.repetition_s is None:
            issues.append(
                (
                    f"{p}.repetition_s",
                    f"{kind.pdu} is repeated while active: expected a number of "
                    f"seconds {d.min_interval_s:g}..{d.max_interval_s:g}, found null",
                )
            )
        elif lo <= d.min_interval_s <= d.max_interval_s <= hi:
            issues += _in_range(
                f"{p}.repetition_s",
                d.repetition_s,
                d.min_interval_s,
                d.max_interval_s,
                f" s (min_interval_s..max_interval_s for {kind.pdu})",
            )
        if d.min_interval_s > d.max_interval_s:
            issues.append((f"{p}.min_interval_s", f"{d.min_interval_s:g} is above max_interval_s {d.max_interval_s:g}"))
    return issues


def message_defaults(name: str, overrides: dict[str, Any] | None = None) -> MessageDefaults:
    """Defaults for message ``name`` (``spatem`` ...), with deployment overrides applied."""
    base = MESSAGE_DEFAULTS[name]
    extra = (overrides or {}).get(name)
    return replace(base, **extra) if extra else base
