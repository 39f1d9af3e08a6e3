"""The PKI client inside the daemon, in this process under a manual clock: the test EA/AA/DC/CPOC over
real HTTP (tests.pki.servers), the daemon's real GN transport on its own multicast group, real API.

From an empty state directory: the daemon makes its canonical identity, fetches the trust lists, is
refused (unknownits) until the operator registers the canonical key, then enrols, gets ATs, and
every service's message on the air is signed by a fetched AT and verified by a receiver that trusts
the ECTL; 140 h later the ATs are renewed and the signer uses the new ones without a restart.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from rsu import catalog
from rsu import clock as clockmod
from rsu.clock import ManualClock
from rsu.ops import config as cfgmod
from rsu.ops.daemon import Daemon
from rsu.pki.keystore import FileKeyStore
from rsu.security.verify import TrustStore, Verifier
from rsu.transports import gn
from tests.netutil import free_tcp_port, group_and_port
from tests.ops.daemonproc import MulticastReceiver, example
from tests.pki.authorities import NOW
from tests.pki.servers import Servers
from tests.pki.world import ITS_ID, PkiWorld

HOUR = 3600.0
ETHERNET = 14
PAYLOADS = {
    "rlt": example("mapem-4arm-intersection.json"),
    "tlm": example("spatem-4arm-intersection.json"),
    "ivi": example("ivim-speed-limit.json"),
    "tlc": example("srem-bus-priority.json"),
    "gpc": example("rtcmem-corrections.json"),
}
ALL_FIVE = {"mapem", "spatem", "ivim", "srem", "rtcmem"}


def at_test_time(ivim: dict, now: float) -> dict:
    """The example IVIM valid from ``now`` (the manual clock is in 2019, the example's validFrom in 2025)."""
    ms = int(clockmod.posix_to_its_seconds(now) * 1000)
    ivim["ivi"]["mandatory"].update(timeStamp=ms, validFrom=ms)
    return ivim


def pki_section(world: PkiWorld, **extra) -> dict:
    return {
        "cpoc_url": world.cpoc_url,
        "tlm": world.tlm.certificate.hashed_id8.hex(),
        "root": world.root.certificate.hashed_id8.hex(),
        "its_id": ITS_ID.decode(),
        "retry_base": 1,
        "retry_max": 10,
        "http_timeout": 5,
        "http_retries": 0,
        **extra,
    }


def daemon_config(tmp_path, world, net, **extra) -> cfgmod.Config:
    return cfgmod.parse(config_dict(tmp_path, world, net, **extra))


def config_dict(tmp_path, world, net, **extra) -> dict:
    return {
        "state_dir": str(tmp_path / "state"),
        "api": {"port": free_tcp_port()},
        "logging": {"level": "INFO"},
        "services": {"ivi_provider": {"country": "FR", "issuer": 57}},
        "transports": [{"type": "gn-udp", "name": "gn", "group": net[0], "port": net[1], "interface": "lo"}],
        "pki": pki_section(world),
        **extra,
    }


async def until(predicate, what: str, timeout: float = 10.0):
    """Wait (bounded) for something the daemon's tasks do."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def verdicts(frames, clock, client):
    """A receiver that trusts the ECTL (the client's trust store) and nothing else: (kind, result) per frame."""
    out = []
    verifier = Verifier(clock, TrustStore(), pki_trust=lambda: client.trust)
    for frame in frames:
        packet = gn.parse_packet(frame[ETHERNET:])
        kind = catalog.BY_BTP_PORT[packet.btp_port]
        out.append((kind, verifier.verify(packet.secured, kind, payload_offset=packet.payload_offset)))
    return out


@pytest.fixture
async def served(tmp_path):
    clock = ManualClock(NOW)
    placeholder = FileKeyStore(tmp_path / "nobody").get_or_generate("canonical").public_key()
    world = PkiWorld(placeholder)  # the EA knows no canonical key of ours yet
    world.ea.canonical.clear()
    world.reissue(NOW - 86400)  # an AA that may issue all five services' permissions
    servers = Servers(world, clock)
    port = await _start_plain(servers)
    world.base = f"http://127.0.0.1:{port}"
    yield world, clock, servers
    await servers.stop()


async def _start_plain(servers: Servers) -> int:
    from aiohttp import web

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", servers.handler)
    servers.runner = web.AppRunner(app)
    await servers.runner.setup()
    site = web.TCPSite(servers.runner, "127.0.0.1", 0)
    await site.start()
    return site._server.sockets[0].getsockname()[1]


async def test_empty_state_enrols_signs_every_service_with_fetched_ats_and_renews(served, tmp_path):
    world, clock, _ = served
    net = group_and_port()
    daemon = Daemon(daemon_config(tmp_path, world, net), clock=clock)
    await daemon.start()
    rx = MulticastReceiver(*net)
    try:
        client = daemon.pki.client
        # no local test PKI: the pool waits for the client
        assert not (tmp_path / "state" / "pki").exists() and daemon.security.pool.tickets == []
        await until(lambda: client.jobs["enrol"].last_error is not None, "the first enrolment attempt")
        assert client.jobs["enrol"].last_error["reason"] == "unknownits"
        assert len(client.trust_applied) == 3 and client.ec is None
        # the operator registers the canonical key `rsu pki init` (here: the daemon) made, at the EA
        canonical = FileKeyStore(tmp_path / "state" / "pki-client" / "keys").get("canonical").public_key()
        world.ea.canonical[ITS_ID] = canonical
        clock.advance(15)  # past the retry time (retry_base 1 s, doubling)
        daemon.pki.wake.set()
        await until(lambda: len(daemon.security.pool.tickets) == 2, "two ATs in the signer")
        fetched = {a.certificate.hashed_id8 for a in client.ats}
        assert {t.hashed_id8 for t in daemon.security.pool.tickets} == fetched and client.ec is not None

        async with aiohttp.ClientSession() as http:
            for service, payload in {**PAYLOADS, "ivi": at_test_time(PAYLOADS["ivi"], NOW)}.items():
                async with http.post(
                    f"http://127.0.0.1:{daemon.api_port}/v1/{service}/messages", json={"payload": payload}
                ) as resp:
                    assert resp.status in (200, 201), (service, await resp.text())
            async with http.get(f"http://127.0.0.1:{daemon.api_port}/v1/status") as resp:
                status = await resp.json()
            async with http.get(f"http://127.0.0.1:{daemon.api_port}/metrics") as resp:
                metrics = await resp.text()
        frames = await asyncio.to_thread(_collect, rx)
        results = verdicts(frames, clock, client)
        assert all(r.ok for _, r in results), [(k.name, r.reason, r.detail) for k, r in results if not r.ok]
        assert {k.name for k, _ in results} >= ALL_FIVE
        assert {r.signer_id for _, r in results} <= fetched

        # status and metrics show the client
        pki = status["pki"]
        assert pki["ec"]["hashedId8"] == client.ec.certificate.hashed_id8.hex() and pki["atsUsable"] == 2
        assert pki["trust"]["ageSeconds"] is not None and pki["jobs"]["enrol"]["lastOk"] is not None
        assert pki["jobs"]["enrol"]["lastError"]["reason"] == "unknownits"  # the last error stays visible
        assert (
            "rsu_pki_ats_available 2.0" in metrics
            and 'rsu_pki_attempts_total{job="enrol",result="unknownits"} 1.0' in metrics
        )

        # 140 h later (20 % of the 168 h life left): two new ATs, picked up without a restart;
        # 30 h later the old ones expire and the signer uses only the new ones
        clock.advance(140 * HOUR)
        daemon.pki.wake.set()
        await until(lambda: len(client.ats) == 4, "two renewed ATs")
        renewed = {a.certificate.hashed_id8 for a in client.ats} - fetched
        await until(lambda: {t.hashed_id8 for t in daemon.security.pool.tickets} >= renewed, "the pool takes them")
        clock.advance(30 * HOUR)
        daemon.pki.wake.set()
        await until(lambda: {t.hashed_id8 for t in daemon.security.pool.tickets} == renewed, "old ATs dropped")
        await asyncio.to_thread(_drain, rx)
        daemon._wake.set()  # the repetitions due in the manual clock's future
        # (the SPATEM's own validity ended in the 170 h jump: the messages still active repeat)
        frames = await asyncio.to_thread(_collect, rx, {"mapem", "ivim", "rtcmem"})
        results = verdicts(frames, clock, client)
        assert all(r.ok for _, r in results), [(k.name, r.reason, r.detail) for k, r in results if not r.ok]
        assert {k.name for k, _ in results} >= {"mapem", "ivim", "rtcmem"}
        assert {r.signer_id for _, r in results} <= renewed
    finally:
        rx.close()
        await daemon.stop()
    assert daemon.pki._closed


def _collect(rx, wanted=ALL_FIVE) -> list[bytes]:
    """Frames until one of each ``wanted`` message is in (at most 10 s: then what came, for the assertion)."""
    import time

    got: list[bytes] = []
    deadline = time.monotonic() + 10.0
    while not wanted <= _kinds(got) and time.monotonic() < deadline:
        rx.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(rx.sock.recvfrom(65535)[0])
        except TimeoutError:
            pass
    return got


def _kinds(frames) -> set[str]:
    return {catalog.BY_BTP_PORT[gn.parse_packet(f[ETHERNET:]).btp_port].name for f in frames}


def _drain(rx) -> None:

    rx.sock.settimeout(0.05)
    try:
        while True:
            rx.sock.recvfrom(65535)
    except TimeoutError:
        pass


PARIS = {"latitude": 48.8566, "longitude": 2.3522}


async def test_ats_whose_region_misses_the_station_are_not_used_until_a_reload_moves_it(served, tmp_path):
    """The AA issues ATs for a 10 km circle around Paris; the RSU stands in Bordeaux (the default position):
    the signer refuses them (named in the status). A SIGHUP-style reload that moves the station restarts
    the client cleanly (old one stopped and closed, state kept) and the signer takes the same ATs."""
    import yaml

    from rsu.pki.identity import ensure_identity

    world, clock, _ = served
    state = tmp_path / "state" / "pki-client"
    keys = FileKeyStore(state / "keys")
    ensure_identity(keys, state, ITS_ID)  # rsu pki init, then the operator registers the key at the EA
    world.ea.canonical[ITS_ID] = keys.get("canonical").public_key()
    world.aa.region = ("circularRegion", {"center": {"latitude": 488566000, "longitude": 23522000}, "radius": 10000})
    net = group_and_port()
    data = config_dict(tmp_path, world, net)
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(data))
    daemon = Daemon(cfgmod.load(str(path)), config_path=str(path), clock=clock)
    await daemon.start()
    try:
        first = daemon.pki
        await until(lambda: len(first.client.ats) == 2, "two ATs fetched")
        daemon.pki_link.pick_up()
        assert daemon.security.pool.tickets == []
        refused = daemon.status()["pki"]["signing"]["refused"]
        assert set(refused) == {a.certificate.hashed_id8.hex() for a in first.client.ats}
        assert all("region does not cover" in why and "circular" in why for why in refused.values())
        from rsu.services.base import ServiceError

        with pytest.raises(ServiceError) as refused_trigger:  # the API answers with what is missing
            daemon.layer.trigger("rlt", {"payload": PAYLOADS["rlt"]})
        assert refused_trigger.value.code == "ssp_not_permitted"
        assert "no AT valid now carries ITS-AID 138" in refused_trigger.value.reason
        data["station"] = {"position": PARIS}
        path.write_text(yaml.safe_dump(data))
        assert await daemon.reload()
        assert daemon.pki is not first and first._closed and first.client is not daemon.pki.client
        assert {a.certificate.hashed_id8 for a in daemon.pki.client.ats} == {
            a.certificate.hashed_id8 for a in first.client.ats
        }  # from the state on disk, nothing re-fetched
        assert len(daemon.security.pool.tickets) == 2 and daemon.status()["pki"]["signing"]["refused"] == {}
        assert daemon.pki_link.task is not None and not daemon.pki_link.task.done()
        # a reload that rebuilds only the security layer (a new, empty pool): the same client fills it
        data["security"] = {"max_age": 20}
        path.write_text(yaml.safe_dump(data))
        runtime = daemon.pki
        assert await daemon.reload()
        assert daemon.pki is runtime and len(daemon.security.pool.tickets) == 2
    finally:
        await daemon.stop()
    assert daemon.pki._closed


async def test_received_frames_from_an_untrusted_root_or_a_revoked_aa_are_dropped_and_counted(served, tmp_path):
    """The daemon's receive path with pki: a neighbour signing with a local test PKI whose root and AA are in
    security.trust_dir (but not in the ECTL) is dropped as security:untrusted-root; a neighbour signing with
    an AT of the PKI's AA is accepted until the DC's CRL revokes that AA, then dropped as security:revoked."""
    from rsu.pki.identity import ensure_identity
    from rsu.security.pki import init_pki
    from tests.ops.rxharness import Neighbour, feed_gn
    from tests.security import samples

    world, clock, _ = served
    state = tmp_path / "state" / "pki-client"
    keys = FileKeyStore(state / "keys")
    ensure_identity(keys, state, ITS_ID)
    world.ea.canonical[ITS_ID] = keys.get("canonical").public_key()
    local = tmp_path / "local-pki"
    init_pki(local, now=NOW)
    daemon = Daemon(daemon_config(tmp_path, world, group_and_port(), security={"trust_dir": str(local)}), clock=clock)
    await daemon.start()
    try:
        await until(lambda: len(daemon.security.pool.tickets) == 2, "two ATs in the signer")
        pki_signer = daemon.security.pool.tickets[0].signer  # an AT of the PKI's AA, as another RSU has
        nb = Neighbour(local, clock)
        pdu = nb.pdu(catalog.SPATEM, samples.spatem())

        def dropped(reason: str) -> float:
            return daemon.metrics.child(daemon.metrics.rx_dropped, "spatem", "gn", reason)._value.get()

        feed_gn(daemon, nb.frame(catalog.SPATEM, pdu))  # local test PKI: root only in trust_dir
        assert dropped("security:untrusted-root") == 1
        clock.advance(0.1)
        feed_gn(daemon, nb.frame(catalog.SPATEM, pdu, signer=pki_signer))
        assert dropped("security:untrusted-root") == 1 and dropped("security:revoked") == 0
        assert daemon.metrics.child(daemon.metrics.accepted, "TLM", "spatem", "gn")._value.get() == 1

        world.revoked = [world.aa.cert.hashed_id8]  # the DC's next CRL (lists re-issued after half a period)
        clock.advance(4 * 86400)
        daemon.pki.wake.set()
        await until(lambda: daemon.pki.client.trust.is_revoked(world.aa.cert.hashed_id8), "the new CRL applied")
        await until(lambda: daemon.security.pool.tickets == [], "the revoked AA's ATs leave the signer")
        feed_gn(daemon, nb.frame(catalog.SPATEM, pdu, signer=pki_signer))
        assert dropped("security:revoked") == 1
        assert "security:revoked" in daemon.metrics.exposition().decode()
    finally:
        await daemon.stop()
