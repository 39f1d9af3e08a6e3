"""RTCM 3 framing of a byte stream, batching, and packing frames into RTCMEMs (sans-I/O).

RTCM 3 frame (RTCM 10403.x transport layer)::

    0xD3 | 6 reserved bits (0) + 10-bit length L | L bytes of message | CRC-24Q (3 bytes, over all before it)

:class:`Rtcm3Framer` takes the stream in arbitrary chunks and yields whole frames whose CRC checks.
Everything else is dropped and counted: a frame whose CRC fails (``rtcm-crc-mismatch``, once per
corrupted frame; the framer then hunts for the next preamble without counting the false ones it
meets), bytes between frames (``rtcm-garbage-bytes`` count, and ``rtcm-resync`` once per loss of
sync), frames too long for an RTCMEM (``rtcm-frame-too-large``: RTCMmessage is at most 1023 bytes).

:class:`RtcmBatcher` groups frames that arrive together (a caster sends an epoch's messages in a
burst) and :func:`pack_frames` splits a batch into RTCMEM-sized parts (at most 5 frames each,
``RTCMmessageList``, and at most ``max_bytes`` of encoded RTCMEM).
"""

from __future__ import annotations

from rsu.integrations.counters import Counters
from rsu.services.gpc import crc24q

PREAMBLE = 0xD3
MAX_RTCMEM_FRAME = 1023  # RTCMmessage ::= OCTET STRING (SIZE(1..1023))
MAX_FRAMES = 5  # RTCMmessageList ::= SEQUENCE (SIZE(1..5)) OF RTCMmessage
# Encoded RTCMEM size bound: header (6) + RTCMcorrections fixed part, optional timeStamp, anchor point
# and RTCM header (at most ~44 bytes together), plus a 2-byte length per frame.
RTCMEM_OVERHEAD = 52
PER_FRAME_OVERHEAD = 2


def message_type(frame: bytes) -> int | None:
    """The 12-bit message number of an RTCM 3 frame (None if it has fewer than 2 payload bytes)."""
    return ((frame[3] << 4) | (frame[4] >> 4)) if len(frame) >= 5 else None


def frame(payload: bytes) -> bytes:
    """An RTCM 3 frame around ``payload`` (0..1023 bytes)."""
    if len(payload) > 1023:
        raise ValueError("an RTCM 3 message is at most 1023 bytes")
    head = bytes([PREAMBLE, len(payload) >> 8, len(payload) & 0xFF]) + payload
    return head + crc24q(head).to_bytes(3, "big")


class Rtcm3Framer:
    def __init__(self, counters: Counters | None = None) -> None:
        self.counters = counters or Counters("rtcm")
        self._buf = bytearray()
        self._synced = True  # a stream is expected to start on a frame; the first miss is a resync

    def reset(self) -> None:
        """Forget a partial frame (a new connection starts a new stream)."""
        if self._buf:
            self.counters.count("rtcm-partial-dropped")
        self._buf.clear()
        self._synced = True

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            if buf[0] != PREAMBLE:
                i = buf.find(PREAMBLE)
                skipped = len(buf) if i < 0 else i
                self._lost_sync(skipped)
                del buf[:skipped]
                continue
            if len(buf) < 3:
                break
            if buf[1] & 0xFC:  # reserved bits set: not a frame start
                self._lost_sync(1)
                del buf[:1]
                continue
            length = ((buf[1] & 0x03) << 8) | buf[2]
            if len(buf) < length + 6:
                break
            candidate = bytes(buf[: length + 6])
            if crc24q(candidate[: length + 3]) != int.from_bytes(candidate[length + 3 :], "big"):
                if self._synced:
                    self.counters.drop("rtcm-crc-mismatch", f"{length + 6}-byte frame")
                self._lost_sync(1)
                del buf[:1]
                continue
            del buf[: length + 6]
            self._synced = True
            if length + 6 > MAX_RTCMEM_FRAME:
                self.counters.drop("rtcm-frame-too-large", f"{length + 6} bytes (RTCMmessage holds 1023)")
                continue
            self.counters.count("rtcm-frames")
            out.append(candidate)
        return out

    def _lost_sync(self, nbytes: int) -> None:
        if self._synced:
            self.counters.drop("rtcm-resync")
            self._synced = False
        self.counters.count("rtcm-garbage-bytes", nbytes)


def rtcmem_size_bound(frames: list[bytes]) -> int:
    """An upper bound of the encoded size of an RTCMEM carrying ``frames``."""
    return RTCMEM_OVERHEAD + sum(len(f) + PER_FRAME_OVERHEAD for f in frames)


def pack_frames(
    frames: list[bytes], max_bytes: int, max_frames: int = MAX_FRAMES
) -> tuple[list[list[bytes]], list[bytes]]:
    """Split ``frames`` (in order) into parts that each fit one RTCMEM; (parts, frames that fit in none)."""
    parts: list[list[bytes]] = []
    too_big: list[bytes] = []
    current: list[bytes] = []
    for f in frames:
        if rtcmem_size_bound([f]) > max_bytes:
            too_big.append(f)
            continue
        if current and (len(current) >= max_frames or rtcmem_size_bound(current + [f]) > max_bytes):
            parts.append(current)
            current = []
        current.append(f)
    if current:
        parts.append(current)
    return parts, too_big


class RtcmBatcher:
    """Collects frames; a batch is due after ``gap_s`` without a new frame, or ``max_age_s`` after its first."""

    def __init__(self, gap_s: float, max_age_s: float) -> None:
        self.gap_s = gap_s
        self.max_age_s = max_age_s
        self._frames: list[bytes] = []
        self._first: float | None = None
        self._last: float | None = None

    def add(self, frames: list[bytes], now: float) -> None:
        if not frames:
            return
        if self._first is None:
            self._first = now
        self._last = now
        self._frames.extend(frames)

    def next_deadline(self) -> float | None:
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.gap_s, self._first + self.max_age_s)

    def due(self, now: float) -> list[bytes] | None:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return None
        return self.flush()

    def flush(self) -> list[bytes] | None:
        frames, self._frames = self._frames, []
        self._first = self._last = None
        return frames or None
