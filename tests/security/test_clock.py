"""rsu.clock: TAI-based ITS time scales with the leap-second table."""

from rsu import clock


def test_vanetza_generation_time_is_tai_with_five_leap_seconds():
    # vanetza's CAM: 501427679447061 µs; naive 13:27:59, minus 5 leap seconds = 13:27:54 UTC
    posix = clock.time64_to_posix(501427679447061)
    assert clock.iso_utc(posix) == "2019-11-21T13:27:54.447061Z"
    assert clock.time64(posix) == 501427679447061


def test_leap_second_offsets_over_the_years():
    assert clock.its_leap_seconds(clock.ITS_EPOCH_POSIX) == 0
    assert clock.posix_to_its_seconds(clock.ITS_EPOCH_POSIX) == 0
    assert clock.its_leap_seconds(1136073599) == 0  # 2005-12-31T23:59:59Z
    assert clock.its_leap_seconds(1136073600) == 1  # 2006-01-01
    assert clock.its_leap_seconds(1483228800) == 5  # 2017-01-01
    assert clock.tai_utc_offset(1700000000) == 37


def test_round_trips_across_a_leap_second():
    for posix in (1136073599.5, 1136073600.0, 1136073601.25, 1435708800.0, 1748779200.123456):
        assert abs(clock.time64_to_posix(clock.time64(posix)) - posix) < 1e-6
        assert abs(clock.timestamp_its_to_posix(clock.timestamp_its(posix)) - posix) < 1e-3
        assert clock.time32_to_posix(clock.time32(posix)) == int(posix)


def test_timestamp_its_and_time32_use_the_same_convention():
    posix = 1748779200.25
    assert clock.timestamp_its(posix) == (posix - clock.ITS_EPOCH_POSIX + 5) * 1000
    assert clock.time32(posix) == int(posix - clock.ITS_EPOCH_POSIX + 5)


def test_manual_clock_moves_only_when_told():
    c = clock.ManualClock("2025-06-01T12:00:00Z")
    assert c.now() == 1748779200.0
    c.advance(1.5)
    assert c.now() == 1748779201.5
    c.set(10.0)
    assert c.now() == 10.0
    assert isinstance(c, clock.Clock) and isinstance(clock.SystemClock(), clock.Clock)
