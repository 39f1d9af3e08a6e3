"""aiohttp routes of the integrations, for the lead to add to the API application.

    app.add_routes(feed_routes(controller_feed))           # the JSON feed over HTTP
    app.add_routes(status_routes(integrations.status))     # what the integrations are doing

Routes::

    POST /v1/integrations/controller/feed   one JSON feed message  -> 202 {"accepted": true, ...}
                                            refused -> 400/409/422 {"accepted": false, "error": {...}}
    GET  /v1/integrations/controller        the feed's status (per-intersection state, feed age, counters)
    GET  /v1/integrations/status            every configured integration's status

The body of the feed route is exactly a UDP JSON feed datagram (``docs/integrations.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from rsu.integrations.controller import ControllerFeed

# reason of a refused feed message -> HTTP status
_STATUS = {
    "malformed-json": 400,
    "too-large": 413,
    "invalid-field": 422,
    "unknown-intersection": 404,
    "out-of-order": 409,
    "duplicate": 409,
    "clock-skew": 422,
    "tlm-revision_mismatch": 409,
    "tlm-signal_group_mismatch": 409,
    "tlm-already_active": 409,
    "tlm-validation": 422,
    "tlm-ssp_not_permitted": 403,
    "tlm-capacity": 503,
    "tlm-store_failure": 503,
}


# (method, path) of every route the functions below may return
ROUTES = (
    ("POST", "/v1/integrations/controller/feed"),
    ("GET", "/v1/integrations/controller"),
    ("GET", "/v1/integrations/status"),
)


def feed_routes(feed: ControllerFeed) -> list[web.RouteDef]:
    async def post_feed(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            obj = json.loads(raw) if raw.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            feed.counters.count("received")
            feed.counters.drop("malformed-json", str(e))
            return web.json_response(
                {
                    "accepted": False,
                    "error": {
                        "code": "malformed-json",
                        "path": "",
                        "reason": f"body is not JSON: {e}",
                        "message": f"malformed-json: (message): body is not JSON: {e}",
                    },
                },
                status=400,
            )
        result = feed.on_json(obj if obj is not None else raw, (request.remote, None))
        status = 202 if result.accepted else _STATUS.get(result.reason or "", 422)
        return web.json_response(result.to_json(), status=status)

    async def get_status(request: web.Request) -> web.Response:
        return web.json_response(feed.status())

    return [web.post("/v1/integrations/controller/feed", post_feed), web.get("/v1/integrations/controller", get_status)]


def status_routes(status: Callable[[], dict]) -> list[web.RouteDef]:
    async def get_status(request: web.Request) -> web.Response:
        return web.json_response(status())

    return [web.get("/v1/integrations/status", get_status)]
