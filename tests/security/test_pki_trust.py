"""The receive path with the PKI client's trust store (ECTL roots, CTL authorities, CRLs): frames whose
chain does not end at a root of the applied ECTL are dropped as UNTRUSTED_ROOT, frames whose AT or
issuer a CRL lists as REVOKED; and the sender's region check (rsu.security.region)."""

from __future__ import annotations

import pytest

from rsu import catalog
from rsu.clock import ManualClock
from rsu.pki import client as C
from rsu.pki.keystore import FileKeyStore
from rsu.security.pool import AtPool
from rsu.security.region import covers
from rsu.security.request import request_for_pdu
from rsu.security.service import SecurityService
from rsu.security.verify import Reason, TrustStore, Verifier
from tests.pki.authorities import NOW
from tests.pki.helpers import SeededRandomness
from tests.pki.world import PkiWorld
from tests.security import samples

HOUR = 3600.0


def settle(client, world, now):
    for _ in range(20):
        actions = client.poll(now)
        if not actions:
            return
        for action in actions:
            client.on_result(world.serve(action, now), now)
    raise AssertionError("client never settles")


@pytest.fixture
def fetched(tmp_path):
    """A client that went through the test PKI (ECTL, CTL, CRL, EC, ATs) and a signer using its ATs."""
    keys = FileKeyStore(tmp_path / "keys")
    world = PkiWorld(keys.get_or_generate("canonical").public_key())
    client = C.PkiClient.load(
        world.config(), keys, tmp_path / "state", random=SeededRandomness("rx"), jitter=lambda: 1.0
    )
    settle(client, world, NOW)
    clock = ManualClock(NOW)
    return world, client, clock


def spatem(clock, tickets, codec):
    svc = SecurityService(AtPool(tickets, clock), Verifier(clock), clock)
    return svc.sign(request_for_pdu(catalog.SPATEM, codec.encode(samples.spatem()), with_certificate=True))


def test_fetched_at_accepted_through_the_client_trust_store_alone(fetched, codec):
    world, client, clock = fetched
    frame = spatem(clock, client.tickets(NOW), codec)
    assert Verifier(clock, TrustStore(), codec=codec).verify(frame, catalog.SPATEM).reason is Reason.UNKNOWN_ISSUER
    v = Verifier(clock, TrustStore(), codec=codec, pki_trust=lambda: client.trust)
    res = v.verify(frame, catalog.SPATEM)
    assert res.ok, (res.reason, res.detail)


def test_revoked_aa_by_a_crl_is_dropped_as_revoked(fetched, codec):
    world, client, clock = fetched
    frame = spatem(clock, client.tickets(NOW), codec)
    v = Verifier(clock, TrustStore(), codec=codec, pki_trust=lambda: client.trust)
    assert v.verify(frame, catalog.SPATEM).ok  # the chain is now cached as checked
    world.revoked = [world.aa.cert.hashed_id8]
    later = NOW + 4 * 86400  # the CPOC/DC re-issue their lists after half their period
    clock.set(later)
    settle(client, world, later)
    assert client.trust.is_revoked(world.aa.cert.hashed_id8)
    frame2 = spatem(clock, _all_tickets(client), codec)  # a sender that still uses them
    res = v.verify(frame2, catalog.SPATEM)
    assert res.reason is Reason.REVOKED and "issuer" in res.detail and world.aa.cert.hashed_id8.hex() in res.detail
    # the sender side: the client no longer offers that AA's ATs
    assert client.tickets(later) == []


def _all_tickets(client):
    from rsu.security.pool import AuthorizationTicket
    from rsu.security.sign import Signer

    return [AuthorizationTicket(a.certificate, Signer(a.certificate, a.key)) for a in client.ats]


def test_chain_to_a_root_the_ectl_does_not_list_is_untrusted_root(fetched, codec, tmp_path):
    """A local test PKI's root is in trust_dir, but the applied ECTL does not list it."""
    from rsu.security.pki import init_pki

    world, client, clock = fetched
    local = tmp_path / "local-pki"
    init_pki(local, now=NOW)
    pool = AtPool.load_directory(local / "at", clock)
    frame = spatem(clock, pool.tickets, codec)
    trust = TrustStore.from_directory(local)
    assert Verifier(clock, trust, codec=codec).verify(frame, catalog.SPATEM).ok  # without the PKI client
    res = Verifier(clock, trust, codec=codec, pki_trust=lambda: client.trust).verify(frame, catalog.SPATEM)
    assert res.reason is Reason.UNTRUSTED_ROOT, (res.reason, res.detail)
    # an ECTL root that is not valid now is not trusted either
    late = ManualClock(NOW + 10 * 365 * 86400)
    res = Verifier(
        late, TrustStore(), codec=codec, max_age=1e12, max_future=1e12, pki_trust=lambda: client.trust
    ).verify(spatem(clock, client.tickets(NOW), codec), catalog.SPATEM)
    assert res.reason is Reason.UNTRUSTED_ROOT and "valid now" in res.detail, (res.reason, res.detail)


# ---------------------------------------------------------------------- regions


def loc(lat: float, lon: float) -> dict:
    return {"latitude": round(lat * 1e7), "longitude": round(lon * 1e7)}


BORDEAUX = (44.837592, -0.579431)


@pytest.mark.parametrize(
    "region, covered",
    [
        (None, True),
        (("circularRegion", {"center": loc(44.84, -0.58), "radius": 1000}), True),
        (("circularRegion", {"center": loc(44.86, -0.58), "radius": 1000}), False),  # ~2.5 km north
        (("rectangularRegion", [{"northWest": loc(45.0, -1.0), "southEast": loc(44.0, 0.0)}]), True),
        (
            (
                "rectangularRegion",
                [
                    {"northWest": loc(49.0, 2.0), "southEast": loc(48.0, 3.0)},
                    {"northWest": loc(44.9, -0.6), "southEast": loc(44.8, -0.5)},
                ],
            ),
            True,
        ),
        (("rectangularRegion", [{"northWest": loc(49.0, 2.0), "southEast": loc(48.0, 3.0)}]), False),
        # the square 44..45 N, 1 W..0 split on its SW-NE diagonal: Bordeaux is in the north-west half
        (("polygonalRegion", [loc(44.0, -1.0), loc(45.0, -1.0), loc(45.0, 0.0)]), True),
        (("polygonalRegion", [loc(44.0, -1.0), loc(45.0, 0.0), loc(44.0, 0.0)]), False),
        (("identifiedRegion", [("countryOnly", 250)]), True),
    ],
)
def test_region_covers_the_station_position(region, covered):
    assert covers(region, *BORDEAUX).covered is covered


def test_identified_region_is_accepted_but_reported_unchecked():
    cov = covers(("identifiedRegion", [("countryOnly", 276)]), *BORDEAUX)  # Germany: we cannot tell
    assert cov.covered and not cov.checked and "276" in cov.detail


def test_rectangle_across_the_antimeridian():
    r = ("rectangularRegion", [{"northWest": loc(10.0, 170.0), "southEast": loc(-10.0, -170.0)}])
    assert covers(r, 0.0, 179.0).covered and covers(r, 0.0, -175.0).covered and not covers(r, 0.0, 0.0).covered


def test_circle_distance_matches_a_known_figure():
    from rsu.security.region import distance_m

    # Paris (Notre-Dame) to Bordeaux (Place de la Bourse): about 499 km great-circle
    assert 495_000 < distance_m(48.8530, 2.3499, 44.8414, -0.5700) < 502_000


def test_rsu_verify_with_a_pki_client_state(fetched, codec, tmp_path):
    """rsu verify --pki-state DIR --tlm H8: the trust lists the client applied decide; a chain to a root only
    --trust knows is untrusted-root."""
    import json

    from rsu import clock as clockmod
    from rsu.security.pki import init_pki
    from tests.conftest import run_rsu

    world, client, clock = fetched
    local = tmp_path / "local-pki"
    init_pki(local, now=NOW)
    ours, theirs = tmp_path / "ours.oer", tmp_path / "theirs.oer"
    ours.write_bytes(spatem(clock, client.tickets(NOW), codec))
    theirs.write_bytes(spatem(clock, AtPool.load_directory(local / "at", clock).tickets, codec))
    args = [
        "--pki-state",
        str(tmp_path / "state"),
        "--tlm",
        world.tlm.certificate.hashed_id8.hex(),
        "--time",
        clockmod.iso_utc(NOW + 1),
    ]
    r = run_rsu("verify", str(ours), *args)
    assert r.returncode == 0, r.stdout
    r = run_rsu("verify", str(theirs), "--trust", str(local), *args)
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["reason"] == "untrusted-root", out
