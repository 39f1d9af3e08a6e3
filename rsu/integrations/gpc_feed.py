"""Batches of RTCM 3 frames -> RTCMEM streams of the GPC service (sans-I/O).

The GPC service already builds the RTCMEM (msgCnt, timeStamp), checks each frame again and repeats
it at its interval; this feed only decides *what* goes into which RTCMEM:

* a batch is packed with :func:`rsu.integrations.rtcm.pack_frames` into parts of at most 5 frames
  and ``max_bytes`` of encoded RTCMEM; part 1 is stream ``NAME``, part *k* stream ``NAME.k``;
  parts a smaller batch no longer needs are terminated;
* a frame too big for any RTCMEM is dropped (``rtcm-frame-too-large``);
* **no stale corrections**: when no frame has come for ``max_correction_age_s`` (caster gone), every
  stream is terminated (``rtcm-stale-stop``) instead of repeating old corrections; the next frames
  start them again.
"""

from __future__ import annotations

import logging

from rsu.integrations.controller import Services
from rsu.integrations.counters import Counters
from rsu.integrations.rtcm import pack_frames
from rsu.services.errors import ServiceError

log = logging.getLogger("rsu.integrations.ntrip")


class GpcFeed:
    def __init__(
        self,
        services: Services,
        counters: Counters,
        *,
        stream: str,
        max_bytes: int,
        max_correction_age_s: float,
        dissemination: dict | None = None,
    ) -> None:
        self.services = services
        self.counters = counters
        self.stream = stream
        self.max_bytes = max_bytes
        self.max_age = max_correction_age_s
        self.dissemination = dissemination
        self.active: list[str] = []  # stream names currently on the air, part order
        self.last_publish: float | None = None
        self.last_answers: list[dict] = []

    def part_name(self, k: int) -> str:
        return self.stream if k == 1 else f"{self.stream}.{k}"

    def publish(self, frames: list[bytes], now: float) -> list[dict]:
        parts, too_big = pack_frames(frames, self.max_bytes)
        for f in too_big:
            self.counters.drop("rtcm-frame-too-large", f"{len(f)}-byte frame exceeds max_rtcmem_bytes")
        answers = []
        names = []
        for k, part in enumerate(parts, 1):
            name = self.part_name(k)
            try:
                answers.append(self._put(name, part))
                names.append(name)
                self.counters.count("rtcmem-parts")
            except ServiceError as e:
                self.counters.drop(f"gpc-{e.code}", str(e))
                log.warning("RTCM frames not accepted by GPC (%s): %s", name, e)
        for name in self.active:
            if name not in names:
                self._terminate(name)
        self.active = names
        if names:
            self.last_publish = now
            self.counters.count("rtcm-batches")
        self.last_answers = answers
        return answers

    def next_deadline(self) -> float | None:
        if not self.active or self.last_publish is None:
            return None
        return self.last_publish + self.max_age

    def tick(self, now: float) -> None:
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            log.warning(
                "no RTCM frame for %.1f s: RTCMEM %s stopped (no stale corrections)",
                self.max_age,
                ", ".join(self.active),
            )
            for name in self.active:
                self._terminate(name)
            self.active = []
            self.counters.count("rtcm-stale-stop")

    def stop(self) -> None:
        for name in self.active:
            self._terminate(name)
        self.active = []

    def _put(self, name: str, frames: list[bytes]) -> dict:
        hexes = [f.hex() for f in frames]
        if name in self.active:
            try:
                return self.services.update("gpc", name, {"rtcm": hexes})
            except ServiceError as e:
                if e.code != "unknown_id":
                    raise
        request: dict = {"rtcm": hexes, "stream": name}
        if self.dissemination is not None:
            request["dissemination"] = self.dissemination
        try:
            return self.services.trigger("gpc", request)
        except ServiceError as e:
            if e.code != "already_active":  # restored from the store after a restart
                raise
            return self.services.update("gpc", name, {"rtcm": hexes})

    def _terminate(self, name: str) -> None:
        try:
            self.services.terminate("gpc", name, {})
        except ServiceError as e:
            if e.code != "unknown_id":
                log.error("RTCMEM %s could not be stopped: %s", name, e)
