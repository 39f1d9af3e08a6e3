"""The pre-signed forward endpoint and its repetition loop (asyncio/aiohttp adapter of rsu.forward.presigned).

Routes (the ``role`` each needs is in :data:`ROUTES`; the API's authentication enforces it)::

    POST   /v1/forward        {"data": "<base64 EtsiTs103097Data>", "transports": [...],
                               "repetition": {"interval_s": 1.0, "count": 10}}
                              -> 201 {"message", "its_aid", "signer", "transports", "sent", "id"?}
                              -> 422 {"error": {"code": "presigned_refused", "reason": <named reason>, ...}}
    GET    /v1/forward        the repeating pre-signed messages
    DELETE /v1/forward/{id}   stop repeating one
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsu import catalog
from rsu.aio import wait_event
from rsu.clock import Clock
from rsu.forward import presigned as ps
from rsu.forward.config import Presigned
from rsu.transports.config import MqttConfig

log = logging.getLogger("rsu.forward")

# (method, path, role): monitor < operator < admin (docs/operations.md)
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/v1/forward", "operator"),
    ("GET", "/v1/forward", "monitor"),
    ("DELETE", "/v1/forward/{id}", "operator"),
)

STATUS = {
    "bad-request": 400,
    "validation": 422,
    ps.UNKNOWN_TRANSPORT: 422,
    ps.GN_NEEDS_RSU_SIGNATURE: 422,
    ps.NO_TRANSPORT: 409,
    "security-disabled": 409,
    "capacity": 503,
}
ONE_SHOT_EXPIRY_S = 30.0  # MQTT message expiry of a message sent once (a repeating one: its interval)


class Forwarder:
    """``security()`` gives the daemon's security entity now (None when security is off; a reload may
    replace it), ``verify(data)`` verifies with it (and takes care of frames it releases from its hold);
    ``transports()`` gives the transports as they are now (name -> transport)."""

    def __init__(
        self,
        config: Presigned,
        state_dir: Path,
        clock: Clock,
        *,
        security: Callable,
        verify: Callable,
        transports: Callable[[], dict],
        on_sent: Callable,
        count: Callable[[str], None],
    ) -> None:
        self.config = config
        self.clock = clock
        self._security = security
        self._verify = verify
        self._transports = transports
        self._on_sent = on_sent
        self._count = count
        self.schedule = ps.Schedule(Path(state_dir) / "forward" / "presigned.sqlite", clock)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._routes: list | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="forward:presigned")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.schedule.close()

    # ------------------------------------------------------------------ submit
    async def submit(self, obj: Any) -> dict:
        """Check and send a pre-signed message; raises :class:`rsu.forward.presigned.Refused`."""
        try:
            req = ps.parse_request(
                obj, max_repetitions=self.config.max_repetitions, min_interval=self.config.min_interval
            )
            security = self._security()
            if security is None:
                raise ps.Refused("security-disabled", "", "security is off: nothing can verify the message")
            transports = self._transports()
            names = ps.choose_transports(
                req.transports,
                self.config.transports,
                {n: ("mqtt" if isinstance(t.config, MqttConfig) else "gn-udp") for n, t in transports.items()},
            )
            if req.count > 1 and len(self.schedule) >= self.config.max_active:
                raise ps.Refused(
                    "capacity",
                    "repetition",
                    f"{self.config.max_active} repeating pre-signed messages already (forward.presigned.max_active)",
                )
            ps.precheck(req.data, security.verifier.known_certificate)
            result = self._verify(req.data)
            ps.verified(result)
        except ps.Refused as e:
            self._count(e.reason)
            raise
        kind = catalog.BY_ITS_AID[result.psid]
        await self._send(req.data, kind, names, req.interval_s or ONE_SHOT_EXPIRY_S, fresh=True)
        self._count("accepted")
        answer = {
            "message": kind.name,
            "its_aid": kind.its_aid,
            "signer": result.signer_id.hex(),
            "transports": names,
            "sent": 1,
        }
        if req.count > 1:
            assert req.interval_s is not None  # parse_request: a repetition has both
            entry = self.schedule.add(req.data, kind.name, names, req.interval_s, req.count - 1)
            answer.update(entry.to_json(), remaining=entry.remaining)
            self._wake.set()
        return answer

    async def _send(self, data: bytes, kind, names: list[str], lifetime: float, fresh: bool) -> None:
        from rsu.transports.base import DisseminationParams

        transports = self._transports()
        for name in names:
            t = transports.get(name)
            if t is None:  # a reload removed it
                continue
            await t.send(data, DisseminationParams(kind, lifetime_s=lifetime, transports=(name,)))
            self._on_sent(kind, name, fresh)

    # ------------------------------------------------------------------ repetitions
    async def _loop(self) -> None:
        while True:
            deadline = self.schedule.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            if timeout is None or timeout > 0:
                await wait_event(self._wake, timeout)
            self._wake.clear()
            try:
                for e in self.schedule.due():
                    await self._send(e.data, catalog.BY_NAME[e.message], e.transports, e.interval_s, fresh=False)
            except Exception:
                log.exception("pre-signed repetitions failed")
                await asyncio.sleep(0.5)

    # ------------------------------------------------------------------ HTTP
    def routes(self) -> list:
        if self._routes is None:
            self._routes = self._build_routes()
        return self._routes

    def _build_routes(self) -> list:
        from aiohttp import web

        async def post(request: web.Request) -> web.Response:
            raw = await request.read()
            try:
                obj = json.loads(raw) if raw.strip() else None
            except (ValueError, UnicodeDecodeError):
                return refusal(ps.Refused("bad-request", "", "body is not JSON"))
            try:
                return web.json_response(await self.submit(obj), status=201)
            except ps.Refused as e:
                return refusal(e)

        async def listing(request: web.Request) -> web.Response:
            return web.json_response({"repeating": [e.to_json() for e in self.schedule.entries()]})

        async def delete(request: web.Request) -> web.Response:
            try:
                ident = int(request.match_info["id"])
            except ValueError:
                ident = -1
            if not self.schedule.cancel(ident):
                return web.json_response(
                    {
                        "error": {
                            "code": "unknown_id",
                            "path": "id",
                            "reason": "no repeating pre-signed message with this id",
                            "message": "unknown_id",
                        }
                    },
                    status=404,
                )
            return web.json_response({"id": ident, "state": "stopped"})

        handlers = {"POST": post, "GET": listing, "DELETE": delete}
        return [web.route(method, path, handlers[method]) for method, path, _ in ROUTES]


def refusal(e: ps.Refused):
    from aiohttp import web

    status = STATUS.get(e.reason, 422)
    code = "presigned_refused" if status == 422 and e.reason != "validation" else e.reason.replace("-", "_")
    return web.json_response(
        {
            "error": {
                "code": code,
                "path": e.path,
                "reason": e.reason,
                "detail": e.detail,
                "message": f"{e.reason}: {e.path or '(request)'}: {e.detail}",
            }
        },
        status=status,
    )


def openapi_paths() -> dict:
    """The OpenAPI 3 path items of :data:`ROUTES` (merged into ``/openapi.json``); ``x-rsu-role`` is the
    role each operation needs."""
    roles = {(m, p): r for m, p, r in ROUTES}
    error = {
        "description": 'refused: error.reason names why (docs/operations.md, "Pre-signed messages")',
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "path", "reason", "detail", "message"],
                            "properties": {
                                "code": {
                                    "type": "string",
                                    "enum": [
                                        "presigned_refused",
                                        "validation",
                                        "bad_request",
                                        "no_transport",
                                        "security_disabled",
                                        "capacity",
                                    ],
                                },
                                "path": {"type": "string"},
                                "reason": {"type": "string"},
                                "detail": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            }
        },
    }
    body = {
        "type": "object",
        "required": ["data"],
        "additionalProperties": False,
        "properties": {
            "data": {
                "type": "string",
                "format": "byte",
                "description": "EtsiTs103097Data-Signed (COER) around the facilities PDU, signed by the centre's "
                "AT with its full certificate",
            },
            "transports": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "MQTT transport names; default forward.presigned.transports",
            },
            "repetition": {
                "type": "object",
                "required": ["interval_s", "count"],
                "properties": {
                    "interval_s": {"type": "number"},
                    "count": {"type": "integer", "minimum": 1, "description": "transmissions in all"},
                },
            },
        },
    }
    ok = {
        "description": "accepted and sent once; a repeating one also gets id, remaining, next_at",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    return {
        "/v1/forward": {
            "post": {
                "summary": "Forward a message the centre signed, unchanged (verified first)",
                "x-rsu-role": roles[("POST", "/v1/forward")],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"201": ok, "400": error, "409": error, "422": error, "503": error},
            },
            "get": {
                "summary": "The repeating pre-signed messages",
                "x-rsu-role": roles[("GET", "/v1/forward")],
                "responses": {"200": {"description": "{repeating: [...]}"}},
            },
        },
        "/v1/forward/{id}": {
            "delete": {
                "summary": "Stop repeating a pre-signed message",
                "x-rsu-role": roles[("DELETE", "/v1/forward/{id}")],
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "stopped"}, "404": error},
            },
        },
    }
