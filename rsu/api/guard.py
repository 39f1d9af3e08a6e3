"""The API's gate: authentication, roles, lockout, rate limits and the audit log around every request.

:class:`Guard` holds the state (token store, lockout table, rate limiter, audit log) and gives an
aiohttp middleware (:meth:`Guard.middleware`) and the admin routes (:func:`admin_routes`). Per
request, in this order, before any handler (the service layer) runs:

1. the route's rule (:data:`ROUTE_RULES`: role and audited action); ``public`` routes go straight on;
2. a banned client address or claimed identity: 429 (with Retry-After) or 403 for a permanent ban;
3. the credential: a client certificate verified by TLS (its CN's role in ``api.auth.clients``) or an
   ``Authorization: Bearer`` token; a failure is counted (lockout), audited and answered 401; on GET routes
   of the monitor role only, a web-view session cookie too (:mod:`rsu.api.ui_session`, the monitor role);
4. the role: 403 when the identity's role is below the route's;
5. the rate limit of the identity, on routes that change state: 429;
6. the handler; then the audit line of an audited action, fsync-ed before the answer leaves.

Without authentication configured (loopback only, see :func:`rsu.api.auth_config.host_problem`) every
client is ``local`` with the admin role, and audited actions are still written.

Answers of the gate are ``{"error": {"code", "path", "reason", "message"}}`` without internals.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from rsu.api import auth as authmod
from rsu.api.auth import RULES, UNLISTED, Rule
from rsu.api.auth_config import AuditSettings, AuthSettings, TlsSettings, authenticates, is_loopback
from rsu.api.lockout import Lockout, LockoutFile, RateLimiter
from rsu.api.ui_session import COOKIE, UiSessions
from rsu.clock import Clock
from rsu.ops.audit import AuditLog

log = logging.getLogger("rsu.api")


IDENTITY_KEY = web.RequestKey("rsu.identity", authmod.Identity)  # the Identity of the request
AUDIT_TARGET_KEY = web.RequestKey("rsu.audit_target", dict)  # a handler may name the target of its action here
AUDIT_RESULT_KEY = web.RequestKey("rsu.audit_result", str)  # ... and a result other than its status says
GUARD_KEY = web.AppKey("rsu.guard", object)


class GuardMetrics(Protocol):
    """What the guard counts (rsu.ops.metrics.Metrics implements it)."""

    def auth_failure(self, reason: str) -> None: ...
    def api_refused(self, reason: str) -> None: ...
    def ban_started(self, permanent: bool) -> None: ...
    def rate_limited(self, action: str) -> None: ...
    def audited(self, action: str) -> None: ...
    def limit_hit(self, limit: str) -> None: ...


SAVE_INTERVAL_S = 1.0


def _route_rules() -> dict[tuple[str, str], Rule]:
    """Every route's rule: rsu.api.auth.RULES, the web view's roles (rsu.api.ui.ROLES, read-only routes) and
    the pre-signed forward routes (rsu.forward.api.ROUTES: submitting and stopping one are audited)."""
    from rsu.api.ui import ROLES
    from rsu.forward.api import ROUTES as FORWARD

    actions = {"POST": "forward", "DELETE": "forward-stop"}
    return {
        **RULES,
        **{route: Rule(role) for route, role in ROLES.items()},
        **{(method, path): Rule(role, actions.get(method)) for method, path, role in FORWARD},
    }


ROUTE_RULES = _route_rules()


def address_key(address: str) -> str:
    """The lockout counts an IPv6 client by its /64 (one host may hold a whole /64), an IPv4 one by its address."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _refusal(status: int, code: str, reason: str, headers: dict | None = None) -> web.Response:
    body = {"error": {"code": code, "path": "", "reason": reason, "message": f"{code}: (request): {reason}"}}
    return web.json_response(body, status=status, headers=headers)


class Guard:
    def __init__(
        self,
        *,
        state_dir: Path,
        clock: Clock,
        host: str,
        tls: TlsSettings | None,
        auth: AuthSettings,
        audit: AuditSettings,
        metrics: GuardMetrics,
    ) -> None:
        self.clock = clock
        self.metrics = metrics
        self.tokens = authmod.TokenStore(state_dir / "api-tokens.json", clock, auth.max_tokens)
        self._lockout_file = LockoutFile(state_dir / "api-lockout.json")
        self.lockout = Lockout(
            clock,
            max_entries=auth.lockout.max_entries,
            forget_after=auth.lockout.forget_after,
            on_limit=metrics.limit_hit,
        )
        self._lockout_saved, self._lockout_dirty = float("-inf"), False
        loaded = self._lockout_file.load(self.lockout)
        if loaded:
            log.info("lockout: %d counted client(s) restored from %s", loaded, self._lockout_file.path)
        self.sessions = UiSessions(self.tokens, clock, metrics.limit_hit)  # the web view's logins
        self.rate = RateLimiter(
            clock, auth.rate_limit.per_minute, auth.rate_limit.burst, auth.lockout.max_entries, metrics.limit_hit
        )
        self._state_dir = state_dir
        self.audit = AuditLog(audit.file or state_dir / "audit.jsonl", clock, audit.max_bytes, audit.keep)
        self.configure(host, tls, auth, audit)

    def configure(self, host: str, tls: TlsSettings | None, auth: AuthSettings, audit: AuditSettings) -> None:
        """New settings (a reload): counts, bans and tokens are kept."""
        self.auth = auth
        self.required = authenticates(tls, auth)
        self.metrics_public = auth.public_metrics or is_loopback(host)
        self.tokens.max_tokens = auth.max_tokens
        self.sessions.max_sessions = auth.max_ui_sessions
        self.lockout.max_entries, self.lockout.forget_after = auth.lockout.max_entries, auth.lockout.forget_after
        self.rate.per_minute, self.rate.burst = auth.rate_limit.per_minute, auth.rate_limit.burst
        self.rate.max_entries = auth.lockout.max_entries
        path = audit.file or self._state_dir / "audit.jsonl"
        if path != self.audit.path:  # a new file from now on (the old one is closed, not moved)
            self.audit.close()
            self.audit = AuditLog(path, self.clock, audit.max_bytes, audit.keep)
        self.audit.max_bytes, self.audit.keep = audit.max_bytes, audit.keep

    def close(self) -> None:
        if self._lockout_dirty:
            self.save_lockout(force=True)
        self.audit.close()

    # ------------------------------------------------------------------------------------------- helpers
    def save_lockout(self, force: bool = False) -> None:
        """Write the lockout table: at once when ``force`` (a ban started or was lifted), else at most once
        per second (a flood of failures from many addresses does not turn into a flood of fsyncs; a crash
        loses at most the last second's counts, never a ban)."""
        now = self.clock.now()
        if not force and now - self._lockout_saved < SAVE_INTERVAL_S:
            self._lockout_dirty = True
            return
        try:
            self._lockout_file.save(self.lockout)
            self._lockout_saved, self._lockout_dirty = now, False
        except OSError as e:
            log.error("lockout table not saved to %s: %s", self._lockout_file.path, e.strerror or e)

    async def write_audit(
        self,
        identity: authmod.Identity | None,
        address: str | None,
        action: str,
        result: str,
        target: dict | None = None,
        claimed: str | None = None,
        detail: str | None = None,
    ) -> None:
        """One audit line, on disk when this returns (the fsync runs in a thread: the scheduler's loop goes
        on meanwhile). Raises OSError when it could not be written."""
        await asyncio.to_thread(
            self.audit.write,
            identity=identity.name if identity else claimed,
            role=identity.role if identity else None,
            address=address,
            action=action,
            target=target,
            result=result,
            detail=detail,
        )
        self.metrics.audited(action)

    def _claim(self, peercert: dict | None, token: str | None) -> str | None:
        if peercert:
            return "cert:" + authmod.subject_text(peercert)
        if token:
            prefix, _, rest = token.partition(".")
            ident = rest.partition(".")[0]
            if prefix == authmod.TOKEN_PREFIX and ident.isalnum() and len(ident) <= 32:
                return f"token:{ident}"
        return None

    def _authenticate(self, peercert: dict | None, token: str | None) -> authmod.Identity | authmod.Refusal:
        outcome: authmod.Identity | authmod.Refusal | None = None
        if peercert:
            outcome = authmod.certificate_identity(peercert, self.auth.clients, self.auth.default_client_role)
            if isinstance(outcome, authmod.Identity):
                return outcome
        if token is not None and self.auth.tokens:
            return self.tokens.verify(token) if token else authmod.Refusal("malformed_token")
        return outcome or authmod.Refusal("no_credentials")

    # ------------------------------------------------------------------------------------------ middleware
    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        route = request.match_info.route
        resource = route.resource
        path = resource.canonical if resource is not None else None
        method = "GET" if request.method == "HEAD" else request.method  # HEAD of a GET route: the GET's rule
        rule = ROUTE_RULES.get((method, path or ""), UNLISTED)
        address = request.remote or "?"
        if rule.role == "public" or (path == "/metrics" and self.metrics_public):
            return await handler(request)
        if not self.required:
            identity = authmod.Identity("local", "admin", "local")
        else:
            # a web-view session cookie: only where nothing changes (GET of the monitor role)
            answer = await self._gate(request, address, cookie_ok=method == "GET" and rule == Rule("monitor"))
            if isinstance(answer, web.Response):
                return answer
            identity = answer
        request[IDENTITY_KEY] = identity
        if not identity.may(rule.role):
            self.metrics.api_refused("forbidden")
            if rule.action:
                await self._write_or_log(identity, address, rule.action, "forbidden", self._target(request, None))
            return _refusal(403, "forbidden", f"this needs the {rule.role} role")
        if rule.action:
            wait = self.rate.allow(identity.name)
            if wait is not None:
                self.metrics.rate_limited(rule.action)
                self.metrics.api_refused("rate_limited")
                return _refusal(
                    429,
                    "rate_limited",
                    "too many changes from this identity: slow down",
                    {"Retry-After": str(max(1, int(wait + 0.999)))},
                )
            return await self._audited(request, handler, identity, address, rule.action)
        return await handler(request)

    def peek(self, request: web.Request) -> authmod.Identity | None:
        """Who a request is by its client certificate or web-view session cookie, counting nothing (GET
        /ui/session); None: it must log in."""
        if not self.required:
            return authmod.Identity("local", "admin", "local")
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        if peercert:
            who = authmod.certificate_identity(peercert, self.auth.clients, self.auth.default_client_role)
            if isinstance(who, authmod.Identity):
                return who
        cookie = request.cookies.get(COOKIE)
        return self.sessions.identity(cookie) if cookie else None

    async def login(self, request: web.Request, token: str) -> authmod.Identity | web.Response:
        """POST /ui/login: the gate for a token from a form (a client certificate is not looked at): banned
        clients refused, a failure counted and audited as any failed authentication."""
        return await self._gate(request, request.remote or "?", login_token=token)

    async def _gate(
        self, request: web.Request, address: str, *, cookie_ok: bool = False, login_token: str | None = None
    ) -> authmod.Identity | web.Response:
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None and login_token is None else None
        token = authmod.bearer(request.headers.get("Authorization")) if login_token is None else login_token
        cookie = request.cookies.get(COOKIE) if cookie_ok and token is None and not peercert else None
        claimed = self._claim(peercert, token)
        keys = [f"addr:{address_key(address)}"] + ([f"id:{claimed}"] if claimed else [])
        if self.auth.lockout.enabled:
            if self._lockout_dirty:
                self.save_lockout()
            if self._lockout_file.changed():  # rsu admin unban --config wrote it (a rename: a new inode)
                self._lockout_file.load(self.lockout)
            ban = self.lockout.banned(keys)
            if ban is not None:
                self.metrics.api_refused("banned")
                if ban.permanent:
                    return _refusal(403, "banned", "banned after repeated failed authentications: ask an admin")
                retry = ban.retry_after(self.clock.now())
                return _refusal(
                    429, "banned", "too many failed authentications: try again later", {"Retry-After": str(retry)}
                )
        if cookie:  # a random 256-bit id: an unknown one is a session that ended, not a guess worth counting
            session = self.sessions.identity(cookie)
            if session is not None:
                return session
            self.metrics.auth_failure("session_ended")
            return _refusal(401, "unauthenticated", "the web view's session ended: log in again")
        outcome = self._authenticate(peercert, token)
        if isinstance(outcome, authmod.Refusal):
            self.metrics.auth_failure(outcome.reason)
            bans = self.lockout.failure(keys) if self.auth.lockout.enabled else []
            who = outcome.claimed or claimed
            try:
                await self.write_audit(None, address, "login-failure", outcome.reason, claimed=who)
                for ban in bans:
                    self.metrics.ban_started(ban.permanent)
                    length = "forever" if ban.permanent else f"{ban.until - self.clock.now():.0f}s"
                    await self.write_audit(
                        None, address, "ban", length, {"key": ban.key}, claimed=who, detail=f"{ban.failures} failures"
                    )
            except OSError as e:
                log.error("audit log not written: %s", e.strerror or e)
            if self.auth.lockout.enabled:
                self.save_lockout(force=bool(bans))
            return _refusal(
                401,
                "unauthenticated",
                "a valid client certificate or bearer token is needed",
                {"WWW-Authenticate": 'Bearer realm="rsu"'},
            )
        if self.auth.lockout.enabled and self.lockout.success(f"id:{outcome.name}"):
            self.save_lockout()
        return outcome

    def _target(self, request: web.Request, body: Any) -> dict:
        target = {k: request.match_info[k] for k in ("service", "id", "token") if k in request.match_info}
        if isinstance(body, dict) and "service" in request.match_info:  # the answer names the new entry
            for k in ("service", "id"):
                if isinstance(body.get(k), (str, int)) and k not in target:
                    target[k] = str(body[k])
        target.update(request.get(AUDIT_TARGET_KEY) or {})
        return target

    async def _audited(
        self, request: web.Request, handler, identity: authmod.Identity, address: str, action: str
    ) -> web.StreamResponse:
        from rsu.services.errors import ServiceError

        try:
            response = await handler(request)
        except ServiceError as e:
            await self._write_or_log(identity, address, action, e.code, self._target(request, None))
            raise
        except web.HTTPException as e:
            if e.status >= 400:
                await self._write_or_log(identity, address, action, f"http-{e.status}", self._target(request, None))
            raise
        body = None
        raw = response.body if isinstance(response, web.Response) else None
        if isinstance(raw, (bytes, bytearray)) and raw and response.content_type == "application/json":
            try:
                body = json.loads(raw)
            except (TypeError, ValueError):
                body = None
        result = request.get(AUDIT_RESULT_KEY) or (
            "ok"
            if response.status < 400
            else (body or {}).get("error", {}).get("code", f"http-{response.status}")
            if isinstance(body, dict)
            else f"http-{response.status}"
        )
        try:  # on disk before the answer leaves: an acknowledged change is always in the audit log
            await self.write_audit(identity, address, action, str(result), self._target(request, body))
        except OSError as e:
            log.critical("audit log not written (%s): %s answered 503", e.strerror or e, action)
            return _refusal(
                503,
                "audit_failure",
                "the audit log cannot be written; the change may have been applied: check before retrying",
            )
        return response

    async def _write_or_log(self, identity, address, action, result, target) -> None:
        try:
            await self.write_audit(identity, address, action, result, target)
        except OSError as e:
            log.error("audit log not written: %s", e.strerror or e)


# ------------------------------------------------------------------------------------------------ routes


def admin_routes(
    guard: Guard, reload: Callable[[], Awaitable[bool]] | None = None, pki_check: Callable[[], bool] | None = None
) -> list[web.RouteDef]:
    """``/v1/whoami`` and the admin routes: reload, PKI check (``pki_check()``: wake the PKI client so it
    does what is due now; False when there is none), lockout table, unban, tokens."""

    async def whoami(request: web.Request) -> web.Response:
        ident = request[IDENTITY_KEY]
        return web.json_response({"identity": ident.name, "role": ident.role, "kind": ident.kind})

    async def do_reload(request: web.Request) -> web.Response:
        if reload is None:
            return _refusal(409, "not_reloadable", "this daemon has no configuration file to reload")
        # shielded: a reload that moves the API stops this very server, which cancels this handler; the
        # reload itself must run to its end (applied, or rolled back) all the same
        ok = await asyncio.shield(asyncio.ensure_future(reload()))
        if not ok:
            request[AUDIT_RESULT_KEY] = "rejected"
            return _refusal(409, "reload_rejected", "the configuration was not applied (see the daemon log)")
        return web.json_response({"reloaded": True})

    async def check_pki(request: web.Request) -> web.Response:
        request[AUDIT_TARGET_KEY] = {"path": "pki"}
        if pki_check is None or not pki_check():
            return _refusal(409, "no_pki_client", "no PKI client is configured (pki:)")
        return web.json_response({"woken": True})

    async def lockout(request: web.Request) -> web.Response:
        return web.json_response({"entries": guard.lockout.entries()})

    async def unban(request: web.Request) -> web.Response:
        body = await _json_object(request)
        key = body.get("key")
        if key is not None and not isinstance(key, str):
            return _refusal(422, "validation", "key: expected a string such as addr:192.0.2.7 or id:token:ab12")
        if key is None and body.get("all") is not True:
            return _refusal(422, "validation", "give key (addr:<address> or id:<identity>) or all: true")
        lifted = guard.lockout.unban(key)
        guard.save_lockout(force=True)
        request[AUDIT_TARGET_KEY] = {"key": key or "all"}
        if key is not None and not lifted:
            request[AUDIT_RESULT_KEY] = "unknown_key"
        return web.json_response({"unbanned": lifted})

    async def tokens(request: web.Request) -> web.Response:
        return web.json_response({"tokens": guard.tokens.list()})

    async def add_token(request: web.Request) -> web.Response:
        from rsu.ops.config_core import parse_duration

        body = await _json_object(request)
        try:
            valid = parse_duration(body.get("valid", "90d"))
            ident, token = guard.tokens.add(str(body.get("role", "")), str(body.get("name", "")), valid)
        except (ValueError, authmod.TokenStoreError) as e:
            return _refusal(422, "validation", str(e))
        request[AUDIT_TARGET_KEY] = {"token": ident}
        return web.json_response({**(guard.tokens.get(ident) or {}), "token": token}, status=201)

    async def revoke_token(request: web.Request) -> web.Response:
        try:
            return web.json_response(guard.tokens.revoke(request.match_info["token"]))
        except authmod.TokenStoreError:
            return _refusal(404, "unknown_token", "no such token")

    return [
        web.get("/v1/whoami", whoami),
        web.post("/v1/admin/reload", do_reload),
        web.post("/v1/admin/pki/check", check_pki),
        web.get("/v1/admin/lockout", lockout),
        web.post("/v1/admin/unban", unban),
        web.get("/v1/admin/tokens", tokens),
        web.post("/v1/admin/tokens", add_token),
        web.delete("/v1/admin/tokens/{token}", revoke_token),
    ]


async def _json_object(request: web.Request) -> dict:
    from rsu.services.errors import ServiceError

    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ServiceError("bad_request", "", "body is not JSON") from None
    if not isinstance(body, dict):
        raise ServiceError("bad_request", "", "body must be a JSON object")
    return body
