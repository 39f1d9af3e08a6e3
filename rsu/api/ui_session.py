"""Web-view sessions: how a browser that holds a bearer token reads the web view.

A browser's ``EventSource`` and plain ``fetch`` cannot send an ``Authorization`` header, so the page
(``/ui``) asks for the token once and posts it to ``POST /ui/login``. The guard checks it like any bearer
token (a failure is counted for the lockout and audited as ``login-failure``); on success the answer sets a
cookie (:data:`COOKIE`: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` over TLS) carrying a random session
id. The guard accepts that cookie only on GET routes of the monitor role (the web view's reads), with the
monitor role whatever the token's: never on a route that changes state, so a cross-site page has nothing
to forge.

:class:`UiSessions` keeps SHA-256 of each session id (never the id), bound to its token: a session ends
when its token is revoked, replaced or expires, after :data:`MAX_AGE_S`, or at ``POST /ui/logout``. At
most ``api.auth.max_ui_sessions`` live at once (the oldest is ended for a new one, counted as the ``ui-sessions``
limit). Sessions live in memory: after a restart the page asks for the token again.

Takes the daemon's :class:`rsu.api.auth.TokenStore` and clock; gives identities (kind ``session``) and the
routes ``GET /ui/session``, ``POST /ui/login``, ``POST /ui/logout`` (:func:`routes`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from rsu.api.auth import Identity, TokenStore
from rsu.clock import Clock, iso_utc

if TYPE_CHECKING:
    from rsu.api.guard import Guard

log = logging.getLogger("rsu.api")

COOKIE = "rsu_ui_session"
MAX_AGE_S = 12 * 3600.0  # a session ends after this even when its token lives on


@dataclass(frozen=True)
class _Session:
    token_id: str
    token_hash: str  # the token store's hash of the token's secret when the session began
    expires: float


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class UiSessions:
    def __init__(
        self,
        tokens: TokenStore,
        clock: Clock,
        on_limit: Callable[[str], None] = lambda limit: None,
        max_sessions: int = 256,
    ) -> None:
        self.tokens = tokens
        self.max_sessions = max_sessions
        self.clock = clock
        self.on_limit = on_limit
        self._sessions: dict[str, _Session] = {}  # SHA-256 of the session id -> session

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, identity: Identity) -> tuple[str, float] | None:
        """A new session for a token identity that just authenticated: (session id for the cookie, expiry),
        None when the token is not (or no longer) in the store."""
        token_id = identity.name.removeprefix("token:")
        bound = self.tokens.binding(token_id)
        if identity.kind != "token" or bound is None:
            return None
        now = self.clock.now()
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
        while self._sessions and len(self._sessions) >= self.max_sessions:
            del self._sessions[next(iter(self._sessions))]
            self.on_limit("ui-sessions")
        value = secrets.token_urlsafe(32)
        expires = min(bound[1], now + MAX_AGE_S)
        self._sessions[_digest(value)] = _Session(token_id, bound[0], expires)
        return value, expires

    def identity(self, value: str) -> Identity | None:
        """The identity of a session id (the monitor role, kind ``session``), None when there is no such
        live session (unknown, expired, or its token gone, replaced or expired)."""
        key = _digest(value)
        session = self._sessions.get(key)
        if session is None:
            return None
        bound = self.tokens.binding(session.token_id)
        if session.expires <= self.clock.now() or bound is None or bound[0] != session.token_hash:
            del self._sessions[key]
            return None
        return Identity(f"token:{session.token_id}", "monitor", "session")

    def close(self, value: str) -> str | None:
        """End a session: the token id it was bound to, None when there was none."""
        session = self._sessions.pop(_digest(value), None)
        return session.token_id if session is not None else None


def _same_origin(request: web.Request) -> bool:
    """A browser names the page a POST comes from (Origin): it must be this very server's."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _answer(status: int, code: str, reason: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "path": "", "reason": reason, "message": f"{code}: (request): {reason}"}},
        status=status,
    )


def routes(guard: Guard) -> list[web.RouteDef]:
    """The session routes (public in the role table: each does its own authentication through ``guard``).
    Register them before the web view's ``/ui/{asset}``."""

    async def session(request: web.Request) -> web.Response:
        """GET /ui/session: whether this browser is in (a client certificate, a session cookie, or no
        authentication configured), without counting anything; the page shows its login form when not."""
        who = guard.peek(request)
        body: dict = {"authenticated": who is not None, "login": guard.auth.tokens}
        if who is not None:
            body.update(identity=who.name, role=who.role, kind=who.kind)
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def login(request: web.Request) -> web.Response:
        """POST /ui/login (form field ``token``): a session cookie for a valid bearer token."""
        if not _same_origin(request):
            return _answer(403, "cross_origin", "a login must come from this server's own page")
        if not guard.auth.tokens:
            return _answer(409, "no_tokens", "bearer tokens are not enabled (api.auth.tokens)")
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not token.strip():
            return _answer(422, "validation", "token: expected the bearer token (rsu admin token add)")
        who = await guard.login(request, token.strip())
        if isinstance(who, web.Response):
            return who  # 401 (counted for the lockout, audited) or a ban
        opened = guard.sessions.open(who)
        if opened is None:
            return _answer(401, "unauthenticated", "the token is no longer valid")
        value, expires = opened
        try:
            await guard.write_audit(who, request.remote, "ui-login", "ok", {"token": who.name.removeprefix("token:")})
        except OSError:
            guard.sessions.close(value)
            return _answer(503, "audit_failure", "the audit log cannot be written: no session was opened")
        resp = web.json_response({"identity": who.name, "role": "monitor", "expires": iso_utc(expires)})
        resp.set_cookie(
            COOKIE,
            value,
            max_age=max(1, int(expires - guard.clock.now())),
            path="/",
            httponly=True,
            secure=request.secure,
            samesite="Strict",
        )
        return resp

    async def logout(request: web.Request) -> web.Response:
        """POST /ui/logout: the session ends and the cookie is cleared."""
        if not _same_origin(request):
            return _answer(403, "cross_origin", "a logout must come from this server's own page")
        value = request.cookies.get(COOKIE)
        token_id = guard.sessions.close(value) if value else None
        if token_id is not None:
            who = Identity(f"token:{token_id}", "monitor", "session")
            try:  # the session is gone either way: logging out never fails
                await guard.write_audit(who, request.remote, "ui-logout", "ok", {"token": token_id})
            except OSError as e:
                log.error("audit log not written: %s", e.strerror or e)
        resp = web.json_response({"logged_out": token_id is not None})
        resp.del_cookie(COOKIE, path="/", secure=request.secure, httponly=True, samesite="Strict")
        return resp

    return [web.get("/ui/session", session), web.post("/ui/login", login), web.post("/ui/logout", logout)]
