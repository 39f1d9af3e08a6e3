"""GPC: the GNSS Positioning Correction service (RTCMEM).

The application (or a feed such as an NTRIP client, through :meth:`GpcEntity` requests) supplies
RTCM frames, either as a whole RTCMEM payload or as ``{"rtcm": [hex frames], "stream": NAME}``.
The service builds the RTCMEM (``msgCnt`` changes with the content, ``timeStamp`` is the time of
the content), and repeats it at the configured interval (default 1 s) until terminated; new
frames replace the content (an update). RTCM 3 frames are checked at the edge (preamble, length,
CRC-24Q) so a corrupted feed is refused with the index of the bad frame.

The entry id is the stream name (default ``"default"``): one entry per correction stream.
"""

from __future__ import annotations

import re
from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind
from rsu.services.base import ServiceEntity, next_revision, reject_unknown
from rsu.services.errors import ServiceError
from rsu.services.model import Entry, Plan, canonical_hash
from rsu.services.timefmt import minute_of_the_year
from rsu.transports.base import GeoArea

_STREAM = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def crc24q(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def rtcm3_problem(frame: bytes) -> str | None:
    """Why ``frame`` is not one whole RTCM 3 frame (None when it is)."""
    if len(frame) < 6:
        return f"{len(frame)} bytes is too short for an RTCM 3 frame"
    if frame[0] != 0xD3:
        return f"starts with 0x{frame[0]:02x}, not the RTCM 3 preamble 0xd3"
    if frame[1] & 0xFC:
        return "reserved bits after the preamble are not 0"
    length = ((frame[1] & 0x03) << 8) | frame[2]
    if len(frame) != length + 6:
        return f"length field says {length} + 6 bytes, the frame has {len(frame)}"
    if crc24q(frame[: 3 + length]) != int.from_bytes(frame[3 + length :], "big"):
        return "CRC-24Q mismatch"
    return None


class GpcEntity(ServiceEntity):
    name = catalog.RTCMEM.service.lower()  # "gpc"
    kinds = (catalog.RTCMEM,)

    def trigger(self, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "rtcm", "stream", "dissemination"})
        plan = Plan()
        stream = self._stream(req)
        if stream in self.entries:
            raise ServiceError("already_active", "stream", f"RTCMEM stream {stream!r} is already active (update it)")
        value = self._intake(req, None, plan)
        diss = self.dissemination(req, catalog.RTCMEM, None, now)
        self._stamp(stream, value, None, plan, now)
        self.check_permission(catalog.RTCMEM, value)
        pdu = self.encode(catalog.RTCMEM, value)
        t0 = max(now, diss.start or now)
        entry = self.new_entry(
            stream, catalog.RTCMEM, value, (pdu,), diss, self._identification(value, pdu), now, anchor=t0
        )
        plan.schedule_entry(entry, t0)
        return plan

    def update(self, entry: Entry, req: dict[str, Any], now: float) -> Plan:
        reject_unknown(req, {"payload", "rtcm", "stream", "dissemination"})
        if "stream" in req and req["stream"] != entry.id:
            raise ServiceError("validation", "stream", f"{req['stream']!r}: this entry is stream {entry.id!r}")
        plan = Plan()
        diss = self.dissemination(req, catalog.RTCMEM, entry.dissemination, now)
        value, pdus, changed = entry.content, entry.pdus, False
        if "payload" in req or "rtcm" in req:
            value = self._intake(req, entry, plan)
            changed = self._stamp(entry.id, value, entry, plan, now)
            if changed:
                self.check_permission(catalog.RTCMEM, value)
                pdus = (self.encode(catalog.RTCMEM, value),)
            else:
                value = entry.content
        return self.plan_update(
            plan, entry, value, pdus, diss, changed, lambda: self._identification(value, pdus[0]), now
        )

    # --- internals ----------------------------------------------------------------------------
    def _stream(self, req: dict[str, Any]) -> str:
        stream = req.get("stream", "default")
        if not isinstance(stream, str) or not _STREAM.match(stream):
            raise ServiceError("validation", "stream", "1..64 characters of A-Z a-z 0-9 _ . -")
        return stream

    def _intake(self, req: dict[str, Any], entry: Entry | None, plan: Plan) -> dict[str, Any]:
        if ("payload" in req) == ("rtcm" in req):
            raise ServiceError("validation", "payload", "give either a payload (an RTCMEM) or rtcm (a list of frames)")
        if "rtcm" in req:
            frames = req["rtcm"]
            if not isinstance(frames, list) or not frames:
                raise ServiceError("validation", "rtcm", "expected a non-empty list of hex RTCM frames")
            body: dict[str, Any] = {"msgCnt": 0, "rev": "rtcmRev3", "msgs": frames}
            if entry is not None:  # keep what the stream had besides the frames (anchor point, header)
                old = self.ctx.codec.to_jer(catalog.RTCMEM, entry.content)["rtcmc"]
                body = dict({k: v for k, v in old.items() if k not in ("msgs", "timeStamp")}, msgs=frames)
            try:
                value = self.parse_payload({"rtcmc": body}, catalog.RTCMEM, path="", warnings=plan.warnings)
            except ServiceError as e:
                if e.path.startswith("rtcmc.msgs"):
                    raise ServiceError(e.code, "rtcm" + e.path[len("rtcmc.msgs") :], e.reason) from None
                raise
            prefix = "rtcm"
        else:

            def placeholders(b: dict[str, Any]) -> None:
                b.setdefault("msgCnt", 0)

            value = self.parse_payload(
                req["payload"], catalog.RTCMEM, placeholders=placeholders, warnings=plan.warnings
            )
            prefix = "payload.rtcmc.msgs"
        rtcmc = value["rtcmc"]
        if rtcmc["rev"] == "rtcmRev3":
            for i, frame in enumerate(rtcmc["msgs"]):
                problem = rtcm3_problem(frame)
                if problem:
                    raise ServiceError("validation", f"{prefix}[{i}]", f"not an RTCM 3 frame: {problem}")
        return value

    def _stamp(self, stream: str, value: dict[str, Any], entry: Entry | None, plan: Plan, now: float) -> bool:
        rtcmc = value["rtcmc"]
        content = {k: v for k, v in rtcmc.items() if k not in ("msgCnt", "timeStamp")}
        h = canonical_hash(content)
        name = f"gpc.msgcnt.{stream}"
        cnt, counter_changed = next_revision(self.ctx.counter(name, plan), h, None)
        changed = (
            entry is None
            or canonical_hash({k: v for k, v in entry.content["rtcmc"].items() if k not in ("msgCnt", "timeStamp")})
            != h
        )
        if counter_changed:
            plan.counters[name] = (cnt, h)
        rtcmc["msgCnt"] = cnt
        if changed:
            rtcmc["timeStamp"] = minute_of_the_year(now)
        elif entry is not None and "timeStamp" in entry.content["rtcmc"]:
            rtcmc["timeStamp"] = entry.content["rtcmc"]["timeStamp"]
        return changed

    def _identification(self, value: dict[str, Any], pdu: bytes) -> dict[str, Any]:
        r = value["rtcmc"]
        return {
            "msgCnt": r["msgCnt"],
            "frames": len(r["msgs"]),
            "bytes": len(pdu),
            "rtcmTypes": [((m[3] << 4) | (m[4] >> 4)) for m in r["msgs"] if r["rev"] == "rtcmRev3" and len(m) > 4],
        }

    def derive_area(self, kind: MessageKind, value: dict[str, Any] | None) -> GeoArea | None:
        if not value or "anchorPoint" not in value["rtcmc"]:
            return None
        a = value["rtcmc"]["anchorPoint"]
        return self.area_from(kind, [(a["lat"], a["long"])])
