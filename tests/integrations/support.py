"""Helpers of the integrations tests (fixtures are in conftest.py): example data, TSCBM byte fixtures
built from the layout in docs/integrations.md, a recording services facade, bounded waits."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from pathlib import Path

from rsu.clock import parse_iso8601

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "config" / "examples"
STATION = 3120101
EXAMPLE_TIME = "2025-05-14T08:12:23.450Z"  # moy 192012, DSecond 23450 of the example SPATEM

_cache: dict[str, dict] = {}


def example(name: str) -> dict:
    files = {
        "mapem": "mapem-4arm-intersection.json",
        "spatem": "spatem-4arm-intersection.json",
        "rtcmem": "rtcmem-corrections.json",
    }
    if name not in _cache:
        _cache[name] = json.loads((EXAMPLES / files[name]).read_text())
    return copy.deepcopy(_cache[name])


def posix(text: str) -> float:
    return parse_iso8601(text).timestamp()


def hour_start(t: float) -> float:
    return t - t % 3600


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def feed_from_example_spatem(spatem: dict, at: float) -> dict:
    """The JSON feed message that describes the example SPATEM (TimeMarks -> absolute ISO times of ``at``'s hour)."""
    ix = spatem["spat"]["intersections"][0]
    h = hour_start(at)
    names = {
        "startTime": "start_time",
        "minEndTime": "min_end_time",
        "maxEndTime": "max_end_time",
        "likelyTime": "likely_time",
        "nextTime": "next_time",
    }
    groups = []
    for st in ix["states"]:
        events = []
        for ev in st["state-time-speed"]:
            e = {"state": ev["eventState"]}
            for k, v in (ev.get("timing") or {}).items():
                if k == "confidence":
                    e["confidence"] = v
                else:
                    e[names[k]] = iso(h + v / 10)
            events.append(e)
        g = {"signal_group": st["signalGroup"], **events[0]}
        if events[1:]:
            g["next"] = events[1:]
        groups.append(g)
    return {
        "intersection": ix["id"]["id"],
        "timestamp": iso(at),
        "status": ix["status"],
        "name": ix["name"],
        "signal_groups": groups,
    }


def all_red_feed(at: float, groups=range(1, 13), min_end: float = 5.0, key=1201) -> dict:
    return {
        "intersection": key,
        "timestamp": at,
        "signal_groups": [
            {"signal_group": g, "state": "stop-And-Remain", "min_end_time": at + min_end} for g in groups
        ],
    }


# --- TSCBM byte fixtures, from the layout in docs/integrations.md ------------------------------------------
def _bits(numbers) -> int:
    v = 0
    for n in numbers:
        v |= 1 << (n - 1)
    return v


def tscbm_bytes(
    *,
    phases: dict[int, tuple[int, int, int, int, int, int]] | None = None,
    blocks: int = 16,
    reds=(),
    yellows=(),
    greens=(),
    dont_walks=(),
    ped_clears=(),
    walks=(),
    overlap_reds=(),
    overlap_yellows=(),
    overlap_greens=(),
    flashing=(),
    flashing_overlaps=(),
    status: int = 0,
    plan: int = 0,
    discontinuous: int = 0x10,
    sequence: int = 0,
    seconds_of_day: int = 0,
    milliseconds: int = 0,
    ped_calls=(),
    ped_detects=(),
    header: int = 0xCD,
) -> bytes:
    """A TSCBM blob: 0xCD, N, N x 13-byte phase blocks, 35-byte trailer (big-endian)."""
    phases = phases or {}
    out = bytearray([header, blocks])
    numbers = sorted(phases)
    for i in range(blocks):
        if i < len(numbers):
            n = numbers[i]
            out.append(n)
            for t in phases[n]:
                out += t.to_bytes(2, "big")
        else:
            out += bytes(13)
    for group in (
        reds,
        yellows,
        greens,
        dont_walks,
        ped_clears,
        walks,
        overlap_reds,
        overlap_yellows,
        overlap_greens,
        flashing,
        flashing_overlaps,
    ):
        out += _bits(group).to_bytes(2, "big")
    out += bytes([status, plan, discontinuous, sequence])
    out += seconds_of_day.to_bytes(3, "big") + milliseconds.to_bytes(2, "big")
    out += _bits(ped_calls).to_bytes(2, "big") + _bits(ped_detects).to_bytes(2, "big")
    return bytes(out)


# The 4-arm intersection's phase map (NEMA-style): through N/E/S/W = phases 2/4/6/8, left turns 1/3/5/
# (west left on overlap 1), pedestrians on the phases of the parallel through movement.
PHASE_MAP = [
    {"signal_group": 1, "phase": 2},
    {"signal_group": 2, "phase": 1, "movement": "protected"},
    {"signal_group": 3, "phase": 4, "plans": {3: "protected"}},
    {"signal_group": 4, "phase": 3, "movement": "protected"},
    {"signal_group": 5, "phase": 6},
    {"signal_group": 6, "phase": 5, "movement": "protected"},
    {"signal_group": 7, "phase": 8},
    {"signal_group": 8, "overlap": 1, "movement": "protected"},
    {"signal_group": 9, "phase": 4, "type": "pedestrian", "movement": "protected"},
    {"signal_group": 10, "phase": 2, "type": "pedestrian"},
    {"signal_group": 11, "phase": 8, "type": "pedestrian", "movement": "protected"},
    {"signal_group": 12, "phase": 6, "type": "pedestrian"},
]


# --- a services facade that records what the integrations asked, and signals it -----------------------------
class Recording:
    """Forwards to a ServiceLayer; keeps every call and sets ``changed`` after each (tests await it)."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.calls: list[tuple[str, str, str | None, dict | None]] = []
        self.changed = asyncio.Event()

    def _note(self, *call) -> None:
        self.calls.append(call)
        self.changed.set()

    def trigger(self, service, request):
        out = self.layer.trigger(service, request)
        self._note("trigger", service, None, request)
        return out

    def trigger_spat(self, spat):
        out = self.layer.trigger_spat(spat)
        self._note("trigger", "tlm", None, {"spat": spat})
        return out

    def update(self, service, ident, request):
        out = self.layer.update(service, ident, request)
        self._note("update", service, ident, request)
        return out

    def terminate(self, service, ident, request=None):
        out = self.layer.terminate(service, ident, request)
        self._note("terminate", service, ident, request)
        return out

    def get(self, service, ident):
        return self.layer.get(service, ident)


async def wait_for(predicate, *, timeout: float = 5.0, event: asyncio.Event | None = None) -> None:
    """Wait (bounded) until ``predicate()`` holds, re-checking whenever ``event`` is set."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        remaining = end - loop.time()
        if remaining <= 0:
            raise AssertionError(f"condition not met within {timeout} s")
        if event is None:
            await asyncio.sleep(min(0.01, remaining))
            continue
        event.clear()
        if predicate():
            return
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except TimeoutError:
            pass


# --- the test caster process (tests/integrations/caster.py) ---------------------------------------------------
class CasterProcess:
    """Drives tests/integrations/caster.py: its JSON-line events are collected, commands go to its stdin."""

    def __init__(self, proc) -> None:
        self.proc = proc
        self.events: list[dict] = []
        self.changed = asyncio.Event()
        self.port: int | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            if event["event"] == "listening":
                self.port = event["port"]
            self.events.append(event)
            self.changed.set()

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["event"] == kind]

    async def wait(self, kind: str, count: int = 1, timeout: float = 5.0) -> dict:
        await wait_for(lambda: len(self.of(kind)) >= count, event=self.changed, timeout=timeout)
        return self.of(kind)[count - 1]

    async def command(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                await self.command("quit")
                await asyncio.wait_for(self.proc.wait(), 5)
            except (ConnectionError, TimeoutError):
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()
