"""ISO TS 19091 / SAE J2735 time fields (MinuteOfTheYear, DSecond) from the shared clock's POSIX time.

``rsu.clock`` holds the ITS scales (TimestampIts, Time32/64); these two DSRC scales are
UTC-based (J2735: "minutes elapsed in the current UTC year" and "milliseconds within the
current minute"), so leap seconds are not counted: a POSIX time maps directly. They could
move to ``rsu.clock`` (see the report); nothing here depends on where they live.
"""

from __future__ import annotations

from datetime import datetime, timezone

MOY_INVALID = 527040  # MinuteOfTheYear value for "invalid"


def _year_start(posix: float) -> float:
    year = datetime.fromtimestamp(posix, tz=timezone.utc).year
    return datetime(year, 1, 1, tzinfo=timezone.utc).timestamp()


def minute_of_the_year(posix: float) -> int:
    """MinuteOfTheYear (0..527039): whole UTC minutes since 1 January 00:00 of the same year."""
    return int((posix - _year_start(posix)) // 60)


def dsecond(posix: float) -> int:
    """DSecond (0..59999): milliseconds within the current UTC minute."""
    return moy_dsecond(posix)[1]


def moy_dsecond(posix: float) -> tuple[int, int]:
    """(MinuteOfTheYear, DSecond) of one instant, consistent with each other (no rounding across a minute)."""
    ms = int(round(posix * 1000))
    return minute_of_the_year(ms / 1000), ms % 60000


def moy_to_posix(moy: int, dsec: int, near: float) -> float:
    """POSIX time of (MinuteOfTheYear, DSecond) in the year of ``near`` (the year before/after at the wrap)."""
    best = None
    year = datetime.fromtimestamp(near, tz=timezone.utc).year
    for y in (year - 1, year, year + 1):
        t = datetime(y, 1, 1, tzinfo=timezone.utc).timestamp() + moy * 60 + dsec / 1000
        if best is None or abs(t - near) < abs(best - near):
            best = t
    return best  # type: ignore[return-value]
