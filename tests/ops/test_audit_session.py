"""The audit log of a scripted session over HTTPS (trigger, update, stop, reload, a PKI action, a refused change, login
failures and the ban they start, unban, token add and revoke), with no payload, token or key material in
it; and kill -9 right after an acknowledged trigger leaves the trigger's line on disk."""

from __future__ import annotations

from rsu.clock import ManualClock
from rsu.ops import audit as auditmod
from tests.ops.daemonproc import RsuDaemon, group_and_port
from tests.ops.test_api_auth import MAPEM, START, Pki, call, start, write_config


def _sensitive(pki: Pki, tokens: list[str]) -> list[str]:
    """Strings that must never appear in the audit log."""
    out = [t for t in tokens] + [t.split(".")[2] for t in tokens]  # whole tokens and their secrets
    out += ["BEGIN", "PRIVATE", "laneSet", "intersections", "refPoint"]  # key PEM, MAPEM content
    for _, key_file in (pki.server, *pki.clients.values()):
        pem = key_file.read_text()
        out += [line for line in pem.splitlines() if line and "-----" not in line]
    return out


async def test_scripted_session_is_audited_in_order_without_secrets(tmp_path):
    pki = Pki(tmp_path / "x509")
    clock = ManualClock(START)
    path = write_config(tmp_path, {"tls": pki.tls(), "auth": {"tokens": True, "clients": {"tmc-admin": "admin"}}})
    d = await start(path, clock)
    admin = pki.context(pki.clients["admin"])
    plain = pki.context()
    try:
        op_id, operator = d.guard.tokens.add("operator", "tmc-operator", 86400)
        status, answer, _ = await call(
            d, "POST", "/v1/rlt/messages", ctx=plain, token=operator, body={"payload": MAPEM}
        )
        assert status == 201, answer
        ident = answer["id"]
        status, _, _ = await call(
            d,
            "PUT",
            f"/v1/rlt/messages/{ident}",
            ctx=plain,
            token=operator,
            body={"payload": MAPEM, "dissemination": {"repetition_interval_s": 2}},
        )
        assert status == 200
        status, _, _ = await call(d, "DELETE", f"/v1/rlt/messages/{ident}", ctx=plain, token=operator)
        assert status == 200
        status, _, _ = await call(d, "POST", "/v1/admin/reload", ctx=plain, token=operator)
        assert status == 403  # an operator may not reload: refused, and written down
        status, _, _ = await call(d, "POST", "/v1/admin/reload", ctx=admin)
        assert status == 200
        status, got, _ = await call(d, "POST", "/v1/admin/pki/check", ctx=admin)
        assert (status, got["error"]["code"]) == (409, "no_pki_client")  # a PKI action, refused: no pki: here
        wrong = f"rsu1.{op_id}.not-the-secret"
        for _ in range(3):
            assert (await call(d, "GET", "/v1/status", ctx=plain, token=wrong, local="127.0.0.3"))[0] == 401
        status, _, _ = await call(d, "POST", "/v1/admin/unban", ctx=admin, body={"all": True})
        assert status == 200
        status, made, _ = await call(
            d, "POST", "/v1/admin/tokens", ctx=admin, body={"role": "monitor", "name": "dashboard", "valid": "30d"}
        )
        assert status == 201 and made["token"].startswith("rsu1.")
        status, _, _ = await call(d, "DELETE", f"/v1/admin/tokens/{made['id']}", ctx=admin)
        assert status == 200
    finally:
        await d.stop()
    audit_file = tmp_path / "state" / "audit.jsonl"
    entries = list(auditmod.read(audit_file))
    admin_name = "cert:CN=tmc-admin,O=rsu tests"
    got = [(e.get("identity"), e.get("role"), e["action"], e["target"], e["result"]) for e in entries]
    assert got == [
        (f"token:{op_id}", "operator", "trigger", {"service": "rlt", "id": ident}, "ok"),
        (f"token:{op_id}", "operator", "update", {"service": "rlt", "id": ident}, "ok"),
        (f"token:{op_id}", "operator", "stop", {"service": "rlt", "id": ident}, "ok"),
        (f"token:{op_id}", "operator", "reload", {}, "forbidden"),
        (admin_name, "admin", "reload", {}, "ok"),
        (admin_name, "admin", "pki", {"path": "pki"}, "no_pki_client"),
        (f"token:{op_id}", None, "login-failure", {}, "wrong_secret"),
        (f"token:{op_id}", None, "login-failure", {}, "wrong_secret"),
        (f"token:{op_id}", None, "login-failure", {}, "wrong_secret"),
        (f"token:{op_id}", None, "ban", {"key": "addr:127.0.0.3"}, "30s"),
        (f"token:{op_id}", None, "ban", {"key": f"id:token:{op_id}"}, "30s"),
        (admin_name, "admin", "unban", {"key": "all"}, "ok"),
        (admin_name, "admin", "token-add", {"token": made["id"]}, "ok"),
        (admin_name, "admin", "token-revoke", {"token": made["id"]}, "ok"),
    ]
    assert all(e["time"].startswith("2027-01-15") for e in entries)  # the daemon's (manual) clock
    assert [e["address"] for e in entries if e["action"] == "login-failure"] == ["127.0.0.3"] * 3
    text = audit_file.read_text()
    leaked = [s for s in _sensitive(pki, [operator, made["token"]]) if s in text]
    assert leaked == []


def test_kill_9_after_an_acknowledged_trigger_leaves_its_audit_line(tmp_path):
    group, port = group_and_port()
    d = RsuDaemon(tmp_path, group=group, port=port).start()
    try:
        answer = d.trigger("rlt", MAPEM)
    finally:
        d.kill9()
    lines = list(auditmod.read(d.dir / "state" / "audit.jsonl"))
    assert [(e["identity"], e["action"], e["target"], e["result"]) for e in lines] == [
        ("local", "trigger", {"service": "rlt", "id": answer["id"]}, "ok")
    ]
