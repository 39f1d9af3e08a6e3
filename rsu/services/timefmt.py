"""ISO TS 19091 / SAE J2735 time fields (MinuteOfTheYear, DSecond) from the shared clock's POSIX time.

``rsu.clock`` holds the ITS scales (TimestampIts, Time32/64); these two DSRC scales are
UTC-based (J2735: "minutes elapsed in the current UTC year" and "milliseconds within the
current minute"), so leap seconds are not counted: a POSIX time maps directly. They could
move to ``rsu.clock`` (see the report); nothing here depends on where they live.
"""

from __future__ import annotations

from datetime import UTC, datetime

MOY_INVALID = 527040  # MinuteOfTheYear value for "invalid"


def _year_start(posix: float) -> float:
    year = datetime.fromtimestamp(posix, tz=UTC).year
    return datetime(year, 1, 1, tzinfo=UTC).timestamp()


def minute_of_the_year(posix: float) -> int:
    """MinuteOfTheYear (0..527039): whole UTC minutes since 1 January 00:00 of the same year."""
    return int((posix - _year_start(posix)) // 60)


def moy_dsecond(posix: float) -> tuple[int, int]:
    """(MinuteOfTheYear, DSecond) of one instant, consistent with each other (no rounding across a minute)."""
    ms = int(round(posix * 1000))
    return minute_of_the_year(ms / 1000), ms % 60000


DSECOND_UNAVAILABLE = 65535


def _minutes_in_year(year: int) -> int:
    return (datetime(year + 1, 1, 1, tzinfo=UTC) - datetime(year, 1, 1, tzinfo=UTC)).days * 1440


def moy_to_posix(moy: int, dsec: int | None, near: float) -> float | None:
    """POSIX time of (MinuteOfTheYear, DSecond), read relative to ``near`` (now): of the years around
    ``near`` in which that minute exists, the one that puts it closest to ``near``, in either direction.
    So at 1 January 00:01 a minute of 31 December 23:59 is two minutes ago (not next December), and on
    31 December 23:59 minute 1 is two minutes ahead (not last January).

    None when the minute is "invalid" (527040) or exists in none of those years (527039 outside leap
    years). DSecond: 60000..60999 (a leap second) counts as the end of the minute; 65535
    ("unavailable") and other reserved values as its start.
    """
    if not 0 <= moy < MOY_INVALID:
        return None
    if dsec is None or dsec >= 61000:
        dsec = 0
    dsec = min(dsec, 59999)
    year = datetime.fromtimestamp(near, tz=UTC).year
    best = None
    for y in (year - 1, year, year + 1):
        if moy >= _minutes_in_year(y):
            continue
        t = datetime(y, 1, 1, tzinfo=UTC).timestamp() + moy * 60 + dsec / 1000
        if best is None or abs(t - near) < abs(best - near):
            best = t
    return best
