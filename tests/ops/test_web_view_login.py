"""The web view with bearer tokens (rsu.api.ui_session): a real Chromium over real TLS (a CA and a server
certificate made here) logs in at /ui with a token, then reads live data through its session cookie; the
cookie reads only (no POST, PUT or DELETE), ends at logout and with its token; failed logins count for
the lockout and are audited. The daemon runs in this process (the browser's event loop), with a manual clock.
"""

from __future__ import annotations

import copy

import aiohttp
import pytest_asyncio

from rsu.api.ui_session import COOKIE
from rsu.clock import ManualClock
from rsu.ops import audit as auditmod
from tests.ops.conftest import IN_MODULE_LOOP
from tests.ops.daemonproc import example
from tests.ops.test_api_auth import Pki, call, start, url, write_config

START = 1_800_000_000.0
WAIT_MS = 20_000  # what the page may take to show a change (it polls every 2 s; events come at once)
LANE = '.intersection[data-key="1201"] svg g.lane'
GROUP_ONE = '.intersection[data-key="1201"] svg text.signal-group[data-signal-group="1"]'


def _spatem(group_one_state: str) -> dict:
    value = copy.deepcopy(example("spatem-4arm-intersection.json"))
    value["spat"]["intersections"][0]["states"][0]["state-time-speed"][0]["eventState"] = group_one_state
    return value


@pytest_asyncio.fixture(loop_scope="module")
async def rsu(tmp_path):
    """An in-process daemon: TLS (client certificates optional), bearer tokens, the lockout on."""
    pki = Pki(tmp_path / "x509")
    clock = ManualClock(START)
    d = await start(write_config(tmp_path, {"tls": pki.tls(), "auth": {"tokens": True}}), clock)
    d.test_pki, d.test_clock, d.state_dir = pki, clock, tmp_path / "state"
    yield d
    await d.stop()


async def _page(browser, d):
    context = await browser.new_context(ignore_https_errors=True)  # the server's CA is the test's own
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


async def _login(page, token: str) -> None:
    await page.locator("#login-token").fill(token)
    await page.locator("#login button[type=submit]").click()


def _failures(d) -> dict[str, float]:
    out = {}
    for family in d.metrics.registry.collect():
        for s in family.samples:
            if s.name == "rsu_api_auth_failures_total":
                out[s.labels["reason"]] = s.value
    return out


async def _with_cookie(
    d, method: str, path: str, cookie: str, body: dict | None = None, local: str = "127.0.0.1"
) -> tuple[int, dict]:
    """One request carrying only the session cookie (as a browser would send it)."""
    conn = aiohttp.TCPConnector(ssl=d.test_pki.context(), local_addr=(local, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=conn) as s,
        s.request(method, url(d, path), json=body, headers={"Cookie": f"{COOKIE}={cookie}"}) as r,
    ):
        return r.status, (await r.json() if r.content_type == "application/json" else {})


@IN_MODULE_LOOP
async def test_login_shows_live_data_and_the_cookie_only_reads(rsu, browser):
    d = rsu
    ctx = d.test_pki.context()
    ident, operator = d.guard.tokens.add("operator", "browser", 3600)
    status, mapem, _ = await call(
        d,
        "POST",
        "/v1/rlt/messages",
        ctx=ctx,
        token=operator,
        body={"payload": example("mapem-4arm-intersection.json")},
    )
    assert status == 201, mapem
    status, tlm, _ = await call(
        d, "POST", "/v1/tlm/messages", ctx=ctx, token=operator, body={"payload": _spatem("protected-Movement-Allowed")}
    )
    assert status == 201, tlm
    context, page, errors = await _page(browser, d)
    try:
        await page.goto(url(d, "/ui"))
        await page.locator("#login").wait_for(state="visible", timeout=WAIT_MS)
        assert await page.locator(LANE).count() == 0  # nothing shown before the login
        assert _failures(d) == {}  # opening the page is no failed authentication

        await _login(page, operator)
        lanes = len(example("mapem-4arm-intersection.json")["map"]["intersections"][0]["laneSet"])
        await page.locator(LANE).nth(lanes - 1).wait_for(timeout=WAIT_MS)
        assert await page.locator("#login").is_hidden()
        await page.locator("#live.on").wait_for(timeout=WAIT_MS)  # the event stream authenticated by cookie
        label = page.locator(GROUP_ONE).first
        await page.wait_for_function(
            "el => el.classList.contains('state-green')", arg=await label.element_handle(), timeout=WAIT_MS
        )
        # live: an update through the API reaches the page by its event stream
        status, answer, _ = await call(
            d,
            "PUT",
            f"/v1/tlm/messages/{tlm['id']}",
            ctx=ctx,
            token=operator,
            body={"payload": _spatem("stop-And-Remain")},
        )
        assert status == 200, answer
        await page.wait_for_function(
            "el => el.classList.contains('state-red')", arg=await label.element_handle(), timeout=WAIT_MS
        )

        [cookie] = [c for c in await context.cookies() if c["name"] == COOKIE]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert await page.evaluate("document.cookie") == ""  # no script can read it
        # nothing on disk holds the session id (the daemon keeps its hash, in memory)
        for f in d.state_dir.rglob("*"):
            if f.is_file():
                assert cookie["value"].encode() not in f.read_bytes(), f

        # the page's own requests carry the cookie: reads pass, changes do not
        changes = await page.evaluate(
            """async (id) => {
            const out = [];
            for (const [method, path] of [["POST", "v1/tlm/messages"], ["DELETE", "v1/tlm/messages/" + id]]) {
              const r = await fetch(path, {method, credentials: "same-origin", headers: {"Content-Type": "application/json"},
                                           body: method === "DELETE" ? undefined : JSON.stringify({payload: {}})});
              out.push(r.status);
            }
            out.push((await fetch("v1/ui/state", {credentials: "same-origin"})).status);
            return out;
        }""",
            tlm["id"],
        )
        assert changes == [401, 401, 200]  # (two failures of this address: no ban yet)
        # the same from other clients holding the cookie (one failure each): GET routes of the monitor role only
        for i, (method, path) in enumerate(
            (
                ("POST", "/v1/rlt/messages"),
                ("PUT", f"/v1/tlm/messages/{tlm['id']}"),
                ("DELETE", f"/v1/tlm/messages/{tlm['id']}"),
                ("POST", "/v1/admin/reload"),
                ("POST", f"/v1/tlm/messages/{tlm['id']}/terminate"),
            )
        ):
            status, got = await _with_cookie(
                d, method, path, cookie["value"], {"payload": {}}, local=f"127.0.0.{2 + i}"
            )
            assert (status, got["error"]["code"]) == (401, "unauthenticated"), (method, path, got)
        assert (await _with_cookie(d, "GET", "/v1/status", cookie["value"]))[0] == 200
        # a GET of a higher role: not accepted either (an operator's token; the session reads as a monitor)
        status, got = await _with_cookie(d, "GET", "/v1/admin/tokens", cookie["value"], local="127.0.0.9")
        assert (status, got["error"]["code"]) == (401, "unauthenticated")
        assert sorted(e["id"] for e in d.layer.list()) == sorted([mapem["id"], tlm["id"]])  # nothing stopped

        # logout: the session ends, the cookie is gone, the old id reads nothing
        await page.locator("#logout").click()
        await page.locator("#login").wait_for(state="visible", timeout=WAIT_MS)
        assert [c for c in await context.cookies() if c["name"] == COOKIE] == []
        status, got = await _with_cookie(d, "GET", "/v1/ui/state", cookie["value"])
        assert status == 401 and _failures(d).get("session_ended") == 1
        assert errors == []
    finally:
        await context.close()
    actions = [(e["action"], e["result"], e.get("identity")) for e in auditmod.read(d.state_dir / "audit.jsonl")]
    assert ("ui-login", "ok", f"token:{ident}") in actions and ("ui-logout", "ok", f"token:{ident}") in actions


@IN_MODULE_LOOP
async def test_failed_logins_count_for_the_lockout_and_are_audited(rsu, browser):
    d = rsu
    ident, monitor = d.guard.tokens.add("monitor", "wall screen", 3600)
    wrong = monitor[:-4] + ("AAAA" if not monitor.endswith("AAAA") else "BBBB")
    context, page, errors = await _page(browser, d)
    try:
        await page.goto(url(d, "/ui"))
        for _ in range(2):
            await _login(page, wrong)
            await page.locator("#login-error", has_text="bearer token").wait_for(timeout=WAIT_MS)
            await page.evaluate("document.getElementById('login-error').textContent = ''")
        assert _failures(d) == {"wrong_secret": 2}
        await _login(page, wrong)  # the third: a 30 s ban for this address and this token id
        await page.locator("#login-error", has_text="bearer token").wait_for(timeout=WAIT_MS)
        await page.evaluate("document.getElementById('login-error').textContent = ''")
        await _login(page, monitor)  # the right token, banned all the same
        await page.locator("#login-error", has_text="try again later").wait_for(timeout=WAIT_MS)
        assert [c for c in await context.cookies() if c["name"] == COOKIE] == []
        d.test_clock.advance(31)
        await _login(page, monitor)
        await page.locator("#live.on").wait_for(timeout=WAIT_MS)
        assert errors == []
    finally:
        await context.close()
    entries = list(auditmod.read(d.state_dir / "audit.jsonl"))
    failures = [e for e in entries if e["action"] == "login-failure"]
    assert [e["result"] for e in failures] == ["wrong_secret"] * 3
    assert all(e["identity"] == f"token:{ident}" for e in failures)
    assert any(e["action"] == "ban" for e in entries)
    assert [e["action"] for e in entries if e["action"].startswith("ui-")] == ["ui-login"]
    assert monitor.rpartition(".")[2] not in (d.state_dir / "audit.jsonl").read_text()


@IN_MODULE_LOOP
async def test_a_session_ends_with_its_token(rsu):
    d = rsu
    for end in ("revoke", "expire"):
        ident, token = d.guard.tokens.add("admin", f"ends by {end}", 600)
        conn = aiohttp.TCPConnector(ssl=d.test_pki.context(), force_close=True)
        async with aiohttp.ClientSession(connector=conn) as s, s.post(url(d, "/ui/login"), data={"token": token}) as r:
            assert r.status == 200, await r.text()
            morsel = r.cookies[COOKIE]
            assert 0 < int(morsel["max-age"]) <= 600  # not longer than the token
            assert (await r.json())["role"] == "monitor"
        cookie = morsel.value
        assert (await _with_cookie(d, "GET", "/v1/ui/state", cookie))[0] == 200
        if end == "revoke":
            d.guard.tokens.revoke(ident)
        else:
            d.test_clock.advance(601)
        status, got = await _with_cookie(d, "GET", "/v1/ui/state", cookie)
        assert status == 401, (end, got)
    assert len(d.guard.sessions) == 0
    # a login from another site's page is refused before the token is looked at
    conn = aiohttp.TCPConnector(ssl=d.test_pki.context(), force_close=True)
    async with (
        aiohttp.ClientSession(connector=conn) as s,
        s.post(url(d, "/ui/login"), data={"token": "rsu1.x.y"}, headers={"Origin": "https://example.org"}) as r,
    ):
        assert r.status == 403 and (await r.json())["error"]["code"] == "cross_origin"


def test_the_session_table_is_bounded_and_keeps_only_hashes(tmp_path):
    from rsu.api.auth import Identity, TokenStore
    from rsu.api.ui_session import UiSessions

    clock = ManualClock(START)
    tokens = TokenStore(tmp_path / "tokens.json", clock)
    hits: list[str] = []
    sessions = UiSessions(tokens, clock, hits.append, max_sessions=2)
    ident, _ = tokens.add("monitor", "wall", 3600)
    who = Identity(f"token:{ident}", "admin", "token")
    ids = [sessions.open(who)[0] for _ in range(3)]
    assert hits == ["ui-sessions"] and len(sessions) == 2
    assert sessions.identity(ids[0]) is None  # the oldest ended for the third
    assert sessions.identity(ids[2]) == Identity(f"token:{ident}", "monitor", "session")
    assert not any(i in repr(sessions._sessions) for i in ids)  # only hashes are kept
    assert sessions.open(Identity("cert:CN=x", "admin", "certificate")) is None  # tokens only
    assert sessions.close(ids[2]) == ident and sessions.identity(ids[2]) is None
