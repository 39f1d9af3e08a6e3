"""Configuration of the API's security: ``api.tls``, ``api.auth`` and ``api.audit`` (pydantic models).

Takes plain YAML values; gives frozen models that :mod:`rsu.ops.config` places in its ``api`` section.
Secrets are never inline: the TLS key is a file, tokens live hashed in the state directory
(``rsu admin token add``). :func:`host_problem` is the rule that keeps the API on loopback unless
clients must authenticate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from rsu.ops.config_core import Seconds, within

Role = Literal["monitor", "operator", "admin"]
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Section):
    """TLS 1.3 on the API port; with ``client_ca_file``, clients may (or, without tokens, must) present a
    certificate that CA issued: mutual TLS, the main way in."""

    cert_file: Path = Field(description="server certificate chain (PEM)")
    key_file: Path = Field(description="its private key (PEM), readable by the daemon only")
    client_ca_file: Path | None = Field(None, description="CA certificate(s) (PEM) that issue client certificates")


class RateLimit(_Section):
    """Requests that change state (POST, PUT, DELETE), per identity: a bucket of ``burst`` refilled at
    ``per_minute``. 0 = no limit."""

    per_minute: float = Field(default=600, ge=0, le=1_000_000)
    burst: int = Field(default=60, ge=1, le=100_000)


class LockoutSettings(_Section):
    """Escalating bans after failed authentications (rsu.api.lockout); counters per client address and per
    identity, kept in ``<state_dir>/api-lockout.json`` across restarts."""

    enabled: bool = True
    max_entries: int = Field(default=10_000, ge=16, le=1_000_000, description="addresses and identities remembered")
    # a count without a new failure for this long is forgotten
    forget_after: Annotated[Seconds, within(3600, 365 * 86400)] = 7 * 86400.0


class AuthSettings(_Section):
    tokens: bool = Field(False, description="accept bearer tokens (rsu admin token add); needs api.tls off loopback")
    clients: dict[str, Role] = Field(default_factory=dict, description="client certificate subject CN -> role")
    default_client_role: Role | None = Field(
        None, description="role of a certificate of the client CA whose CN is not in clients (none: refused)"
    )
    public_metrics: bool = Field(False, description="serve /metrics without authentication off loopback too")
    rate_limit: RateLimit = RateLimit()
    lockout: LockoutSettings = LockoutSettings()
    max_tokens: int = Field(1000, ge=1, le=100_000)
    max_ui_sessions: int = Field(256, ge=1, le=100_000, description="web-view sessions (POST /ui/login) live at once")


class AuditSettings(_Section):
    file: Path | None = Field(None, description="default: <state_dir>/audit.jsonl")
    max_bytes: int = Field(10_000_000, ge=4096, le=10_000_000_000, description="rotated when it would grow past this")
    keep: int = Field(9, ge=1, le=999, description="rotated files kept (audit.jsonl.1 ... .keep)")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_NAMES


def authenticates(tls: TlsSettings | None, auth: AuthSettings) -> bool:
    """Whether every client must show a credential (a client certificate or a bearer token)."""
    return (tls is not None and tls.client_ca_file is not None) or auth.tokens


def host_problem(host: str, tls: TlsSettings | None, auth: AuthSettings) -> str | None:
    """Why the API may not listen on ``host`` with these settings (None: it may)."""
    if is_loopback(host):
        return None
    if tls is not None and authenticates(tls, auth):
        return None
    why = (
        "bearer tokens need api.tls off loopback (they would travel in clear text)"
        if auth.tokens
        else "the API has no authentication configured (api.tls with client_ca_file for client certificates, or "
        "api.auth.tokens with api.tls), so it listens on loopback only"
    )
    return f"expected a loopback address (127.0.0.1, ::1 or localhost), found {host!r}: {why}"


def host_issue(cls: Any, data: Any, handler: Callable[[Any], Any]) -> Any:
    """The ``api`` section's model validator (mode="wrap"): ``api.host`` is refused by :func:`host_problem`,
    reported with the section's other errors when it has any (all at once)."""
    try:
        section = handler(data)
    except ValidationError as e:
        problem = _raw_host_problem(data)
        if problem is None:
            raise
        errors = [_again(err) for err in e.errors()]
        raise ValidationError.from_exception_data(e.title, errors + [_host_error(data, problem)]) from None
    problem = host_problem(section.host, section.tls, section.auth)
    if problem is not None:
        raise ValidationError.from_exception_data(cls.__name__, [_host_error(data, problem)])
    return section


_KNOWN = set(get_args(ErrorType))


def _again(err: Any) -> InitErrorDetails:
    """An error of a ValidationError, as it can be raised again (with another)."""
    if err["type"] in _KNOWN:
        return {"type": err["type"], "loc": err["loc"], "input": err["input"], "ctx": err.get("ctx") or {}}
    ctx = {**(err.get("ctx") or {}), "_text": err["msg"]}
    return {"type": PydanticCustomError(err["type"], "{_text}", ctx), "loc": err["loc"], "input": err["input"]}


def _host_error(data: Any, problem: str) -> InitErrorDetails:
    host = data.get("host") if isinstance(data, dict) else None
    return {"type": PydanticCustomError("value_error", "{error}", {"error": problem}), "loc": ("host",), "input": host}


def _raw_host_problem(data: Any) -> str | None:
    """host_problem() of a section whose other settings may be wrong (a wrong tls or auth: no judgement)."""
    if not isinstance(data, dict) or not isinstance(data.get("host"), str):
        return None
    try:
        tls = TlsSettings.model_validate(data["tls"]) if data.get("tls") is not None else None
        auth = AuthSettings.model_validate(data.get("auth") or {})
    except ValidationError:
        return None
    return host_problem(data["host"], tls, auth)
