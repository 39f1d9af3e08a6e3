"""Fixtures of the two-station tests: one manual clock, one test PKI, and stations made on demand."""

from __future__ import annotations

import contextlib

import pytest
from services.secured import authorities, trust  # the one test PKI (root, AA), made once per session
from services.support import PROVIDER, START

from rsu.clock import ManualClock
from stations.link import ALL, Link, Station, make_at


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
