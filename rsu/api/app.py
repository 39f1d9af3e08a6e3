"""The HTTP API: IS_Triggering (trigger / update / terminate / list) and IS_DataProviding (server-sent events).

:func:`create_app` takes a *facade* (in the daemon: :class:`rsu.services.layer.ServiceLayer`) and
returns an ``aiohttp.web.Application``; :func:`serve` binds it (127.0.0.1 by default). The
OpenAPI 3 document is served at ``/openapi.json``.

Routes (``{service}``: tlm, rlt, ivi, tlc, gpc, or a message name such as ivim)::

    GET    /v1/messages                          every active entry (the store-and-repeat table)
    GET    /v1/{service}/messages                the service's active entries
    POST   /v1/{service}/messages                trigger            -> 201 + identification
    GET    /v1/{service}/messages/{id}           one entry, with its payload
    PUT    /v1/{service}/messages/{id}           update / replace   -> 200
    DELETE /v1/{service}/messages/{id}[?mode=]   terminate / delete -> 200
    POST   /v1/{service}/messages/{id}/terminate terminate with a body ({"mode": ...}, {"request": ...})
    GET    /v1/tlc/requests                      pending SREM requests (what a decision refers to)
    GET    /v1/received[?service=&type=]         IS_DataProviding event stream (text/event-stream)
    GET    /v1/status                            counters
    GET    /openapi.json

Failures answer ``{"error": {"code", "path", "reason", "message"}}`` with the status of ``STATUS``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from aiohttp import web

from rsu.aio import wait_event
from rsu.api import DEFAULT_HOST, DEFAULT_PORT
from rsu.services.errors import ServiceError
from rsu.services.ports import DataProviding, ServiceStats, Triggering

if TYPE_CHECKING:
    import ssl

    from rsu.api.guard import Guard
    from rsu.api.limits import ConnectionLimits

log = logging.getLogger("rsu.api")

STATUS: dict[str, int] = {
    "bad_request": 400,
    "validation": 422,
    "ssp_not_permitted": 403,
    "unknown_service": 404,
    "unknown_id": 404,
    "unknown_request": 404,
    "revision_mismatch": 409,
    "signal_group_mismatch": 409,
    "already_active": 409,
    "id_in_use": 409,
    "id_exhausted": 409,
    "not_active": 409,
    "capacity": 503,
    "store_failure": 503,
}

FACADE_KEY = web.AppKey("rsu.services", object)
STREAMS_KEY = web.AppKey("rsu.streams", set)
KEEPALIVE_KEY = web.AppKey("rsu.keepalive", float)


class ServicesFacade(Triggering, DataProviding, ServiceStats, Protocol):
    """What the API needs from the services layer: IS_Triggering, IS_DataProviding and ``stats`` (GET
    /v1/status). ``ServiceLayer`` implements it; the daemon serves :class:`rsu.api.services.ApiServices`."""


def _error(code: str, path: str, reason: str, status: int | None = None) -> web.Response:
    body = {
        "error": {"code": code, "path": path, "reason": reason, "message": f"{code}: {path or '(request)'}: {reason}"}
    }
    return web.json_response(body, status=status or STATUS.get(code, 400))


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ServiceError as e:
        if e.code == "store_failure":  # its reason names files and the OS error: the log has it, not the client
            log.error("%s %s: %s", request.method, request.path, e)
            e = ServiceError(
                e.code, e.path, "the state store could not be written; nothing was applied (see the daemon log)"
            )
        return web.json_response({"error": e.to_json()}, status=STATUS.get(e.code, 400))
    except web.HTTPException as e:
        if e.status >= 400 and e.content_type != "application/json":
            code = {404: "not_found", 405: "method_not_allowed"}.get(e.status, "http_error")
            return _error(code, "", e.reason, e.status)
        raise
    except Exception:  # a bug: answer 500 with a JSON body, keep serving
        log.exception("internal error on %s %s", request.method, request.path)
        return _error("internal", "", "internal error (see the daemon log)", 500)


async def _body(request: web.Request, *, optional: bool = False) -> dict:
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise ServiceError("bad_request", "", "empty body: expected a JSON object")
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ServiceError("bad_request", "", f"body is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ServiceError("bad_request", "", "body must be a JSON object")
    return obj


def _facade(request: web.Request) -> ServicesFacade:
    return request.app[FACADE_KEY]  # type: ignore[return-value]


async def _list_all(request: web.Request) -> web.Response:
    service = request.query.get("service")
    return web.json_response({"messages": _facade(request).list(service or None)})


async def _list(request: web.Request) -> web.Response:
    return web.json_response({"messages": _facade(request).list(request.match_info["service"])})


async def _trigger(request: web.Request) -> web.Response:
    body = await _body(request)
    answer = _facade(request).trigger(request.match_info["service"], body)
    location = f"/v1/{answer['service']}/messages/{quote(str(answer.get('id', '')), safe='')}"
    return web.json_response(answer, status=201, headers={"Location": location})


async def _get(request: web.Request) -> web.Response:
    return web.json_response(_facade(request).get(request.match_info["service"], request.match_info["id"]))


async def _update(request: web.Request) -> web.Response:
    body = await _body(request)
    return web.json_response(_facade(request).update(request.match_info["service"], request.match_info["id"], body))


async def _delete(request: web.Request) -> web.Response:
    req: dict = {}
    for k in request.query:
        if k not in ("mode", "request"):
            raise ServiceError("validation", k, "unknown query parameter (expected mode or request)")
        req[k] = request.query[k]
    return web.json_response(_facade(request).terminate(request.match_info["service"], request.match_info["id"], req))


async def _terminate(request: web.Request) -> web.Response:
    body = await _body(request, optional=True)
    return web.json_response(_facade(request).terminate(request.match_info["service"], request.match_info["id"], body))


async def _requests(request: web.Request) -> web.Response:
    return web.json_response({"requests": _facade(request).pending_requests()})


async def _status(request: web.Request) -> web.Response:
    return web.json_response(_facade(request).stats())


async def _openapi(request: web.Request) -> web.Response:
    from rsu.api.openapi import document

    return web.json_response(document())


def _multi(request: web.Request, name: str) -> list[str]:
    out: list[str] = []
    for v in request.query.getall(name, []):
        out.extend(x for x in v.split(",") if x)
    return out


def _jsonable(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray)):
        return bytes(o).hex()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def _sse(event: dict) -> bytes:
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=_jsonable)
    return f"id: {event['id']}\nevent: {event.get('type', 'received')}\ndata: {data}\n\n".encode()


async def _received(request: web.Request) -> web.StreamResponse:
    """IS_DataProviding: server-sent events, one per received message (and per ended entry)."""
    last = request.headers.get("Last-Event-ID") or request.query.get("last_id")
    last_id = None
    if last is not None:
        try:
            last_id = int(last)
        except ValueError:
            raise ServiceError("validation", "last_id", f"{last!r} is not an event id") from None
    for t in _multi(request, "type"):
        if t not in ("received", "ended", "service"):
            raise ServiceError("validation", "type", f"{t!r} (expected received, ended or service)")
    sub = _facade(request).subscribe(_multi(request, "service") or None, _multi(request, "type") or None, last_id)
    wake = asyncio.Event()
    streams = request.app[STREAMS_KEY]
    streams.add(wake)
    sub.set_waker(wake.set)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    try:
        await resp.prepare(request)
        await resp.write(b": IS_DataProviding stream\n\n")
        keepalive = request.app[KEEPALIVE_KEY]
        while not getattr(wake, "closing", False):
            for event in sub.drain():
                await resp.write(_sse(event))
            wake.clear()
            if len(sub):
                continue
            if not await wait_event(wake, keepalive):
                await resp.write(b": keepalive\n\n")
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        sub.close()
        streams.discard(wake)
    return resp


async def _close_streams(app: web.Application) -> None:
    streams: set[Any] = app[STREAMS_KEY]
    for wake in list(streams):
        wake.closing = True  # type: ignore[attr-defined]
        wake.set()


def create_app(facade: ServicesFacade, *, keepalive_s: float = 15.0, guard: Guard | None = None) -> web.Application:
    """The API application around ``facade``; ``guard`` (rsu.api.guard) authenticates, authorizes, limits
    and audits every request before its handler runs (None: no gate, as in unit tests of the routes)."""
    middlewares = [_errors] if guard is None else [_errors, guard.middleware]
    app = web.Application(middlewares=middlewares, client_max_size=4 * 1024 * 1024)
    app[FACADE_KEY] = facade
    app[STREAMS_KEY] = set()
    app[KEEPALIVE_KEY] = keepalive_s
    app.on_shutdown.append(_close_streams)
    r = app.router
    r.add_get("/openapi.json", _openapi)
    r.add_get("/v1/status", _status)
    r.add_get("/v1/messages", _list_all)
    r.add_get("/v1/received", _received)
    r.add_get("/v1/tlc/requests", _requests)
    r.add_get("/v1/{service}/messages", _list)
    r.add_post("/v1/{service}/messages", _trigger)
    r.add_get("/v1/{service}/messages/{id}", _get)
    r.add_put("/v1/{service}/messages/{id}", _update)
    r.add_delete("/v1/{service}/messages/{id}", _delete)
    r.add_post("/v1/{service}/messages/{id}/terminate", _terminate)
    return app


TABLE_KEY = web.AppKey("rsu.connections", object)


async def serve(
    app: web.Application,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    limits: ConnectionLimits | None = None,
    on_close: Callable[[str], None] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Start serving ``app`` on host:port (127.0.0.1:8301 by default); ``await runner.cleanup()`` stops it.

    Connections are bounded by ``limits`` (:mod:`rsu.api.limits`; default ConnectionLimits());
    ``on_close(reason)`` is called for every connection the bounds close; ``app[TABLE_KEY]`` is
    the connection table. ``ssl_context`` (rsu.api.tls.server_context): HTTPS."""
    from rsu.api.limits import ConnectionLimits, ConnectionTable, GuardedSite, busy_middleware

    limits = limits or ConnectionLimits()
    table = ConnectionTable(limits, on_close)
    app[TABLE_KEY] = table
    app.middlewares.append(busy_middleware(lambda: table))
    # idle connections are closed by the table (whose limits a reload may change), not by aiohttp
    runner = web.AppRunner(app, shutdown_timeout=2.0, keepalive_timeout=3600)
    await runner.setup()
    site = GuardedSite(runner, host, port, table, ssl_context=ssl_context)
    await site.start()
    return runner
