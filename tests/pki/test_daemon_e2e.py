"""Issue 14's "done when", as a real ``rsu run`` subprocess on the real clock: started with an empty state
directory and the test PKI's URLs (the test CPOC/DC/EA/AA of tests.pki.servers, over real HTTP from
this process), it makes its canonical identity, fetches and applies the trust lists, enrols once the
operator registered its canonical key, gets ATs, and every service's message on the air is signed by
a fetched AT: the daemon's own capture passes ``rsu verify`` with the roots and AAs of the trust lists,
and with the trust store the client applied (``--pki-state``).
(AT renewal under a manual clock: tests/pki/test_daemon.py.)"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from rsu import catalog
from rsu.clock import SystemClock
from rsu.pki.keystore import FileKeyStore
from rsu.transports import gn
from tests.conftest import run_rsu
from tests.ops.daemonproc import MulticastReceiver, RsuDaemon, group_and_port
from tests.pki.servers import Servers
from tests.pki.test_daemon import PAYLOADS
from tests.pki.world import ITS_ID, PkiWorld

ETHERNET = 14


class ServedPki:
    """The test PKI on the real clock, served by aiohttp from a thread of its own."""

    def __init__(self, tmp_path) -> None:
        placeholder = FileKeyStore(tmp_path / "nobody").get_or_generate("canonical").public_key()
        self.world = PkiWorld(placeholder)
        self.world.ea.canonical.clear()
        self.world.reissue(time.time() - 86400)
        self.servers = Servers(self.world, SystemClock())
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.world.base = f"http://127.0.0.1:{port}"

    async def _start(self) -> int:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.servers.handler)
        self.servers.runner = web.AppRunner(app)
        await self.servers.runner.setup()
        site = web.TCPSite(self.servers.runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.servers.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def served(tmp_path):
    pki = ServedPki(tmp_path)
    yield pki
    pki.close()


def wait_for(predicate, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:  # bounded poll of a subprocess's state
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_empty_state_to_every_service_signed_by_fetched_ats(served, tmp_path):
    world = served.world
    net = group_and_port()
    pki = {
        "cpoc_url": world.cpoc_url,
        "tlm": world.tlm.certificate.hashed_id8.hex(),
        "root": world.root.certificate.hashed_id8.hex(),
        "its_id": ITS_ID.decode(),
        "retry_base": 1,
        "retry_max": 2,
        "http_timeout": 5,
    }
    daemon = RsuDaemon(tmp_path, group=net[0], port=net[1], extra={"pki": pki})
    daemon.start()
    rx = MulticastReceiver(*net)
    try:
        state = daemon.dir / "state"
        status = wait_for(
            lambda: (lambda s: s if s["pki"]["jobs"]["enrol"]["lastError"] else None)(daemon.get("/v1/status")[1]),
            "the first enrolment attempt",
        )
        assert status["pki"]["jobs"]["enrol"]["lastError"]["reason"] == "unknownits"
        assert status["pki"]["ec"] is None and status["authorization_tickets"] == []
        assert not (state / "pki").exists()  # no local test PKI
        # the operator registers the canonical key at the EA; the daemon's next attempt enrols
        world.ea.canonical[ITS_ID] = FileKeyStore(state / "pki-client" / "keys").get("canonical").public_key()
        status = wait_for(
            lambda: (lambda s: s if len(s["authorization_tickets"]) == 2 else None)(daemon.get("/v1/status")[1]),
            "two ATs in the signer",
        )
        fetched = {a["hashedId8"] for a in status["pki"]["ats"]}
        assert {t["hashedId8"] for t in status["authorization_tickets"]} == fetched
        assert status["pki"]["ec"] is not None and status["pki"]["trust"]["ageSeconds"] is not None

        for service, payload in PAYLOADS.items():
            daemon.trigger(service, payload)
        wanted = {k.btp_port for k in (catalog.MAPEM, catalog.SPATEM, catalog.IVIM, catalog.SREM, catalog.RTCMEM)}
        rx.frames(lambda got: wanted <= {gn.parse_packet(f[ETHERNET:]).btp_port for f in got})
        assert daemon.metric("rsu_pki_ats_available") == 2
        assert daemon.metric("rsu_pki_attempts_total", job="authorize", result="ok") == 2
        cli = run_rsu("status", "--api", daemon.url)
        assert cli.returncode == 0, cli.stderr
        text = cli.stdout.decode()
        assert "PKI client" in text and "2 usable of 2" in text and "last error: unknownits" in text
    finally:
        rx.close()
        code = daemon.stop()
    assert code == 0, daemon.log()

    # a receiver that trusts the root and AA of the applied trust lists accepts every frame on the air,
    # each signed by an AT the daemon fetched
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "root.oer").write_bytes(world.root.certificate.raw)
    (trust / "aa.oer").write_bytes(world.aa.cert.raw)
    r = run_rsu("verify", str(daemon.pcap), "--trust", str(trust))
    out = json.loads(r.stdout)
    assert r.returncode == 0, [f for f in out["frames"] if not f["valid"]][:3]
    assert {f["message"] for f in out["frames"]} == {"MAPEM", "SPATEM", "IVIM", "SREM", "RTCMEM"}
    assert all(f["chain"] == "valid" and f["sspCheck"] == "passed" for f in out["frames"])
    # the same with the trust store the daemon's PKI client applied (anchored at the TLM only)
    tlm = world.tlm.certificate.hashed_id8.hex()
    r = run_rsu("verify", str(daemon.pcap), "--pki-state", str(daemon.dir / "state" / "pki-client"), "--tlm", tlm)
    by_state = json.loads(r.stdout)
    assert r.returncode == 0, [f for f in by_state["frames"] if not f["valid"]][:3]
    assert by_state["summary"]["frames"] == out["summary"]["frames"]
    other = run_rsu(
        "verify", str(daemon.pcap), "--pki-state", str(daemon.dir / "state" / "pki-client"), "--tlm", "00" * 8
    )
    assert other.returncode == 2 and b"no ECTL signed by TLM" in other.stderr
    signers = {json.dumps(f["signer"]) for f in out["frames"]}
    assert signers and all(any(h8 in s for h8 in fetched) for s in signers), (signers, fetched)
    assert "PRIVATE KEY" not in daemon.log()
