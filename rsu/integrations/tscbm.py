"""The NTCIP 1202 "TSCBM" SPaT blob (Traffic Signal Controller Broadcast Message) (sans-I/O).

Many US controllers broadcast it at 10 Hz over UDP (the NTCIP 1202 v3 "SPaT" dynamic object,
answered as a DynObj13 response). All multi-byte fields are big-endian; times-to-change are in
tenths of a second from the blob's own timestamp; bit-mapped groups have phase/overlap *n* at bit
*n-1* of the 16-bit value (phase 1 = least significant bit). Layout with the usual 16 blocks::

    offset  size  field
    0       1     0xCD (DynObj13 response)
    1       1     number of phase blocks N (1..16; 16 in practice)
    2       13*N  phase blocks: phase number (0 = unused block), then 2 bytes each:
                  vehicle min / max, pedestrian min / max, overlap min / max time to change
                  (overlap times are those of the overlap with the block's number)
    2+13N   2     phase status reds          (bit-mapped phases 1..16)
            2     phase status yellows
            2     phase status greens
            2     phase status don't walks
            2     phase status pedestrian clears
            2     phase status walks
            2     overlap status reds        (bit-mapped overlaps 1..16)
            2     overlap status yellows
            2     overlap status greens
            2     flashing output phase status
            2     flashing output overlap status
            1     intersection status (controller-specific bits; not mapped)
            1     timebase ASC action status (the timing plan in effect)
            1     discontinuous change flag (upper 5 bits: message version)
            1     message sequence counter
            3     timestamp: seconds of the UTC day (0..86399)
            2     timestamp: milliseconds (0..999)
            2     pedestrian call status     (bit-mapped phases 1..16)
            2     pedestrian detect status   (bit-mapped phases 1..16)

    total 2 + 13*N + 35 bytes (245 with 16 blocks)

:func:`parse_tscbm` checks the shape and raises :class:`TscbmError` with a stable reason;
:func:`movement_state` maps a phase/overlap/pedestrian signal group to a MovementPhaseState with the
configured protected/permissive meaning of green (per timing plan).
"""

from __future__ import annotations

from dataclasses import dataclass

from rsu.integrations.config import ControllerIntersectionConfig, SignalGroupMapConfig
from rsu.integrations.counters import ReasonError
from rsu.integrations.spat import IntersectionUpdate, SignalEvent, SignalGroupState

HEADER = 0xCD
BLOCK = 13
TRAILER = 35


class TscbmError(ReasonError):
    """A TSCBM datagram that does not parse (``reason``: the drop reason)."""


@dataclass(frozen=True)
class PhaseTimes:
    phase: int
    veh_min: int  # tenths of a second to change
    veh_max: int
    ped_min: int
    ped_max: int
    ovl_min: int
    ovl_max: int


@dataclass(frozen=True)
class Tscbm:
    phases: dict[int, PhaseTimes]  # by phase number (blocks with phase number 0 are left out)
    reds: int
    yellows: int
    greens: int
    dont_walks: int
    ped_clears: int
    walks: int
    overlap_reds: int
    overlap_yellows: int
    overlap_greens: int
    flashing_phases: int
    flashing_overlaps: int
    intersection_status: int
    plan: int  # timebase ASC action status
    discontinuous: int
    sequence: int
    seconds_of_day: int
    milliseconds: int
    ped_calls: int
    ped_detects: int

    def time_of_day(self) -> float:
        return self.seconds_of_day + self.milliseconds / 1000


def _u16(data: bytes, off: int) -> int:
    return (data[off] << 8) | data[off + 1]


def parse_tscbm(data: bytes) -> Tscbm:
    if len(data) < 2:
        raise TscbmError("tscbm-too-short", f"{len(data)} bytes")
    if data[0] != HEADER:
        raise TscbmError("tscbm-bad-header", f"first byte 0x{data[0]:02x}, expected 0xcd")
    n = data[1]
    if not 1 <= n <= 16:
        raise TscbmError("tscbm-bad-block-count", f"{n} phase blocks (1..16)")
    expected = 2 + BLOCK * n + TRAILER
    if len(data) != expected:
        raise TscbmError("tscbm-bad-length", f"{len(data)} bytes; {n} phase blocks make {expected}")
    phases: dict[int, PhaseTimes] = {}
    for i in range(n):
        off = 2 + BLOCK * i
        number = data[off]
        if number == 0:
            continue
        if number > 16:
            raise TscbmError("tscbm-bad-phase", f"block {i + 1} names phase {number} (1..16)")
        if number in phases:
            raise TscbmError("tscbm-bad-phase", f"phase {number} appears in two blocks")
        phases[number] = PhaseTimes(number, *(_u16(data, off + 1 + 2 * k) for k in range(6)))
    off = 2 + BLOCK * n
    (
        reds,
        yellows,
        greens,
        dont_walks,
        ped_clears,
        walks,
        overlap_reds,
        overlap_yellows,
        overlap_greens,
        flashing_phases,
        flashing_overlaps,
    ) = (_u16(data, off + 2 * k) for k in range(11))
    off += 22
    status, plan, discontinuous, sequence = data[off : off + 4]
    off += 4
    seconds = (data[off] << 16) | (data[off + 1] << 8) | data[off + 2]
    millis = _u16(data, off + 3)
    ped_calls, ped_detects = _u16(data, off + 5), _u16(data, off + 7)
    if seconds > 86399:
        raise TscbmError("tscbm-bad-timestamp", f"{seconds} seconds of the day (0..86399)")
    if millis > 999:
        raise TscbmError("tscbm-bad-timestamp", f"{millis} milliseconds (0..999)")
    return Tscbm(
        phases,
        reds,
        yellows,
        greens,
        dont_walks,
        ped_clears,
        walks,
        overlap_reds,
        overlap_yellows,
        overlap_greens,
        flashing_phases,
        flashing_overlaps,
        status,
        plan,
        discontinuous,
        sequence,
        seconds,
        millis,
        ped_calls,
        ped_detects,
    )


def resolve_time_of_day(time_of_day: float, near: float) -> float:
    """POSIX time of a UTC time of day, on the day (yesterday/today/tomorrow) nearest to ``near``."""
    day = (near // 86400) * 86400
    best = min((day + d * 86400 + time_of_day for d in (-1, 0, 1)), key=lambda t: abs(t - near))
    return best


def _bit(value: int, n: int) -> bool:
    return bool((value >> (n - 1)) & 1)


def movement_state(blob: Tscbm, group: SignalGroupMapConfig) -> tuple[str, int, int, str | None]:
    """(MovementPhaseState, min tenths, max tenths, problem) of one configured signal group."""
    movement = group.movement_for(blob.plan)
    what = f"{group.type} {'overlap' if group.type == 'overlap' else 'phase'}"
    n = group.overlap if group.type == "overlap" else group.phase
    if n is None:  # the configuration's validate() requires it
        raise ValueError(f"signal group {group.signal_group}: {what} number missing")
    if group.type == "overlap":
        lights = (_bit(blob.overlap_reds, n), _bit(blob.overlap_yellows, n), _bit(blob.overlap_greens, n))
        flashing = _bit(blob.flashing_overlaps, n)
        times = blob.phases.get(n)
        tmin, tmax = (times.ovl_min, times.ovl_max) if times else (0, 0)
    else:
        times = blob.phases.get(n)
        if group.type == "pedestrian":
            lights = (_bit(blob.dont_walks, n), _bit(blob.ped_clears, n), _bit(blob.walks, n))
            flashing = False
            tmin, tmax = (times.ped_min, times.ped_max) if times else (0, 0)
        else:
            lights = (_bit(blob.reds, n), _bit(blob.yellows, n), _bit(blob.greens, n))
            flashing = _bit(blob.flashing_phases, n)
            tmin, tmax = (times.veh_min, times.veh_max) if times else (0, 0)
    what = f"{what} {n}"
    if times is None and group.type != "overlap":
        return "unavailable", 0, 0, f"{what} is in no phase block"
    stop, clear, go = lights
    lit = sum(lights)
    if lit == 0:
        return "dark", tmin, tmax, None
    if lit > 1:
        return "unavailable", 0, 0, f"{what} shows {lit} states at once"
    if stop:
        return ("stop-Then-Proceed" if flashing else "stop-And-Remain"), tmin, tmax, None
    if clear:
        if flashing:  # a flashing yellow: proceed with caution, conflicting traffic may be present
            return "caution-Conflicting-Traffic", tmin, tmax, None
        return f"{movement}-clearance", tmin, tmax, None
    return f"{movement}-Movement-Allowed", tmin, tmax, None


def tscbm_update(blob: Tscbm, ix: ControllerIntersectionConfig, base: float, timestamp: float) -> IntersectionUpdate:
    """The IntersectionUpdate of one intersection: times-to-change are added to ``base`` (POSIX seconds)."""
    groups = []
    notes = []
    for g in ix.signal_groups:
        state, tmin, tmax, problem = movement_state(blob, g)
        if problem:
            notes.append(f"signal group {g.signal_group}: {problem}")
        if state == "unavailable" or (tmin == 0 and tmax == 0):
            # no timing known (both times 0 = the controller does not predict this change)
            ev = SignalEvent(state=state, timing=state != "unavailable")
        else:
            ev = SignalEvent(
                state=state, min_end=base + tmin / 10, max_end=base + max(tmax, tmin) / 10 if tmax else None
            )
        groups.append(SignalGroupState(g.signal_group, (ev,)))
    return IntersectionUpdate(
        key=ix.key, timestamp=timestamp, groups=tuple(groups), name=ix.name, plan=blob.plan, notes=tuple(notes)
    )
