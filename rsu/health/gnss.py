"""Position and fix from gpsd: a sans-I/O reader of gpsd's JSON protocol and its asyncio client.

gpsd (https://gpsd.io, "gpsd_json(5)") speaks newline-terminated JSON objects over TCP (port 2947). A
client sends ``?WATCH={"enable":true,"json":true};`` and then receives, among others:

* ``VERSION`` (first, on connect), ``DEVICES``, ``WATCH``: acknowledged, otherwise ignored;
* ``TPV`` (time-position-velocity): ``mode`` (0 unknown, 1 no fix, 2 2D, 3 3D), ``time`` (ISO 8601 UTC),
  ``lat``/``lon`` (degrees), ``alt``/``altHAE`` (metres), each optional;
* ``SKY``: ``satellites`` (each with ``used``), or ``uSat``/``nSat`` in newer gpsd.

:class:`GpsdReader` takes bytes and the time they arrived (from an injected clock) and keeps
:class:`GnssState`; :class:`GpsdClient` connects, subscribes, feeds it and reconnects with a backoff.
Everything a gpsd (or anything at that address) sends is bounded: a line longer than
:data:`MAX_LINE` is dropped and counted, as is a line that is not a JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
from typing import Any

from rsu.aio import cancel_and_wait
from rsu.clock import Clock, parse_iso8601

log = logging.getLogger("rsu.gnss")

WATCH = b'?WATCH={"enable":true,"json":true};\n'
MAX_LINE = 64 * 1024  # gpsd's longest objects (SKY with many satellites, DEVICES) stay far below
FIX_MODES = {0: "unknown", 1: "no-fix", 2: "2d", 3: "3d"}
TPV_MAX_AGE_S = 10.0  # gpsd reports at least once a second while the receiver talks


@dataclasses.dataclass
class GnssState:
    """What gpsd told us last. ``mode`` 0 until a TPV says otherwise; position fields None until a fix gives them."""

    connected: bool = False
    mode: int = 0
    latitude: float | None = None
    longitude: float | None = None
    altitude_m: float | None = None
    time: float | None = None  # the receiver's UTC time of the last TPV, POSIX seconds
    tpv_at: float | None = None  # our clock when that TPV arrived
    satellites_used: int | None = None
    satellites_seen: int | None = None
    device: str | None = None
    version: str | None = None
    tpv_count: int = 0
    bad_lines: int = 0

    def current_mode(self, now: float, max_age_s: float = TPV_MAX_AGE_S) -> int:
        """The fix mode as of ``now``: the last TPV's, or 0 (unknown) when disconnected or when no TPV came
        for ``max_age_s`` (gpsd up, the receiver silent)."""
        if not self.connected or self.tpv_at is None or not 0 <= now - self.tpv_at <= max_age_s:
            return 0
        return self.mode

    def status(self, now: float) -> dict[str, Any]:
        """For ``rsu status`` / GET /v1/status."""
        mode = self.current_mode(now)
        return {
            "connected": self.connected,
            "fix": FIX_MODES.get(mode, str(mode)),
            "mode": mode,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "altitude_m": self.altitude_m,
            "satellites_used": self.satellites_used,
            "satellites_seen": self.satellites_seen,
            "device": self.device,
            "gpsd_version": self.version,
            "tpv_age_s": round(now - self.tpv_at, 3) if self.tpv_at is not None else None,
        }


def _number(obj: dict[str, Any], key: str) -> float | None:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


class GpsdReader:
    """Sans-I/O: ``feed(data, now)`` with bytes from gpsd, in any chunking; gives the classes of the objects
    it applied. ``state`` holds the result; ``reset()`` forgets a half line (new connection)."""

    def __init__(self, state: GnssState | None = None) -> None:
        self.state = state or GnssState()
        self._buf = bytearray()
        self._skipping = False  # inside an over-long line: drop until its newline

    def reset(self) -> None:
        self._buf.clear()
        self._skipping = False

    def feed(self, data: bytes, now: float) -> list[str]:
        applied: list[str] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    self._buf.clear()
                    if not self._skipping:
                        self.state.bad_lines += 1
                    self._skipping = True
                return applied
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > MAX_LINE:
                self.state.bad_lines += 1
                continue
            kind = self.line(line, now)
            if kind is not None:
                applied.append(kind)

    def line(self, line: bytes, now: float) -> str | None:
        """One JSON object; gives its class (None: blank, or not a JSON object: counted in ``bad_lines``)."""
        if not line.strip():
            return None
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self.state.bad_lines += 1
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("class"), str):
            self.state.bad_lines += 1
            return None
        kind: str = obj["class"]
        if kind == "TPV":
            self._tpv(obj, now)
        elif kind == "SKY":
            self._sky(obj)
        elif kind == "VERSION" and isinstance(obj.get("release"), str):
            self.state.version = obj["release"][:40]
        return kind

    def _tpv(self, obj: dict[str, Any], now: float) -> None:
        s = self.state
        mode = obj.get("mode")
        s.mode = mode if isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode <= 3 else 0
        s.tpv_at, s.tpv_count = now, s.tpv_count + 1
        if isinstance(obj.get("device"), str):
            s.device = obj["device"][:200]
        t = obj.get("time")  # a TPV of a cycle without a time sentence has none: the last one stays
        if isinstance(t, str):
            with contextlib.suppress(ValueError):
                s.time = parse_iso8601(t).timestamp()
        lat, lon = _number(obj, "lat"), _number(obj, "lon")
        if s.mode >= 2 and lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
            s.latitude, s.longitude = lat, lon
            alt = _number(obj, "altHAE")
            s.altitude_m = (alt if alt is not None else _number(obj, "alt")) if s.mode == 3 else None
        elif s.mode < 2:  # no fix: the old position is no longer what the receiver says
            s.latitude = s.longitude = s.altitude_m = None

    def _sky(self, obj: dict[str, Any]) -> None:
        s = self.state
        sats = obj.get("satellites")
        if isinstance(sats, list):
            s.satellites_seen = len(sats)
            s.satellites_used = sum(1 for x in sats if isinstance(x, dict) and x.get("used") is True)
        used, seen = obj.get("uSat"), obj.get("nSat")
        if isinstance(used, int) and not isinstance(used, bool):
            s.satellites_used = used
        if isinstance(seen, int) and not isinstance(seen, bool):
            s.satellites_seen = seen


class GpsdClient:
    """asyncio adapter: connects to gpsd at ``host:port``, sends ?WATCH, feeds a :class:`GpsdReader` with
    the clock's time; reconnects after ``retry_s`` (doubling up to ``max_retry_s``) when the connection
    fails or ends. ``state`` is the reader's :class:`GnssState`; ``connected`` is set while up."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        clock: Clock,
        retry_s: float = 1.0,
        max_retry_s: float = 30.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.host, self.port, self.clock = host, port, clock
        self.reader = GpsdReader()
        self.retry_s, self.max_retry_s, self.connect_timeout_s = retry_s, max_retry_s, connect_timeout_s
        self.connected = asyncio.Event()
        self.connects = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> GnssState:
        return self.reader.state

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="rsu-gpsd")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def run(self) -> None:
        delay = self.retry_s
        while True:
            try:
                await self._session()
                delay = self.retry_s  # a session that ran resets the backoff
            except (TimeoutError, OSError, EOFError) as e:
                log.warning("gpsd %s:%d: %s; retrying in %.0f s", self.host, self.port, e or type(e).__name__, delay)
            self.connected.clear()
            self.state.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_s)

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.connect_timeout_s)
        try:
            writer.write(WATCH)
            await writer.drain()
            self.reader.reset()
            self.connects += 1
            self.state.connected = True
            self.connected.set()
            log.info("gpsd %s:%d connected", self.host, self.port)
            while True:
                data = await reader.read(16384)
                if not data:
                    raise EOFError("gpsd closed the connection")
                self.reader.feed(data, self.clock.now())
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
