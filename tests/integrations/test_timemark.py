"""TimeMark arithmetic (rsu.clock): from the message's own timestamp, across the hour, 36000/36001, never past."""

from __future__ import annotations

import math

import pytest

from integrations.support import posix
from rsu.clock import TIMEMARK_MORE_THAN_AN_HOUR, TIMEMARK_UNKNOWN, start_time_mark, time_mark, time_mark_to_posix

REF = posix("2025-05-14T08:12:23.450Z")  # TimeMark of REF's tenth: 7434


def test_time_mark_is_tenths_of_the_utc_hour_rounded_up():
    assert time_mark(REF, REF) == 7435  # 23.45 s -> the next tenth, never earlier than the time itself
    assert time_mark(REF + 12.55, REF) == 7560
    assert time_mark(REF + 12.551, REF) == 7561
    assert time_mark_to_posix(7560, REF) == pytest.approx(REF + 12.55)


def test_hour_rollover_from_the_messages_own_timestamp():
    ref = posix("2025-05-14T08:59:58.000Z")
    assert time_mark(ref + 1.9, ref) == 35999  # 08:59:59.9
    assert time_mark(ref + 2.0, ref) == 0  # 09:00:00.0 is 0 again, read as the next hour
    assert time_mark(ref + 5.5, ref) == 35  # 09:00:03.5, not 36035
    assert time_mark(ref + 1.95, ref) == 0  # rounded up across the boundary
    for dt in (0.0, 1.9, 2.0, 5.5, 1800.0, 3599.8):
        tm = time_mark(ref + dt, ref)
        assert 0 <= tm < 36000
        assert time_mark_to_posix(tm, ref) == pytest.approx(math.ceil((ref + dt) * 10) / 10)
    # the same instant seen from a message stamped in the next hour has the same TimeMark (absolute, not relative)
    assert time_mark(ref + 5.5, ref + 2.5) == 35


def test_more_than_an_hour_ahead_is_36000_and_unknown_is_36001():
    ref = posix("2025-05-14T08:59:58.000Z")
    assert time_mark(ref + 3599.9, ref) == 35979  # 09:59:57.9: still representable
    assert time_mark(ref + 3600.0, ref) == TIMEMARK_MORE_THAN_AN_HOUR == 36000  # would read as "now"
    assert time_mark(ref + 7200, ref) == 36000
    assert time_mark(None, ref) == TIMEMARK_UNKNOWN == 36001
    assert time_mark(float("nan"), ref) == 36001
    assert time_mark_to_posix(36000, ref) is None and time_mark_to_posix(36001, ref) is None


def test_never_a_time_in_the_past():
    """A time before the message's timestamp (controller latency, a negative time-to-change) is sent as the
    message time: it never wraps to a huge value (the "spurious red for an hour" bug)."""
    assert time_mark(REF - 0.3, REF) == 7435
    assert time_mark(REF - 3000, REF) == 7435
    assert time_mark(0.0, REF) == 7435
    assert time_mark_to_posix(time_mark(REF - 5, REF), REF) >= REF
    ref = posix("2025-05-14T08:59:59.970Z")
    assert time_mark(ref - 10, ref) == 0  # clamped to the message time, rounded up into the next hour
    assert time_mark_to_posix(0, ref) == pytest.approx(ref + 0.03)


def test_start_time_may_be_in_the_past_within_the_messages_hour_only():
    assert start_time_mark(REF - 28.25, REF) == 7152  # 08:11:55.2, the example's green start
    assert start_time_mark(REF + 10, REF) == time_mark(REF + 10, REF)
    assert start_time_mark(posix("2025-05-14T08:00:00.000Z"), REF) == 0
    assert start_time_mark(posix("2025-05-14T07:59:59.900Z"), REF) is None  # previous hour: left out
    assert start_time_mark(None, REF) is None
