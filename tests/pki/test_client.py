"""The PKI client state machine against a whole test PKI, sans-I/O under a manual clock."""

from __future__ import annotations

import json

import pytest

from rsu.pki import client as C
from rsu.pki.keystore import FileKeyStore
from rsu.pki.requests import AUTHORIZATION_RESPONSE_CODES, ENROLMENT_RESPONSE_CODES
from rsu.security.request import request_for_pdu
from tests.pki.authorities import NOW
from tests.pki.helpers import SeededRandomness
from tests.pki.world import PkiWorld

HOUR, DAY = 3600.0, 86400.0


@pytest.fixture
def keys(tmp_path):
    return FileKeyStore(tmp_path / "keys")


@pytest.fixture
def world(keys):
    return PkiWorld(keys.get_or_generate("canonical").public_key())


def make_client(world, keys, tmp_path, **kw):
    return C.PkiClient.load(
        world.config(**kw), keys, tmp_path / "state", random=SeededRandomness("client"), jitter=lambda: 1.0
    )


def run(client, world, now, rounds=20):
    """Poll and answer until the client has nothing more to do at ``now``; the outcomes in order."""
    outcomes = []
    for _ in range(rounds):
        actions = client.poll(now)
        if not actions:
            return outcomes
        for action in actions:
            outcomes.append(client.on_result(world.serve(action, now), now))
    raise AssertionError("client never settles")


def results(outcomes):
    return [(o.job, o.result) for o in outcomes]


def authorizations(outcomes):
    return [o.result for o in outcomes if o.job == "authorize"]


def test_from_empty_state_to_trust_ec_and_ats(world, keys, tmp_path):
    client = make_client(world, keys, tmp_path)
    outcomes = run(client, world, NOW)
    assert results(outcomes) == [
        ("trust", "ok"),
        ("trust", "ok"),
        ("trust", "ok"),
        ("enrol", "ok"),
        ("authorize", "ok"),
        ("authorize", "ok"),
    ]
    tlm, root = world.tlm.certificate.hashed_id8.hex().upper(), world.root.certificate.hashed_id8.hex().upper()
    assert [p for m, p in world.requests] == [
        f"/cpoc/getectl/{tlm}",
        f"/dc/getctl/{root}",
        f"/dc/getcrl/{root}",
        "/ea",
        "/aa",
        "/aa",
    ]
    assert world.ea.seen[-1]["outer_signer"] == "self" and world.ea.seen[-1]["inner"]["itsId"] == b"RSU-WORLD-0001"
    assert client.ec.certificate.issuer_id == world.ea.cert.hashed_id8
    assert len(client.usable_ats(NOW)) == 2
    assert all(set(a.certificate.app_permissions) == {137, 138, 139} for a in client.ats)
    # every key in the store is one the state refers to; the AT key signs for its certificate
    labels = {client.ec.key_label} | {a.key_label for a in client.ats} | {"canonical"}
    assert set(keys.labels()) == labels
    for at in client.ats:
        assert at.key.public_key().public_numbers() == at.certificate.public_key.public_numbers()
    status = client.status(NOW)
    assert status["ec"]["valid"] and len(status["ats"]) == 2 and status["atsUsable"] == 2
    assert status["attempts"] == {"authorize:ok": 2, "enrol:ok": 1, "trust:ok": 3}
    assert status["trust"]["ageSeconds"] == 0
    state = tmp_path / "state"
    assert sorted(p.name for p in state.iterdir()) == ["ats.json", "ec.json", "trust.json"]
    assert all((p.stat().st_mode & 0o077) == 0 for p in state.iterdir())
    for p in state.iterdir():  # no key material in the state files
        assert "PRIVATE" not in p.read_text()


def test_restart_uses_the_last_good_state(world, keys, tmp_path):
    run(make_client(world, keys, tmp_path), world, NOW)
    before = len(world.requests)
    later = NOW + 2 * HOUR
    again = make_client(world, keys, tmp_path)
    assert again.load_errors == []
    assert again.poll(later) == []  # nothing to fetch or request: lists, EC and ATs are fresh
    assert len(world.requests) == before
    assert again.status(later)["trust"]["ageSeconds"] == 2 * HOUR
    assert again.trust.authority(world.aa.cert.hashed_id8)[0] == "aa"
    assert len(again.usable_ats(later)) == 2
    # the network is down: the stored trust is still used, the refresh failure named and backed off
    world.misbehave["cpoc"] = "timeout"
    outcomes = run(again, world, NOW + 2 * DAY)
    assert results(outcomes) == [("trust", "timeout")]
    assert len(again.usable_ats(NOW + 2 * DAY)) == 2


def test_at_pool_renewed_under_a_manual_clock(world, keys, tmp_path):
    client = make_client(world, keys, tmp_path, at_pool=2, at_renew_fraction=0.2)
    run(client, world, NOW)
    first = {a.certificate.hashed_id8 for a in client.ats}
    # ATs live 168 h: the next one is fetched when one has 20 % (33.6 h) left
    assert authorizations(run(client, world, NOW + 130 * HOUR)) == []
    assert client.next_wakeup(NOW + 130 * HOUR) == pytest.approx(NOW - 60 + 0.8 * 168 * HOUR)
    assert authorizations(run(client, world, NOW + 135 * HOUR)) == ["ok", "ok"]
    assert len(client.ats) == 4 and len(client._fresh_ats(NOW + 135 * HOUR)) == 2
    # the old ones expire: dropped from the state and their keys deleted
    old_labels = [a.key_label for a in client.ats if a.certificate.hashed_id8 in first]
    run(client, world, NOW + 169 * HOUR)
    assert {a.certificate.hashed_id8 for a in client.ats}.isdisjoint(first)
    assert not set(old_labels) & set(keys.labels())
    assert len(json.loads((tmp_path / "state" / "ats.json").read_text())) == 2


def test_re_enrolment_before_expiry(world, keys, tmp_path):
    client = make_client(world, keys, tmp_path, re_enrol_margin=30 * DAY)
    run(client, world, NOW)
    old = client.ec
    end = old.certificate.end_posix
    assert "enrol" not in {o.job for o in run(client, world, end - 31 * DAY)}  # EC kept
    outcomes = run(client, world, end - 29 * DAY)
    assert ("enrol", "ok") in results(outcomes)
    assert world.ea.seen[-1]["outer_signer"] == "digest"
    assert world.ea.seen[-1]["inner"]["itsId"] == old.certificate.hashed_id8
    assert client.ec.certificate.hashed_id8 != old.certificate.hashed_id8
    assert old.key_label not in keys.labels() and client.ec.key_label in keys.labels()
    saved = json.loads((tmp_path / "state" / "ec.json").read_text())
    assert saved["certificate"] == client.ec.certificate.raw.hex()


def test_expired_ec_enrols_again_with_the_canonical_key(world, keys, tmp_path):
    client = make_client(world, keys, tmp_path)
    run(client, world, NOW)
    later = client.ec.certificate.end_posix + DAY
    run(client, world, later)
    assert world.ea.seen[-1]["outer_signer"] == "self" and client.ec.certificate.valid_at(later)


ENROL_FAILURES = [(f"code:{c}", c) for c in ENROLMENT_RESPONSE_CODES[1:]] + [
    ("request-hash", "request-hash-mismatch"),
    ("other-key", "certificate-key-mismatch"),
    ("garbage", "decryption-failed"),
    ("wrong-psk", "decryption-failed"),
    ("http-500", "http-500"),
    ("timeout", "timeout"),
    ("wrong-content-type", "wrong-content-type"),
]


@pytest.mark.parametrize("bad,reason", ENROL_FAILURES, ids=[b for b, _ in ENROL_FAILURES])
def test_enrolment_failures_are_named_and_nothing_is_kept(world, keys, tmp_path, bad, reason):
    client = make_client(world, keys, tmp_path, retry_base=30)
    world.misbehave["ea"] = bad
    outcomes = run(client, world, NOW)
    assert results(outcomes)[-1] == ("enrol", reason)
    assert client.ec is None and not (tmp_path / "state" / "ec.json").exists()
    assert keys.labels() == ["canonical"]  # the new EC key went again
    job = client.jobs["enrol"]
    assert job.last_error["reason"] == reason and job.retry_at == NOW + 30
    assert client.status(NOW)["jobs"]["enrol"]["lastError"]["reason"] == reason
    # backoff doubles per failure, bounded; the first success resets it
    assert results(run(client, world, NOW + 30)) == [("enrol", reason)] and job.retry_at == NOW + 30 + 60
    del world.misbehave["ea"]
    assert results(run(client, world, NOW + 90))[0] == ("enrol", "ok") and job.failures == 0


AT_FAILURES = [(f"code:{c}", c) for c in AUTHORIZATION_RESPONSE_CODES[1:]] + [
    ("request-hash", "request-hash-mismatch"),
    ("other-key", "certificate-key-mismatch"),
    ("garbage", "decryption-failed"),
    ("http-500", "http-500"),
    ("timeout", "timeout"),
]


@pytest.mark.parametrize("bad,reason", AT_FAILURES, ids=[b for b, _ in AT_FAILURES])
def test_authorization_failures_are_named(world, keys, tmp_path, bad, reason):
    client = make_client(world, keys, tmp_path)
    world.misbehave["aa"] = bad
    outcomes = run(client, world, NOW)
    assert results(outcomes)[-1] == ("authorize", reason) and client.ats == []
    assert not (tmp_path / "state" / "ats.json").exists()
    assert [label for label in keys.labels() if label.startswith("at-")] == []
    assert client.attempts[("authorize", reason)] == 1


def test_backoff_is_jittered_and_bounded(world, keys, tmp_path):
    draws = iter([0.0, 1.0] * 20)
    client = C.PkiClient.load(
        world.config(retry_base=10, retry_max=100),
        keys,
        tmp_path / "s",
        random=SeededRandomness("j"),
        jitter=lambda: next(draws),
    )
    world.misbehave["cpoc"] = "http-500"
    now, delays = NOW, []
    for _ in range(8):
        run(client, world, now)
        delays.append(client.jobs["trust"].retry_at - now)
        now = client.jobs["trust"].retry_at
    assert delays == [5, 20, 20, 80, 50, 100, 50, 100]  # 50 % .. 100 % of 10 * 2^n, at most 100


def test_bad_trust_list_changes_nothing(world, keys, tmp_path):
    client = make_client(world, keys, tmp_path)
    run(client, world, NOW)
    saved = (tmp_path / "state" / "trust.json").read_bytes()
    store = client.trust
    world.misbehave["dc"] = "garbage"
    outcomes = run(client, world, NOW + 2 * DAY)
    assert results(outcomes) == [("trust", "ok"), ("trust", "not-signed")]
    assert (
        client.trust.roots[world.root.certificate.hashed_id8].ctl == store.roots[world.root.certificate.hashed_id8].ctl
    )
    assert (
        json.loads((tmp_path / "state" / "trust.json").read_bytes())["lists"][
            "ctl:" + world.root.certificate.hashed_id8.hex()
        ]
        == json.loads(saved)["lists"]["ctl:" + world.root.certificate.hashed_id8.hex()]
    )


def test_revoked_ea_is_not_used(world, keys, tmp_path):
    world.revoked = [world.ea.cert.hashed_id8]
    client = make_client(world, keys, tmp_path)
    outcomes = run(client, world, NOW)
    assert results(outcomes) == [("trust", "ok")] * 3 and client.ec is None
    assert client.jobs["enrol"].last_error["reason"] == "no-authority"
    assert client.attempts[("enrol", "no-authority")] == 1
    assert client.trust.is_revoked(world.ea.cert.hashed_id8)


def test_orphan_keys_and_broken_state_files(world, keys, tmp_path):
    keys.generate("ec-orphan")
    keys.generate("at-orphan")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "ec.json").write_text("{not json")
    client = make_client(world, keys, tmp_path)
    assert keys.labels() == ["canonical"]
    assert client.load_errors == ["ec.json: unreadable (JSONDecodeError)"] and client.ec is None
    assert results(run(client, world, NOW))[3] == ("enrol", "ok")


def test_unexpected_result_is_named(world, keys, tmp_path):
    client = make_client(world, keys, tmp_path)
    assert client.on_result(C.HttpResult("nobody", 200), NOW).result == "unexpected-result"


def test_fetched_ats_sign_every_service_and_rsu_verify_accepts(world, keys, tmp_path, codec):
    """Empty state -> trust lists, EC, ATs -> SPATEM, MAPEM and IVIM signed with a fetched AT, each
    accepted by rsu verify against the test root and AA."""
    from rsu import catalog, clock
    from rsu.clock import ManualClock
    from rsu.pki.requests import service_permissions
    from rsu.security import ssp
    from rsu.security.pool import AtPool
    from rsu.security.service import SecurityService
    from rsu.security.verify import Verifier
    from tests.conftest import run_rsu
    from tests.security import samples

    services = {"spatem": samples.spatem(), "mapem": samples.mapem(), "ivim": samples.ivim()}  # IVI from GB/31
    client = make_client(
        world, keys, tmp_path, permissions=service_permissions(services, ssp.ServiceProvider.of("GB", 31))
    )
    run(client, world, NOW)
    clk = ManualClock(NOW)
    svc = SecurityService(AtPool(client.tickets(NOW), clk), Verifier(clk), clk)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "root.oer").write_bytes(world.root.certificate.raw)
    (trust / "aa.oer").write_bytes(world.aa.cert.raw)
    fetched = {a.certificate.hashed_id8.hex() for a in client.ats}
    for name, value in services.items():
        kind = catalog.by_name(name)
        msg = tmp_path / f"{name}.oer"
        msg.write_bytes(
            svc.sign(request_for_pdu(kind, codec.encode(value), with_certificate=True))
        )  # each file stands alone
        r = run_rsu("verify", str(msg), "--trust", str(trust), "--time", clock.iso_utc(NOW + 1))
        out = json.loads(r.stdout)
        assert r.returncode == 0, (name, out)
        assert out["chain"] == "valid" and out["psid"] == kind.its_aid and out["signer"]["hashedId8"] in fetched


def test_client_with_keys_on_a_pkcs11_token(hsm_token, tmp_path, caplog):
    """Canonical, EC and AT keys on SoftHSM2: enrolment, ATs, restart (keys found again by label)."""
    import logging

    caplog.set_level(logging.DEBUG)
    world = PkiWorld(hsm_token.get_or_generate("canonical").public_key())
    client = make_client(world, hsm_token, tmp_path)
    assert results(run(client, world, NOW))[-3:] == [("enrol", "ok"), ("authorize", "ok"), ("authorize", "ok")]
    assert set(hsm_token.labels()) == {"canonical", client.ec.key_label} | {a.key_label for a in client.ats}
    again = make_client(world, hsm_token, tmp_path)
    assert again.load_errors == [] and len(again.tickets(NOW)) == 2
    world.misbehave["aa"] = "code:deniedpermissions"  # a refused AT: its new key leaves the token again
    assert authorizations(run(again, world, NOW + 140 * HOUR)) == ["deniedpermissions"]
    assert len([label for label in hsm_token.labels() if label.startswith("at-")]) == 2
    assert "PRIVATE KEY" not in caplog.text and "BEGIN" not in caplog.text


def test_metrics_from_the_client_state(world, keys, tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest

    from rsu.clock import ManualClock
    from rsu.pki.metrics import PkiCollector

    client = make_client(world, keys, tmp_path)
    world.revoked = [bytes(8)]
    run(client, world, NOW)
    registry = CollectorRegistry()
    clk = ManualClock(NOW + HOUR)
    registry.register(PkiCollector(client, clk))
    text = generate_latest(registry).decode()

    def value(name):
        line = next(x for x in text.splitlines() if x.startswith(name + " ") or x.startswith(name + "{"))
        return float(line.rsplit(" ", 1)[1])

    assert value("rsu_pki_ats_available") == 2
    assert value("rsu_pki_at_hours_to_expiry") == pytest.approx(168 - 1 - 60 / 3600)
    assert value("rsu_pki_ec_hours_to_expiry") == pytest.approx((client.ec.certificate.end_posix - NOW) / 3600 - 1)
    assert value('rsu_pki_trust_list_age_seconds{list="ectl"}') == HOUR
    assert value('rsu_pki_trust_list_next_update_seconds{list="ectl"}') == pytest.approx(7 * DAY - HOUR, abs=1)
    assert value("rsu_pki_crl_entries") == 1
    assert value('rsu_pki_attempts_total{job="enrol",result="ok"}') == 1


def test_root_missing_from_the_ectl_is_named(world, keys, tmp_path):
    client = make_client(world, keys, tmp_path, root_id=bytes(8))
    assert results(run(client, world, NOW)) == [("trust", "ok")]
    assert client.jobs["trust"].last_error["reason"] == "root-not-listed"


def test_unwritable_state_commits_nothing(world, keys, tmp_path):
    client = make_client(world, keys, tmp_path)
    run(client, world, NOW)
    ats_before = list(client.ats)
    target = tmp_path / "state" / "ats.json"
    target.unlink()
    target.mkdir()  # the rename onto it fails, as on a full or read-only disk
    outcomes = run(client, world, NOW + 140 * HOUR)
    assert ("authorize", "state-write-failed") in results(outcomes)
    assert client.ats == ats_before
    assert {a.key_label for a in ats_before} | {client.ec.key_label, "canonical"} == set(keys.labels())


def test_tlm_rollover_followed_and_kept_across_restarts(world, keys, tmp_path):
    client = make_client(world, keys, tmp_path)
    run(client, world, NOW)
    old = world.tlm.certificate.hashed_id8
    world.rollover()
    new = world.next_tlm.certificate.hashed_id8
    # the next ECTL of the old TLM links the new one; the client then fetches the new TLM's ECTL
    outcomes = run(client, world, NOW + 2 * DAY)
    ectl_paths = [p for _, p in world.requests if "/getectl/" in p]
    assert ectl_paths[-2:] == [f"/cpoc/getectl/{old.hex().upper()}", f"/cpoc/getectl/{new.hex().upper()}"]
    assert ("trust", "ok") in results(outcomes) and client.trust.ectl.signer == new
    # a restart replays the linking list first: the new TLM is trusted again without the network
    again = make_client(world, keys, tmp_path)
    assert again.load_errors == [] and again.trust.ectl.signer == new
    assert again.trust.authority(world.aa.cert.hashed_id8) is not None
    assert again.poll(NOW + 2 * DAY) == []


def test_every_flipped_byte_of_an_answer_is_refused_without_a_crash(world, keys, tmp_path):
    """Each byte of a valid EA answer, flipped: a named refusal (never ok, never an exception)."""
    import random

    client = make_client(world, keys, tmp_path, retry_base=0, retry_max=0)
    for _ in range(3):  # the trust lists only
        for action in client.poll(NOW, ("trust",)):
            assert client.on_result(world.serve(action, NOW), NOW).ok
    rng = random.Random(7)
    reasons = set()
    positions = None
    for i in range(60):
        (action,) = client.poll(NOW, ("enrol",))
        answer = world.serve(action, NOW)
        positions = positions or rng.sample(range(len(answer.body)), min(60, len(answer.body)))
        body = bytearray(answer.body)
        body[positions[i % len(positions)]] ^= 1 << rng.randrange(8)
        outcome = client.on_result(C.HttpResult(action.id, 200, C.CT_RESPONSE, bytes(body)), NOW)
        assert not outcome.ok
        reasons.add(outcome.result)
    assert reasons <= {"decryption-failed", "malformed", "unsupported-recipient"}, reasons
    assert client.ec is None and keys.labels() == ["canonical"]
    for junk in (b"", b"\x03", b"\xff" * 5000, bytes(range(256))):
        (action,) = client.poll(NOW, ("enrol",))
        assert not client.on_result(C.HttpResult(action.id, 200, C.CT_RESPONSE, junk), NOW).ok
