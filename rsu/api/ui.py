"""The web view: ``/ui``, one page served by the daemon on the API's port, and the two routes it reads.

Routes (every one read-only; the role each needs is in :data:`ROLES`; logging in with a bearer token:
:mod:`rsu.api.ui_session`)::

    GET /ui               the page (HTML; its script and style sheet are /ui/ui.js and /ui/ui.css)
    GET /ui/{asset}       ui.js, ui.css: package data (rsu/api/static/ui/), no CDN, no build step
    GET /v1/ui/state      everything the page shows, as JSON (the page reads it every few seconds)
    GET /v1/ui/events     server-sent events: ``spat`` (signal-group states of the SPATEMs this RSU
                          sends and receives), bounded per client

Layer: takes the services facade the API already has (``app[FACADE_KEY]``: IS_Triggering reads and
IS_DataProviding) and :class:`UiSources` (status, drop counters, transports, clock); gives HTTP. What
is computed from those is in :mod:`rsu.api.ui_view` (sans-I/O); intersections are drawn by
:func:`rsu.maps.svg.render` (server-side SVG, one per intersection of each active MAPEM).

Event streams are bounded: at most :data:`MAX_STREAMS` at once (one more answers 503), and a client
that falls :data:`STREAM_QUEUE` events behind, or does not take a write within
:data:`WRITE_TIMEOUT_S`, is closed; both are counted through ``on_close`` (``ui_streams_full``,
``ui_slow``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rsu import __version__
from rsu.aio import wait_event
from rsu.api.app import FACADE_KEY, STREAMS_KEY
from rsu.api.ui_view import DropRates, clock_health, expiry, ivim_zones, spat_groups
from rsu.services.errors import ServiceError

if TYPE_CHECKING:
    from rsu.api.app import ServicesFacade

log = logging.getLogger("rsu.api.ui")

# (method, path) -> the role it needs (rsu.api.guard's role table takes these as they are). The page and its
# assets hold no data: public, so that a browser without a client certificate gets the login form; the
# session routes (rsu.api.ui_session) authenticate by themselves
ROLES: dict[tuple[str, str], str] = {
    ("GET", "/ui"): "public",
    ("GET", "/ui/{asset}"): "public",
    ("GET", "/ui/session"): "public",
    ("POST", "/ui/login"): "public",
    ("POST", "/ui/logout"): "public",
    ("GET", "/v1/ui/state"): "monitor",
    ("GET", "/v1/ui/events"): "monitor",
}

ASSETS = {"index.html": "text/html", "ui.js": "text/javascript", "ui.css": "text/css"}
MAX_STREAMS = 16  # event streams open at once
STREAM_QUEUE = 256  # received SPATEM events a client may be behind before it is closed as slow
WRITE_TIMEOUT_S = 10.0  # a client that does not take an event within this is closed as slow
POLL_S = 0.5  # how often a stream looks at the SPATEMs this RSU sends (the store-and-repeat table)
KEEPALIVE_S = 15.0
MAX_MAP_CACHE = 64  # drawn intersections kept (an entry's drawing is redrawn when its generation changes)


@dataclass
class UiSources:
    """What the web view reads besides the services facade, each a callable read at request time.

    ``status()``: :func:`rsu.ops.status.daemon_status`; ``drop_totals()``: (transport, reason) ->
    messages dropped so far; ``transports()``: one dict per transport (name, kind, state, details);
    ``now()``: POSIX seconds (the daemon's clock); ``on_close(reason)``: an event stream the bounds
    closed or refused."""

    status: Callable[[], dict]
    drop_totals: Callable[[], dict[tuple[str, ...], float]]
    transports: Callable[[], list[dict]]
    now: Callable[[], float]
    on_close: Callable[[str], None] = lambda reason: None
    rates: DropRates = field(default_factory=DropRates)
    maps: dict[tuple[str, int], list[dict]] = field(default_factory=dict)
    streams: int = 0


UI_KEY = web.AppKey("rsu.ui", UiSources)


def add_routes(app: web.Application, sources: UiSources) -> None:
    """Add the web view's routes (:data:`ROLES`) to the API application ``app`` (made by create_app)."""
    app[UI_KEY] = sources
    r = app.router
    r.add_get("/ui", _page)
    r.add_get("/ui/{asset}", _asset)
    r.add_get("/v1/ui/state", _state)
    r.add_get("/v1/ui/events", _events)


# ---------------------------------------------------------------------------------------- daemon side


def daemon_sources(
    *, status: Callable[[], dict], metrics: Any, transports: Callable[[], Any], now: Callable[[], float]
) -> UiSources:
    """:class:`UiSources` over the daemon's parts: its status, its :class:`rsu.ops.metrics.Metrics` (drop
    counters, send rates, connection closes) and its current :class:`rsu.transports.dispatch.TransportSet`."""

    def drop_totals() -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for family in metrics.dropped.collect():
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[(s.labels["transport"], s.labels["reason"])] = s.value
        return out

    def sent_rates() -> dict[str, float]:
        out: dict[str, float] = {}
        for family in metrics.rate.collect():
            for s in family.samples:
                out[s.labels["transport"]] = out.get(s.labels["transport"], 0.0) + s.value
        return out

    def transport_states() -> list[dict]:
        ts = transports()
        rates = sent_rates()
        rows = []
        for name, t in ts.transports.items() if ts is not None else ():
            connected = getattr(t, "connected", None)
            cfg = getattr(t, "config", None)
            if isinstance(connected, asyncio.Event):
                row = {
                    "name": name,
                    "kind": "mqtt",
                    "state": "connected" if connected.is_set() else "disconnected",
                    "detail": f"{getattr(cfg, 'host', '?')}:{getattr(cfg, 'port', '?')}",
                }
            else:
                row = {
                    "name": name,
                    "kind": "gn-udp",
                    "state": "up",
                    "detail": f"{getattr(cfg, 'group', '?')}:{getattr(cfg, 'port', '?')}",
                }
            row["sent_per_s"] = round(rates.get(name, 0.0), 3)
            rows.append(row)
        return rows

    return UiSources(
        status=status,
        drop_totals=drop_totals,
        transports=transport_states,
        now=now,
        on_close=lambda reason: metrics.api_connections_closed.labels(reason).inc(),
    )


# ---------------------------------------------------------------------------------------- handlers


def _read_asset(name: str) -> bytes:
    return resources.files("rsu.api").joinpath("static", "ui", name).read_bytes()


async def _page(request: web.Request) -> web.Response:
    return web.Response(
        body=_read_asset("index.html"), content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-cache"}
    )


async def _asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS:  # a fixed set: no path ever reaches the file system
        raise web.HTTPNotFound(reason=f"/ui/{name}: no such asset (expected one of: {', '.join(ASSETS)})")
    return web.Response(
        body=_read_asset(name), content_type=ASSETS[name], charset="utf-8", headers={"Cache-Control": "no-cache"}
    )


def _facade(request: web.Request) -> ServicesFacade:
    return request.app[FACADE_KEY]  # type: ignore[return-value]


def _payloads(facade: ServicesFacade, service: str, message: str) -> list[tuple[dict, dict]]:
    """(entry, payload JER) of the service's entries of ``message`` that have a payload."""
    out = []
    for entry in facade.list(service):
        if entry.get("message") != message:
            continue
        try:
            payload = facade.get(service, entry["id"]).get("payload")
        except ServiceError:  # ended between list and get
            continue
        if isinstance(payload, dict):
            out.append((entry, payload))
    return out


def _intersections(src: UiSources, facade: ServicesFacade) -> list[dict]:
    from rsu.maps.geometry import MapError, intersections
    from rsu.maps.svg import render

    out: list[dict] = []
    seen: set[tuple[str, int]] = set()
    for entry, mapem in _payloads(facade, "rlt", "mapem"):
        key = (entry["id"], entry.get("generation", 0))
        seen.add(key)
        drawn = src.maps.get(key)
        if drawn is None:
            try:
                drawn = [
                    {
                        "key": x.key,
                        "name": x.name,
                        "revision": x.revision,
                        "lanes": len(x.lanes),
                        "svg": render(x, inline=True),
                    }
                    for x in intersections(mapem)
                ]
            except (MapError, ValueError, KeyError, TypeError) as e:
                drawn = [{"key": None, "error": f"cannot draw this MAPEM: {e}"}]
            src.maps[key] = drawn
        out.extend({"entry": entry["id"], "generation": key[1], "state": entry.get("state"), **d} for d in drawn)
    for key in [k for k in src.maps if k not in seen]:
        del src.maps[key]
    while len(src.maps) > MAX_MAP_CACHE:
        del src.maps[next(iter(src.maps))]
    return out


def _sent_spat(facade: ServicesFacade) -> list[dict]:
    out = []
    for entry, spatem in _payloads(facade, "tlm", "spatem"):
        for key, groups in spat_groups(spatem).items():
            out.append(
                {
                    "source": "sent",
                    "entry": entry["id"],
                    "intersection": key,
                    "groups": groups,
                    "station_id": (spatem.get("header") or {}).get("stationID"),
                }
            )
    return out


async def _state(request: web.Request) -> web.Response:
    """GET /v1/ui/state: everything the page shows (JSON)."""
    src = request.app[UI_KEY]
    facade = _facade(request)
    now = src.now()
    status = src.status()
    src.rates.observe(now, src.drop_totals())
    drops = [
        {"transport": k[0], "reason": k[1], "total": total, "per_s": round(rate, 3)}
        for k, (total, rate) in sorted(src.rates.rates().items())
        if total > 0
    ]
    ivim = [
        {
            "entry": e["id"],
            "state": e.get("state"),
            "identification": e.get("identification"),
            "zones": ivim_zones(payload),
        }
        for e, payload in _payloads(facade, "ivi", "ivim")
    ]
    body = {
        "version": __version__,
        "now": status.get("now"),
        "station_id": status.get("station_id"),
        "security": status.get("security"),
        "intersections": _intersections(src, facade),
        "spat": _sent_spat(facade),
        "ivim": ivim,
        "tlc": {"requests": facade.pending_requests(), "messages": [e for e in facade.list("tlc")]},
        "expiry": expiry(status, now),
        "clock": clock_health(status.get("clock")),
        "transports": src.transports(),
        "drops": drops,
        "store": status.get("messages") or [],
    }
    return web.json_response(body, headers={"Cache-Control": "no-cache"})


def _frame(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _events(request: web.Request) -> web.StreamResponse:
    """GET /v1/ui/events: ``spat`` events, one per intersection whose signal-group states a SPATEM this RSU
    sends (an entry triggered or updated) or receives gives; the sent ones are all sent once on connect."""
    src = request.app[UI_KEY]
    if src.streams >= MAX_STREAMS:
        src.on_close("ui_streams_full")
        raise web.HTTPServiceUnavailable(reason=f"at most {MAX_STREAMS} web-view event streams at once")
    facade = _facade(request)
    sub = facade.subscribe(["tlm"], ["received"])
    wake = asyncio.Event()
    streams = request.app[STREAMS_KEY]
    streams.add(wake)
    sub.set_waker(wake.set)
    src.streams += 1
    sent_seen: dict[str, tuple[Any, Any]] = {}
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    try:
        await resp.prepare(request)
        await resp.write(b": rsu web view events\n\n")
        idle = 0.0
        while not getattr(wake, "closing", False):
            frames = _sent_changes(facade, sent_seen)
            for event in sub.drain():
                if event.get("message") == "spatem" and isinstance(event.get("pdu"), dict):
                    for key, groups in spat_groups(event["pdu"]).items():
                        frames.append(
                            _frame(
                                "spat",
                                {
                                    "source": "received",
                                    "intersection": key,
                                    "groups": groups,
                                    "station_id": event.get("station_id"),
                                    "at": event.get("received_at"),
                                },
                            )
                        )
            if sub.dropped or len(frames) > STREAM_QUEUE:
                src.on_close("ui_slow")
                log.info("web view event stream closed: the client fell behind")
                break
            if not frames and idle >= KEEPALIVE_S:
                frames.append(b": keepalive\n\n")
            if frames:
                idle = 0.0
                await asyncio.wait_for(resp.write(b"".join(frames)), WRITE_TIMEOUT_S)
            wake.clear()
            if not len(sub) and not await wait_event(wake, POLL_S):
                idle += POLL_S
    except TimeoutError:
        src.on_close("ui_slow")
        log.info("web view event stream closed: a write took longer than %.0f s", WRITE_TIMEOUT_S)
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        sub.close()
        streams.discard(wake)
        src.streams -= 1
    return resp


def _sent_changes(facade: ServicesFacade, seen: dict[str, tuple[Any, Any]]) -> list[bytes]:
    """``spat`` frames for the TLM entries that are new or changed since ``seen`` (updated in place)."""
    frames: list[bytes] = []
    current: set[str] = set()
    for entry in facade.list("tlm"):
        if entry.get("message") != "spatem":
            continue
        current.add(entry["id"])
        mark = (entry.get("generation"), entry.get("updated_at"))
        if seen.get(entry["id"]) == mark:
            continue
        try:
            payload = facade.get("tlm", entry["id"]).get("payload")
        except ServiceError:  # ended between list and get
            continue
        seen[entry["id"]] = mark
        if isinstance(payload, dict):
            for key, groups in spat_groups(payload).items():
                frames.append(
                    _frame(
                        "spat",
                        {
                            "source": "sent",
                            "entry": entry["id"],
                            "intersection": key,
                            "groups": groups,
                            "at": entry.get("updated_at"),
                        },
                    )
                )
    for ident in [i for i in seen if i not in current]:
        del seen[ident]
    return frames
