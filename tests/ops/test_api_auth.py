"""The authenticated API of a daemon running in this process: real TLS 1.3 (a CA, server and client
certificates made here), real aiohttp clients, an injected manual clock.

* every endpoint of the OpenAPI document, with every role, without credentials, with an expired token
  and with a certificate of another CA;
* the lockout ladder over HTTP, across a daemon restart, lifted by an admin;
* the audit log of a scripted session, with nothing sensitive in it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import aiohttp
import pytest
import yaml

from rsu.api.auth import UNLISTED
from rsu.api.client import Client
from rsu.api.guard import ROUTE_RULES as RULES
from rsu.api.tls import client_context
from rsu.clock import ManualClock
from rsu.ops import audit as auditmod
from rsu.ops import config as cfgmod
from rsu.ops.daemon import Daemon
from tests.conftest import EXAMPLES
from tests.ops.tlsfiles import Ca
from tests.transports.conftest import free_tcp_port, free_udp_port, random_group

START = 1_800_000_000.0
ROLES = ("monitor", "operator", "admin")
RANK = {"public": 0, "monitor": 1, "operator": 2, "admin": 3}
MAPEM = json.loads((EXAMPLES / "mapem-4arm-intersection.json").read_text())


class Pki:
    """A client CA with a certificate per role (CN tmc-<role>), one without a role, and a CA nobody trusts."""

    def __init__(self, directory: Path) -> None:
        self.ca = Ca(directory / "ca", "clients-ca")
        self.server = self.ca.issue("rsu-api", server=True)
        self.clients = {role: self.ca.issue(f"tmc-{role}") for role in ROLES}
        self.nobody = self.ca.issue("tmc-nobody")
        self.rogue = Ca(directory / "rogue", "rogue-ca").issue("tmc-admin")  # same CN, wrong CA

    def tls(self) -> dict:
        return {
            "cert_file": str(self.server[0]),
            "key_file": str(self.server[1]),
            "client_ca_file": str(self.ca.cert_file),
        }

    def context(self, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        return client_context(self.ca.cert_file, *(cert or (None, None)))


def write_config(tmp_path: Path, api: dict) -> Path:
    data = {
        "state_dir": str(tmp_path / "state"),
        "logging": {"level": "ERROR"},
        "api": {"host": "127.0.0.1", "port": free_tcp_port(), **api},
        "transports": [{"type": "gn-udp", "name": "gn", "group": random_group(), "port": free_udp_port()}],
    }
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def start(path: Path, clock: ManualClock) -> Daemon:
    d = Daemon(cfgmod.load(path), config_path=str(path), clock=clock)
    await d.start()
    return d


def url(d: Daemon, path: str) -> str:
    return f"https://127.0.0.1:{d.api_port}{path}"


async def call(
    d: Daemon,
    method: str,
    path: str,
    *,
    ctx: ssl.SSLContext,
    token: str | None = None,
    body: dict | None = None,
    local: str = "127.0.0.1",
) -> tuple[int, dict, dict]:
    """(status, JSON body or {}, headers) of one request on a new connection."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn = aiohttp.TCPConnector(ssl=ctx, local_addr=(local, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=conn) as s,
        s.request(method, url(d, path), headers=headers, data=json.dumps(body) if body is not None else None) as r,
    ):
        if r.content_type == "application/json":
            return r.status, await r.json(), dict(r.headers)
        return r.status, {}, dict(r.headers)  # /metrics (text), /v1/received (a stream, not read)


def operations(doc: dict) -> list[tuple[str, str]]:
    return [(m.upper(), p) for p, item in doc["paths"].items() for m in item if m != "parameters"]


def concrete(path: str) -> str:
    return (
        path.replace("{service}", "rlt")
        .replace("{id}", "1201")
        .replace("{token}", "000000000000")
        .replace("{asset}", "ui.js")
    )


@pytest.fixture
def pki(tmp_path) -> Pki:
    return Pki(tmp_path / "x509")


async def test_every_endpoint_with_every_role_and_every_bad_credential(tmp_path, pki):
    clock = ManualClock(START)
    # not loopback: /metrics needs the monitor role too (on loopback it is open: see the ladder test)
    path = write_config(
        tmp_path,
        {
            "host": "0.0.0.0",
            "tls": pki.tls(),
            "auth": {"tokens": True, "clients": {f"tmc-{r}": r for r in ROLES}, "lockout": {"enabled": False}},
        },
    )
    d = await start(path, clock)
    try:
        # the OpenAPI document states a role for every route the daemon serves, and only those
        status, doc, _ = await call(d, "GET", "/openapi.json", ctx=pki.context())
        assert status == 200
        ops = operations(doc)
        served = {(r.method, r.resource.canonical) for r in d._runner.app.router.routes() if r.method != "HEAD"}
        assert set(ops) == served == set(RULES)
        for method, p in ops:
            assert doc["paths"][p][method.lower()]["x-rsu-role"] == RULES[(method, p)].role
        _, expired = d.guard.tokens.add("admin", "soon gone", 60)
        tokens = {role: d.guard.tokens.add(role, f"t-{role}", 86400)[1] for role in ROLES}
        clock.advance(61)
        for method, p in ops:
            rule = RULES[(method, p)]
            target = concrete(p)
            body = {} if method in ("POST", "PUT") else None
            for role in ROLES:  # by certificate, then by token: the same answers
                for how in ("certificate", "token"):
                    ctx = pki.context(pki.clients[role]) if how == "certificate" else pki.context()
                    status, got, _ = await call(
                        d, method, target, ctx=ctx, body=body, token=tokens[role] if how == "token" else None
                    )
                    code = got.get("error", {}).get("code") if isinstance(got.get("error"), dict) else None
                    if RANK[role] >= RANK[rule.role]:
                        assert code not in ("unauthenticated", "forbidden") and status not in (401, 429), (
                            method,
                            p,
                            role,
                            how,
                            status,
                            got,
                        )
                    else:
                        assert (status, code) == (403, "forbidden"), (method, p, role, how, status, got)
            for label, ctx, token in (
                ("no credentials", pki.context(), None),
                ("expired token", pki.context(), expired),
                ("certificate without a role", pki.context(pki.nobody), None),
                ("not a token", pki.context(), "hunter2"),
            ):
                status, got, headers = await call(d, method, target, ctx=ctx, token=token, body=body)
                if rule.role == "public":  # (the web view's login without a token field: 422, not 401)
                    assert status == 200 or (method, p, status) == ("POST", "/ui/login", 422), (method, p, label)
                else:
                    assert status == 401 and got["error"]["code"] == "unauthenticated", (method, p, label, got)
                    assert set(got["error"]) == {"code", "path", "reason", "message"}
                    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
            # a certificate of another CA, and TLS 1.2: no handshake, so no request at all
            with pytest.raises(aiohttp.ClientError):
                await call(d, method, target, ctx=pki.context(pki.rogue), body=body)
        old = pki.context(pki.clients["admin"])
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        old.minimum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(aiohttp.ClientError):
            await call(d, "GET", "/v1/status", ctx=old)
        # nothing of the refused requests reached the services: the table is empty, no trigger counted
        assert d.layer.list() == []
        failures = {k[1]: v for k, v in _series(d, "rsu_api_auth_failures_total").items()}
        assert failures["expired_token"] > 0 and failures["no_credentials"] > 0 and failures["no_role"] > 0
        # plain HTTP on the TLS port is no way in either
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as s:
                await s.get(f"http://127.0.0.1:{d.api_port}/v1/status")
    finally:
        await d.stop()


def _series(d: Daemon, name: str) -> dict:
    out = {}
    for family in d.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                out[(name, *sample.labels.values())] = sample.value
    return out


async def test_lockout_ladder_over_https_survives_a_restart_and_an_admin_lifts_it(tmp_path, pki):
    clock = ManualClock(START)
    path = write_config(tmp_path, {"tls": pki.tls(), "auth": {"tokens": True, "clients": {"tmc-admin": "admin"}}})
    d = await start(path, clock)
    admin = pki.context(pki.clients["admin"])
    try:
        ident, operator = d.guard.tokens.add("operator", "tmc op", 2 * 365 * 86400)
        wrong = operator[:-4] + ("AAAA" if not operator.endswith("AAAA") else "BBBB")
        attacker = {"ctx": pki.context(), "local": "127.0.0.2"}
        ladder = [(3, "429", 30), (6, "429", 300), (9, "429", 3600), (12, "429", 86400), (15, "403", None)]
        failures = 0
        for i, (n, kind, seconds) in enumerate(ladder):
            while failures < n:
                status, got, _ = await call(d, "GET", "/v1/status", token=wrong, **attacker)
                assert status == 401
                failures += 1
            # now banned: even the right token from that address, and the right token from anywhere (identity)
            status, got, headers = await call(d, "GET", "/v1/status", token=operator, **attacker)
            assert str(status) == kind and got["error"]["code"] == "banned"
            # the identity's count restarts after each good login, so it is banned for 30 s at each rung
            status, got, _ = await call(d, "GET", "/v1/status", ctx=pki.context(), token=operator)
            assert status == 429 and got["error"]["code"] == "banned"
            assert (await call(d, "GET", "/v1/status", ctx=admin))[0] == 200  # others are not affected
            if seconds is not None:
                assert headers["Retry-After"] == str(seconds)
                clock.advance(seconds)
                assert (await call(d, "GET", "/v1/status", token=operator, **attacker))[0] == 200
            if i == 1:  # restart: the counts are on disk
                await d.stop()
                d = await start(path, clock)
                status, _, _ = await call(d, "GET", "/v1/status", token=wrong, **attacker)
                assert status == 401
                failures += 1
                entry = {e["key"]: e for e in d.guard.lockout.entries()}["addr:127.0.0.2"]
                assert entry["failures"] == 7
        clock.advance(365 * 86400)
        assert (await call(d, "GET", "/v1/status", token=operator, **attacker))[0] == 403  # for good
        assert (await call(d, "GET", "/metrics", ctx=pki.context()))[0] == 200  # loopback: open, not counted
        status, got, _ = await call(d, "GET", "/v1/admin/lockout", ctx=admin)
        banned = {e["key"]: e["banned_until"] for e in got["entries"]}
        assert banned["addr:127.0.0.2"] == "forever"
        status, got, _ = await call(d, "POST", "/v1/admin/unban", ctx=admin, body={"key": "addr:127.0.0.2"})
        assert status == 200 and got == {"unbanned": ["addr:127.0.0.2"]}
        assert (await call(d, "GET", "/v1/status", token=operator, **attacker))[0] == 200
        bans = _series(d, "rsu_api_bans_total")
        assert bans[("rsu_api_bans_total", "permanent")] >= 1
    finally:
        await d.stop()


async def test_rate_limit_per_identity_on_changes_counted_and_reloaded(tmp_path, pki, monkeypatch):
    clock = ManualClock(START)
    api = {
        "tls": pki.tls(),
        "auth": {
            "clients": {"tmc-operator": "operator", "tmc-admin": "admin"},
            "rate_limit": {"per_minute": 6, "burst": 2},
        },
    }
    path = write_config(tmp_path, api)
    d = await start(path, clock)
    op, admin = pki.context(pki.clients["operator"]), pki.context(pki.clients["admin"])
    try:
        # without tokens a client certificate is required at the handshake
        with pytest.raises(aiohttp.ClientError):
            await call(d, "GET", "/v1/health", ctx=pki.context())
        # the CLI's client, with its certificate from the environment
        cert, key = pki.clients["admin"]
        for name, value in (("RSU_API_CERT", cert), ("RSU_API_KEY", key), ("RSU_API_CACERT", pki.ca.cert_file)):
            monkeypatch.setenv(name, str(value))
        who = await asyncio.to_thread(Client(url(d, "")).request, "GET", "/v1/whoami")
        assert who == {"identity": "cert:CN=tmc-admin,O=rsu tests", "role": "admin", "kind": "certificate"}
        update = {"dissemination": {"repetition_interval_s": 2}}
        assert (await call(d, "POST", "/v1/rlt/messages", ctx=op, body={"payload": MAPEM}))[0] == 201
        assert (await call(d, "PUT", "/v1/rlt/messages/1201", ctx=op, body=update))[0] == 200
        status, got, headers = await call(d, "PUT", "/v1/rlt/messages/1201", ctx=op, body=update)
        assert (status, got["error"]["code"], headers["Retry-After"]) == (429, "rate_limited", "10")
        for _ in range(5):  # reads are not limited
            assert (await call(d, "GET", "/v1/rlt/messages/1201", ctx=op))[0] == 200
        assert (await call(d, "POST", "/v1/admin/unban", ctx=admin, body={"all": True}))[0] == 200  # another identity
        clock.advance(10)
        assert (await call(d, "PUT", "/v1/rlt/messages/1201", ctx=op, body=update))[0] == 200
        assert _series(d, "rsu_api_rate_limited_total") == {("rsu_api_rate_limited_total", "update"): 1.0}
        # the refused update reached nothing: the services counted the two that went through
        updates = {k: v for k, v in _series(d, "rsu_messages_triggered_total").items() if k[-1] == "update"}
        assert list(updates.values()) == [2.0], updates
        # a reload takes new roles and limits without a restart of the server (the bans and counts stay)
        api["auth"]["clients"] = {"tmc-admin": "admin"}
        api["auth"]["rate_limit"] = {"per_minute": 0, "burst": 1}
        api["audit"] = {"file": str(tmp_path / "audit-2.jsonl")}
        data = yaml.safe_load(path.read_text())
        data["api"].update(api)
        path.write_text(yaml.safe_dump(data))
        assert (await call(d, "POST", "/v1/admin/reload", ctx=admin))[0] == 200
        status, got, _ = await call(d, "GET", "/v1/status", ctx=op)
        assert (status, got["error"]["code"]) == (401, "unauthenticated")  # tmc-operator has no role now
        for _ in range(5):
            assert (await call(d, "POST", "/v1/admin/unban", ctx=admin, body={"all": True}))[0] == 200
        after = [e["action"] for e in auditmod.read(tmp_path / "audit-2.jsonl")]
        assert after == ["reload", "login-failure"] + ["unban"] * 5  # the new file from the reload on (its own line)
    finally:
        await d.stop()


def test_every_audited_action_is_a_documented_action():
    assert {r.action for r in RULES.values() if r.action} <= set(auditmod.ACTIONS)
    assert UNLISTED.role == "monitor" and UNLISTED.action is None


async def test_an_audit_log_that_cannot_be_written_refuses_to_acknowledge(tmp_path, pki):
    clock = ManualClock(START)
    (tmp_path / "not-a-file").mkdir()
    path = write_config(tmp_path, {"audit": {"file": str(tmp_path / "not-a-file")}})
    d = await start(path, clock)
    try:
        plain = f"http://127.0.0.1:{d.api_port}/v1/rlt/messages"
        async with aiohttp.ClientSession() as s, s.post(plain, json={"payload": MAPEM}) as r:
            got = await r.json()
        assert r.status == 503 and got["error"]["code"] == "audit_failure"
        assert str(tmp_path) not in json.dumps(got)  # no path, no internals
    finally:
        await d.stop()


async def test_public_metrics_off_loopback_and_errors_without_internals(tmp_path, pki):
    clock = ManualClock(START)
    path = write_config(
        tmp_path, {"host": "0.0.0.0", "tls": pki.tls(), "auth": {"tokens": True, "public_metrics": True}}
    )
    d = await start(path, clock)
    try:
        status, _, headers = await call(d, "GET", "/metrics", ctx=pki.context())
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert (await call(d, "GET", "/v1/status", ctx=pki.context()))[0] == 401
        # a banned client's change never reaches the services
        for _ in range(3):
            await call(d, "POST", "/v1/rlt/messages", ctx=pki.context(), token="rsu1.abc.def", body={"payload": MAPEM})
        status, got, _ = await call(
            d, "POST", "/v1/rlt/messages", ctx=pki.context(), token="rsu1.abc.def", body={"payload": MAPEM}
        )
        assert (status, got["error"]["code"]) == (429, "banned") and d.layer.list() == []
        # a damaged token store: 500 with nothing of the file, its path or a traceback in the answer
        store = tmp_path / "state" / "api-tokens.json"
        store.write_text('{"tokens": "secret-looking-content"')
        status, got, _ = await call(d, "GET", "/v1/status", ctx=pki.context(), token="rsu1.abc.def", local="127.0.0.9")
        text = json.dumps(got)
        assert status == 500 and got["error"]["code"] == "internal"
        assert str(tmp_path) not in text and "secret-looking" not in text and "Traceback" not in text
    finally:
        await d.stop()
