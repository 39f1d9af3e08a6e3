"""The clock-health core: the kernel's state read through adjtimex(2) on this host, chrony's CSV,
which source wins, and the gate that keeps timed messages off the air (manual clock, no sleeps)."""

from __future__ import annotations

import ctypes
import dataclasses
import shutil
import subprocess

import pytest

from rsu import catalog
from rsu.clock import ManualClock
from rsu.health import clock as ch
from rsu.health.clock import (
    CLOCK_UNSYNCHRONIZED,
    ChronyTracking,
    ClockGate,
    ClockReading,
    KernelClock,
    combine,
    parse_chrony_tracking,
    read_kernel,
)
from rsu.pipeline.send import SendGate

SYNCED = ClockReading(source="chrony", synchronized=True, offset_s=0.0001, error_s=0.002)
UNSYNCED = ClockReading(source="kernel", synchronized=False, offset_s=None, error_s=16.0)


# ------------------------------------------------------------------------------ kernel, on this host


def _raw_syscall_timex() -> tuple[int, ch.Timex]:
    """The same state by another road: the raw adjtimex system call (x86-64 159, arm64 171), not glibc's wrapper."""
    import platform

    number = {"x86_64": 159, "aarch64": 171}.get(platform.machine())
    if number is None:
        pytest.skip(f"no adjtimex syscall number known for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    tx = ch.Timex()
    state = libc.syscall(ctypes.c_long(number), ctypes.byref(tx))
    assert state >= 0, ctypes.get_errno()
    return state, tx


def test_the_kernel_read_matches_the_raw_system_call_and_is_consistent():
    k = read_kernel()
    state, tx = _raw_syscall_timex()
    assert ctypes.sizeof(ch.Timex) == 208  # glibc's struct timex on 64-bit Linux
    assert (k.status, k.maxerror_us, k.esterror_us, k.tai) == (tx.status, tx.maxerror, tx.esterror, tx.tai)
    assert k.state == state
    assert ch.TIME_OK <= k.state <= ch.TIME_ERROR
    assert 0 <= k.maxerror_us <= ch.MAXERROR_LIMIT_US and k.esterror_us >= 0
    # the verdict is the STA_UNSYNC bit (with maxerror below its cap)
    assert k.synchronized == (not k.status & ch.STA_UNSYNC and k.maxerror_us < ch.MAXERROR_LIMIT_US)
    # the kernel marks the clock unsynchronized itself once maxerror reaches its cap
    if k.maxerror_us >= ch.MAXERROR_LIMIT_US:
        assert k.status & ch.STA_UNSYNC
    # adjtimex returns TIME_ERROR exactly when STA_UNSYNC (or a PPS/clock error bit) is set
    error_bits = ch.STA_UNSYNC | ch.STA_CLOCKERR
    if not k.status & (ch.STA_PPSSIGNAL | ch.STA_PPSJITTER | ch.STA_PPSWANDER | ch.STA_PPSERROR):
        assert (k.state == ch.TIME_ERROR) == bool(k.status & error_bits)
    reading = k.reading()
    assert reading.source == "kernel" and reading.synchronized == k.synchronized
    assert reading.error_s == k.maxerror_us / 1e6


@pytest.mark.skipif(shutil.which("chronyc") is None, reason="chronyc is not installed on this host")
def test_chronyc_on_this_host_parses_or_fails_cleanly():
    r = subprocess.run(["chronyc", "-c", "-n", "tracking"], check=False, capture_output=True, timeout=10)
    if r.returncode != 0:
        pytest.skip(f"chronyd is not running: {r.stderr.decode(errors='replace').strip()}")
    t = parse_chrony_tracking(r.stdout.decode())
    assert t.root_delay >= 0 and t.root_dispersion >= 0


def test_kernel_offset_units_and_sign():
    us = KernelClock(state=0, status=0x0001, offset=2500, maxerror_us=1000, esterror_us=10, tai=37)
    ns = KernelClock(state=0, status=0x0001 | ch.STA_NANO, offset=2_500_000, maxerror_us=1000, esterror_us=10, tai=37)
    assert us.offset_s == ns.offset_s == -0.0025  # the kernel still has to add 2.5 ms: the clock is behind
    assert us.synchronized and us.reading().offset_s == -0.0025 and us.reading().error_s == 0.001
    unsync = KernelClock(
        state=5, status=ch.STA_UNSYNC, offset=2500, maxerror_us=16_000_000, esterror_us=16_000_000, tai=0
    )
    assert not unsync.synchronized and unsync.reading().offset_s is None


# ------------------------------------------------------------------------------ chrony

LINE = (
    "C0A80001,192.168.0.1,2,1796317000.123456789,0.000012000,-0.000003000,0.000015000,-12.345,-0.001,"
    "0.023,0.004000000,0.000500000,64.6,Normal\n"
)


def test_chrony_csv_is_parsed_with_the_sign_turned_into_ahead_positive():
    t = parse_chrony_tracking(LINE)
    assert (t.reference, t.stratum, t.leap_status) == ("192.168.0.1", 2, "Normal")
    assert t.synchronized
    r = t.reading()
    assert r.source == "chrony" and r.synchronized
    assert r.offset_s == pytest.approx(-0.000012)  # System time +12 µs: slow, so the clock is behind
    assert r.error_s == pytest.approx(0.000012 + 0.002 + 0.0005)


def test_chrony_not_synchronised_and_stratum_0():
    assert not parse_chrony_tracking(LINE.replace("Normal", "Not synchronised")).synchronized
    assert not parse_chrony_tracking(LINE.replace(",2,1796", ",0,1796")).synchronized


def test_bad_chrony_output_names_the_field():
    with pytest.raises(ValueError, match="expected 14 comma-separated fields, found 2"):
        parse_chrony_tracking("506 Cannot talk to daemon,x")
    with pytest.raises(ValueError, match="root_delay: expected a number, found 'abc'"):
        parse_chrony_tracking(LINE.replace("0.004000000", "abc"))
    with pytest.raises(ValueError, match="empty output"):
        parse_chrony_tracking("")


# ------------------------------------------------------------------------------ which wins


def test_chrony_wins_when_it_answers_else_the_kernel_else_nothing():
    kernel_unsync = KernelClock(
        state=5, status=ch.STA_UNSYNC, offset=0, maxerror_us=16_000_000, esterror_us=16_000_000, tai=0
    )  # chronyd without rtcsync leaves STA_UNSYNC set
    chrony = parse_chrony_tracking(LINE)
    assert combine(kernel_unsync, chrony).source == "chrony" and combine(kernel_unsync, chrony).synchronized
    kernel_ok = KernelClock(state=0, status=0x0001, offset=100, maxerror_us=5000, esterror_us=100, tai=37)
    r = combine(kernel_ok, ch.ClockReadError("chronyc not found"))
    assert r.source == "kernel" and r.synchronized and r.error_s == 0.005
    none = combine(ch.ClockReadError("adjtimex is not available"), ch.ClockReadError("chronyc not found"))
    assert none.source == "none" and not none.synchronized
    assert "adjtimex is not available" in none.detail and "chronyc not found" in none.detail


def test_max_error_makes_a_synchronized_clock_count_as_not_synchronized():
    kernel_ok = KernelClock(state=0, status=0x0001, offset=100, maxerror_us=250_000, esterror_us=100, tai=37)
    assert combine(kernel_ok, None, max_error_s=0.5).synchronized
    r = combine(kernel_ok, None, max_error_s=0.1)
    assert not r.synchronized and "error bound 0.250 s > clock.max_error 0.1 s" in r.detail


# ------------------------------------------------------------------------------ the gate


def test_stop_withholds_timed_messages_only_while_unsynchronized():
    clock = ManualClock()
    gate = ClockGate("stop", ("spatem", "ssem"), max_age_s=20)
    assert gate.allows(catalog.SPATEM, clock.now()) == CLOCK_UNSYNCHRONIZED  # nothing read yet
    gate.update(SYNCED, clock.now())
    assert gate.allows(catalog.SPATEM, clock.now()) is None
    gate.update(UNSYNCED, clock.advance(5))
    assert gate.allows(catalog.SPATEM, clock.now()) == CLOCK_UNSYNCHRONIZED
    assert gate.allows(catalog.SSEM, clock.now()) == CLOCK_UNSYNCHRONIZED
    for kind in (catalog.MAPEM, catalog.IVIM, catalog.RTCMEM):  # their content does not read our clock
        assert gate.allows(kind, clock.now()) is None
    gate.update(SYNCED, clock.advance(5))
    assert gate.allows(catalog.SPATEM, clock.now()) is None


def test_a_stale_reading_counts_as_unsynchronized():
    clock = ManualClock()
    gate = ClockGate("stop", ("spatem",), max_age_s=20)
    gate.update(SYNCED, clock.now())
    assert gate.allows(catalog.SPATEM, clock.advance(20)) is None
    assert gate.allows(catalog.SPATEM, clock.advance(0.5)) == CLOCK_UNSYNCHRONIZED  # the monitor stopped reading
    assert not gate.synchronized(clock.now())


def test_warn_lets_timed_messages_through_and_counts_each():
    clock = ManualClock()
    counted: list[str] = []
    gate = ClockGate("warn", ("spatem",), on_sent_unsynchronized=lambda kind: counted.append(kind.name))
    gate.update(UNSYNCED, clock.now())
    assert gate.allows(catalog.SPATEM, clock.now()) is None
    assert gate.allows(catalog.SPATEM, clock.now()) is None
    assert gate.allows(catalog.MAPEM, clock.now()) is None  # not timed: not counted
    assert counted == ["spatem", "spatem"]
    gate.update(SYNCED, clock.now())
    assert gate.allows(catalog.SPATEM, clock.now()) is None
    assert counted == ["spatem", "spatem"]


def test_the_gate_is_the_send_paths_port():
    gate: SendGate = ClockGate("stop")  # what the send path is given (mypy checks the protocol)
    assert gate.allows(catalog.MAPEM, 0.0) is None


def test_configured_timed_messages():
    clock = ManualClock()
    gate = ClockGate("stop", ("spatem", "ivim"))
    gate.update(UNSYNCED, clock.now())
    assert gate.allows(catalog.IVIM, clock.now()) == CLOCK_UNSYNCHRONIZED
    assert gate.allows(catalog.SSEM, clock.now()) is None


def test_chrony_tracking_reading_is_frozen_data():
    t = ChronyTracking("x", 1, 0.0, 0.0, 0.0, "Normal")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.stratum = 3  # type: ignore[misc]


SECCOMP_CHILD = r"""
import ctypes, platform, struct, sys
# a seccomp filter, as systemd's ProtectClock=yes installs one: adjtimex and clock_adjtime (which glibc's
# adjtimex calls) fail with EPERM, the rest passes
ARCH = {"x86_64": (0xC000003E, 159, 305), "aarch64": (0xC00000B7, 171, 266)}[platform.machine()]
def stmt(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
prog = b"".join([
    stmt(0x20, 4),                    # ld arch
    stmt(0x15, ARCH[0], 1, 0),        # jeq arch ? skip : allow
    stmt(0x06, 0x7FFF0000),           # ret ALLOW
    stmt(0x20, 0),                    # ld nr
    stmt(0x15, ARCH[1], 1, 0),        # jeq adjtimex ? refuse : next
    stmt(0x15, ARCH[2], 0, 1),        # jeq clock_adjtime ? refuse : allow
    stmt(0x06, 0x00050000 | 1),       # refuse: ret ERRNO(EPERM)
    stmt(0x06, 0x7FFF0000),           # ret ALLOW
])
buf = ctypes.create_string_buffer(prog)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fp = Fprog(len(prog) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0                                  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(fp), 0, 0) == 0, ctypes.get_errno()  # PR_SET_SECCOMP, FILTER
import asyncio
from rsu.clock import ManualClock
from rsu.health.clock import ClockReadError, read_kernel
from rsu.health.config import ClockSection
from rsu.health.monitor import HealthMonitor
from rsu.ops.metrics import Metrics
try:
    read_kernel()
    print("READ")
except ClockReadError as e:
    print("REFUSED", e)
async def main():
    m = HealthMonitor(ClockSection(sync_source="kernel"), clock=ManualClock(), metrics=Metrics())
    await m.start()
    s = m.status()
    await m.stop()
    print("STATUS", s["source"], s["synchronized"], s["detail"])
asyncio.run(main())
"""


def test_a_seccomp_filter_refusing_adjtimex_is_named_and_leaves_the_clock_unsynchronized():
    """What the shipped systemd unit does (ProtectClock=yes, SystemCallFilter=~@privileged): adjtimex gives
    EPERM. The reading says why, and counts as not synchronized (source none) rather than crashing."""
    import os
    import platform
    import sys

    from tests.conftest import REPO

    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip(f"no seccomp audit arch known for {platform.machine()}")
    r = subprocess.run(
        [sys.executable, "-c", SECCOMP_CHILD],
        capture_output=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "REFUSED adjtimex refused (EPERM) by a system-call filter" in out, out
    assert "STATUS none False" in out and "ProtectClock=yes" in out, out
