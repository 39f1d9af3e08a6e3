"""Fixtures of the two-station tests: one manual clock, one test PKI, and stations made on demand."""

from __future__ import annotations

import contextlib

import pytest
from services.secured import authorities, trust  # the one test PKI (root, AA), made once per session
from services.support import PROVIDER, START

from rsu import catalog
from rsu import clock as clockmod
from rsu.clock import ManualClock
from rsu.security import pki, ssp
from stations.link import Link, Station

OWN_PROVIDER = ssp.ServiceProvider.of(PROVIDER["countryCode"], PROVIDER["providerIdentifier"])


def make_at(clock: ManualClock, *messages: str, start_s: float = -3600.0, hours: int = 168) -> pki.Issued:
    """An AT from the test AA with the full SSP of each message type, valid from ``start_s`` (relative to now)."""
    _, aa = authorities()
    perms = []
    for name in messages:
        kind = catalog.by_name(name)
        perms.append((kind.its_aid, ssp.full(kind, OWN_PROVIDER if ssp.layout(kind).provider_octets else None)))
    return pki.make_at(aa, clockmod.time32(clock.now() + start_s), perms, hours=hours)


ALL = ("spatem", "mapem", "ivim", "srem", "ssem", "rtcmem")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def station(tmp_path, clock, codec):
    """``station("a", ats=[...], **options)``: a :class:`Station` on its own state directory (closed after
    the test). Without ``ats`` it has one AT permitting every message type."""
    with contextlib.ExitStack() as closing:
        made: list[Station] = []

        def make(name: str, *, ats=None, station_id: int = 3120101, **options) -> Station:
            s = Station(
                name,
                tmp_path / name,
                clock,
                codec,
                ats=ats or [make_at(clock, *ALL)],
                issuers=authorities(),
                trust=trust(),
                station_id=station_id,
                ivi_provider=PROVIDER,
                mac=len(made) + 1,
                **options,
            )
            made.append(s)
            closing.callback(s.close)
            return s

        yield make


@pytest.fixture
def pair(station, clock) -> tuple[Station, Station, Link]:
    """Stations A (the RSU) and B (its neighbour) on one link, each with its own AT."""
    a, b = station("a", station_id=3120101), station("b", station_id=2104711)
    return a, b, Link(clock, a, b)
