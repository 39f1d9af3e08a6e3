"""Is the system clock synchronized? The kernel's and chrony's view, combined; and the gate that keeps
timed messages off the air while it is not.

Sources (each read-only, no privilege needed):

* **kernel**: ``adjtimex(2)`` with ``modes = 0`` (:func:`read_kernel`, ctypes) gives the NTP status
  word, the remaining phase ``offset`` and the ``maxerror`` / ``esterror`` bounds (µs). The kernel
  calls the clock synchronized when ``STA_UNSYNC`` is clear; it sets ``STA_UNSYNC`` itself once
  ``maxerror`` reaches 16 s (no update for ~9 hours).
* **chrony**: ``chronyc -c tracking`` (:func:`parse_chrony_tracking` parses its CSV line). Its leap
  status says whether chronyd is synchronized; its System time field is the correction chronyd is
  still applying (positive: the clock is slow); root delay and dispersion bound the error.

Which wins (:func:`combine`): **chrony, when it answers**. chronyd leaves ``STA_UNSYNC`` set on
purpose when it is not configured with ``rtcsync`` (so that the kernel does not copy the system time to
the RTC every 11 minutes), which makes the kernel flag a false alarm on such hosts; and chrony's
estimates are finer. Without chrony (not installed, not running, ``clock.sync_source: kernel``) the kernel
decides; the kernel is also what ntpd, systemd-timesyncd and ptp4l/phc2sys (with ``-s``/``-w``) keep up
to date. A reading whose error bound exceeds ``clock.max_error`` counts as not synchronized.

Sign convention everywhere in rsu: ``offset_s`` is the system clock minus the true time (positive:
the clock is ahead). ``error_s`` is a bound on ``|system clock - true time|``.

The gate (:class:`ClockGate`) is sans-I/O: the monitor gives it each reading, the send path asks
``allows(kind, now)`` before each transmission of a timed message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import errno
import os
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rsu.catalog import MessageKind

# ------------------------------------------------------------------------------------- kernel

STA_PLL, STA_PPSFREQ, STA_PPSTIME, STA_FLL = 0x0001, 0x0002, 0x0004, 0x0008
STA_INS, STA_DEL, STA_UNSYNC, STA_FREQHOLD = 0x0010, 0x0020, 0x0040, 0x0080
STA_PPSSIGNAL, STA_PPSJITTER, STA_PPSWANDER, STA_PPSERROR = 0x0100, 0x0200, 0x0400, 0x0800
STA_CLOCKERR, STA_NANO = 0x1000, 0x2000
TIME_OK, TIME_INS, TIME_DEL, TIME_OOP, TIME_WAIT, TIME_ERROR = range(6)
MAXERROR_LIMIT_US = 16_000_000  # the kernel's NTP_PHASE_LIMIT-derived cap: maxerror stops growing here


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timex(ctypes.Structure):
    """``struct timex`` of <sys/timex.h> (Linux, glibc), the layout adjtimex(2) reads and writes."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@dataclasses.dataclass(frozen=True)
class KernelClock:
    """What adjtimex(2) said: the return value (clock state), the status word and the bounds, raw."""

    state: int  # TIME_OK .. TIME_ERROR
    status: int  # STA_* bits
    offset: int  # remaining phase adjustment: µs, or ns when STA_NANO is set
    maxerror_us: int
    esterror_us: int
    tai: int  # TAI-UTC as the kernel knows it (0: never told)

    @property
    def synchronized(self) -> bool:
        """The kernel's own verdict: STA_UNSYNC clear (and maxerror below its 16 s cap)."""
        return not self.status & STA_UNSYNC and self.maxerror_us < MAXERROR_LIMIT_US

    @property
    def offset_s(self) -> float:
        """The clock minus true time, seconds: the kernel still has to add ``offset``, so it is behind by it."""
        return -self.offset / (1e9 if self.status & STA_NANO else 1e6)

    def reading(self) -> ClockReading:
        # unsynchronized, the kernel's offset is only what its PLL has left to apply: not an estimate
        return ClockReading(
            source="kernel",
            synchronized=self.synchronized,
            offset_s=self.offset_s if self.synchronized else None,
            error_s=self.maxerror_us / 1e6,
            detail=f"status=0x{self.status:04x} state={self.state}",
        )


class ClockReadError(OSError):
    """A clock source could not be read (no libc adjtimex, chronyc absent or failing, bad output)."""


_adjtimex: Callable[..., int] | None = None


def read_kernel() -> KernelClock:
    """adjtimex(2) with modes = 0: reads the kernel's NTP state, changes nothing (no privilege needed).

    Takes nothing; gives :class:`KernelClock`. Raises :class:`ClockReadError` where there is no adjtimex
    (not Linux/glibc) or the call fails."""
    global _adjtimex
    if _adjtimex is None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            fn = libc.adjtimex
        except (OSError, AttributeError) as e:
            raise ClockReadError(f"adjtimex is not available: {e}") from None
        fn.argtypes = [ctypes.POINTER(Timex)]
        fn.restype = ctypes.c_int
        _adjtimex = fn
    tx = Timex()  # modes 0: read only
    state = _adjtimex(ctypes.byref(tx))
    if state < 0:
        err = ctypes.get_errno()
        if err == errno.EPERM:  # modes 0 needs no privilege: a seccomp filter refused the call itself
            raise ClockReadError(
                "adjtimex refused (EPERM) by a system-call filter: systemd's ProtectClock=yes "
                "or SystemCallFilter=~@clock (docs/operations.md, Clock and GNSS health)"
            )
        raise ClockReadError(f"adjtimex failed: {os.strerror(err)}")
    return KernelClock(
        state=state, status=tx.status, offset=tx.offset, maxerror_us=tx.maxerror, esterror_us=tx.esterror, tai=tx.tai
    )


# ------------------------------------------------------------------------------------- chrony

CHRONY_FIELDS = (
    "reference_id",
    "reference_name",
    "stratum",
    "reference_time",
    "system_time",
    "last_offset",
    "rms_offset",
    "frequency_ppm",
    "residual_frequency_ppm",
    "skew_ppm",
    "root_delay",
    "root_dispersion",
    "update_interval",
    "leap_status",
)
CHRONY_COMMAND = ("chronyc", "-c", "-n", "tracking")


def chrony_command(address: str | None = None) -> tuple[str, ...]:
    """The chronyc command line that asks for tracking, at ``address`` (``-h``: a socket path or a host)."""
    return CHRONY_COMMAND if address is None else ("chronyc", "-h", address, *CHRONY_COMMAND[1:])


@dataclasses.dataclass(frozen=True)
class ChronyTracking:
    """The fields of ``chronyc -c tracking`` that matter here (seconds unless named otherwise)."""

    reference: str
    stratum: int
    system_time: float  # the correction chronyd is applying: positive = the system clock is slow
    root_delay: float
    root_dispersion: float
    leap_status: str  # Normal, Insert second, Delete second, Not synchronised

    @property
    def synchronized(self) -> bool:
        return self.leap_status != "Not synchronised" and self.stratum > 0

    def reading(self) -> ClockReading:
        # the NTP bound: what is left to correct, plus half the round trip to the root, plus the root's dispersion
        error = abs(self.system_time) + self.root_delay / 2 + self.root_dispersion
        return ClockReading(
            source="chrony",
            synchronized=self.synchronized,
            offset_s=-self.system_time,
            error_s=error,
            detail=f"{self.reference} stratum {self.stratum} {self.leap_status}",
        )


def parse_chrony_tracking(text: str) -> ChronyTracking:
    """The CSV line of ``chronyc -c tracking`` -> :class:`ChronyTracking`; ValueError naming the field."""
    if not text.strip():
        raise ValueError("chronyc tracking: empty output")
    line = text.strip().splitlines()[0]
    cells = line.split(",")
    if len(cells) < len(CHRONY_FIELDS):
        raise ValueError(
            f"chronyc tracking: expected {len(CHRONY_FIELDS)} comma-separated fields, "
            f"found {len(cells)}: {line[:120]!r}"
        )
    row = dict(zip(CHRONY_FIELDS, cells))

    def number(field: str) -> float:
        try:
            return float(row[field])
        except ValueError:
            raise ValueError(f"chronyc tracking: {field}: expected a number, found {row[field]!r}") from None

    return ChronyTracking(
        reference=row["reference_name"] or row["reference_id"],
        stratum=int(number("stratum")),
        system_time=number("system_time"),
        root_delay=number("root_delay"),
        root_dispersion=number("root_dispersion"),
        leap_status=row["leap_status"].strip(),
    )


# ------------------------------------------------------------------------------------- combined


@dataclasses.dataclass(frozen=True)
class ClockReading:
    """One verdict on the system clock: who said it, synchronized or not, estimated offset and error bound."""

    source: str  # kernel | chrony | none
    synchronized: bool
    offset_s: float | None  # system clock - true time (positive: ahead)
    error_s: float | None  # bound on |system clock - true time|
    detail: str = ""


UNKNOWN = ClockReading(source="none", synchronized=False, offset_s=None, error_s=None, detail="not read yet")


def combine(
    kernel: KernelClock | Exception | None,
    chrony: ChronyTracking | Exception | None,
    *,
    max_error_s: float | None = None,
) -> ClockReading:
    """The verdict from what each source gave (a reading, the error it raised, or None: not asked).

    chrony wins when it answered; else the kernel; neither: not synchronized (source ``none``). With
    ``max_error_s``, an error bound above it makes the clock count as not synchronized."""
    if isinstance(chrony, ChronyTracking):
        reading = chrony.reading()
    elif isinstance(kernel, KernelClock):
        reading = kernel.reading()
    else:
        why = "; ".join(str(e) for e in (kernel, chrony) if isinstance(e, Exception)) or "no source"
        return ClockReading(source="none", synchronized=False, offset_s=None, error_s=None, detail=why)
    if (
        reading.synchronized
        and max_error_s is not None
        and reading.error_s is not None
        and reading.error_s > max_error_s
    ):
        return dataclasses.replace(
            reading,
            synchronized=False,
            detail=f"{reading.detail}; error bound {reading.error_s:.3f} s > clock.max_error {max_error_s:g} s",
        )
    return reading


# ------------------------------------------------------------------------------------- the gate

CLOCK_UNSYNCHRONIZED = "clock-unsynchronized"  # the reason a withheld transmission is counted under
Policy = Literal["warn", "stop"]


class ClockGate:
    """The send path's gate (:class:`rsu.pipeline.send.SendGate`). Decides whether a timed message may be sent now, from the latest clock reading.

    ``timed``: the message names (catalog ``MessageKind.name``) whose content reads the absolute time
    (SPATEM and SSEM by default). ``max_age_s``: a reading older than this is stale and counts as not
    synchronized (the monitor stopped). ``on_sent_unsynchronized(kind)``: called for each timed message
    let through under ``warn`` while the clock is not synchronized (the daemon counts it).
    """

    def __init__(
        self,
        policy: Policy = "warn",
        timed: Collection[str] = ("spatem", "ssem"),
        *,
        max_age_s: float = 30.0,
        on_sent_unsynchronized: Callable[[MessageKind], None] | None = None,
    ) -> None:
        self.policy: Policy = policy
        self.timed = frozenset(timed)
        self.max_age_s = max_age_s
        self.on_sent_unsynchronized = on_sent_unsynchronized
        self.reading: ClockReading = UNKNOWN
        self.read_at: float | None = None

    def update(self, reading: ClockReading, now: float) -> None:
        """A new reading of the clock (from :mod:`rsu.health.monitor`), taken at ``now`` (POSIX s)."""
        self.reading, self.read_at = reading, now

    def synchronized(self, now: float) -> bool:
        """The latest reading says synchronized and is not older than ``max_age_s``."""
        fresh = self.read_at is not None and -1.0 <= now - self.read_at <= self.max_age_s
        return fresh and self.reading.synchronized

    def allows(self, kind: MessageKind, now: float) -> str | None:
        """None: send ``kind`` (a catalog MessageKind) now. ``"clock-unsynchronized"``:
        do not (policy ``stop``, the clock not synchronized, ``kind`` timed); the caller counts it as skipped.

        Messages that are not timed always pass. Under ``warn`` a timed message passes while the clock is
        not synchronized, and ``on_sent_unsynchronized`` counts it."""
        if kind.name not in self.timed or self.synchronized(now):
            return None
        if self.policy == "stop":
            return CLOCK_UNSYNCHRONIZED
        if self.on_sent_unsynchronized is not None:
            self.on_sent_unsynchronized(kind)
        return None
