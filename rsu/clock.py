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
import time
from datetime import datetime, timezone
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
            t = t.replace(tzinfo=timezone.utc)
        return t.timestamp()
    return float(t)


def parse_iso8601(text: str) -> datetime:
    """ISO 8601 date-time (``Z`` or an offset; no offset means UTC) -> aware datetime. ValueError if bad."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


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
    dt = datetime.fromtimestamp(posix, tz=timezone.utc)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")
