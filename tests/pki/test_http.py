"""The PKI client over real HTTP: a test CPOC (over TLS, certificates made here), DC, EA and AA
served by aiohttp on 127.0.0.1, the aiohttp adapter, a manual clock."""

from __future__ import annotations

import asyncio

import pytest

from rsu.clock import ManualClock
from rsu.pki import client as C
from rsu.pki.http import HttpTransport, run_forever, settle
from rsu.pki.keystore import FileKeyStore
from tests.pki import authorities as A
from tests.pki.authorities import NOW
from tests.pki.helpers import SeededRandomness
from tests.pki.servers import Servers, tls_pair
from tests.pki.world import PkiWorld

HOUR = 3600.0


@pytest.fixture
async def pki(tmp_path):
    keys = FileKeyStore(tmp_path / "keys")
    clock = ManualClock(NOW)
    world = PkiWorld(keys.get_or_generate("canonical").public_key())
    server_tls, client_tls = tls_pair(tmp_path)
    servers = Servers(world, clock)
    port, tls_port = await servers.start(server_tls)
    world.base = f"http://127.0.0.1:{port}"
    https_cpoc = f"https://127.0.0.1:{tls_port}/cpoc"
    transport = HttpTransport(timeout=2.0, retries=1, backoff_base=0.01, ssl_context=client_tls, jitter=lambda: 0.5)

    def make_client(**kw):
        return C.PkiClient.load(
            world.config(cpoc_url=https_cpoc, **kw),
            keys,
            tmp_path / "state",
            random=SeededRandomness("http"),
            jitter=lambda: 1.0,
        )

    yield {
        "world": world,
        "clock": clock,
        "servers": servers,
        "transport": transport,
        "keys": keys,
        "client": make_client,
        "https_cpoc": https_cpoc,
        "tmp": tmp_path,
    }
    await transport.close()
    await servers.stop()


def results(outcomes):
    return [(o.job, o.result) for o in outcomes]


async def test_enrol_authorize_and_trust_over_http(pki):
    client, world = pki["client"](), pki["world"]
    outcomes = await settle(client, pki["transport"], pki["clock"])
    assert results(outcomes) == [("trust", "ok")] * 3 + [("enrol", "ok")] + [("authorize", "ok")] * 2
    assert world.seen_headers["Content-Type"] == "application/x-its-request"
    assert world.seen_headers["Accept"] == "application/x-its-response"
    assert world.requests[0][1].startswith("/cpoc/getectl/")  # over TLS: the CPOC URL is https
    assert len(client.usable_ats(pki["clock"].now())) == 2
    # AT renewal under the manual clock, over the same servers
    pki["clock"].advance(135 * HOUR)
    renewed = await settle(client, pki["transport"], pki["clock"])
    assert [o.result for o in renewed if o.job == "authorize"] == ["ok", "ok"]


async def test_tls_refuses_an_unknown_server(pki):
    transport = HttpTransport(timeout=2.0, retries=0)  # the system trust store: the test CA is unknown
    try:
        result = await transport.perform(C.Fetch("t-1", pki["https_cpoc"] + "/getectl/00", "ectl"))
    finally:
        await transport.close()
    assert result.error == "tls" and result.status is None


async def test_failures_over_http_are_named(pki):
    world, servers = pki["world"], pki["servers"]
    client = pki["client"](retry_base=1, retry_max=30)
    await settle(client, pki["transport"], pki["clock"], jobs=("trust",))
    for endpoint, bad, reason in [
        ("ea", "http-500", "http-500"),
        ("ea", "garbage", "decryption-failed"),
        ("ea", "request-hash", "request-hash-mismatch"),
        ("ea", "other-key", "certificate-key-mismatch"),
        ("ea", "code:unknownits", "unknownits"),
        ("ea", "wrong-content-type", "wrong-content-type"),
    ]:
        world.misbehave = {endpoint: bad}
        pki["clock"].advance(31)
        outcomes = await settle(client, pki["transport"], pki["clock"])
        assert results(outcomes) == [("enrol", reason)], bad
    world.misbehave = {}
    servers.delay = 2.5  # longer than the transport's 2 s timeout
    pki["clock"].advance(100)
    assert results(await settle(client, pki["transport"], pki["clock"])) == [("enrol", "timeout")]
    servers.delay = 0
    world.misbehave = {"aa": "code:deniedtoomanycerts"}
    pki["clock"].advance(1000)
    outcomes = await settle(client, pki["transport"], pki["clock"])
    assert results(outcomes) == [("enrol", "ok"), ("authorize", "deniedtoomanycerts")]


async def test_retries_and_unreachable(pki):
    transport = pki["transport"]
    world = pki["world"]
    world.misbehave = {"cpoc": "http-500"}
    result = await transport.perform(C.Fetch("t-1", f"{world.base}/cpoc/getectl/00", "ectl"))
    assert result.status == 500 and len(world.requests) == 1  # 500 is not retried (502/503/504 are)
    world.misbehave = {"cpoc": "http-503"}
    result = await transport.perform(C.Fetch("t-3", f"{world.base}/cpoc/getectl/00", "ectl"))
    assert result.status == 503 and len(world.requests) == 3  # retried once (retries=1), then reported
    world.misbehave = {"ea": "http-503"}
    result = await transport.perform(C.HttpPost("e-2", f"{world.base}/ea", b"x"))
    assert result.status == 503 and len(world.requests) == 4  # a POST the server saw is never resent
    # nothing listens there: connection error, retried once, then named
    dead = HttpTransport(timeout=1.0, retries=1, backoff_base=0.01)
    try:
        result = await dead.perform(C.HttpPost("e-1", "http://127.0.0.1:9/ea", b"x"))
        bad = await dead.perform(C.Fetch("t-2", "ftp://example/x", "ectl"))
    finally:
        await dead.close()
    assert result.error == "connection" and bad.error == "bad-url"


async def test_run_forever_keeps_the_pool_and_stops(pki):
    client, clock = pki["client"](at_pool=1), pki["clock"]
    stop = asyncio.Event()
    seen = []
    task = asyncio.create_task(run_forever(client, pki["transport"], clock, stop, seen.append, max_sleep=0.05))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if ("authorize", "ok") in results(seen):
            break
    first = len(client.ats)
    clock.advance(140 * HOUR)
    for _ in range(200):
        await asyncio.sleep(0.02)
        if len(client.ats) > first:
            break
    stop.set()
    await asyncio.wait_for(task, 2)
    assert first == 1 and len(client._fresh_ats(clock.now())) == 1 and len(client.ats) == 2


async def rsu_cli(*args):
    """The rsu CLI in a real subprocess, without blocking the servers' event loop: (exit code, JSON or stderr)."""
    import json
    import sys

    from tests.conftest import REPO

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rsu", *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, (json.loads(out) if out.strip() else err.decode())


@pytest.mark.slow
async def test_cli_enrol_authorize_status_trust_update(pki):
    import yaml

    from rsu import clock as clockmod
    from rsu.pki.identity import public_key_hex

    world, tmp = pki["world"], pki["tmp"]
    config = tmp / "rsu.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp / "cli-state"),
                "services": {"ivi_provider": {"country": "FR", "issuer": 7}},
                "pki": {
                    "cpoc_url": world.cpoc_url,
                    "tlm": world.tlm.certificate.hashed_id8.hex(),
                    "root": world.root.certificate.hashed_id8.hex(),
                    "its_id": "RSU-CLI-0001",
                    "services": ["spatem", "mapem", "ivim"],
                    "retry_base": "1s",
                },
            }
        )
    )
    now = clockmod.iso_utc(NOW)
    common = ("--config", str(config), "--now", now)
    # first contact: the canonical key is made, the EA does not know it yet
    code, out = await rsu_cli("pki", "enrol", *common)
    assert code == 1, out
    assert [o["result"] for o in out["outcomes"]] == ["ok", "ok", "ok", "unknownits"]
    canonical = out["canonical"]
    assert bytes.fromhex(canonical["itsId"]) == b"RSU-CLI-0001"
    assert out["status"]["jobs"]["enrol"]["lastError"]["reason"] == "unknownits"
    # the operator registers it at the EA; the next enrolment works
    key = FileKeyStore(tmp / "cli-state" / "pki-client" / "keys").get("canonical")
    assert public_key_hex(key.public_key()) == canonical["publicKey"]
    world.ea.canonical[b"RSU-CLI-0001"] = key.public_key()
    code, out = await rsu_cli("pki", "enrol", *common)
    assert code == 0 and [o["result"] for o in out["outcomes"]] == ["ok"], out
    code, out = await rsu_cli("pki", "authorize", *common)
    assert code == 0 and [(o["job"], o["result"]) for o in out["outcomes"]] == [("authorize", "ok")] * 2, out
    code, status = await rsu_cli("pki", "status", *common)
    assert code == 0 and status["ec"]["valid"] and status["atsUsable"] == 2
    assert status["trust"]["roots"][world.root.certificate.hashed_id8.hex()]["ctl"]["sequence"] == 0
    code, out = await rsu_cli("pki", "trust", "update", *common)
    assert code == 0 and out["outcomes"] == []  # nothing due
    world.misbehave = {"cpoc": "http-500"}
    code, out = await rsu_cli(
        "pki", "trust", "update", "--config", str(config), "--now", clockmod.iso_utc(NOW + 2 * 86400)
    )
    assert code == 1 and out["outcomes"][0]["result"] == "http-500"
    code, err = await rsu_cli("pki", "status", "--config", str(tmp / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err


# ====================================================================== TLM link certificates


def _h8(issued):
    from rsu.pki.signed import signer_hashed_id8

    return signer_hashed_id8(issued.certificate)


async def test_tlm_link_certificate_from_the_cpoc_moves_the_client_to_the_new_tlm(pki):
    client, world, clock = pki["client"](), pki["world"], pki["clock"]
    await settle(client, pki["transport"], clock)
    assert not any("gettlmlinkcertificate" in p for _, p in world.requests)  # nothing asks for it yet
    old = _h8(world.tlm)
    world.link_rollover(clock.now())  # the ECTL now names a TLM it does not link: the link certificate does
    clock.advance(25 * HOUR)
    outcomes = await settle(client, pki["transport"], clock)
    assert all(o.ok for o in outcomes), results(outcomes)
    new = _h8(world.next_tlm)
    assert f"tlm-link:{new.hex()}" in [o.detail for o in outcomes]
    assert ("GET", "/cpoc/gettlmlinkcertificate") in world.requests
    assert world.requests[-1][1] != f"/cpoc/getectl/{old.hex().upper()}"
    assert client.trust.ectl.signer == new and new in client.trust.tlms  # the new TLM's ECTL applied
    # a restart replays the old ECTL, the link and the new TLM's ECTL from trust.json
    again = pki["client"]()
    assert again.load_errors == [] and again.trust.ectl.signer == new
    assert again.trust.roots.keys() == client.trust.roots.keys()


async def test_tlm_link_to_a_tlm_the_ectl_does_not_list_fetches_its_certificate(pki):
    from rsu import clock as clockmod
    from tests.pki import authorities as A

    world, clock = pki["world"], pki["clock"]
    # a TLM at the end of its life (ends in about 10 days): the client looks for a link certificate
    world.tlm = A.make_tlm("world-tlm", start=clockmod.time32(NOW) - 4 * 365 * 86400 + 10 * 86400)
    client = pki["client"]()
    outcomes = await settle(client, pki["transport"], clock)
    assert ("trust", "ok") in results(outcomes) and world.requests.count(("GET", "/cpoc/gettlmlinkcertificate")) == 1
    assert any("no TLM link certificate" in o.detail and "404" in o.detail for o in outcomes)  # none yet: no error
    assert client.jobs["trust"].failures == 0 and len(client.usable_ats(clock.now())) == 2
    world.link_rollover(clock.now(), in_ectl=False)
    clock.advance(25 * HOUR)
    outcomes = await settle(client, pki["transport"], clock)
    assert all(o.ok for o in outcomes), results(outcomes)
    assert ("GET", "/cpoc/gettlmcertificate/") in world.requests
    assert client.trust.ectl.signer == _h8(world.next_tlm)


async def test_tlm_link_refused_changes_nothing(pki):
    from rsu.pki.trustlist import REASONS
    from tests.pki import authorities as A

    client, world, clock = pki["client"](), pki["world"], pki["clock"]
    await settle(client, pki["transport"], clock)
    world.link_rollover(clock.now())
    good = world.link
    before = client.trust
    for n, bad in enumerate(
        [
            good[:20] + bytes([good[20] ^ 0x01]) + good[21:],  # a flipped byte
            good[:-1] + bytes([good[-1] ^ 0x80]),  # the signature
            A.tlm_link(A.make_tlm("rogue"), world.next_tlm.certificate),  # another TLM
            A.tlm_link(world.tlm, world.next_tlm.certificate, expiry=A.T32 - 60),
        ]
    ):  # expired
        world.link = bad
        client._link_checked = float("-inf")
        clock.advance(25 * HOUR)
        outcomes = await settle(client, pki["transport"], clock)
        refused = [o for o in outcomes if not o.ok]
        assert len(refused) == 1 and refused[0].result in REASONS, (n, results(outcomes))
        assert _h8(world.next_tlm) not in client.trust.tlms
        assert client.trust.ectl.signer == before.ectl.signer and client.jobs["trust"].last_error
        client.jobs["trust"].retry_at = 0.0
    assert not any(k.startswith("tlm-link:") for k in client.trust_applied)


# ====================================================================== delta lists at the full-list URL


async def test_a_delta_ctl_at_the_full_list_url_is_applied_on_top_and_a_gap_is_refused(pki):
    from rsu.pki.signed import signer_hashed_id8

    client, world, clock = pki["client"](), pki["world"], pki["clock"]
    await settle(client, pki["transport"], clock)
    rid = world.root.certificate.hashed_id8
    aa = signer_hashed_id8(world.aa.cert)
    assert client.trust.roots[rid].ctl.sequence == 0 and aa in client.trust.roots[rid].aas
    # the DC answers getctl with a delta that follows our list: the AA is deleted, a DC added
    world.served["ctl"] = world.delta(
        "ctl", clock.now(), 1, [("delete", ("cert", aa)), ("add", ("dc", {"url": "http://dc2.test/", "cert": []}))]
    )
    clock.advance(25 * HOUR)
    outcomes = await settle(client, pki["transport"], clock)
    assert ("trust", "ok") in results(outcomes) and client.jobs["trust"].failures == 0, results(outcomes)
    root = client.trust.roots[rid]
    assert root.ctl.sequence == 1 and aa not in root.aas and root.eas  # on top: the EA of the full list stays
    assert "http://dc2.test/" in root.dcs
    assert client.usable_ats(clock.now()) == []  # the AA is no longer listed: its ATs are not used
    # a restart replays the full list and the delta
    again = pki["client"]()
    assert again.load_errors == [] and again.trust.roots[rid].ctl.sequence == 1 and aa not in again.trust.roots[rid].aas
    # a delta that does not follow (3 after 1): refused, the held list (full + delta) kept, on disk too
    world.served["ctl"] = world.delta("ctl", clock.now(), 3, [("delete", ("cert", signer_hashed_id8(world.ea.cert)))])
    held = dict(client.trust_applied)
    clock.advance(25 * HOUR)
    outcomes = await settle(client, pki["transport"], clock)
    assert [o.result for o in outcomes if not o.ok] == ["sequence-gap"], results(outcomes)
    assert client.trust.roots[rid].ctl.sequence == 1 and client.trust.roots[rid].eas
    assert client.trust_applied[f"ctl:{rid.hex()}"] == held[f"ctl:{rid.hex()}"]
    assert pki["client"]().trust.roots[rid].ctl.sequence == 1
    # a full list again replaces everything: the deltas are dropped
    client.jobs["trust"].retry_at = 0.0
    clock.advance(25 * HOUR)
    world.served["ctl"] = world._ctl(clock.now(), 2)
    outcomes = await settle(client, pki["transport"], clock)
    assert all(o.ok for o in outcomes), results(outcomes)
    assert client.trust.roots[rid].ctl.sequence == 2 and aa in client.trust.roots[rid].aas
    assert "deltas" not in client.trust_applied[f"ctl:{rid.hex()}"]


async def test_a_delta_ectl_at_the_cpoc_adds_on_top_and_one_going_backwards_is_refused(pki):
    client, world, clock = pki["client"](), pki["world"], pki["clock"]
    await settle(client, pki["transport"], clock)
    rid = world.root.certificate.hashed_id8
    other = A.make_tlm("other-root")  # a second self-signed "root" the delta adds (CTL rights suffice)
    seq = client.trust.ectl.sequence
    world.served["ectl"] = world.delta("ectl", clock.now(), (seq + 1) % 256, [A.add_rca(other.certificate)])
    clock.advance(25 * HOUR)
    outcomes = await settle(client, pki["transport"], clock)
    assert client.jobs["trust"].failures == 0, results(outcomes)
    assert client.trust.ectl.sequence == seq + 1 and rid in client.trust.roots
    assert other.certificate.hashed_id8 in client.trust.roots  # added on top, nothing of the full list lost
    world.served["ectl"] = world.delta("ectl", clock.now(), seq, [("delete", ("cert", rid))])  # goes backwards
    clock.advance(25 * HOUR)
    outcomes = await settle(client, pki["transport"], clock)
    assert [o.result for o in outcomes if not o.ok] == ["sequence-gap"], results(outcomes)
    assert rid in client.trust.roots and client.trust.ectl.sequence == seq + 1
    assert pki["client"]().trust.ectl.sequence == seq + 1  # on disk: full list + the one delta
