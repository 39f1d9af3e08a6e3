"""Who is asking, and what they may do: identities, roles, bearer tokens (sans-I/O apart from the token file).

Takes the client certificate the TLS layer verified (``ssl.SSLObject.getpeercert()`` form) or the
``Authorization`` header; gives an :class:`Identity` (name, role) or a :class:`Refusal` (reason, the
identity it claimed). Roles are ranked: ``monitor`` (read status, metrics, the received stream) <
``operator`` (trigger, update, stop messages) < ``admin`` (reload, PKI actions, unban, tokens).

Tokens: ``rsu1.<id>.<secret>``; the store keeps SHA-256 of the secret (a 256-bit random value: a fast
hash is enough), the role, a name and the expiry, in a JSON file written atomically (mode 0600).
The secret is shown once, when the token is made.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsu.clock import Clock, iso_utc

log = logging.getLogger("rsu.api")

ROLES = ("monitor", "operator", "admin")
RANK = {"public": 0, "monitor": 1, "operator": 2, "admin": 3}
TOKEN_PREFIX = "rsu1"


@dataclass(frozen=True)
class Identity:
    """An authenticated client: ``name`` as the audit log writes it (``cert:CN=...`` or ``token:<id>``)."""

    name: str
    role: str
    kind: str  # certificate, token, or local (no authentication configured: loopback only)

    def may(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


@dataclass(frozen=True)
class Refusal:
    """A failed authentication: ``reason`` (for the audit and the metrics) and the identity it claimed."""

    reason: str  # no_credentials, malformed_token, unknown_token, wrong_secret, expired_token, no_role
    claimed: str | None = None


@dataclass(frozen=True)
class Rule:
    role: str  # public, monitor, operator, admin
    action: str | None = None  # audited action (a state change)


# (method, route path as registered) -> rule; every route of the daemon's API is here (a test checks);
# the OpenAPI document states each one (x-rsu-role)
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/openapi.json"): Rule("public"),
    ("GET", "/v1/health"): Rule("public"),
    ("GET", "/metrics"): Rule("monitor"),
    ("GET", "/v1/status"): Rule("monitor"),
    ("GET", "/v1/messages"): Rule("monitor"),
    ("GET", "/v1/received"): Rule("monitor"),
    ("GET", "/v1/tlc/requests"): Rule("monitor"),
    ("GET", "/v1/{service}/messages"): Rule("monitor"),
    ("POST", "/v1/{service}/messages"): Rule("operator", "trigger"),
    ("GET", "/v1/{service}/messages/{id}"): Rule("monitor"),
    ("PUT", "/v1/{service}/messages/{id}"): Rule("operator", "update"),
    ("DELETE", "/v1/{service}/messages/{id}"): Rule("operator", "stop"),
    ("POST", "/v1/{service}/messages/{id}/terminate"): Rule("operator", "stop"),
    ("POST", "/v1/integrations/controller/feed"): Rule("operator", "feed"),
    ("GET", "/v1/integrations/controller"): Rule("monitor"),
    ("GET", "/v1/integrations/status"): Rule("monitor"),
    ("GET", "/v1/whoami"): Rule("monitor"),
    ("POST", "/v1/admin/reload"): Rule("admin", "reload"),
    ("POST", "/v1/admin/pki/check"): Rule("admin", "pki"),
    ("GET", "/v1/admin/lockout"): Rule("admin"),
    ("POST", "/v1/admin/unban"): Rule("admin", "unban"),
    ("GET", "/v1/admin/tokens"): Rule("admin"),
    ("POST", "/v1/admin/tokens"): Rule("admin", "token-add"),
    ("DELETE", "/v1/admin/tokens/{token}"): Rule("admin", "token-revoke"),
}
UNLISTED = Rule("monitor")  # an unknown path or method: a client must authenticate to learn it is unknown


def subject_text(peercert: dict) -> str:
    """The subject of a getpeercert() dict as ``CN=...,O=...`` (most specific first)."""
    parts = [f"{k}={v}" for rdn in peercert.get("subject", ()) for k, v in rdn]
    names = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    out = []
    for p in reversed(parts):
        k, _, v = p.partition("=")
        out.append(f"{names.get(k, k)}={v}")
    return ",".join(out)


def common_name(peercert: dict) -> str | None:
    for rdn in peercert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def certificate_identity(peercert: dict, clients: Mapping[str, str], default_role: str | None) -> Identity | Refusal:
    """The identity of a verified client certificate: its CN's role in ``clients``, else ``default_role``."""
    name = "cert:" + subject_text(peercert)
    role = clients.get(common_name(peercert) or "", default_role)
    if role is None:
        return Refusal("no_role", name)
    return Identity(name, role, "certificate")


def _digest(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


class TokenStoreError(Exception):
    pass


class TokenStore:
    """Bearer tokens, hashed at rest: ``<state_dir>/api-tokens.json``.

    Another process (``rsu admin token add --config``) may change the file: :meth:`refresh` re-reads it
    when its size or modification time changed."""

    def __init__(self, path: Path, clock: Clock, max_tokens: int = 1000) -> None:
        self.path = path
        self.clock = clock
        self.max_tokens = max_tokens
        self._tokens: dict[str, dict[str, Any]] = {}
        self._seen: tuple[int, int] | None = None
        self.refresh()

    def refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._tokens, self._seen = {}, None
            return
        key = (st.st_mtime_ns, st.st_size)
        if key == self._seen:
            return
        try:
            data = json.loads(self.path.read_text())
            tokens = data["tokens"]
            if not isinstance(tokens, dict):
                raise TypeError("tokens is not a mapping")
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("token store %s unreadable: %s", self.path, type(e).__name__)
            raise TokenStoreError("the token store is damaged (see the daemon log)") from None
        self._tokens, self._seen = tokens, key

    def _write(self) -> None:
        from rsu.pki.keystore import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"version": 1, "tokens": self._tokens}, indent=1).encode(), 0o600)
        st = self.path.stat()
        self._seen = (st.st_mtime_ns, st.st_size)

    def add(self, role: str, name: str, valid_s: float) -> tuple[str, str]:
        """A new token: (its id, the token text to hand over once). Expired tokens are forgotten first."""
        if role not in ROLES:
            raise TokenStoreError(f"role: expected one of {', '.join(ROLES)}, found {role!r}")
        if not 0 < valid_s <= 5 * 365 * 86400:
            raise TokenStoreError("valid_s: expected more than 0 and at most 5 years")
        self.refresh()
        now = self.clock.now()
        self._tokens = {k: v for k, v in self._tokens.items() if v.get("expires", 0) > now}
        if len(self._tokens) >= self.max_tokens:
            raise TokenStoreError(
                f"the store holds {len(self._tokens)} tokens already (api.auth.max_tokens): revoke some first"
            )
        ident = secrets.token_hex(6)
        while ident in self._tokens:
            ident = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        self._tokens[ident] = {
            "hash": _digest(secret),
            "role": role,
            "name": name[:100],
            "created": now,
            "expires": now + valid_s,
        }
        self._write()
        return ident, f"{TOKEN_PREFIX}.{ident}.{secret}"

    def revoke(self, ident: str) -> dict:
        self.refresh()
        if ident not in self._tokens:
            raise TokenStoreError(f"no token {ident!r}")
        entry = self._tokens.pop(ident)
        self._write()
        return self._public(ident, entry)

    def _public(self, ident: str, entry: dict) -> dict:
        return {
            "id": ident,
            "role": entry.get("role"),
            "name": entry.get("name", ""),
            "created": iso_utc(entry.get("created", 0)),
            "expires": iso_utc(entry.get("expires", 0)),
            "expired": entry.get("expires", 0) <= self.clock.now(),
        }

    def list(self) -> list[dict]:
        """Every token without its hash."""
        self.refresh()
        return [self._public(k, v) for k, v in sorted(self._tokens.items(), key=lambda kv: kv[1].get("created", 0))]

    def get(self, ident: str) -> dict | None:
        entry = self._tokens.get(ident)
        return self._public(ident, entry) if entry else None

    def binding(self, ident: str) -> tuple[str, float] | None:
        """(stored hash, expiry) of a live token (the file re-read when it changed), None when it is unknown,
        expired or the store is unreadable: what a web-view session is bound to (rsu.api.ui_session)."""
        try:
            self.refresh()
        except TokenStoreError:
            return None
        entry = self._tokens.get(ident)
        if entry is None or entry.get("expires", 0) <= self.clock.now():
            return None
        return str(entry.get("hash", "")), float(entry.get("expires", 0))

    def verify(self, token: str) -> Identity | Refusal:
        prefix, _, rest = token.partition(".")
        ident, _, secret = rest.partition(".")
        if prefix != TOKEN_PREFIX or not ident or not secret or len(ident) > 32 or not ident.isalnum():
            return Refusal("malformed_token")
        claimed = f"token:{ident}"
        self.refresh()
        entry = self._tokens.get(ident)
        if entry is None:
            return Refusal("unknown_token", claimed)
        if not hmac.compare_digest(str(entry.get("hash", "")), _digest(secret)):
            return Refusal("wrong_secret", claimed)
        if entry.get("expires", 0) <= self.clock.now():
            return Refusal("expired_token", claimed)
        role = entry.get("role")
        if role not in ROLES:
            return Refusal("no_role", claimed)
        return Identity(claimed, role, "token")


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None: no such header)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
