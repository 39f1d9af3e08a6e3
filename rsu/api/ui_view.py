"""What the web view (/ui) shows, computed from plain data (sans-I/O): no HTTP, no clock of its own.

Layer: takes the JER JSON of the messages on the air (and received), the daemon's status
(:func:`rsu.ops.status.daemon_status`), counter totals and ``now`` (POSIX seconds); gives JSON-ready
dicts for :mod:`rsu.api.ui`, which serves them.

* :func:`spat_groups`: signal group -> current eventState and colour class, per intersection, of a
  SPATEM's JER JSON (what the page's live view and the SSE events carry).
* :func:`ivim_zones`: the GLC zones of an IVIM (zone id, kind, reference position, node count) and
  which GIV/RCC containers use them.
* :func:`expiry`: AT and trust-list validity with a ``warning`` flag under a threshold (hours).
* :class:`DropRates`: drop counters sampled over a sliding window, giving per-second rates.
* :func:`clock_health`: the "Clock and GNSS" panel's rows and the unsynchronized-clock banner, from the
  status's ``clock`` part (:meth:`rsu.health.monitor.HealthMonitor.status`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rsu.clock import parse_iso8601
from rsu.maps.svg import state_class

WARN_HOURS = 24.0  # an AT or trust list that expires sooner than this is shown as a warning
RATE_WINDOW_S = 60.0  # drop rates: the counters' increase over this window
RATE_SAMPLE_S = 1.0  # at most one sample per second is kept (so the window holds at most 61)


def intersection_key(ref: dict) -> str:
    """The key rsu.maps uses for an IntersectionReferenceID (``1201``, or ``7.1201`` with a region)."""
    region = ref.get("region")
    return f"{region}.{ref.get('id')}" if region is not None else str(ref.get("id"))


def spat_groups(spatem: dict) -> dict[str, dict[str, dict[str, str]]]:
    """intersection key -> signal group (as a string) -> {"state": eventState, "class": red|amber|...}.

    Takes the JER JSON of a SPATEM (header optional); the first MovementEvent of a group is its
    current state, a group without events is ``unavailable``."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for state in (spatem.get("spat") or {}).get("intersections") or []:
        groups: dict[str, dict[str, str]] = {}
        for movement in state.get("states") or []:
            events = movement.get("state-time-speed") or []
            event_state = events[0].get("eventState", "unavailable") if events else "unavailable"
            groups[str(movement.get("signalGroup"))] = {"state": event_state, "class": state_class(event_state)}
        out[intersection_key(state.get("id") or {})] = groups
    return out


def ivim_zones(ivim: dict) -> list[dict[str, Any]]:
    """The zones of an IVIM's GLC containers: ``{"zone_id", "kind", "latitude", "longitude", "nodes",
    "used_as"}`` (reference position in degrees; ``used_as``: detection / relevance / minimum-awareness
    by a GIV or RCC container of the same IVIM)."""
    optional = (ivim.get("ivi") or {}).get("optional") or []
    usage: dict[int, set[str]] = {}
    for container in optional:
        if not isinstance(container, dict):
            continue
        for name in ("giv", "rcc", "tc", "lac"):
            for part in container.get(name) or []:
                if not isinstance(part, dict):
                    continue
                for field, use in (
                    ("detectionZoneIds", "detection"),
                    ("relevanceZoneIds", "relevance"),
                    ("minimumAwarenessZoneIds", "awareness"),
                    ("zoneIds", "relevance"),
                ):
                    for zid in part.get(field) or []:
                        usage.setdefault(zid, set()).add(use)
    zones: list[dict[str, Any]] = []
    for container in optional:
        glc = container.get("glc") if isinstance(container, dict) else None
        if not isinstance(glc, dict):
            continue
        ref = glc.get("referencePosition") or {}
        lat, lon = ref.get("latitude"), ref.get("longitude")
        for part in glc.get("parts") or []:
            zone = part.get("zone") or {}
            kind = next(iter(zone), "?")
            body = zone.get(kind) or {}
            line = body.get("line") if isinstance(body, dict) else None
            points: Any = next(iter(line.values()), []) if isinstance(line, dict) and line else []
            zones.append(
                {
                    "zone_id": part.get("zoneId"),
                    "kind": kind,
                    "latitude": lat / 1e7 if isinstance(lat, int) else None,
                    "longitude": lon / 1e7 if isinstance(lon, int) else None,
                    "nodes": len(points) if isinstance(points, list) else 0,
                    "used_as": sorted(usage.get(part.get("zoneId"), ())),
                }
            )
    return zones


def _hours_until(iso: str | None, now: float) -> float | None:
    if not iso:
        return None
    try:
        return round((parse_iso8601(iso).timestamp() - now) / 3600.0, 3)
    except ValueError:
        return None


def expiry(status: dict, now: float, warn_hours: float = WARN_HOURS) -> dict[str, Any]:
    """AT and trust-list validity from the daemon's status: ``{"warn_hours", "items": [...], "warnings"}``.

    Each item: ``{"what", "name", "hours_left", "warning"}``; a warning when fewer than ``warn_hours``
    are left (or the item has expired, or no AT is held while security is on). ``warnings``: one line per
    kind (AT, EC, ECTL, CTL, CRL) that has items under the threshold."""
    items: list[dict[str, Any]] = []

    def add(what: str, name: str, hours: float | None) -> None:
        items.append(
            {"what": what, "name": name, "hours_left": hours, "warning": hours is not None and hours < warn_hours}
        )

    for t in status.get("authorization_tickets") or []:
        used = ", ".join(t.get("usedFor") or []) or "not in use"
        add("AT", f"{t.get('label') or t.get('hashedId8')} ({used})", t.get("hoursToExpiry"))
    pki = status.get("pki") or {}
    if pki.get("ec"):
        add("EC", pki["ec"].get("hashedId8", "?"), pki["ec"].get("hoursLeft"))
    trust = pki.get("trust") or {}
    if trust.get("ectl"):
        add("ECTL", f"sequence {trust['ectl'].get('sequence')}", _hours_until(trust["ectl"].get("nextUpdate"), now))
    for root_id, root in (trust.get("roots") or {}).items():
        for name in ("ctl", "crl"):
            if root.get(name):
                add(
                    name.upper(),
                    f"{root.get('name') or root_id} sequence {root[name].get('sequence')}",
                    _hours_until(root[name].get("nextUpdate"), now),
                )
    warnings: list[str] = []
    for what in dict.fromkeys(i["what"] for i in items):  # one line per kind: the soonest, and how many
        due = sorted((i for i in items if i["what"] == what and i["warning"]), key=lambda i: i["hours_left"])
        if len(due) == 1:
            warnings.append(f"{what} {due[0]['name']}: {due[0]['hours_left']:.1f} h left")
        elif due:
            warnings.append(
                f"{what}: {len(due)} expire within {warn_hours:g} h; the soonest, {due[0]['name']}: "
                f"{due[0]['hours_left']:.1f} h left"
            )
    if status.get("security") == "on" and not status.get("authorization_tickets"):
        warnings.append("security is on but no authorization ticket is held")
    return {"warn_hours": warn_hours, "items": items, "warnings": warnings}


class DropRates:
    """Counter totals sampled over a sliding window: per-key total and rate per second.

    Takes ``observe(now, totals)`` (totals: key -> counter value); ``rows(now)`` gives the rate of each
    key over the samples in the window. Bounded: one sample per :data:`RATE_SAMPLE_S` at most, those
    older than the window are dropped."""

    def __init__(self, window_s: float = RATE_WINDOW_S, sample_s: float = RATE_SAMPLE_S) -> None:
        self.window_s = window_s
        self.sample_s = sample_s
        self._samples: deque[tuple[float, dict[tuple[str, ...], float]]] = deque()

    def observe(self, now: float, totals: dict[tuple[str, ...], float]) -> None:
        if len(self._samples) > 1 and now - self._samples[-2][0] < self.sample_s:
            self._samples[-1] = (now, dict(totals))  # within a sample period of the one before: replace
        else:
            self._samples.append((now, dict(totals)))
        while len(self._samples) > 1 and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()

    def rates(self) -> dict[tuple[str, ...], tuple[float, float]]:
        """key -> (total, per second over the window; 0 with a single sample)."""
        if not self._samples:
            return {}
        t0, first = self._samples[0]
        t1, last = self._samples[-1]
        span = t1 - t0
        return {k: (v, (v - first.get(k, 0.0)) / span if span > 0 else 0.0) for k, v in last.items()}


FIX_NAMES = {0: "unknown", 1: "no fix", 2: "2D", 3: "3D"}  # gpsd's TPV mode, as the panel names it


def _ms(seconds: Any, signed: bool) -> str:
    if not isinstance(seconds, (int, float)):
        return "unknown"
    return f"{seconds * 1000:+.3f} ms" if signed else f"{seconds * 1000:.3f} ms"


def clock_health(clock: dict | None) -> dict[str, Any]:
    """The "Clock and GNSS" panel from the status's ``clock`` object (None: the daemon gave none).

    Gives ``{"known", "synchronized", "rows", "gnss", "warning"}``: ``rows`` and ``gnss`` (None without
    ``clock.gpsd``) are lists of ``{"field", "label", "value", "warning"}`` the page shows as they are;
    ``warning`` is the banner's sentence while the clock is not synchronized (None while it is): under
    ``stop`` the timed messages are not being sent, under ``warn`` they are sent with that clock."""
    if not clock:
        return {"known": False, "synchronized": None, "rows": [], "gnss": None, "warning": None}
    synced = bool(clock.get("synchronized"))
    source = str(clock.get("source") or "none")
    policy = str(clock.get("policy") or "warn")
    timed = [str(m) for m in clock.get("timed_messages") or []]
    timed_text = ", ".join(timed) or "none"

    def row(field: str, label: str, value: Any, warning: bool = False) -> dict[str, Any]:
        return {"field": field, "label": label, "value": "" if value is None else str(value), "warning": warning}

    rows = [
        row("state", "clock", "synchronized" if synced else "not synchronized", not synced),
        row("source", "source", source, source == "none"),
        row("offset", "estimated offset", _ms(clock.get("offset_s"), True)),
        row("error", "error bound", _ms(clock.get("error_s"), False)),
        row("policy", "when not synchronized", policy),
        row("timed", "timed messages", timed_text),
        row("detail", "detail", clock.get("detail")),
        row("checked", "checked at", clock.get("checked_at")),
    ]
    warning = None
    if not synced:
        why = f"Clock NOT synchronized (source {source}): "
        if not timed:
            warning = why + "no message is timed (clock.timed_messages is empty)"
        elif policy == "stop":
            warning = why + f"timed messages ({timed_text}) are NOT being sent (clock.unsynchronized: stop)"
        else:
            warning = why + (
                f"timed messages ({timed_text}) are sent with an unsynchronized clock (clock.unsynchronized: warn)"
            )
    gnss_rows = None
    gnss = clock.get("gnss")
    if isinstance(gnss, dict):
        connected = bool(gnss.get("connected"))
        mode = gnss.get("mode")
        fix = FIX_NAMES.get(mode, str(mode)) if isinstance(mode, int) else "unknown"
        lat, lon, alt = gnss.get("latitude"), gnss.get("longitude"), gnss.get("altitude_m")
        if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
            where = f"{lat:.7f}, {lon:.7f}" + (f", {alt:.1f} m" if isinstance(alt, (int, float)) else "")
        else:
            where = "no position"
        used, seen = gnss.get("satellites_used"), gnss.get("satellites_seen")
        sats = "unknown" if used is None else f"{used}" + (f" (of {seen} seen)" if seen is not None else "")
        gnss_rows = [
            row("gnss-connected", "gpsd", "connected" if connected else "not connected", not connected),
            row("gnss-fix", "fix", fix, mode not in (2, 3)),
            row("gnss-position", "position", where),
            row("gnss-satellites", "satellites used", sats),
        ]
    return {"known": True, "synchronized": synced, "rows": rows, "gnss": gnss_rows, "warning": warning}
