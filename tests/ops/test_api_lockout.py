"""The lockout ladder, the rate limiter, the token store and the audit log, driven by a manual clock (no sleeps)."""

from __future__ import annotations

import json
import os

import pytest

from rsu.api.auth import Identity, Refusal, TokenStore, TokenStoreError, bearer, certificate_identity
from rsu.api.lockout import LADDER, Lockout, LockoutFile, RateLimiter
from rsu.clock import ManualClock
from rsu.ops import audit as auditmod

KEYS = ["addr:192.0.2.7", "id:token:abc123"]


def fail_until_banned(lockout: Lockout, keys=KEYS) -> list:
    """Fail (waiting out each timed ban) until a ban starts; the bans started."""
    while True:
        bans = lockout.failure(keys)
        if bans:
            return bans


def test_the_whole_ladder_with_a_restart_in_the_middle_and_the_unban(tmp_path):
    clock = ManualClock(1_800_000_000)
    store = LockoutFile(tmp_path / "api-lockout.json")
    lockout = Lockout(clock)
    expected = [(3, 30), (6, 300), (9, 3600), (12, 86400), (15, None)]
    assert [(n, s) for n, s in LADDER] == expected
    for i, (failures, seconds) in enumerate(expected):
        assert lockout.banned(KEYS) is None
        bans = fail_until_banned(lockout)
        assert {b.key for b in bans} == set(KEYS)
        ban = lockout.banned(KEYS)
        assert ban.failures == failures
        if seconds is None:
            assert ban.permanent and ban.retry_after(clock.now()) is None
            break
        assert ban.retry_after(clock.now()) == seconds
        clock.advance(seconds - 1)
        assert lockout.banned(KEYS) is not None  # one second before the end: still banned
        clock.advance(1)
        assert lockout.banned(KEYS) is None
        if i == 1:  # a restart: the counts come back from the file
            store.save(lockout)
            lockout = Lockout(clock)
            assert lockout.banned(KEYS) is None and len(lockout) == 0
            assert store.load(lockout) == 2
    clock.advance(365 * 86400)  # a permanent ban does not expire, neither does it after a restart
    assert lockout.banned(KEYS).permanent
    store.save(lockout)
    lockout = Lockout(clock)
    store.load(lockout)
    assert lockout.banned(KEYS).permanent
    assert lockout.banned(["addr:192.0.2.8"]) is None  # another address is not affected
    assert lockout.unban("addr:192.0.2.7") == ["addr:192.0.2.7"]
    assert lockout.banned(["addr:192.0.2.7"]) is None and lockout.banned(KEYS).key == "id:token:abc123"
    assert lockout.unban() == ["id:token:abc123"]
    assert lockout.banned(KEYS) is None
    assert lockout.failure(KEYS) == []  # counting starts again from zero


def test_address_and_identity_are_counted_apart():
    clock = ManualClock(0)
    lockout = Lockout(clock)
    for addr in ("addr:a", "addr:b", "addr:c"):  # one identity guessed from three addresses
        lockout.failure([addr, "id:cert:CN=x"])
    assert lockout.banned(["addr:d", "id:cert:CN=x"]).key == "id:cert:CN=x"
    assert lockout.banned(["addr:a"]) is None


def test_success_forgets_the_identity_count_not_the_address_count():
    clock = ManualClock(0)
    lockout = Lockout(clock)
    lockout.failure(KEYS)
    lockout.failure(KEYS)
    assert lockout.success("id:token:abc123")
    assert lockout.failure(KEYS)[0].key == "addr:192.0.2.7"  # third for the address, first for the identity


def test_old_counts_are_forgotten_but_permanent_bans_are_not():
    clock = ManualClock(0)
    lockout = Lockout(clock, forget_after=3600)
    lockout.failure(["addr:a"])
    for _ in range(15):
        lockout.failure(["addr:p"])
        clock.advance(60)
    assert lockout.banned(["addr:p"]).permanent
    clock.advance(3600)
    assert lockout.expire() == 1
    assert [e["key"] for e in lockout.entries()] == ["addr:p"]


def test_the_table_is_bounded_and_counted():
    clock = ManualClock(0)
    hits = []
    lockout = Lockout(clock, max_entries=16, on_limit=hits.append)
    for _ in range(3):
        lockout.failure(["addr:banned"])
    for i in range(40):
        clock.advance(0.5)  # the 30 s ban lasts through the flood
        lockout.failure([f"addr:{i}"])
    assert len(lockout) == 16 and lockout.evicted == 25 and hits == ["api-lockout"] * 25
    assert lockout.banned(["addr:banned"]) is not None  # banned entries go last
    assert lockout.banned(["addr:39"]) is None and any(e["key"] == "addr:39" for e in lockout.entries())


def test_a_damaged_lockout_file_starts_empty(tmp_path):
    path = tmp_path / "api-lockout.json"
    path.write_text("{not json")
    assert LockoutFile(path).load(Lockout(ManualClock(0))) == 0
    path.write_text(json.dumps({"entries": {"addr:a": [3, 0, 30], "addr:b": ["x"], "addr:c": [1, 0, "forever"]}}))
    lockout = Lockout(ManualClock(0))
    assert LockoutFile(path).load(lockout) == 2
    assert lockout.banned(["addr:c"]).permanent


def test_rate_limiter_bucket():
    clock = ManualClock(0)
    hits = []
    rate = RateLimiter(clock, per_minute=60, burst=3, max_entries=2, on_limit=hits.append)
    assert [rate.allow("op") for _ in range(3)] == [None, None, None]
    assert rate.allow("op") == pytest.approx(1.0)
    assert rate.allow("other") is None  # per identity
    clock.advance(1)
    assert rate.allow("op") is None and rate.allow("op") is not None
    rate.allow("third")
    assert hits == ["api-rate-limit"]
    assert RateLimiter(clock, per_minute=0, burst=1).allow("x") is None  # 0: no limit


def test_token_store_hashes_and_expires(tmp_path):
    clock = ManualClock(1_800_000_000)
    store = TokenStore(tmp_path / "tokens.json", clock)
    ident, token = store.add("operator", "tmc-1", 3600)
    text = (tmp_path / "tokens.json").read_text()
    secret = token.split(".")[2]
    assert secret not in text and token not in text and "sha256:" in text
    assert os.stat(tmp_path / "tokens.json").st_mode & 0o077 == 0
    assert store.verify(token) == Identity(f"token:{ident}", "operator", "token")
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) == Refusal("wrong_secret", f"token:{ident}")
    assert store.verify("rsu1.ffffffffffff.x") == Refusal("unknown_token", "token:ffffffffffff")
    assert store.verify("garbage") == Refusal("malformed_token")
    other = TokenStore(tmp_path / "tokens.json", clock)  # another process sees it (the CLI, a restart)
    assert other.verify(token).role == "operator"
    clock.advance(3600)
    assert store.verify(token) == Refusal("expired_token", f"token:{ident}")
    assert store.list()[0]["expired"] and "hash" not in store.list()[0]
    store.revoke(ident)
    assert other.verify(token).reason == "unknown_token"
    with pytest.raises(TokenStoreError, match="role"):
        store.add("root", "x", 60)


def test_bearer_header_and_certificate_roles():
    assert bearer(None) is None and bearer("Bearer abc") == "abc" and bearer("Basic abc") == ""
    cert = {"subject": ((("countryName", "FR"),), (("organizationName", "TMC"),), (("commonName", "ops-1"),))}
    assert certificate_identity(cert, {"ops-1": "operator"}, None) == Identity(
        "cert:CN=ops-1,O=TMC,C=FR", "operator", "certificate"
    )
    assert certificate_identity(cert, {}, None) == Refusal("no_role", "cert:CN=ops-1,O=TMC,C=FR")
    assert certificate_identity(cert, {}, "monitor").role == "monitor"


def test_audit_log_rotates_filters_and_keeps_only_known_fields(tmp_path):
    clock = ManualClock("2026-12-03T10:00:00Z")
    log = auditmod.AuditLog(tmp_path / "audit.jsonl", clock, max_bytes=4096, keep=2)
    for i in range(60):
        clock.advance(60)
        log.write(
            identity=f"token:{i % 3}",
            role="operator",
            action="trigger" if i % 2 else "stop",
            target={"service": "ivi", "id": str(i), "payload": "SECRET"},
            result="ok",
            payload="SECRET",
        )
    log.close()
    files = auditmod.files(tmp_path / "audit.jsonl")
    assert [f.name for f in files] == ["audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"]
    assert all(f.stat().st_size <= 4096 for f in files)
    assert all("SECRET" not in f.read_text() for f in files)
    entries = list(auditmod.read(tmp_path / "audit.jsonl"))
    ids = [int(e["target"]["id"]) for e in entries]
    assert ids == sorted(ids) and ids[-1] == 59  # oldest first; the oldest rotated away beyond keep
    where = auditmod.Filter(since=auditmod.parse_time("2026-12-03T10:50:00Z"), identity="token:1", action="stop")
    got = list(auditmod.read(tmp_path / "audit.jsonl", where))
    assert got and all(
        e["identity"] == "token:1" and e["action"] == "stop" and e["time"] >= "2026-12-03T10:50" for e in got
    )


def test_an_ipv6_client_is_counted_by_its_64():
    from rsu.api.guard import address_key

    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::7") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("192.0.2.7") == address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("?") == "?"
