"""MinuteOfTheYear / DSecond are read relative to now, in both directions of the new year: at 1 January
00:01 a time of 31 December 23:58 is three minutes ago (not next December), on 31 December 23:59 a time
of 1 January 00:01 is two minutes ahead (not last January). The TLC request table, with an injected
clock at 31 Dec 23:59 and at 1 Jan 00:01, keeps a received SREM request exactly as long as its window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rsu import catalog
from rsu.services.timefmt import MOY_INVALID, minute_of_the_year, moy_dsecond, moy_to_posix
from services.support import example


def utc(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


DEC31_2359 = utc(2026, 12, 31, 23, 59)
JAN1_0001 = utc(2027, 1, 1, 0, 1)
LEAP_DEC31_2359 = utc(2028, 12, 31, 23, 59)
SEC = {"its_aid": 140, "ssp": "0280000000", "signer": "0102030405060708", "verification": "ok"}


@pytest.mark.parametrize(
    "now, when",
    [
        (JAN1_0001, utc(2026, 12, 31, 23, 58, 30)),  # the old year's last minutes, just after midnight: the past
        (JAN1_0001, utc(2027, 1, 1, 0, 0, 5)),
        (DEC31_2359, utc(2027, 1, 1, 0, 1, 15)),  # the new year's first minutes, just before midnight: the future
        (DEC31_2359, utc(2026, 12, 31, 23, 50)),
        (LEAP_DEC31_2359, utc(2028, 12, 31, 23, 59, 59)),  # minute 527039 exists in a leap year only
        (utc(2029, 1, 1, 0, 1), utc(2028, 12, 31, 23, 59)),
        (utc(2026, 6, 1), utc(2026, 6, 1, 0, 0, 1)),
    ],
)
def test_moy_and_dsecond_round_trip_relative_to_now(now, when):
    moy, dsec = moy_dsecond(when)
    assert moy_to_posix(moy, dsec, now) == pytest.approx(when)


def test_invalid_and_reserved_values():
    assert moy_to_posix(MOY_INVALID, 0, JAN1_0001) is None
    assert moy_to_posix(527039, 0, utc(2026, 7, 1)) is None  # 2025, 2026, 2027: none is a leap year
    minute = minute_of_the_year(DEC31_2359)
    assert moy_to_posix(minute, 60500, DEC31_2359) == pytest.approx(DEC31_2359 + 59.999)  # leap second
    assert moy_to_posix(minute, 65535, DEC31_2359) == pytest.approx(DEC31_2359)  # DSecond unavailable
    assert moy_to_posix(minute, None, DEC31_2359) == pytest.approx(DEC31_2359)


def srem_with_window(codec, start: float, duration_ms: int) -> bytes:
    v = example("srem")
    pkg = v["srm"]["requests"][0]
    pkg["minute"], pkg["second"] = moy_dsecond(start)
    pkg["duration"] = duration_ms
    _, value = codec.from_jer(v, catalog.SREM)
    return codec.encode(value)


def test_srem_window_at_1_jan_0001_is_last_years_and_has_ended(layer, codec, clock):
    clock.set(JAN1_0001)
    event = layer.on_received(srem_with_window(codec, utc(2026, 12, 31, 23, 58), 60_000), SEC, {})
    (request,) = event["tlc"]["requests"]
    assert request["expires"] == "2027-01-01T00:01:00Z"  # the window ended a minute ago: not next December
    assert layer.services["tlc"].expire(clock.now()) is not None
    assert layer.services["tlc"].pending == {}


def test_srem_window_at_31_dec_2359_is_next_years_and_pending_until_it_ends(layer, codec, clock):
    clock.set(DEC31_2359)
    event = layer.on_received(srem_with_window(codec, utc(2027, 1, 1, 0, 1), 60_000), SEC, {})
    (request,) = event["tlc"]["requests"]
    assert request["expires"] == "2027-01-01T00:02:00Z"  # two minutes ahead plus the minute it lasts
    tlc = layer.services["tlc"]
    clock.set(utc(2027, 1, 1, 0, 1, 59))
    tlc.expire(clock.now())
    assert list(tlc.pending) == [request["key"]]
    clock.set(utc(2027, 1, 1, 0, 2))
    tlc.expire(clock.now())
    assert tlc.pending == {}
