"""The daemon's health monitor: polls the clock's sources, keeps the gate and the gpsd client, sets the
gauges and gives the status. The asyncio adapter around :mod:`rsu.health.clock` and :mod:`rsu.health.gnss`.

Takes the ``clock:`` section (:class:`rsu.health.config.ClockSection`), the daemon's clock and its
:class:`rsu.ops.metrics.Metrics`; gives :attr:`HealthMonitor.gate` (the send path asks it), ``status()``
(``rsu status``, GET /v1/status) and the ``rsu_clock_*`` / ``rsu_gnss_*`` gauges.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
from typing import TYPE_CHECKING, Any

from rsu.aio import cancel_and_wait
from rsu.clock import Clock, iso_utc
from rsu.health.clock import (
    CHRONY_COMMAND,
    ChronyTracking,
    ClockGate,
    ClockReadError,
    ClockReading,
    KernelClock,
    chrony_command,
    combine,
    parse_chrony_tracking,
    read_kernel,
)
from rsu.health.config import ClockSection
from rsu.health.gnss import GnssState, GpsdClient

if TYPE_CHECKING:
    from rsu.catalog import MessageKind
    from rsu.ops.metrics import Metrics

log = logging.getLogger("rsu.health")

CHRONYC_TIMEOUT_S = 2.0
SOURCES = ("kernel", "chrony", "none")


async def read_chrony(command: tuple[str, ...] = CHRONY_COMMAND, timeout: float = CHRONYC_TIMEOUT_S) -> ChronyTracking:
    """Run ``chronyc -c -n tracking`` and parse it; :class:`ClockReadError` when chronyc fails or is absent."""
    path = shutil.which(command[0])
    if path is None:
        raise ClockReadError(f"{command[0]} not found")
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            *command[1:],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:  # not executable, a filter refusing fork/exec, out of processes
        raise ClockReadError(f"{command[0]} could not be run: {e}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ClockReadError(f"{command[0]} did not answer within {timeout:g} s") from None
    if proc.returncode != 0:
        raise ClockReadError(
            f"{command[0]} exited with {proc.returncode}: {err.decode(errors='replace').strip()[:200]}"
        )
    try:
        return parse_chrony_tracking(out.decode(errors="replace"))
    except ValueError as e:
        raise ClockReadError(str(e)) from None


class HealthMonitor:
    def __init__(self, section: ClockSection, *, clock: Clock, metrics: Metrics) -> None:
        self.clock = clock
        self.metrics = metrics
        self.section = section
        self.gate = ClockGate(
            section.unsynchronized,
            section.timed_messages,
            max_age_s=3 * section.poll_interval + 5,
            on_sent_unsynchronized=self._count_unsynchronized,
        )
        self.gpsd: GpsdClient | None = None
        self.reading: ClockReading | None = None
        self.read_at: float | None = None
        self.polls = 0
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """One reading now (the gate knows the clock before the first send), then poll in the background."""
        await self.poll()
        self._start_gpsd()
        self._task = asyncio.create_task(self._loop(), name="rsu-clock-health")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.gpsd is not None:
            await self.gpsd.stop()
            self.gpsd = None

    async def reconfigure(self, section: ClockSection) -> None:
        """A reload's new ``clock:`` section: the gate's policy and messages at once, gpsd reconnected if it moved."""
        old, self.section = self.section, section
        self.gate.policy, self.gate.timed = section.unsynchronized, frozenset(section.timed_messages)
        self.gate.max_age_s = 3 * section.poll_interval + 5
        if old.gpsd != section.gpsd and self._task is not None:
            if self.gpsd is not None:
                await self.gpsd.stop()
                self.gpsd = None
            self._start_gpsd()
        await self.poll()

    def _start_gpsd(self) -> None:
        g = self.section.gpsd
        if g is not None:
            self.gpsd = GpsdClient(g.host, g.port, clock=self.clock)
            self.gpsd.start()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.section.poll_interval)
            try:
                await self.poll()
            except Exception:
                log.exception("clock health: poll failed")

    # ------------------------------------------------------------------ reading
    async def poll(self) -> ClockReading:
        """Read the sources ``clock.sync_source`` names, combine them, hand the verdict to the gate, set the gauges."""
        source = self.section.sync_source
        kernel: KernelClock | Exception | None = None
        chrony: ChronyTracking | Exception | None = None
        if source in ("auto", "kernel"):
            try:
                kernel = read_kernel()
            except ClockReadError as e:
                kernel = e
        if source == "chrony" or (source == "auto" and shutil.which(CHRONY_COMMAND[0])):
            try:
                chrony = await read_chrony(chrony_command(self.section.chrony_address))
            except ClockReadError as e:
                chrony = e
                if source == "chrony" or self.polls == 0:
                    log.warning("clock health: %s", e)
        reading = combine(kernel, chrony, max_error_s=self.section.max_error)
        now = self.clock.now()
        self._note_change(reading)
        self.reading, self.read_at = reading, now
        self.polls += 1
        self.gate.update(reading, now)
        self.refresh_gauges()
        return reading

    def _note_change(self, reading: ClockReading) -> None:
        before = self.reading.synchronized if self.reading is not None else None
        if reading.synchronized == before:
            return
        if reading.synchronized:
            log.info("clock synchronized (%s: %s)", reading.source, reading.detail)
            return
        timed = ", ".join(sorted(self.gate.timed)) or "none"
        action = "withheld" if self.section.unsynchronized == "stop" else "sent anyway (clock.unsynchronized: warn)"
        log.warning(
            "clock NOT synchronized (%s: %s): timed messages (%s) are %s", reading.source, reading.detail, timed, action
        )

    def _count_unsynchronized(self, kind: MessageKind) -> None:
        self.metrics.child(self.metrics.clock_unsynchronized_sent, kind.service, kind.name).inc()

    # ------------------------------------------------------------------ output
    def refresh_gauges(self) -> None:
        m, r = self.metrics, self.reading
        synced = self.gate.synchronized(self.clock.now())
        m.clock_synchronized.set(1 if synced else 0)
        m.clock_offset.set(_or_nan(r.offset_s if r else None))
        m.clock_error.set(_or_nan(r.error_s if r else None))
        for name in SOURCES:
            m.clock_source.labels(name).set(1 if r is not None and r.source == name else 0)
        state = self.gpsd.state if self.gpsd is not None else GnssState()
        m.gnss_connected.set(1 if state.connected else 0)
        m.gnss_fix_mode.set(state.current_mode(self.clock.now()))
        m.gnss_latitude.set(_or_nan(state.latitude))
        m.gnss_longitude.set(_or_nan(state.longitude))
        m.gnss_altitude.set(_or_nan(state.altitude_m))
        m.gnss_satellites_used.set(_or_nan(state.satellites_used))

    def status(self) -> dict[str, Any]:
        """The ``clock`` object of the daemon's status (gnss: None without ``clock.gpsd``)."""
        now = self.clock.now()
        r = self.reading
        return {
            "synchronized": self.gate.synchronized(now),
            "source": r.source if r else "none",
            "offset_s": r.offset_s if r else None,
            "error_s": r.error_s if r else None,
            "detail": r.detail if r else "not read yet",
            "checked_at": iso_utc(self.read_at) if self.read_at is not None else None,
            "policy": self.section.unsynchronized,
            "timed_messages": sorted(self.gate.timed),
            "gnss": self.gpsd.state.status(now) if self.gpsd is not None else None,
        }


def _or_nan(v: float | None) -> float:
    return math.nan if v is None else float(v)
