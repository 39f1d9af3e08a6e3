"""The admin's commands against a real ``rsu run`` serving HTTPS: the first admin token made in the state
directory while the daemon runs, tokens through the API, a ban lifted with ``rsu admin unban``, the audit
log read back with ``rsu audit show``; and check-config / rsu run refusing a non-loopback API without
authentication."""

from __future__ import annotations

import http.client
import json

import yaml

from rsu.api.tls import client_context
from tests.conftest import run_rsu
from tests.ops.daemonproc import RsuDaemon, group_and_port
from tests.ops.tlsfiles import Ca


def https_get(port: int, ctx, token: str, source: str) -> int:
    """Status of GET /v1/status from the loopback address ``source``."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, source_address=(source, 0), timeout=10)
    try:
        conn.request("GET", "/v1/status", headers={"Authorization": f"Bearer {token}"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_tokens_unban_and_audit_show_through_the_cli(tmp_path):
    ca = Ca(tmp_path / "x509", "api-ca")
    cert, key = ca.issue("rsu-api", server=True)
    group, port = group_and_port()
    d = RsuDaemon(tmp_path, group=group, port=port)
    d.config["api"].update(tls={"cert_file": str(cert), "key_file": str(key)}, auth={"tokens": True})
    d.ssl_context = client_context(ca.cert_file)
    d.start()
    env = {"RSU_API_URL": d.url, "RSU_API_CACERT": str(ca.cert_file)}
    try:
        r = run_rsu("check-config", str(d.config_path))  # the port is held by an rsu (over TLS): not an error
        assert r.returncode == 0, r.stderr
        # the first admin token: written to the state directory while the daemon runs
        r = run_rsu("admin", "token", "add", "--role", "admin", "--name", "first admin", "--config", str(d.config_path))
        assert r.returncode == 0, r.stderr
        admin_token = r.stdout.decode().strip()
        assert admin_token.startswith("rsu1.") and b"shown once" in r.stderr
        token_file = tmp_path / "admin.token"
        token_file.write_text(admin_token + "\n")
        env["RSU_API_TOKEN_FILE"] = str(token_file)
        r = run_rsu("status", env=env)
        assert r.returncode == 0, r.stderr  # the daemon took the new token
        r = run_rsu("status", env={**env, "RSU_API_TOKEN_FILE": "", "RSU_API_TOKEN": "rsu1.aaaa.bbbb"})
        assert r.returncode == 2 and b"unauthenticated" in r.stderr
        # a token made through the API, listed (never its secret), then used
        r = run_rsu("admin", "token", "add", "--role", "operator", "--name", "tmc", "--valid", "1d", env=env)
        assert r.returncode == 0, r.stderr
        operator = r.stdout.decode().strip()
        op_id = operator.split(".")[1]
        r = run_rsu("admin", "token", "list", "--json", env=env)
        listed = {t["id"]: t for t in json.loads(r.stdout)}
        assert listed[op_id]["role"] == "operator" and operator.split(".")[2] not in r.stdout.decode()
        # three failures from 127.0.0.2: banned; the admin lifts it from 127.0.0.1
        ctx = client_context(ca.cert_file)
        assert [https_get(d.api_port, ctx, "rsu1.x.y", "127.0.0.2") for _ in range(3)] == [401] * 3
        assert https_get(d.api_port, ctx, operator, "127.0.0.2") == 429
        r = run_rsu("admin", "lockout", env=env)
        assert "addr:127.0.0.2" in r.stdout.decode() and "banned until" in r.stdout.decode()
        r = run_rsu("admin", "unban", "addr:127.0.0.2", env=env)
        assert r.returncode == 0 and "lifted: addr:127.0.0.2" in r.stdout.decode(), r.stderr
        assert https_get(d.api_port, ctx, operator, "127.0.0.2") == 200
        r = run_rsu("admin", "token", "revoke", op_id, env=env)
        assert r.returncode == 0, r.stderr
        assert https_get(d.api_port, ctx, operator, "127.0.0.2") == 401
        # the audit log, filtered
        r = run_rsu("audit", "show", "--config", str(d.config_path), "--action", "unban", "--json")
        (entry,) = [json.loads(line) for line in r.stdout.decode().splitlines()]
        assert entry["target"] == {"key": "addr:127.0.0.2"} and entry["role"] == "admin"
        r = run_rsu("audit", "show", "--config", str(d.config_path), "--identity", f"token:{op_id}")
        lines = r.stdout.decode().splitlines()
        # the operator changed nothing; its one entry is the use of the revoked token (add and revoke are the admin's)
        assert len(lines) == 1 and "login-failure" in lines[0] and "unknown_token" in lines[0], lines
        actions = [
            json.loads(x)["action"]
            for x in run_rsu("audit", "show", "--config", str(d.config_path), "--json").stdout.decode().splitlines()
        ]
        assert actions == [
            "token-add",
            "login-failure",
            "token-add",
            "login-failure",
            "login-failure",
            "login-failure",
            "ban",
            "ban",
            "unban",
            "token-revoke",
            "login-failure",
        ], actions
        assert admin_token not in (d.dir / "state" / "audit.jsonl").read_text()
        # every admin locked out at 127.0.0.1: the ban is lifted on the box, in the state directory
        # (the refused status call above was this address's first failure)
        assert [https_get(d.api_port, ctx, "rsu1.z.z", "127.0.0.1") for _ in range(2)] == [401] * 2
        r = run_rsu("status", env=env)
        assert r.returncode == 2 and b"banned" in r.stderr
        r = run_rsu("admin", "unban", "addr:127.0.0.1", "--config", str(d.config_path))
        assert r.returncode == 0 and "lifted: addr:127.0.0.1" in r.stdout.decode(), r.stderr
        r = run_rsu("status", env=env)
        assert r.returncode == 0, r.stderr  # the daemon read the table again
        r = run_rsu("audit", "show", "--config", str(d.config_path), "--action", "unban")
        assert "local:" in r.stdout.decode().splitlines()[-1] and "key=addr:127.0.0.1" in r.stdout.decode()
    finally:
        d.stop()


def test_non_loopback_api_without_authentication_is_refused_by_check_config_and_run(tmp_path):
    ca = Ca(tmp_path / "x509", "api-ca")
    cert, key = ca.issue("rsu-api", server=True)
    base = {"state_dir": str(tmp_path / "state"), "api": {"host": "0.0.0.0", "port": 8399}}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(base))
    r = run_rsu("check-config", "--no-host-checks", str(bad))
    assert r.returncode == 2 and b"api.host" in r.stderr and b"no authentication" in r.stderr
    r = run_rsu("run", "--config", str(bad), timeout=30)
    assert r.returncode == 2 and b"api.host" in r.stderr
    tokens_in_clear = tmp_path / "clear.yaml"
    tokens_in_clear.write_text(yaml.safe_dump({**base, "api": {**base["api"], "auth": {"tokens": True}}}))
    r = run_rsu("check-config", "--no-host-checks", str(tokens_in_clear))
    assert r.returncode == 2 and b"clear text" in r.stderr
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                **base,
                "api": {
                    **base["api"],
                    "tls": {"cert_file": str(cert), "key_file": str(key), "client_ca_file": str(ca.cert_file)},
                },
            }
        )
    )
    r = run_rsu("check-config", "--no-host-checks", str(good))
    assert r.returncode == 0, r.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        yaml.safe_dump(
            {
                **base,
                "api": {
                    **base["api"],
                    "host": "127.0.0.1",
                    "port": 0,
                    "tls": {"cert_file": str(cert), "key_file": str(ca.cert_file)},
                },
            }
        )
    )
    r = run_rsu("check-config", str(broken))
    assert r.returncode == 2 and b"api.tls.cert_file" in r.stderr and b"BEGIN" not in r.stderr
