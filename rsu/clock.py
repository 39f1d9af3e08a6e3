"""The daemon's one time base, and the conversions to the ITS time scales.

Every protocol core (signer, verifier, AT pool, services) takes a :class:`Clock`
instead of calling :func:`time.time` itself, so tests drive time with a
:class:`ManualClock` and never sleep.

``Clock.now()`` returns **UTC as POSIX seconds** (float), i.e. what ``time.time()``
returns: leap seconds are not counted in it.

ITS time scales (all counted from the ITS epoch 2004-01-01 00:00:00 UTC):

==============  ===========  ===============================================
scale           unit         used by
==============  ===========  ===============================================
Time64          microsecond  IEEE 1609.2 ``generationTime`` / ``expiryTime``
Time32          second       IEEE 1609.2 certificate ``validityPeriod.start``
TimestampIts    millisecond  ETSI CDD ``TimestampIts`` (IVIM, DENM, ...)
==============  ===========  ===============================================

Convention (IEEE 1609.2 §6.4.11-12 for Time32/Time64; ETSI TS 102 894-2 for
TimestampIts): the count is *TAI seconds elapsed since the epoch*, so every leap
second inserted after 2004-01-01 adds one second to the count. At the epoch
TAI-UTC was 32 s, so::

    its_seconds = (posix_utc - 1072915200) + (TAI_UTC(t) - 32)

Today (TAI-UTC = 37 s since 2017-01-01) that is the POSIX offset plus 5 s. The
leap-second table below must be extended when the IERS announces a new leap
second (Bulletin C); none has been scheduled since 2017 and the 2022 CGPM resolution
plans to stop them by 2035. A timestamp during an inserted leap second (23:59:60)
cannot be expressed in POSIX time; it maps to the following second.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

ITS_EPOCH_POSIX = 1072915200  # 2004-01-01T00:00:00Z as POSIX seconds
TAI_UTC_AT_EPOCH = 32

# (POSIX second at which the new offset applies, TAI-UTC from then on), IERS Bulletin C.
LEAP_SECONDS: tuple[tuple[int, int], ...] = (
    (1072915200, 32),  # 2004-01-01 (offset in force since 1999-01-01)
    (1136073600, 33),  # 2006-01-01
    (1230768000, 34),  # 2009-01-01
    (1341100800, 35),  # 2012-07-01
    (1435708800, 36),  # 2015-07-01
    (1483228800, 37),  # 2017-01-01
)
_LEAP_POSIX = [t for t, _ in LEAP_SECONDS]
_LEAP_ITS = [(t - ITS_EPOCH_POSIX) + (off - TAI_UTC_AT_EPOCH) for t, off in LEAP_SECONDS]


@runtime_checkable
class Clock(Protocol):
    """Source of the current time: ``now()`` is UTC as POSIX seconds (float)."""

    def now(self) -> float: ...


class SystemClock:
    """The real clock (``time.time()``)."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to: for tests and simulations."""

    def __init__(self, start: float | datetime | str = 1_700_000_000.0) -> None:
        self._t = _as_posix(start)

    def now(self) -> float:
        return self._t

    def set(self, t: float | datetime | str) -> None:
        self._t = _as_posix(t)

    def advance(self, seconds: float) -> float:
        self._t += seconds
        return self._t


def _as_posix(t: float | datetime | str) -> float:
    if isinstance(t, str):
        t = parse_iso8601(t)
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()
    return float(t)


def parse_iso8601(text: str) -> datetime:
    """ISO 8601 date-time (``Z`` or an offset; no offset means UTC) -> aware datetime. ValueError if bad."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def tai_utc_offset(posix: float) -> int:
    """TAI-UTC in seconds at a POSIX time (32 before 2006; only valid from 2004 on)."""
    i = bisect.bisect_right(_LEAP_POSIX, posix) - 1
    return LEAP_SECONDS[max(i, 0)][1]


def its_leap_seconds(posix: float) -> int:
    """Leap seconds inserted between the ITS epoch and ``posix`` (5 since 2017)."""
    return tai_utc_offset(posix) - TAI_UTC_AT_EPOCH


def posix_to_its_seconds(posix: float) -> float:
    """POSIX UTC seconds -> TAI seconds since the ITS epoch."""
    return (posix - ITS_EPOCH_POSIX) + its_leap_seconds(posix)


def its_seconds_to_posix(its: float) -> float:
    """TAI seconds since the ITS epoch -> POSIX UTC seconds (inverse of :func:`posix_to_its_seconds`)."""
    i = bisect.bisect_right(_LEAP_ITS, its) - 1
    leap = LEAP_SECONDS[max(i, 0)][1] - TAI_UTC_AT_EPOCH
    return its - leap + ITS_EPOCH_POSIX


def time64(posix: float) -> int:
    """IEEE 1609.2 Time64 (TAI µs since 2004-01-01) for a POSIX UTC time."""
    return int(round(posix_to_its_seconds(posix) * 1_000_000))


def time64_to_posix(t64: int) -> float:
    return its_seconds_to_posix(t64 / 1_000_000)


def time32(posix: float) -> int:
    """IEEE 1609.2 Time32 (TAI s since 2004-01-01) for a POSIX UTC time (floored)."""
    return int(posix_to_its_seconds(posix) // 1)


def time32_to_posix(t32: int) -> float:
    return its_seconds_to_posix(float(t32))


def timestamp_its(posix: float) -> int:
    """ETSI TimestampIts (TAI ms since 2004-01-01) for a POSIX UTC time."""
    return int(round(posix_to_its_seconds(posix) * 1000))


def timestamp_its_to_posix(ms: int) -> float:
    return its_seconds_to_posix(ms / 1000)


def iso_utc(posix: float) -> str:
    """POSIX seconds -> ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    dt = datetime.fromtimestamp(posix, tz=UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


# --- DSRC TimeMark (ISO TS 19091 / SAE J2735 SPaT times) ------------------------------------------
# TimeMark ::= INTEGER (0..36001): tenths of a second within the UTC hour, "in the current or next
# hour" of the message's own timestamp; 36000 = the time is more than an hour ahead; 36001 =
# unknown. (35991..35999 are named for leap seconds; a POSIX time never falls inside a leap second,
# so here they are only the ordinary last second of an hour.)
TIMEMARK_MORE_THAN_AN_HOUR = 36000
TIMEMARK_UNKNOWN = 36001


def time_mark(t: float | None, ref: float) -> int:
    """TimeMark of an end/likely/next time ``t`` in a message stamped ``ref`` (both POSIX seconds).

    Computed from the message's own time ``ref`` (never from "now"), in whole milliseconds:

    * ``None``/NaN -> 36001 (unknown);
    * never in the past: a time before ``ref`` is sent as ``ref``;
    * rounded *up* to a tenth (a receiver never sees a time earlier than the real one);
    * a time a whole hour or more after ``ref``'s tenth -> 36000 (it would read as this hour);
    * else ``tenths mod 36000``: across the hour boundary the value restarts at 0 and a receiver
      reads a value below the message's own tenth as the next hour.
    """
    return time_marker(ref)(t)


def time_marker(ref: float) -> Callable[[float | None], int]:
    """:func:`time_mark` of the times of one message stamped ``ref`` (``ref``'s part worked out once: a SPATEM
    has a dozen times or more)."""
    ref_ms = round(ref * 1000)
    ref_tenth = ref_ms // 100

    def mark(t: float | None) -> int:
        if t is None or not math.isfinite(t):
            return TIMEMARK_UNKNOWN
        t_ms = round(t * 1000)
        if t_ms < ref_ms:
            t_ms = ref_ms
        tenth = -(-t_ms // 100)
        if tenth - ref_tenth >= 36000:
            return TIMEMARK_MORE_THAN_AN_HOUR
        return tenth % 36000

    return mark


def start_time_mark(t: float | None, ref: float) -> int | None:
    """TimeMark of a ``startTime``: may lie in the past, but only within ``ref``'s own UTC hour.

    A future start is coded like :func:`time_mark`; a past start is the tenth it fell in; a start
    before the hour of ``ref`` cannot be told from a next-hour time, so it is ``None`` (leave the
    optional startTime out).
    """
    if t is None or not math.isfinite(t):
        return None
    ref_ms, t_ms = round(ref * 1000), round(t * 1000)
    if t_ms > ref_ms:
        return time_mark(t, ref)
    if t_ms < ref_ms - ref_ms % 3_600_000:
        return None
    return (t_ms // 100) % 36000


def time_mark_to_posix(tm: int, ref: float) -> float | None:
    """How a receiver reads an end-time TimeMark of a message stamped ``ref`` (None for 36000/36001).

    Values at or after ``ref``'s tenth are this hour, values before it the next hour.
    """
    if not 0 <= tm < TIMEMARK_MORE_THAN_AN_HOUR:
        return None
    ref_ms = round(ref * 1000)
    hour_ms = ref_ms - ref_ms % 3_600_000
    t_ms = hour_ms + tm * 100
    if tm < (ref_ms % 3_600_000) // 100:
        t_ms += 3_600_000
    return t_ms / 1000
