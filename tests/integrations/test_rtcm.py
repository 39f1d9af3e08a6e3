"""RTCM 3 framing with CRC-24Q (bad frames dropped and counted), batching, packing into RTCMEMs within the limits,
and the GPC feed (parts, stale corrections stopped)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.support import example
from rsu import catalog
from rsu.integrations.counters import Counters
from rsu.integrations.gpc_feed import GpcFeed
from rsu.integrations.rtcm import Rtcm3Framer, RtcmBatcher, frame, message_type, pack_frames, rtcmem_size_bound
from rsu.services.gpc import rtcm3_problem

REAL = [bytes.fromhex(h) for h in example("rtcmem")["rtcmc"]["msgs"]]  # a 1005 and a 1077 frame


def msg(number: int, size: int, fill: int = 0x11) -> bytes:
    """An RTCM 3 frame of message ``number`` with ``size`` payload bytes."""
    payload = bytes([number >> 4, (number & 0x0F) << 4]) + bytes([fill]) * (size - 2)
    return frame(payload)


def corrupt(f: bytes, at: int = 6) -> bytes:
    b = bytearray(f)
    b[at] ^= 0x04
    return bytes(b)


def test_frame_builder_matches_the_real_frames():
    assert [message_type(f) for f in REAL] == [1005, 1077]
    assert frame(REAL[0][3:-3]) == REAL[0]
    assert rtcm3_problem(msg(1074, 100)) is None


def test_framer_keeps_good_frames_and_drops_corrupted_ones_whatever_the_chunking():
    a, b, c, d = REAL[0], msg(1074, 120, fill=0xD3), REAL[1], msg(1230, 8)  # b is full of false preambles
    stream = a + corrupt(b) + c + b"\x00\x42garbage\r\n" + d + b
    rng = random.Random(7)
    for _ in range(20):
        counters = Counters("t")
        framer = Rtcm3Framer(counters)
        out, i = [], 0
        while i < len(stream):
            n = rng.randint(1, 60)
            out += framer.feed(stream[i : i + n])
            i += n
        assert out == [a, c, d, b]
        snap = counters.snapshot()
        assert snap["dropped"]["rtcm-crc-mismatch"] == 1  # once per corrupted frame, not per false preamble
        assert snap["dropped"]["rtcm-resync"] == 2  # lost sync after the bad frame and at the garbage
        assert snap["counts"]["rtcm-frames"] == 4
        assert snap["counts"]["rtcm-garbage-bytes"] == len(b) + 11


def test_framer_edge_cases():
    counters = Counters("t")
    framer = Rtcm3Framer(counters)
    assert framer.feed(b"\xd3\xfc\x00" + REAL[0]) == [REAL[0]]  # reserved bits set: not a frame start
    big = frame(bytes([0x40, 0x00]) + bytes(1020))  # 1028 bytes: too long for RTCMmessage (1023)
    assert framer.feed(big + REAL[0]) == [REAL[0]]
    assert counters.dropped("rtcm-frame-too-large") == 1
    assert framer.feed(REAL[1][:50]) == []  # partial frame waits ...
    framer.reset()  # ... and is discarded at a reconnect
    assert framer.feed(REAL[1]) == [REAL[1]]
    assert counters.get("rtcm-partial-dropped") == 1


def test_packing_respects_five_frames_and_the_size_limit():
    frames = [msg(1074, 100, i) for i in range(1, 8)]
    parts, too_big = pack_frames(frames, max_bytes=1100)
    assert [len(p) for p in parts] == [5, 2] and too_big == []
    parts, _ = pack_frames(frames, max_bytes=400)
    assert [len(p) for p in parts] == [3, 3, 1]
    assert all(rtcmem_size_bound(p) <= 400 for p in parts)
    assert sum(parts, []) == frames  # order kept
    huge = msg(1077, 1000)
    parts, too_big = pack_frames([frames[0], huge, frames[1]], max_bytes=800)
    assert parts == [[frames[0], frames[1]]] and too_big == [huge]


def test_batcher_flushes_after_a_gap_or_at_max_age():
    b = RtcmBatcher(gap_s=0.1, max_age_s=1.0)
    assert b.next_deadline() is None and b.due(0.0) is None
    b.add([REAL[0]], 10.0)
    b.add([REAL[1]], 10.05)
    assert b.next_deadline() == pytest.approx(10.15)
    assert b.due(10.1) is None
    assert b.due(10.15) == [REAL[0], REAL[1]]
    for i in range(20):  # a continuous stream never leaves a gap: max age bounds the latency
        b.add([REAL[0]], 20.0 + i * 0.05)
    assert b.next_deadline() == pytest.approx(21.0)
    assert len(b.due(21.0)) == 20


def test_gpc_feed_packs_batches_into_rtcmem_streams(layer, codec, clock):
    counters = Counters("ntrip")
    gpc = GpcFeed(
        layer,
        counters,
        stream="ntrip",
        max_bytes=600,
        max_correction_age_s=10.0,
        dissemination={"destination": {"latitude": 44.8376, "longitude": -0.5794, "shape": "circle", "a": 1000}},
    )
    frames = [REAL[0]] + [msg(1074, 150, i) for i in range(1, 5)]
    gpc.publish(frames, clock.now())
    assert gpc.active == ["ntrip", "ntrip.2"]
    txs = [t for t in layer.due() if t.service == "gpc"]
    assert sorted(t.id for t in txs) == ["ntrip", "ntrip.2"]
    carried = []
    for tx in sorted(txs, key=lambda t: t.id):
        assert len(tx.pdu) <= 600 and tx.kind is catalog.RTCMEM
        assert tx.params.destination is not None and tx.params.destination.a == 1000
        carried += codec.decode(tx.pdu).value["rtcmc"]["msgs"]
    assert carried == frames
    # the next batch fits one RTCMEM: the second part is terminated
    clock.advance(1.0)
    gpc.publish([REAL[0], REAL[1]], clock.now())
    assert gpc.active == ["ntrip"] and [e["id"] for e in layer.list("gpc")] == ["ntrip"]
    [tx] = [t for t in layer.due() if t.service == "gpc"]
    assert codec.decode(tx.pdu).value["rtcmc"]["msgs"] == [REAL[0], REAL[1]]
    # no new frame for max_correction_age_s: no stale corrections stay on the air
    assert gpc.next_deadline() == clock.now() + 10.0
    clock.advance(10.0)
    gpc.tick(clock.now())
    assert layer.list("gpc") == [] and counters.get("rtcm-stale-stop") == 1
    assert [t for t in layer.due(clock.now() + 5) if t.service == "gpc"] == []
    gpc.publish([REAL[0]], clock.now())  # frames again: the stream comes back
    assert [e["id"] for e in layer.list("gpc")] == ["ntrip"]


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(
            st.sampled_from(REAL), st.binary(max_size=40), st.builds(corrupt, st.sampled_from(REAL), st.integers(3, 20))
        ),
        max_size=12,
    ),
    cuts=st.lists(st.integers(1, 64), min_size=1, max_size=8),
)
def test_framer_never_crashes_and_only_yields_valid_frames(pieces, cuts):
    stream = b"".join(pieces) + bytes(1100)  # padding: a false length read in garbage cannot hold frames back
    framer = Rtcm3Framer()
    out, i, k = [], 0, 0
    while i < len(stream):
        n = cuts[k % len(cuts)]
        out += framer.feed(stream[i : i + n])
        i, k = i + n, k + 1
    assert all(rtcm3_problem(f) is None for f in out)
    assert out == [p for p in pieces if p in REAL]  # every intact frame, in order; nothing else
